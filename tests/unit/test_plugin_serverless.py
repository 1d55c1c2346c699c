"""The scale-to-zero section of `kubectl modelpilot status` (cli/serverless_view.py): the pod-time
integral of replicaHistory by tables, and the section rendered into a fixed-width rich Console
from a status.serverless the operator's own code wrote (control/serverless.py)."""

from __future__ import annotations

import datetime as dt
import io
from dataclasses import replace
from typing import Any

import pytest
from rich.console import Console, RenderableType

from modelpilot.api.serving import Autoscaling
from modelpilot.api.status import ServerlessStatus
from modelpilot.cli import plugin
from modelpilot.cli.serverless_view import (
    Cost,
    cost,
    cost_text,
    history_of,
    idle_since,
    pod_seconds,
    pod_time,
    serverless_section,
)
from modelpilot.control.serverless import ServerlessInputs, ServerlessReading, Track, serverless_part

NOW = dt.datetime(2026, 11, 25, 12, 0, tzinfo=dt.UTC)
H = 3600


def ago(seconds: float) -> dt.datetime:
    return NOW - dt.timedelta(seconds=seconds)


def stamp(seconds_ago: float) -> str:
    return ago(seconds_ago).strftime("%Y-%m-%dT%H:%M:%SZ")


# ------------------------------------------------------------------------------------ the integral

# id, samples (seconds ago, pods), window (seconds ago: start, end), floor, pod-seconds
INTEGRALS = [
    ("no-history", [], (24 * H, 0), 0, 0.0),
    ("one-pod-all-along", [(30 * H, 1)], (24 * H, 0), 0, 24 * H),
    ("two-pods-all-along", [(30 * H, 2)], (24 * H, 0), 0, 48 * H),
    ("at-zero-all-along", [(30 * H, 0)], (24 * H, 0), 0, 0.0),
    ("at-zero-with-a-floor-of-one", [(30 * H, 0)], (24 * H, 0), 1, 24 * H),
    ("nothing-known-before-the-first-sample", [(10 * H, 1)], (24 * H, 0), 0, 10 * H),
    ("nothing-known-before-the-first-sample-floor", [(10 * H, 0)], (24 * H, 0), 1, 10 * H),
    ("steps", [(30 * H, 0), (5 * H, 1), (4 * H, 3), (1 * H, 0)], (24 * H, 0), 0, 1 * H + 9 * H),
    ("steps-floor", [(30 * H, 0), (5 * H, 1), (4 * H, 3), (1 * H, 0)], (24 * H, 0), 1, 19 * H + 1 * H + 9 * H + H),
    ("a-window-inside-one-step", [(30 * H, 2), (1 * H, 0)], (5 * H, 2 * H), 0, 6 * H),
    ("samples-after-the-window-ignored", [(30 * H, 1), (1 * H, 5)], (24 * H, 2 * H), 0, 22 * H),
    ("empty-window", [(30 * H, 1)], (2 * H, 2 * H), 0, 0.0),
]


@pytest.mark.parametrize(("case", "samples", "window", "floor", "want"), INTEGRALS, ids=[c[0] for c in INTEGRALS])
def test_pod_seconds(case: str, samples: list[tuple[float, int]], window: tuple[float, float], floor: int,
                     want: float) -> None:
    history = [(ago(t), n) for t, n in samples]
    assert pod_seconds(history, ago(window[0]), ago(window[1]), floor) == want


# id, samples, created (seconds ago), span (seconds), used, baseline
COSTS = [
    ("a-day", [(30 * H, 0), (3 * H, 2), (2 * H, 0)], None, 24 * H, 2 * H, 25 * H),
    ("clipped-at-creation", [(30 * H, 0), (3 * H, 2), (2 * H, 0)], 6 * H, 6 * H, 2 * H, 7 * H),
    ("created-long-ago", [(30 * H, 1)], 90 * 24 * H, 24 * H, 24 * H, 24 * H),
    ("from-the-first-sample", [(2 * H, 1), (1 * H, 0)], 3 * H, 2 * H, 1 * H, 2 * H),
]


@pytest.mark.parametrize(("case", "samples", "created", "span", "used", "baseline"), COSTS,
                         ids=[c[0] for c in COSTS])
