"""One idempotent, level-based reconcile of a ModelDeployment.

Reads the object and its children, applies (server-side) only the children that differ from the
desired state, deletes children that are no longer wanted, and writes status only when it
changed. Synchronous; the Kopf layer runs it in a thread.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from modelpilot.analysis.queries import QueryError, check_syntax
from modelpilot.api.models import ModelDeploymentSpec, SpecError, parse_spec
from modelpilot.drift import differences
from modelpilot.k8s.client import BOOTSTRAP_FIELD_MANAGER, GROUP, KIND, VERSION, Kube
from modelpilot.resources import (
    BuildSettings,
    accelerator_resource,
    desired_children,
    service_url,
    serving_revision,
    unwanted_children,
)
from modelpilot.settings import OperatorSettings
from modelpilot.status import (
    Accelerator,
    Observation,
    assess,
    merge_conditions,
    status_patch,
    transitions,
)

log = logging.getLogger("modelpilot.reconcile")

API_VERSION = f"{GROUP}/{VERSION}"
WARNING_REASONS = frozenset({"InvalidSpec", "InsufficientAccelerator", "Unschedulable"})
MANAGED_BY = "app.kubernetes.io/managed-by=modelpilot"

def decision(ns: str, name: str, what: str, **fields: Any) -> None:
    """One structured log line per decision, always naming the ModelDeployment."""
    detail = " ".join(f"{k}={v}" for k, v in fields.items())
    log.info("%s/%s %s %s", ns, name, what, detail)


def check_queries(spec: ModelDeploymentSpec) -> None:
    """What CEL cannot check: the PromQL of custom metrics. Raises SpecError naming the metric."""
    problems = []
    for i, metric in enumerate(spec.rollout.canary.analysis.metrics):
        if metric.query:
            try:
                check_syntax(metric.query)
            except QueryError as err:
                problems.append(f"spec.rollout.canary.analysis.metrics[{i}].query ({metric.name}): {err}")
    if problems:
        raise SpecError("invalid ModelDeployment spec: " + "; ".join(problems), problems)


@dataclass
class Reconciler:
    kube: Kube
    settings: OperatorSettings
    clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC)

    def build_settings(self) -> BuildSettings:
        return BuildSettings(gpu_product_label=self.settings.gpu_product_label,
                             runtime_image=self.settings.runtime_image,
                             cluster_domain=self.settings.cluster_domain)

    def reconcile(self, namespace: str, name: str) -> float | None:
        md = self.kube.get(API_VERSION, KIND, namespace, name)
        if md is None or md["metadata"].get("deletionTimestamp"):
            return None  # children go with it: ownerReferences and the garbage collector
        meta = md["metadata"]
        generation = int(meta.get("generation", 0))
        current_status: dict[str, Any] = dict(md.get("status") or {})

        try:
            spec = parse_spec(md.get("spec"))
            check_queries(spec)
        except SpecError as err:
            decision(namespace, name, "invalid-spec", reason=str(err))
            observation = Observation(generation=generation, version="", revision="",
                                      stable_deployment=None, invalid_spec=str(err))
            self._write_status(md, current_status, observation)
            return None

        owner = {"apiVersion": API_VERSION, "kind": KIND, "name": name, "uid": meta["uid"]}
        children = desired_children(spec, name=name, namespace=namespace, owner=owner,
                                    settings=self.build_settings())
        for child in children:
            self._ensure(namespace, name, child, spec)
        for api_version, kind, child_name in unwanted_children(spec, name=name):
            self._delete_if_owned(namespace, name, api_version, kind, child_name, meta["uid"])

        stable = self.kube.get("apps/v1", "Deployment", namespace, name)
        pods = self.kube.list("v1", "Pod", namespace,
                              label_selector=f"app.kubernetes.io/name={name},{MANAGED_BY}")
        observation = Observation(
            generation=generation,
            version=spec.model.version,
            revision=serving_revision(spec),
            stable_deployment=stable,
            pods=pods,
            accelerator=self._accelerator(spec),
            url=service_url(name, namespace, self.settings.cluster_domain),
        )
        self._write_status(md, current_status, observation)
        return None

    # -- children ------------------------------------------------------------------------------
    def _ensure(self, namespace: str, name: str, child: dict[str, Any], spec: ModelDeploymentSpec) -> None:
        meta = child["metadata"]
        live = self.kube.get(child["apiVersion"], child["kind"], meta["namespace"], meta["name"])
        if live is None:
            if child["kind"] == "Deployment" and spec.autoscaling is not None and "replicas" not in child["spec"]:
                # Start an autoscaled Deployment at minReplicas (an HPA without metrics yet would
                # leave it at 1) under a separate field manager, so the operator's own apply
                # never owns replicas and never fights the HPA.
                first = {**child, "spec": {**child["spec"], "replicas": spec.autoscaling.min_replicas or 1}}
                self.kube.apply(first, field_manager=BOOTSTRAP_FIELD_MANAGER)
            self.kube.apply(child)
            decision(namespace, name, "created", kind=child["kind"], child=meta["name"])
            return
        drift = differences(child, live)
        if drift:
            self.kube.apply(child)
            decision(namespace, name, "applied", kind=child["kind"], child=meta["name"],
                     fields=",".join(drift[:5]))

    def _delete_if_owned(self, namespace: str, name: str, api_version: str, kind: str, child_name: str,
                         uid: str) -> None:
        live = self.kube.get(api_version, kind, namespace, child_name)
        if live is None:
            return
        owners = live["metadata"].get("ownerReferences") or []
        if any(o.get("uid") == uid for o in owners) and self.kube.delete(api_version, kind, namespace, child_name):
            decision(namespace, name, "deleted", kind=kind, child=child_name, why="no longer in the spec")

    def _accelerator(self, spec: ModelDeploymentSpec) -> Accelerator | None:
        acc = spec.accelerator
        if acc is None:
            return None
        return Accelerator(resource=accelerator_resource(acc), count=acc.count, product=acc.product,
                           product_label=self.settings.gpu_product_label)

    # -- status --------------------------------------------------------------------------------
    def _write_status(self, md: dict[str, Any], current: dict[str, Any], obs: Observation) -> None:
        meta = md["metadata"]
        namespace, name = meta["namespace"], meta["name"]
        result = assess(obs, current.get("stable"))
        conditions = merge_conditions(current.get("conditions") or [], result.conditions, obs.generation,
                                      self.clock())
        desired = {k: v for k, v in current.items() if k not in ("conditions", "phase", "stable", "url",
                                                                  "observedGeneration")}
        desired.update({"observedGeneration": obs.generation, "phase": result.phase, "conditions": conditions})
        if result.stable:
            desired["stable"] = result.stable
        if obs.url:
            desired["url"] = obs.url
        patch = status_patch(current, desired)
        if patch is None:
            return
        self.kube.patch_status(namespace, name, patch)
        # One Event per change of the Ready condition (status or reason), never one per resync.
        for cond in transitions(current.get("conditions") or [], conditions):
            if cond["type"] == "Ready":
                event_type = "Warning" if cond["reason"] in WARNING_REASONS else "Normal"
                self.kube.post_event(md, event_type, cond["reason"], cond["message"] or cond["reason"])
        decision(namespace, name, "status", phase=result.phase,
                 ready=next(c["status"] for c in conditions if c["type"] == "Ready"),
                 reason=next(c["reason"] for c in conditions if c["type"] == "Ready"))
