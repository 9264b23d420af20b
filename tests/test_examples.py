"""Every example stack under manifests/ validates, as `podform validate` would check it."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from reconciler.runtime.orchestrator import load_desired

MANIFESTS = Path(__file__).parent.parent / "manifests"
EXAMPLES = sorted(p.parent for p in MANIFESTS.rglob("*.yaml") if p.name == "stack.yaml")


def test_the_examples_are_found() -> None:
    """The GPU examples are among the stacks checked (an empty glob must not pass silently)."""
    names = {p.name for p in EXAMPLES}
    assert {"llama-vulkan", "linux-nvidia"} <= names


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: p.name)
def test_example_validates(example: Path) -> None:
    """Loading, schema, references and policy all accept the example."""
    desired = load_desired([str(example)])
    assert desired.workloads, f"{example} declares no workload"


def test_llama_vulkan_uses_the_gpu_the_right_way() -> None:
    """libkrun machine with the models folder read-only, /dev/dri limited to libkrun, Venus probe."""
    d = load_desired([str(MANIFESTS / "examples" / "llama-vulkan")])
    gpu = d.machines["gpu"]
    models = os.path.realpath(os.path.expanduser("~/models"))
    assert (gpu.provider, gpu.rootful, gpu.volumes) == ("libkrun", True, (f"{models}:/models:ro",))
    assert gpu.memory_mib is not None and 8192 <= gpu.memory_mib <= 61440
    mapping = d.mappings["apple-gpu"]
    assert (mapping.devices, mapping.providers) == (("/dev/dri",), ("libkrun",))
    assert mapping.probe is not None and mapping.probe.expect == "Virtio-GPU Venus"
    server = d.workloads["llama-server"]
    assert server.machine == "gpu" and server.healthcheck is not None
    containerfile = (
        MANIFESTS / "examples" / "llama-vulkan" / "llama" / "Containerfile"
    ).read_text()
    assert "-DGGML_VULKAN=ON" in containerfile and "mesa-libkrun-vulkan" in containerfile
    # portable build, pinned Mesa from the COPR and locked, llama.cpp tag from the manifest
    assert "-DGGML_NATIVE=OFF" in containerfile
    assert 'dnf versionlock add "mesa-vulkan-drivers-${MESA_VULKAN_VERSION}"' in containerfile
    assert '--branch "${LLAMA_CPP_TAG}"' in containerfile
    image = d.images["llama-vulkan"]
    assert image.build is not None and image.build.args["LLAMA_CPP_TAG"].startswith("b")
