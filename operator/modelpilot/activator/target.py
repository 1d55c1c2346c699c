"""The two routing headers the HTTPRoute sets on every request, parsed and checked (pure).

    x-modelpilot-upstream: 10.96.12.7:8080        (or [fd00::7]:8080)  the model Service's ClusterIP
    x-modelpilot-target:   ml/fraud/stable                             namespace/modeldeployment/track

Only IP literals are accepted as upstreams (no DNS lookups while holding, and a name could not be
checked against the allowed networks), and only inside the allowed networks: a client that can
reach the activator directly must not make it connect anywhere it likes.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

UPSTREAM_HEADER = "x-modelpilot-upstream"
TARGET_HEADER = "x-modelpilot-target"
TRACKS = ("stable", "canary")
# Cluster-internal address ranges: RFC 1918 and IPv6 unique local addresses.
DEFAULT_ALLOWED = ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "fc00::/7")

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
_PORT = re.compile(r"^[0-9]{1,5}$")


class HeaderError(ValueError):
    """A routing header is missing or malformed, or names an upstream that is not allowed (a 400)."""


@dataclass(frozen=True)
class Target:
    """Which model a request is for: the metric labels and the activation key."""

    namespace: str
    deployment: str
    track: str

    def __str__(self) -> str:
        return f"{self.namespace}/{self.deployment}/{self.track}"


@dataclass(frozen=True)
class Upstream:
    address: ipaddress.IPv4Address | ipaddress.IPv6Address
    port: int

    @property
    def host(self) -> str:
        """The address as a URL host: IPv6 in brackets."""
        return f"[{self.address}]" if self.address.version == 6 else str(self.address)

    def __str__(self) -> str:
        return f"{self.host}:{self.port}"


def parse_target(value: str | None) -> Target:
    if value is None or not value.strip():
        raise HeaderError(f"missing header {TARGET_HEADER} (namespace/modeldeployment/track)")
    parts = value.strip().split("/")
    if len(parts) != 3:
        raise HeaderError(f"{TARGET_HEADER} must be namespace/modeldeployment/track, got {_quote(value)}")
    namespace, deployment, track = parts
    for what, part in (("namespace", namespace), ("modeldeployment", deployment)):
        if not _LABEL.match(part):
            raise HeaderError(f"{TARGET_HEADER}: {what} {_quote(part)} is not a DNS label")
    if track not in TRACKS:
        raise HeaderError(f"{TARGET_HEADER}: track {_quote(track)} is not one of {', '.join(TRACKS)}")
    return Target(namespace, deployment, track)


def parse_upstream(value: str | None, allowed: Sequence[Network]) -> Upstream:
    """`value` as IP:port (IPv6 as [addr]:port), inside one of the `allowed` networks."""
    if value is None or not value.strip():
        raise HeaderError(f"missing header {UPSTREAM_HEADER} (IP:port of the model's Service)")
    text = value.strip()
    if text.startswith("["):
        host, sep, port_text = text[1:].partition("]:")
        version = 6
    else:
        host, sep, port_text = text.rpartition(":")
        version = 4
    if not sep or not _PORT.match(port_text):
        raise HeaderError(f"{UPSTREAM_HEADER} must be IP:port or [IPv6]:port, got {_quote(value)}")
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        raise HeaderError(f"{UPSTREAM_HEADER}: {_quote(host)} is not an IP address (names are not resolved)") from None
    if address.version != version:
        raise HeaderError(f"{UPSTREAM_HEADER} must be IPv4:port or [IPv6]:port, got {_quote(value)}")
    port = int(port_text)
    if not 0 < port < 65536:
        raise HeaderError(f"{UPSTREAM_HEADER}: port {port} is out of range")
    if not is_allowed(address, allowed):
        raise HeaderError(f"{UPSTREAM_HEADER}: {address} is outside the allowed upstream networks")
    return Upstream(address, port)


def is_allowed(address: ipaddress.IPv4Address | ipaddress.IPv6Address, allowed: Iterable[Network]) -> bool:
    # An IPv4-mapped IPv6 address connects to the IPv4 address: judge it as that one.
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return any(address.version == net.version and address in net for net in allowed)


def parse_networks(values: Iterable[str]) -> tuple[Network, ...]:
    """CIDRs (several per value, comma-separated, allowed) as networks; ValueError names a bad one."""
    networks = []
    for value in values:
        for item in value.split(","):
            if not item.strip():
                continue
            try:
                networks.append(ipaddress.ip_network(item.strip(), strict=True))
            except ValueError as err:
                raise ValueError(f"allowed upstream {item.strip()!r} is not a CIDR network ({err})") from None
    return tuple(networks)


def _quote(value: str) -> str:
    """A client's header value in an error message: quoted and cut short."""
    return repr(value if len(value) <= 80 else value[:80] + "...")
