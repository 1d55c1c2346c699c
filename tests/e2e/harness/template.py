"""Turn a pod (as the API server returns it) into the host processes a kubelet would run for it.

Pure apart from creating the per-pod volume directories. Nothing about the runtime is assumed
beyond what the pod spec says: volumes become per-pod directories, every path under a mount is
rewritten to that directory, `$(VAR)` references are expanded like the kubelet does, the command
is looked up in `bin_dir` (which stands in for the image), and the server binds the pod's own IP
(`status.podIP`, routed locally inside the test bed's network namespace) on its containerPort.
A template that could not work in a real pod (a port the probe does not
target, a mount that is missing, no command) is reported in `problems`, which keeps the process
from ever being considered ready, as a failing readiness probe would.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

Obj = dict[str, Any]

LOOPBACK = "127.0.0.1"  # where a pod without an IP yet would bind (plans for unit tests)
_VAR_REF = re.compile(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)")


@dataclass(frozen=True)
class ContainerPlan:
    """One container as a host command: argv[0] is an absolute path, env is complete."""

    name: str
    argv: list[str]
    env: dict[str, str]
    cwd: Path


@dataclass
class ProcessPlan:
    """What to run for one pod, and how to tell when it is live and ready."""

    namespace: str
    pod: str
    uid: str
    labels: dict[str, str]
    init: list[ContainerPlan]
    server: ContainerPlan | None
    host: str  # the address the server binds: the pod IP
    port: int  # the port the server listens on
    container_port: int | None  # the port the pod template declares
    ready_path: str | None  # HTTP path of the readiness probe; None: ready once the port accepts
    volumes: dict[str, Path]
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def expand_refs(text: str, env: Mapping[str, str]) -> str:
    """Kubernetes `$(VAR)` expansion: defined variables are substituted, `$$` is a literal `$`,
    undefined references are left as they are."""

    def sub(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        name = match.group(1)
        return env[name] if name in env else match.group(0)

    return _VAR_REF.sub(sub, text)


def pod_ip(pod: Obj) -> str:
    return str((pod.get("status") or {}).get("podIP") or LOOPBACK)


def field_ref(pod: Obj, path: str) -> str | None:
    """The value of an env `fieldRef` (the downward API subset a model server would use)."""
    meta = pod.get("metadata") or {}
    simple = {
        "metadata.name": meta.get("name"),
        "metadata.namespace": meta.get("namespace"),
        "metadata.uid": meta.get("uid"),
        "spec.nodeName": (pod.get("spec") or {}).get("nodeName"),
        "spec.serviceAccountName": (pod.get("spec") or {}).get("serviceAccountName"),
        "status.podIP": pod_ip(pod),
        "status.hostIP": str((pod.get("status") or {}).get("hostIP") or pod_ip(pod)),
    }
    if path in simple:
        value = simple[path]
        return None if value is None else str(value)
    match = re.fullmatch(r"metadata\.(labels|annotations)\['([^']+)'\]", path)
    if match:
        value = (meta.get(match.group(1)) or {}).get(match.group(2))
        return None if value is None else str(value)
    return None


SecretReader = Callable[[str, str], "str | None"]  # (secret name, key) -> value, None when absent


def _from_source(pod: Obj, source: Obj, secrets: SecretReader | None) -> str | None:
    ref = source.get("fieldRef")
    if ref:
        return field_ref(pod, ref.get("fieldPath", ""))
    secret = source.get("secretKeyRef")
    if secret and secrets is not None:
        return secrets(str(secret.get("name")), str(secret.get("key")))
    return None


def resolve_env(pod: Obj, container: Obj, secrets: SecretReader | None = None) -> tuple[dict[str, str], list[str]]:
    """The env the pod spec defines for `container`, as the kubelet would set it: literal values
    (with `$(VAR)` expanded against the variables defined before), fieldRef metadata/status
    values, secretKeyRef values when `secrets` reads them (an optional key that is absent is left
    out); other valueFrom sources (config maps, resource fields) are skipped and named in the notes."""
    env: dict[str, str] = {}
    notes: list[str] = []
    for entry in container.get("env") or []:
        name = entry["name"]
        if entry.get("valueFrom") is not None:
            source = entry["valueFrom"]
            value = _from_source(pod, source, secrets)
            if value is None and (source.get("secretKeyRef") or {}).get("optional") and secrets is not None:
                continue
            if value is None:
                notes.append(f"{container['name']}: env {name} from {sorted(source)} not emulated")
                continue
        else:
            value = expand_refs(entry.get("value") or "", env)
        env[name] = value
    return env, notes


@dataclass(frozen=True)
class Mounts:
    """mountPath -> host directory for one container, longest mount path first."""

    paths: tuple[tuple[str, Path], ...]

    def rewrite(self, value: str) -> str:
        """A path inside the container -> the host path; anything else unchanged."""
        for mount, host in self.paths:
            if value == mount:
                return str(host)
            if value.startswith(mount.rstrip("/") + "/"):
                return str(host / value[len(mount.rstrip("/")) + 1 :])
        return value

    def rewrite_arg(self, arg: str) -> str:
        if arg.startswith("-") and "=" in arg:
            flag, _, value = arg.partition("=")
            return f"{flag}={self.rewrite(value)}"
        return self.rewrite(arg)


def _mounts(container: Obj, volumes: Mapping[str, Path], problems: list[str]) -> Mounts:
    paths: list[tuple[str, Path]] = []
    for mount in container.get("volumeMounts") or []:
        host = volumes.get(mount["name"])
        if host is None:
            problems.append(f"{container['name']}: volumeMount {mount['name']!r} names no volume of the pod")
            continue
        if mount.get("subPath"):
            host = host / mount["subPath"]
            host.mkdir(parents=True, exist_ok=True)
        paths.append((mount["mountPath"], host))
    paths.sort(key=lambda item: len(item[0]), reverse=True)
    return Mounts(tuple(paths))


def _volumes(pod: Obj, root: Path, pvc_dirs: Mapping[str, Path], problems: list[str]) -> dict[str, Path]:
    volumes: dict[str, Path] = {}
    for volume in (pod.get("spec") or {}).get("volumes") or []:
        name = volume["name"]
        claim = (volume.get("persistentVolumeClaim") or {}).get("claimName")
        if claim is not None:
            if claim not in pvc_dirs:
                problems.append(f"volume {name!r}: claim {claim!r} has no host directory (pvc_dirs)")
                continue
            volumes[name] = Path(pvc_dirs[claim])
            continue
        # emptyDir and anything else (configMap, secret, ...): an empty per-pod directory.
        path = root / "volumes" / name
        path.mkdir(parents=True, exist_ok=True)
        volumes[name] = path
    return volumes


def _command(container: Obj, bin_dir: Path, env: Mapping[str, str], mounts: Mounts,
             problems: list[str]) -> list[str] | None:
    command = list(container.get("command") or [])
    if not command:
        problems.append(f"{container['name']}: no command (an image entrypoint cannot be emulated)")
        return None
    executable = bin_dir / Path(expand_refs(command[0], env)).name
    if not executable.exists():
        problems.append(f"{container['name']}: command {command[0]!r} not found in the image ({bin_dir})")
        return None
    rest = [expand_refs(a, env) for a in command[1:] + list(container.get("args") or [])]
    return [str(executable), *(mounts.rewrite_arg(a) for a in rest)]


def _probe_port(container: Obj) -> tuple[int | None, str | None]:
    """(containerPort the readiness probe targets, its HTTP path)."""
    ports = container.get("ports") or []
    probe = container.get("readinessProbe") or {}
    http = probe.get("httpGet")
    target = (http or probe.get("tcpSocket") or {}).get("port")
    path = (http or {}).get("path", "/") if http else None
    if isinstance(target, str) and not target.isdigit():
        named = [p["containerPort"] for p in ports if p.get("name") == target]
        return (int(named[0]) if named else None), path
    if target is not None:
        return int(target), path
    return (int(ports[0]["containerPort"]) if ports else None), path


def _flag_value(argv: list[str], flag: str) -> tuple[int, str] | None:
    """(index of the value, value) of `--flag VALUE` or `--flag=VALUE`; the last one wins."""
    found: tuple[int, str] | None = None
    for i, arg in enumerate(argv):
        if arg == flag and i + 1 < len(argv):
            found = (i + 1, argv[i + 1])
        elif arg.startswith(flag + "="):
            found = (i, arg.split("=", 1)[1])
    return found


def _set_flag(argv: list[str], flag: str, value: str) -> None:
    found = _flag_value(argv, flag)
    if found is None:
        argv += [flag, value]
    else:
        index, _ = found
        argv[index] = value if argv[index - 1] == flag else f"{flag}={value}"


def is_job_pod(pod: Obj) -> bool:
    """A pod a Job controls: it runs to completion instead of serving."""
    return any(ref.get("kind") == "Job" and ref.get("controller")
               for ref in (pod.get("metadata") or {}).get("ownerReferences") or [])


def termination_log(root: Path) -> Path:
    """Where a pod's termination message lands (the kubelet mounts a file at terminationMessagePath)."""
    return root / "termination-log"


