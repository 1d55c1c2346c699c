"""`kubectl modelpilot` against the local cluster: the real console script (and the same through
`kubectl modelpilot`, found on PATH as a plugin), with this worker's operator consuming the actions.

Also `kubectl wait --for=condition=Ready mdep/NAME`, and the Argo CD health Lua run on live objects
in the states the tests reach.
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
from pathlib import Path
from typing import IO, Any

import pytest
import yaml
from kubernetes import client

from modelpilot.api.models import GROUP, PLURAL, SHORT_NAMES, SINGULAR, VERSION
from modelpilot.cli.kube import RESOURCE
from modelpilot.resources.labels import ANNOTATION_ACTION
from tests import argocd_lua
from tests.e2e import mdep
from tests.e2e.operator import OperatorProcess
from tests.e2e.plugin_cli import PLUGIN, fails, ok, run
from tests.e2e.support import ClusterHandle, wait_for


@pytest.fixture(scope="module", autouse=True)
def _installed() -> None:
    if not PLUGIN.exists():
        pytest.fail(f"{PLUGIN} is missing: pip install -e '.[dev,server]' installs the console script")


def table(text: str) -> list[dict[str, str]]:
    lines = [line for line in text.splitlines() if line.strip()]
    header = lines[0].split()
    return [dict(zip(header, line.split(), strict=False)) for line in lines[1:]]


def annotation(custom: client.CustomObjectsApi, namespace: str, name: str) -> str | None:
    obj = mdep.get(custom, namespace, name) or {}
    return (obj.get("metadata", {}).get("annotations") or {}).get(ANNOTATION_ACTION)


def canary(custom: client.CustomObjectsApi, namespace: str, name: str) -> dict[str, Any]:
    return dict(((mdep.get(custom, namespace, name) or {}).get("status") or {}).get("canary") or {})


def reasons(core: client.CoreV1Api, namespace: str, name: str) -> list[str]:
    items = core.list_namespaced_event(namespace, field_selector=f"involvedObject.name={name}").items
    items.sort(key=lambda e: (e.first_timestamp, int(e.metadata.resource_version)))
    return [e.reason for e in items]


def kubeconfig_with(cluster: ClusterHandle, path: Path, *, namespace: str | None = None,
                    token: str | None = None, server: str | None = None) -> Path:
    """A copy of the cluster's kubeconfig with another default namespace, user token or server."""
    data = yaml.safe_load(cluster.kubeconfig.read_text())
    current = data["current-context"]
    for ctx in data["contexts"]:
        if ctx["name"] == current and namespace:
            ctx["context"]["namespace"] = namespace
    if token:
        data["users"] = [{"name": u["name"], "user": {"token": token}} for u in data["users"]]
    if server:
        data["clusters"] = [{"name": c["name"], "cluster": {"server": server, "insecure-skip-tls-verify": True}}
                            for c in data["clusters"]]
    path.write_text(yaml.safe_dump(data))
    return path


def canary_spec(name: str, **analysis: Any) -> dict[str, Any]:
    return mdep.simple(name, "v1", rollout={"strategy": "Canary", "canary": {
        "steps": [20, 50], "interval": "5s", "initialDelay": "5s", "progressDeadline": "10m",
        "analysis": {"minRequests": 1, **analysis}}})


# ------------------------------------------------------------------------------------ healthy object


