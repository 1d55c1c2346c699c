"""The operator's in-memory view of the cluster, fed by its watches and by its own writes (pure).

The reconciler observes from here, never from GETs: the watches (Kopf, one per kind) put every
event in, and every write the operator makes puts the API server's answer in, so a tick that
follows a write sees what it wrote even before the watch event arrives (read-after-write).

Objects are kept per (apiVersion, kind, namespace, name). A put only wins when its
resourceVersion is not older than what is held, so a late watch event can never undo a newer write;
deletions leave a short-lived tombstone for the same reason. resourceVersions are compared as
integers (etcd revisions); one that is not an integer always wins, the conservative choice.
`managedFields` are dropped on the way in: they are the largest part of most objects and the
operator never reads them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from modelpilot.resources.labels import LABEL_BATCH, LABEL_NAME

Obj = dict[str, Any]
Ref = tuple[str, str, str, str]  # apiVersion, kind, namespace, name

MAX_TOMBSTONES = 20_000


def ref_of(obj: Mapping[str, Any]) -> Ref:
    meta = obj.get("metadata") or {}
    return (str(obj.get("apiVersion", "")), str(obj.get("kind", "")), str(meta.get("namespace", "")),
            str(meta.get("name", "")))


def _version(obj: Mapping[str, Any]) -> int | None:
    raw = (obj.get("metadata") or {}).get("resourceVersion")
    try:
        return int(raw)
    except (TypeError, ValueError):
        return None


def stub(obj: Mapping[str, Any]) -> Obj:
    """What is kept of an object the operator does not manage: enough to know the name is taken
    and by whom (a NameConflict), a few hundred bytes whatever the object's size."""
    meta = obj.get("metadata") or {}
    kept = {key: meta[key] for key in ("name", "namespace", "resourceVersion", "uid", "ownerReferences")
            if key in meta}
    return {"apiVersion": obj.get("apiVersion"), "kind": obj.get("kind"), "metadata": kept}


def node_stub(obj: Mapping[str, Any]) -> Obj:
    """What is kept of a Node (target Edge): labels, taints and the Ready condition. A real node's
    status (images, addresses, capacity) is most of its size, and a fleet has thousands of them."""
    meta = obj.get("metadata") or {}
    kept = {key: meta[key] for key in ("name", "resourceVersion", "uid", "labels", "deletionTimestamp") if key in meta}
    ready = [c for c in (obj.get("status") or {}).get("conditions") or [] if c.get("type") == "Ready"]
    return {"apiVersion": obj.get("apiVersion"), "kind": obj.get("kind"), "metadata": kept,
            "spec": {"taints": (obj.get("spec") or {}).get("taints") or []},
            "status": {"conditions": [{"type": "Ready", "status": c.get("status")} for c in ready]}}


def slim(obj: Mapping[str, Any]) -> Obj:
    """A plain copy without managedFields (and without Kopf's wrappers)."""
    out = {key: value for key, value in obj.items() if key != "metadata"}
    meta = {key: value for key, value in (obj.get("metadata") or {}).items() if key != "managedFields"}
    out["metadata"] = meta
    return out


@dataclass
class LabelIndex:
    """Objects (of `kind`, or of any kind) by (namespace, value of `label`)."""

    label: str
    kind: str | None = None
    members: dict[tuple[str, str], dict[Ref, Obj]] = field(default_factory=dict)
    _key_of: dict[Ref, tuple[str, str]] = field(default_factory=dict)

    def put(self, ref: Ref, obj: Obj) -> None:
        self.remove(ref)
        value = ((obj.get("metadata") or {}).get("labels") or {}).get(self.label)
        if value and (self.kind is None or ref[1] == self.kind):
            key = (ref[2], value)
            self.members.setdefault(key, {})[ref] = obj
            self._key_of[ref] = key

    def remove(self, ref: Ref) -> None:
        key = self._key_of.pop(ref, None)
        if key is None:
            return
        members = self.members.get(key, {})
        members.pop(ref, None)
        if not members:
            self.members.pop(key, None)

    def of(self, namespace: str, value: str) -> list[tuple[Ref, Obj]]:
        return list(self.members.get((namespace, value), {}).items())


