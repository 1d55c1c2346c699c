"""`kubectl modelpilot drift` and the drift line of `status`, rendered into a fixed-width rich
Console, table-driven over ModelDeployments whose conditions and status.drift come from the
operator's own drift judging (analysis.drift_judge, control.drift)."""

from __future__ import annotations

import copy
import datetime as dt
import io
import re
from typing import Any

import pytest
from rich.console import Console, RenderableType

from modelpilot.analysis.drift_judge import judge_drift
from modelpilot.analysis.drift_read import Distribution, DriftReadings
from modelpilot.api.monitoring import DriftMonitoring
from modelpilot.cli import drift_view, plugin
from modelpilot.cli.drift_view import BAR_WIDTH, PROFILE_HINT, bar, drift_output, drift_summary, gist
from modelpilot.cli.kube import CliError, Target
from modelpilot.control.drift import DriftOutcome, drift_part
from modelpilot.status import Condition, merge_conditions

NOW = dt.datetime(2026, 12, 3, 8, 0, tzinfo=dt.UTC)
SETTINGS = DriftMonitoring.model_validate({"window": "20s", "minSamples": 100})
BLOCKS = "█▉▊▋▌▍▎▏"

PETAL = Distribution(2.31, 0.0, {"(-inf,1.5]": (0.25, 0.0), "(1.5,3.0]": (0.08, 0.0), "(3.0,4.5]": (0.3, 0.03),
                                  "(4.5,6.1]": (0.27, 0.05), "(6.1,+inf)": (0.1, 0.92), "missing": (0.0, 0.0)})
SEPAL = Distribution(0.04, 0.41, {"(-inf,2.8]": (0.3, 0.28), "(2.8,3.3]": (0.5, 0.47), "(3.3,+inf)": (0.2, 0.25)})
PREDICTION = Distribution(0.81, 0.0, {"setosa": (0.33, 0.02), "versicolor": (0.34, 0.2), "virginica": (0.33, 0.78)})


def readings(**changes: Any) -> DriftReadings:
    base: dict[str, Any] = {"profile": 1.0, "rows": 812.0, "features": {"sepal_width": SEPAL, "petal_length": PETAL},
                            "prediction_rows": 812.0, "prediction": PREDICTION, "feedback_rows": 540.0,
                            "accuracy": 0.68, "reference_accuracy": 0.97}
    base.update(changes)
    return DriftReadings(**base)


def mdep(conditions: tuple[Condition, ...], drift: dict[str, Any] | None,
         enabled: bool | None = None) -> dict[str, Any]:
    spec: dict[str, Any] = {"model": {"version": "v3"}}
    if enabled is not None:
        spec["monitoring"] = {"drift": {"enabled": enabled}}
    ready = Condition("Ready", True, "Serving", "version v3 serving: 2/2 replicas available")
    status: dict[str, Any] = {"phase": "Ready", "observedGeneration": 1, "stable": {"version": "v3"},
                              "conditions": merge_conditions([], (ready, *conditions), 1, NOW)}
    if drift is not None:
        status["drift"] = drift
    return {"metadata": {"name": "iris", "namespace": "ml", "generation": 1}, "spec": spec, "status": status}


def judged(r: DriftReadings) -> dict[str, Any]:
    """What the operator writes after an evaluation of `r`."""
    report = judge_drift(SETTINGS, r, NOW)
    return mdep((report.data, report.concept), report.status)


def _unordered() -> dict[str, Any]:
    """status.drift with the features in the wrong order: the view still shows the worst first."""
    md = judged(readings())
    md["status"]["drift"]["features"].reverse()
    return md


def _read_failed() -> dict[str, Any]:
    previous = judged(readings())
    part = drift_part(SETTINGS, previous["status"], DriftOutcome(NOW, error="connection refused"), NOW)
    return mdep(part.conditions, part.status)


