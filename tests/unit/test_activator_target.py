"""The activator's routing headers: target and upstream parsing, and the allowed networks (pure)."""

from __future__ import annotations

import ipaddress

import pytest

from modelpilot.activator.target import (
    DEFAULT_ALLOWED,
    HeaderError,
    Target,
    Upstream,
    is_allowed,
    parse_networks,
    parse_target,
    parse_upstream,
)

ALLOWED = parse_networks(DEFAULT_ALLOWED)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("ml/fraud/stable", Target("ml", "fraud", "stable")),
        ("ml-prod/fraud-v2/canary", Target("ml-prod", "fraud-v2", "canary")),
        (" a/b/stable ", Target("a", "b", "stable")),
        ("0/9/canary", Target("0", "9", "canary")),
        ("a" * 63 + "/b/stable", Target("a" * 63, "b", "stable")),
    ],
)
def test_target_parses(value: str, expected: Target) -> None:
    assert parse_target(value) == expected
    assert str(expected) == value.strip()


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (None, "missing header x-modelpilot-target"),
        ("", "missing header x-modelpilot-target"),
        ("   ", "missing header x-modelpilot-target"),
        ("ml/fraud", "must be namespace/modeldeployment/track"),
        ("ml/fraud/stable/extra", "must be namespace/modeldeployment/track"),
        ("ml//stable", "modeldeployment '' is not a DNS label"),
        ("ML/fraud/stable", "namespace 'ML' is not a DNS label"),
        ("ml/-fraud/stable", "modeldeployment '-fraud' is not a DNS label"),
        ("ml/fraud-/stable", "modeldeployment 'fraud-' is not a DNS label"),
        ("ml/fr.aud/stable", "modeldeployment 'fr.aud' is not a DNS label"),
        ("a" * 64 + "/b/stable", "is not a DNS label"),
        ("ml/fraud/shadow", "track 'shadow' is not one of stable, canary"),
        ("ml/fraud/Stable", "track 'Stable' is not one of stable, canary"),
        ("ml/fraud/" + "x" * 200, "..."),  # a long value is cut short in the message
    ],
)
def test_target_rejects(value: str | None, message: str) -> None:
    with pytest.raises(HeaderError) as err:
        parse_target(value)
    assert message in str(err.value)
    assert len(str(err.value)) < 200


@pytest.mark.parametrize(
    ("value", "address", "port", "text"),
    [
        ("10.96.0.12:8080", "10.96.0.12", 8080, "10.96.0.12:8080"),
        ("172.16.0.1:80", "172.16.0.1", 80, "172.16.0.1:80"),
        ("172.31.255.255:1", "172.31.255.255", 1, "172.31.255.255:1"),
        ("192.168.1.1:65535", "192.168.1.1", 65535, "192.168.1.1:65535"),
        ("[fd00::12]:8080", "fd00::12", 8080, "[fd00::12]:8080"),
        ("[fc00:0:0::1]:80", "fc00::1", 80, "[fc00::1]:80"),
        ("[::ffff:10.0.0.1]:80", "::ffff:10.0.0.1", 80, "[::ffff:a00:1]:80"),  # judged as 10.0.0.1
        (" 10.0.0.1:80 ", "10.0.0.1", 80, "10.0.0.1:80"),
    ],
)
def test_upstream_parses(value: str, address: str, port: int, text: str) -> None:
    upstream = parse_upstream(value, ALLOWED)
    assert upstream == Upstream(ipaddress.ip_address(address), port)
    assert str(upstream) == text


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (None, "missing header x-modelpilot-upstream"),
        ("", "missing header x-modelpilot-upstream"),
        ("10.0.0.1", "must be IP:port or [IPv6]:port"),
        ("10.0.0.1:", "must be IP:port or [IPv6]:port"),
        ("10.0.0.1:http", "must be IP:port or [IPv6]:port"),
        ("10.0.0.1:-1", "must be IP:port or [IPv6]:port"),
        ("10.0.0.1:123456", "must be IP:port or [IPv6]:port"),
        ("10.0.0.1:0", "port 0 is out of range"),
        ("10.0.0.1:65536", "port 65536 is out of range"),
        ("model.ml.svc:8080", "'model.ml.svc' is not an IP address (names are not resolved)"),
        ("010.0.0.1:80", "is not an IP address"),
        ("10.0.0.1.5:80", "is not an IP address"),
        ("[fd00::1]", "must be IP:port or [IPv6]:port"),
        ("[fd00::1:80", "must be IP:port or [IPv6]:port"),
        ("fd00::1:80", "must be IPv4:port or [IPv6]:port"),
        ("[10.0.0.1]:80", "must be IPv4:port or [IPv6]:port"),
        ("8.8.8.8:80", "8.8.8.8 is outside the allowed upstream networks"),
        ("127.0.0.1:8080", "127.0.0.1 is outside the allowed"),
        ("169.254.169.254:80", "169.254.169.254 is outside the allowed"),
        ("172.32.0.1:80", "172.32.0.1 is outside the allowed"),
        ("0.0.0.0:80", "0.0.0.0 is outside the allowed"),
        ("[::1]:80", "::1 is outside the allowed"),
        ("[fe80::1]:80", "fe80::1 is outside the allowed"),
        ("[::ffff:127.0.0.1]:80", "is outside the allowed"),  # IPv4-mapped: judged as 127.0.0.1
        ("[2001:db8::1]:80", "2001:db8::1 is outside the allowed"),
    ],
)
def test_upstream_rejects(value: str | None, message: str) -> None:
    with pytest.raises(HeaderError) as err:
        parse_upstream(value, ALLOWED)
    assert message in str(err.value)


@pytest.mark.parametrize(
    ("address", "networks", "allowed"),
    [
        ("10.1.2.3", ["10.0.0.0/8"], True),
        ("11.1.2.3", ["10.0.0.0/8"], False),
        ("127.0.0.1", ["127.0.0.0/8", "::1/128"], True),
        ("::1", ["127.0.0.0/8", "::1/128"], True),
        ("::ffff:127.0.0.1", ["127.0.0.0/8"], True),
        ("::ffff:127.0.0.1", ["::ffff:0:0/96"], False),  # judged as the IPv4 address it reaches
        ("10.0.0.1", [], False),
    ],
)
def test_is_allowed(address: str, networks: list[str], allowed: bool) -> None:
    assert is_allowed(ipaddress.ip_address(address), parse_networks(networks)) is allowed


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        (["10.0.0.0/8"], ["10.0.0.0/8"]),
        (["10.0.0.0/8,fc00::/7", " 192.168.0.0/16 "], ["10.0.0.0/8", "fc00::/7", "192.168.0.0/16"]),
        (["", ","], []),
        (["10.1.2.3"], ["10.1.2.3/32"]),
    ],
)
def test_parse_networks(values: list[str], expected: list[str]) -> None:
    assert [str(n) for n in parse_networks(values)] == expected


@pytest.mark.parametrize("value", ["10.0.0.1/8", "10.0.0.0/33", "nonsense", "fc00::/129"])
def test_parse_networks_rejects(value: str) -> None:
    with pytest.raises(ValueError, match=f"allowed upstream '{value}' is not a CIDR network"):
        parse_networks([value])
