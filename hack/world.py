"""The demo's world as a background process: real model servers for the pods of one namespace,
a Prometheus scraping them, and traffic split the way the API server says (the e2e harness, run
standalone). `make cluster-down` stops it with the cluster.

    python hack/world.py --namespace demo --name fraud --workdir .cluster/world
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from kubernetes import config  # noqa: E402

from tests.e2e.harness.world import CanaryWorld  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--namespace", required=True)
    parser.add_argument("--name", required=True)
    parser.add_argument("--kubeconfig", required=True)
    parser.add_argument("--workdir", type=Path, required=True)
    parser.add_argument("--rate", type=float, default=40.0)
    args = parser.parse_args()

    api_client = config.new_client_from_config(config_file=args.kubeconfig)
    world = CanaryWorld(api_client, args.namespace, args.name, workdir=args.workdir, rate=args.rate).start()
    # Tell the parent where Prometheus is, then serve until told to stop.
    (args.workdir / "world.json").write_text(json.dumps({"prometheus": world.prometheus_url}))
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    stop.wait()
    world.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