NOT_EVALUATED = drift_part(SETTINGS, {}, None, NOW).conditions
FIXTURES: dict[str, dict[str, Any]] = {
    "drifting": judged(readings(unexported=(30.0, 2.0, 0.8))),
    "in-distribution": judged(readings(features={"sepal_width": SEPAL}, prediction=Distribution(0.01, 0.9),
                                       accuracy=0.96)),
    "no-profile": judged(DriftReadings(profile=0.0, rows=812.0)),
    "too-few-rows": judged(readings(rows=40.0, feedback_rows=0.0, accuracy=None)),
    "regression": judged(readings(accuracy=None, reference_accuracy=None, error=1.9, reference_error=1.2)),
    "no-reference": judged(readings(reference_accuracy=None)),
    "unordered": _unordered(),
    "read-failed": _read_failed(),
    "not-evaluated": mdep(NOT_EVALUATED, None),
    "no-status": {**mdep((), None), "status": {}},
    "disabled": mdep((), None, enabled=False),
}


def text_of(renderable: RenderableType, width: int = 120) -> str:
    console = Console(width=width, no_color=True, highlight=False, record=True, file=io.StringIO())
    console.print(renderable)
    return "\n".join(line.rstrip() for line in console.export_text().splitlines())


def view(fixture: str) -> str:
    return text_of(drift_output(FIXTURES[fixture], NOW + dt.timedelta(seconds=42)))


# --------------------------------------------------------------------------------------- the view


@pytest.mark.parametrize(("fixture", "present", "absent"), [
    ("drifting", ["ml/iris: drift of the stable track (status.drift)",
                  "DataDrift      True     FeatureDrift   feature petal_length PSI 2.31",
                  "ConceptDrift   True     AccuracyDrop   live accuracy 0.680 over 540 labelled rows",
                  "window          20s", "rows            812",
                  "last evaluated  2026-12-03T08:00:00Z (42s ago)", "profile         found",
                  "petal_length   PSI 2.31   p-value <0.001   drifted",
                  "sepal_width   PSI 0.04   p-value 0.410   not drifted",
                  "prediction   PSI 0.81   p-value <0.001   drifted",
                  "unexported features: 30 past maxFeatures, 2 with PSI >= 0.2 on some pod (max PSI 0.8)",
                  "accuracy: live 0.680 vs reference 0.970 (-0.290) over 540 labelled rows"],
     [PROFILE_HINT[:20], "note"]),
    ("in-distribution", ["DataDrift      False    NoDrift", "ConceptDrift   False    AsExpected",
                         "sepal_width   PSI 0.04", "prediction   PSI 0.01   p-value 0.900   not drifted",
                         "unexported features: none past maxFeatures",
                         "accuracy: live 0.960 vs reference 0.970 (-0.010) over 540 labelled rows"],
     ["petal_length", " True ", "   drifted"]),
    ("no-profile", ["DataDrift      Unknown  NoProfile", "profile         " + PROFILE_HINT[:60],
                    "FEATURES (top offenders", "none measured", "accuracy: no labelled feedback in the window"],
     ["unexported features"]),
    ("too-few-rows", ["DataDrift      Unknown  TooFewSamples  40 rows in the window < minSamples 100",
                      "ConceptDrift   Unknown  NoFeedback", "rows            40"], []),
    ("regression", ["ConceptDrift   True     ErrorIncrease",
                    "mean absolute error: live 1.9 vs reference 1.2 (+58%) over 540 labelled rows"], ["accuracy:"]),
    ("no-reference", ["ConceptDrift   Unknown  NoReference",
                      "accuracy: live 0.680 vs reference — (the profile was written without --target) over 540"], []),
    ("read-failed", ["note            metrics provider: connection refused", "DataDrift      True     FeatureDrift"],
     []),
])
def test_drift_view(fixture: str, present: list[str], absent: list[str]) -> None:
    text = view(fixture)
    lines = [squash(line) for line in text.splitlines()]
    for part in present:
        assert any(squash(part) in line for line in lines), text
    for part in absent:
        assert part not in text, text


def squash(text: str) -> str:
    """Columns padded to their widest cell, compared word by word."""
    return " ".join(text.split())


