"""Errors and exit codes of `modelpilot optimize`."""

from __future__ import annotations

EXIT_OK = 0
EXIT_FAILED = 1  # the model did not convert, load or predict
EXIT_USAGE = 2  # bad input: a missing file, an unknown format, columns that do not fit the model
EXIT_REFUSED = 3  # a produced model lost more accuracy than --max-accuracy-drop allows


class OptimizeError(Exception):
    """The command cannot go on; the message is printed on one line."""

    exit_code = EXIT_FAILED


class UsageError(OptimizeError):
    """The input does not fit: exit code 2."""

    exit_code = EXIT_USAGE


class ConversionError(OptimizeError):
    """A converter, the quantizer or a model failed on valid input: exit code 1."""

    exit_code = EXIT_FAILED


def first_line(err: BaseException, limit: int = 300) -> str:
    """An exception's message on one line (frameworks add stack traces and C++ locations below)."""
    lines = str(err).strip().splitlines()
    return lines[0][:limit] if lines else type(err).__name__
