"""Shard planning (modelpilot.batch.plan): which files, row groups or byte ranges each shard scores."""

from __future__ import annotations

import random

import pytest

from modelpilot.batch.plan import (
    InputFile,
    WorkUnit,
    byte_ranges,
    contiguous_groups,
    pieces_per_file,
    plan_all,
    plan_shard,
    row_group_ranges,
)


def files(*sizes: int, row_groups: list[tuple[int, ...]] | None = None) -> list[InputFile]:
    return [
        InputFile(f"/d/f{i}", f"f{i}", size, None if row_groups is None else row_groups[i])
        for i, size in enumerate(sizes)
    ]


@pytest.mark.parametrize(
    ("weights", "groups", "expected"),
    [
        ([1] * 8, 4, [0, 0, 1, 1, 2, 2, 3, 3]),
        ([1] * 10, 4, [0, 0, 1, 1, 1, 2, 2, 3, 3, 3]),
        ([5], 1, [0]),
        ([1, 2, 3], 1, [0, 0, 0]),
        ([100, 1, 1], 2, [0, 1, 1]),
        ([1, 1, 100], 2, [0, 0, 1]),
        # a huge first file would leave group 0 empty by weight alone: every group gets a file
        ([100, 1, 1], 3, [0, 1, 2]),
        ([1, 1, 1, 100], 3, [0, 0, 1, 2]),
        ([0, 0, 0, 0], 2, [0, 0, 1, 1]),  # no weight at all: by count
        ([1, 1], 4, [0, 1]),  # fewer items than groups: one each
        ([], 3, []),
    ],
)
def test_contiguous_groups(weights: list[int], groups: int, expected: list[int]) -> None:
    assert contiguous_groups(weights, groups) == expected


@pytest.mark.parametrize(
    ("sizes", "pieces", "expected"),
    [
        ([10], 4, [4]),
        ([50, 50], 4, [2, 2]),
        ([1, 99], 10, [1, 9]),
        ([30, 10], 3, [2, 1]),
        ([100, 300], 4, [1, 3]),
        ([10, 10, 10], 5, [2, 2, 1]),  # ties go to the earlier file
        ([0, 0], 3, [2, 1]),
        ([5, 5], 2, [1, 1]),
        ([1, 1, 98], 5, [1, 1, 3]),  # the small files' minimum of 1 comes out of the big one
        ([1, 1, 1, 1, 96], 6, [1, 1, 1, 1, 2]),
    ],
)
def test_pieces_per_file(sizes: list[int], pieces: int, expected: list[int]) -> None:
    assert pieces_per_file(sizes, pieces) == expected
    assert sum(expected) == pieces


@pytest.mark.parametrize(
    ("rows", "pieces", "expected"),
    [
        ((10, 10, 10, 10), 2, [(0, 2), (2, 4)]),
        ((10, 10, 10, 10), 4, [(0, 1), (1, 2), (2, 3), (3, 4)]),
        ((10, 10), 4, [(0, 1), (1, 2), (2, 2), (2, 2)]),  # fewer row groups than pieces: empty pieces
        ((), 2, [(0, 0), (0, 0)]),
        ((100, 1, 1, 1), 2, [(0, 1), (1, 4)]),
    ],
)
def test_row_group_ranges(rows: tuple[int, ...], pieces: int, expected: list[tuple[int, int]]) -> None:
    assert row_group_ranges(rows, pieces) == expected


@pytest.mark.parametrize(
    ("size", "pieces", "expected"),
    [(10, 4, [(0, 2), (2, 5), (5, 7), (7, 10)]), (3, 3, [(0, 1), (1, 2), (2, 3)]), (0, 2, [(0, 0), (0, 0)])],
)
def test_byte_ranges(size: int, pieces: int, expected: list[tuple[int, int]]) -> None:
    assert byte_ranges(size, pieces) == expected


def test_whole_files_when_there_are_enough() -> None:
    plan = plan_all(files(10, 10, 10, 10, 10), 2)
    assert [[u.name for u in units] for units in plan] == [["f0", "f1"], ["f2", "f3", "f4"]]
    assert all(u.kind == "file" for units in plan for u in units)


