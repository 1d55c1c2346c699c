"""The kubectl plugin's access to the cluster: kubeconfig resolution like kubectl's, and every
failure turned into one readable line (`CliError`).

Reads ModelDeployments and their Events, and BatchPredictions (`Cluster(target, BATCH_PREDICTIONS)`
or `cluster.of(BATCH_PREDICTIONS)`), with the official client; the only writes are the merge
patches the plugin's actions send (an annotation, or `spec.paused`).
"""

from __future__ import annotations

import datetime as dt
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import urllib3
import yaml
from kubernetes import client, config, watch
from kubernetes.client.exceptions import ApiException
from kubernetes.config.config_exception import ConfigException

from modelpilot.api.batch import BATCH_KIND, BATCH_PLURAL, BATCH_SINGULAR
from modelpilot.api.models import GROUP, KIND, PLURAL, SINGULAR, VERSION

RESOURCE = f"{PLURAL}.{GROUP}"
CRD_HINT = "install the Helm chart, or `kubectl apply -f crds/` from the modelpilot repository"
FIELD_MANAGER = "kubectl-modelpilot"
# (connect, read) seconds: a dead or black-holed server fails in seconds, not minutes.
TIMEOUT = (5.0, 30.0)
SERVICE_ACCOUNT_NAMESPACE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")


@dataclass(frozen=True)
class Kind:
    """A custom resource of the modelpilot.io group the plugin reads."""

    kind: str
    plural: str
    singular: str

    @property
    def resource(self) -> str:
        return f"{self.plural}.{GROUP}"


MODEL_DEPLOYMENTS = Kind(KIND, PLURAL, SINGULAR)
BATCH_PREDICTIONS = Kind(BATCH_KIND, BATCH_PLURAL, BATCH_SINGULAR)
KINDS = {kind.resource: kind for kind in (MODEL_DEPLOYMENTS, BATCH_PREDICTIONS)}


class CliError(Exception):
    """A failure the plugin reports as one line on stderr, exiting with `code`."""

    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.message = message
        self.code = code


def kubeconfig_paths(explicit: str | None) -> str:
    """What kubectl reads: --kubeconfig, else $KUBECONFIG (a list, like PATH), else ~/.kube/config."""
    return explicit or os.environ.get("KUBECONFIG") or str(Path("~/.kube/config").expanduser())


def _existing(paths: str) -> list[str]:
    return [p for p in paths.split(os.pathsep) if p and Path(p).expanduser().is_file()]


@dataclass
class Target:
    """Where the plugin talks to: the client, the default namespace and a name for messages."""

    api: client.ApiClient
    namespace: str
    context: str
    server: str


def connect(kubeconfig: str | None = None, context: str | None = None) -> Target:
    """A client for the kubeconfig (or in-cluster service account) kubectl would use."""
    paths = kubeconfig_paths(kubeconfig)
    cfg = client.Configuration()
    if not _existing(paths):
        if kubeconfig:
            raise CliError(f"kubeconfig {kubeconfig} not found")
        if os.environ.get("KUBERNETES_SERVICE_HOST") and not context:
            try:
                config.load_incluster_config(client_configuration=cfg)
            except ConfigException as err:
                raise CliError(f"no cluster: in-cluster configuration failed: {err}") from None
            namespace = SERVICE_ACCOUNT_NAMESPACE.read_text().strip() if SERVICE_ACCOUNT_NAMESPACE.exists() \
                else "default"
            return _target(cfg, namespace or "default", "in-cluster")
        raise CliError(f"no cluster configured: no kubeconfig at {paths} (set KUBECONFIG or pass --kubeconfig)")
    contexts, current = _contexts(paths)
    name = context or current
    if not name:
        raise CliError(f"no current context in {paths}: pass --context (or run `kubectl config use-context`)")
    chosen = contexts.get(name)
    if chosen is None:
        names = ", ".join(sorted(contexts)) or "none"
        raise CliError(f"context {name!r} not found in {paths} (contexts: {names})")
    try:
        config.load_kube_config(config_file=paths, context=chosen["name"], client_configuration=cfg,
                                persist_config=False)
    except (ConfigException, OSError, ValueError) as err:
        raise CliError(f"cannot use context {chosen['name']!r} from {paths}: {_first_line(err)}") from None
    namespace = (chosen.get("context") or {}).get("namespace") or "default"
    return _target(cfg, namespace, chosen["name"])


