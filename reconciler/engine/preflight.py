"""Known machine and GPU limits, checked before any change: preflight(...) -> problems.

Pure. Runs in the plan step after the podman client has been identified and before any
machine is listed or touched; every problem names its fix. The limits come from Podman and
krunkit themselves: libkrun exists only on Apple-Silicon macOS (pkg/machine/provider/
platform_darwin.go), krunkit refuses more than 61440 MiB ("requested RAM larger than upper
limit"), macOS runs one applehv/libkrun VM at a time (checkExclusiveActiveVM), and only
libkrun gives containers a GPU (krunkit's virtio-gpu with Venus; applehv has none).
"""

from __future__ import annotations

from reconciler.engine.machine_planner import effective_provider
from reconciler.engine.observed import ClientInfo
from reconciler.manifests.model import Desired

NATIVE = "native"  # a DeviceMapping provider meaning "no machine: the host's own Podman"
LIBKRUN_MAX_MEMORY_MIB = 61440
EXCLUSIVE_ON_MACOS = ("applehv", "libkrun")


def needs_client(desired: Desired) -> bool:
    """Machines need the podman client identified (version, OS/arch) before planning."""
    return bool(desired.machines)


def preflight(desired: Desired, client: ClientInfo | None) -> list[str]:
    """Every known limit the manifests break, each with its fix; [] when all is well.

    Machines are not listed yet: an undeclared provider counts as the client's default."""
    problems: list[str] = []
    if client is not None and client.version < (5, 0, 0):
        problems.append("Podman 4.x machines are not supported; install Podman 5 or newer")
    providers = {name: effective_provider(m, None, client) for name, m in desired.machines.items()}
    for name in sorted(desired.machines):
        m, provider = desired.machines[name], providers[name]
        if provider != "libkrun":
            continue
        if client is not None and (client.os, client.arch) != ("darwin", "arm64"):
            problems.append(
                f"machine {name}: provider libkrun needs an Apple-Silicon Mac (macOS on arm64), "
                f"but this podman runs on {client.os}/{client.arch}; use a provider this host "
                f"has ({_host_providers(client.os)}) or run podform on an Apple-Silicon Mac"
            )
        if m.memory_mib is not None and m.memory_mib > LIBKRUN_MAX_MEMORY_MIB:
            problems.append(
                f"machine {name}: memory {m.memory_mib} MiB is over libkrun's limit of "
                f"{LIBKRUN_MAX_MEMORY_MIB} MiB (krunkit refuses it); set memory: 60GiB or less "
                "(every GiB less leaves one more GiB of GPU memory)"
            )
    if client is not None and client.os == "darwin":
        running = sorted(
            n
            for n, m in desired.machines.items()
            if m.state == "running" and providers[n] in EXCLUSIVE_ON_MACOS
        )
        if len(running) > 1:
            problems.append(
                f"machines {', '.join(running)} are all declared state: running, but macOS runs "
                "only one applehv/libkrun machine at a time; set state: stopped on all but one"
            )
    problems += _mapping_problems(desired, providers)
    return problems


def _mapping_problems(desired: Desired, providers: dict[str, str]) -> list[str]:
    """A DeviceMapping restricted by `providers:` used where its devices do not exist."""
    problems: list[str] = []
    for wname in sorted(desired.workloads):
        w = desired.workloads[wname]
        have = providers.get(w.machine, "") if w.machine else NATIVE
        for mname in w.mappings:
            mapping = desired.mappings[mname]
            if mapping.providers is None or have in mapping.providers:
                continue
            where = (
                f"machine {w.machine} (provider {have or 'unknown'})"
                if w.machine
                else ("the host's own Podman (no machine)")
            )
            wants = ", ".join(mapping.providers)
            problems.append(
                f"Workload {wname}: DeviceMapping {mname} serves providers [{wants}], but the "
                f"workload runs on {where}; {_fix(mapping.providers, have, w.machine)}"
            )
    return problems


def _fix(wanted: tuple[str, ...], have: str, machine: str | None) -> str:
    if have == "applehv" and "libkrun" in wanted:
        return f"applehv exposes no GPU; use provider: libkrun on machine {machine}"
    machines = [p for p in wanted if p != NATIVE]
    if machine is None:
        return (
            f"run it on a Machine with provider: {machines[0]}" if machines else "check providers"
        )
    if not machines:
        return "remove `machine:` from the workload to run it on the host's own Podman"
    return f"use provider: {machines[0]} on machine {machine}"


def _host_providers(os_name: str) -> str:
    return {"darwin": "applehv", "windows": "wsl or hyperv"}.get(os_name, "qemu")
