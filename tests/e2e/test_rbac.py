"""The chart's RBAC proven, not assumed: the operator runs authenticated as the chart's
ServiceAccount (a token from the TokenRequest API), with the chart's own settings, and the reconcile
behaviour works with no 403 anywhere; requests outside its rules are denied.

Each test installs the chart with `helm install` in fresh namespaces and runs its own operator
process watching only those (never the shared per-worker operator's namespaces), so tests and
test sessions run concurrently on one cluster."""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from modelpilot.api.batch import BATCH_PLURAL
from modelpilot.api.models import API_VERSION, GROUP, PLURAL, SHORT_NAMES, VERSION
from modelpilot.resources.labels import ANNOTATION_ACTION, LABEL_NAME
from modelpilot.settings import DEFAULT_NOTIFICATIONS_SECRET
from tests.e2e import mdep
from tests.e2e.conftest import make_namespace
from tests.e2e.helm import CHART, Helm, container_env, one, service_account_kubeconfig, set_args, unique
from tests.e2e.operator import OperatorProcess
from tests.e2e.support import ClusterHandle, wait_for

pytestmark = pytest.mark.usefixtures("crd")

MDEP = f"{PLURAL}.{GROUP}"  # ModelDeployments as kubectl names them (resource.group)
# Set by OperatorProcess itself (MODELPILOT_METRICS_PORT=0 so parallel operators don't share a port).
OWN_ENV = {"MODELPILOT_RESYNC_SECONDS", "MODELPILOT_METRICS_PORT", "MODELPILOT_NAMESPACES"}
# A permission error in the operator's log: urllib3's request line (the official client, verbose
# mode), Kopf's APIForbiddenError and RBAC's "... is forbidden", Kopf's fallback warnings, and the
# operator's own "could not post event ...: 403".
FORBIDDEN = re.compile(r'HTTP/1\.1" 403 |forbidden|not enough permissions|: 403$', re.IGNORECASE | re.MULTILINE)


@dataclass
class Install:
    """A release of the chart and the operator running as its ServiceAccount."""

    release: str
    namespace: str  # the release namespace (ServiceAccount, Deployment)
    service_account: str
    kubeconfig: Path  # authenticates as the ServiceAccount
    operator: OperatorProcess
    audit_offset: int

    @property
    def username(self) -> str:
        return f"system:serviceaccount:{self.namespace}:{self.service_account}"

    def api(self) -> client.ApiClient:
        return config.new_client_from_config(config_file=str(self.kubeconfig))


@pytest.fixture
def solo_namespaces(core: client.CoreV1Api, worker_id_prefix: str,
                    request: pytest.FixtureRequest) -> Iterator[dict[str, str]]:
    """release / watched / other: namespaces no shared operator watches."""
    names = {role: make_namespace(core, f"solo-{worker_id_prefix}", f"{role}-{request.node.name}")
             for role in ("release", "watched", "other")}
    yield names
    for name in names.values():
        core.delete_namespace(name, propagation_policy="Background")


def install_and_run(cluster: ClusterHandle, core: client.CoreV1Api, tmp_path: Path, release_namespace: str,
                    values: dict[str, Any]) -> Iterator[Install]:
    """helm install, then the operator as the chart's ServiceAccount with the chart's settings."""
    helm = Helm(cluster, tmp_path / "helm")
    release = unique("rbac")
    helm.run("install", release, str(CHART), "--namespace", release_namespace,
             *set_args({"operator.resyncSeconds": 5, **values}))
    try:
        deployment = one(helm.manifest(release, release_namespace), "Deployment")
        pod = deployment["spec"]["template"]["spec"]
        service_account = pod["serviceAccountName"]
        env = container_env(deployment)
        kubeconfig = service_account_kubeconfig(core, cluster.kubeconfig, release_namespace, service_account,
                                                tmp_path / "sa.kubeconfig")
        offset = cluster.audit_log.stat().st_size if cluster.audit_log else 0
        operator = OperatorProcess(
            kubeconfig=kubeconfig,
            namespaces=[n for n in env["MODELPILOT_NAMESPACES"].split(",") if n],
            log_path=tmp_path / "operator.log",
            extra_env={k: v for k, v in env.items() if k not in OWN_ENV},
        )
        assert operator.namespaces, "these tests never run a cluster-wide operator (other tests share the cluster)"
        operator.start()
        try:
            yield Install(release, release_namespace, service_account, kubeconfig, operator, offset)
        finally:
            operator.stop()
    finally:
        helm.run("uninstall", release, "--namespace", release_namespace, check=False)