@pytest.mark.parametrize(("fixture", "line"), [
    ("disabled", "ml/iris: drift monitoring is off (spec.monitoring.drift.enabled: false)"),
    ("not-evaluated", "ml/iris: drift not evaluated yet"),
    ("no-status", "ml/iris: drift not evaluated yet"),
])
def test_nothing_to_show_is_one_line(fixture: str, line: str) -> None:
    assert view(fixture) == line


@pytest.mark.parametrize("fixture", ["drifting", "unordered"])
def test_worst_feature_first_then_the_prediction(fixture: str) -> None:
    text = view(fixture)
    assert text.index("petal_length   PSI") < text.index("sepal_width   PSI") < text.index("PREDICTIONS") < \
        text.index("prediction   PSI"), text


def test_disabled_wins_over_a_stale_status() -> None:
    md = copy.deepcopy(FIXTURES["drifting"])
    md["spec"]["monitoring"] = {"drift": {"enabled": False}}
    assert view_of(md) == "ml/iris: drift monitoring is off (spec.monitoring.drift.enabled: false)"


def view_of(md: dict[str, Any]) -> str:
    return text_of(drift_output(md, NOW))


# --------------------------------------------------------------------------------------- bars


@pytest.mark.parametrize(("share", "largest", "width", "expected"), [
    (1.0, 1.0, 20, "█" * 20),
    (0.5, 1.0, 20, "█" * 10),
    (0.25, 1.0, 20, "█" * 5),
    (0.92, 0.92, 20, "█" * 20),  # the largest share fills the width
    (0.46, 0.92, 20, "█" * 10),
    (0.1, 0.92, 20, "██▏"),  # 2.17 blocks: two and one eighth
    (0.03, 0.92, 20, "▋"),  # 0.65 of a block: five eighths
    (0.001, 1.0, 20, "▏"),  # above zero is never empty
    (0.0, 1.0, 20, ""),
    (0.3, 0.0, 20, ""),  # nothing measured at all
    (2.0, 1.0, 4, "████"),  # never past the width
])
def test_bar(share: float, largest: float, width: int, expected: str) -> None:
    assert bar(share, largest, width) == expected


ROW = re.compile(rf"^\s+(\S+)\s+([{BLOCKS}]*)\s+([\d.]+)%\s+([{BLOCKS}]*)\s+([\d.]+)%$")


def _bars(text: str) -> dict[str, tuple[str, float, str, float]]:
    """bin -> (reference bar, reference %, live bar, live %) of the first distribution in `text`."""
    found: dict[str, tuple[str, float, str, float]] = {}
    for line in text.split("\n\n")[0].splitlines():
        match = ROW.match(line)
        if match:
            found[match[1]] = (match[2], float(match[3]), match[4], float(match[5]))
    return found


def _eighths(drawn: str) -> int:
    return sum(8 if c == "█" else 7 - "▉▊▋▌▍▎▏".index(c) for c in drawn)


def test_bars_scale_with_the_shares_reference_beside_live() -> None:
    text = view("drifting")
    rows = _bars(text[text.index("petal_length   PSI"):])
    assert list(rows) == ["(-inf,1.5]", "(1.5,3.0]", "(3.0,4.5]", "(4.5,6.1]", "(6.1,+inf)", "missing"]
    largest = 92.0
    for name, (ref_bar, ref, live_bar, live) in rows.items():
        for drawn, share in ((ref_bar, ref), (live_bar, live)):
            assert _eighths(drawn) == (round(share / largest * BAR_WIDTH * 8) if share else 0), (name, drawn)
    assert rows["(6.1,+inf)"][2] == "█" * BAR_WIDTH and rows["(6.1,+inf)"][3] == 92.0
    assert rows["(-inf,1.5]"][:2] == ("█████▍", 25.0) and rows["(-inf,1.5]"][2:] == ("", 0.0)
    assert rows["missing"] == ("", 0.0, "", 0.0)


def _ansi(renderable: RenderableType) -> str:
    console = Console(width=120, force_terminal=True, color_system="standard", file=io.StringIO())
    console.print(renderable)
    return console.file.getvalue()  # type: ignore[attr-defined]


