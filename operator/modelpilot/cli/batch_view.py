"""`kubectl modelpilot batch`: BatchPredictions in the terminal (rich). Pure: objects in,
renderables and text out.

`batch_row` is one line of `batch list`, `status_view` the panel of `batch status` (model, data,
job, times, rows, a shard bar, conditions, the latest failures, the output manifest), and
`watch_line` the one-line form `batch status --watch` prints when stdout is not a terminal.

Reads `status` as the operator writes it (api/batch.py, camelCase); every field may be missing
(no run yet, an older operator), so nothing here assumes one is set.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from typing import Any

from rich.console import Group, RenderableType
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from modelpilot.cli.experiment_view import short
from modelpilot.cli.viewmodel import age

PHASE_STYLE = {"Pending": "yellow", "Running": "cyan", "Succeeded": "green", "Failed": "bold red"}
DONE_PHASES = ("Succeeded", "Failed")
BAR_WIDTH = 40
# succeeded, failed, running, waiting: distinct characters, so the bar reads without colours too
BAR_PARTS = (("█", "green"), ("▓", "bold red"), ("▒", "yellow"), ("░", "dim"))
LIST_COLUMNS = ("NAME", "MODEL", "VERSION", "PROGRESS", "ROWS", "PHASE", "SCHEDULE", "AGE")
FAILURE_COLUMNS = ("time", "shard", "pod", "reason", "message")
RECENT_FAILURES = 10


# ------------------------------------------------------------------------------------ reading the object


def _part(obj: Mapping[str, Any], *path: str) -> Mapping[str, Any]:
    """obj[path[0]][path[1]]...; {} where a level is missing or not an object."""
    value: Any = obj
    for key in path:
        value = value.get(key) if isinstance(value, Mapping) else None
    return value if isinstance(value, Mapping) else {}


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def phase_of(bp: Mapping[str, Any]) -> str:
    return str(_part(bp, "status").get("phase") or "")


def exit_code(bp: Mapping[str, Any]) -> int | None:
    """0 once the run Succeeded, 1 once it Failed, None while it is not done."""
    return {"Succeeded": 0, "Failed": 1}.get(phase_of(bp))


def model_name(bp: Mapping[str, Any]) -> str:
    """The model's name as the run resolved it, else the ModelDeployment the spec refers to, else 'inline'."""
    resolved = _part(bp, "status", "model").get("name")
    ref = _part(bp, "spec", "model", "modelDeploymentRef").get("name")
    return str(resolved or ref or "inline")


def model_version(bp: Mapping[str, Any]) -> str:
    return str(_part(bp, "status", "model").get("version") or _part(bp, "spec", "model").get("version") or "-")


def shard_counts(bp: Mapping[str, Any]) -> tuple[int, int, int, int]:
    """(total, succeeded, failed, running) of the current run; zeros before it started."""
    shards = _part(bp, "status", "shards")
    return (_int(shards.get("total")), _int(shards.get("succeeded")), _int(shards.get("failed")),
            _int(shards.get("running")))


def progress_text(bp: Mapping[str, Any]) -> str:
    """status.progress ("3/8"), else succeeded/total from the shard counts, else '-'."""
    progress = _part(bp, "status").get("progress")
    if progress:
        return str(progress)
    total, succeeded, _, _ = shard_counts(bp)
    return f"{succeeded}/{total}" if total else "-"


def rows_of(bp: Mapping[str, Any]) -> tuple[int, int, int] | None:
    """(in, out, failed) rows of the succeeded shards, or None before any was counted."""
    rows = _part(bp, "status", "rows")
    if not rows:
        return None
    return _int(rows.get("in")), _int(rows.get("out")), _int(rows.get("failed"))


def _time(value: Any) -> dt.datetime | None:
    if not value:
        return None
    try:
        then = dt.datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return None
    return then if then.tzinfo else then.replace(tzinfo=dt.UTC)


def run_seconds(bp: Mapping[str, Any]) -> float | None:
    """Seconds from startedAt to completedAt; None unless both are known."""
    status = _part(bp, "status")
    started, completed = _time(status.get("startedAt")), _time(status.get("completedAt"))
    if started is None or completed is None:
        return None
    return max(0.0, (completed - started).total_seconds())


def compact(count: int) -> str:
    """A row count in a table cell: 9500, 12.3k, 4.56M, 1.2B."""
    if count < 10_000:
        return str(count)
    value = float(count)
    for unit in ("k", "M", "B"):
        value /= 1000
        if float(f"{value:.3g}") < 1000 or unit == "B":
            break
    return f"{value:.3g}{unit}"


# ------------------------------------------------------------------------------------ list


def rows_cell(bp: Mapping[str, Any]) -> str:
    """Rows written, and the failed ones if any: '1.2M (12 failed)'; '-' before any was counted."""
    rows = rows_of(bp)
    if rows is None:
        return "-"
    _, out, failed = rows
    return compact(out) + (f" ({compact(failed)} failed)" if failed else "")


