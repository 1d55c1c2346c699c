"""Keep the operator up when a watched kind's CRD is deleted while it runs.

Kopf notices a deleted CRD and stops watching its kind, but a watch (or re-list) request that
reaches the API server in between gets "404 page not found", and Kopf treats any error of a watch
stream as fatal: the whole operator exits. Deleting an optional add-on (KEDA, Envoy Gateway) must
not take the operator down, so a 404 here ends that stream instead; Kopf then waits its reconnect
backoff and lists again, until its CRD observer cancels the watcher or the kind is served again.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from typing import Any

from kopf._cogs.clients import errors, watching

log = logging.getLogger("modelpilot.watch")

_ORIGINAL: Callable[..., AsyncIterator[Any]] = watching.continuous_watch


async def _guarded(*, resource: Any, namespace: Any = None, **kwargs: Any) -> AsyncIterator[Any]:
    try:
        async for event in _ORIGINAL(resource=resource, namespace=namespace, **kwargs):
            yield event
    except errors.APINotFoundError:
        where = f"in {namespace}" if namespace else "cluster-wide"
        log.warning("watch of %s %s: the API server no longer serves it (its CRD was deleted?); "
                    "retrying until it is served again or Kopf stops watching it", resource, where)


def install() -> None:
    """Once per process, before Kopf starts its watchers."""
    watching.continuous_watch = _guarded  # type: ignore[assignment]
