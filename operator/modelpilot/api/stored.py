"""Reading back the status the operator stored, whichever release wrote it (pure).

Status is the operator's own, but not necessarily this release's: after a downgrade under the newer
CRD it holds fields this release does not know; after an upgrade, fields this release expects may
be missing (an older release never wrote them, or an older CRD pruned them); and a value may fail a
check this release makes stricter. None of that may stop reconciling, so status is read part by
part here instead of with one `model_validate` that raises:

- unknown fields are dropped everywhere;
- outside the stable template an invalid value is dropped (with the list item holding it), so the
  field falls back to its default; but a canary with an unreadable value anywhere except in its
  analysis history is dropped whole: it starts again from step 0 rather than resume half a state;
- the stable template is read whole, unknown fields aside, or not at all: a template with a guessed
  part would run something nobody wrote. Why it could not be read is kept for the condition.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ValidationError

from modelpilot.api.status import ModelDeploymentStatus, ServingTemplate

M = TypeVar("M", bound=BaseModel)
# Every pass drops one value; status is small (at most 16 conditions and 10 analyses).
MAX_PASSES = 64


@dataclass(frozen=True)
class Salvaged(Generic[M]):
    value: M | None  # None: unreadable
    data: dict[str, Any] | None  # the input less what was dropped (the JSON `value` was read from)
    dropped: tuple[str, ...] = ()  # "path: why" for each value dropped, or for why it is unreadable


def _path(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "."


def _remove(data: Any, loc: tuple[Any, ...]) -> bool:
    """Delete the value at `loc`, or at the longest prefix of it that exists (a union's error
    location names the union member after the field)."""
    for end in range(len(loc), 0, -1):
        node = data
        try:
            for part in loc[: end - 1]:
                node = node[part]
            del node[loc[end - 1]]
            return True
        except (KeyError, IndexError, TypeError):
            continue
    return False


def _target(error: Any, drop_invalid: bool) -> tuple[Any, ...] | None:
    """What to drop for one validation error; None when nothing can be dropped (unreadable)."""
    loc = tuple(error["loc"])
    if error["type"] == "extra_forbidden":
        return loc
    if not drop_invalid:
        return None
    items = [i for i, part in enumerate(loc) if isinstance(part, int)]
    if items:
        return loc[: items[-1] + 1]  # the list item holding the bad value
    if error["type"] == "missing":
        return loc[:-1] or None  # the optional object that lacks it
    return loc or None


def salvage(model: type[M], data: Any, *, drop_invalid: bool = True) -> Salvaged[M]:
    """`data` read as `model` without ever raising: unknown fields dropped, and with `drop_invalid`
    invalid values too; None when what is left still does not validate."""
    if not isinstance(data, dict):
        return Salvaged(None, None, (f".: not an object: {type(data).__name__}",))
    work = copy.deepcopy(data)
    dropped: list[str] = []
    for _ in range(MAX_PASSES):
        try:
            return Salvaged(model.model_validate(work), work, tuple(dropped))
        except ValidationError as err:
            error = err.errors()[0]
        why = f"{_path(tuple(error['loc']))}: {error['msg']}"
        target = _target(error, drop_invalid)
        if target is None or not _remove(work, target):
            return Salvaged(None, None, (*dropped, why))
        dropped.append(why)
    return Salvaged(None, None, (*dropped, "too many invalid values"))


@dataclass(frozen=True)
class StoredStatus:
    """`status` as this release can use it."""

    data: dict[str, Any]  # every readable part, the stable template left out
    # A version has served (status.stable names one), even if this release cannot read its value:
    # the stable track then has something to protect.
    served: bool = False
    template: ServingTemplate | None = None  # the stable serving template, when stored and readable
    template_problem: str | None = None  # why a stored stable template cannot be used
    dropped: tuple[str, ...] = ()  # what was dropped elsewhere, "path: why"

    @property
    def stable(self) -> dict[str, Any]:
        return dict(self.data.get("stable") or {})

    @property
    def canary(self) -> dict[str, Any] | None:
        return self.data.get("canary")

    @property
    def conditions(self) -> list[dict[str, Any]]:
        return list(self.data.get("conditions") or [])


def read_status(raw: Any) -> StoredStatus:
    """The stored status, part by part (see the module docstring); never raises."""
    data = copy.deepcopy(raw) if isinstance(raw, dict) else {}
    stable = data.get("stable")
    served = isinstance(stable, dict) and bool(stable.get("version") or stable.get("revision"))
    template_raw = stable.pop("template", None) if isinstance(stable, dict) else None
    status = salvage(ModelDeploymentStatus, data)
    dropped = tuple(f"status.{d}" for d in status.dropped)
    if status.data and any(d.startswith("canary.") and not d.startswith("canary.analyses[") for d in status.dropped):
        status.data.pop("canary", None)
    if template_raw is None:
        return StoredStatus(data=status.data or {}, served=served, dropped=dropped)
    template = salvage(ServingTemplate, template_raw, drop_invalid=False)
    if template.value is None:
        problem = "status.stable.template cannot be read: " + template.dropped[-1]
        return StoredStatus(data=status.data or {}, served=served, template_problem=problem, dropped=dropped)
    return StoredStatus(data=status.data or {}, served=served, template=template.value,
                        dropped=dropped + tuple(f"status.stable.template.{d}" for d in template.dropped))
