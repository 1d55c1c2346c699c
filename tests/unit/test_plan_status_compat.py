"""plan() on a status another operator release wrote (an upgrade, or a downgrade under the newer
CRD): it never raises, never rolls a new spec out without the canary, and reports what it cannot
use as a condition (Ready=False, reason=InvalidStatus) with one Warning Event.

v1 runs settled; then the status is edited as another release could have left it, and the spec
either stays (the stable track provably runs it: the status is repaired) or moves to v2 (the
stable template is needed to keep the stable track as it is while a canary runs).
"""

from __future__ import annotations

import copy
import datetime as dt
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import pytest

from modelpilot.api.models import parse_spec
from modelpilot.control.observe import Observed
from modelpilot.control.plan import Plan, plan
from modelpilot.resources import serving_revision
from tests.unit.plan_world import T0, execute, modeldeployment, settle, spec
from tests.unit.test_plan import with_spec

Status = dict[str, Any]
LATER = T0 + dt.timedelta(seconds=60)
V2_REVISION = serving_revision(parse_spec(spec("v2")))


def template_model(change: Callable[[Status], None]) -> Callable[[Status], None]:
    return lambda status: change(status["stable"]["template"]["model"])


def canary_v2(**fields: Any) -> Callable[[Status], None]:
    """A canary for v2 (the spec's revision) at its first step, as some release wrote it."""
    canary = {"state": "Progressing", "version": "v2", "revision": V2_REVISION, "weight": 20, "step": 0,
              "startedAt": "2026-11-25T12:00:30Z", "lastProgressAt": "2026-11-25T12:00:40Z",
              "readyAt": "2026-11-25T12:00:40Z", **fields}
    return lambda status: status.update(canary=canary)


# (case, status edit, spec version, Ready reason after the tick, canary state after the tick)
#   reason None: the Ready condition is unchanged (still Available); canary None: no canary.
CASES: list[tuple[str, Callable[[Status], None], str, str | None, str | None]] = [
    # A field this release does not know (a downgrade under the newer CRD): ignored.
    ("unknown-model-field", template_model(lambda m: m.update(checksum="sha256:ab")), "v1", None, None),
    ("unknown-model-field-new-spec", template_model(lambda m: m.update(checksum="sha256:ab")), "v2", "Canary",
     "Progressing"),
    ("unknown-template-part", lambda s: s["stable"]["template"].update(weights={"a": 1}), "v2", "Canary",
     "Progressing"),
    ("unknown-stable-field", lambda s: s["stable"].update(promotedAt="2026-11-25T12:00:00Z"), "v2", "Canary",
     "Progressing"),
    # Optional fields missing: their defaults.
    ("no-optional-template-parts", lambda s: s["stable"]["template"].update(runtime=None, resources=None), "v2",
     "Canary", "Progressing"),
    # A field this release requires is missing, has a wrong type, or fails a stricter check: the
    # stable template is unknown. Same spec: the stable Deployment runs it, so that is the template.
    ("missing-required-field", template_model(lambda m: m.pop("format")), "v1", None, None),
    ("wrong-type", template_model(lambda m: m.update(format="pytorch")), "v1", None, None),
    ("no-template", lambda s: s["stable"].pop("template"), "v1", None, None),
    # ... a new spec: hold, no canary and certainly no promotion without one.
    ("missing-required-field-new-spec", template_model(lambda m: m.pop("format")), "v2", "InvalidStatus", None),
    ("wrong-type-new-spec", template_model(lambda m: m.update(version=7)), "v2", "InvalidStatus", None),
    ("stricter-new-spec", template_model(lambda m: m.update(version="v" * 200)), "v2", "InvalidStatus", None),
    ("no-template-new-spec", lambda s: s["stable"].pop("template"), "v2", "InvalidStatus", None),
    ("no-model-new-spec", lambda s: s["stable"]["template"].pop("model"), "v2", "InvalidStatus", None),
    # Other parts: an unreadable value is dropped and falls back to its default.
    ("stable-version-too-long", lambda s: s["stable"].update(version="v" * 200), "v2", "Canary", "Progressing"),
    ("canary-unknown-state", canary_v2(state="Analysing"), "v2", "Canary", "Progressing"),
    ("canary-unknown-verdict", canary_v2(analyses=[{"time": "2026-11-25T12:00:50Z", "metric": "error-rate",
                                                    "verdict": "Skipped"}]), "v2", "Canary", "Progressing"),
    ("canary-unknown-paused-by", canary_v2(pausedBy="operator"), "v2", "Canary", "Progressing"),
    ("canary-wrong-type", canary_v2(weight="twenty"), "v2", "Canary", "Progressing"),
    ("condition-missing-fields", lambda s: s["conditions"].append({"type": "Healthy"}), "v1", None, None),
    ("condition-wrong-time", lambda s: s["conditions"][0].update(lastTransitionTime="yesterday"), "v1", None,
     None),
]


