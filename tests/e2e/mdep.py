"""Helpers for ModelDeployment objects in e2e tests."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from modelpilot.api.models import API_VERSION, GROUP, KIND, PLURAL, VERSION
from tests.e2e.support import wait_for

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def example(name: str) -> dict[str, Any]:
    return dict(yaml.safe_load((EXAMPLES / f"{name}.yaml").read_text()))


def simple(name: str, version: str = "v1", replicas: int = 1, **spec: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "apiVersion": API_VERSION, "kind": KIND, "metadata": {"name": name},
        "spec": {"model": {"version": version, "uri": f"file:///models/{name}", "format": "sklearn"},
                 "replicas": replicas},
    }
    body["spec"].update(copy.deepcopy(spec))
    return body


def create(custom: client.CustomObjectsApi, namespace: str, body: dict[str, Any]) -> dict[str, Any]:
    return dict(custom.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, body))


def get(custom: client.CustomObjectsApi, namespace: str, name: str) -> dict[str, Any] | None:
    try:
        return dict(custom.get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name))
    except ApiException as err:
        if err.status == 404:
            return None
        raise


def patch_spec(custom: client.CustomObjectsApi, namespace: str, name: str, spec: dict[str, Any]) -> None:
    custom.patch_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name, {"spec": spec})


def condition(obj: dict[str, Any] | None, kind: str) -> dict[str, Any] | None:
    for cond in ((obj or {}).get("status") or {}).get("conditions") or []:
        if cond.get("type") == kind:
            return dict(cond)
    return None


def wait_condition(custom: client.CustomObjectsApi, namespace: str, name: str, kind: str = "Ready",
                   status: str = "True", reason: str | None = None, timeout: float = 90) -> dict[str, Any]:
    def probe() -> dict[str, Any] | None:
        obj = get(custom, namespace, name)
        cond = condition(obj, kind)
        if cond and cond["status"] == status and (reason is None or cond["reason"] == reason):
            gen = obj["metadata"]["generation"] if obj else None
            if obj and obj.get("status", {}).get("observedGeneration") == gen:
                return obj
        return None

    def describe() -> str:
        obj = get(custom, namespace, name)
        return str((obj or {}).get("status"))

    try:
        return wait_for(probe, timeout=timeout, what=f"{namespace}/{name} {kind}={status} reason={reason}")
    except AssertionError as err:
        raise AssertionError(f"{err}\nstatus now: {describe()}") from None


def wait_events(core: client.CoreV1Api, namespace: str, name: str, reason: str,
                timeout: float = 30) -> list[client.CoreV1Event]:
    """The object's Events with this reason, once there is one: the operator posts Events after the
    status write they follow, so a test that saw the status must wait for them, not race them."""
    def probe() -> list[client.CoreV1Event] | None:
        items = core.list_namespaced_event(namespace, field_selector=f"involvedObject.name={name}").items
        return [e for e in items if e.reason == reason] or None
    return wait_for(probe, timeout=timeout, what=f"a {reason} event on {namespace}/{name}")
