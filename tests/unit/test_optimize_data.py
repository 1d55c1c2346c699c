"""modelpilot.optimize.data.pick_features: which columns feed the model, or why none can (pure)."""

from __future__ import annotations

import pytest

from modelpilot.optimize.data import pick_features
from modelpilot.optimize.errors import UsageError

PICK_CASES = [
    # (columns, target, n_features, model's names, features)
    (["a", "b", "c"], None, 3, None, ["a", "b", "c"]),
    (["a", "y", "b"], "y", 2, None, ["a", "b"]),  # file order, without the target
    (["c", "b", "a", "y"], "y", 3, ["a", "b", "c"], ["a", "b", "c"]),  # the model's order
    (["a", "b", "c", "extra"], None, 2, ["b", "a"], ["b", "a"]),  # other columns are ignored
]


@pytest.mark.parametrize(("columns", "target", "n_features", "names", "expected"), PICK_CASES)
def test_pick_features(columns: list[str], target: str | None, n_features: int, names: list[str] | None,
                       expected: list[str]) -> None:  # fmt: skip
    assert pick_features(columns, target, n_features, names) == expected


ERROR_CASES = [
    (["a", "b"], None, 3, None, "the model takes 3 feature columns; the data has 2: a, b"),
    (["a", "b", "label"], None, 2, None, "the data has 3 (is one of them the label? pass --target)"),
    (["a", "b", "y"], "y", 3, None, "the model takes 3 feature columns; the data has 2"),
    (["a", "c"], None, 2, ["a", "b"], "the data lacks the model's feature column 'b' (the model takes a, b; "
                                      "the data has a, c)"),
    (["c"], None, 2, ["a", "b"], "lacks the model's feature columns 'a', 'b'"),
    (["a", "b"], "a", 2, ["a", "b"], "--target 'a' is one of the model's features"),
    ([f"c{i}" for i in range(30)], None, 2, None, "c19, ... (30 in all)"),
]  # fmt: skip


@pytest.mark.parametrize(("columns", "target", "n_features", "names", "message"), ERROR_CASES)
def test_pick_features_errors(columns: list[str], target: str | None, n_features: int, names: list[str] | None,
                              message: str) -> None:  # fmt: skip
    with pytest.raises(UsageError) as caught:
        pick_features(columns, target, n_features, names)
    assert message in str(caught.value)
