"""The Helm chart's files against the code, without a cluster: the files themselves, and what
`helm template` renders with the pinned helm binary (tests/e2e/test_helm.py installs the chart)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

import modelpilot
from hack import helm_values_table
from modelpilot.activator import settings as activator_settings
from modelpilot.api.crd import CRD_FILENAME, render_crd
from modelpilot.cli.main import build_parser
from modelpilot.settings import OperatorSettings

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "modelpilot"


def test_chart_crd_is_the_generated_crd() -> None:
    assert (CHART / "crds" / CRD_FILENAME).read_text() == render_crd(), "run `make crds`"


def test_chart_versions_match_the_package() -> None:
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    assert chart["appVersion"] == modelpilot.__version__ == "0.1.0"


def test_values_documented_typed_and_table_current() -> None:
    """Every key has a comment above it and a schema entry, every schema object rejects unknown
    keys, and docs/helm.md's table is what the generator prints."""
    assert helm_values_table.main(["--check"]) == 0


def test_schema_rejects_unknown_keys_at_every_object_level() -> None:
    schema = json.loads((CHART / "values.schema.json").read_text())
    assert schema["$schema"] == "http://json-schema.org/draft-07/schema#"
    open_objects: list[str] = []

    def walk(node: dict[str, Any], path: str) -> None:
        if "properties" in node and node.get("additionalProperties") is not False:
            open_objects.append(path)
        for key, child in (node.get("properties") or {}).items():
            if key != "global":  # Helm's subchart-shared values: accepted, unused
                walk(child, f"{path}.{key}")
        if isinstance(node.get("items"), dict):
            walk(node["items"], f"{path}[]")

    walk(schema, "$")
    for name, definition in schema["definitions"].items():
        walk(definition, f"#/definitions/{name}")
    assert open_objects == []


def test_every_env_variable_of_the_deployment_is_an_operator_setting() -> None:
    template = (CHART / "templates" / "deployment.yaml").read_text()
    chart_env = set(re.findall(r"- name: MODELPILOT_([A-Z_]+)", template))
    settings = (ROOT / "operator" / "modelpilot" / "settings.py").read_text()
    known = set(re.findall(r'_(?:env|float|size)\("([A-Z_]+)"', settings))
    assert chart_env <= known, chart_env - known
    # Every setting the operator has is settable from the chart.
    assert known <= chart_env, known - chart_env


def test_every_rbac_rule_has_a_comment_and_no_wildcard() -> None:
    lines = (CHART / "templates" / "rbac.yaml").read_text().splitlines()
    rules = [i for i, line in enumerate(lines) if line.lstrip().startswith("- apiGroups:")]
    assert len(rules) >= 15
    for i in rules:
        assert lines[i - 1].lstrip().startswith("#"), f"rbac.yaml:{i + 1}: a rule without a comment"
    text = "\n".join(lines)
    assert '"*"' not in text and "'*'" not in text
    # Of Secrets, only `get` of one name (rendered in every mode: test_secrets_only_get_of_one_name).
    secrets = [line for line in lines if re.search(r"resources:.*secrets", line)]
    assert len(secrets) == 1, "one rule on Secrets"


def test_operator_dockerfile_shape() -> None:
    text = (ROOT / "docker" / "operator.Dockerfile").read_text()
    stages = re.findall(r"^FROM (\S+)", text, re.MULTILINE)
    assert len(stages) == 2 and stages[-1].startswith("python:3.11-slim")
    final = text.split("\nFROM ")[-1]
    assert re.search(r"^USER \d+:\d+$", final, re.MULTILINE), "numeric, non-root USER"
    assert 'ENTRYPOINT ["modelpilot", "operator"]' in final
    assert "COPY operator" not in final, "no source tree in the final image"
    assert "pip uninstall -y pip setuptools wheel" in final
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    uid = int(re.search(r"^USER (\d+):", final, re.MULTILINE).group(1))  # type: ignore[union-attr]
    assert values["securityContext"]["runAsUser"] == uid


# ---- `helm template`: the activator, the operator's scale-to-zero settings and their RBAC ----