def _contexts(paths: str) -> tuple[dict[str, dict[str, Any]], str | None]:
    """Contexts by name and the current context, merged like kubectl: the first file that sets a
    name or the current context wins."""
    contexts: dict[str, dict[str, Any]] = {}
    current: str | None = None
    for path in _existing(paths):
        try:
            data = yaml.safe_load(Path(path).expanduser().read_text()) or {}
        except (OSError, yaml.YAMLError) as err:
            raise CliError(f"cannot read kubeconfig {path}: {_first_line(err)}") from None
        if not isinstance(data, dict):
            raise CliError(f"cannot read kubeconfig {path}: not a kubeconfig")
        current = current or data.get("current-context") or None
        for entry in data.get("contexts") or []:
            if isinstance(entry, dict) and entry.get("name"):
                contexts.setdefault(str(entry["name"]), entry)
    return contexts, current


def _target(cfg: client.Configuration, namespace: str, context: str) -> Target:
    cfg.retries = 1  # urllib3 would otherwise retry a refused connection three times
    return Target(api=client.ApiClient(cfg), namespace=namespace, context=context, server=cfg.host)


def _first_line(err: BaseException) -> str:
    text = str(err).strip() or type(err).__name__
    return text.splitlines()[0]


def _status_body(err: ApiException) -> dict[str, Any]:
    try:
        body = json.loads(err.body or "")
    except (TypeError, ValueError):
        return {}
    return body if isinstance(body, dict) else {}


def explain(err: Exception, target: Target, verb: str, resource: str = RESOURCE, namespace: str | None = None,
            name: str | None = None) -> CliError:
    """One line for a failed request: what was asked, of what, and why it failed."""
    where = f" in namespace {namespace}" if namespace else " in any namespace"
    if isinstance(err, ApiException):
        body = _status_body(err)
        message = str(body.get("message") or err.reason or "").strip()
        if err.status == 404:
            details = body.get("details") or {}
            kind = KINDS.get(resource)
            if kind and body.get("kind") == "Status" and details.get("kind") == kind.plural and name:
                return CliError(f"{kind.singular} {namespace}/{name} not found")
            if kind:
                return CliError(f"the {kind.kind} CRD ({resource}) is not installed in the cluster at "
                                f"{target.server}: {CRD_HINT}")
            return CliError(f"{resource}{' ' + name if name else ''} not found{where}")
        if err.status == 403:
            why = message.split("forbidden: ", 1)[-1] if message else "forbidden"
            return CliError(f"not allowed to {verb} {resource}{where} (context {target.context}): {why}")
        if err.status == 401:
            return CliError(f"the cluster at {target.server} rejected the credentials of context {target.context} "
                            f"(401 Unauthorized): log in again or fix the kubeconfig")
        if err.status == 0 or err.status is None:
            return CliError(f"cannot reach the cluster at {target.server}: {_first_line(err)}")
        return CliError(f"cannot {verb} {resource}{where}: {err.status} {err.reason}: {message[:300]}")
    if isinstance(err, urllib3.exceptions.HTTPError | OSError):
        return CliError(f"cannot reach the cluster at {target.server} (context {target.context}): {_network(err)}")
    return CliError(f"cannot {verb} {resource}{where}: {_first_line(err)}")


def _network(err: BaseException) -> str:
    reason: BaseException = err
    if isinstance(err, urllib3.exceptions.MaxRetryError) and err.reason is not None:
        reason = err.reason
    text = str(reason)
    for needle, short in (("Connection refused", "connection refused"), ("timed out", "timed out"),
                          ("Name or service not known", "unknown host"), ("nodename nor servname", "unknown host"),
                          ("CERTIFICATE_VERIFY_FAILED", "TLS certificate not trusted"),
                          ("No route to host", "no route to host")):
        if needle in text:
            return short
    return _first_line(reason)