def test_cost_of_the_last_24h(case: str, samples: list[tuple[float, int]], created: float | None, span: float,
                              used: float, baseline: float) -> None:
    spent = cost([(ago(t), n) for t, n in samples], NOW, None if created is None else ago(created))
    assert spent == Cost(ago(span), NOW, used, baseline)
    assert spent.saving == pytest.approx(1 - used / baseline)


@pytest.mark.parametrize(("samples", "created"), [([], None), ([(-60, 1)], None), ([(H, 1)], -60)],
                         ids=["no-history", "sample-in-the-future", "created-in-the-future"])
def test_no_span_no_cost(samples: list[tuple[float, int]], created: float | None) -> None:
    assert cost([(ago(t), n) for t, n in samples], NOW, None if created is None else ago(created)) is None


@pytest.mark.parametrize(("spent", "text"), [
    (Cost(ago(24 * H), NOW, 7200.0, 86400.0), "7,200 pod-s (2.0 pod-h) used vs 86,400 pod-s (24.0 pod-h) with "
                                              "minReplicas: 1: 92% saved"),
    (Cost(ago(60), NOW, 60.0, 60.0), "60 pod-s used vs 60 pod-s with minReplicas: 1: 0% saved"),
    (Cost(ago(60), NOW, 0.0, 0.0), "0 pod-s used vs 0 pod-s with minReplicas: 1"),
    (None, "no pod history yet"),
])
def test_cost_text(spent: Cost | None, text: str) -> None:
    assert cost_text(spent) == text


@pytest.mark.parametrize(("seconds", "text"), [(0, "0 pod-s"), (3599.4, "3,599 pod-s"),
                                               (3600, "3,600 pod-s (1.0 pod-h)")])
def test_pod_time(seconds: float, text: str) -> None:
    assert pod_time(seconds) == text


def test_history_of_drops_unreadable_samples_and_sorts() -> None:
    raw = [{"time": stamp(10), "replicas": 2}, {"time": stamp(20), "replicas": 1}, {"time": "yesterday", "replicas": 1},
           {"time": stamp(5), "replicas": -1}, {"time": stamp(5), "replicas": True}, {"replicas": 1}, "x"]
    assert history_of(raw) == [(ago(20), 1), (ago(10), 2)]
    assert history_of(None) == [] and history_of({"time": stamp(1)}) == []


@pytest.mark.parametrize(("serverless", "since"), [
    ({"readySince": stamp(600), "lastRequestTime": stamp(60)}, 60),
    ({"readySince": stamp(60), "lastRequestTime": stamp(600)}, 60),
    ({"lastRequestTime": stamp(600)}, 600),  # at zero: no readySince
    ({"readySince": stamp(600)}, 600),
    ({}, None),
])
def test_idle_since_is_the_later_of_ready_and_last_request(serverless: dict[str, Any], since: float | None) -> None:
    assert idle_since(serverless) == (None if since is None else ago(since))


# ------------------------------------------------------------------------------------ the section

SCALING = Autoscaling.model_validate({"minReplicas": 0, "maxReplicas": 3, "scaleToZeroAfter": "5m"})
BASE = ServerlessInputs(scaling=SCALING, stored={}, track=Track(1, 1, 1, 0), canary_in_flight=False, keda=True,
                        upstream_known=True, route_on_activator=True, reading=None, read_every=15.0)
ZERO = Track(0, 0, 0, 0)


def written(ticks: list[tuple[float, dict[str, Any]]]) -> dict[str, Any]:
    """status.serverless after the operator's ticks (seconds ago, input changes), as stored."""
    stored: dict[str, Any] = {}
    for seconds_ago, changes in ticks:
        part = serverless_part(replace(BASE, stored=stored, **changes), ago(seconds_ago))
        stored = ServerlessStatus.model_validate(part.status).model_dump(mode="json", by_alias=True,
                                                                         exclude_none=True)
    return stored


def reading(seconds_ago: float, last: float, **extra: Any) -> ServerlessReading:
    return ServerlessReading(at=ago(seconds_ago), last_request=ago(last), **extra)


def mdep(serverless: dict[str, Any] | None, created: float = 30 * H) -> dict[str, Any]:
    status: dict[str, Any] = {"phase": "Ready", "observedGeneration": 1, "stable": {"version": "v3"},
                              "conditions": [{"type": "Ready", "status": "True", "reason": "Available",
                                              "message": "version v3 serving"}]}
    if serverless is not None:
        status["serverless"] = serverless
    meta = {"name": "fraud", "namespace": "ml", "generation": 1, "creationTimestamp": stamp(created)}
    return {"metadata": meta, "spec": {"model": {"version": "v3"}}, "status": status}