def operator_writes(cluster: ClusterHandle, install: Install) -> list[dict[str, Any]]:
    """Write requests the ServiceAccount sent, from the API server's audit log (writes only)."""
    if cluster.audit_log is None:
        return []
    with cluster.audit_log.open("rb") as log:
        log.seek(install.audit_offset)
        lines = log.read().decode(errors="replace").splitlines()
    found = []
    for line in lines:
        try:
            event = json.loads(line)
        except json.JSONDecodeError:  # a line being written right now
            continue
        if event.get("user", {}).get("username") != install.username:
            continue
        ref = event.get("objectRef") or {}
        found.append({"verb": event["verb"], "resource": ref.get("resource"), "sub": ref.get("subresource"),
                      "namespace": ref.get("namespace"), "code": event.get("responseStatus", {}).get("code"),
                      "decision": event.get("annotations", {}).get("authorization.k8s.io/decision")})
    return found


def can_i(cluster: ClusterHandle, kubeconfig: Path, *args: str) -> bool:
    """`kubectl auth can-i` as the ServiceAccount (a SelfSubjectAccessReview)."""
    result = subprocess.run([cluster.kubectl_binary, "--kubeconfig", str(kubeconfig), "auth", "can-i", *args],
                            text=True, capture_output=True, timeout=30)
    assert result.stdout.strip() in ("yes", "no"), result.stdout + result.stderr
    return result.stdout.strip() == "yes"


def assert_denied(call: Any, *args: Any, **kwargs: Any) -> None:
    with pytest.raises(ApiException) as denied:
        call(*args, **kwargs)
    assert denied.value.status == 403, denied.value


def assert_no_forbidden_in_log(install: Install) -> None:
    lines = [line for line in install.operator.logs().splitlines() if FORBIDDEN.search(line)]
    assert not lines, "the operator hit a permission error:\n" + "\n".join(lines[:20])


# --------------------------------------------------------------------------------------------------


@pytest.fixture
def namespaced(cluster: ClusterHandle, core: client.CoreV1Api, tmp_path: Path,
               solo_namespaces: dict[str, str]) -> Iterator[Install]:
    yield from install_and_run(cluster, core, tmp_path, solo_namespaces["release"],
                               {"watchNamespaces": [solo_namespaces["watched"]]})


def batch_runs_under_the_rules(custom: client.CustomObjectsApi, jobs: client.BatchV1Api, watched: str) -> None:
    """BatchPredictions: a run's Job, a schedule's CronJob (deleted when the schedule goes), status.
    No bridge here: KWOK completes the Job's pods by itself."""
    batch = {"apiVersion": API_VERSION, "kind": "BatchPrediction", "metadata": {"name": "score"},
             "spec": {"model": {"version": "v1", "uri": "s3://models/iris", "format": "sklearn"},
                      "input": {"uri": "s3://data/in/", "format": "parquet"}, "output": {"uri": "s3://data/out/"},
                      "parallelism": 1}}
    custom.create_namespaced_custom_object(GROUP, VERSION, watched, BATCH_PLURAL, batch)
    nightly = {**batch, "metadata": {"name": "nightly"}, "spec": {**batch["spec"], "schedule": "0 2 * * *"}}
    custom.create_namespaced_custom_object(GROUP, VERSION, watched, BATCH_PLURAL, nightly)
    wait_for(lambda: (custom.get_namespaced_custom_object(GROUP, VERSION, watched, BATCH_PLURAL, "score")
                      .get("status") or {}).get("phase") == "Succeeded", timeout=60, what="the run succeeded")
    wait_for(lambda: jobs.list_namespaced_cron_job(watched).items, timeout=30, what="the CronJob")
    custom.patch_namespaced_custom_object(GROUP, VERSION, watched, BATCH_PLURAL, "nightly",
                                          {"spec": {"schedule": None}})
    wait_for(lambda: not jobs.list_namespaced_cron_job(watched).items, timeout=30, what="the CronJob deleted")