class Cluster:
    """Objects of one kind (ModelDeployments unless told) and their Events, every failure a `CliError`."""

    def __init__(self, target: Target, kind: Kind = MODEL_DEPLOYMENTS) -> None:
        self.target = target
        self.kind = kind
        self.custom = client.CustomObjectsApi(target.api)
        self.core = client.CoreV1Api(target.api)

    def of(self, kind: Kind) -> Cluster:
        """The same cluster, reading another kind."""
        return Cluster(self.target, kind)

    def get(self, namespace: str, name: str) -> dict[str, Any]:
        try:
            return dict(self.custom.get_namespaced_custom_object(GROUP, VERSION, namespace, self.kind.plural,
                                                                 name, _request_timeout=TIMEOUT))
        except Exception as err:
            raise explain(err, self.target, "get", self.kind.resource, namespace=namespace, name=name) from None

    def list(self, namespace: str | None) -> list[dict[str, Any]]:
        try:
            if namespace is None:
                answer = self.custom.list_cluster_custom_object(GROUP, VERSION, self.kind.plural,
                                                                _request_timeout=TIMEOUT)
            else:
                answer = self.custom.list_namespaced_custom_object(GROUP, VERSION, namespace, self.kind.plural,
                                                                   _request_timeout=TIMEOUT)
        except Exception as err:
            raise explain(err, self.target, "list", self.kind.resource, namespace=namespace) from None
        return [dict(item) for item in answer.get("items") or []]

    def patch(self, namespace: str, name: str, body: dict[str, Any]) -> dict[str, Any]:
        """A JSON merge patch of the object (not its status)."""
        try:
            return dict(self.custom.patch_namespaced_custom_object(
                GROUP, VERSION, namespace, self.kind.plural, name, body, field_manager=FIELD_MANAGER,
                _request_timeout=TIMEOUT))
        except Exception as err:
            raise explain(err, self.target, "patch", self.kind.resource, namespace=namespace, name=name) from None

    def events(self, md: dict[str, Any]) -> list[dict[str, Any]]:
        """The Events about this object (by uid), oldest first."""
        meta = md.get("metadata") or {}
        selector = f"involvedObject.kind={self.kind.kind},involvedObject.name={meta.get('name')}"
        try:
            items = self.core.list_namespaced_event(meta.get("namespace"), field_selector=selector,
                                                    _request_timeout=TIMEOUT).items
        except Exception as err:
            raise explain(err, self.target, "list", "events", namespace=meta.get("namespace")) from None
        uid = meta.get("uid")
        events = [event_dict(e) for e in items if not uid or e.involved_object.uid in (None, uid)]
        return sorted(events, key=lambda e: (e["time"], e["order"]))

    def watch(self, namespace: str, name: str, seconds: int) -> Iterator[tuple[str, dict[str, Any]]]:
        """Changes of one object for up to `seconds` (then the stream ends): (type, object)."""
        stream = watch.Watch().stream(
            self.custom.list_namespaced_custom_object, GROUP, VERSION, namespace, self.kind.plural,
            field_selector=f"metadata.name={name}", timeout_seconds=seconds,
            _request_timeout=(TIMEOUT[0], seconds + 10))
        try:
            for event in stream:
                yield str(event.get("type")), dict(event.get("object") or {})
        except Exception as err:
            raise explain(err, self.target, "watch", self.kind.resource, namespace=namespace, name=name) from None


def _stamp(value: Any) -> str:
    if value is None:
        return ""
    if hasattr(value, "astimezone"):
        return str(value.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"))
    return str(value)


def event_dict(event: client.CoreV1Event) -> dict[str, Any]:
    """What the views need of a core/v1 Event: first and last time (RFC 3339), type, reason, message, count."""
    first = event.first_timestamp or event.event_time or event.metadata.creation_timestamp
    last = event.last_timestamp or first
    # Timestamps have one-second resolution; the resourceVersion orders events within a second
    # (etcd revisions in practice, and only a tie-breaker here).
    version = str(event.metadata.resource_version or "")
    return {"time": _stamp(first), "last": _stamp(last), "type": event.type or "", "reason": event.reason or "",
            "message": (event.message or "").strip(), "count": event.count or 1,
            "order": int(version) if version.isdigit() else 0}


class Watchable(Protocol):
    """An API object source the plugin follows: a `Cluster` or a fake in the tests."""

    def get(self, namespace: str, name: str) -> dict[str, Any]: ...

    def watch(self, namespace: str, name: str, seconds: int) -> Iterator[tuple[str, dict[str, Any]]]: ...


def follow(source: Watchable, namespace: str, name: str, interval: int, what: str) -> Iterator[dict[str, Any]]:
    """The object after every change, and at least every `interval` seconds; `what` names it in
    the error when it is deleted."""
    while True:
        seen = False
        for kind, obj in source.watch(namespace, name, interval):
            if kind == "DELETED":
                raise CliError(f"{what} {namespace}/{name} was deleted")
            if kind in ("ADDED", "MODIFIED"):
                seen = True
                yield obj
        if not seen:
            yield source.get(namespace, name)  # a watch that saw nothing: gone ("not found") or quiet


class EventSource(Protocol):
    """Where the views read an object's Events: a `Cluster`, the dashboard's reader, a fake."""

    def events(self, md: dict[str, Any]) -> list[dict[str, Any]]: ...


def events_or_none(source: EventSource, md: dict[str, Any]) -> list[dict[str, Any]] | None:
    """The object's Events; None when RBAC does not allow listing them (the views say so); any
    other failure is raised."""
    try:
        return source.events(md)
    except CliError as err:
        if "not allowed" in err.message:
            return None
        raise
