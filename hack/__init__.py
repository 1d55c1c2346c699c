"""Development tooling: the local test bed, its data plane, the demo and generators.

A package importable from the repository root, never installed: the tests import
`from hack import testbed`, and the scripts that import `hack.*` or `tests.*` run as modules from
the root (`python -m hack.demo`, `python -m hack.world`). `python hack/testbed.py ...` and
`python hack/helm_values_table.py` also work as plain scripts, from any directory.
"""