AT_ZERO = written([
    (20 * H, {}),  # one pod, Ready
    (19 * H, {"track": ZERO}),  # idle: at zero
    (2 * H, {"track": Track(1, 1, 0, 1), "reading": reading(2 * H, last=2 * H, activations=1)}),  # a request
    (2 * H - 30, {"reading": reading(2 * H - 30, last=2 * H, activations=1, cold_start=21.5)}),
    (1 * H, {"track": ZERO, "reading": reading(1 * H, last=2 * H - 40, activations=1, cold_start=21.5)}),
])
SERVING = written([(20 * H, {}), (10 * H, {"track": Track(2, 2, 2, 0), "reading": reading(10 * H, last=10 * H)}),
                   (90, {"track": Track(2, 2, 2, 0), "reading": reading(90, last=95)})])
FIXTURES: dict[str, dict[str, Any]] = {
    "at-zero": mdep(AT_ZERO),
    "serving": mdep(SERVING),
    "new": mdep({"scaledToZero": False}, created=60),
    "young": mdep(AT_ZERO, created=90 * 60),
    "no-serverless": mdep(None),
}


def text_of(renderable: RenderableType, width: int = 160) -> str:
    console = Console(width=width, no_color=True, highlight=False, record=True, file=io.StringIO())
    console.print(renderable)
    return "\n".join(" ".join(line.split()) for line in console.export_text().splitlines())


@pytest.mark.parametrize(("fixture", "present"), [
    ("at-zero", ["scale to zero", "│ scaled to zero │ yes, for 1h │",
                 f"│ last request │ {stamp(2 * H - 40)} (1h59m20s ago) │", "│ idle since │ 1h59m20s │",
                 "│ cold starts │ last 21.5s · p50 21.5s · 1 measured │",
                 "│ pod time, 20h │ 7,200 pod-s (2.0 pod-h) used vs 72,000 pod-s (20.0 pod-h) with minReplicas: 1: "
                 "90% saved │"]),
    ("serving", ["│ scaled to zero │ no │", "│ idle since │ 1m35s │", "│ cold starts │ none measured yet │",
                 "│ pod time, 20h │ 108,000 pod-s (30.0 pod-h) used vs 108,000 pod-s (30.0 pod-h) with minReplicas: 1:"
                 " 0% saved │"]),
    ("new", ["│ scaled to zero │ no │", "│ last request │ none seen │", "│ idle since │ — │",
             "│ pod time, 24h │ no pod history yet │"]),
    ("young", ["│ pod time, 1h30m │ 1,800 pod-s used vs 5,400 pod-s (1.5 pod-h) with minReplicas: 1: 67% saved │"]),
])
def test_status_shows_the_scale_to_zero_section(fixture: str, present: list[str]) -> None:
    text = text_of(plugin.status_view(FIXTURES[fixture], []))
    # status_view ages with the clock; the section itself is pure: render it at NOW.
    assert "scale to zero" in text, text
    section = text_of(serverless_section(FIXTURES[fixture], NOW) or "")
    for part in present:
        assert part in section, section


def test_activation_is_shown_while_serving() -> None:
    serverless = {**AT_ZERO, "scaledToZero": False, "lastActivationTime": stamp(125)}
    section = text_of(serverless_section(mdep(serverless), NOW) or "")
    assert "│ scaled to zero │ no (last activation 2m5s ago) │" in section, section


def test_no_section_without_scale_to_zero() -> None:
    assert serverless_section(FIXTURES["no-serverless"], NOW) is None
    assert "scale to zero" not in text_of(plugin.status_view(FIXTURES["no-serverless"], []))


def test_a_status_from_another_release_does_not_crash() -> None:
    odd = {"scaledToZero": "yes", "lastRequestTime": "soon", "coldStarts": ["x", 3], "replicaHistory": "none",
           "p50ColdStartSeconds": None, "lastScaledToZeroTime": 5}
    section = text_of(serverless_section(mdep(odd), NOW) or "")
    assert "│ last request │ none seen │" in section and "│ cold starts │ last 3s · p50 — · 1 measured │" in section
