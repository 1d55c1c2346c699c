"""The lines of a byte range of a text file, in chunks of at most N lines (bounded memory).

A range [start, stop) owns the lines that *start* inside it: a line starts at byte 0 or right
after a newline. So a reader seeks to start - 1, skips to the next newline, and reads on until
the first line that starts at or after `stop` (the line that straddles `stop` is read whole).
Together the ranges of a file give every line exactly once. This assumes a newline always ends a
record: CSV values with quoted newlines are not supported in files that get cut.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO

import numpy as np

BLOCK = 1 << 20  # bytes read at a time
NEWLINE = 10


@dataclass
class LineChunk:
    """Whole lines (each ending in a newline, except maybe the file's last), with the 0-based line
    number of the first in its file (None when it was not counted)."""

    data: bytes
    first_line: int | None
    count: int

    def lines(self) -> list[bytes]:
        parts = self.data.split(b"\n")
        return parts[: self.count]

    def line_ends(self) -> np.ndarray:
        """Byte offset just past each line's end (its newline) within `data`."""
        ends = np.flatnonzero(np.frombuffer(self.data, dtype=np.uint8) == NEWLINE) + 1
        if len(ends) < self.count:  # the file's last line, without a newline
            ends = np.append(ends, len(self.data))
        return ends


def first_line(stream: BinaryIO) -> bytes:
    """The file's first line, with its newline (a CSV header)."""
    stream.seek(0)
    parts = []
    while True:
        block = stream.read(64 << 10)
        if not block:
            break
        cut = block.find(b"\n")
        if cut >= 0:
            parts.append(block[: cut + 1])
            break
        parts.append(block)
    return b"".join(parts)


def _line_start(stream: BinaryIO, start: int) -> int | None:
    """The offset of the first line starting at or after `start`, None when there is none."""
    if start == 0:
        return 0
    stream.seek(start - 1)
    at = start - 1
    while True:
        block = stream.read(64 << 10)
        if not block:
            return None
        cut = block.find(b"\n")
        if cut >= 0:
            return at + cut + 1
        at += len(block)


def count_lines(stream: BinaryIO, stop: int) -> int:
    """Newlines in the bytes [0, stop): the number of the line that starts at `stop`. Reads the
    prefix in blocks; only needed when output rows carry their row number."""
    stream.seek(0)
    count, left = 0, stop
    while left > 0:
        block = stream.read(min(BLOCK, left))
        if not block:
            break
        count += block.count(b"\n")
        left -= len(block)
    return count


def _newline_ends(data: bytes) -> np.ndarray:
    return np.flatnonzero(np.frombuffer(data, dtype=np.uint8) == NEWLINE) + 1


def _take(pending: bytearray, start: int, stop: int) -> bytes:
    with memoryview(pending) as view:  # one copy, and no view left that would pin the buffer
        return bytes(view[start:stop])


def iter_lines(
    stream: BinaryIO, start: int, stop: int | None, max_lines: int, *, number: bool
) -> Iterator[LineChunk]:
    """Chunks of `max_lines` lines (the last may have fewer) starting in [start, stop) (stop None:
    to the end). With `number`, each chunk says which line of the file it starts with. Memory: the
    lines of one chunk plus one block; each block is scanned for newlines once."""
    begin = _line_start(stream, start)
    if begin is None or (stop is not None and begin >= stop):
        return
    line_no = count_lines(stream, begin) if number else None
    stream.seek(begin)
    pending = bytearray()  # read, not yet yielded; pending[0] is at file offset `offset`
    offset = begin
    ends = np.zeros(0, dtype=np.int64)  # offsets in pending just past each newline
    done = False
    while not done:
        block = stream.read(BLOCK)
        done = not block
        if block:
            ends = np.concatenate((ends, _newline_ends(block) + len(pending)))
            pending += block
        lines_ends = ends
        if done and pending and (not len(ends) or ends[-1] != len(pending)):
            lines_ends = np.append(ends, len(pending))  # the file's last line has no newline
        if stop is not None:
            # Where each complete line starts, and the partial one after them: once one starts at
            # or after stop, the range is done (the line straddling stop was read whole).
            starts = np.concatenate(([0], lines_ends)) + offset
            owned = int(np.searchsorted(starts, stop, side="left"))
            if owned <= len(lines_ends):
                lines_ends, done = lines_ends[:owned], True
        ready = len(lines_ends) if done else len(lines_ends) - len(lines_ends) % max_lines
        used = 0
        for first in range(0, ready, max_lines):
            count = min(max_lines, ready - first)
            last = int(lines_ends[first + count - 1])
            yield LineChunk(_take(pending, used, last), line_no, count)
            used = last
            if line_no is not None:
                line_no += count
        if used:
            del pending[:used]
            offset += used
            ends = ends[ready:] - used
