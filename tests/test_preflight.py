"""preflight: each known machine/GPU limit is found before any change, with a message naming its fix."""

from __future__ import annotations

import pytest
from helpers import make_desired, make_machine, make_mapping, make_workload

from reconciler.engine.observed import ClientInfo
from reconciler.engine.preflight import preflight
from reconciler.manifests.model import DeviceMapping, Machine, Workload

MAC5 = ClientInfo((5, 8, 2), "darwin", "arm64", "applehv")
MAC6 = ClientInfo((6, 0, 1), "darwin", "arm64", "libkrun")
LINUX = ClientInfo((5, 8, 2), "linux", "amd64", "qemu")
INTEL_MAC = ClientInfo((5, 8, 2), "darwin", "amd64", "applehv")
OLD = ClientInfo((4, 9, 3), "darwin", "arm64", "applehv")


def mapping(providers: list[str] | None, devices: tuple[str, ...] = ("/dev/dri",)) -> DeviceMapping:
    return make_mapping("gpu-dev", devices, tuple(providers) if providers is not None else None)


def workload(machine_name: str | None) -> Workload:
    return make_workload("llama", machine=machine_name, image_ref="localhost/x:1",
                         devices=("/dev/dri",), mappings=("gpu-dev",))  # fmt: skip


CASES = [
    # (id, client, docs, expected problem text — a fragment naming the fix — or None)
    ("libkrun-on-mac-ok", MAC5, [make_machine("gpu", provider="libkrun", memory_mib=16 * 1024)], None),
    ("libkrun-on-linux", LINUX, [make_machine("gpu", provider="libkrun")],
     "machine gpu: provider libkrun needs an Apple-Silicon Mac (macOS on arm64), but this podman "
     "runs on linux/amd64; use a provider this host has (qemu) or run podform on an "
     "Apple-Silicon Mac"),
    ("libkrun-on-intel-mac", INTEL_MAC, [make_machine("gpu", provider="libkrun")],
     "runs on darwin/amd64; use a provider this host has (applehv)"),
    ("default-provider-on-linux", LINUX, [make_machine("gpu")], None),
    ("libkrun-memory", MAC5, [make_machine("gpu", provider="libkrun", memory_mib=61441)],
     "machine gpu: memory 61441 MiB is over libkrun's limit of 61440 MiB (krunkit refuses it); "
     "set memory: 60GiB or less"),
    ("libkrun-memory-at-limit", MAC5, [make_machine("gpu", provider="libkrun", memory_mib=60 * 1024)], None),
    ("6.x-default-is-libkrun", MAC6, [make_machine("gpu", memory_mib=64 * 1024)], "over libkrun's limit"),
    ("two-running-on-mac", MAC5,
     [make_machine("a", provider="libkrun"), make_machine("b", provider="applehv")],
     "machines a, b are all declared state: running, but macOS runs only one applehv/libkrun "
     "machine at a time; set state: stopped on all but one"),
    ("two-but-one-stopped", MAC5,
     [make_machine("a", provider="libkrun"), make_machine("b", provider="applehv", state="stopped")], None),
    ("two-running-on-linux", LINUX, [make_machine("a"), make_machine("b")], None),
    ("gpu-on-applehv", MAC5,
     [make_machine("gpu", provider="applehv"), mapping(["libkrun"]), workload("gpu")],
     "Workload llama: DeviceMapping gpu-dev serves providers [libkrun], but the workload runs on "
     "machine gpu (provider applehv); applehv exposes no GPU; use provider: libkrun on machine gpu"),
    ("gpu-on-default-applehv", MAC5, [make_machine("gpu"), mapping(["libkrun"]), workload("gpu")],
     "applehv exposes no GPU; use provider: libkrun"),
    ("gpu-on-libkrun-ok", MAC5,
     [make_machine("gpu", provider="libkrun"), mapping(["libkrun"]), workload("gpu")], None),
    ("native-mapping-on-machine", LINUX,
     [make_machine("vm", provider="qemu"), mapping(["native"], ("nvidia.com/gpu=all",)),
      workload("vm")],
     "remove `machine:` from the workload to run it on the host's own Podman"),
    ("libkrun-mapping-native", None, [mapping(["libkrun"]), workload(None)],
     "the workload runs on the host's own Podman (no machine); run it on a Machine with "
     "provider: libkrun"),
    ("native-ok", None, [mapping(["native"], ("nvidia.com/gpu=all",)), workload(None)], None),
    ("unrestricted-mapping", MAC5, [make_machine("gpu", provider="applehv"), mapping(None),
                                    workload("gpu")], None),
    ("podman-4", OLD, [make_machine("gpu")],
     "Podman 4.x machines are not supported; install Podman 5 or newer"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("client", "items", "expected"), [pytest.param(*c[1:], id=c[0]) for c in CASES]
)
def test_preflight(
    client: ClientInfo | None, items: list[Machine | DeviceMapping | Workload], expected: str | None
) -> None:
    """Known limits are reported with their fix; stacks within the limits pass."""
    problems = preflight(make_desired(*items), client)
    if expected is None:
        assert problems == []
    else:
        assert len(problems) == 1 and expected in problems[0], problems


def test_every_problem_is_reported_at_once() -> None:
    """All problems come back together, not just the first."""
    d = make_desired(
        make_machine("gpu", provider="libkrun", memory_mib=64 * 1024), make_machine("b")
    )
    assert len(preflight(d, LINUX)) == 2
