"""`modelpilot activator` settings: flags, falling back to MODELPILOT_ACTIVATOR_* variables (pure).

Flags win over the environment, as for `modelpilot serve`.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from modelpilot.activator.target import DEFAULT_ALLOWED, Network, parse_networks
from modelpilot.fetch_settings import parse_size

ENV_PREFIX = "MODELPILOT_ACTIVATOR_"
DEFAULT_HOST = "0.0.0.0"
DEFAULT_PORT = 8012
DEFAULT_METRICS_PORT = 9092
DEFAULT_HOLD_TIMEOUT = 300.0
DEFAULT_MAX_BODY_BYTES = 64 * 2**20
# Below a pod's default 30 s termination grace period.
DEFAULT_GRACEFUL_TIMEOUT = 25.0
LOG_LEVELS = ("debug", "info", "warning", "error")


class ConfigError(ValueError):
    """Flags and environment do not make a valid configuration (exit code 2)."""


@dataclass(frozen=True)
class ActivatorSettings:
    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    metrics_host: str = DEFAULT_HOST
    metrics_port: int = DEFAULT_METRICS_PORT
    hold_timeout: float = DEFAULT_HOLD_TIMEOUT
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    allowed: tuple[Network, ...] = field(default_factory=lambda: parse_networks(DEFAULT_ALLOWED))
    graceful_timeout: float = DEFAULT_GRACEFUL_TIMEOUT
    log_level: str = "info"


def resolve(args: Any, environ: Mapping[str, str] | None = None) -> ActivatorSettings:
    """argparse namespace (attributes may be None: not given) + environment -> settings."""
    env = os.environ if environ is None else environ

    def pick(name: str) -> str | None:
        flag = getattr(args, name, None)
        if flag is not None:
            return str(flag)
        return env.get(ENV_PREFIX + name.upper()) or None

    host = pick("host") or DEFAULT_HOST
    port = _port(pick("port"), "port", DEFAULT_PORT)
    metrics_host = pick("metrics_host") or host
    metrics_port = _port(pick("metrics_port"), "metrics port", DEFAULT_METRICS_PORT)
    if metrics_port == port and metrics_port != 0:
        raise ConfigError(f"the metrics port must differ from the proxy port ({port})")
    try:
        allowed = _allowed(getattr(args, "allow_upstream", None), env.get(ENV_PREFIX + "ALLOW_UPSTREAM"))
        max_body = parse_size(pick("max_body_bytes") or str(DEFAULT_MAX_BODY_BYTES), "--max-body-bytes")
    except ValueError as err:
        raise ConfigError(str(err)) from None
    log_level = (getattr(args, "log_level", None) or env.get("MODELPILOT_LOG_LEVEL") or "info").lower()
    if log_level not in LOG_LEVELS:
        raise ConfigError(f"log level {log_level!r} is not one of {', '.join(LOG_LEVELS)}")
    return ActivatorSettings(
        host=host,
        port=port,
        metrics_host=metrics_host,
        metrics_port=metrics_port,
        hold_timeout=_seconds(pick("hold_timeout"), "hold timeout", DEFAULT_HOLD_TIMEOUT),
        max_body_bytes=max_body,
        allowed=allowed,
        graceful_timeout=_seconds(pick("graceful_timeout"), "graceful timeout", DEFAULT_GRACEFUL_TIMEOUT),
        log_level=log_level,
    )


def _allowed(flags: Sequence[str] | None, env_value: str | None) -> tuple[Network, ...]:
    """Given networks replace the defaults (a cluster may use other ranges, or fewer of them)."""
    values = list(flags) if flags else [env_value] if env_value else list(DEFAULT_ALLOWED)
    networks = parse_networks(values)
    if not networks:
        raise ValueError("no allowed upstream networks: every request would be refused")
    return networks


def _port(text: str | None, what: str, default: int) -> int:
    if text is None:
        return default
    if not text.strip().isdigit() or not 0 <= int(text) <= 65535:
        raise ConfigError(f"the {what} must be a number from 0 to 65535, got {text!r}")
    return int(text)


def _seconds(text: str | None, what: str, default: float) -> float:
    if text is None:
        return default
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not 0 < value < math.inf:
        raise ConfigError(f"the {what} must be a positive number of seconds, got {text!r}")
    return value