def test_namespaced_mode_reconciles_as_the_chart_service_account(
        cluster: ClusterHandle, namespaced: Install, solo_namespaces: dict[str, str],
        custom: client.CustomObjectsApi, apps: client.AppsV1Api, core: client.CoreV1Api) -> None:
    watched, other = solo_namespaces["watched"], solo_namespaces["other"]
    autoscaling = client.AutoscalingV2Api(apps.api_client)
    assert namespaced.operator.namespaces == [watched]

    # Storage credentials: a Secret the serving pods reference by secretKeyRef; the operator never reads it.
    core.create_namespaced_secret(watched, client.V1Secret(metadata=client.V1ObjectMeta(name="s3"),
                                                           string_data={"AWS_ACCESS_KEY_ID": "k",
                                                                        "AWS_SECRET_ACCESS_KEY": "s"}))
    iris = mdep.example("sklearn-cpu")
    iris["spec"]["model"]["storageSecretRef"] = {"name": "s3"}
    mdep.create(custom, watched, iris)
    mdep.create(custom, watched, mdep.example("autoscaled"))
    mdep.create(custom, other, mdep.simple("ignored"))

    # Ready with every child, through `kubectl wait` as users do.
    short = SHORT_NAMES[0]
    cluster.kubectl("wait", "--for=condition=Ready", "--timeout=120s", f"{short}/iris", f"{short}/churn", "-n", watched,
                    timeout=150)
    ready = mdep.wait_condition(custom, watched, "iris", "Ready", "True", timeout=120)
    assert ready["status"]["phase"] == "Ready" and ready["status"]["stable"]["readyReplicas"] >= 1
    assert {d.metadata.name for d in apps.list_namespaced_deployment(watched).items} == {"iris", "churn"}
    assert {s.metadata.name for s in core.list_namespaced_service(watched).items} >= {
        "iris", "iris-stable", "iris-canary", "churn", "churn-stable", "churn-canary"}
    assert autoscaling.read_namespaced_horizontal_pod_autoscaler("churn", watched).spec.max_replicas == 6
    pod = apps.read_namespaced_deployment("iris", watched).spec.template.spec
    refs = {e.value_from.secret_key_ref.name for c in [*(pod.init_containers or []), *pod.containers]
            for e in c.env or [] if e.value_from and e.value_from.secret_key_ref}
    assert refs == {"s3"}, "credentials reach the pods by secretKeyRef"
    events = core.list_namespaced_event(watched, field_selector="involvedObject.name=iris").items
    assert any(e.source.component == "modelpilot" for e in events), "the operator posts Events"

    # Drift is reverted; a deleted child comes back.
    image = apps.read_namespaced_deployment("iris", watched).spec.template.spec.containers[0].image
    apps.patch_namespaced_deployment("iris", watched, {"spec": {"template": {"spec": {
        "containers": [{"name": "server", "image": "evil:latest"}]}}}})
    core.delete_namespaced_service("iris-stable", watched)
    wait_for(lambda: apps.read_namespaced_deployment("iris", watched).spec.template.spec.containers[0].image == image,
             timeout=30, what="image reverted")
    wait_for(lambda: core.list_namespaced_service(watched, field_selector="metadata.name=iris-stable").items,
             timeout=30, what="Service iris-stable recreated")

    # Autoscaling removed: the operator deletes the HPA it owns.
    mdep.patch_spec(custom, watched, "churn", {"autoscaling": None, "replicas": 1})
    wait_for(lambda: not autoscaling.list_namespaced_horizontal_pod_autoscaler(watched).items, timeout=30,
             what="HPA deleted")

    # A manual action annotation is consumed (a patch of the ModelDeployment itself).
    custom.patch_namespaced_custom_object(GROUP, VERSION, watched, PLURAL, "iris",
                                          {"metadata": {"annotations": {ANNOTATION_ACTION: "retry"}}})
    wait_for(lambda: ANNOTATION_ACTION not in ((mdep.get(custom, watched, "iris") or {})["metadata"]
                                                    .get("annotations") or {}), timeout=30, what="action consumed")

    batch_runs_under_the_rules(custom, client.BatchV1Api(apps.api_client), watched)

    # The namespace it was not given: never reconciled.
    ignored = mdep.get(custom, other, "ignored")
    assert ignored is not None and not ignored.get("status"), ignored
    assert not apps.list_namespaced_deployment(other).items

    # Deletion: the children go with the ModelDeployment (ownerReferences set by the operator).
    custom.delete_namespaced_custom_object(GROUP, VERSION, watched, PLURAL, "iris")
    wait_for(lambda: not apps.list_namespaced_deployment(watched, label_selector=f"{LABEL_NAME}=iris").items,
             timeout=60, what="children of iris garbage-collected")

    # Sufficient: no permission error anywhere, and every write the operator sent was allowed.
    assert_no_forbidden_in_log(namespaced)
    if cluster.audit_log is not None:
        # The scenario can end before the first renewal of the Lease (every 2 s): wait for one.
        wait_for(lambda: any(w["verb"] == "update" and w["resource"] == "leases"
                             for w in operator_writes(cluster, namespaced)), timeout=30, what="a Lease renewal")
    writes = operator_writes(cluster, namespaced)
    if cluster.audit_log is not None:
        assert writes, "the audit log shows the ServiceAccount's writes"
        assert [w for w in writes if w["code"] == 403 or w["decision"] != "allow"] == []
        done = {(w["verb"], w["resource"], w["sub"]) for w in writes}
        assert {("patch", "deployments", None), ("patch", "services", None),
                ("patch", "horizontalpodautoscalers", None), ("delete", "horizontalpodautoscalers", None),
                ("patch", PLURAL, "status"), ("patch", PLURAL, None),
                ("create", "events", None), ("create", "leases", None), ("update", "leases", None),
                ("patch", "jobs", None), ("patch", "cronjobs", None), ("delete", "cronjobs", None),
                ("patch", BATCH_PLURAL, "status")} <= done, done
        # The Lease of leader election lives in the release namespace; everything else where it serves.
        assert {w["namespace"] for w in writes if w["resource"] != "leases"} == {watched}
        assert {w["namespace"] for w in writes if w["resource"] == "leases"} == {namespaced.namespace}


