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
    assert {"llama-vulkan", "linux-nvidia", "open-webui"} <= names


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


def test_open_webui_finds_the_model_server_by_name_on_the_stack_network() -> None:
    """Both workloads join the stack network `chat` with their names as aliases; the UI's
    API URL uses the server's workload name; the token comes from a declared Secret."""
    d = load_desired([str(MANIFESTS / "examples" / "open-webui")])
    server, ui = d.workloads["llama-server"], d.workloads["open-webui"]
    assert [(a.network, a.aliases) for a in server.networks] == [("chat", ("llama-server",))]
    assert [a.network for a in ui.networks] == ["chat"]
    assert ui.env["OPENAI_API_BASE_URL"].startswith("http://llama-server:8080")
    assert [(s.podman_name, s.declared) for s in ui.secrets] == [("chat-webui-secret", True)]


def test_linux_nvidia_disables_the_selinux_label_for_the_gpu() -> None:
    """SELinux hosts need label=disable for NVML and :z on the models bind."""
    w = load_desired([str(MANIFESTS / "examples" / "linux-nvidia")]).workloads["llama-server"]
    assert "label=disable" in w.options.security_opt
    assert "z" in w.volumes[0].options


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: p.name)
def test_bind_sources_inside_an_example_ship_with_it(example: Path) -> None:
    """A bind of a folder beside the manifest (./models) exists in the checkout: Podman refuses
    a missing source at create time (`statfs ...: no such file or directory`)."""
    desired = load_desired([str(example)])
    missing = [
        f"{w.name}: {m.source}"
        for w in desired.workloads.values()
        if w.machine is None  # a machine's paths are inside its VM
        for m in w.volumes
        if m.bind and Path(m.source).is_relative_to(example) and not Path(m.source).exists()
    ]
    assert missing == []