def batch_row(bp: Mapping[str, Any], with_namespace: bool, now: dt.datetime | None = None) -> list[str | Text]:
    """One line of `batch list`: NAME MODEL VERSION PROGRESS ROWS PHASE SCHEDULE AGE (NAMESPACE first with -A)."""
    meta = _part(bp, "metadata")
    phase = phase_of(bp)
    cells: list[str | Text] = [
        str(meta.get("name")), model_name(bp), model_version(bp), progress_text(bp), rows_cell(bp),
        Text(phase or "-", style=PHASE_STYLE.get(phase, "")), str(_part(bp, "spec").get("schedule") or "-"),
        age(meta.get("creationTimestamp"), now),
    ]
    return [str(meta.get("namespace")), *cells] if with_namespace else cells


# ------------------------------------------------------------------------------------ status


def _cells(counts: Sequence[int], total: int, width: int) -> list[int]:
    """Bar cells per part: proportional, at least one for a non-zero part, `width` in all (so the
    bar is all green only when every shard succeeded)."""
    cells = [max(1, round(width * count / total)) if count else 0 for count in counts]
    while sum(cells) > width:
        cells[cells.index(max(cells))] -= 1
    while sum(cells) < width:
        cells[cells.index(max(cells))] += 1
    return cells


def shard_bar(total: int, succeeded: int, failed: int, running: int, width: int = BAR_WIDTH) -> Text:
    """Succeeded (█), failed (▓), running (▒) and waiting (░) shards, then the counts in words."""
    bar = Text()
    if total <= 0:
        bar.append("░" * width, style="dim")
        bar.append("  no shards yet")
        return bar
    waiting = max(0, total - succeeded - failed - running)
    counts = (succeeded, failed, running, waiting)
    for (char, style), cells in zip(BAR_PARTS, _cells(counts, sum(counts), width), strict=True):
        bar.append(char * cells, style=style)
    bar.append(f"  {succeeded}/{total} shards succeeded ({100 * succeeded // total}%), {running} running, "
               f"{failed} failed")
    return bar


def _model_text(bp: Mapping[str, Any]) -> str:
    model = _part(bp, "status", "model")
    if model:
        words = [str(model.get("name") or model_name(bp)), str(model.get("version") or "?")]
        words += [f"revision {model['revision']}"] if model.get("revision") else []
        words += [str(model[key]) for key in ("format", "uri") if model.get(key)]
        return "  ".join(words)
    ref = _part(bp, "spec", "model", "modelDeploymentRef").get("name")
    if ref:
        return f"the stable version of ModelDeployment {ref} (fixed when the run starts)"
    spec = _part(bp, "spec", "model")
    return "  ".join(str(spec[key]) for key in ("version", "format", "uri") if spec.get(key)) or "?"


def _data_text(bp: Mapping[str, Any]) -> str:
    source, sink = _part(bp, "spec", "input"), _part(bp, "spec", "output")
    out_words = ", ".join(str(sink[key]) for key in ("format", "mode") if sink.get(key))
    return (f"{source.get('uri', '?')} ({source.get('format', '?')}) -> {sink.get('uri', '?')}"
            + (f" ({out_words})" if out_words else ""))


def _times_text(bp: Mapping[str, Any], now: dt.datetime | None) -> str:
    status = _part(bp, "status")
    started, completed = status.get("startedAt"), status.get("completedAt")
    if not started:
        return "not started"
    text = f"started {started}"
    seconds = run_seconds(bp)
    if seconds is not None:
        return text + f"  completed {completed}  took {short(seconds)}"
    begun = _time(started)
    if begun is not None and phase_of(bp) not in DONE_PHASES:
        text += f"  running for {short(((now or dt.datetime.now(dt.UTC)) - begun).total_seconds())}"
    return text


def _rows_text(bp: Mapping[str, Any]) -> str:
    rows = rows_of(bp)
    if rows is None:
        return "none counted yet (rows are counted per succeeded shard)"
    read, out, failed = rows
    text = f"in {read:,}  out {out:,}  failed {failed:,}"
    seconds = run_seconds(bp)
    if seconds:
        text += f"  ({read / seconds:,.0f} rows/s)"
    total, succeeded, _, _ = shard_counts(bp)
    if succeeded < total:
        text += f"  (of the {succeeded} succeeded shards)"
    return text


def _schedule_text(bp: Mapping[str, Any], now: dt.datetime | None) -> str:
    status = _part(bp, "status")
    text = str(_part(bp, "spec").get("schedule"))
    last = status.get("lastScheduleTime")
    if last:
        text += f"  last run {last} ({age(last, now)} ago)"
    if status.get("runsSucceeded") is not None or status.get("runsFailed") is not None:
        text += f"  runs {_int(status.get('runsSucceeded'))} succeeded, {_int(status.get('runsFailed'))} failed"
    return text