RELEASE, NAMESPACE = "r", "ops"
ACTIVATOR = "r-modelpilot-activator"
RBAC_NAME = "r-modelpilot-ops"  # modelpilot.rbacName: fullname and release namespace
GRANT_ROLE = f"{RBAC_NAME}-activator-grants"
MONITORING = ("--api-versions", "monitoring.coreos.com/v1")
RESTRICTED_CONTAINER = {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True, "runAsNonRoot": True,
                        "capabilities": {"drop": ["ALL"]}, "seccompProfile": {"type": "RuntimeDefault"}}
Render = Callable[..., list[dict[str, Any]]]


def _helm_binary() -> str | None:
    """The pinned helm that `make binaries` builds (as tests/e2e uses), else one on PATH."""
    out = subprocess.run([str(ROOT / "hack" / "build-testbed.sh"), "path"], check=True, text=True,
                         stdout=subprocess.PIPE).stdout
    pinned = Path(out.strip().splitlines()[-1]) / "helm"
    return str(pinned) if pinned.exists() else shutil.which("helm")


@pytest.fixture(scope="module")
def helm(tmp_path_factory: pytest.TempPathFactory) -> Callable[..., subprocess.CompletedProcess[str]]:
    binary = _helm_binary()
    if binary is None:
        pytest.skip("no helm binary: `make binaries` builds the pinned one")
    home = tmp_path_factory.mktemp("helm")
    env = {"PATH": "/usr/bin:/bin", "HOME": str(home), "HELM_CONFIG_HOME": str(home / "config"),
           "HELM_CACHE_HOME": str(home / "cache"), "HELM_DATA_HOME": str(home / "data"),
           "KUBECONFIG": str(home / "no-kubeconfig")}

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([binary, *args], env=env, text=True, capture_output=True, timeout=120)

    return run


@pytest.fixture(scope="module")
def render(helm: Callable[..., subprocess.CompletedProcess[str]]) -> Render:
    """`helm template` with `--set-json` values (exact types), as parsed objects."""

    def template(values: dict[str, Any] | None = None, *args: str) -> list[dict[str, Any]]:
        result = helm("template", RELEASE, str(CHART), "--namespace", NAMESPACE, *_set_json(values or {}), *args)
        assert result.returncode == 0, result.stderr
        return [doc for doc in yaml.safe_load_all(result.stdout) if doc]

    return template


def _set_json(values: dict[str, Any]) -> list[str]:
    return [arg for key, value in values.items() for arg in ("--set-json", f"{key}={json.dumps(value)}")]


def _find(docs: list[dict[str, Any]], kind: str, name: str | None = None) -> list[dict[str, Any]]:
    return [d for d in docs if d["kind"] == kind and (name is None or d["metadata"]["name"] == name)]


