"""`kubectl modelpilot drift`: the stable track's data and concept drift in the terminal (rich), and
the one-line drift summary of `status`. Pure: a ModelDeployment in, renderables and text out.

Reads the DataDrift / ConceptDrift conditions and `status.drift` (api/monitoring.py) as the
operator writes them; every field may be missing (an older operator, a failed read), so nothing
here assumes one is set.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from typing import Any

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from modelpilot.cli.experiment_view import p_text, short
from modelpilot.cli.view import plain_table
from modelpilot.cli.viewmodel import condition_row

DRIFT_CONDITIONS = ("DataDrift", "ConceptDrift")
CONDITION_STYLE = {"True": "bold red", "False": "green", "Unknown": "yellow"}
BAR_WIDTH = 20  # characters of the longest bar of a distribution
PARTIAL_BLOCKS = "▏▎▍▌▋▊▉"  # 1/8 .. 7/8 of a block, so small shares still differ
REFERENCE_STYLE, LIVE_STYLE, DRIFTED_STYLE = "dim", "cyan", "red"
PROFILE_HINT = ("not found: the serving pods have no reference profile; run `modelpilot profile --data TRAIN.csv "
                "--model MODEL_DIR` and put its profile.json next to the model file")


# ------------------------------------------------------------------------------------ reading the object


def _status(md: Mapping[str, Any]) -> Mapping[str, Any]:
    return md.get("status") or {}


def drift_conditions(md: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """The DataDrift and ConceptDrift conditions, in that order, as far as they are present."""
    by_type = {c.get("type"): c for c in _status(md).get("conditions") or []}
    return [by_type[kind] for kind in DRIFT_CONDITIONS if kind in by_type]


def monitoring_off(md: Mapping[str, Any]) -> bool:
    drift = ((md.get("spec") or {}).get("monitoring") or {}).get("drift") or {}
    return drift.get("enabled") is False


def _num(value: Any, spec: str = ".3g") -> str:
    return "—" if not isinstance(value, int | float) else format(value, spec)


def _accuracy_format(accuracy: Mapping[str, Any]) -> tuple[str, str]:
    """The label and number format of status.drift.accuracy: share correct, or mean absolute error."""
    return ("accuracy", ".3f") if accuracy.get("metric") != "error" else ("mean absolute error", ".4g")


def _ref(md: Mapping[str, Any]) -> str:
    meta = md.get("metadata") or {}
    return f"{meta.get('namespace')}/{meta.get('name')}"


def not_shown(md: Mapping[str, Any]) -> str | None:
    """The one line `drift` prints instead of the view when there is nothing to show, else None."""
    if monitoring_off(md):
        return f"{_ref(md)}: drift monitoring is off (spec.monitoring.drift.enabled: false)"
    if not _status(md).get("drift"):
        return f"{_ref(md)}: drift not evaluated yet"
    return None


# ------------------------------------------------------------------------------------ the summary line


def gist(message: str) -> str:
    """The first finding of a condition message, without the thresholds and figures in brackets:
    'feature petal_length PSI 2.31 +1 more'."""
    clauses = message.split(" (thresholds", 1)[0].split("; ")
    first = clauses[0].split(" (", 1)[0].strip()
    return first + (f" +{len(clauses) - 1} more" if len(clauses) > 1 else "")


def accuracy_gist(accuracy: Mapping[str, Any]) -> str:
    """'accuracy 0.680 vs reference 0.970' (or the mean absolute error)."""
    label, spec = _accuracy_format(accuracy)
    return f"{label} {_num(accuracy.get('live'), spec)} vs reference {_num(accuracy.get('reference'), spec)}"


def drift_summary(md: Mapping[str, Any]) -> str | None:
    """'drift: DataDrift True (feature petal_length PSI 2.31) · ConceptDrift False' for `status`;
    None while drift monitoring is off or before the operator wrote the conditions."""
    conditions = drift_conditions(md)
    if monitoring_off(md) or not conditions:
        return None
    parts = []
    for cond in conditions:
        status = str(cond.get("status", "Unknown"))
        part = f"{cond.get('type')} {status}"
        accuracy = (_status(md).get("drift") or {}).get("accuracy")
        if status == "True" and cond.get("type") == "ConceptDrift" and accuracy:
            part += f" ({accuracy_gist(accuracy)})"
        elif status == "True" and cond.get("message"):
            part += f" ({gist(str(cond['message']))})"
        elif status == "Unknown":
            part += f" ({cond.get('reason', '?')})"
        parts.append(part)
    return "drift: " + " · ".join(parts)


# ------------------------------------------------------------------------------------ bars


def bar(share: float, largest: float, width: int = BAR_WIDTH) -> str:
    """Block characters for `share`, the `largest` share of the distribution filling `width`;
    in eighths of a block, and never empty for a share above zero."""
    if share <= 0 or largest <= 0:
        return ""
    eighths = round(min(1.0, share / largest) * width * 8)
    full, rest = divmod(max(1, eighths), 8)
    return "█" * full + (PARTIAL_BLOCKS[rest - 1] if rest else "")


def _percent(share: float | None) -> str:
    return "—" if share is None else f"{share:.1%}"


def share_cell(share: float | None, largest: float, style: str, width: int = BAR_WIDTH) -> Text:
    """A bar padded to `width`, then the share in percent."""
    cell = Text()
    cell.append(bar(share or 0.0, largest, width).ljust(width), style=style)
    cell.append(f" {_percent(share):>6}")
    return cell


def _psi(distribution: Mapping[str, Any]) -> float:
    psi = distribution.get("psi")
    return float(psi) if isinstance(psi, int | float) else -1.0


def distribution_data(distribution: Mapping[str, Any]) -> dict[str, Any]:
    """One feature (or the predictions) as plain data: name, PSI and p-value in words, drifted,
    and its bins (share of the reference rows, share of the live rows or None, and both shares
    in percent as the bars' labels say them)."""
    bins: Sequence[Mapping[str, Any]] = distribution.get("bins") or []
    shares = [(str(entry.get("bin", "?")), float(entry.get("reference") or 0.0),
               None if entry.get("live") is None else float(entry["live"])) for entry in bins]
    return {"name": str(distribution.get("name", "?")), "psi": _num(distribution.get("psi")),
            "pValue": p_text(distribution.get("pValue")), "drifted": distribution.get("drifted") is True,
            "bins": [{"bin": name, "reference": reference, "live": live, "referenceText": _percent(reference),
                      "liveText": _percent(live)} for name, reference, live in shares]}


def distribution_view(distribution: Mapping[str, Any]) -> Group:
    """One feature (or the predictions): PSI, p-value, drifted, then its bins, reference beside live."""
    data = distribution_data(distribution)
    drifted = data["drifted"]
    heading = Text(data["name"], style="bold")
    heading.append(f"   PSI {data['psi']}   p-value {data['pValue']}   ")
    heading.append("drifted" if drifted else "not drifted", style=DRIFTED_STYLE if drifted else "green")
    if not data["bins"]:
        return Group(heading, Text("  no bins reported"))
    largest = max((entry[k] or 0.0 for entry in data["bins"] for k in ("reference", "live")), default=0.0)
    table = Table(box=None, pad_edge=False, show_edge=False, header_style="bold", padding=(0, 3, 0, 0))
    table.add_column("  BIN", no_wrap=True)
    table.add_column("REFERENCE", no_wrap=True)
    table.add_column("LIVE", no_wrap=True)
    live_style = DRIFTED_STYLE if drifted else LIVE_STYLE
    for entry in data["bins"]:
        table.add_row(f"  {entry['bin']}", share_cell(entry["reference"], largest, REFERENCE_STYLE),
                      share_cell(entry["live"], largest, live_style))
    return Group(heading, table)


def worst_first(features: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """By PSI, largest first (unmeasured last); the operator's order among equals."""
    return sorted(features, key=lambda f: -_psi(f))


# ------------------------------------------------------------------------------------ the view


def conditions_table(md: Mapping[str, Any]) -> Table:
    table = plain_table("CONDITION", "STATUS", "REASON", "MESSAGE")
    for cond in map(condition_row, drift_conditions(md)):
        table.add_row(cond["type"], Text(cond["status"], style=CONDITION_STYLE.get(cond["status"], "")),
                      cond["reason"], cond["message"])
    if not drift_conditions(md):
        table.add_row("-", "-", "-", "no DataDrift or ConceptDrift condition yet")
    return table


def _evaluated(value: Any, now: dt.datetime | None) -> str:
    """'2026-12-03T08:00:00Z (3m ago)'."""
    if not value:
        return "—"
    try:
        then = dt.datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return str(value)
    if then.tzinfo is None:
        then = then.replace(tzinfo=dt.UTC)
    elapsed = ((now or dt.datetime.now(dt.UTC)) - then).total_seconds()
    return f"{value} ({short(elapsed)} ago)"


def facts(drift: Mapping[str, Any], now: dt.datetime | None) -> list[tuple[str, str, bool]]:
    """(label, text, warn) for the window, rows, when, whether the pods found a profile, and why
    nothing was judged, if so; warn marks what needs the reader's attention."""
    found = drift.get("profile") is True
    rows = [("window", str(drift.get("window") or "—"), False), ("rows", f"{int(drift.get('rows') or 0)}", False),
            ("last evaluated", _evaluated(drift.get("lastEvaluated"), now), False),
            ("profile", "found" if found else PROFILE_HINT, not found)]
    if drift.get("message"):
        rows.append(("note", str(drift["message"]), True))
    return rows


def head(drift: Mapping[str, Any], now: dt.datetime | None) -> Table:
    """The facts as a grid."""
    grid = Table.grid(padding=(0, 2))
    for label, text, warn in facts(drift, now):
        # A warning (the operator's note, the profile hint) is Text: never read as markup. The
        # other facts (a duration, a count, a time) stay plain strings, highlighted as ever.
        grid.add_row(label, Text(text, style="yellow") if warn else text)
    return grid


def unexported_line(drift: Mapping[str, Any]) -> tuple[str, bool] | None:
    """The runtime's summary of the features past maxFeatures, and whether any is over the PSI
    threshold (None before any profile was found)."""
    unexported = drift.get("unexported")
    if not unexported:
        return None if drift.get("profile") is not True else ("unexported features: none past maxFeatures", False)
    over = int(unexported.get("overThreshold") or 0)
    return (f"unexported features: {int(unexported.get('count') or 0)} past maxFeatures, {over} with PSI >= 0.2 "
            f"on some pod (max PSI {_num(unexported.get('maxPSI'))})", over > 0)


def unexported_text(drift: Mapping[str, Any]) -> Text | None:
    line = unexported_line(drift)
    return None if line is None else Text(line[0], style=DRIFTED_STYLE if line[1] else "")


def accuracy_parts(drift: Mapping[str, Any]) -> tuple[str, str, str]:
    """Live accuracy (or mean absolute error) from feedback against the profile's reference, as
    (before, live figure, after): the views mark the live figure."""
    accuracy = drift.get("accuracy")
    if not accuracy:
        return "accuracy: no labelled feedback in the window", "", ""
    label, spec = _accuracy_format(accuracy)
    live, reference = accuracy.get("live"), accuracy.get("reference")
    after = f" vs reference {_num(reference, spec)}"
    numbers = isinstance(live, int | float) and isinstance(reference, int | float)
    if numbers and label == "accuracy":
        after += f" ({live - reference:+.3f})"
    elif numbers and reference:
        after += f" ({live / reference - 1:+.0%})"
    elif reference is None:
        after += " (the profile was written without --target)"
    after += f" over {int(accuracy.get('samples') or 0)} labelled rows"
    return f"{label}: live ", _num(live, spec), after


def accuracy_text(drift: Mapping[str, Any], concept_drift: bool) -> Text:
    before, live, after = accuracy_parts(drift)
    text = Text(before)
    if live or after:
        text.append(live, style=DRIFTED_STYLE if concept_drift else LIVE_STYLE)
        text.append(after)
    return text


def concept_drifted(md: Mapping[str, Any]) -> bool:
    concept = next((c for c in drift_conditions(md) if c.get("type") == "ConceptDrift"), {})
    return concept.get("status") == "True"


def drift_data(md: Mapping[str, Any], now: dt.datetime | None = None) -> dict[str, Any]:
    """The drift of the stable track as plain data: the summary line, or why there is nothing to
    show (notShown), the conditions, facts, distributions (features worst first), the unexported
    features and the accuracy."""
    drift: Mapping[str, Any] = _status(md).get("drift") or {}
    before, live, after = accuracy_parts(drift)
    unexported = unexported_line(drift)
    return {
        "summary": drift_summary(md), "notShown": not_shown(md),
        "conditions": [condition_row(c) for c in drift_conditions(md)],
        "facts": [{"label": label, "text": text, "warn": warn} for label, text, warn in facts(drift, now)],
        "features": [distribution_data(f) for f in worst_first(drift.get("features") or [])],
        "prediction": distribution_data(drift["prediction"]) if drift.get("prediction") else None,
        "unexported": None if unexported is None else {"text": unexported[0], "over": unexported[1]},
        "accuracy": {"before": before, "live": live, "after": after, "drifted": concept_drifted(md)},
    }


def drift_view(md: Mapping[str, Any], now: dt.datetime | None = None) -> Group:
    """Conditions, window, the top features and the predictions as bar charts, unexported
    features and accuracy; `now` (default: the clock) ages the last evaluation."""
    drift: Mapping[str, Any] = _status(md).get("drift") or {}
    parts: list[RenderableType] = [Text(f"{_ref(md)}: drift of the stable track (status.drift)", style="bold"),
                                   Text(), conditions_table(md), Text(), head(drift, now), Text()]
    parts.append(Text("FEATURES (top offenders, worst first; bars scaled to the largest share of each feature)",
                      style="bold"))
    features = worst_first(drift.get("features") or [])
    for index, feature in enumerate(features):
        if index:
            parts.append(Text())
        parts.append(distribution_view(feature))
    if not features:
        parts.append(Text("none measured"))
    parts += [Text(), Text("PREDICTIONS", style="bold")]
    prediction = drift.get("prediction")
    parts.append(distribution_view(prediction) if prediction else Text("none measured"))
    parts.append(Text())
    unexported = unexported_text(drift)
    if unexported is not None:
        parts.append(unexported)
    parts.append(accuracy_text(drift, concept_drifted(md)))
    return Group(*parts)


def drift_output(md: Mapping[str, Any], now: dt.datetime | None = None) -> RenderableType:
    """What `kubectl modelpilot drift` prints: the view, or one line when there is none."""
    line = not_shown(md)
    return Text(line) if line is not None else drift_view(md, now)