@dataclass
class Store:
    """Objects by reference, plus two label indices: pods by (namespace, app.kubernetes.io/name),
    and the Jobs and pods of each BatchPrediction by (namespace, modelpilot.io/batch-prediction)."""

    objects: dict[Ref, Obj] = field(default_factory=dict)
    tombstones: dict[Ref, int] = field(default_factory=dict)
    pods: LabelIndex = field(default_factory=lambda: LabelIndex(LABEL_NAME, "Pod"))
    batch: LabelIndex = field(default_factory=lambda: LabelIndex(LABEL_BATCH))
    nodes: dict[str, Obj] = field(default_factory=dict)  # Node stubs by name (target Edge)

    def _newer(self, ref: Ref, obj: Mapping[str, Any]) -> bool:
        incoming = _version(obj)
        if incoming is None:
            return True
        held = self.objects.get(ref)
        held_version = _version(held) if held is not None else self.tombstones.get(ref)
        return held_version is None or incoming >= held_version

    def put(self, obj: Mapping[str, Any], whole: bool = True) -> bool:
        """Keep `obj` (a stub of it unless `whole`) unless an equal or newer version is already
        held; True when it was kept."""
        ref = ref_of(obj)
        if not self._newer(ref, obj):
            return False
        if ref[1] == "Node" and ref[0] == "v1":
            kept = node_stub(obj)
            self.nodes[ref[3]] = kept
        else:
            kept = slim(obj) if whole else stub(obj)
        self.objects[ref] = kept
        self.tombstones.pop(ref, None)
        self.pods.put(ref, kept)
        self.batch.put(ref, kept)
        return True

    def remove(self, obj: Mapping[str, Any]) -> None:
        """The object is gone (a DELETED event, or our own delete)."""
        ref = ref_of(obj)
        if not self._newer(ref, obj):
            return
        self.objects.pop(ref, None)
        version = _version(obj)
        if version is not None:
            # resourceVersions only grow, so a tombstone never hides a re-created object; it only
            # has to outlive the late events of the deleted one. Bounded: the oldest half goes.
            if len(self.tombstones) >= MAX_TOMBSTONES:
                for old in list(self.tombstones)[: MAX_TOMBSTONES // 2]:
                    del self.tombstones[old]
            self.tombstones[ref] = version
        self.pods.remove(ref)
        self.batch.remove(ref)
        if ref[1] == "Node" and ref[0] == "v1":
            self.nodes.pop(ref[3], None)

    def forget_kind(self, api_version: str, kind: str) -> int:
        """Drop every object of a kind whose CRD was deleted (its objects went with it, and no
        DELETED event comes for them); how many were dropped."""
        refs = [ref for ref in self.objects if ref[0] == api_version and ref[1] == kind]
        for ref in refs:
            del self.objects[ref]
            self.pods.remove(ref)
            self.batch.remove(ref)
        return len(refs)

    def get(self, api_version: str, kind: str, namespace: str, name: str) -> Obj | None:
        return self.objects.get((api_version, kind, namespace, name))

    def all_nodes(self) -> list[Obj]:
        return list(self.nodes.values())

    def pods_of(self, namespace: str, app: str) -> list[Obj]:
        return [pod for _, pod in self.pods.of(namespace, app)]

    def batch_objects(self, namespace: str, name: str, kind: str) -> list[Obj]:
        """The objects of `kind` labelled as BatchPrediction `name`'s (its Jobs, its pods)."""
        return [obj for ref, obj in self.batch.of(namespace, name) if ref[1] == kind]

    def __len__(self) -> int:
        return len(self.objects)
