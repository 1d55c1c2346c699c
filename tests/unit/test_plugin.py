"""The kubectl plugin without a cluster: kubeconfig resolution, one-line errors, list rows, action rules.
(tests/e2e/test_plugin.py runs the real command against the local cluster.)"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest
import urllib3
import yaml
from kubernetes.client.exceptions import ApiException

from modelpilot.cli import actions, plugin
from modelpilot.cli.kube import CliError, Target, connect, explain

NOW = dt.datetime(2026, 11, 2, 12, 0, tzinfo=dt.UTC)


def kubeconfig(path: Path, contexts: dict[str, str | None], current: str | None,
               server: str = "https://127.0.0.1:1") -> Path:
    path.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": current,
        "clusters": [{"name": "c", "cluster": {"server": server, "insecure-skip-tls-verify": True}}],
        "users": [{"name": "u", "user": {"token": "t"}}],
        "contexts": [{"name": name, "context": {"cluster": "c", "user": "u", **({"namespace": ns} if ns else {})}}
                     for name, ns in contexts.items()],
    }))
    return path


@pytest.fixture
def target() -> Target:
    return Target(api=None, namespace="ml", context="dev", server="https://10.0.0.1:6443")  # type: ignore[arg-type]


# --------------------------------------------------------------------------------------- kubeconfig


def test_namespace_comes_from_the_current_context(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = kubeconfig(tmp_path / "config", {"dev": "ml", "prod": None}, "dev")
    monkeypatch.setenv("KUBECONFIG", str(path))
    assert connect().namespace == "ml"
    assert connect(context="prod").namespace == "default"
    assert connect(context="prod").server == "https://127.0.0.1:1"


def test_kubeconfig_flag_wins_and_kubeconfig_lists_merge(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    first = kubeconfig(tmp_path / "a", {"dev": "ml"}, "dev")
    second = kubeconfig(tmp_path / "b", {"other": "team"}, "other")
    monkeypatch.setenv("KUBECONFIG", f"{tmp_path / 'missing'}:{first}:{second}")
    assert connect().context == "dev"
    assert connect(context="other").namespace == "team"
    assert connect(kubeconfig=str(second)).context == "other"


def test_no_kubeconfig_is_one_readable_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "nowhere"))
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    with pytest.raises(CliError, match=r"no cluster configured: no kubeconfig at .*nowhere"):
        connect()
    with pytest.raises(CliError, match="kubeconfig /x/y not found"):
        connect(kubeconfig="/x/y")


def test_unknown_context_names_the_known_ones(tmp_path: Path) -> None:
    path = kubeconfig(tmp_path / "config", {"dev": "ml", "prod": None}, "dev")
    with pytest.raises(CliError, match=r"context 'stage' not found .*\(contexts: dev, prod\)"):
        connect(kubeconfig=str(path), context="stage")


def test_kubeconfig_without_current_context(tmp_path: Path) -> None:
    path = kubeconfig(tmp_path / "config", {"dev": "ml"}, None)
    with pytest.raises(CliError, match="no current context"):
        connect(kubeconfig=str(path))


# --------------------------------------------------------------------------------------- errors


def _api_error(status: int, body: dict[str, Any] | str, reason: str = "") -> ApiException:
    err = ApiException(status=status, reason=reason)
    err.body = body if isinstance(body, str) else json.dumps(body)
    return err


def test_unknown_name(target: Target) -> None:
    err = _api_error(404, {"kind": "Status", "status": "Failure", "reason": "NotFound",
                           "message": 'modeldeployments.modelpilot.io "x" not found',
                           "details": {"name": "x", "group": "modelpilot.io", "kind": "modeldeployments"}})
    assert explain(err, target, "get", namespace="ml", name="x").message == "modeldeployment ml/x not found"


def test_crd_not_installed(target: Target) -> None:
    message = explain(_api_error(404, "404 page not found", "Not Found"), target, "list", namespace="ml").message
    assert "CRD (modeldeployments.modelpilot.io) is not installed" in message and "10.0.0.1" in message


def test_forbidden_names_the_verb_and_resource(target: Target) -> None:
    err = _api_error(403, {"kind": "Status", "reason": "Forbidden", "message":
                           'modeldeployments.modelpilot.io "x" is forbidden: User "alice" cannot patch resource '
                           '"modeldeployments" in API group "modelpilot.io" in the namespace "ml"'})
    message = explain(err, target, "patch", namespace="ml", name="x").message
    assert message.startswith("not allowed to patch modeldeployments.modelpilot.io in namespace ml (context dev): ")
    assert 'User "alice" cannot patch' in message and "\n" not in message


def test_unauthorized(target: Target) -> None:
    assert "401 Unauthorized" in explain(_api_error(401, "", "Unauthorized"), target, "list").message


def test_connection_refused(target: Target) -> None:
    refused = urllib3.exceptions.NewConnectionError(
        None, "Failed to establish a new connection: [Errno 111] Connection refused")  # type: ignore[arg-type]
    err = urllib3.exceptions.MaxRetryError(None, "/apis", refused)  # type: ignore[arg-type]
    assert explain(err, target, "list").message == \
        "cannot reach the cluster at https://10.0.0.1:6443 (context dev): connection refused"


def test_main_against_a_dead_server_exits_non_zero_with_one_line(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = kubeconfig(tmp_path / "config", {"dev": "ml"}, "dev", server="https://127.0.0.1:1")
    assert plugin.main(["list", "--kubeconfig", str(path)]) == 1
    err = capsys.readouterr().err
    assert err == "error: cannot reach the cluster at https://127.0.0.1:1 (context dev): connection refused\n"


# --------------------------------------------------------------------------------------- parsing


def test_flags_before_or_after_the_command() -> None:
    parser = plugin.build_parser()
    late = parser.parse_args(["status", "fraud", "-n", "ml", "--context", "dev"])
    early = parser.parse_args(["-n", "ml", "--context", "dev", "status", "fraud"])
    for args in (late, early):
        assert (args.namespace, args.context, args.name, args.watch) == ("ml", "dev", "fraud", False)
    assert parser.parse_args(["list", "-A"]).all_namespaces
    assert parser.parse_args(["list"]).namespace is None


# --------------------------------------------------------------------------------------- list rows


def _md(status: dict[str, Any] | None = None, **spec: Any) -> dict[str, Any]:
    return {"metadata": {"name": "fraud", "namespace": "ml", "creationTimestamp": "2026-11-02T11:00:00Z"},
            "spec": {"model": {"version": "v2"}, **spec}, "status": status or {}}


def test_row_of_a_canary_shows_step_weight_and_worst_last_verdict() -> None:
    analyses = [
        {"time": "2026-11-02T11:58:00Z", "metric": "error-rate", "value": 3, "verdict": "Fail"},
        {"time": "2026-11-02T11:59:00Z", "metric": "error-rate", "value": 0.1, "verdict": "Pass"},
        {"time": "2026-11-02T11:59:00Z", "metric": "latency-p99", "verdict": "Inconclusive"},
    ]
    md = _md({"phase": "Progressing", "stable": {"version": "v1"},
              "canary": {"state": "Progressing", "version": "v2", "step": 1, "weight": 40, "analyses": analyses}},
             rollout={"canary": {"steps": [20, 40, 60]}})
    cells = [str(c) for c in plugin.row(md, with_namespace=True)]
    assert cells[:10] == ["ml", "fraud", "v2", "v1", "v2", "Progressing", "2/3", "40%", "Inconclusive (latency-p99)",
                          "Progressing"]


def test_row_without_canary() -> None:
    cells = [str(c) for c in plugin.row(_md({"phase": "Ready", "stable": {"version": "v2"}}), with_namespace=False)]
    assert cells[:9] == ["fraud", "v2", "v2", "-", "-", "-", "-", "-", "Ready"]


@pytest.mark.parametrize(("seconds", "text"), [(5, "5s"), (119, "119s"), (150, "2m30s"), (600, "10m"),
                                               (3 * 3600 + 60, "3h1m"), (30 * 3600, "30h"), (3 * 86400, "3d"),
                                               (20 * 86400, "20d")])
def test_age_like_kubectl(seconds: int, text: str) -> None:
    then = (NOW - dt.timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert plugin.age(then, NOW) == text


# --------------------------------------------------------------------------------------- action rules


def test_actions_refused_when_they_would_do_nothing() -> None:
    ready = _md({"phase": "Ready"})
    assert actions.why_not(ready, "promote") == "no canary in progress"
    assert actions.why_not(ready, "retry") == "no canary to retry"
    assert actions.why_not(ready, "resume") == "nothing is paused"
    assert actions.why_not(ready, "pause") is None
    promoting = _md({"canary": {"state": "Promoting", "version": "v2"}})
    assert actions.why_not(promoting, "abort") == "canary v2 is Promoting"
    with pytest.raises(ValueError, match="unknown action"):
        actions.why_not(ready, "skip")
