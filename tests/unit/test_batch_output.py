"""Names under a batch output and what they are (modelpilot.batch.output.classify): the ownership
rules of failIfExists and overwrite rest on it."""

from __future__ import annotations

import pytest

from modelpilot.batch import contract
from modelpilot.batch.output import Entry, classify


@pytest.mark.parametrize(
    ("name", "entry"),
    [
        ("_SUCCESS", Entry("run")),
        ("_manifest.json", Entry("run")),
        ("part-00003.parquet", Entry("part", 3)),
        ("part-00012.jsonl", Entry("part", 12)),
        ("errors/part-00003.jsonl", Entry("errors", 3)),
        ("_manifests/shard-00003.json", Entry("manifest", 3)),
        ("_manifests/claim-00003.0f9e-uid", Entry("claim", 3, "0f9e-uid")),
        (".part-00003.parquet.run-1.0123abcd.tmp", Entry("temp", 3, "run-1")),
        ("errors/.part-00003.jsonl.run-1.0123abcd.tmp", Entry("temp", 3, "run-1")),
        ("_manifests/.shard-00003.json.run-2.0123abcd.tmp", Entry("temp", 3, "run-2")),
        ("_manifests/.claim-00003.run-2.run-2.0123abcd.tmp", Entry("temp", 3, "run-2")),
        ("._manifest.json.run-2.0123abcd.tmp", Entry("temp", None, "run-2")),
        ("notes.txt", Entry("other")),
        ("part-x.parquet", Entry("other")),
        ("errors/part-00003.parquet", Entry("other")),
        ("sub/part-00003.parquet", Entry("other")),
        (".DS_Store", Entry("other")),
    ],
)
def test_classify(name: str, entry: Entry) -> None:
    assert classify(name) == entry


def test_layout_names_classify_as_themselves() -> None:
    assert classify(contract.part_file(7, "parquet")) == Entry("part", 7)
    assert classify(contract.errors_file(7)) == Entry("errors", 7)
    assert classify(contract.manifest_file(7)) == Entry("manifest", 7)
    assert classify(contract.claim_file(7, "a/b:c")) == Entry("claim", 7, "a-b-c")
