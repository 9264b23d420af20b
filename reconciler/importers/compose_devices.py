"""GPU requests and `devices:` of compose services as podform DeviceMappings and inline devices.

NVIDIA requests (`deploy.resources.reservations.devices` with driver nvidia, `gpus:`, `runtime:
nvidia`; driver cdi names its CDI devices itself) become a DeviceMapping of CDI names, the way podman-compose passes them to Podman:
`count: all` -> `nvidia.com/gpu=all`, `count: N` -> `nvidia.com/gpu=0..N-1`, `device_ids` ->
those ids; it gets the standard probe `nvidia-smi -L` expecting "GPU". `devices:` entries stay
inline, except that a set shared by several services becomes one mapping (with a commented
probe suggestion: AMD and Intel have no probe every image ships).
"""

from __future__ import annotations

from typing import Any

from reconciler.importers import compose_values as cv
from reconciler.importers.model import Doc, ImportContext

NVIDIA_PROBE = {"command": ["nvidia-smi", "-L"], "expect": "GPU", "timeout": "30s"}
_AMD_SUGGESTION = (
    "# No probe every image ships exists for these devices. For a ROCm image, for example:",
    "#   probe: {command: [rocminfo], expect: gfx, timeout: 30s}",
)
_CDI_SUGGESTION = (
    "# No probe every image ships exists for these devices. Add one that prints the GPU, e.g.:",
    "#   probe: {command: [sh, -c, 'ls /dev/dri'], expect: renderD, timeout: 30s}",
)
_DRI_SUGGESTION = (
    "# No probe every image ships exists for these devices. For an image with Vulkan tools:",
    "#   probe: {command: [vulkaninfo, --summary], expect: deviceName, timeout: 30s}",
)


def norm_device(entry: str) -> str:
    """`/dev/x:/dev/x` is `/dev/x`: the same device, written twice."""
    parts = entry.split(":")
    if len(parts) == 2 and parts[0] == parts[1]:
        return parts[0]
    return entry


def nvidia_request(entry: dict[str, Any]) -> list[str] | None:
    """CDI names for one `reservations.devices`/`gpus` entry, or None when it is not NVIDIA."""
    driver = entry.get("driver")
    capabilities = entry.get("capabilities") or []
    if driver == "cdi" and entry.get("device_ids"):
        return [str(i) for i in entry["device_ids"]]  # Docker's CDI driver: names as they are
    if driver != "nvidia" or "gpu" not in capabilities:
        return None
    ids = entry.get("device_ids")
    if ids:
        return [f"nvidia.com/gpu={i}" for i in ids]
    count = entry.get("count", "all")
    if str(count) == "all" or count == -1:
        return ["nvidia.com/gpu=all"]
    return [f"nvidia.com/gpu={i}" for i in range(int(count))]


class DeviceResolver:
    """Collects every service's devices, then names the mappings they share."""

    def __init__(self, ctx: ImportContext) -> None:
        self._ctx = ctx
        self._gpu: dict[tuple[str, ...], Doc] = {}
        self._inline: dict[str, list[str]] = {}  # workload -> its inline device entries
        self._shared: list[Doc] = []

    def gpu(self, cdi_names: list[str]) -> str:
        """The name of the DeviceMapping holding exactly these CDI names (created once)."""
        key = tuple(dict.fromkeys(cdi_names))
        if key not in self._gpu:
            nvidia = all(n.startswith("nvidia.com/gpu=") for n in key)
            if key == ("nvidia.com/gpu=all",):
                base = "nvidia-gpu"
            elif nvidia:
                base = "nvidia-gpu-" + "-".join(n.split("=", 1)[1] for n in key)
            else:
                base = "cdi-" + "-".join(key)
            spec: dict[str, object] = {"devices": list(key)}
            if nvidia:
                spec["probe"] = NVIDIA_PROBE
            comment = () if nvidia else _CDI_SUGGESTION
            name = self._free(cv.podform_name(base))
            self._gpu[key] = Doc("DeviceMapping", name, spec, comment=comment)
        return self._gpu[key].name

    def inline(self, workload: str, entries: list[str]) -> None:
        self._inline[workload] = [norm_device(e) for e in entries]

    def finish(self, workloads: list[Doc]) -> None:
        """Turn a device set used by two or more workloads into one mapping they all name."""
        groups: dict[frozenset[str], list[str]] = {}
        for workload, entries in self._inline.items():
            if entries:
                groups.setdefault(frozenset(entries), []).append(workload)
        shared: dict[str, tuple[frozenset[str], str]] = {}
        for devset, users in sorted(groups.items(), key=lambda g: sorted(g[1])):
            if len(users) < 2:
                continue
            kfd = any(d.split(":")[0] == "/dev/kfd" for d in devset)
            dri = all(d.startswith("/dev/dri") for d in devset)
            name = self._free("amd-gpu" if kfd else "dri" if dri else "devices")
            ordered = [e for e in self._inline[users[0]]]
            comment = _AMD_SUGGESTION if kfd else _DRI_SUGGESTION if dri else ()
            self._shared.append(Doc("DeviceMapping", name, {"devices": ordered}, comment=comment))
            for user in users:
                shared[user] = (devset, name)
        for doc in workloads:
            if doc.name not in shared:
                continue
            devset, name = shared[doc.name]
            kept = [d for d in doc.spec["devices"] if norm_device(d) not in devset]
            doc.spec["devices"] = [*kept, name]

    def mappings(self) -> list[Doc]:
        return sorted([*self._gpu.values(), *self._shared], key=lambda d: d.name)

    def _free(self, base: str) -> str:
        taken = {d.name for d in (*self._gpu.values(), *self._shared)}
        name, n = base, 2
        while name in taken:
            name, n = f"{base}-{n}", n + 1
        return name
