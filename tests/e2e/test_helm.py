"""The Helm chart (charts/modelpilot) with the real helm binary against the real API server: lint,
rendered manifests accepted by the API server, the values schema, install / upgrade / uninstall.

The operator pod never runs here (there is no image, and KWOK runs no container): the tests assert
the objects. test_rbac.py runs the operator as the chart's ServiceAccount."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from modelpilot.api.crd import CRD_NAME, KINDS
from modelpilot.resources.labels import LABEL_MANAGED_BY, MANAGED_BY
from modelpilot.settings import DEFAULT_NOTIFICATIONS_SECRET
from tests.e2e.conftest import make_namespace
from tests.e2e.helm import CHART, Helm, container_env, find, one, set_args, unique
from tests.e2e.support import ClusterHandle, wait_for

RESTRICTED = {"pod-security.kubernetes.io/enforce": "restricted",
              "pod-security.kubernetes.io/enforce-version": "latest",
              "pod-security.kubernetes.io/warn": "restricted",
              "pod-security.kubernetes.io/warn-version": "latest"}


@pytest.fixture
def helm(cluster: ClusterHandle, tmp_path: Path) -> Helm:
    return Helm(cluster, tmp_path / "helm")


@pytest.fixture
def extra_namespaces(core: client.CoreV1Api, worker_id_prefix: str,
                     request: pytest.FixtureRequest) -> Iterator[list[str]]:
    """Two more fresh namespaces (watched namespaces of the namespaced mode)."""
    names = [make_namespace(core, f"solo-{worker_id_prefix}", f"{request.node.name}-{i}") for i in (1, 2)]
    yield names
    for name in names:
        core.delete_namespace(name, propagation_policy="Background")


def rules_of(doc: dict[str, Any]) -> list[dict[str, Any]]:
    return list(doc.get("rules") or [])


def assert_least_privilege(docs: list[dict[str, Any]]) -> None:
    for doc in find(docs, "ClusterRole") + find(docs, "Role"):
        for rule in rules_of(doc):
            for field in ("apiGroups", "resources", "verbs"):
                assert "*" not in rule.get(field, []), (doc["metadata"]["name"], rule)
            if "secrets" in rule["resources"]:  # the webhook URLs of spec.notifications: one name, get only
                assert rule == {"apiGroups": [""], "resources": ["secrets"],
                                "resourceNames": [DEFAULT_NOTIFICATIONS_SECRET], "verbs": ["get"]}, rule
            assert not {"escalate", "bind", "impersonate"} & set(rule["verbs"]), rule


def leader_election(doc: dict[str, Any]) -> bool:
    return str(doc["metadata"]["name"]).endswith("-leader-election")


def activator_grants(doc: dict[str, Any]) -> bool:
    return str(doc["metadata"]["name"]).endswith("-activator-grants")


def serving_roles(docs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    """Roles (or RoleBindings) of the watched namespaces: all but leader election's and the
    activator grants' own (both in the release namespace)."""
    return [d for d in find(docs, kind) if not leader_election(d) and not activator_grants(d)]


def assert_restricted_pod(deployment: dict[str, Any], operator: bool = True) -> None:
    # Two replicas, one acting (leader election); a rolling update is safe with a Lease.
    assert deployment["spec"]["replicas"] == 2
    assert deployment["spec"]["strategy"] == {"type": "RollingUpdate",
                                              "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}}
    if operator:
        assert container_env(deployment)["MODELPILOT_LEADER_ELECTION"] == "true"
    pod = deployment["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    (container,) = pod["containers"]
    sc = container["securityContext"]
    assert sc["allowPrivilegeEscalation"] is False
    assert sc["readOnlyRootFilesystem"] is True
    assert sc["capabilities"] == {"drop": ["ALL"]}
    assert {"name": "tmp", "mountPath": "/tmp"} in container["volumeMounts"]
    assert container["resources"]["requests"] and container["resources"]["limits"]
    if not operator:  # the activator: probes on its metrics port
        assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "metrics"}
        return
    assert {"name": "tmp", "emptyDir": {"sizeLimit": "64Mi"}} in pod["volumes"]
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "health"}
    assert "--liveness=http://0.0.0.0:8080/healthz" in container["args"]


