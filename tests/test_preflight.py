"""preflight: each known machine/GPU limit is found before any change, with a message naming its fix."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from reconciler.engine.observed import ClientInfo
from reconciler.engine.preflight import preflight
from reconciler.manifests.model import Desired
from reconciler.runtime.orchestrator import load_desired

MAC5 = ClientInfo((5, 8, 2), "darwin", "arm64", "applehv")
MAC6 = ClientInfo((6, 0, 1), "darwin", "arm64", "libkrun")
LINUX = ClientInfo((5, 8, 2), "linux", "amd64", "qemu")
INTEL_MAC = ClientInfo((5, 8, 2), "darwin", "amd64", "applehv")
OLD = ClientInfo((4, 9, 3), "darwin", "arm64", "applehv")


def machine(name: str, **spec: Any) -> dict[str, Any]:
    return {"apiVersion": "podform/v1", "kind": "Machine", "metadata": {"name": name},
            "spec": {"state": "running", **spec}}  # fmt: skip


def mapping(
    providers: list[str] | None, devices: tuple[str, ...] = ("/dev/dri",)
) -> dict[str, Any]:
    spec: dict[str, Any] = {"devices": list(devices)}
    if providers is not None:
        spec["providers"] = providers
    return {"apiVersion": "podform/v1", "kind": "DeviceMapping", "metadata": {"name": "gpu-dev"},
            "spec": spec}  # fmt: skip


def workload(machine_name: str | None) -> dict[str, Any]:
    spec: dict[str, Any] = {"image": "localhost/x:1", "devices": ["gpu-dev"]}
    if machine_name:
        spec["machine"] = machine_name
    return {"apiVersion": "podform/v1", "kind": "Workload", "metadata": {"name": "llama"},
            "spec": spec}  # fmt: skip


def load(tmp_path: Path, *docs: dict[str, Any]) -> Desired:
    path = tmp_path / "stack.yaml"
    path.write_text(yaml.safe_dump_all(list(docs)))
    return load_desired([str(path)])


CASES = [
    # (id, client, docs, expected problem text — a fragment naming the fix — or None)
    ("libkrun-on-mac-ok", MAC5, [machine("gpu", provider="libkrun", memory="16GiB")], None),
    ("libkrun-on-linux", LINUX, [machine("gpu", provider="libkrun")],
     "machine gpu: provider libkrun needs an Apple-Silicon Mac (macOS on arm64), but this podman "
     "runs on linux/amd64; use a provider this host has (qemu) or run podform on an "
     "Apple-Silicon Mac"),
    ("libkrun-on-intel-mac", INTEL_MAC, [machine("gpu", provider="libkrun")],
     "runs on darwin/amd64; use a provider this host has (applehv)"),
    ("default-provider-on-linux", LINUX, [machine("gpu")], None),
    ("libkrun-memory", MAC5, [machine("gpu", provider="libkrun", memory="61441MiB")],
     "machine gpu: memory 61441 MiB is over libkrun's limit of 61440 MiB (krunkit refuses it); "
     "set memory: 60GiB or less"),
    ("libkrun-memory-at-limit", MAC5, [machine("gpu", provider="libkrun", memory="60GiB")], None),
    ("6.x-default-is-libkrun", MAC6, [machine("gpu", memory="64GiB")], "over libkrun's limit"),
    ("two-running-on-mac", MAC5,
     [machine("a", provider="libkrun"), machine("b", provider="applehv")],
     "machines a, b are all declared state: running, but macOS runs only one applehv/libkrun "
     "machine at a time; set state: stopped on all but one"),
    ("two-but-one-stopped", MAC5,
     [machine("a", provider="libkrun"), machine("b", provider="applehv", state="stopped")], None),
    ("two-running-on-linux", LINUX, [machine("a"), machine("b")], None),
    ("gpu-on-applehv", MAC5,
     [machine("gpu", provider="applehv"), mapping(["libkrun"]), workload("gpu")],
     "Workload llama: DeviceMapping gpu-dev serves providers [libkrun], but the workload runs on "
     "machine gpu (provider applehv); applehv exposes no GPU; use provider: libkrun on machine gpu"),
    ("gpu-on-default-applehv", MAC5, [machine("gpu"), mapping(["libkrun"]), workload("gpu")],
     "applehv exposes no GPU; use provider: libkrun"),
    ("gpu-on-libkrun-ok", MAC5,
     [machine("gpu", provider="libkrun"), mapping(["libkrun"]), workload("gpu")], None),
    ("native-mapping-on-machine", LINUX,
     [machine("vm", provider="qemu"), mapping(["native"], ("nvidia.com/gpu=all",)),
      workload("vm")],
     "remove `machine:` from the workload to run it on the host's own Podman"),
    ("libkrun-mapping-native", None, [mapping(["libkrun"]), workload(None)],
     "the workload runs on the host's own Podman (no machine); run it on a Machine with "
     "provider: libkrun"),
    ("native-ok", None, [mapping(["native"], ("nvidia.com/gpu=all",)), workload(None)], None),
    ("unrestricted-mapping", MAC5, [machine("gpu", provider="applehv"), mapping(None),
                                    workload("gpu")], None),
    ("podman-4", OLD, [machine("gpu")],
     "Podman 4.x machines are not supported; install Podman 5 or newer"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("client", "docs", "expected"), [pytest.param(*c[1:], id=c[0]) for c in CASES]
)
def test_preflight(
    tmp_path: Path, client: ClientInfo | None, docs: list[dict[str, Any]], expected: str | None
) -> None:
    """Known limits are reported with their fix; stacks within the limits pass."""
    problems = preflight(load(tmp_path, *docs), client)
    if expected is None:
        assert problems == []
    else:
        assert len(problems) == 1 and expected in problems[0], problems


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    """All problems come back together, not just the first."""
    d = load(tmp_path, machine("gpu", provider="libkrun", memory="64GiB"), machine("b"))
    assert len(preflight(d, LINUX)) == 2