def test_text_files_are_cut_into_byte_ranges() -> None:
    plan = plan_all(files(100, 300), 4)
    assert [units[0] for units in plan] == [
        WorkUnit("/d/f0", "f0", "file", 0, 100),
        WorkUnit("/d/f1", "f1", "bytes", 0, 100),
        WorkUnit("/d/f1", "f1", "bytes", 100, 200),
        WorkUnit("/d/f1", "f1", "bytes", 200, 300),
    ]


def test_parquet_files_are_cut_into_row_groups() -> None:
    plan = plan_all(files(100, row_groups=[(5, 5, 5)]), 2)
    assert plan == [
        [WorkUnit("/d/f0", "f0", "rowGroups", 0, 1, first_row=0)],
        [WorkUnit("/d/f0", "f0", "rowGroups", 1, 3, first_row=5)],
    ]


def test_manifest_description() -> None:
    assert WorkUnit("/d/a", "a", "file", 0, 9).describe() == {"file": "a"}
    assert WorkUnit("/d/a", "a", "bytes", 3, 9).describe() == {"file": "a", "bytes": [3, 9]}
    assert WorkUnit("/d/a", "a", "rowGroups", 1, 2).describe() == {"file": "a", "rowGroups": [1, 2]}


def test_shard_out_of_range() -> None:
    with pytest.raises(ValueError, match="not within"):
        plan_shard(files(1), 2, 2)


# ------------------------------------------------------------------- every row has exactly one shard


def _line_starts(lengths: list[int]) -> list[int]:
    starts, at = [], 0
    for length in lengths:
        starts.append(at)
        at += length
    return starts


def _owners(unit: WorkUnit, lines: dict[str, list[int]], groups: dict[str, tuple[int, ...]]) -> list[tuple[str, int]]:
    """The rows a unit owns, by the readers' rules: a line belongs to the range its start is in."""
    if unit.kind == "file":
        count = sum(groups[unit.name]) if unit.name in groups else len(lines[unit.name])
        return [(unit.name, i) for i in range(count)]
    if unit.kind == "rowGroups":
        rows = groups[unit.name]
        assert unit.first_row == sum(rows[: unit.start])
        return [(unit.name, unit.first_row + i) for i in range(sum(rows[unit.start : unit.stop]))]
    return [(unit.name, i) for i, start in enumerate(lines[unit.name]) if unit.start <= start < unit.stop]


@pytest.mark.parametrize("seed", range(40))
def test_every_row_belongs_to_exactly_one_shard(seed: int) -> None:
    rng = random.Random(seed)
    parquet = seed % 2 == 0
    count = rng.randint(1, 7)
    lines: dict[str, list[int]] = {}
    groups: dict[str, tuple[int, ...]] = {}
    inputs = []
    for i in range(count):
        name = f"f{i}"
        if parquet:
            groups[name] = tuple(rng.randint(0, 50) for _ in range(rng.randint(0, 6)))
            size = 100 + 8 * sum(groups[name])
            inputs.append(InputFile(f"/d/{name}", name, size, groups[name]))
        else:
            lengths = [rng.randint(1, 40) for _ in range(rng.randint(0, 60))]
            lines[name] = _line_starts(lengths)
            inputs.append(InputFile(f"/d/{name}", name, sum(lengths)))
    every_row = sorted(
        (name, i) for name in (groups if parquet else lines)
        for i in range(sum(groups[name]) if parquet else len(lines[name]))
    )
    for shards in range(1, 13):
        plan = plan_all(inputs, shards)
        assert len(plan) == shards
        owned = sorted(row for units in plan for unit in units for row in _owners(unit, lines, groups))
        assert owned == every_row, f"seed {seed}, {shards} shards"
        if count >= shards:
            assert all(plan), "with enough files, every shard gets one"
        assert plan_shard(inputs, shards, shards - 1) == plan[-1]
