"""The fetch step's settings through the operator: parsing (environment and flag), and what the
Deployment builder makes of them. Defaults must leave the pod template exactly as it was."""

from __future__ import annotations

import re
from typing import Any

import pytest

from modelpilot.api.models import parse_spec
from modelpilot.cli.main import main
from modelpilot.control.reconciler import plan_settings
from modelpilot.fetch_settings import DEFAULT_MAX_MODEL_BYTES, format_size, parse_size
from modelpilot.resources import BuildSettings, build_pod_template
from modelpilot.settings import OperatorSettings
from tests.unit.spec_cases import spec

GI = 2**30
ENV = ("MODELPILOT_MAX_MODEL_BYTES", "MODELPILOT_ALLOW_LINK_LOCAL")


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ENV:
        # setenv first, so the variable is restored (or removed) afterwards even when the code under
        # test sets it itself, as `modelpilot operator` does for its flags.
        monkeypatch.setenv(name, "")
        monkeypatch.delenv(name)


# (environment, max_model_bytes, allow_link_local)
VALID: list[tuple[dict[str, str], int, bool]] = [
    ({}, 20 * GI, False),
    ({"MODELPILOT_MAX_MODEL_BYTES": "50Gi"}, 50 * GI, False),
    ({"MODELPILOT_MAX_MODEL_BYTES": "512Mi"}, 512 * 2**20, False),
    ({"MODELPILOT_MAX_MODEL_BYTES": "5G"}, 5 * 10**9, False),
    ({"MODELPILOT_MAX_MODEL_BYTES": "1000000"}, 10**6, False),
    ({"MODELPILOT_ALLOW_LINK_LOCAL": "true"}, 20 * GI, True),
    ({"MODELPILOT_ALLOW_LINK_LOCAL": "0"}, 20 * GI, False),
]


@pytest.mark.parametrize(("env", "max_bytes", "link_local"), VALID, ids=[str(e) for e, _, _ in VALID])
def test_settings_from_env(monkeypatch: pytest.MonkeyPatch, env: dict[str, str], max_bytes: int,
                           link_local: bool) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    settings = OperatorSettings.from_env()
    assert (settings.max_model_bytes, settings.allow_link_local) == (max_bytes, link_local)
    build = plan_settings(settings).build
    assert (build.max_model_bytes, build.allow_link_local) == (max_bytes, link_local)


INVALID = [
    ("MODELPILOT_MAX_MODEL_BYTES", "20GB", "MODELPILOT_MAX_MODEL_BYTES must be a number of bytes or a quantity"),
    ("MODELPILOT_MAX_MODEL_BYTES", "1.5Gi", "such as 20Gi, got '1.5Gi'"),
    ("MODELPILOT_MAX_MODEL_BYTES", "0", "MODELPILOT_MAX_MODEL_BYTES must be positive"),
    ("MODELPILOT_MAX_MODEL_BYTES", "-1Gi", "got '-1Gi'"),
    ("MODELPILOT_ALLOW_LINK_LOCAL", "maybe", "MODELPILOT_ALLOW_LINK_LOCAL='maybe' is not true or false"),
]


@pytest.mark.parametrize(("name", "value", "message"), INVALID, ids=[f"{n}={v}" for n, v, _ in INVALID])
def test_invalid_settings_fail_at_startup_naming_the_variable(monkeypatch: pytest.MonkeyPatch, name: str,
                                                               value: str, message: str) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ValueError, match=re.escape(message)):
        OperatorSettings.from_env()


def test_operator_flag_is_validated_before_anything_starts(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["operator", "--max-model-bytes", "20GB"]) == 2
    assert "modelpilot operator: MODELPILOT_MAX_MODEL_BYTES must be" in capsys.readouterr().err


@pytest.mark.parametrize(("size", "text"), [
    (20 * GI, "20Gi"), (1500 * 2**20, "1500Mi"), (2**40, "1Ti"), (3 * 2**10, "3Ki"), (5 * 10**9, "5000000000"),
    (1, "1"),
])
def test_format_size_is_exact_and_parses_back(size: int, text: str) -> None:
    assert format_size(size) == text
    assert parse_size(text, "X") == size


# ---------------------------------------------------------------------------------------- builder

FETCH_ENV = ("MODELPILOT_MAX_MODEL_BYTES", "MODELPILOT_ALLOW_LINK_LOCAL")
# (case, settings, model volume sizeLimit, fetch env the settings add)
BUILDS: list[tuple[str, BuildSettings, str, dict[str, str]]] = [
    ("defaults", BuildSettings(), "20Gi", {}),
    ("default-written-out", BuildSettings(max_model_bytes=DEFAULT_MAX_MODEL_BYTES, allow_link_local=False),
     "20Gi", {}),
    ("larger", BuildSettings(max_model_bytes=50 * GI), "50Gi", {"MODELPILOT_MAX_MODEL_BYTES": "50Gi"}),
    ("decimal", BuildSettings(max_model_bytes=5 * 10**9), "5000000000",
     {"MODELPILOT_MAX_MODEL_BYTES": "5000000000"}),
    ("link-local", BuildSettings(allow_link_local=True), "20Gi", {"MODELPILOT_ALLOW_LINK_LOCAL": "true"}),
    ("both", BuildSettings(max_model_bytes=512 * 2**20, allow_link_local=True), "512Mi",
     {"MODELPILOT_MAX_MODEL_BYTES": "512Mi", "MODELPILOT_ALLOW_LINK_LOCAL": "true"}),
]


def pod(settings: BuildSettings, **changes: Any) -> dict[str, Any]:
    template = build_pod_template(parse_spec(spec(**changes)), name="fraud", namespace="ml", track="stable",
                                  settings=settings)
    return dict(template["spec"])


@pytest.mark.parametrize(("case", "settings", "size_limit", "env"), BUILDS, ids=[b[0] for b in BUILDS])
def test_fetch_settings_in_the_pod(case: str, settings: BuildSettings, size_limit: str, env: dict[str, str]) -> None:
    spec_pod = pod(settings)
    volumes = {v["name"]: v for v in spec_pod["volumes"]}
    assert volumes["model"]["emptyDir"] == {"sizeLimit": size_limit}
    (fetch,) = spec_pod["initContainers"]
    fetch_env = {e["name"]: e.get("value") for e in fetch["env"]}
    assert {k: v for k, v in fetch_env.items() if k in FETCH_ENV} == env
    # The server never fetches in these pods (it is given --model-dir): nothing for it.
    (server,) = spec_pod["containers"]
    assert not {e["name"] for e in server["env"]} & set(FETCH_ENV)


@pytest.mark.parametrize(("case", "settings", "size_limit", "env"), BUILDS, ids=[b[0] for b in BUILDS])
def test_a_claim_is_not_fetched_whatever_the_settings(
        case: str, settings: BuildSettings, size_limit: str, env: dict[str, str]) -> None:
    # A pvc:// model is mounted, not fetched: no init container and no model volume to size.
    claim_pod = pod(settings, model_uri="pvc://store/fraud")
    assert claim_pod == pod(BuildSettings(), model_uri="pvc://store/fraud")
    assert "initContainers" not in claim_pod