def edited(change: Callable[[Status], None], version: str) -> Observed:
    settled = settle(Observed(md=modeldeployment(spec())))
    md = copy.deepcopy(settled.md)
    change(md["status"])
    observed = replace(settled, md=md)
    return with_spec(observed, spec(version)) if version != "v1" else observed


def ready(observed: Observed) -> dict[str, Any]:
    return next(c for c in observed.md["status"]["conditions"] if c["type"] == "Ready")


def stable_image_applied(the_plan: Plan) -> bool:
    return any(o["kind"] == "Deployment" and o["metadata"]["name"] == "fraud" for o in the_plan.apply)


@pytest.mark.parametrize(("case", "change", "version", "reason", "canary"), CASES, ids=[c[0] for c in CASES])
def test_status_of_another_release_never_blocks_reconciling(case: str, change: Callable[[Status], None],
                                                            version: str, reason: str | None,
                                                            canary: str | None) -> None:
    before = edited(change, version)
    the_plan = plan(before, None, LATER)  # must not raise
    after = execute(before, the_plan)
    assert ready(after)["reason"] == (reason or "Available"), ready(after)["message"]
    assert (after.md["status"].get("canary") or {}).get("state") == canary
    # The stable Deployment keeps v1: a new spec goes through the canary, or waits.
    assert not stable_image_applied(the_plan)
    assert after.md["status"]["stable"]["version"] == "v1"
    if reason == "InvalidStatus":
        assert the_plan.apply == () and the_plan.delete == ()
        assert [(e.type, e.reason) for e in the_plan.events] == [("Warning", "InvalidStatus")]
        assert "status.stable.template" in ready(after)["message"]
        assert after.md["status"]["stable"] == before.md["status"]["stable"]  # kept as stored
    else:
        assert "template" in after.md["status"]["stable"]
    if version == "v1":
        # What this release wrote back is what it reads: the next tick has nothing to repair.
        assert not plan(after, None, LATER).writes


@pytest.mark.parametrize(("change", "logged"), [
    (template_model(lambda m: m.update(checksum="x")), "status.stable.template.model.checksum: Extra inputs"),
    (template_model(lambda m: m.pop("format")), "status.stable.template cannot be read: model.format: Field required"),
    (lambda s: s["conditions"].append({"type": "Healthy"}), "status.conditions[5].status: Field required"),
])
def test_what_is_repaired_is_logged_once(change: Callable[[Status], None], logged: str) -> None:
    the_plan = plan(edited(change, "v1"), None, LATER)
    repaired = [fields["values"] for what, fields in the_plan.decisions if what == "status-repaired"]
    assert len(repaired) == 1 and logged in repaired[0]
    assert not [d for d in plan(execute(edited(change, "v1"), the_plan), None, LATER).decisions]


def test_held_rollout_is_steady_and_resumes_when_the_spec_is_set_back() -> None:
    held = execute(*_plan_and(edited(lambda s: s["stable"].pop("template"), "v2")))
    again = plan(held, None, LATER + dt.timedelta(minutes=5))
    assert not again.writes  # reported once, not every tick
    back = plan(with_spec(held, spec("v1"), generation=3), None, LATER)
    assert back.apply == ()  # nothing to roll: the stable Deployment already runs v1
    after = execute(with_spec(held, spec("v1"), generation=3), back)
    assert ready(after)["reason"] == "Available"
    assert after.md["status"]["stable"]["template"]["model"]["version"] == "v1"  # repaired


def test_held_rollout_goes_on_with_a_manual_promote_only() -> None:
    held = execute(*_plan_and(edited(lambda s: s["stable"].pop("template"), "v2")))
    promote = with_spec(held, spec("v2"), generation=2, annotations={"modelpilot.io/action": "promote"})
    the_plan = plan(promote, None, LATER)
    assert the_plan.consume_action == "promote"
    assert [e.reason for e in the_plan.events][:1] == ["Promoted"]
    stable = next(o for o in the_plan.apply if o["metadata"]["name"] == "fraud")
    assert stable["spec"]["template"]["metadata"]["labels"]["modelpilot.io/version"] == "v2"


def test_replicas_change_is_applied_under_an_unreadable_template() -> None:
    observed = edited(template_model(lambda m: m.update(checksum="x", format="pytorch")), "v1")
    the_plan = plan(with_spec(observed, {**spec(), "replicas": 3}), None, LATER)
    stable = next(o for o in the_plan.apply if o["metadata"]["name"] == "fraud")
    assert stable["spec"]["replicas"] == 3


def test_invalid_spec_keeps_a_status_it_cannot_read_as_it_is() -> None:
    observed = edited(template_model(lambda m: m.update(checksum="x")), "v1")
    body = spec()
    body["rollout"]["canary"]["analysis"] = {"metrics": [{"name": "x", "query": "sum(rate(", "max": 1}]}
    the_plan = plan(with_spec(observed, body), None, LATER)
    assert the_plan.status is not None and "stable" not in the_plan.status
    assert [e.reason for e in the_plan.events] == ["InvalidSpec"]


def _plan_and(observed: Observed) -> tuple[Observed, Plan]:
    return observed, plan(observed, None, LATER)
