"""The serving revision hash: stable under defaults and round-trips, sensitive to the template."""

from __future__ import annotations

from typing import Any

import pytest

from modelpilot.api.models import parse_spec
from modelpilot.resources import canonical_serving_template, serving_revision
from tests.unit.spec_cases import spec

BASE = spec(resources={"requests": {"cpu": "500m"}}, accelerator={"vendor": "nvidia"})


def rev(raw: dict[str, Any]) -> str:
    return serving_revision(parse_spec(raw))


def with_(**changes: Any) -> dict[str, Any]:
    return {**BASE, **changes}


def test_shape() -> None:
    value = rev(BASE)
    assert len(value) == 10 and all(c in "0123456789abcdef" for c in value)
    assert rev(BASE) == value


# The same serving template written differently: all must hash alike.
EQUIVALENT: list[tuple[str, dict[str, Any]]] = [
    (
        "explicit-defaults",
        with_(
            runtime={"port": 8080, "env": [], "args": []},
            accelerator={"vendor": "nvidia", "count": 1, "nodeSelector": {}, "tolerations": []},
            resources={"requests": {"cpu": "500m"}, "limits": {}},
        ),
    ),
    ("null-optionals", with_(model={**BASE["model"], "storageSecretRef": None}, autoscaling=None)),
    ("replicas", with_(replicas=7)),
    ("autoscaling", with_(autoscaling={"minReplicas": 2, "maxReplicas": 9})),
    ("rollout", with_(rollout={"strategy": "Rolling", "canary": {"steps": [50], "interval": "1m"}})),
    ("paused", with_(paused=True)),
    ("env-default-value", with_(runtime={"env": [{"name": "A", "value": ""}]})),
    ("key-order", {k: BASE[k] for k in reversed(list(BASE))}),
]


@pytest.mark.parametrize(("case", "raw"), EQUIVALENT, ids=[c[0] for c in EQUIVALENT])
def test_equivalent_specs_hash_alike(case: str, raw: dict[str, Any]) -> None:
    if case == "env-default-value":
        assert rev(raw) == rev(with_(runtime={"env": [{"name": "A"}]}))
    else:
        assert rev(raw) == rev(BASE)


def test_int_and_string_quantities_hash_alike() -> None:
    assert rev(with_(resources={"requests": {"cpu": 1}})) == rev(with_(resources={"requests": {"cpu": "1"}}))


def test_round_trip_through_the_parsed_model() -> None:
    """A spec dumped with defaults filled (as an older operator might have) hashes the same."""
    parsed = parse_spec(BASE)
    filled = parsed.model_dump(mode="json", by_alias=True)
    assert rev(filled) == rev(BASE)


# Each changes what is served: all must change the hash.
DIFFERENT: list[tuple[str, dict[str, Any]]] = [
    ("version", with_(model={**BASE["model"], "version": "v2"})),
    ("uri", with_(model={**BASE["model"], "uri": "s3://models/fraud/v2"})),
    ("format", with_(model={**BASE["model"], "format": "onnx"})),
    ("secret", with_(model={**BASE["model"], "storageSecretRef": {"name": "creds"}})),
    ("image", with_(runtime={"image": "example.com/rt:2"})),
    ("port", with_(runtime={"port": 9000})),
    ("env", with_(runtime={"env": [{"name": "A", "value": "1"}]})),
    ("args", with_(runtime={"args": ["--x"]})),
    ("cpu", with_(resources={"requests": {"cpu": "1"}})),
    ("memory-limit", with_(resources={"requests": {"cpu": "500m"}, "limits": {"memory": "1Gi"}})),
    ("gpu-count", with_(accelerator={"vendor": "nvidia", "count": 2})),
    ("gpu-vendor", with_(accelerator={"vendor": "amd"})),
    ("gpu-product", with_(accelerator={"vendor": "nvidia", "product": "A100"})),
    ("gpu-mig", with_(accelerator={"vendor": "nvidia", "resourceName": "nvidia.com/mig-1g.10gb"})),
    ("node-selector", with_(accelerator={"vendor": "nvidia", "nodeSelector": {"zone": "a"}})),
    ("toleration", with_(accelerator={"vendor": "nvidia", "tolerations": [{"key": "x", "operator": "Exists"}]})),
    ("no-gpu", spec(resources={"requests": {"cpu": "500m"}})),
]


@pytest.mark.parametrize(("case", "raw"), DIFFERENT, ids=[c[0] for c in DIFFERENT])
def test_template_changes_change_the_hash(case: str, raw: dict[str, Any]) -> None:
    assert rev(raw) != rev(BASE)


def test_all_different_cases_are_distinct() -> None:
    hashes = [rev(raw) for _, raw in DIFFERENT]
    assert len(set(hashes)) == len(hashes)


def test_canonical_template_is_minimal() -> None:
    assert canonical_serving_template(parse_spec(spec())) == {
        "model": {"version": "v1", "uri": "s3://models/fraud/v1", "format": "sklearn"}
    }


def test_pinned_hash() -> None:
    """Pinned on purpose: if this changes, every running ModelDeployment would start a rollout on
    operator upgrade. Change it only together with a migration note."""
    assert rev(spec()) == serving_revision(parse_spec(spec()))
    assert rev(spec()) == "530331a655"
