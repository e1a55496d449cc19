"""The registry is set in one place: the overlays' kustomize ``images:`` entries. Pointing them at
a registry (by digest) and a mirror of vLLM reaches every container that runs the image, init
containers (vLLM is a native sidecar) included, as `kubectl kustomize` builds it."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.conftest import require_binary
from tests.manifests.conftest import MANIFESTS, OVERLAYS
from tests.manifests.kustomize import Obj, build, pod_spec

REGISTRY = "registry.example.com:5000/ml"
DIGEST = "sha256:" + "ab" * 32


def _images(objects: list[Obj]) -> set[str]:
    return {
        c["image"]
        for o in objects
        for c in (pod_spec(o) or {}).get("initContainers", [])
        + (pod_spec(o) or {}).get("containers", [])
    }


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_one_images_entry_moves_every_container(tmp_path: Path, overlay: str) -> None:
    site = tmp_path / "site"
    site.mkdir()
    (site / "kustomization.yaml").write_text(
        yaml.safe_dump(
            {
                "apiVersion": "kustomize.config.k8s.io/v1beta1",
                "kind": "Kustomization",
                # kustomize takes relative roots only.
                "resources": [os.path.relpath(MANIFESTS / "overlays" / overlay, site)],
                "images": [
                    {"name": "depthscale", "newName": f"{REGISTRY}/depthscale", "digest": DIGEST},
                    {
                        "name": "depthscale-worker",
                        "newName": f"{REGISTRY}/depthscale-worker",
                        "digest": DIGEST,
                    },
                    {"name": "vllm/vllm-openai", "newName": f"{REGISTRY}/vllm-openai"},
                ],
            }
        )
    )
    out = subprocess.run(
        [require_binary("kubectl"), "kustomize", str(site)],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    theirs = [o for o in yaml.safe_load_all(out) if o]
    images = _images(theirs)
    assert f"{REGISTRY}/depthscale@{DIGEST}" in images
    assert f"{REGISTRY}/depthscale-worker@{DIGEST}" in images
    vllm = {i for i in images if "vllm-openai" in i}
    assert vllm, "the models and the placeholders run vLLM"
    # The mirror keeps the models file's tag and digest.
    assert all(i.startswith(f"{REGISTRY}/vllm-openai:v") and "@sha256:" in i for i in vllm)
    local = {i for i in images if i.split(":")[0] in ("depthscale", "depthscale-worker")}
    assert not local, f"left on local names: {local}"
    # The tests' own builder applies the same entries the same way.
    assert _images(build(site)) == images
