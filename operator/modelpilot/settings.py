"""Operator settings, read from the environment (the `modelpilot operator` flags set the same)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from modelpilot.fetch_settings import DEFAULT_MAX_MODEL_BYTES, parse_size

ENV_PREFIX = "MODELPILOT_"
# The Secret holding spec.notifications' webhook URLs, by default (MODELPILOT_NOTIFICATIONS_SECRET).
DEFAULT_NOTIFICATIONS_SECRET = "modelpilot-notifications"


def _env(name: str, default: str) -> str:
    return os.environ.get(ENV_PREFIX + name, default)


def _bool(raw: str, name: str) -> bool:
    if raw.lower() in ("true", "1", "yes"):
        return True
    if raw.lower() in ("false", "0", "no", ""):
        return False
    raise ValueError(f"{ENV_PREFIX}{name}={raw!r} is not true or false")


def _size(name: str, default: int) -> int:
    return parse_size(_env(name, str(default)), ENV_PREFIX + name)


def _float(name: str, default: float) -> float:
    raw = _env(name, str(default))
    try:
        value = float(raw)
    except ValueError as err:
        raise ValueError(f"{ENV_PREFIX}{name}={raw!r} is not a number") from err
    if value <= 0:
        raise ValueError(f"{ENV_PREFIX}{name}={raw!r} must be positive")
    return value


@dataclass(frozen=True)
class OperatorSettings:
    """Everything an operator replica is configured with; documented in docs/operations.md."""

    prometheus_url: str = "http://prometheus.monitoring.svc:9090"
    gpu_product_label: str = "nvidia.com/gpu.product"
    runtime_image: str = "ghcr.io/modelpilot/runtime:0.1.0"
    namespaces: tuple[str, ...] = field(default_factory=tuple)  # empty: every namespace
    resync_seconds: float = 60.0
    # Reconciles in flight at once, and the I/O threads their writes run in.
    workers: int = 16
    # Canary analyses in flight at once (each runs its queries one after another).
    analysis_concurrency: int = 8
    metrics_port: int = 8090
    cluster_domain: str = "cluster.local"
    scrape_interval: float = 15.0  # of the Prometheus that scrapes the model servers: sets the query window
    query_timeout: float = 5.0
    # Each watch request ends after this and is re-established from the last resourceVersion (no
    # relist). Short, because a stalled stream (seen for Namespace watches) then heals quickly.
    watch_timeout: float = 60.0
    # Custom PromQL may only select series of the ModelDeployment's own namespace (multi-tenant
    # clusters: otherwise any user who can write a ModelDeployment can read any namespace's metrics).
    confine_queries: bool = False
    # Unsafe: accept any TLS certificate from Prometheus (a man in the middle could pass any canary).
    prometheus_insecure_skip_verify: bool = False
    # The model pods' fetch step: the most one fetch may write (also their model volume's size
    # limit), and whether it may reach link-local addresses (unsafe: cloud metadata credentials).
    max_model_bytes: int = DEFAULT_MAX_MODEL_BYTES
    allow_link_local: bool = False
    # Several replicas: only the holder of a coordination.k8s.io Lease acts, the others wait.
    leader_election: bool = False
    leader_election_namespace: str = ""  # empty: the pod's own namespace
    leader_election_id: str = "modelpilot"  # the Lease's name
    # A standby takes over a leader that died within about this plus a fifth of it.
    leader_election_lease_seconds: float = 10.0
    # Scale to zero (docs/serverless.md): KEDA's polling of tracks at zero, its wait after the last
    # demand before removing the last pod, the HPA's scale-in window, and the activator's Service.
    keda_polling_seconds: int = 5
    keda_cooldown_seconds: int = 30
    scale_down_stabilization_seconds: int = 300
    activator_namespace: str = "modelpilot-system"
    activator_service: str = "modelpilot-activator"
    activator_port: int = 80
    # spec.notifications: the Secret (one name, in each ModelDeployment's namespace) holding the
    # webhook URLs; the operator may GET only this name (the chart's RBAC).
    notifications_secret: str = DEFAULT_NOTIFICATIONS_SECRET

    @classmethod
    def from_env(cls) -> OperatorSettings:
        namespaces = tuple(n.strip() for n in _env("NAMESPACES", "").split(",") if n.strip())
        return cls(
            prometheus_url=_env("PROMETHEUS_URL", cls.prometheus_url),
            gpu_product_label=_env("GPU_PRODUCT_LABEL", cls.gpu_product_label),
            runtime_image=_env("RUNTIME_IMAGE", cls.runtime_image),
            namespaces=namespaces,
            resync_seconds=_float("RESYNC_SECONDS", cls.resync_seconds),
            workers=int(_float("WORKERS", cls.workers)),
            analysis_concurrency=int(_float("ANALYSIS_CONCURRENCY", cls.analysis_concurrency)),
            metrics_port=int(_env("METRICS_PORT", str(cls.metrics_port))),
            cluster_domain=_env("CLUSTER_DOMAIN", cls.cluster_domain),
            scrape_interval=_float("SCRAPE_INTERVAL", cls.scrape_interval),
            query_timeout=_float("QUERY_TIMEOUT", cls.query_timeout),
            watch_timeout=_float("WATCH_TIMEOUT", cls.watch_timeout),
            confine_queries=_bool(_env("CONFINE_QUERIES", "false"), "CONFINE_QUERIES"),
            prometheus_insecure_skip_verify=_bool(_env("PROMETHEUS_INSECURE_SKIP_VERIFY", "false"),
                                                  "PROMETHEUS_INSECURE_SKIP_VERIFY"),
            max_model_bytes=_size("MAX_MODEL_BYTES", cls.max_model_bytes),
            allow_link_local=_bool(_env("ALLOW_LINK_LOCAL", "false"), "ALLOW_LINK_LOCAL"),
            leader_election=_bool(_env("LEADER_ELECTION", "false"), "LEADER_ELECTION"),
            leader_election_namespace=_env("LEADER_ELECTION_NAMESPACE", cls.leader_election_namespace),
            leader_election_id=_env("LEADER_ELECTION_ID", cls.leader_election_id),
            leader_election_lease_seconds=_float("LEADER_ELECTION_LEASE_SECONDS", cls.leader_election_lease_seconds),
            keda_polling_seconds=int(_float("KEDA_POLLING_SECONDS", cls.keda_polling_seconds)),
            keda_cooldown_seconds=int(_float("KEDA_COOLDOWN_SECONDS", cls.keda_cooldown_seconds)),
            scale_down_stabilization_seconds=int(_float("SCALE_DOWN_STABILIZATION_SECONDS",
                                                        cls.scale_down_stabilization_seconds)),
            activator_namespace=_env("ACTIVATOR_NAMESPACE", cls.activator_namespace),
            activator_service=_env("ACTIVATOR_SERVICE", cls.activator_service),
            activator_port=int(_float("ACTIVATOR_PORT", cls.activator_port)),
            notifications_secret=_env("NOTIFICATIONS_SECRET", cls.notifications_secret),
        )
