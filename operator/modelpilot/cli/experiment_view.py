"""The rollout's stage (shadow, segment, experiment, steps) and an experiment's comparisons, in
words and tables for `kubectl modelpilot` (status, list, history, --watch) and the demo. Pure.

`status.canary.stage` is absent until the canary is Ready; the weight steps may be empty (a
segment held until a promote action), so nothing here divides by or indexes into them.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping, Sequence
from typing import Any

from rich.table import Table
from rich.text import Text

from modelpilot.api.durations import format_duration, parse_duration

DEFAULT_STEPS = (10, 25, 50)
STAGED = ("shadow", "segment", "experiment")  # stages that are not weight steps
EXPERIMENT_STYLE = {"Winner": "green", "Loser": "bold red", "NoDifference": "cyan", "Inconclusive": "yellow"}
COMPARISON_COLUMNS = ("metric", "canary", "stable", "difference", "p-value", "samples", "verdict", "detail")


# ------------------------------------------------------------------------------------ the spec


def _rollout(md: Mapping[str, Any]) -> Mapping[str, Any]:
    return ((md.get("spec") or {}).get("rollout")) or {}


def _canary_spec(md: Mapping[str, Any]) -> Mapping[str, Any]:
    return _rollout(md).get("canary") or {}


def _experiment_spec(md: Mapping[str, Any]) -> Mapping[str, Any]:
    return _rollout(md).get("experiment") or {}


def steps_of(md: Mapping[str, Any]) -> Sequence[int]:
    """spec.rollout.canary.steps: the default when unset, possibly empty (with `match`)."""
    steps = _canary_spec(md).get("steps")
    return DEFAULT_STEPS if steps is None else list(steps)


def _seconds(text: Any, default: str) -> float | None:
    try:
        return parse_duration(str(text or default))
    except ValueError:
        return None


def short(seconds: float | None) -> str:
    """Whole seconds in the spec's duration syntax: 45s, 4m, 4m5s, 1h30m."""
    if seconds is None or not math.isfinite(seconds):
        return "?"
    return format_duration(max(0, int(seconds)))


def _elapsed(canary: Mapping[str, Any], now: dt.datetime | None) -> float | None:
    started = canary.get("stageStartedAt")
    if not started:
        return None
    try:
        then = dt.datetime.fromisoformat(str(started).replace("Z", "+00:00"))
    except ValueError:
        return None
    if then.tzinfo is None:
        then = then.replace(tzinfo=dt.UTC)
    return max(0.0, ((now or dt.datetime.now(dt.UTC)) - then).total_seconds())


def _span(canary: Mapping[str, Any], total: float | None, now: dt.datetime | None, at_least: bool = False) -> str:
    """'4m of 10m' (how far the stage is), or '' before the stage started."""
    elapsed = _elapsed(canary, now)
    if elapsed is None:
        return ""
    return f"{short(elapsed)} of {'at least ' if at_least else ''}{short(total)}"


# ------------------------------------------------------------------------------------ stage in words


def stage_of(canary: Mapping[str, Any]) -> str:
    return str(canary.get("stage") or "")


def final_verdict(canary: Mapping[str, Any]) -> str:
    """The experiment's verdict once it is final, else ''."""
    experiment = canary.get("experiment") or {}
    return str(experiment.get("verdict") or "") if experiment.get("final") is True else ""


def step_text(md: Mapping[str, Any], canary: Mapping[str, Any]) -> str:
    """'2/3' (1-based; '0/3' until Ready), or '-' in a stage that is not the weight steps or
    when there are no steps at all."""
    steps = steps_of(md)
    if stage_of(canary) in STAGED or not steps:
        return "-"
    return f"{int(canary.get('step', -1)) + 1}/{len(steps)}"


def stage_cell(canary: Mapping[str, Any]) -> str:
    """The STAGE column of `list`: one word, with a final experiment's verdict ('experiment:Winner')."""
    stage = stage_of(canary)
    if not stage:
        return "-"
    verdict = final_verdict(canary)
    return f"{stage}:{verdict}" if stage == "experiment" and verdict else stage


def _match_words(matches: Sequence[Mapping[str, Any]]) -> str:
    """spec.rollout.canary.match in a few words: 'x-beta=yes or cookie group=b'."""
    alternatives = []
    for match in matches[:2]:
        parts = [f"{h.get('name')}{'~' if h.get('type') == 'RegularExpression' else '='}{h.get('value')}"
                 for h in match.get("headers") or []]
        cookie = match.get("cookie") or {}
        if cookie:
            parts.append(f"cookie {cookie.get('name')}={cookie.get('value')}")
        alternatives.append(" and ".join(parts))
    more = " or …" if len(matches) > 2 else ""
    return " or ".join(a for a in alternatives if a) + more


def _segment_text(md: Mapping[str, Any], canary: Mapping[str, Any], now: dt.datetime | None) -> str:
    spec = _canary_spec(md)
    matches = spec.get("match") or []
    text = "segment (only matching requests" + (f": {_match_words(matches)})" if matches else ")")
    span = _span(canary, _seconds(spec.get("matchDuration"), "1m"), now, at_least=True)
    if span:
        text += f", {span}"
    steps = steps_of(md)
    if steps:
        return text + f"; then the weight steps {'/'.join(str(s) for s in steps)}%"
    return text + "; no weight steps: held until a promote action"


