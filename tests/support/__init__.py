"""Test support shared by tests/, hack/ and bench/, never installed with the package.

- `tests.support.testmodels` writes real model files (good, failing, slow, gated, corrupt, ...).
- `tests.support.testing` runs the real runtime (`modelpilot serve`) as a local process.

Import them from the repository root (pytest puts it on the path; scripts run as modules, e.g.
`python -m hack.demo`). A runtime process that loads one of the test models must be able to import
`tests.support.testmodels` too: `RuntimeProcess` and the e2e bridge give it the root on PYTHONPATH.
"""

from pathlib import Path

# The repository root: what a child process needs on PYTHONPATH to unpickle the test models.
REPO_ROOT = Path(__file__).resolve().parents[2]
