"""Decision log lines: one structured line per decision, always naming the ModelDeployment
(`namespace/name what key=value ...`)."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

RECONCILE_LOG = logging.getLogger("modelpilot.reconcile")


def decision_log(namespace: str, name: str, what: str, fields: Mapping[str, Any],
                 logger: logging.Logger | None = None) -> None:
    """Log `what` with `fields` at INFO on `logger` (the reconciler's by default)."""
    detail = " ".join(f"{k}={v}" for k, v in fields.items())
    (logger or RECONCILE_LOG).info("%s/%s %s %s", namespace, name, what, detail)