@dataclass(frozen=True)
class Kubelet:
    """What every container of one pod is planned with."""

    root: Path
    bin_dir: Path
    base_env: Mapping[str, str]
    volumes: Mapping[str, Path]
    secrets: SecretReader | None


def _container_plan(pod: Obj, container: Obj, kubelet: Kubelet, problems: list[str],
                    notes: list[str]) -> tuple[ContainerPlan | None, dict[str, str]]:
    """One container as a host command (None when it cannot run) and its complete env."""
    mounts = _mounts(container, kubelet.volumes, problems)
    if container.get("terminationMessagePath"):
        mounts = Mounts(((container["terminationMessagePath"], termination_log(kubelet.root)), *mounts.paths))
    defined, env_notes = resolve_env(pod, container, kubelet.secrets)
    notes.extend(env_notes)
    argv = _command(container, kubelet.bin_dir, defined, mounts, problems)
    env = dict(kubelet.base_env)
    tmp = mounts.rewrite("/tmp")
    if tmp != "/tmp":
        env["TMPDIR"] = tmp
    env.update({k: mounts.rewrite(v) for k, v in defined.items()})
    if argv is None:
        return None, env
    return ContainerPlan(name=container["name"], argv=argv, env=env, cwd=kubelet.root), env


@dataclass(frozen=True)
class ServerPort:
    forced: int | None  # the port a test imposes (no pod IP), else None
    declared: int | None  # the containerPort the readiness probe targets
    env: str  # the env variable that carries the port when the args have no --port


