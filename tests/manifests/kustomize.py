"""A small kustomize: just the features manifests/ uses, so the checks run without kubectl.

Supported: ``resources`` (files and directories), ``components``, ``namespace``, ``images``
(newName/newTag/digest, on init and main containers) and ``patches`` given inline as JSON 6902 operations with a ``target``
(kind, name, labelSelector of ``key=value`` pairs). Anything else in a kustomization raises, so a
manifest using a feature this does not model fails the tests instead of being half-built.
``tests/manifests/test_yaml_and_schemas.py`` checks the result against ``kubectl kustomize`` when
kubectl is installed.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml

Obj = dict[str, Any]

CLUSTER_SCOPED = frozenset(
    {"Namespace", "PriorityClass", "NodePool", "EC2NodeClass", "ComputeClass", "ClusterRole"}
)
_KNOWN_KEYS = frozenset(
    {"apiVersion", "kind", "resources", "components", "namespace", "images", "patches"}
)


def load_documents(path: Path) -> list[Obj]:
    docs = [d for d in yaml.safe_load_all(path.read_text("utf-8")) if d is not None]
    for doc in docs:
        if not isinstance(doc, dict) or "kind" not in doc:
            raise ValueError(f"{path}: every document must be a Kubernetes object")
    return docs


def _kustomization(directory: Path) -> Obj:
    data = yaml.safe_load((directory / "kustomization.yaml").read_text("utf-8"))
    unknown = set(data) - _KNOWN_KEYS
    if unknown:
        raise ValueError(f"{directory}/kustomization.yaml: unsupported keys {sorted(unknown)}")
    return dict(data)


def _matches(obj: Obj, target: Obj) -> bool:
    if "kind" in target and obj["kind"] != target["kind"]:
        return False
    if "name" in target and obj["metadata"]["name"] != target["name"]:
        return False
    labels = obj["metadata"].get("labels", {})
    for pair in filter(None, target.get("labelSelector", "").split(",")):
        key, _, value = pair.partition("=")
        if labels.get(key.strip()) != value.strip():
            return False
    return True


def _pointer(path: str) -> list[str]:
    return [p.replace("~1", "/").replace("~0", "~") for p in path.lstrip("/").split("/")]


def apply_json6902(obj: Obj, operations: list[Obj]) -> None:
    for op in operations:
        *parents, last = _pointer(op["path"])
        node: Any = obj
        for part in parents:
            node = node[int(part)] if isinstance(node, list) else node[part]
        kind = op["op"]
        if kind not in ("add", "replace", "remove"):
            raise ValueError(f"unsupported JSON 6902 op {kind!r}")
        if isinstance(node, list):
            if kind == "add":
                node.insert(len(node) if last == "-" else int(last), copy.deepcopy(op["value"]))
            elif kind == "replace":
                node[int(last)] = copy.deepcopy(op["value"])
            else:
                del node[int(last)]
        else:
            if kind == "replace" and last not in node:
                raise KeyError(f"replace of missing {op['path']}")
            if kind == "remove":
                del node[last]
            else:
                node[last] = copy.deepcopy(op["value"])


def build(directory: Path) -> list[Obj]:
    """The objects ``kustomize build directory`` would emit (order aside)."""
    objects, _ = _build(directory)
    return objects


def _build(directory: Path) -> tuple[list[Obj], list[Obj]]:
    k = _kustomization(directory)
    objects: list[Obj] = []
    for entry in k.get("resources", []):
        path = directory / entry
        objects += build(path) if path.is_dir() else load_documents(path)
    patches = list(k.get("patches", []))
    for entry in k.get("components", []):
        component = directory / entry
        if _kustomization(component).get("kind") != "Component":
            raise ValueError(f"{component}: listed as a component but is not kind Component")
        component_objects, component_patches = _build(component)
        objects += component_objects
        patches = component_patches + patches
    if k.get("kind") == "Component":
        return objects, patches
    for patch in patches:
        operations = yaml.safe_load(patch["patch"])
        hits = [o for o in objects if _matches(o, patch["target"])]
        if not hits:
            raise ValueError(f"{directory}: patch target {patch['target']} matches nothing")
        for obj in hits:
            apply_json6902(obj, operations)
    if "namespace" in k:
        for obj in objects:
            if obj["kind"] not in CLUSTER_SCOPED:
                obj["metadata"]["namespace"] = k["namespace"]
    for image in k.get("images", []):
        for obj in objects:
            spec = pod_spec(obj) or {}
            for container in spec.get("initContainers", []) + spec.get("containers", []):
                container["image"] = _set_image(container["image"], image)
    return objects, []


def _set_image(reference: str, image: Obj) -> str:
    """kustomize's `images` transformer on one reference ``name[:tag][@digest]``: ``newName``
    replaces the name, ``digest`` replaces tag and digest, else ``newTag`` replaces the tag."""
    rest, _, digest = reference.partition("@")
    slash = rest.rfind("/")
    colon = rest.rfind(":")
    name, tag = (rest[:colon], rest[colon + 1 :]) if colon > slash else (rest, "")
    if name != image["name"]:
        return reference
    name = image.get("newName", name)
    if "digest" in image:
        return f"{name}@{image['digest']}"
    tag = image.get("newTag", tag)
    return name + (f":{tag}" if tag else "") + (f"@{digest}" if digest else "")


def pod_spec(obj: Obj) -> Obj | None:
    """The pod template's spec of a workload, else None."""
    if obj["kind"] in ("Deployment", "DaemonSet", "StatefulSet", "Job"):
        spec: Obj = obj["spec"]["template"]["spec"]
        return spec
    return None