def test_list_status_history_and_kubectl_wait(cluster: ClusterHandle, custom: client.CustomObjectsApi,
                                              namespace: str, operator: OperatorProcess, tmp_path: Path) -> None:
    mdep.create(custom, namespace, mdep.simple("alpha", "v1"))
    waited = cluster.kubectl("wait", "--for=condition=Ready", f"{SHORT_NAMES[0]}/alpha", "-n", namespace,
                             "--timeout=90s", check=False, timeout=120)
    if waited.returncode != 0:
        status = (mdep.get(custom, namespace, "alpha") or {}).get("status")
        tail = "\n".join(operator.logs().splitlines()[-40:])
        pytest.fail(f"{waited.stderr}status: {status}\noperator log tail:\n{tail}")
    assert "condition met" in waited.stdout
    live = mdep.wait_condition(custom, namespace, "alpha", "Ready", "True")
    assert argocd_lua.health(live)["status"] == "Healthy"

    rows = table(ok(run(cluster, "list", "-n", namespace)))
    assert [r["NAME"] for r in rows] == ["alpha"]
    assert rows[0]["MODEL"] == "v1" and rows[0]["STABLE"] == "v1" and rows[0]["PHASE"] == "Ready"
    assert rows[0]["CANARY"] == rows[0]["STEP"] == rows[0]["WEIGHT"] == rows[0]["VERDICT"] == "-"
    # As a kubectl plugin, across namespaces.
    everywhere = table(ok(run(cluster, "list", "-A", via_kubectl=True)))
    assert {"NAMESPACE": namespace, "NAME": "alpha"}.items() <= next(
        r for r in everywhere if r["NAMESPACE"] == namespace).items()
    # The default namespace is the kubeconfig context's.
    scoped = kubeconfig_with(cluster, tmp_path / "scoped", namespace=namespace)
    assert [r["NAME"] for r in table(ok(run(cluster, "list", kubeconfig=scoped)))] == ["alpha"]

    status = ok(run(cluster, "status", "alpha", "-n", namespace))
    for text in (f"{namespace}/alpha", "phase Ready", "stable", "v1 (1/1 ready)", "stable 100% / canary 0%",
                 "conditions", "Available", "Complete", "AsExpected", "recent events",
                 f"url: http://alpha.{namespace}.svc.cluster.local"):
        assert text in status, (text, status)
    assert "\x1b[" not in status  # plain when not a terminal
    history = ok(run(cluster, "history", "alpha", via_kubectl=True, kubeconfig=scoped))
    assert "EVENTS" in history and "Available" in history and "version v1 serving" in history

    assert fails(run(cluster, "promote", "alpha", "-n", namespace)) == \
        f"error: cannot promote {SINGULAR} {namespace}/alpha: no canary in progress (--force sends it anyway)"
    assert fails(run(cluster, "status", "nope", "-n", namespace)) == \
        f"error: {SINGULAR} {namespace}/nope not found"
    assert fails(run(cluster, "history", "nope", "-n", namespace, via_kubectl=True)) == \
        f"error: {SINGULAR} {namespace}/nope not found"


# ------------------------------------------------------------------------------------ exact patches


def test_actions_send_exactly_what_the_operator_reads(cluster: ClusterHandle, custom: client.CustomObjectsApi,
                                                      solo_namespace: str) -> None:
    """No operator watches this namespace, so what the plugin wrote stays to be looked at."""
    ns, name = solo_namespace, "gamma"
    mdep.create(custom, ns, mdep.simple(name, "v2"))

    def set_canary(**fields: Any) -> None:
        state = {"state": "Progressing", "version": "v2", "revision": "r2", "weight": 20, "step": 0, **fields}
        custom.patch_namespaced_custom_object_status(GROUP, VERSION, ns, PLURAL, name,
                                                     {"status": {"observedGeneration": 1, "canary": state}})

    set_canary()
    for action in ("promote", "abort", "retry"):
        assert action in ok(run(cluster, action, name, "-n", ns))
        assert annotation(custom, ns, name) == action
    ok(run(cluster, "pause", name, "-n", ns))
    obj = mdep.get(custom, ns, name) or {}
    assert obj["spec"]["paused"] is True
    assert "kubectl-modelpilot" in {entry["manager"] for entry in obj["metadata"]["managedFields"]}
    custom.patch_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, name,
                                          {"metadata": {"annotations": {ANNOTATION_ACTION: None}}})
    set_canary(state="Paused", pausedBy="spec")
    assert "resumed (spec.paused=false)" in ok(run(cluster, "resume", name, "-n", ns))
    assert (mdep.get(custom, ns, name) or {})["spec"]["paused"] is False
    assert annotation(custom, ns, name) is None  # a spec pause ends with spec.paused
    set_canary(state="Paused", pausedBy="provider-error")
    assert "resume action set" in ok(run(cluster, "resume", name, "-n", ns, via_kubectl=True))
    assert annotation(custom, ns, name) == "resume"  # a policy pause needs the action too
    set_canary(state="Promoting")
    assert "canary v2 is Promoting" in fails(run(cluster, "abort", name, "-n", ns))
    assert "abort" in ok(run(cluster, "abort", name, "-n", ns, "--force"))
    assert annotation(custom, ns, name) == "abort"


# ------------------------------------------------------------------------------------ a live rollout


