"""The "scale to zero" section of `kubectl modelpilot status`: whether the stable track is at zero,
its last request and idle time, its cold starts, and the cost view. Pure: a ModelDeployment in,
renderables and numbers out.

Reads `status.serverless` (api/status.py, ServerlessStatus) as the operator writes it; every field
may be missing (an older operator, a track that never went to zero), so nothing here assumes one
is set. The cost view integrates `replicaHistory` (the pod count from each sample to the next)
over the last 24 hours, clipped at the object's creation, against what `minReplicas: 1` would
have used over the same span: the same pods, but never fewer than one.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from rich.table import Table
from rich.text import Text

from modelpilot.cli.experiment_view import short
from modelpilot.times import parse_time

WINDOW = dt.timedelta(hours=24)  # what replicaHistory keeps
ZERO_LABEL = "scaled to zero"

Samples = Sequence[tuple[dt.datetime, int]]


def history_of(raw: Any) -> list[tuple[dt.datetime, int]]:
    """status.serverless.replicaHistory as (time, pods), oldest first; unreadable samples dropped."""
    samples = []
    for sample in raw if isinstance(raw, list) else []:
        if not isinstance(sample, Mapping):
            continue
        time, replicas = parse_time(sample.get("time")), sample.get("replicas")
        if time is not None and isinstance(replicas, int) and not isinstance(replicas, bool) and replicas >= 0:
            samples.append((time, replicas))
    return sorted(samples, key=lambda s: s[0])


def pod_seconds(history: Samples, start: dt.datetime, end: dt.datetime, floor: int = 0) -> float:
    """The integral of max(pods, floor) over [start, end]: each sample's count holds until the
    next sample. Before the first sample nothing is known, and nothing is counted."""
    total = 0.0
    for index, (time, pods) in enumerate(history):
        until = history[index + 1][0] if index + 1 < len(history) else end
        span = (min(until, end) - max(time, start)).total_seconds()
        if span > 0:
            total += span * max(pods, floor)
    return total


@dataclass(frozen=True)
class Cost:
    """Pod-seconds over [start, end]: used, and what `minReplicas: 1` would have used."""

    start: dt.datetime
    end: dt.datetime
    used: float
    baseline: float

    @property
    def saving(self) -> float | None:
        """The share of the baseline not used (0.9: 90% saved); None without a baseline."""
        return None if self.baseline <= 0 else 1 - self.used / self.baseline


def cost(history: Samples, now: dt.datetime, created: dt.datetime | None = None) -> Cost | None:
    """The last 24 hours (from `created` if later, and from the first sample: before it nothing is
    known); None when that span is empty."""
    if not history:
        return None
    start = max(now - WINDOW, history[0][0], *(() if created is None else (created,)))
    if start >= now:
        return None
    return Cost(start, now, pod_seconds(history, start, now), pod_seconds(history, start, now, floor=1))


def idle_since(serverless: Mapping[str, Any]) -> dt.datetime | None:
    """The later of readySince and lastRequestTime: since when nothing has kept the track busy."""
    times = [t for t in (parse_time(serverless.get("readySince")), parse_time(serverless.get("lastRequestTime")))
             if t is not None]
    return max(times) if times else None


# ------------------------------------------------------------------------------------ text


def _ago(then: dt.datetime | None, now: dt.datetime) -> str:
    return "—" if then is None else f"{short((now - then).total_seconds())} ago"


def _seconds(value: Any) -> str:
    return "—" if not isinstance(value, int | float) else f"{value:.3g}s"


def pod_time(seconds: float) -> str:
    """'86,400 pod-s (24.0 pod-h)'; below an hour, seconds alone."""
    text = f"{round(seconds):,} pod-s"
    return text if seconds < 3600 else f"{text} ({seconds / 3600:.1f} pod-h)"


def zero_words(serverless: Mapping[str, Any], now: dt.datetime) -> str:
    """'yes, for 12m' / 'no' with the last activation."""
    if serverless.get("scaledToZero") is True:
        since = parse_time(serverless.get("lastScaledToZeroTime"))
        return "yes" + ("" if since is None else f", for {short((now - since).total_seconds())}")
    activated = parse_time(serverless.get("lastActivationTime"))
    return "no" + ("" if activated is None else f" (last activation {_ago(activated, now)})")


def cold_start_text(serverless: Mapping[str, Any]) -> str:
    """'last 8.2s · p50 6.1s · 7 measured' (the operator keeps the last 20)."""
    measured = [v for v in serverless.get("coldStarts") or [] if isinstance(v, int | float)]
    if not measured:
        return "none measured yet"
    return (f"last {_seconds(serverless.get('lastColdStartSeconds', measured[-1]))} · "
            f"p50 {_seconds(serverless.get('p50ColdStartSeconds'))} · {len(measured)} measured")


def cost_text(spent: Cost | None) -> str:
    """'3,840 pod-s used vs 86,400 pod-s (24.0 pod-h) with minReplicas: 1: 96% saved'."""
    if spent is None:
        return "no pod history yet"
    text = f"{pod_time(spent.used)} used vs {pod_time(spent.baseline)} with minReplicas: 1"
    saving = spent.saving
    return text if saving is None else f"{text}: {saving:.0%} saved"


def _span_label(spent: Cost | None) -> str:
    if spent is None or spent.end - spent.start >= WINDOW:
        return "pod time, 24h"
    return f"pod time, {short((spent.end - spent.start).total_seconds())}"


def serverless_data(md: Mapping[str, Any], now: dt.datetime | None = None) -> dict[str, Any] | None:
    """status.serverless as `status` words it: rows of (label, text) and whether the track is at
    zero; None without status.serverless (no scale to zero). `now` (default: the clock) ages the
    times and ends the cost window."""
    serverless = (md.get("status") or {}).get("serverless")
    if not isinstance(serverless, Mapping):
        return None
    now = now or dt.datetime.now(dt.UTC)
    created = parse_time((md.get("metadata") or {}).get("creationTimestamp"))
    spent = cost(history_of(serverless.get("replicaHistory")), now, created)
    last = parse_time(serverless.get("lastRequestTime"))
    idle = idle_since(serverless)
    rows = [(ZERO_LABEL, zero_words(serverless, now)),
            ("last request", "none seen" if last is None else f"{serverless['lastRequestTime']} ({_ago(last, now)})"),
            ("idle since", "—" if idle is None else short((now - idle).total_seconds())),
            ("cold starts", cold_start_text(serverless)),
            (_span_label(spent), cost_text(spent))]
    return {"scaledToZero": serverless.get("scaledToZero") is True, "rows": [list(r) for r in rows]}


def serverless_section(md: Mapping[str, Any], now: dt.datetime | None = None) -> Table | None:
    """The section for `status`; None without status.serverless (no scale to zero)."""
    data = serverless_data(md, now)
    if data is None:
        return None
    table = Table(title="scale to zero", show_header=False, expand=False)
    table.add_column("what", no_wrap=True)
    table.add_column("value")
    zero_style = "cyan" if data["scaledToZero"] else ""
    for label, words in data["rows"]:
        # The zero row is Text (its figures never highlighted), all of it cyan while at zero.
        table.add_row(label, Text(words, style=zero_style) if label == ZERO_LABEL else words)
    return table