def _one(docs: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    found = _find(docs, kind, name)
    assert len(found) == 1, f"expected one {kind} {name}, got {[d['metadata']['name'] for d in _find(docs, kind)]}"
    return found[0]


def _env(deployment: dict[str, Any]) -> dict[str, str]:
    return {e["name"]: e["value"] for e in deployment["spec"]["template"]["spec"]["containers"][0]["env"]}


def _selects(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return all(labels.get(key) == value for key, value in selector.items())


def _rules(docs: list[dict[str, Any]], group: str, resource: str) -> dict[tuple[str, str, str], list[list[str]]]:
    """(kind, namespace, name) of each Role and ClusterRole -> the verbs of its rules on `resource`."""
    found: dict[tuple[str, str, str], list[list[str]]] = {}
    for role in [*_find(docs, "Role"), *_find(docs, "ClusterRole")]:
        for rule in role["rules"]:
            if group in rule["apiGroups"] and resource in rule["resources"]:
                key = (role["kind"], role["metadata"].get("namespace", ""), role["metadata"]["name"])
                found.setdefault(key, []).append(sorted(rule["verbs"]))
    return found


def test_activator_runs_restricted_on_its_ports_without_a_token(render: Render) -> None:
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    docs = render()
    deployment = _one(docs, "Deployment", ACTIVATOR)
    operator = _one(docs, "Deployment", "r-modelpilot")
    pod = deployment["spec"]["template"]
    labels = pod["metadata"]["labels"]
    assert labels == {"app.kubernetes.io/name": "modelpilot", "app.kubernetes.io/instance": RELEASE,
                      "app.kubernetes.io/component": "activator"}
    assert deployment["metadata"]["labels"]["app.kubernetes.io/component"] == "activator"
    assert deployment["metadata"]["namespace"] == NAMESPACE
    assert deployment["spec"]["selector"]["matchLabels"] == labels
    assert deployment["spec"]["replicas"] == 2
    assert deployment["spec"]["strategy"]["rollingUpdate"] == {"maxSurge": 1, "maxUnavailable": 0}
    spec = pod["spec"]
    # No Kubernetes API access: no token, no ServiceAccount of the chart's.
    assert spec["automountServiceAccountToken"] is False
    assert "serviceAccountName" not in spec
    # Pod Security "restricted", as the operator; the runtime image's user.
    assert spec["securityContext"] == {"runAsNonRoot": True, "runAsUser": 1000, "runAsGroup": 1000,
                                       "seccompProfile": {"type": "RuntimeDefault"}}
    (container,) = spec["containers"]
    assert container["securityContext"] == RESTRICTED_CONTAINER
    assert operator["spec"]["template"]["spec"]["containers"][0]["securityContext"] == RESTRICTED_CONTAINER
    assert container["volumeMounts"] == [{"name": "tmp", "mountPath": "/tmp"}]
    assert container["image"] == values["operator"]["runtimeImage"]
    assert container["command"] == ["modelpilot"]
    assert {p["name"]: p["containerPort"] for p in container["ports"]} == {"http": 8012, "metrics": 9092}
    for probe in ("readinessProbe", "livenessProbe"):
        assert container[probe]["httpGet"] == {"path": "/healthz", "port": "metrics"}
    # The arguments are the activator's own flags, and give the ports above.
    settings = activator_settings.resolve(build_parser().parse_args(container["args"]), {})
    assert container["args"][0] == "activator"
    assert (settings.port, settings.metrics_port, settings.hold_timeout) == (8012, 9092, 300.0)
    assert settings.allowed == activator_settings.ActivatorSettings().allowed

    service = _one(docs, "Service", ACTIVATOR)
    assert service["metadata"]["namespace"] == NAMESPACE
    assert service["metadata"]["labels"]["app.kubernetes.io/component"] == "activator"
    assert service["spec"]["type"] == "ClusterIP"
    assert service["spec"]["selector"] == labels
    assert service["spec"]["ports"] == [{"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"}]
    # Neither component's Service selects the other's pods.
    operator_labels = operator["spec"]["template"]["metadata"]["labels"]
    assert not _selects(service["spec"]["selector"], operator_labels)
    assert not _selects(_one(docs, "Service", "r-modelpilot-metrics")["spec"]["selector"], labels)
    # The serving pods' PodMonitor selects the operator's own children, not the activator.
    assert labels.get("app.kubernetes.io/managed-by") != "modelpilot"


def test_activator_values_reach_its_flags(render: Render) -> None:
    docs = render({"operator.runtimeImage": "registry.example/runtime:7", "activator.replicas": 3,
                   "activator.port": 9000, "activator.metricsPort": 9001, "activator.holdTimeout": 900.5,
                   "activator.allowUpstream": ["100.64.0.0/10", "fd12::/16"],
                   "activator.securityContext": {"runAsUser": None, "runAsGroup": None}})
    deployment = _one(docs, "Deployment", ACTIVATOR)
    assert deployment["spec"]["replicas"] == 3
    spec = deployment["spec"]["template"]["spec"]
    assert spec["securityContext"] == {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}}
    (container,) = spec["containers"]
    assert container["image"] == "registry.example/runtime:7"
    settings = activator_settings.resolve(build_parser().parse_args(container["args"]), {})
    assert (settings.port, settings.metrics_port, settings.hold_timeout) == (9000, 9001, 900.5)
    assert [str(n) for n in settings.allowed] == ["100.64.0.0/10", "fd12::/16"]
    assert {p["name"]: p["containerPort"] for p in container["ports"]} == {"http": 9000, "metrics": 9001}
    # The Service keeps port 80 (the operator's MODELPILOT_ACTIVATOR_PORT) and follows the named port.
    assert _one(docs, "Service", ACTIVATOR)["spec"]["ports"][0]["port"] == 80

    image = render({"activator.image": "registry.example/activator@sha256:" + "a" * 64})
    container = _one(image, "Deployment", ACTIVATOR)["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == "registry.example/activator@sha256:" + "a" * 64


def test_activator_values_are_checked(helm: Callable[..., subprocess.CompletedProcess[str]]) -> None:
    for values, message in [({"activator.metricsPort": 8012}, "activator.port and activator.metricsPort must differ"),
                            ({"activator.holdTimeout": 0}, "at '/activator/holdTimeout'"),
                            ({"activator.allowUpstream": ["cluster"]}, "at '/activator/allowUpstream/0'"),
                            ({"activator.unknown": 1}, "additional properties 'unknown' not allowed")]:
        result = helm("template", RELEASE, str(CHART), *_set_json(values))
        assert result.returncode != 0 and message in result.stderr, (values, result.stderr)


def test_the_operator_is_told_the_activator_and_the_keda_timing(render: Render,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    for values, service in [({}, ACTIVATOR),
                            ({"fullnameOverride": "mp", "operator.kedaPollingSeconds": 2,
                              "operator.kedaCooldownSeconds": 60, "operator.scaleDownStabilizationSeconds": 120},
                             "mp-activator")]:
        docs = render(values)
        operator = next(d for d in _find(docs, "Deployment") if d["metadata"]["name"] != service)
        env = _env(operator)
        assert _one(docs, "Service", service)["spec"]["ports"][0]["port"] == int(env["MODELPILOT_ACTIVATOR_PORT"])
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        settings = OperatorSettings.from_env()
        assert (settings.activator_namespace, settings.activator_service, settings.activator_port) == (
            NAMESPACE, service, 80)
        assert (settings.keda_polling_seconds, settings.keda_cooldown_seconds,
                settings.scale_down_stabilization_seconds) == (
            values.get("operator.kedaPollingSeconds", 5), values.get("operator.kedaCooldownSeconds", 30),
            values.get("operator.scaleDownStabilizationSeconds", 300))


def test_secrets_only_get_of_one_name(render: Render, helm: Callable[..., subprocess.CompletedProcess[str]],
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """The notifications Secret: `get` on its name, wherever the namespaced rules are granted, and
    the operator told the same name; nothing else of Secrets anywhere."""
    for values, where in [({}, [("ClusterRole", "", RBAC_NAME)]),
                          ({"namespacePatterns": ["team-*"]}, [("ClusterRole", "", RBAC_NAME)]),
                          ({"watchNamespaces": ["ml-a", "ml-b"], "notifications.secretName": "hooks.team-a"},
                           [("Role", "ml-a", RBAC_NAME), ("Role", "ml-b", RBAC_NAME)])]:
        docs = render(values)
        name = values.get("notifications.secretName", "modelpilot-notifications")
        assert _rules(docs, "", "secrets") == {key: [["get"]] for key in where}, values
        for role in [*_find(docs, "Role"), *_find(docs, "ClusterRole")]:
            for rule in role["rules"]:
                if "secrets" in rule["resources"]:
                    assert rule == {"apiGroups": [""], "resources": ["secrets"], "resourceNames": [name],
                                    "verbs": ["get"]}
        env = _env(_one(docs, "Deployment", "r-modelpilot"))
        monkeypatch.setenv("MODELPILOT_NOTIFICATIONS_SECRET", env["MODELPILOT_NOTIFICATIONS_SECRET"])
        assert OperatorSettings.from_env().notifications_secret == name
    assert OperatorSettings().notifications_secret == "modelpilot-notifications"
    result = helm("template", RELEASE, str(CHART), *_set_json({"notifications.secretName": "Hooks_A"}))
    assert result.returncode != 0 and "at '/notifications/secretName'" in result.stderr, result.stderr


def test_scaledobject_rules_follow_the_hpa_rules_in_both_modes(render: Render) -> None:
    hpa_rules = [["list", "watch"], ["create", "delete", "patch"]]
    for values, where in [({}, [("ClusterRole", "", RBAC_NAME)]),
                          ({"namespacePatterns": ["team-*"]}, [("ClusterRole", "", RBAC_NAME)]),
                          ({"watchNamespaces": ["ml-a", "ml-b"]},
                           [("Role", "ml-a", RBAC_NAME), ("Role", "ml-b", RBAC_NAME)])]:
        docs = render(values)
        assert _rules(docs, "autoscaling", "horizontalpodautoscalers") == dict.fromkeys(where, hpa_rules)
        assert _rules(docs, "keda.sh", "scaledobjects") == dict.fromkeys(where, hpa_rules), values
        # Each list/watch and write rule on its own, and nothing else of KEDA's.
        for role in [*_find(docs, "Role"), *_find(docs, "ClusterRole")]:
            for rule in role["rules"]:
                if "keda.sh" in rule["apiGroups"]:
                    assert rule == {"apiGroups": ["keda.sh"], "resources": ["scaledobjects"],
                                    "verbs": rule["verbs"]}


def test_referencegrants_are_only_written_and_only_in_the_release_namespace(render: Render) -> None:
    for values in [{}, {"watchNamespaces": ["ml-a"]}, {"replicas": 1, "leaderElection.enabled": False},
                   {"activator.enabled": False}]:
        docs = render(values)
        assert _rules(docs, "gateway.networking.k8s.io", "referencegrants") == {
            ("Role", NAMESPACE, GRANT_ROLE): [["create", "patch"]]}, values
        role = _one(docs, "Role", GRANT_ROLE)
        assert role["rules"] == [{"apiGroups": ["gateway.networking.k8s.io"], "resources": ["referencegrants"],
                                  "verbs": ["create", "patch"]}]
        binding = _one(docs, "RoleBinding", GRANT_ROLE)
        assert binding["metadata"]["namespace"] == NAMESPACE
        assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": GRANT_ROLE}
        assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "r-modelpilot", "namespace": NAMESPACE}]
    assert not _find(render({"rbac.create": False}), "Role", GRANT_ROLE)


def test_activator_podmonitor_only_with_the_podmonitor_and_the_prometheus_operator_api(render: Render) -> None:
    enabled = {"podMonitor.enabled": True, "podMonitor.labels": {"release": "kps"}}
    assert not _find(render(enabled), "PodMonitor")
    assert not _find(render({}, *MONITORING), "PodMonitor")
    docs = render(enabled, *MONITORING)
    monitor = _one(docs, "PodMonitor", ACTIVATOR)
    pod_labels = _one(docs, "Deployment", ACTIVATOR)["spec"]["template"]["metadata"]["labels"]
    assert monitor["metadata"]["namespace"] == NAMESPACE
    assert monitor["metadata"]["labels"]["release"] == "kps"
    assert monitor["spec"]["selector"]["matchLabels"] == pod_labels
    assert monitor["spec"]["namespaceSelector"] == {"matchNames": [NAMESPACE]}
    assert monitor["spec"]["podMetricsEndpoints"] == [{"port": "metrics", "path": "/metrics", "interval": "5s"}]
    assert _one(docs, "PodMonitor", "r-modelpilot-serving")  # the serving pods' is still there
    fast = _one(render({**enabled, "activator.scrapeInterval": 2.5}, *MONITORING), "PodMonitor", ACTIVATOR)
    assert fast["spec"]["podMetricsEndpoints"][0]["interval"] == "2500ms"


def test_activator_disabled_removes_its_objects_only(render: Render) -> None:
    values = {"podMonitor.enabled": True, "metrics.serviceMonitor.enabled": True}
    on = render(values, *MONITORING)
    off = render({**values, "activator.enabled": False}, *MONITORING)

    def activator_objects(docs: list[dict[str, Any]]) -> list[tuple[str, str]]:
        return [(d["kind"], d["metadata"]["name"]) for d in docs
                if d["metadata"].get("labels", {}).get("app.kubernetes.io/component") == "activator"]

    assert sorted(activator_objects(on)) == [("Deployment", ACTIVATOR), ("PodMonitor", ACTIVATOR),
                                             ("Service", ACTIVATOR)]
    assert activator_objects(off) == []
    assert not [d for d in off if d["metadata"]["name"] == ACTIVATOR]
    rest = [d for d in on if (d["kind"], d["metadata"]["name"]) not in activator_objects(on)]
    assert rest == off  # the operator, its RBAC and monitors are unchanged
