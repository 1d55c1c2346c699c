"""The output prefix as a whole: whose files are there, making room, and finishing the run.

Ownership. A shard first writes a claim, `_manifests/claim-<shard>.<run id>`, before any other
file of its own. A shard's part, errors and manifest belong to this run when the run's claim for
that shard exists; `_manifest.json` and `_SUCCESS` name their run inside. A check that lists the
output first and its `_manifests/` folder after that sees the claim of any sibling shard whose
part it saw, so shards of one run never take each other for a foreign run.

failIfExists: anything under the output that is not this run's (another run's claim, part,
manifest, temporary file, or any other file) refuses the run. overwrite: each shard deletes its own
index's files of other runs (and leftovers of its killed attempts); shard 0 also deletes the files
of shard indexes >= shards, left by an earlier, larger run.

Completion: after its manifest, a shard lists `_manifests/`; when the manifests of all shards are
there and name this run, it writes `_manifest.json`, then `_SUCCESS`. Their content comes only from
the shard manifests, so two shards finishing together write the same bytes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from modelpilot.batch import contract
from modelpilot.batch.storage import Location

_SHARD_FILE = re.compile(
    r"^(?:part-(?P<part>\d+)\.[A-Za-z0-9]+|errors/part-(?P<errors>\d+)\.jsonl"
    r"|_manifests/shard-(?P<manifest>\d+)\.json|_manifests/claim-(?P<claim>\d+)\.(?P<run>[A-Za-z0-9_-]+))$"
)
# Location.create's temporary names: <folder>/.<base>.<run>.<8 hex>.tmp
_TEMP = re.compile(r"^(?P<folder>(?:.*/)?)\.(?P<base>.+)\.(?P<run>[A-Za-z0-9_-]+)\.[0-9a-f]{8}\.tmp$")
_RUN_FILES = (contract.RUN_MANIFEST, contract.SUCCESS_MARKER)


@dataclass(frozen=True)
class Entry:
    """What a name under the output is: a run file, a shard's file (kind, shard, run for claims and
    temporary files), or something else."""

    kind: str  # run | part | errors | manifest | claim | temp | other
    shard: int | None = None
    run: str | None = None


def classify(name: str) -> Entry:
    if name in _RUN_FILES:
        return Entry("run")
    temp = _TEMP.match(name)
    if temp:
        inner = classify(temp["folder"] + temp["base"])
        return Entry("temp", inner.shard, temp["run"])
    match = _SHARD_FILE.match(name)
    if match is None:
        return Entry("other")
    kind = next(k for k in ("part", "errors", "manifest", "claim") if match[k] is not None)
    return Entry(kind, int(match[kind]), match["run"])


def _run_of(out: Location, name: str) -> str | None:
    document = out.read_json(name)
    return None if document is None else str(document.get("runId"))


def foreign_files(out: Location, run_id: str) -> list[str]:
    """The names under the output that are not this run's (mode failIfExists)."""
    names = out.list()
    ours = contract.safe_run_id(run_id)
    # Listed after everything else: a sibling's claim is always written before its other files.
    claimed = {e.shard for e in map(classify, out.list(contract.MANIFEST_DIR)) if e.kind == "claim" and e.run == ours}
    foreign = []
    for name in names:
        entry = classify(name)
        if entry.kind == "run":
            mine = _run_of(out, name) == run_id
        elif entry.kind in ("claim", "temp"):
            mine = entry.run == ours
        elif entry.kind == "other":
            mine = False
        else:
            mine = entry.shard in claimed
        if not mine:
            foreign.append(name)
    return foreign


def stale_files(out: Location, run_id: str, shard: int, shards: int) -> list[str]:
    """What a shard deletes in mode overwrite: its own index's files (but for this run's claim)
    and leftovers, other runs' `_manifest.json`/`_SUCCESS`, and (shard 0) indexes >= shards."""
    ours = contract.safe_run_id(run_id)
    stale = []
    for name in out.list():
        entry = classify(name)
        if entry.kind == "run":
            if _run_of(out, name) != run_id:
                stale.append(name)
        elif entry.kind == "temp" and entry.shard is None:
            if shard == 0 and entry.run != ours:  # a killed completion of another run
                stale.append(name)
        elif entry.shard == shard:
            if not (entry.kind == "claim" and entry.run == ours):
                stale.append(name)
        elif entry.shard is not None and entry.shard >= shards and shard == 0:
            stale.append(name)
    return stale


def own_leftovers(out: Location, shard: int) -> list[str]:
    """Temporary files of this shard index (a killed attempt's): never taken for parts, removed."""
    return [n for n in out.list() if (e := classify(n)).kind == "temp" and e.shard == shard]


def shard_manifests(out: Location, run_id: str, shards: int) -> list[dict[str, Any]] | None:
    """Every shard's manifest when all are there and belong to this run, else None."""
    present = set(out.list(contract.MANIFEST_DIR))
    wanted = [contract.manifest_file(k) for k in range(shards)]
    if any(name not in present for name in wanted):
        return None
    manifests = []
    for name in wanted:
        document = out.read_json(name)
        if document is None or document.get("runId") != run_id:
            return None
        manifests.append(document)
    return manifests


def run_manifest(manifests: list[dict[str, Any]]) -> dict[str, Any]:
    """The run's manifest from its shards' (deterministic: the same shards give the same bytes)."""
    first = manifests[0]
    return {
        "runId": first["runId"],
        "job": first["job"],
        "name": first["name"],
        "namespace": first["namespace"],
        "shards": first["shards"],
        "model": first["model"],
        "format": first["format"],
        "rowsIn": sum(m["rowsIn"] for m in manifests),
        "rowsOut": sum(m["rowsOut"] for m in manifests),
        "rowsFailed": sum(m["rowsFailed"] for m in manifests),
        "startedAt": min(m["startedAt"] for m in manifests),
        "completedAt": max(m["completedAt"] for m in manifests),
        "parts": [
            {
                "shard": m["shard"],
                "part": m["part"],
                "sha256": m["partSha256"],
                "rows": m["rowsOut"],
                "rowsFailed": m["rowsFailed"],
                "errors": m["errors"],
            }
            for m in manifests
        ],
    }


def complete(out: Location, run_id: str, job: str, shards: int) -> bool:
    """Write `_manifest.json` then `_SUCCESS` when every shard of the run is done; whether done."""
    marker = out.read_json(contract.SUCCESS_MARKER)
    if marker is not None and marker.get("runId") == run_id:
        return True
    manifests = shard_manifests(out, run_id, shards)
    if manifests is None:
        return False
    tag = contract.safe_run_id(run_id)
    out.write_json(contract.RUN_MANIFEST, run_manifest(manifests), tag)
    out.write_json(contract.SUCCESS_MARKER, {"runId": run_id, "job": job}, tag)
    return True
