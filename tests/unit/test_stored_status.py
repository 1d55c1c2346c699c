"""read_status(): the stored status, read part by part whichever release wrote it (table-driven)."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from modelpilot.api.models import AnalysisRecord, Condition, ServingTemplate
from modelpilot.api.stored import read_status, salvage

MODEL = {"version": "v1", "uri": "file:///models/fraud", "format": "sklearn"}
CONDITION = {"type": "Ready", "status": "True", "reason": "Available", "message": "serving",
             "lastTransitionTime": "2026-11-25T12:00:00Z"}
CANARY = {"state": "Progressing", "version": "v2", "revision": "b2", "weight": 20, "step": 0,
          "startedAt": "2026-11-25T12:00:00Z",
          "analyses": [{"time": "2026-11-25T12:01:00Z", "metric": "error-rate", "value": 0.1, "verdict": "Pass"}]}


def status(template: Any = None, **parts: Any) -> dict[str, Any]:
    stable: dict[str, Any] = {"version": "v1", "revision": "a1", "replicas": 2}
    if template is not None:
        stable["template"] = template
    return {"phase": "Ready", "stable": stable, "conditions": [CONDITION], **parts}


# (case, stored status, template readable, problem contains, dropped paths)
CASES: list[tuple[str, Any, bool, str | None, list[str]]] = [
    ("as-written", status({"model": MODEL}, canary=CANARY), True, None, []),
    ("extra-field-in-template", status({"model": {**MODEL, "checksum": "sha256:ab"}}), True, None,
     ["status.stable.template.model.checksum"]),
    ("extra-field-deep-in-template", status({"model": MODEL, "accelerator": {
        "vendor": "nvidia", "tolerations": [{"key": "k", "operator": "Exists", "seconds": 3}]}}), True, None,
     ["status.stable.template.accelerator.tolerations[0].seconds"]),
    ("extra-template-part", status({"model": MODEL, "sidecars": [{"name": "x"}]}), True, None, []),
    ("missing-optional-field", status({"model": {k: v for k, v in MODEL.items()}}), True, None, []),
    ("missing-required-field", status({"model": {"version": "v1", "uri": MODEL["uri"]}}), False,
     "model.format: Field required", []),
    ("missing-model", status({"runtime": {"port": 9000}}), False, "model: Field required", []),
    ("wrong-type", status({"model": {**MODEL, "version": 7}}), False, "model.version: Input should be a valid string",
     []),
    ("wrong-enum", status({"model": {**MODEL, "format": "pytorch"}}), False, "model.format: Input should be", []),
    ("stricter-check", status({"model": {**MODEL, "uri": "ftp://x/m"}}), False, "model.uri", []),
    ("not-an-object", status("model: v1"), False, "not an object", []),
    ("no-template", status(), False, None, []),
    # Elsewhere, an unreadable value is dropped (with its list item).
    ("extra-status-fields", status({"model": MODEL}, history=[1, 2]), True, None, []),
    ("bad-condition", status({"model": MODEL}, conditions=[CONDITION, {"type": "Healthy"}]), True, None,
     ["status.conditions[1].status"]),
    ("bad-analysis", status({"model": MODEL}, canary={**CANARY, "analyses": [{"verdict": "Skipped"}]}), True, None,
     ["status.canary.analyses[0].time"]),
    ("bad-canary-state", status({"model": MODEL}, canary={**CANARY, "state": "Analysing"}), True, None,
     ["status.canary.state"]),
    ("bad-stable-count", status({"model": MODEL}, stable={"version": "v1", "replicas": "two"}), False, None,
     ["status.stable.replicas"]),
]


@pytest.mark.parametrize(("case", "raw", "readable", "problem", "dropped"), CASES, ids=[c[0] for c in CASES])
def test_read_status(case: str, raw: Any, readable: bool, problem: str | None, dropped: list[str]) -> None:
    original = copy.deepcopy(raw)
    stored = read_status(raw)
    assert raw == original  # read, never changed
    assert (stored.template is not None) == readable
    if problem is None:
        assert stored.template_problem is None
    else:
        assert stored.template_problem is not None and problem in stored.template_problem
    assert [d.split(":")[0] for d in stored.dropped] == dropped
    assert stored.served  # every case names a stable version


def test_what_is_left_validates_and_defaults_fill_in() -> None:
    stored = read_status(status({"model": {**MODEL, "checksum": "x"}}, conditions=[{"type": "X"}, CONDITION]))
    assert stored.template is not None and stored.template.runtime is None and stored.template.model.version == "v1"
    assert stored.conditions == [CONDITION]
    assert stored.stable == {"version": "v1", "revision": "a1", "replicas": 2}  # the template apart


@pytest.mark.parametrize(("canary", "kept"), [
    (CANARY, True),
    ({**CANARY, "analyses": [{"verdict": "Skipped"}, CANARY["analyses"][0]]}, True),  # history only: kept
    ({**CANARY, "state": "Analysing"}, False),  # half a state: the canary starts again
    ({**CANARY, "weight": "twenty"}, False),
    ({**CANARY, "pausedBy": "operator"}, False),
])
def test_a_canary_is_kept_whole_or_not_at_all(canary: dict[str, Any], kept: bool) -> None:
    stored = read_status(status({"model": MODEL}, canary=canary))
    assert (stored.canary is not None) == kept
    if kept:
        assert stored.canary is not None and stored.canary["analyses"] == CANARY["analyses"]


@pytest.mark.parametrize(("raw", "served"), [
    (None, False), ({}, False), ({"stable": {"replicas": 1}}, False), ({"stable": {"version": "v1"}}, True),
    ({"stable": {"version": "v" * 300}}, True),  # unreadable, but something did serve
    ({"stable": "v1"}, False), ("garbage", False),
])
def test_served(raw: Any, served: bool) -> None:
    assert read_status(raw).served is served


@pytest.mark.parametrize(("model", "data", "drop_invalid", "value", "dropped"), [
    (Condition, CONDITION, True, True, 0),
    # A required value: dropped, then missing, so unreadable.
    (Condition, {**CONDITION, "reason": "not camel case!"}, True, False, 2),
    (AnalysisRecord, {"time": "2026-11-25T12:00:00Z", "metric": "m", "verdict": "Pass", "value": "high"}, True,
     True, 1),
    (ServingTemplate, {"model": {**MODEL, "format": "pytorch"}}, False, False, 1),
    (ServingTemplate, {"model": {**MODEL, "a": 1, "b": 2}}, False, True, 2),
    (ServingTemplate, [MODEL], False, False, 1),
])
def test_salvage_never_raises(model: Any, data: Any, drop_invalid: bool, value: bool, dropped: int) -> None:
    result = salvage(model, data, drop_invalid=drop_invalid)
    assert (result.value is not None) == value
    assert len(result.dropped) == dropped
    if value:
        assert model.model_validate(result.data) == result.value