def _serving(plan: ContainerPlan, env: dict[str, str], port: ServerPort, host: str, root: Path,
             problems: list[str], notes: list[str]) -> tuple[ContainerPlan, int]:
    """The server's plan bound to the pod IP and its port; (plan, port it listens on)."""
    argv = list(plan.argv)
    flag = _flag_value(argv, "--port")
    declared = flag[1] if flag else env.get(port.env)
    if declared is None:
        notes.append("the server is given no port; --port added")
    elif port.declared is not None and declared != str(port.declared):
        problems.append(f"the server listens on port {declared} but the pod declares/probes "
                        f"containerPort {port.declared}")
    listen = port.forced or port.declared or (int(declared) if declared and declared.isdigit() else 8080)
    if flag is not None or declared is None:
        _set_flag(argv, "--port", str(listen))
    if port.env in env:
        env[port.env] = str(listen)
    _set_flag(argv, "--host", host)
    return ContainerPlan(name=plan.name, argv=argv, env=env, cwd=root), listen


def plan_pod(pod: Obj, *, root: Path, bin_dir: Path, base_env: Mapping[str, str], port: int | None = None,
             pvc_dirs: Mapping[str, Path] | None = None, server_container: str | None = None,
             port_env: str = "MODELPILOT_PORT", secrets: SecretReader | None = None) -> ProcessPlan:
    """The processes for `pod` (a dict as the API returns it, camelCase keys).

    A Job's pod (`is_job_pod`) runs its first container to completion: no port or host is given to
    it, and its terminationMessagePath is a file under `root` (`termination_log`).

    The server container is `server_container` when given, else the only/first container. Its
    port: the containerPort its readiness probe targets; the value of `--port` (or of
    `port_env` when the args have no `--port`) must equal it, else the plan has a problem (a
    real pod would never pass its probe). The process binds the pod IP (`--host`) on that port,
    or on `port` when given (a test that runs a pod without a pod IP).
    """
    meta = pod.get("metadata") or {}
    spec = pod.get("spec") or {}
    problems: list[str] = []
    notes: list[str] = []
    volumes = _volumes(pod, root, pvc_dirs or {}, problems)

    def container_plan(container: Obj) -> tuple[ContainerPlan | None, dict[str, str]]:
        return _container_plan(pod, container, Kubelet(root, bin_dir, base_env, volumes, secrets), problems, notes)

    init: list[ContainerPlan] = []
    for container in spec.get("initContainers") or []:
        if container.get("restartPolicy") == "Always":
            notes.append(f"sidecar {container['name']} not emulated")
            continue
        plan, _ = container_plan(container)
        if plan is not None:
            init.append(plan)

    containers = spec.get("containers") or []
    chosen = [c for c in containers if c["name"] == server_container] if server_container else containers[:1]
    server: ContainerPlan | None = None
    container_port: int | None = None
    ready_path: str | None = None
    listen = port or 0
    host = pod_ip(pod)
    if not chosen:
        problems.append(f"no container {server_container or ''} to serve".replace("  ", " "))
    elif is_job_pod(pod):
        server, _ = container_plan(chosen[0])
    else:
        container_port, ready_path = _probe_port(chosen[0])
        plan, env = container_plan(chosen[0])
        if plan is not None:
            server, listen = _serving(plan, env, ServerPort(port, container_port, port_env), host, root,
                                      problems, notes)
    return ProcessPlan(
        namespace=str(meta.get("namespace", "")),
        pod=str(meta.get("name", "")),
        uid=str(meta.get("uid", "")),
        labels=dict(meta.get("labels") or {}),
        init=init,
        server=server,
        host=host,
        port=listen,
        container_port=container_port,
        ready_path=ready_path,
        volumes=volumes,
        problems=problems,
        notes=notes,
    )
