"""A watch of a kind whose CRD was deleted ends quietly instead of stopping the operator."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from kopf._cogs.clients import errors, watching

from modelpilot.k8s import watch_guard


def _stream(*events: Any, then: BaseException | None = None) -> Any:
    async def fake(**_: Any) -> AsyncIterator[Any]:
        for event in events:
            yield event
        if then is not None:
            raise then
    return fake


def _drain(**kwargs: Any) -> list[Any]:
    async def collect() -> list[Any]:
        return [event async for event in watch_guard._guarded(**kwargs)]
    return asyncio.run(collect())


@pytest.mark.parametrize(("events", "then", "expected"), [
    (("a", "b"), None, ["a", "b"]),
    (("a",), errors.APINotFoundError({"message": "404 page not found"}, status=404, headers={}), ["a"]),
    ((), errors.APINotFoundError({"message": "404 page not found"}, status=404, headers={}), []),
])
def test_a_404_ends_the_stream_after_what_came_before(monkeypatch: pytest.MonkeyPatch, events: tuple[Any, ...],
                                                       then: BaseException | None, expected: list[Any]) -> None:
    monkeypatch.setattr(watch_guard, "_ORIGINAL", _stream(*events, then=then))
    assert _drain(resource="scaledobjects.v1alpha1.keda.sh", namespace="ml") == expected


@pytest.mark.parametrize("error", [
    errors.APIForbiddenError({"message": "forbidden"}, status=403, headers={}),
    watching.WatchingError("Error in the watch-stream: {}"),
])
def test_other_errors_still_reach_kopf(monkeypatch: pytest.MonkeyPatch, error: BaseException) -> None:
    monkeypatch.setattr(watch_guard, "_ORIGINAL", _stream("a", then=error))
    with pytest.raises(type(error)):
        _drain(resource="scaledobjects.v1alpha1.keda.sh")


def test_install_replaces_what_kopfs_infinite_watch_calls(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(watching, "continuous_watch", watching.continuous_watch)  # restored afterwards
    watch_guard.install()
    assert watching.continuous_watch is watch_guard._guarded
