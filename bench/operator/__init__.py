"""`make bench-operator`: the operator at scale on the local test bed (see run.py, docs/benchmarks.md)."""