# ------------------------------------------------------------------------------------- lint, schema


@pytest.mark.parametrize("values", [{}, {"watchNamespaces": ["team-a", "team-b"]},
                                    {"namespacePatterns": ["team-*", "!team-x"]},
                                    {"podMonitor.enabled": True, "metrics.serviceMonitor.enabled": True}],
                         ids=["default", "namespaced", "patterns", "monitors"])
def test_helm_lint_passes(helm: Helm, values: dict[str, Any]) -> None:
    result = helm.run("lint", "--strict", str(CHART), *set_args(values))
    assert "0 chart(s) failed" in result.stdout, result.stdout


@pytest.mark.parametrize(("values", "message"), [
    ({"operator.prometheusURL": "http://x"}, "at '/operator': additional properties 'prometheusURL' not allowed"),
    ({"replicaCount": 2}, "additional properties 'replicaCount' not allowed"),
    ({"metrics.serviceMonitor.selector": {}}, "at '/metrics/serviceMonitor': additional properties 'selector'"),
    ({"operator.workers": "many"}, "at '/operator/workers': got string, want integer"),
    ({"operator.logFormat": "xml"}, "at '/operator/logFormat'"),
    ({"watchNamespaces": "team-a"}, "at '/watchNamespaces': got string, want array"),
    ({"watchNamespaces": ["Team_A"]}, "at '/watchNamespaces/0': 'Team_A' does not match pattern"),
    ({"rbac.create": "yes"}, "at '/rbac/create': got string, want boolean"),
    ({"replicas": 0}, "at '/replicas'"),
    ({"leaderElection.leaseSeconds": 1}, "at '/leaderElection/leaseSeconds'"),
], ids=["unknown-key", "unknown-top-level-key", "unknown-nested-key", "wrong-type", "bad-enum",
        "string-not-list", "bad-namespace", "string-not-bool", "no-replicas", "lease-too-short"])
def test_schema_rejects_bad_values(helm: Helm, tmp_path: Path, values: dict[str, Any], message: str) -> None:
    for command in (["template", "r"], ["lint"]):
        result = helm.run(*command, str(CHART), *set_args(values), check=False)
        output = result.stdout + result.stderr
        assert result.returncode != 0, output
        assert "values don't meet the specifications of the schema" in output, output
        assert message in output, output
    # The same from a values file, as users pass them.
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump(_nested(values)))
    result = helm.run("template", "r", str(CHART), "-f", str(tmp_path / "bad.yaml"), check=False)
    assert result.returncode != 0 and message in result.stderr, result.stderr


