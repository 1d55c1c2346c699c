"""The kubectl plugin without a cluster: kubeconfig resolution, one-line errors, list rows, action rules.
(tests/e2e/test_plugin.py runs the real command against the local cluster.)"""

from __future__ import annotations

import datetime as dt
import io
import json
from pathlib import Path
from typing import Any

import pytest
import urllib3
import yaml
from kubernetes.client.exceptions import ApiException
from rich.console import Console

from modelpilot.cli import actions, plugin
from modelpilot.cli.kube import CliError, Target, connect, explain
from modelpilot.cli.view import render

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


# --------------------------------------------------------------------------------------- stages and experiments


EXPERIMENT_SPEC = {"strategy": "Experiment", "experiment": {"split": 30, "duration": "10m", "confidence": 0.9,
                                                            "sticky": {"header": "x-user"}}}
SEGMENT_SPEC = {"canary": {"steps": [], "shadow": {"percent": 10, "duration": "5m"}, "matchDuration": "2m",
                           "match": [{"headers": [{"name": "x-beta", "value": "yes"}]},
                                     {"cookie": {"name": "group", "value": "b"}}]}}
COMPARISONS = [
    {"metric": "ctr", "verdict": "Winner", "canary": 0.0412, "stable": 0.0371, "difference": 0.0041,
     "ciLow": 0.0012, "ciHigh": 0.007, "pValue": 0.0004, "samplesCanary": 12000, "samplesStable": 28000,
     "detail": "z=3.52"},
    {"metric": "basket", "verdict": "Inconclusive", "samplesCanary": 300, "samplesStable": 800,
     "detail": "too few samples: 300 < 1000"},
]


def _staged(stage: str | None, *, rollout: dict[str, Any], weight: int = 0, state: str = "Progressing",
            experiment: dict[str, Any] | None = None, step: int = 0) -> dict[str, Any]:
    canary: dict[str, Any] = {"state": state, "version": "v2", "step": step, "weight": weight,
                              "stageStartedAt": "2026-11-02T11:56:00Z"}
    if stage:
        canary["stage"] = stage
    if experiment is not None:
        canary["experiment"] = experiment
    return _md({"phase": "Progressing", "stable": {"version": "v1"}, "canary": canary}, rollout=rollout)


STAGED = {
    "waiting-for-ready": _staged(None, rollout=SEGMENT_SPEC, step=-1),
    "shadow": _staged("shadow", rollout=SEGMENT_SPEC),
    "segment": _staged("segment", rollout=SEGMENT_SPEC),
    "steps": _staged("steps", rollout={"canary": {"steps": [20, 40]}}, weight=40, step=1),
    "experiment": _staged("experiment", rollout=EXPERIMENT_SPEC, weight=30,
                          experiment={"final": False, "verdict": "Inconclusive", "results": COMPARISONS}),
    **{f"experiment-{verdict.lower()}": _staged(
        "experiment", rollout=EXPERIMENT_SPEC, weight=30,
        experiment={"final": True, "verdict": verdict, "results": COMPARISONS[:1]})
       for verdict in ("Winner", "Loser", "NoDifference", "Inconclusive")},
    "experiment-rolled-back": _staged("experiment", rollout=EXPERIMENT_SPEC, state="RolledBack",
                                      experiment={"final": True, "verdict": "Loser", "results": []}),
}


@pytest.mark.parametrize(("fixture", "step", "weight", "stage"), [
    ("waiting-for-ready", "-", "0%", "-"),  # no steps at all (segment until promote): no "0/0"
    ("shadow", "-", "0%", "shadow"),
    ("segment", "-", "0%", "segment"),
    ("steps", "2/2", "40%", "steps"),
    ("experiment", "-", "30%", "experiment"),
    ("experiment-winner", "-", "30%", "experiment:Winner"),
    ("experiment-loser", "-", "30%", "experiment:Loser"),
    ("experiment-nodifference", "-", "30%", "experiment:NoDifference"),
    ("experiment-inconclusive", "-", "30%", "experiment:Inconclusive"),
    ("experiment-rolled-back", "-", "0%", "experiment:Loser"),
])
def test_row_shows_the_stage_before_age_and_keeps_the_other_columns(
        fixture: str, step: str, weight: str, stage: str) -> None:
    cells = [str(c) for c in plugin.row(STAGED[fixture], with_namespace=False)]
    assert len(cells) == 11
    assert cells[:4] == ["fraud", "v2", "v1", "v2"]
    assert (cells[5], cells[6], cells[9]) == (step, weight, stage)
    assert cells[8] == "Progressing" and cells[10].endswith(("s", "m", "h", "d"))  # AGE stays last


