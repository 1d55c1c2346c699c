"""Execute a plan: the only place a reconcile writes (thin; runs in the reconciler's I/O threads).

Order: children first (the Deployment before anything else, so a new ModelDeployment starts
serving as early as possible), then deletions, then status, then the consumed action, then Events,
then the notifications of those Events are queued (never waited for: notify/notifier.py).
Status is written before the action annotation is removed, so a decision taken on an action is
recorded before the action disappears, and the removal only succeeds while the annotation still
holds the value this tick acted on (an action written meanwhile stays for the next tick). Every
object the API server returns goes back to the cache (read-after-write).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from modelpilot.api.models import API_VERSION, KIND
from modelpilot.control.observe import ChildRef
from modelpilot.control.plan import Plan
from modelpilot.k8s.client import BOOTSTRAP_FIELD_MANAGER, Kube
from modelpilot.notify.notifier import Notifier
from modelpilot.resources import ANNOTATION_ACTION

Obj = dict[str, Any]


@dataclass
class Outcome:
    written: list[Obj] = field(default_factory=list)  # as the API server returned them
    deleted: list[Obj] = field(default_factory=list)  # stand-ins: apiVersion, kind, metadata


def first_stage(plan: Plan) -> tuple[Plan, Plan]:
    """(the Deployments, everything else): the reconciler runs the first part of every plan before
    the rest of any, so a burst of new ModelDeployments gets its serving Deployments first."""
    deployments = tuple(o for o in plan.apply if o["kind"] == "Deployment")
    if not deployments:
        return Plan(), plan
    first = Plan(apply=deployments, bootstrap=plan.bootstrap)
    rest = replace(plan, apply=tuple(o for o in plan.apply if o["kind"] != "Deployment"), bootstrap=())
    return first, rest


def execute(kube: Kube, md: Obj, plan: Plan, notifier: Notifier | None = None) -> Outcome:
    meta = md["metadata"]
    namespace, name = meta["namespace"], meta["name"]
    outcome = Outcome()
    for obj in plan.bootstrap:
        kube.apply(obj, field_manager=BOOTSTRAP_FIELD_MANAGER)
    for obj in sorted(plan.apply, key=lambda o: o["kind"] != "Deployment"):
        outcome.written.append(kube.apply(obj))
    for api_version, kind, child in plan.delete:
        _delete(kube, namespace, (api_version, kind, child), outcome)
    written = md  # notifications carry the status as this plan wrote it
    if plan.status is not None:
        written = kube.patch_status(namespace, name, plan.status)
        outcome.written.append(written)
    if plan.consume_action is not None:
        patched = kube.remove_annotation(API_VERSION, KIND, namespace, name, ANNOTATION_ACTION, plan.consume_action)
        if patched is not None:
            outcome.written.append(patched)
    for event in plan.events:
        kube.post_event(md, event.type, event.reason, event.message)
    if notifier is not None and plan.events:
        notifier.submit(written, plan.events, plan.notifications)
    return outcome


def _delete(kube: Kube, namespace: str, ref: ChildRef, outcome: Outcome) -> None:
    api_version, kind, name = ref
    kube.delete(api_version, kind, namespace, name)
    outcome.deleted.append({"apiVersion": api_version, "kind": kind,
                            "metadata": {"namespace": namespace, "name": name}})
