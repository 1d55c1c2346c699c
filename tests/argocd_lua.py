"""Run the Argo CD Lua of docs/argocd/ the way Argo CD does, with lupa's Lua 5.1 (gopher-lua,
which Argo CD embeds, implements Lua 5.1).

Argo CD's sandbox opens only the base, table and package libraries plus a safe `os` reachable
through require (its Lua VM setup); here string, math, io, os, debug and the string metatable are
removed, so a script that would fail in Argo CD fails here too. The object goes in as a global
`obj` (JSON arrays as sequences, maps as tables) and the returned table comes back the way
Argo CD reads it: an empty table is a JSON array, put back to a map where the input had a map
(Argo CD's cleanReturnedObj).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

try:
    from lupa.lua51 import LuaRuntime
except ImportError:  # pragma: no cover - a lupa build without the bundled 5.1
    from lupa import LuaRuntime

ARGOCD = Path(__file__).resolve().parents[1] / "docs" / "argocd"
ACTIONS = ("promote", "abort", "retry", "pause", "resume")
HEALTH_STATUSES = {"Healthy", "Progressing", "Degraded", "Suspended", "Missing", "Unknown"}


def script(name: str) -> str:
    """health, discovery, or an action name."""
    if name == "health":
        return (ARGOCD / "health.lua").read_text()
    if name == "discovery":
        return (ARGOCD / "actions" / "discovery.lua").read_text()
    return (ARGOCD / "actions" / name / "action.lua").read_text()


def _sandbox() -> Any:
    lua = LuaRuntime(unpack_returned_tuples=False, register_eval=False, register_builtins=False)
    lua.execute("""
        debug.setmetatable("", nil)
        string, math, io, os, debug, utf8, python = nil, nil, nil, nil, nil, nil, nil
        dofile, loadfile = nil, nil
    """)
    return lua


def _to_lua(lua: Any, value: Any) -> Any:
    if isinstance(value, Mapping):
        table = lua.table()
        for key, item in value.items():
            if item is not None:
                table[key] = _to_lua(lua, item)
        return table
    if isinstance(value, list | tuple):
        table = lua.table()
        for index, item in enumerate(value, start=1):
            table[index] = _to_lua(lua, item)
        return table
    return value


def _from_lua(value: Any) -> Any:
    if not hasattr(value, "items"):
        if isinstance(value, float) and value.is_integer():
            return int(value)
        return value
    items = list(value.items())
    if not items:
        return []  # what gopher-json makes of an empty table
    keys = [k for k, _ in items]
    if all(isinstance(k, int | float) for k in keys) and sorted(keys) == list(range(1, len(keys) + 1)):
        return [_from_lua(v) for _, v in sorted(items)]
    return {str(k): _from_lua(v) for k, v in items}


def _clean(new: Any, old: Any) -> Any:
    """Argo CD's cleanReturnedObj: an empty array where the input had a map is the map."""
    if isinstance(new, dict) and isinstance(old, dict):
        return {k: _clean(v, old[k]) if k in old else v for k, v in new.items()}
    if isinstance(new, list) and isinstance(old, dict) and not new:
        return old
    if isinstance(new, list) and isinstance(old, list):
        return [_clean(v, old[i]) if i < len(old) else v for i, v in enumerate(new)]
    return new


def run(source: str, obj: Mapping[str, Any]) -> Any:
    lua = _sandbox()
    lua.globals().obj = _to_lua(lua, copy.deepcopy(dict(obj)))
    result = lua.execute(source)
    if result is None or not hasattr(result, "items"):
        raise AssertionError(f"the script returned {result!r}, not a table")
    return _from_lua(result)


def health(obj: Mapping[str, Any]) -> dict[str, str]:
    result = run(script("health"), obj)
    assert isinstance(result, dict) and result.get("status") in HEALTH_STATUSES, result
    return result


def discover(obj: Mapping[str, Any]) -> dict[str, bool]:
    """Action name -> enabled, as Argo CD lists them."""
    result = run(script("discovery"), obj)
    assert isinstance(result, dict), result
    return {name: not bool((spec or {}).get("disabled", False)) if isinstance(spec, dict) else True
            for name, spec in result.items()}


def act(name: str, obj: Mapping[str, Any]) -> dict[str, Any]:
    """The object the action returns (Argo CD then patches the live object with the difference)."""
    result = run(script(name), obj)
    assert isinstance(result, dict), result
    return dict(_clean(result, dict(obj)))


def merge_patch(old: Any, new: Any) -> Any:
    """The RFC 7386 merge patch from `old` to `new` (what Argo CD sends for an action's result)."""
    if not isinstance(old, dict) or not isinstance(new, dict):
        return new
    patch: dict[str, Any] = {}
    for key, value in new.items():
        if key not in old:
            patch[key] = value
        elif old[key] != value:
            patch[key] = merge_patch(old[key], value)
    for key in old:
        if key not in new:
            patch[key] = None
    return patch


def argocd_cm_data() -> dict[str, Any]:
    """The data keys of docs/argocd/argocd-cm.yaml, the actions key parsed (it is YAML itself)."""
    cm = yaml.safe_load((ARGOCD / "argocd-cm.yaml").read_text())
    return dict(cm["data"])