def test_namespaced_mode_is_denied_outside_its_rules(cluster: ClusterHandle, namespaced: Install,
                                                     solo_namespaces: dict[str, str]) -> None:
    watched, other, home = solo_namespaces["watched"], solo_namespaces["other"], solo_namespaces["release"]
    api = namespaced.api()
    custom, core = client.CustomObjectsApi(api), client.CoreV1Api(api)
    # The token from the TokenRequest API really is the chart's ServiceAccount.
    review = client.AuthenticationV1Api(api).create_self_subject_review(client.V1SelfSubjectReview())
    assert review.status.user_info.username == namespaced.username

    # What it needs, it has ...
    custom.list_namespaced_custom_object(GROUP, VERSION, watched, PLURAL)
    # ... the notifications Secret by name (not found is an answer, not a denial) ...
    with pytest.raises(ApiException) as missing:
        core.read_namespaced_secret(DEFAULT_NOTIFICATIONS_SECRET, watched)
    assert missing.value.status == 404, missing.value
    # ... and nothing outside the namespaces it was given, nor any other Secret.
    assert_denied(custom.list_namespaced_custom_object, GROUP, VERSION, other, PLURAL)
    assert_denied(custom.list_cluster_custom_object, GROUP, VERSION, PLURAL)
    assert_denied(core.list_namespaced_secret, watched)
    assert_denied(core.read_namespaced_secret, "anything", other)
    assert_denied(core.read_namespaced_secret, "s3", watched)
    assert_denied(core.read_namespaced_secret, DEFAULT_NOTIFICATIONS_SECRET, other)
    assert_denied(core.list_namespaced_pod, other)
    core.list_node()  # target Edge reads the fleet: Nodes are listed and watched, never read by name or written
    assert_denied(core.read_node, "edge-00")
    assert_denied(core.patch_node, "edge-00", {"metadata": {"labels": {"x": "y"}}})

    kc = namespaced.kubeconfig
    allowed = [
        ("list", MDEP, "-n", watched),
        ("watch", MDEP, "-n", watched),
        ("patch", MDEP, "--subresource=status", "-n", watched),
        ("update", MDEP, "--subresource=finalizers", "-n", watched),
        ("create", "deployments.apps", "-n", watched),
        ("delete", "services", "-n", watched),
        ("patch", "horizontalpodautoscalers.autoscaling", "-n", watched),
        ("patch", "httproutes.gateway.networking.k8s.io", "-n", watched),
        ("patch", "backendtrafficpolicies.gateway.envoyproxy.io", "-n", watched),
        ("watch", "backendtrafficpolicies.gateway.envoyproxy.io", "-n", watched),
        ("watch", "pods", "-n", watched),
        # Target Edge: stable pods of an older revision are replaced (their DaemonSets use OnDelete).
        ("delete", "pods", "-n", watched),
        ("patch", "daemonsets.apps", "-n", watched),
        ("create", "events", "-n", watched),
        # spec.notifications: the one Secret holding the webhook URLs, by name.
        ("get", f"secrets/{DEFAULT_NOTIFICATIONS_SECRET}", "-n", watched),
        ("watch", "customresourcedefinitions.apiextensions.k8s.io"),
        ("list", "namespaces"),
        # Target Edge: the fleet is chosen from the Nodes (read only, cluster-wide).
        ("list", "nodes"),
        ("watch", "nodes"),
        # Leader election: its own Lease in the release namespace, and no other.
        ("create", "leases.coordination.k8s.io", "-n", home),
        ("update", f"leases.coordination.k8s.io/{namespaced.release}-modelpilot", "-n", home),
    ]
    denied = [
        ("list", MDEP, "-n", other),
        ("list", MDEP, "--all-namespaces"),
        ("update", MDEP, "-n", watched),  # only patch (the action annotation)
        ("delete", MDEP, "-n", watched),
        ("create", "deployments.apps", "-n", other),
        ("create", "deployments.apps", "-n", home),
        ("get", "secrets", "-n", watched),
        ("get", "secrets/s3", "-n", watched),
        ("get", f"secrets/{DEFAULT_NOTIFICATIONS_SECRET}", "-n", other),
        ("list", "secrets", "-n", watched),
        ("watch", "secrets", "-n", watched),
        ("update", f"secrets/{DEFAULT_NOTIFICATIONS_SECRET}", "-n", watched),
        ("list", "secrets", "-n", home),
        ("update", "deployments.apps", "-n", watched),
        ("create", "pods", "-n", watched),
        ("delete", "pods", "-n", other),
        ("list", "events", "-n", watched),
        ("create", "leases.coordination.k8s.io", "-n", watched),
        ("update", "leases.coordination.k8s.io/kube-scheduler", "-n", home),
        ("delete", f"leases.coordination.k8s.io/{namespaced.release}-modelpilot", "-n", home),
        ("get", "customresourcedefinitions.apiextensions.k8s.io"),
        ("create", "customresourcedefinitions.apiextensions.k8s.io"),
        ("get", "namespaces"),
        ("get", "nodes"),
        ("patch", "nodes"),
        ("create", "clusterrolebindings.rbac.authorization.k8s.io"),
        ("create", "serviceaccounts", "--subresource=token", "-n", home),
        ("impersonate", "serviceaccounts", "-n", home),
        ("*", "*", "--all-namespaces"),
    ]
    assert [a for a in allowed if not can_i(cluster, kc, *a)] == []
    assert [d for d in denied if can_i(cluster, kc, *d)] == []


