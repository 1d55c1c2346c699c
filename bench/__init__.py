"""Benchmarks, run as modules from the repository root (`python -m bench.server.run`, `make bench-*`)."""
