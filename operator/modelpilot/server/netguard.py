"""Link-local and cloud-metadata addresses are refused by `modelpilot fetch`.

A model URI, a redirect it leads to, or an S3 endpoint pointing at 169.254.169.254 (or another
metadata address) would make the fetch step read the node's cloud credentials into the model
volume. Unless MODELPILOT_ALLOW_LINK_LOCAL=true, such addresses are refused twice: host names are
resolved and every address checked before the download starts (a clear error), and every
connection the HTTP client opens is checked again on the address it actually connects to (which
covers redirects and DNS answers that change in between).
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Mapping
from typing import Any

ALLOW_ENV = "MODELPILOT_ALLOW_LINK_LOCAL"
BLOCKED_NETWORKS = (
    ipaddress.ip_network("169.254.0.0/16"),  # IPv4 link-local: AWS, GCP, Azure, OpenStack metadata, ECS
    ipaddress.ip_network("fe80::/10"),  # IPv6 link-local
    ipaddress.ip_network("fd00:ec2::254/128"),  # AWS instance metadata over IPv6
    ipaddress.ip_network("100.100.100.200/32"),  # Alibaba Cloud metadata
)


class LinkLocalRefused(OSError):
    """A connection to a refused address (an OSError, so HTTP clients treat it as a connect failure)."""


def allowed(env: Mapping[str, str]) -> bool:
    return env.get(ALLOW_ENV, "").strip().lower() in ("1", "true", "yes")


def is_blocked(address: str) -> bool:
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return any(ip in network for network in BLOCKED_NETWORKS)


def refusal(address: str, host: str | None = None) -> str:
    subject = f"{host} resolves to {address}, which" if host and host != address else address
    return f"{subject} is a link-local or cloud-metadata address; refused (set {ALLOW_ENV}=true to allow it)"


def check_host(host: str, port: int | None) -> None:
    """Raise LinkLocalRefused when `host` is, or resolves to, a refused address. A name that does
    not resolve passes: the download then fails with its own, clearer error."""
    host = host.strip("[]")
    if is_blocked(host.rstrip(".")):  # "169.254.169.254." is that address too
        raise LinkLocalRefused(refusal(host))
    try:
        infos = socket.getaddrinfo(host, port or 0, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError, ValueError):
        return
    for info in infos:
        address = str(info[4][0])
        if is_blocked(address):
            raise LinkLocalRefused(refusal(address, host))


def guarded_socket(addr_info: Any) -> socket.socket:
    """aiohttp's socket factory: the last check, on the address about to be connected to."""
    family, kind, proto, _, address = addr_info
    if is_blocked(str(address[0])):
        raise LinkLocalRefused(refusal(str(address[0])))
    return socket.socket(family=family, type=kind, proto=proto)


async def guarded_client(**kwargs: Any) -> Any:
    """fsspec's `get_client` for the http filesystem: an aiohttp session that cannot connect to a
    refused address."""
    import aiohttp

    return aiohttp.ClientSession(connector=aiohttp.TCPConnector(socket_factory=guarded_socket), **kwargs)


def find_refusal(error: BaseException) -> LinkLocalRefused | None:
    """The LinkLocalRefused behind a library's connection error, if that is what it is."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        if isinstance(current, LinkLocalRefused):
            return current
        seen.add(id(current))
        nested = getattr(current, "os_error", None)  # aiohttp's ClientConnectorError
        if isinstance(nested, LinkLocalRefused):
            return nested
        current = current.__cause__ or current.__context__
    return None