def test_row_of_a_plain_canary_keeps_its_step_and_shows_no_stage() -> None:
    md = _md({"canary": {"state": "Progressing", "version": "v2", "step": 0, "weight": 10}})
    cells = [str(c) for c in plugin.row(md, with_namespace=False)]
    assert (cells[5], cells[6], cells[9]) == ("1/3", "10%", "-")


@pytest.mark.parametrize(("fixture", "words"), [
    ("waiting-for-ready", ""),
    ("shadow", " stage=shadow"),
    ("segment", " stage=segment"),
    ("steps", " stage=steps step=2/2"),
    ("experiment", " stage=experiment"),  # interim: no verdict yet
    ("experiment-winner", " stage=experiment verdict=Winner"),
    ("experiment-loser", " stage=experiment verdict=Loser"),
    ("experiment-nodifference", " stage=experiment verdict=NoDifference"),
    ("experiment-inconclusive", " stage=experiment verdict=Inconclusive"),
])
def test_watch_line_gains_stage_and_final_verdict(fixture: str, words: str) -> None:
    line = plugin.watch_line(STAGED[fixture])
    assert line.startswith("phase=Progressing stable=v1 canary=v2 state=Progressing weight=")
    tail = line.split(" failed=0", 1)[1]
    assert tail == words


def test_watch_line_of_a_plain_canary_is_unchanged() -> None:
    md = _md({"phase": "Progressing", "stable": {"version": "v1"},
              "canary": {"state": "Progressing", "version": "v2", "step": 1, "weight": 25}}, paused=True)
    assert plugin.watch_line(md) == ("phase=Progressing stable=v1 canary=v2 state=Progressing weight=25% failed=0 "
                                     "step=2/3 spec.paused=true")


def _text(md: dict[str, Any]) -> str:
    console = Console(width=200, no_color=True, highlight=False, record=True, file=io.StringIO())
    console.print(render(md, latest_only=True, now=NOW))
    return console.export_text()


@pytest.mark.parametrize(("fixture", "expected"), [
    ("shadow", ["stage         shadow (10% mirrored, clients see stable only), 4m of 5m",
                "stable 100% / canary 0%  (+10% mirrored to the canary)"]),
    ("segment", ["stage         segment (only matching requests: x-beta=yes or cookie group=b), 4m of at least 2m; "
                 "no weight steps: held until a promote action"]),
    ("steps", ["stage         steps: 2/2 at 40%", "step 2/2"]),
    ("experiment", ["stage         experiment: split 30% (sticky by header x-user), 4m of 10m",
                    "experiment (interim): Inconclusive; difference canary - stable [90% CI]",
                    "+0.0041 [+0.0012, +0.007]", "<0.001", "12000/28000", "Winner", "too few samples"]),
    ("experiment-winner", ["experiment: split 30% (sticky by header x-user), concluded: Winner (onConclusion "
                           "Report: the split stays until promote or abort)", "experiment (final): Winner"]),
    ("experiment-loser", ["concluded: Loser", "experiment (final): Loser"]),
    ("experiment-nodifference", ["concluded: NoDifference", "experiment (final): NoDifference"]),
    ("experiment-inconclusive", ["concluded: Inconclusive", "experiment (final): Inconclusive"]),
    ("experiment-rolled-back", ["stage         experiment: split 30% (sticky by header x-user), concluded: Loser",
                                "no comparisons yet"]),
])
def test_status_shows_the_stage_and_the_experiment(fixture: str, expected: list[str]) -> None:
    text = _text(STAGED[fixture])
    for part in expected:
        assert part in text, text
    if fixture != "steps":
        assert " step " not in text.split("stage ")[0], text  # no step outside the weight steps


def test_status_without_stage_or_steps_does_not_crash() -> None:
    text = _text(STAGED["waiting-for-ready"])
    assert "state Progressing  failed checks 0" in text and "stage  " not in text


def test_history_lists_the_experiment(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "200")

    class Fake:
        def get(self, namespace: str, name: str) -> dict[str, Any]:
            return STAGED["experiment-winner"]

        def events(self, md: dict[str, Any]) -> list[dict[str, Any]]:
            return [{"time": "2026-11-02T11:59:00Z", "type": "Normal", "reason": "ExperimentConcluded",
                     "message": "experiment v2 concluded: Winner"}]

    args = plugin.build_parser().parse_args(["history", "fraud"])
    assert plugin.cmd_history(Fake(), args, "ml") == 0  # type: ignore[arg-type]
    out = capsys.readouterr().out
    assert "canary v2 Progressing in stage experiment at 30%" in out
    assert "EXPERIMENT (status.canary.experiment) experiment (final): Winner" in out
    assert "ctr" in out and "+0.0041 [+0.0012, +0.007]" in out and "12000/28000" in out
