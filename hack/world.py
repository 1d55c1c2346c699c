"""The demo's world as a background process: real model servers for the pods of one namespace,
a Prometheus scraping them, and traffic through the test bed's gateway (or the Service's
ClusterIP) (the e2e harness, run standalone). Every second it writes the measured split to
<workdir>/split.json. `make cluster-down` stops it with the cluster.

    python -m hack.world --namespace demo --name fraud --kubeconfig .cluster/kubeconfig --workdir .cluster/world

from the repository root, inside the test bed's network namespace (that is how the demo starts it).
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
from pathlib import Path

from kubernetes import config

from hack import dataplane
from tests.e2e.harness.world import CanaryWorld


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--namespace", required=True)
    parser.add_argument("--name", required=True)
    parser.add_argument("--kubeconfig", required=True)
    parser.add_argument("--workdir", type=Path, required=True)
    parser.add_argument("--rate", type=float, default=40.0)
    args = parser.parse_args()

    api_client = config.new_client_from_config(config_file=args.kubeconfig)
    gateway = (dataplane.read_info(Path(args.kubeconfig).parent) or {}).get("gateway")
    world = CanaryWorld(api_client, args.namespace, args.name, workdir=args.workdir, rate=args.rate,
                        gateway=(gateway["host"], int(gateway["port"])) if gateway else None).start()
    # Tell the parent where Prometheus is, then serve until told to stop.
    (args.workdir / "world.json").write_text(json.dumps({"prometheus": world.prometheus_url}))
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    split_file = args.workdir / "split.json"
    while not stop.wait(1.0):
        recent = [r for r in world.loadgen.requests(5) if r.outcome is not None]
        body = {"entry": world.loadgen.entry.describe(), "requests": len(recent), "split": world.traffic_split(5)}
        split_file.with_suffix(".tmp").write_text(json.dumps(body))
        split_file.with_suffix(".tmp").replace(split_file)
    world.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
