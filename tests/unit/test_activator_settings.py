"""`modelpilot activator` flags and environment (pure: no aiohttp)."""

from __future__ import annotations

from typing import Any

import pytest

from modelpilot.activator.command import add_activator_command
from modelpilot.activator.settings import ActivatorSettings, ConfigError, resolve
from modelpilot.cli.main import build_parser

ENV = "MODELPILOT_ACTIVATOR_"


def _resolve(argv: list[str], env: dict[str, str] | None = None) -> ActivatorSettings:
    args = build_parser().parse_args(["activator", *argv])
    assert args.func.__name__ == "run_activator"
    return resolve(args, env or {})


def _summary(s: ActivatorSettings) -> dict[str, Any]:
    return {"host": s.host, "port": s.port, "metrics": f"{s.metrics_host}:{s.metrics_port}",
            "hold": s.hold_timeout, "body": s.max_body_bytes, "allowed": [str(n) for n in s.allowed]}  # fmt: skip


DEFAULTS = {"host": "0.0.0.0", "port": 8012, "metrics": "0.0.0.0:9092", "hold": 300.0, "body": 64 * 2**20,
            "allowed": ["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "fc00::/7"]}  # fmt: skip


@pytest.mark.parametrize(
    ("argv", "env", "changed"),
    [
        ([], {}, {}),
        (["--host", "127.0.0.1"], {}, {"host": "127.0.0.1", "metrics": "127.0.0.1:9092"}),  # metrics: same host
        (["--host", "::", "--metrics-host", "127.0.0.1", "--metrics-port", "9100"], {},
         {"host": "::", "metrics": "127.0.0.1:9100"}),
        (["--port", "9000", "--hold-timeout", "2.5", "--max-body-bytes", "16Mi"], {},
         {"port": 9000, "hold": 2.5, "body": 16 * 2**20}),
        (["--allow-upstream", "127.0.0.0/8", "::1/128"], {}, {"allowed": ["127.0.0.0/8", "::1/128"]}),
        (["--allow-upstream", "10.0.0.0/8", "--allow-upstream", "fd00::/8"], {},
         {"allowed": ["10.0.0.0/8", "fd00::/8"]}),
        ([], {f"{ENV}PORT": "7000", f"{ENV}HOLD_TIMEOUT": "60", f"{ENV}MAX_BODY_BYTES": "1000",
              f"{ENV}ALLOW_UPSTREAM": "10.0.0.0/16, 10.1.0.0/16", f"{ENV}METRICS_PORT": "7001"},
         {"port": 7000, "hold": 60.0, "body": 1000, "allowed": ["10.0.0.0/16", "10.1.0.0/16"],
          "metrics": "0.0.0.0:7001"}),
        (["--port", "7500", "--allow-upstream", "192.168.0.0/16"],  # flags win over the environment
         {f"{ENV}PORT": "7000", f"{ENV}ALLOW_UPSTREAM": "10.0.0.0/8"},
         {"port": 7500, "allowed": ["192.168.0.0/16"]}),
    ],
)
def test_settings(argv: list[str], env: dict[str, str], changed: dict[str, Any]) -> None:
    assert _summary(_resolve(argv, env)) == {**DEFAULTS, **changed}


@pytest.mark.parametrize(
    ("argv", "env", "message"),
    [
        (["--hold-timeout", "0"], {}, "hold timeout must be a positive number"),
        ([], {f"{ENV}HOLD_TIMEOUT": "soon"}, "hold timeout must be a positive number"),
        (["--max-body-bytes", "lots"], {}, "--max-body-bytes must be a number of bytes or a quantity"),
        (["--port", "70000"], {}, "the port must be a number from 0 to 65535"),
        ([], {f"{ENV}METRICS_PORT": "x"}, "the metrics port must be a number"),
        (["--metrics-port", "8012"], {}, "the metrics port must differ from the proxy port"),
        (["--allow-upstream", "10.0.0.1/8"], {}, "allowed upstream '10.0.0.1/8' is not a CIDR network"),
        ([], {f"{ENV}ALLOW_UPSTREAM": ","}, "no allowed upstream networks"),
        ([], {"MODELPILOT_LOG_LEVEL": "loud"}, "log level 'loud'"),
    ],
)
def test_bad_settings(argv: list[str], env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        _resolve(argv, env)


def test_cli_exits_2_on_bad_settings(capsys: pytest.CaptureFixture[str]) -> None:
    args = build_parser().parse_args(["activator", "--hold-timeout", "-1"])
    assert args.func(args) == 2
    assert "modelpilot activator: the hold timeout must be a positive number" in capsys.readouterr().err


def test_command_registers_on_any_parser() -> None:
    import argparse

    parser = argparse.ArgumentParser()
    add_activator_command(parser.add_subparsers())
    args = parser.parse_args(["activator", "--allow-upstream", "10.0.0.0/8"])
    assert args.allow_upstream == ["10.0.0.0/8"]
