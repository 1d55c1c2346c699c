"""execute(): the order of writes and the conditional action removal (a recording stand-in for
the API client; no server)."""

from __future__ import annotations

from typing import Any

from modelpilot.api.notifications import NotificationTarget
from modelpilot.control.execute import execute, first_stage
from modelpilot.control.plan import Plan
from modelpilot.rollout.machine import Event
from tests.unit.plan_world import modeldeployment, spec

DEPLOYMENT = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "fraud", "namespace": "ml"}}
SERVICE = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "fraud", "namespace": "ml"}}


class RecordingKube:
    def __init__(self, existing: dict[tuple[str, str, str], dict[str, Any]] | None = None) -> None:
        self.calls: list[tuple[Any, ...]] = []
        self.existing = existing or {}

    def get(self, api_version: str, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        self.calls.append(("get", kind, name))
        return self.existing.get((api_version, kind, name))

    def apply(self, obj: dict[str, Any], field_manager: str = "modelpilot") -> dict[str, Any]:
        self.calls.append(("apply", obj["kind"], obj["metadata"]["name"], field_manager))
        return obj

    def delete(self, api_version: str, kind: str, namespace: str, name: str) -> bool:
        self.calls.append(("delete", kind, name))
        return True

    def patch_status(self, namespace: str, name: str, status: dict[str, Any]) -> dict[str, Any]:
        self.calls.append(("status", name))
        return modeldeployment(spec(), status)

    def remove_annotation(self, api_version: str, kind: str, namespace: str, name: str, key: str,
                          value: str) -> dict[str, Any] | None:
        self.calls.append(("remove-annotation", key, value))
        return modeldeployment(spec())

    def post_event(self, owner: dict[str, Any], event_type: str, reason: str, message: str) -> None:
        self.calls.append(("event", reason))


def test_children_then_status_then_the_action_then_events() -> None:
    kube = RecordingKube()
    the_plan = Plan(apply=(SERVICE, DEPLOYMENT), delete=(("autoscaling/v2", "HorizontalPodAutoscaler", "fraud"),),
                    status={"phase": "Progressing"}, consume_action="promote",
                    events=(Event("Normal", "Promoting", "m"),))
    outcome = execute(kube, modeldeployment(spec()), the_plan)  # type: ignore[arg-type]
    assert [c[0:2] for c in kube.calls] == [("apply", "Deployment"), ("apply", "Service"),
                                            ("delete", "HorizontalPodAutoscaler"), ("status", "fraud"),
                                            ("remove-annotation", "modelpilot.io/action"), ("event", "Promoting")]
    assert kube.calls[4][2] == "promote"  # removed only while it still says what this tick acted on
    assert len(outcome.written) == 4 and len(outcome.deleted) == 1




def test_the_first_stage_is_the_deployments() -> None:
    targets = (NotificationTarget(name="chat", type="Slack", url_key="slack"),)
    whole = Plan(apply=(SERVICE, DEPLOYMENT), bootstrap=(DEPLOYMENT,), status={"phase": "Pending"},
                 events=(Event("Normal", "CanaryStarted", "m"),), notifications=targets)
    first, rest = first_stage(whole)
    assert first.apply == (DEPLOYMENT,) and first.bootstrap == (DEPLOYMENT,)
    assert first.status is None and rest.apply == (SERVICE,) and rest.status == {"phase": "Pending"}
    assert rest.bootstrap == ()
    # The Events, and so their notifications, go with the rest.
    assert first.events == first.notifications == () and (rest.events, rest.notifications) == (whole.events, targets)
    assert first_stage(Plan(status={"a": 1})) == (Plan(), Plan(status={"a": 1}))
