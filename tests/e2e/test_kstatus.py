"""kstatus (Go's sigs.k8s.io/cli-utils, what Flux, kpt and Helm's --wait compute) on live
ModelDeployments: Current when Ready, InProgress during a canary or a rollout, Failed once rolled
back, for a spec the operator cannot act on, and for a rollout stuck past its deadline."""

from __future__ import annotations

from typing import Any

import pytest
from kubernetes import client

from modelpilot.api.models import GROUP, PLURAL, VERSION
from tests.e2e import mdep
from tests.e2e.canary import Env, start_v1
from tests.e2e.harness import kstatus
from tests.e2e.support import wait_for


def wait_verdict(read: Any, status: str, what: str, timeout: float = 120) -> kstatus.Verdict:
    """The status write that moves kstatus follows the state a test waits on: wait for the verdict."""
    return wait_for(lambda: (v := kstatus.of(read())).status == status and v, timeout=timeout, interval=1,
                    what=f"kstatus {status} ({what})")


def test_kstatus_follows_a_canary_rolled_back_then_promoted(env: Env) -> None:
    start_v1(env)
    assert kstatus.of(env.get()).status == "Current"

    env.set_version("v2", env.model("failing", error_ratio=0.5))
    env.wait_canary(lambda c: c.get("state") == "Progressing", "canary v2 started")
    wait_verdict(env.get, "InProgress", "canary v2 under analysis")
    env.wait_canary(lambda c: c.get("state") == "RolledBack", "rollback")
    failed = wait_verdict(env.get, "Failed", "canary v2 rolled back")
    assert "error-rate" in failed.message, failed
    stalled = mdep.condition(env.get(), "Stalled")
    assert stalled and stalled["reason"] == "RolledBack", stalled
    assert mdep.condition(env.get(), "Reconciling") is None

    env.set_version("v3", env.model("good2"))
    wait_verdict(env.get, "InProgress", "canary v3")
    env.wait_stable("v3")
    wait_verdict(env.get, "Current", "v3 promoted")
    assert mdep.condition(env.get(), "Stalled") is None and mdep.condition(env.get(), "Reconciling") is None


@pytest.mark.usefixtures("operator")
def test_kstatus_fails_an_invalid_spec_and_a_rollout_stuck_past_its_deadline(
        custom: client.CustomObjectsApi, namespace: str) -> None:
    # What CEL cannot check (PromQL syntax): Stalled, InvalidSpec.
    mdep.create(custom, namespace, mdep.simple("badq", rollout={"canary": {"analysis": {"metrics": [
        {"name": "custom-x", "query": "sum(rate(x{a=\"b\"[1m]))", "max": 1}]}}}))
    # No node offers the accelerator: in progress until the Deployment's progress deadline, then Failed.
    mdep.create(custom, namespace, mdep.simple(
        "h100", accelerator={"vendor": "nvidia", "count": 1, "product": "NVIDIA-H100-80GB-HBM3"},
        rollout={"canary": {"progressDeadline": "30s"}}))

    def read(name: str) -> Any:
        return lambda: mdep.get(custom, namespace, name)

    invalid = wait_verdict(read("badq"), "Failed", "invalid spec")
    assert "PromQL" in invalid.message or "parse" in invalid.message, invalid
    assert mdep.condition(read("badq")(), "Stalled")["reason"] == "InvalidSpec"

    wait_verdict(read("h100"), "InProgress", "waiting for a GPU node")
    stuck = wait_verdict(read("h100"), "Failed", "past the progress deadline", timeout=150)
    assert "nvidia.com/gpu" in stuck.message, stuck
    assert mdep.condition(read("h100")(), "Stalled")["reason"] == "InsufficientAccelerator"


def test_an_object_without_status_is_current_for_kstatus(custom: client.CustomObjectsApi, namespace: str) -> None:
    """Why docs/gitops.md gives Flux a healthCheckExprs: kstatus calls an object the operator has not
    reconciled yet Current. The object is the API server's own answer to a dry-run create."""
    created = custom.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, mdep.simple("fresh"),
                                                     dry_run="All")
    assert "status" not in created
    assert kstatus.of(dict(created)).status == "Current"