def _default_sigint() -> None:
    """In the child: Ctrl-C as in a terminal. A test run started as a background job inherits an
    ignored SIGINT, and Python then never raises KeyboardInterrupt."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


class Watcher:
    """`status --watch` with stdout a pipe: plain lines, read on a thread."""

    def __init__(self, cluster: ClusterHandle, namespace: str, name: str) -> None:
        env = dict(os.environ, KUBECONFIG=str(cluster.kubeconfig), COLUMNS="220")
        self.process = subprocess.Popen([str(PLUGIN), "status", name, "-n", namespace, "--watch", "--interval", "1"],
                                        env=env, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                        preexec_fn=_default_sigint)
        self.lines: list[str] = []
        self.errors: list[str] = []
        # Both pipes are drained: a full stderr pipe (urllib3's retry warnings on a loaded machine)
        # would block the plugin, and then its exit on Ctrl-C.
        self.thread = threading.Thread(target=self._read, args=(self.process.stdout, self.lines), daemon=True)
        self.thread.start()
        threading.Thread(target=self._read, args=(self.process.stderr, self.errors), daemon=True).start()

    @staticmethod
    def _read(stream: IO[str] | None, into: list[str]) -> None:
        assert stream is not None
        for line in stream:
            into.append(line.rstrip("\n"))

    def saw(self, text: str, timeout: float = 30) -> str:
        return wait_for(lambda: next((line for line in self.lines if text in line), None), timeout=timeout,
                        interval=0.2, what=f"a watch line with {text!r}; lines: {self.lines[-5:]}")

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
        try:
            code = self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            raise AssertionError(f"the plugin did not stop on Ctrl-C; stderr: {self.errors[-20:]}") from None
        self.thread.join(timeout=5)
        return code


def test_rollout_steered_with_the_plugin(cluster: ClusterHandle, custom: client.CustomObjectsApi,
                                         core: client.CoreV1Api, namespace: str, operator: OperatorProcess) -> None:
    """Prometheus is unreachable for the shared operator: every analysis is a provider error, and
    with onProviderError: Pause the canary stops for an action after the second one."""
    ns, name = namespace, "beta"
    mdep.create(custom, ns, canary_spec(name, onProviderError="Pause", maxProviderErrors=2))
    mdep.wait_condition(custom, ns, name, "Ready", "True")
    # v2 with spec.paused: the canary starts and holds at once.
    mdep.patch_spec(custom, ns, name, {"model": {"version": "v2", "uri": f"file:///models/{name}-v2"},
                                       "paused": True})
    wait_for(lambda: canary(custom, ns, name).get("pausedBy") == "spec", timeout=60, what="canary paused by spec")
    watcher = Watcher(cluster, ns, name)
    try:
        watcher.saw("state=Paused")
        rows = table(ok(run(cluster, "list", "-n", ns)))
        assert rows[0]["CANARY"] == "v2" and rows[0]["STATE"] == "Paused" and rows[0]["STEP"] in ("0/2", "1/2")
        live = mdep.get(custom, ns, name) or {}
        assert argocd_lua.health(live)["status"] == "Suspended"
        assert argocd_lua.discover(live) == {"promote": True, "abort": True, "retry": True, "pause": False,
                                             "resume": True}
        assert "spec.paused is already true" in fails(run(cluster, "pause", name, "-n", ns))

        # resume a spec pause: spec.paused=false; then the first analysis errs and a policy pauses it.
        ok(run(cluster, "resume", name, "-n", ns))
        assert (mdep.get(custom, ns, name) or {})["spec"]["paused"] is False
        watcher.saw("state=Progressing")
        wait_for(lambda: canary(custom, ns, name).get("pausedBy") == "provider-error", timeout=60,
                 what="a provider-error pause")
        status = ok(run(cluster, "status", name, "-n", ns))
        for text in ("canary", "v2  state Paused", "stable 80% / canary 20%", "last analysis", "Error",
                     "Paused", "AnalysisError"):
            assert text in status, (text, status)
        # resume a policy pause: the resume action too, consumed by the operator.
        assert "resume action set" in ok(run(cluster, "resume", name, "-n", ns, via_kubectl=True))
        wait_for(lambda: annotation(custom, ns, name) is None, timeout=30, what="resume consumed")
        wait_for(lambda: reasons(core, ns, name).count("Resumed") >= 2, timeout=30, what="two Resumed events")

        # Prometheus is still unreachable, so the policy may have paused the canary again before
        # this line runs (it did on a loaded machine): --force sets spec.paused in either state.
        ok(run(cluster, "pause", name, "-n", ns, "--force"))
        assert (mdep.get(custom, ns, name) or {})["spec"]["paused"] is True
        wait_for(lambda: canary(custom, ns, name).get("state") == "Paused", timeout=30, what="paused again")

        ok(run(cluster, "abort", name, "-n", ns))
        wait_for(lambda: canary(custom, ns, name).get("reason") == "Aborted", timeout=30, what="aborted")
        wait_for(lambda: annotation(custom, ns, name) is None, timeout=30, what="abort consumed")
        rolled = mdep.get(custom, ns, name) or {}
        assert argocd_lua.health(rolled)["status"] == "Degraded"
        assert table(ok(run(cluster, "list", "-n", ns)))[0]["STATE"] == "RolledBack"
        watcher.saw("state=RolledBack")
        watcher.saw("event Warning RolledBack")

        ok(run(cluster, "retry", name, "-n", ns))
        wait_for(lambda: "CanaryRetried" in reasons(core, ns, name), timeout=30, what="retried")
        wait_for(lambda: annotation(custom, ns, name) is None, timeout=30, what="retry consumed")
        wait_for(lambda: canary(custom, ns, name).get("state") == "Paused", timeout=30, what="retried, held by spec")

        ok(run(cluster, "promote", name, "-n", ns))
        wait_for(lambda: annotation(custom, ns, name) is None, timeout=30, what="promote consumed")
        promoted = mdep.wait_condition(custom, ns, name, "Ready", "True", timeout=90)
        assert promoted["status"]["stable"]["version"] == "v2" and not promoted["status"].get("canary")
        watcher.saw("stable=v2")
        ok(run(cluster, "resume", name, "-n", ns))  # spec.paused back to false, for the next version
        assert (mdep.get(custom, ns, name) or {})["spec"]["paused"] is False
    finally:
        code = watcher.stop()
    assert code == 0, watcher.process.stderr.read() if watcher.process.stderr else ""

    wait_for(lambda: "Promoted" in reasons(core, ns, name), timeout=30, what="the Promoted event")
    history = ok(run(cluster, "history", name, "-n", ns))
    order = ["CanaryStarted", "Paused", "Resumed", "AnalysisError", "RolledBack", "CanaryRetried", "Promoting",
             "Promoted"]
    positions = [history.find(f" {reason} ") for reason in order]
    assert all(p >= 0 for p in positions) and positions == sorted(positions), list(zip(order, positions,
                                                                                          strict=True))
    assert "aborted by a manual action" in history and "promoted by a manual action" in history


# ------------------------------------------------------------------------------------ errors


def test_no_cluster_is_a_readable_line(cluster: ClusterHandle, tmp_path: Path) -> None:
    dead = kubeconfig_with(cluster, tmp_path / "dead", server="https://127.0.0.1:1")
    for via_kubectl in (False, True):
        message = fails(run(cluster, "list", kubeconfig=dead, via_kubectl=via_kubectl))
        assert message.startswith("error: cannot reach the cluster at https://127.0.0.1:1") and \
            message.endswith("connection refused"), message
    message = fails(run(cluster, "status", "x", kubeconfig=tmp_path / "none", env={"HOME": str(tmp_path)}))
    assert message.startswith("error: no cluster configured: no kubeconfig at") and "KUBECONFIG" in message


def test_no_permission_names_the_verb_and_resource(cluster: ClusterHandle, core: client.CoreV1Api,
                                                   api_client: client.ApiClient, custom: client.CustomObjectsApi,
                                                   solo_namespace: str, tmp_path: Path) -> None:
    ns = solo_namespace
    mdep.create(custom, ns, mdep.simple("delta", "v1"))
    core.create_namespaced_service_account(ns, client.V1ServiceAccount(metadata=client.V1ObjectMeta(name="viewer")))
    rbac = client.RbacAuthorizationV1Api(api_client)
    rbac.create_namespaced_role(ns, client.V1Role(metadata=client.V1ObjectMeta(name="viewer"), rules=[
        client.V1PolicyRule(api_groups=[GROUP], resources=[PLURAL], verbs=["get", "list"]),
        client.V1PolicyRule(api_groups=[""], resources=["events"], verbs=["list"])]))
    rbac.create_namespaced_role_binding(ns, client.V1RoleBinding(
        metadata=client.V1ObjectMeta(name="viewer"),
        role_ref=client.V1RoleRef(api_group="rbac.authorization.k8s.io", kind="Role", name="viewer"),
        subjects=[client.RbacV1Subject(kind="ServiceAccount", name="viewer", namespace=ns)]))
    token = core.create_namespaced_service_account_token("viewer", ns, client.AuthenticationV1TokenRequest(
        spec=client.V1TokenRequestSpec(audiences=[], expiration_seconds=600))).status.token
    viewer = kubeconfig_with(cluster, tmp_path / "viewer", namespace=ns, token=token)

    wait_for(lambda: run(cluster, "list", kubeconfig=viewer).returncode == 0, timeout=20,
             what="the Role to take effect")
    assert "delta" in ok(run(cluster, "status", "delta", kubeconfig=viewer))
    message = fails(run(cluster, "pause", "delta", kubeconfig=viewer))
    assert message.startswith(f"error: not allowed to patch {RESOURCE} in namespace {ns} "), message
    assert f'system:serviceaccount:{ns}:viewer' in message
    message = fails(run(cluster, "list", "-A", kubeconfig=viewer, via_kubectl=True))
    assert message.startswith(f"error: not allowed to list {RESOURCE} in any namespace"), message
