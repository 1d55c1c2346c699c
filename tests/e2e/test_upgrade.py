"""Operator upgrade and downgrade against the real API server: a status another release wrote never
blocks reconciling.

The API server prunes status fields its installed CRD does not know, on write and on read, so a
status can only hold what some CRD allowed: a field this release does not know reaches the
operator while a newer release's CRD stays installed (a downgrade: Helm changes no CRD), and a
field this release requires can be missing when an older CRD did not require it (an upgrade).
Both are made here by installing such a CRD variant for the write.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from modelpilot.api.crd import CRD_FILENAME, CRD_NAME
from modelpilot.api.models import GROUP, PLURAL, VERSION
from tests.e2e import mdep
from tests.e2e.operator import OperatorProcess
from tests.e2e.support import ClusterHandle, wait_for

ROOT = Path(__file__).resolve().parents[2]
NAME = "compat"
CHECKSUM = "sha256:" + "ab" * 32

Schema = dict[str, Any]


def template_schema(crd: Schema) -> Schema:
    status = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["status"]
    template: Schema = status["properties"]["stable"]["properties"]["template"]
    return template


def newer_crd(crd: Schema) -> None:
    """A later release's CRD: its stable template's model has a field this release does not know."""
    template_schema(crd)["properties"]["model"]["properties"]["checksum"] = {"type": "string"}


def older_crd(crd: Schema) -> None:
    """An earlier release's CRD: its stable template's model did not require the format yet."""
    template_schema(crd)["properties"]["model"]["required"] = ["version", "uri"]


def apply_crd(cluster: ClusterHandle, crd: Schema) -> None:
    cluster.kubectl("apply", "--server-side", "--force-conflicts", "-f", "-", input=yaml.safe_dump(crd))
    cluster.kubectl("wait", "--for=condition=Established", "--timeout=60s", f"crd/{CRD_NAME}")


@contextmanager
def crd_variant(cluster: ClusterHandle, change: Callable[[Schema], None]) -> Iterator[None]:
    """This release's CRD changed by `change` while the block runs; this release's CRD again after."""
    current = yaml.safe_load((ROOT / "crds" / CRD_FILENAME).read_text())
    variant = copy.deepcopy(current)
    change(variant)
    apply_crd(cluster, variant)
    try:
        yield
    finally:
        apply_crd(cluster, current)


def write_status(custom: client.CustomObjectsApi, namespace: str, patch: dict[str, Any],
                 stored: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
    """Merge `patch` into the status through the status subresource until what the API server
    stored (its answer) passes `stored`: a CRD update takes a moment to reach the API server's
    handlers, and until then the write is refused or pruned."""
    def attempt() -> dict[str, Any] | None:
        try:
            answer = custom.patch_namespaced_custom_object_status(GROUP, VERSION, namespace, PLURAL, NAME,
                                                                  {"status": patch})
        except ApiException as err:
            if err.status == 422:
                return None
            raise
        return dict(answer) if stored(answer) else None

    return wait_for(attempt, timeout=30, what=f"the status write {patch} to be stored")


def model_of(obj: dict[str, Any] | None) -> dict[str, Any]:
    return dict((((obj or {}).get("status") or {}).get("stable") or {}).get("template", {}).get("model") or {})


def wait_serving(custom: client.CustomObjectsApi, apps: client.AppsV1Api, namespace: str, replicas: int,
                 version: str = "v1") -> dict[str, Any]:
    """Ready for the current generation, `replicas` on the stable Deployment running `version`."""
    def probe() -> bool:
        deployment = apps.read_namespaced_deployment(NAME, namespace)
        labels = deployment.spec.template.metadata.labels
        return deployment.spec.replicas == replicas and labels["modelpilot.io/version"] == version
    wait_for(probe, timeout=90, what=f"{replicas} replicas of {version} on the stable Deployment")
    return mdep.wait_condition(custom, namespace, NAME, "Ready", "True")


def no_failed_reconcile(operator: OperatorProcess, namespace: str) -> None:
    failures = [line for line in operator.logs().splitlines()
                if "reconcile of" in line and "failed" in line and namespace in line]
    assert failures == [], failures[:3]


def test_status_written_by_another_release_never_blocks_reconciling(
        local_cluster: ClusterHandle, crd: str, custom: client.CustomObjectsApi, apps: client.AppsV1Api,
        core: client.CoreV1Api, solo_namespace: str, tmp_path: Path) -> None:
    ns = solo_namespace
    operators: list[OperatorProcess] = []

    def start(release: str) -> OperatorProcess:
        operators.append(OperatorProcess(kubeconfig=local_cluster.kubeconfig, namespaces=[ns],
                                         log_path=tmp_path / f"{release}.log").start())
        return operators[-1]

    try:
        first = start("first")
        mdep.create(custom, ns, mdep.simple(NAME))
        ready = mdep.wait_condition(custom, ns, NAME, "Ready", "True")
        assert model_of(ready)["version"] == "v1" and ready["status"]["stable"]["revision"]
        first.stop()

        # Downgrade: a newer release (with its CRD) left a field this one does not know; this
        # operator replaces it and the newer CRD stays installed. Started after the write, so it
        # lists the object as stored (a watch opened before a CRD change may still prune by the
        # old schema).
        with crd_variant(local_cluster, newer_crd):
            stored = write_status(custom, ns, {"stable": {"template": {"model": {"checksum": CHECKSUM}}}},
                                  lambda obj: model_of(obj).get("checksum") == CHECKSUM)
            assert model_of(stored)["format"] == "sklearn"
            downgraded = start("downgraded")
            mdep.patch_spec(custom, ns, NAME, {"replicas": 2})
            wait_serving(custom, apps, ns, replicas=2)
            # Read (the log names it) and dropped with the operator's next status write.
            assert f"{ns}/{NAME} status-repaired" in downgraded.logs()
            assert "checksum" not in model_of(mdep.get(custom, ns, NAME))
            downgraded.stop()

        # Upgrade: the earlier release left a status without a field this one requires (its CRD
        # allowed that); this release's CRD goes in first, then this operator starts.
        with crd_variant(local_cluster, older_crd):
            write_status(custom, ns, {"stable": {"template": {"model": {"format": None}}}},
                         lambda obj: "format" not in model_of(obj))
        assert "format" not in model_of(mdep.get(custom, ns, NAME))  # as stored: nothing adds it back
        upgraded = start("upgraded")
        mdep.patch_spec(custom, ns, NAME, {"replicas": 3})
        wait_serving(custom, apps, ns, replicas=3)
        # The stable Deployment runs the spec (same revision), so that is its template: written back.
        assert model_of(mdep.get(custom, ns, NAME)).get("format") == "sklearn"
        upgraded.stop()

        # No stable template at all, and a new version in the spec meanwhile: held (never promoted
        # without a canary), reported as a condition and one Event; the operator goes on watching.
        write_status(custom, ns, {"stable": {"template": None}}, lambda obj: not model_of(obj))
        mdep.patch_spec(custom, ns, NAME, {"model": {"version": "v2"}})
        held_by = start("held")
        held = mdep.wait_condition(custom, ns, NAME, "Ready", "False", reason="InvalidStatus")
        assert "status.stable.template is missing" in mdep.condition(held, "Ready")["message"]
        assert mdep.condition(held, "Degraded")["status"] == "True"
        assert [e.type for e in mdep.wait_events(core, ns, NAME, "InvalidStatus")] == ["Warning"]
        labels = apps.read_namespaced_deployment(NAME, ns).spec.template.metadata.labels
        assert labels["modelpilot.io/version"] == "v1"
        # Back to the version the stable Deployment runs: serving, the template written back.
        mdep.patch_spec(custom, ns, NAME, {"model": {"version": "v1"}})
        wait_serving(custom, apps, ns, replicas=3)
        assert model_of(mdep.get(custom, ns, NAME))["version"] == "v1"
        for operator in (first, downgraded, upgraded, held_by):
            no_failed_reconcile(operator, ns)
    finally:
        for operator in operators:
            operator.stop()
