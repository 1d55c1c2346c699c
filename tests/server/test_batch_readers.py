"""The pieces under `modelpilot batch`'s readers: byte ranges of lines, and values that are numbers."""

from __future__ import annotations

import io
import random
from decimal import Decimal

import numpy as np
import pyarrow as pa
import pytest

from modelpilot.batch import lines
from modelpilot.batch.convert import feature_matrix
from modelpilot.batch.plan import byte_ranges


def _text(rng: random.Random) -> bytes:
    count = rng.randint(0, 30)
    body = b"\n".join(b"x" * rng.randint(0, 9) for _ in range(count))
    return body + (b"\n" if count and rng.random() < 0.5 else b"")


@pytest.mark.parametrize("seed", range(60))
def test_byte_ranges_give_every_line_once_with_its_number(seed: int, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(lines, "BLOCK", 7)  # tiny blocks: lines straddle every boundary
    rng = random.Random(seed)
    data = _text(rng)
    truth = data.split(b"\n")[: data.count(b"\n") + (0 if data.endswith(b"\n") or not data else 1)]
    for pieces in (1, 2, 3, 5, 9):
        got = []
        for start, stop in byte_ranges(len(data), pieces):
            by_size = {}
            for max_lines in (1, 2, 4, 100):
                chunks = list(lines.iter_lines(io.BytesIO(data), start, stop, max_lines, number=True))
                assert all(0 < c.count <= max_lines for c in chunks)
                assert all(len(c.line_ends()) == c.count for c in chunks)
                by_size[max_lines] = [(c.first_line + i, line) for c in chunks for i, line in enumerate(c.lines())]
            assert by_size[1] == by_size[2] == by_size[4] == by_size[100]
            got += by_size[1]
        assert sorted(got) == list(enumerate(truth)), (data, pieces)


def test_unnumbered_chunks_and_the_first_line() -> None:
    data = b"header\r\na\r\nb"
    assert lines.first_line(io.BytesIO(data)) == b"header\r\n"
    [chunk] = lines.iter_lines(io.BytesIO(data), 3, None, 10, number=False)
    assert (chunk.first_line, chunk.lines()) == (None, [b"a\r", b"b"])
    assert list(lines.iter_lines(io.BytesIO(data), 9, 10, 10, number=True)) == []  # no line starts in [9, 10)


@pytest.mark.parametrize(
    ("values", "numbers", "reasons"),
    [
        (pa.array(["1", " 2.5 ", "nan", "-inf", "1e-3"]), [1, 2.5, np.nan, -np.inf, 0.001], {}),
        (
            pa.array(["1", "abc", "", None, "1_000"]),
            [1, 0, 0, 0, 0],
            {
                1: "column x: 'abc' is not a number",
                2: "column x: missing value",
                3: "column x: missing value",
                4: "column x: '1_000' is not a number",
            },
        ),
        (pa.array([1, None, 3], pa.int32()), [1, 0, 3], {1: "column x: missing value"}),
        (pa.array([True, False]), [1, 0], {}),
        (pa.array([Decimal("1.5"), Decimal("2")]), [1.5, 2], {}),
        (pa.array(["1", "2", "1"]).dictionary_encode(), [1, 2, 1], {}),
        (pa.array([[1], [2]]), [0, 0], {0: "column x: [1] is not a number", 1: "column x: [2] is not a number"}),
        ([1, 2.5, None, 2**70], [1, 2.5, 0, 2.0**70], {2: "column x: missing value"}),
        (
            [1, "2", True, {"a": 1}],
            [1, 0, 0, 0],
            {
                1: "column x: '2' is not a number",
                2: "column x: True is not a number",
                3: "column x: {'a': 1} is not a number",
            },
        ),
    ],
)
def test_what_counts_as_a_number(values: object, numbers: list[float], reasons: dict[int, str]) -> None:
    rows = len(numbers)
    matrix, problems = feature_matrix({"x": values}, rows)  # type: ignore[dict-item]
    assert {row: "; ".join(r) for row, r in problems.reasons.items()} == reasons
    good = [i for i in range(rows) if i not in reasons]
    assert np.array_equal(matrix[good, 0], np.asarray(numbers, dtype=np.float64)[good], equal_nan=True)