def _experiment_text(md: Mapping[str, Any], canary: Mapping[str, Any], now: dt.datetime | None) -> str:
    spec = _experiment_spec(md)
    split = canary.get("weight") or spec.get("split") or 50
    text = f"experiment: split {split}%"
    sticky = spec.get("sticky") or {}
    if sticky.get("header") or sticky.get("cookie"):
        text += f" (sticky by {'header ' + sticky['header'] if sticky.get('header') else 'cookie ' + sticky['cookie']})"
    verdict = final_verdict(canary)
    if verdict:
        text += f", concluded: {verdict}"
        if canary.get("state") == "Progressing":
            text += f" (onConclusion {spec.get('onConclusion') or 'Report'}: the split stays until promote or abort)"
        return text
    span = _span(canary, _seconds(spec.get("duration"), "1h"), now)
    return text + (f", {span}" if span else "")


def stage_text(md: Mapping[str, Any], canary: Mapping[str, Any], now: dt.datetime | None = None) -> str:
    """The stage in words for `status` ('' before the canary is Ready):
    'shadow (10% mirrored), 2m of 5m', 'segment (...)', 'experiment: split 30%, 4m of 10m',
    'steps: 2/3 at 25%'."""
    stage = stage_of(canary)
    if stage == "shadow":
        shadow = _canary_spec(md).get("shadow") or {}
        span = _span(canary, _seconds(shadow.get("duration"), "5m"), now)
        return (f"shadow ({shadow.get('percent') or 100}% mirrored, clients see stable only)"
                + (f", {span}" if span else ""))
    if stage == "segment":
        return _segment_text(md, canary, now)
    if stage == "experiment":
        return _experiment_text(md, canary, now)
    if stage == "steps":
        steps = step_text(md, canary)
        return f"steps: {steps} at {int(canary.get('weight') or 0)}%" if steps != "-" else "steps"
    return stage


def weight_note(md: Mapping[str, Any], canary: Mapping[str, Any]) -> str:
    """What the weight bar alone does not say in a shadow or segment stage."""
    stage = stage_of(canary)
    if stage == "shadow":
        return f"  (+{(_canary_spec(md).get('shadow') or {}).get('percent') or 100}% mirrored to the canary)"
    if stage == "segment":
        return "  (+ the matching requests go to the canary)"
    return ""


def plain_words(canary: Mapping[str, Any]) -> list[str]:
    """'stage=<stage>' when set and 'verdict=<v>' for a final experiment, for one-line output."""
    words = [f"stage={stage_of(canary)}"] if stage_of(canary) else []
    verdict = final_verdict(canary)
    if verdict:
        words.append(f"verdict={verdict}")
    return words


# ------------------------------------------------------------------------------------ comparisons


def _num(value: Any) -> str:
    return "—" if not isinstance(value, int | float) else f"{value:.4g}"


def _signed(value: float) -> str:
    return f"{value:+.3g}"


def difference_text(result: Mapping[str, Any]) -> str:
    """'+0.012 [+0.004, +0.020]': canary - stable with its confidence interval."""
    difference, low, high = result.get("difference"), result.get("ciLow"), result.get("ciHigh")
    if not isinstance(difference, int | float):
        return "—"
    text = _signed(difference)
    if isinstance(low, int | float) and isinstance(high, int | float):
        text += f" [{_signed(low)}, {_signed(high)}]"
    return text


def p_text(value: Any) -> str:
    if not isinstance(value, int | float):
        return "—"
    return "<0.001" if value < 0.001 else f"{value:.3f}"


def samples_text(result: Mapping[str, Any]) -> str:
    canary, stable = result.get("samplesCanary"), result.get("samplesStable")
    if canary is None and stable is None:
        return "—"
    return "/".join("?" if v is None else f"{v:.0f}" for v in (canary, stable))


def experiment_title(md: Mapping[str, Any], experiment: Mapping[str, Any]) -> str:
    confidence = _experiment_spec(md).get("confidence") or 0.95
    when = "final" if experiment.get("final") is True else "interim"
    return f"experiment ({when}): {experiment.get('verdict', '?')}; difference canary - stable [{confidence:.0%} CI]"


def comparisons(experiment: Mapping[str, Any]) -> list[dict[str, str]]:
    """Each compared metric in words: metric, canary, stable, difference (with its interval),
    pValue, samples (canary/stable), verdict and detail."""
    return [{"metric": str(result.get("metric", "")), "canary": _num(result.get("canary")),
             "stable": _num(result.get("stable")), "difference": difference_text(result),
             "pValue": p_text(result.get("pValue")), "samples": samples_text(result),
             "verdict": str(result.get("verdict", "")), "detail": str(result.get("detail") or "")}
            for result in experiment.get("results") or []]


def experiment_data(md: Mapping[str, Any], experiment: Mapping[str, Any]) -> dict[str, Any]:
    """The experiment as plain data: its title, whether it is final, its verdict and comparisons."""
    return {"title": experiment_title(md, experiment), "final": experiment.get("final") is True,
            "verdict": str(experiment.get("verdict", "")), "comparisons": comparisons(experiment)}


def comparison_rows(experiment: Mapping[str, Any], detail_width: int = 60) -> list[list[str | Text]]:
    return [[c["metric"], c["canary"], c["stable"], c["difference"], c["pValue"], c["samples"],
             Text(c["verdict"], style=EXPERIMENT_STYLE.get(c["verdict"], "")), c["detail"][:detail_width]]
            for c in comparisons(experiment)]


def experiment_table(md: Mapping[str, Any], experiment: Mapping[str, Any]) -> Table:
    """The experiment's comparisons, one row per metric ('final' or 'interim' in the title)."""
    table = Table(title=experiment_title(md, experiment), expand=False)
    for column in COMPARISON_COLUMNS:
        justify = "right" if column in ("canary", "stable", "p-value", "samples") else "left"
        table.add_column(column, justify=justify, no_wrap=column != "detail")  # type: ignore[arg-type]
    rows = comparison_rows(experiment)
    for cells in rows:
        table.add_row(*cells)
    if not rows:
        table.add_row("", "", "", "", "", "", "", "no comparisons yet")
    return table