def _nested(flat: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in flat.items():
        *parents, leaf = key.split(".")
        node = out
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return out


def test_several_replicas_need_leader_election(helm: Helm) -> None:
    result = helm.run("template", "r", str(CHART), *set_args({"leaderElection.enabled": False}), check=False)
    assert result.returncode != 0 and "replicas > 1 needs leaderElection.enabled" in result.stderr, result.stderr
    single = helm.run("template", "r", str(CHART), *set_args({"leaderElection.enabled": False, "replicas": 1}))
    docs = [d for d in yaml.safe_load_all(single.stdout) if d]
    deployment = one(docs, "Deployment")
    assert deployment["spec"]["replicas"] == 1 and deployment["spec"]["strategy"] == {"type": "Recreate"}
    assert container_env(deployment)["MODELPILOT_LEADER_ELECTION"] == "false"
    assert not [d for d in docs if d["kind"] == "Role" and d["metadata"]["name"].endswith("-leader-election")]


def test_namespaced_mode_and_patterns_cannot_be_combined(helm: Helm) -> None:
    result = helm.run("template", "r", str(CHART), *set_args({"watchNamespaces": ["a"],
                                                              "namespacePatterns": ["b-*"]}), check=False)
    assert result.returncode != 0
    assert "watchNamespaces (namespaced mode) and namespacePatterns (cluster-wide mode) cannot be combined" \
        in result.stderr


# ------------------------------------------------------------------- rendered manifests vs the server


def test_default_values_render_cluster_wide_mode_accepted_by_the_api_server(
        cluster: ClusterHandle, helm: Helm, core: client.CoreV1Api, namespace: str) -> None:
    core.patch_namespace(namespace, {"metadata": {"labels": RESTRICTED}})
    release = unique("tpl")
    docs = helm.template(release, namespace, "--include-crds")
    kinds = sorted(d["kind"] for d in docs)
    assert kinds == ["ClusterRole", "ClusterRole", "ClusterRoleBinding", "ClusterRoleBinding",
                     *["CustomResourceDefinition"] * len(KINDS), "Deployment", "Deployment", "Role", "Role",
                     "RoleBinding", "RoleBinding", "Service", "Service", "ServiceAccount"]
    assert not serving_roles(docs, "Role") and not serving_roles(docs, "RoleBinding")
    # The two Roles, in the release namespace: leader election's on Leases only, and the activator
    # grants' on ReferenceGrants only.
    (lease_role,) = [d for d in find(docs, "Role") if leader_election(d)]
    assert lease_role["metadata"]["namespace"] == namespace
    assert {res for r in rules_of(lease_role) for res in r["resources"]} == {"leases"}
    (grants_role,) = [d for d in find(docs, "Role") if activator_grants(d)]
    assert grants_role["metadata"]["namespace"] == namespace
    assert {res for r in rules_of(grants_role) for res in r["resources"]} == {"referencegrants"}
    assert_restricted_pod(one(docs, "Deployment", of="activator"), operator=False)
    # Cluster-scoped names carry the release name and namespace: two installs never collide.
    for doc in find(docs, "ClusterRole") + find(docs, "ClusterRoleBinding"):
        assert release in doc["metadata"]["name"] and namespace in doc["metadata"]["name"]
    assert_least_privilege(docs)
    cluster_scope = next(d for d in find(docs, "ClusterRole") if d["metadata"]["name"].endswith("-cluster-scope"))
    assert [r["resources"] for r in rules_of(cluster_scope)] == [["customresourcedefinitions"], ["nodes"]], \
        "cluster-wide mode watches every namespace: Kopf needs no Namespace access"
    deployment = one(docs, "Deployment")
    assert_restricted_pod(deployment)
    env = container_env(deployment)
    assert env["MODELPILOT_NAMESPACES"] == ""
    assert env["MODELPILOT_PROMETHEUS_URL"] == "http://prometheus.monitoring.svc:9090"
    assert env["MODELPILOT_METRICS_PORT"] == "8090"
    assert deployment["spec"]["template"]["spec"]["containers"][0]["image"] == "ghcr.io/modelpilot/operator:0.1.0"

    crds = {d["metadata"]["name"]: d for d in docs if d.get("kind") == "CustomResourceDefinition"}
    assert crds == {kind.crd_name: yaml.safe_load((CHART.parents[1] / "crds" / kind.filename).read_text())
                    for kind in KINDS}

    result = cluster.kubectl("apply", "--dry-run=server", "-f", "-",
                             input=yaml.safe_dump_all(docs), check=False)
    assert result.returncode == 0, result.stderr
    assert "violate PodSecurity" not in result.stderr, result.stderr
    for doc in docs:
        assert f"{kubectl_name(doc)} " in result.stdout, result.stdout


def kubectl_name(doc: dict[str, Any]) -> str:
    """How kubectl names an object in its output: kind.group/name (kind/name for the core group)."""
    api_version, kind = doc["apiVersion"], doc["kind"].lower()
    group = f".{api_version.split('/')[0]}" if "/" in api_version else ""
    return f"{kind}{group}/{doc['metadata']['name']}"


def test_namespaced_mode_renders_roles_accepted_by_the_api_server(
        cluster: ClusterHandle, helm: Helm, core: client.CoreV1Api, namespace: str,
        extra_namespaces: list[str]) -> None:
    core.patch_namespace(namespace, {"metadata": {"labels": RESTRICTED}})
    release = unique("tpl")
    docs = helm.template(release, namespace, *set_args({"watchNamespaces": extra_namespaces}))
    roles, bindings = serving_roles(docs, "Role"), serving_roles(docs, "RoleBinding")
    assert sorted(r["metadata"]["namespace"] for r in roles) == sorted(extra_namespaces)
    assert sorted(b["metadata"]["namespace"] for b in bindings) == sorted(extra_namespaces)
    for binding in bindings:
        assert binding["subjects"] == [{"kind": "ServiceAccount", "name": f"{release}-modelpilot",
                                        "namespace": namespace}]
    for role in roles:  # each watched namespace: its notifications Secret, by name
        assert {"apiGroups": [""], "resources": ["secrets"], "resourceNames": [DEFAULT_NOTIFICATIONS_SECRET],
                "verbs": ["get"]} in rules_of(role)
    # Only what cannot be namespaced stays cluster-wide: CRDs, Nodes (target Edge) and Namespaces,
    # read only.
    (cluster_role,) = find(docs, "ClusterRole")
    assert [(r["resources"], r["verbs"]) for r in rules_of(cluster_role)] == [
        (["customresourcedefinitions"], ["list", "watch"]), (["nodes"], ["list", "watch"]),
        (["namespaces"], ["list", "watch"])]
    (cluster_binding,) = find(docs, "ClusterRoleBinding")
    assert cluster_binding["roleRef"]["name"] == cluster_role["metadata"]["name"]
    assert_least_privilege(docs)
    assert_restricted_pod(one(docs, "Deployment"))
    assert container_env(one(docs, "Deployment"))["MODELPILOT_NAMESPACES"] == ",".join(extra_namespaces)

    result = cluster.kubectl("apply", "--dry-run=server", "-f", "-",
                             input=yaml.safe_dump_all(docs), check=False)
    assert result.returncode == 0, result.stderr
    assert "violate PodSecurity" not in result.stderr, result.stderr
    role = f"role.rbac.authorization.k8s.io/{release}-modelpilot-{namespace} created (server dry run)"
    assert result.stdout.count(role) == len(extra_namespaces), result.stdout


def test_namespace_patterns_keep_cluster_rbac_and_add_namespace_watch(helm: Helm) -> None:
    docs = helm.template("pat", "ops", *set_args({"namespacePatterns": ["team-*", "!team-x"]}))
    assert not serving_roles(docs, "Role")
    cluster_scope = next(d for d in find(docs, "ClusterRole") if d["metadata"]["name"].endswith("-cluster-scope"))
    assert [r["resources"] for r in rules_of(cluster_scope)] == [["customresourcedefinitions"], ["nodes"],
                                                                 ["namespaces"]]
    assert container_env(one(docs, "Deployment"))["MODELPILOT_NAMESPACES"] == "team-*,!team-x"


def test_monitors_render_only_when_prometheus_operator_api_exists(helm: Helm) -> None:
    enabled = set_args({"podMonitor.enabled": True, "metrics.serviceMonitor.enabled": True,
                        "podMonitor.labels": {"release": "kps"}})
    without = helm.template("mon", "ops", *enabled)
    assert not find(without, "PodMonitor") and not find(without, "ServiceMonitor")
    notes = helm.run("install", "mon", str(CHART), "-n", "ops", "--dry-run=client", *enabled).stdout
    assert "does not serve\nmonitoring.coreos.com/v1" in notes

    docs = helm.template("mon", "ops", "--api-versions", "monitoring.coreos.com/v1", *enabled)
    pod_monitor = one(docs, "PodMonitor")
    assert pod_monitor["metadata"]["labels"]["release"] == "kps"
    assert pod_monitor["spec"]["selector"] == {"matchLabels": {LABEL_MANAGED_BY: MANAGED_BY}}
    assert pod_monitor["spec"]["namespaceSelector"] == {"any": True}
    # namespace and pod labels come from prometheus-operator's default target labels: no relabelling
    # that could drop them, and the interval is the operator's scrape interval (the query window).
    assert pod_monitor["spec"]["podMetricsEndpoints"] == [{"port": "http", "path": "/metrics", "interval": "15s"}]
    service_monitor = one(docs, "ServiceMonitor")
    assert service_monitor["spec"]["endpoints"] == [{"port": "metrics", "path": "/metrics", "interval": "30s"}]
    service = one(docs, "Service")
    assert service_monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    assert service["spec"]["ports"][0]["targetPort"] == "metrics"

    scoped = helm.template("mon", "ops", "--api-versions", "monitoring.coreos.com/v1", *enabled,
                           *set_args({"watchNamespaces": ["a", "b"], "operator.scrapeInterval": 7.5}))
    pod_monitor = one(scoped, "PodMonitor")
    assert pod_monitor["spec"]["namespaceSelector"] == {"matchNames": ["a", "b"]}
    assert pod_monitor["spec"]["podMetricsEndpoints"][0]["interval"] == "7500ms"
    assert container_env(one(scoped, "Deployment"))["MODELPILOT_SCRAPE_INTERVAL"] == "7.5"


def test_metrics_port_zero_turns_off_metrics_objects(helm: Helm) -> None:
    docs = helm.template("nom", "ops", *set_args({"metrics.port": 0, "metrics.serviceMonitor.enabled": True}),
                         "--api-versions", "monitoring.coreos.com/v1")
    assert not find(docs, "Service") and not find(docs, "ServiceMonitor")
    deployment = one(docs, "Deployment")
    assert container_env(deployment)["MODELPILOT_METRICS_PORT"] == "0"
    assert [p["name"] for p in deployment["spec"]["template"]["spec"]["containers"][0]["ports"]] == ["health"]


# --------------------------------------------------------------------------- install, upgrade, uninstall


def release_objects(cluster: ClusterHandle, release: str, namespace: str) -> list[str]:
    """Every object of the release that is still there (namespaced ones in `namespace`, and the
    cluster-scoped RBAC), found by the chart's instance label."""
    selector = f"app.kubernetes.io/instance={release},app.kubernetes.io/managed-by=Helm"
    kinds = "deployments,replicasets,pods,services,serviceaccounts,roles,rolebindings,configmaps,secrets"
    found = cluster.kubectl("get", kinds, "-n", namespace, "-l", selector, "-o", "name").stdout.split()
    found += cluster.kubectl("get", "clusterroles,clusterrolebindings", "-l", selector, "-o", "name").stdout.split()
    # Helm's own record of the release (Secrets sh.helm.release.v1.<release>.v<N>).
    found += cluster.kubectl("get", "secrets", "-n", namespace, "-l", f"owner=helm,name={release}",
                             "-o", "name").stdout.split()
    return found


def test_install_upgrade_uninstall(cluster: ClusterHandle, helm: Helm, apps: client.AppsV1Api,
                                   core: client.CoreV1Api, api_client: client.ApiClient, namespace: str) -> None:
    core.patch_namespace(namespace, {"metadata": {"labels": RESTRICTED}})
    release = unique("mp")
    rbac = client.RbacAuthorizationV1Api(api_client)
    installed = helm.run("install", release, str(CHART), "--namespace", namespace)
    assert "STATUS: deployed" in installed.stdout
    assert "Mode: cluster-wide" in installed.stdout  # NOTES.txt
    # The operator pod is admitted where Pod Security "restricted" is enforced (KWOK runs no container).
    wait_for(lambda: len(core.list_namespaced_pod(
        namespace, label_selector=f"app.kubernetes.io/instance={release},app.kubernetes.io/component=operator")
                         .items) == 2, timeout=30, what="the two operator pods created")

    fullname = f"{release}-modelpilot"
    deployment = apps.read_namespaced_deployment(fullname, namespace)
    assert deployment.spec.replicas == 2 and deployment.spec.strategy.type == "RollingUpdate"
    assert deployment.spec.template.spec.service_account_name == fullname
    core.read_namespaced_service_account(fullname, namespace)
    core.read_namespaced_service(f"{fullname}-metrics", namespace)
    for name in (f"{fullname}-{namespace}", f"{fullname}-{namespace}-cluster-scope"):
        rbac.read_cluster_role(name)
        binding = rbac.read_cluster_role_binding(name)
        assert [(s.kind, s.name, s.namespace) for s in binding.subjects] == [("ServiceAccount", fullname, namespace)]
    crd = client.ApiextensionsV1Api(api_client).read_custom_resource_definition(CRD_NAME)
    assert crd.metadata.name == CRD_NAME

    env = {e.name: e.value for e in deployment.spec.template.spec.containers[0].env}
    assert env["MODELPILOT_PROMETHEUS_URL"] == "http://prometheus.monitoring.svc:9090"

    # Upgrade with changed values: the new settings reach the operator's environment.
    upgraded = helm.run("upgrade", release, str(CHART), "--namespace", namespace, *set_args({
        "operator.prometheusUrl": "http://thanos-query.monitoring.svc:9090",
        "operator.gpuProductLabel": "example.com/gpu-model",
        "operator.logFormat": "plain",
        "metrics.service.enabled": False}))
    assert "REVISION: 2" in upgraded.stdout
    deployment = apps.read_namespaced_deployment(fullname, namespace)
    container = deployment.spec.template.spec.containers[0]
    env = {e.name: e.value for e in container.env}
    assert env["MODELPILOT_PROMETHEUS_URL"] == "http://thanos-query.monitoring.svc:9090"
    assert env["MODELPILOT_GPU_PRODUCT_LABEL"] == "example.com/gpu-model"
    assert "--log-format=plain" in container.args
    with pytest.raises(ApiException) as gone:
        core.read_namespaced_service(f"{fullname}-metrics", namespace)
    assert gone.value.status == 404
    values = json.loads(helm.run("get", "values", release, "-n", namespace, "-o", "json").stdout)
    assert values["operator"]["prometheusUrl"] == "http://thanos-query.monitoring.svc:9090"

    # An upgrade with a bad value is refused before anything changes.
    refused = helm.run("upgrade", release, str(CHART), "--namespace", namespace,
                       *set_args({"operator.workers": 0}), check=False)
    assert refused.returncode != 0 and "at '/operator/workers'" in refused.stderr
    assert apps.read_namespaced_deployment(fullname, namespace).metadata.generation == deployment.metadata.generation

    # Uninstall: nothing of the chart is left except the CRD (crds/ semantics: kept on purpose).
    assert release_objects(cluster, release, namespace)
    helm.run("uninstall", release, "--namespace", namespace, "--wait", "--timeout", "60s")
    assert release_objects(cluster, release, namespace) == []
    for name in (f"{fullname}-{namespace}", f"{fullname}-{namespace}-cluster-scope"):
        with pytest.raises(ApiException) as missing:
            rbac.read_cluster_role(name)
        assert missing.value.status == 404
    assert client.ApiextensionsV1Api(api_client).read_custom_resource_definition(CRD_NAME).metadata.name == CRD_NAME


def test_same_release_name_in_two_namespaces_does_not_collide(cluster: ClusterHandle, helm: Helm,
                                                              namespace: str, extra_namespaces: list[str]) -> None:
    release = unique("twin")
    first, second = namespace, extra_namespaces[0]
    try:
        helm.run("install", release, str(CHART), "--namespace", first)
        helm.run("install", release, str(CHART), "--namespace", second,
                 *set_args({"watchNamespaces": [extra_namespaces[1]]}))
        assert release_objects(cluster, release, first) and release_objects(cluster, release, second)
    finally:
        helm.run("uninstall", release, "--namespace", first, check=False)
        helm.run("uninstall", release, "--namespace", second, check=False)
    assert release_objects(cluster, release, first) == [] and release_objects(cluster, release, second) == []
