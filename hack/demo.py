"""`make demo`: the operator on the local cluster, serving the examples.

Installs the CRD, starts the operator in the background (log: .cluster/operator.log), applies
every example into the namespace `demo`, waits until they are Ready and shows them with their
children. The cluster and the operator stay up for exploring; `make cluster-down` stops both.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import testbed

ROOT = testbed.ROOT
NAMESPACE = "demo"


def say(message: str) -> None:
    print(f"==> {message}", flush=True)


def start_operator(cluster: testbed.Cluster) -> int:
    pid_file = cluster.workdir / "operator.pid"
    if pid_file.exists():
        old = int(pid_file.read_text())
        if testbed._alive(old):
            os.kill(old, signal.SIGTERM)
            time.sleep(1)
    log = (cluster.workdir / "operator.log").open("ab")
    env = dict(os.environ, KUBECONFIG=str(cluster.kubeconfig), MODELPILOT_RESYNC_SECONDS="10")
    process = subprocess.Popen([str(ROOT / ".venv/bin/modelpilot"), "operator", "--log-format", "plain",
                                "--namespace", NAMESPACE],
                               stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    pid_file.write_text(str(process.pid))
    return process.pid


def main() -> int:
    cluster = testbed.Cluster(workdir=Path(os.environ.get("MODELPILOT_CLUSTER_DIR", ROOT / ".cluster")).resolve())
    cluster.up()
    say("installing the ModelDeployment CRD")
    cluster.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(ROOT / "crds"))
    cluster.kubectl("wait", "--for=condition=Established", "--timeout=60s", "crd/modeldeployments.modelpilot.io")
    pid = start_operator(cluster)
    say(f"operator running (pid {pid}, log {cluster.workdir / 'operator.log'})")
    cluster.kubectl("create", "namespace", NAMESPACE, check=False)
    say(f"applying examples/ into namespace {NAMESPACE}")
    print(cluster.kubectl("apply", "-n", NAMESPACE, "-f", str(ROOT / "examples")).stdout, end="")
    say("waiting for every ModelDeployment to be Ready")
    waited = cluster.kubectl("wait", "-n", NAMESPACE, "--for=condition=Ready", "--timeout=120s", "mdep", "--all",
                             check=False)
    print(waited.stdout + waited.stderr, end="")
    for what in ("mdep -o wide", "deployments,services,hpa", "pods -o wide"):
        say(f"kubectl get {what}")
        cluster.kubectl("get", *what.split(), "-n", NAMESPACE, capture=False)
    print()
    print(f"Explore: export KUBECONFIG={cluster.kubeconfig}; kubectl -n {NAMESPACE} describe mdep fraud-gpu")
    print("Stop everything: make cluster-down")
    outcome = "all ModelDeployments Ready" if waited.returncode == 0 else "some ModelDeployments are not Ready"
    print(f"Demo finished: {outcome}.")
    return waited.returncode


if __name__ == "__main__":
    sys.exit(main())