@pytest.mark.parametrize(("feature", "live_style"), [(0, "\x1b[31m█"), (1, "\x1b[36m█")])
def test_reference_dim_and_live_red_when_drifted(feature: int, live_style: str) -> None:
    drift = FIXTURES["drifting"]["status"]["drift"]
    assert [f["drifted"] for f in drift["features"]] == [True, False]
    out = _ansi(drift_view.distribution_view(drift["features"][feature]))
    assert "\x1b[2m█" in out and live_style in out, out


# --------------------------------------------------------------------------------------- status line


@pytest.mark.parametrize(("fixture", "line"), [
    ("drifting", "drift: DataDrift True (feature petal_length PSI 2.31 +2 more) · ConceptDrift True "
                 "(accuracy 0.680 vs reference 0.970)"),
    ("in-distribution", "drift: DataDrift False · ConceptDrift False"),
    ("too-few-rows", "drift: DataDrift Unknown (TooFewSamples) · ConceptDrift Unknown (NoFeedback)"),
    ("regression", "drift: DataDrift True (feature petal_length PSI 2.31 +1 more) · ConceptDrift True "
                   "(mean absolute error 1.9 vs reference 1.2)"),
    ("not-evaluated", "drift: DataDrift Unknown (NotEvaluated) · ConceptDrift Unknown (NotEvaluated)"),
    ("no-status", None),
    ("disabled", None),
])
def test_status_has_a_drift_line(fixture: str, line: str | None) -> None:
    md = FIXTURES[fixture]
    assert drift_summary(md) == line
    text = text_of(plugin.status_view(md, []), width=200)
    if line is None:
        assert "drift:" not in text, text
    else:
        assert line in text.splitlines(), text


@pytest.mark.parametrize(("message", "expected"), [
    ("feature petal_length PSI 2.31 (thresholds: featurePSI 0.2, predictionPSI 0.2; 812 rows)",
     "feature petal_length PSI 2.31"),
    ("feature b PSI 0.9; feature a PSI 0.3 (thresholds: featurePSI 0.2, predictionPSI 0.2; 500 rows)",
     "feature b PSI 0.9 +1 more"),
    ("predictions PSI 0.5 (thresholds: featurePSI 0.2, predictionPSI 0.2; 500 rows)", "predictions PSI 0.5"),
    ("2 more features past maxFeatures (max PSI 0.8) (thresholds: featurePSI 0.2, predictionPSI 0.2; 500 rows)",
     "2 more features past maxFeatures"),
])
def test_gist(message: str, expected: str) -> None:
    assert gist(message) == expected


# --------------------------------------------------------------------------------------- the command


TARGET = Target(api=None, namespace="ml", context="dev", server="https://10.0.0.1:6443")  # type: ignore[arg-type]


class Fake:
    def __init__(self, md: dict[str, Any] | None) -> None:
        self.md = md
        self.target = TARGET

    def get(self, namespace: str, name: str) -> dict[str, Any]:
        if self.md is None:
            raise CliError(f"modeldeployment {namespace}/{name} not found")
        return self.md


@pytest.mark.parametrize(("fixture", "first_line"), [
    ("drifting", "ml/iris: drift of the stable track (status.drift)"),
    ("disabled", "ml/iris: drift monitoring is off (spec.monitoring.drift.enabled: false)"),
    ("not-evaluated", "ml/iris: drift not evaluated yet"),
])
def test_drift_command_exits_zero(fixture: str, first_line: str, capsys: pytest.CaptureFixture[str],
                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "120")
    args = plugin.build_parser().parse_args(["drift", "iris", "-n", "ml"])
    assert (args.name, args.namespace) == ("iris", "ml")
    assert args.func(Fake(FIXTURES[fixture]), args, "ml") == 0
    assert capsys.readouterr().out.splitlines()[0] == first_line


def test_drift_of_an_unknown_object_is_the_usual_error(capsys: pytest.CaptureFixture[str],
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(plugin, "connect", lambda kubeconfig, context: TARGET)
    monkeypatch.setattr(plugin, "Cluster", lambda _: Fake(None))
    assert plugin.main(["drift", "nope"]) == 1
    assert capsys.readouterr().err == "error: modeldeployment ml/nope not found\n"
