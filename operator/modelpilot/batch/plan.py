"""Which part of the input one shard scores: pure functions, no I/O.

Every shard computes the whole plan from the same listing and keeps its own share, so shards
never talk to each other and a retried shard scores exactly what its first attempt did.

- At least as many files as shards: whole files, in name order, in contiguous groups balanced by
  size (every shard gets at least one file).
- Fewer files than shards: the files are cut into `shards` pieces in total, each file into a number
  of pieces proportional to its size (at least one); shard i scores piece i. A Parquet piece is a
  range of row groups (empty when the file has fewer row groups than pieces); a CSV or JSON-lines
  piece is a byte range that owns the lines *starting* inside it, so every line has one owner.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

UnitKind = Literal["file", "rowGroups", "bytes"]


@dataclass(frozen=True)
class InputFile:
    """One input file: its filesystem path, its name relative to the input prefix, its size and,
    for Parquet when files are cut, the rows of each row group (from the footer)."""

    path: str
    name: str
    size: int
    row_groups: tuple[int, ...] | None = None


@dataclass(frozen=True)
class WorkUnit:
    """A whole file, the row groups [start, stop) of a Parquet file, or the lines starting in the
    bytes [start, stop) of a text file. `first_row`: rows of the file before the unit (row groups)."""

    path: str
    name: str
    kind: UnitKind
    start: int = 0
    stop: int = 0
    first_row: int = 0

    def describe(self) -> dict[str, object]:
        """The unit as the manifest records it."""
        if self.kind == "file":
            return {"file": self.name}
        return {"file": self.name, self.kind: [self.start, self.stop]}


def contiguous_groups(weights: Sequence[float], groups: int) -> list[int]:
    """The group of each item: contiguous, in order, balanced by weight. With at least as many
    items as groups every group gets one item or more; with fewer, item i goes to group i.

    Each item aims at the group where the middle of its weight falls, clamped so that the groups
    before it and after it can still each get an item, and so that no group is skipped."""
    count = len(weights)
    if count < groups:
        return list(range(count))
    total = float(sum(weights))
    if total <= 0:
        weights, total = [1.0] * count, float(count)
    assigned: list[int] = []
    before = 0.0
    for index, weight in enumerate(weights):
        target = min(groups - 1, int(groups * (before + weight / 2) / total))
        before += weight
        if not assigned:
            assigned.append(0)
            continue
        low = max(assigned[-1], groups - count + index)  # the items left must cover the groups left
        high = min(assigned[-1] + 1, index)  # no group skipped, none left empty behind us
        assigned.append(min(max(target, low), high))
    return assigned


def pieces_per_file(sizes: Sequence[int], pieces: int) -> list[int]:
    """How many pieces each file is cut into, in proportion to size with at least one each; the
    counts add up to `pieces`. Largest remainder: each file gets the whole part of its quota (at
    least 1), then the files furthest below their quota get one more (ties: the earlier file), or,
    when the minimum of 1 overshot, the files furthest above theirs give one back."""
    if not sizes:
        return []
    if pieces < len(sizes):
        raise ValueError(f"{len(sizes)} files cannot be cut into {pieces} pieces")
    weights = list(sizes) if sum(sizes) > 0 else [1] * len(sizes)
    total = sum(weights)
    quotas = [pieces * w / total for w in weights]
    counts = [max(1, math.floor(q)) for q in quotas]
    deficit = pieces - sum(counts)
    for i in sorted(range(len(sizes)), key=lambda i: (counts[i] - quotas[i], i))[: max(deficit, 0)]:
        counts[i] += 1
    # Overshoot (small files bumped to 1): take from the file most above its quota, one at a time.
    heap = [(quotas[i] - counts[i], -i) for i in range(len(sizes)) if counts[i] > 1]
    heapq.heapify(heap)
    for _ in range(max(-deficit, 0)):
        _, negative = heapq.heappop(heap)
        i = -negative
        counts[i] -= 1
        if counts[i] > 1:
            heapq.heappush(heap, (quotas[i] - counts[i], -i))
    return counts


def byte_ranges(size: int, pieces: int) -> list[tuple[int, int]]:
    """[start, stop) byte ranges cutting `size` bytes into `pieces` (they cover it exactly)."""
    return [(size * k // pieces, size * (k + 1) // pieces) for k in range(pieces)]


def row_group_ranges(rows: Sequence[int], pieces: int) -> list[tuple[int, int]]:
    """[start, stop) row-group ranges cutting a Parquet file into `pieces`, balanced by rows."""
    owner = contiguous_groups(rows, pieces)
    ranges = []
    for piece in range(pieces):
        members = [i for i, g in enumerate(owner) if g == piece]
        if members:
            ranges.append((members[0], members[-1] + 1))
        else:  # an empty piece sits where the next one starts (or at the end)
            later = [i for i, g in enumerate(owner) if g > piece]
            at = later[0] if later else len(rows)
            ranges.append((at, at))
    return ranges


def _pieces(file: InputFile, count: int) -> list[WorkUnit]:
    if count == 1:
        return [WorkUnit(file.path, file.name, "file", 0, file.size)]
    if file.row_groups is not None:
        units = []
        for start, stop in row_group_ranges(file.row_groups, count):
            first_row = sum(file.row_groups[:start])
            units.append(WorkUnit(file.path, file.name, "rowGroups", start, stop, first_row))
        return units
    return [WorkUnit(file.path, file.name, "bytes", start, stop) for start, stop in byte_ranges(file.size, count)]


def plan_all(files: Sequence[InputFile], shards: int) -> list[list[WorkUnit]]:
    """The units of every shard (index = shard). Files must be in name order; Parquet files that
    get cut need their `row_groups`."""
    if shards < 1:
        raise ValueError("shards must be at least 1")
    plan: list[list[WorkUnit]] = [[] for _ in range(shards)]
    if len(files) >= shards:
        owner = contiguous_groups([f.size for f in files], shards)
        for file, shard in zip(files, owner, strict=True):
            plan[shard].append(WorkUnit(file.path, file.name, "file", 0, file.size))
        return plan
    pieces = [unit for file, count in zip(files, pieces_per_file([f.size for f in files], shards), strict=True)
              for unit in _pieces(file, count)]
    for shard, unit in enumerate(pieces):
        plan[shard].append(unit)
    return plan


def plan_shard(files: Sequence[InputFile], shards: int, shard: int) -> list[WorkUnit]:
    """The units shard `shard` of `shards` scores."""
    if not 0 <= shard < shards:
        raise ValueError(f"shard {shard} is not within 0..{shards - 1}")
    return plan_all(files, shards)[shard]


def needs_row_groups(file_count: int, shards: int) -> bool:
    """Whether the plan cuts files, so Parquet row-group sizes are needed."""
    return file_count < shards
