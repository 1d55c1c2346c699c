"""Why a shard stops: the exit code the Job's podFailurePolicy acts on, a CamelCase reason and words."""

from __future__ import annotations

from modelpilot.batch import contract


class ShardError(Exception):
    def __init__(self, exit_code: int, reason: str, message: str) -> None:
        super().__init__(message)
        self.exit_code = exit_code
        self.reason = reason
        self.message = message


def invalid_run(reason: str, message: str) -> ShardError:
    """The run cannot work as configured (retrying would fail the same way): the Job fails at once."""
    return ShardError(contract.EXIT_INVALID_RUN, reason, message)