# --------------------------------------------------------------------------------------------------


@pytest.fixture
def clusterwide(cluster: ClusterHandle, core: client.CoreV1Api, tmp_path: Path,
                solo_namespaces: dict[str, str]) -> Iterator[Install]:
    """Cluster-wide RBAC (ClusterRole + ClusterRoleBinding); the operator itself limited by a
    namespace pattern, because a truly cluster-wide operator would act on other tests' objects."""
    yield from install_and_run(cluster, core, tmp_path, solo_namespaces["release"],
                               {"namespacePatterns": [solo_namespaces["watched"]]})


def test_cluster_wide_rbac_reconciles_as_the_chart_service_account(
        cluster: ClusterHandle, clusterwide: Install, solo_namespaces: dict[str, str],
        custom: client.CustomObjectsApi, apps: client.AppsV1Api) -> None:
    watched, other = solo_namespaces["watched"], solo_namespaces["other"]
    mdep.create(custom, watched, mdep.simple("cw", replicas=2, autoscaling={"minReplicas": 1, "maxReplicas": 2}))
    mdep.wait_condition(custom, watched, "cw", "Ready", "True", timeout=120)
    apps.patch_namespaced_deployment("cw", watched, {"spec": {"template": {"spec": {
        "containers": [{"name": "server", "image": "evil:latest"}]}}}})
    wait_for(lambda: apps.read_namespaced_deployment("cw", watched).spec.template.spec.containers[0].image
             != "evil:latest", timeout=30, what="image reverted")
    assert_no_forbidden_in_log(clusterwide)
    writes = operator_writes(cluster, clusterwide)
    assert [w for w in writes if w["code"] == 403 or w["decision"] != "allow"] == []

    # Cluster-wide: every namespace for the operator's own kinds (what Kopf's cluster-wide watches
    # need) - of Secrets only the notifications one by name; no Nodes, no RBAC, no writes to what it
    # does not own.
    kc = clusterwide.kubeconfig
    for verb in ("list", "watch"):
        for resource in (MDEP, "deployments.apps", "services",
                         "horizontalpodautoscalers.autoscaling", "httproutes.gateway.networking.k8s.io",
                         "backendtrafficpolicies.gateway.envoyproxy.io", "pods"):
            assert can_i(cluster, kc, verb, resource, "--all-namespaces"), (verb, resource)
    assert can_i(cluster, kc, "patch", "deployments.apps", "-n", other)
    assert can_i(cluster, kc, "list", "namespaces"), "namespacePatterns: Kopf matches namespaces"
    assert can_i(cluster, kc, "get", f"secrets/{DEFAULT_NOTIFICATIONS_SECRET}", "-n", other)
    for denied in [("get", "secrets", "--all-namespaces"), ("list", "secrets", "-n", other), ("patch", "nodes"),
                   ("get", "secrets/s3", "-n", other), ("watch", "secrets", "--all-namespaces"),
                   ("update", "deployments.apps", "-n", other), ("delete", MDEP, "-n", other),
                   ("create", "roles.rbac.authorization.k8s.io", "-n", other), ("*", "*", "--all-namespaces")]:
        assert not can_i(cluster, kc, *denied), denied
    assert_denied(client.CoreV1Api(clusterwide.api()).list_secret_for_all_namespaces)


def test_default_mode_has_no_namespace_access(cluster: ClusterHandle, core: client.CoreV1Api, tmp_path: Path,
                                              solo_namespaces: dict[str, str]) -> None:
    """The default (every namespace) needs no Namespace access: Kopf watches cluster-wide then."""
    helm = Helm(cluster, tmp_path / "helm")
    release, home = unique("rbac"), solo_namespaces["release"]
    helm.run("install", release, str(CHART), "--namespace", home)
    try:
        sa = one(helm.manifest(release, home), "ServiceAccount")["metadata"]["name"]
        kc = service_account_kubeconfig(core, cluster.kubeconfig, home, sa, tmp_path / "sa.kubeconfig")
        assert can_i(cluster, kc, "watch", MDEP, "--all-namespaces")
        assert can_i(cluster, kc, "list", "customresourcedefinitions.apiextensions.k8s.io")
        assert not can_i(cluster, kc, "list", "namespaces")
        assert not can_i(cluster, kc, "get", "secrets", "-n", home)
    finally:
        helm.run("uninstall", release, "--namespace", home, check=False)
