"""Batch prediction: `modelpilot batch` scores one shard of a dataset inside a Job pod.

`contract` (stdlib and pydantic only) is what the operator and the runtime agree on; the rest of
the package is the runtime and needs the `[server]` extra (pyarrow, fsspec, numpy).
"""