def _head(bp: Mapping[str, Any], now: dt.datetime | None) -> Table:
    status = _part(bp, "status")
    head = Table.grid(padding=(0, 2))
    head.add_row("model", _model_text(bp))
    head.add_row("data", _data_text(bp))
    if _part(bp, "spec").get("schedule"):
        head.add_row("schedule", _schedule_text(bp, now))
    head.add_row("job", str(status.get("job") or "-"))
    head.add_row("time", _times_text(bp, now))
    head.add_row("rows", _rows_text(bp))
    head.add_row("shards", shard_bar(*shard_counts(bp)))
    return head


def conditions_table(bp: Mapping[str, Any]) -> Table:
    table = Table(title="conditions", expand=False)
    for column in ("type", "status", "reason", "message"):
        table.add_column(column)
    for cond in _part(bp, "status").get("conditions") or []:
        style = "green" if cond.get("type") == "Complete" and cond.get("status") == "True" else \
            "bold red" if cond.get("type") == "Failed" and cond.get("status") == "True" else ""
        table.add_row(Text(str(cond.get("type", "")), style=style), str(cond.get("status", "")),
                      str(cond.get("reason", "")), str(cond.get("message", ""))[:120])
    return table


def failures_table(failures: Sequence[Mapping[str, Any]]) -> Table:
    """The latest failed shard attempts, newest last."""
    table = Table(title=f"latest failures ({len(failures)})", expand=False)
    for column in FAILURE_COLUMNS:
        table.add_column(column, justify="right" if column == "shard" else "left")
    for failure in failures:
        table.add_row(str(failure.get("time") or "")[11:19], str(failure.get("shard", "?")),
                      str(failure.get("pod", "")), Text(str(failure.get("reason", "")), style="red"),
                      str(failure.get("message") or "")[:120])
    return table


def _notes(bp: Mapping[str, Any]) -> list[str]:
    meta, status = _part(bp, "metadata"), _part(bp, "status")
    notes = []
    observed, generation = status.get("observedGeneration"), meta.get("generation")
    if not status:
        notes.append("no status yet: waiting for the operator (is it running and watching this namespace?)")
    elif observed is not None and generation is not None and observed < generation:
        notes.append(f"the operator has not observed generation {generation} yet (status is of {observed})")
    if status.get("outputManifest"):
        notes.append(f"output manifest: {status['outputManifest']}")
    return notes


def status_view(bp: Mapping[str, Any], now: dt.datetime | None = None) -> Group:
    """The `batch status` panel, then notes and the output manifest URI outside it (easy to copy)."""
    meta, status = _part(bp, "metadata"), _part(bp, "status")
    phase = phase_of(bp) or "-"
    title = Text.assemble(f"{meta.get('namespace')}/{meta.get('name')}  phase ",
                          (phase, PHASE_STYLE.get(phase, "")))
    parts: list[RenderableType] = [_head(bp, now)]
    if status.get("conditions"):
        parts.append(conditions_table(bp))
    failures = list(status.get("failures") or [])
    if failures:
        parts.append(failures_table(failures[-RECENT_FAILURES:]))
    return Group(Panel(Group(*parts), title=title), *(Text(note) for note in _notes(bp)))


# ------------------------------------------------------------------------------------ --watch without a terminal


def watch_line(bp: Mapping[str, Any]) -> str:
    """One state as `key=value` words; it changes only when the run moves (no clocks in it)."""
    status = _part(bp, "status")
    total, _, failed, running = shard_counts(bp)
    words = [f"phase={phase_of(bp) or '-'}", f"model={model_name(bp)}@{model_version(bp)}"]
    if status.get("job"):
        words.append(f"job={status['job']}")
    words.append(f"progress={progress_text(bp)}")
    if total:
        words += [f"running={running}", f"failed={failed}"]
    rows = rows_of(bp)
    if rows is not None:
        words += [f"rows.in={rows[0]}", f"rows.out={rows[1]}", f"rows.failed={rows[2]}"]
    seconds = run_seconds(bp)
    if seconds is not None:
        words.append(f"took={short(seconds)}")
    if status.get("outputManifest"):
        words.append(f"manifest={status['outputManifest']}")
    return " ".join(words)


def failure_key(failure: Mapping[str, Any]) -> tuple[str, ...]:
    return tuple(str(failure.get(key, "")) for key in ("shard", "pod", "reason", "time"))


def failure_line(failure: Mapping[str, Any]) -> str:
    message = str(failure.get("message") or "").strip()
    return (f"failure shard={failure.get('shard', '?')} pod={failure.get('pod', '')} "
            f"reason={failure.get('reason', '')}" + (f": {message}" if message else ""))
