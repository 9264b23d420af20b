"""The storage side of one compose service: volumes, tmpfs, env files, secrets and configs.

Base of ServiceMapper (compose_service.py): it also holds the per-service state and the warning
helpers every handler uses. Host paths are rewritten for the output's folder by the context.
"""

from __future__ import annotations

from typing import Any

from reconciler.importers import compose_values as cv
from reconciler.importers.compose_devices import DeviceResolver
from reconciler.importers.model import Doc, ImportContext

_NO_TERMINAL = "podform runs workloads detached; `podman exec -it` gives a terminal"
DROPPED_HINTS: dict[str, str] = {
    "container_name": "podform names containers <stack>-<workload>-<n>",
    "tty": _NO_TERMINAL,
    "stdin_open": _NO_TERMINAL,
    "pull_policy": "declare an Image with pull: {policy: ...} to choose when it is pulled",
    "profiles": "podform imports the services COMPOSE_PROFILES selects; it has no profiles",
    "expose": "workloads on a network reach each other's ports; publish with ports",
    "links": "workloads reach each other by name on the stack network",
    "external_links": "workloads reach each other by name on the stack network",
    "pid": "podform has no pid namespace field",
    "platform": "build or pull the image for this host's platform",
}


class StorageFields:
    """Per-service state, warning helpers, and the storage keys' handlers."""

    def __init__(
        self, ctx: ImportContext, service: str, body: dict[str, Any], devices: DeviceResolver
    ) -> None:
        self.ctx, self.service, self.body, self.devices = ctx, service, body, devices
        self.name = ctx.service_names[service]
        self.spec: dict[str, Any] = {}
        self.labels: dict[str, str] = {}
        self.image: Doc | None = None
        self._inline_devices: list[str] = []

    def warn(self, key: str, message: str, hint: str = "") -> None:
        self.ctx.warn(self.service, key, message, hint)

    def drop(self, key: str, hint: str = "") -> None:
        top = key.split(".")[0]
        default = "extension fields have no podform meaning" if top.startswith("x-") else ""
        self.warn(key, "dropped", hint or DROPPED_HINTS.get(top, default or "no podform field"))

    def _env_file(self, value: Any) -> None:
        files: list[str] = []
        for i, entry in enumerate(value):
            path = str(entry["path"] if isinstance(entry, dict) else entry)
            required = entry.get("required", True) if isinstance(entry, dict) else True
            if not (self.ctx.project.project_dir / path).is_file() and not required:
                self.drop(f"env_file[{i}]", f"optional file {path} does not exist")
                continue
            files.append(self.ctx.host_path(path, f"env_file[{i}]", self.service))
        if files:
            self.spec["envFile"] = files

    def _volumes(self, value: Any) -> None:
        for i, entry in enumerate(value):
            self._volume(f"volumes[{i}]", entry)

    def _volume(self, key: str, entry: Any) -> None:
        if isinstance(entry, str):
            parts = entry.split(":")
            if len(parts) == 1:
                long: dict[str, Any] = {"type": "volume", "target": parts[0]}
            else:
                source = parts[0]
                kind = "bind" if source.startswith(("/", ".", "~")) else "volume"
                long = {"type": kind, "source": source, "target": parts[1]}
                options = parts[2].split(",") if len(parts) > 2 else []
                long["_options"] = options
        else:
            long = dict(entry)
        kind = long.pop("type", "volume")
        target = str(long.pop("target", ""))
        options = [o for o in long.pop("_options", []) if o != "rw"]
        consistency = [o for o in options if o in ("cached", "delegated", "consistent")]
        if consistency or "consistency" in long:
            self.drop(f"{key}.consistency", "a Docker Desktop hint; Podman has no such option")
            long.pop("consistency", None)
            options = [o for o in options if o not in consistency]
        if as_bool(long.pop("read_only", False)):
            options.append("ro")
        if kind == "tmpfs":
            tmpfs = long.pop("tmpfs", None) or {}
            opts = [f"{k}={tmpfs[k]}" for k in ("size", "mode") if tmpfs.get(k) is not None]
            self.spec.setdefault("tmpfs", []).append(
                f"{target}:{','.join(opts)}" if opts else target
            )
        elif kind == "bind":
            bind = dict(long.pop("bind", None) or {})
            for opt in ("selinux", "propagation"):
                if bind.get(opt):
                    options.append(str(bind.pop(opt)))
            bind.pop("create_host_path", None)  # compose's default; Podman wants the path to exist
            for extra in sorted(bind):
                self.drop(f"{key}.bind.{extra}")
            source = self.ctx.host_path(str(long.pop("source")), key, self.service)
            self._mount(source, target, options)
        elif kind == "volume":
            volume = dict(long.pop("volume", None) or {})
            if as_bool(volume.pop("nocopy", False)):
                options.append("nocopy")
            for extra in sorted(volume):
                self.drop(f"{key}.volume.{extra}", "podform mounts the whole volume")
            raw = long.pop("source", None)
            if raw is None:
                slug = cv.podform_name(target) if target.strip("/") else "root"
                source = cv.podform_name(f"{self.name}-{slug}")
                self.warn(key, f"anonymous volume imported as the named volume {source!r}")
            else:
                source = self.ctx.volume_names.get(str(raw)) or cv.podform_name(str(raw))
            self._mount(source, target, options)
        else:
            self.drop(f"{key}.type", f"volume type {kind} has no podform form")
            return
        for extra in sorted(long):
            self.drop(f"{key}.{extra}")

    def _mount(self, source: str, target: str, options: list[str]) -> None:
        volume = f"{source}:{target}" + (f":{','.join(options)}" if options else "")
        self.spec.setdefault("volumes", []).append(volume)

    def _tmpfs(self, value: Any) -> None:
        self.spec.setdefault("tmpfs", []).extend(str_list(value))

    def _secrets(self, value: Any) -> None:
        out: list[dict[str, Any]] = []
        for i, entry in enumerate(value):
            long = {"source": entry} if isinstance(entry, str) else dict(entry)
            source = str(long.pop("source", ""))
            declared = self.ctx.project.secrets.get(source)
            if declared is None:
                self.drop(f"secrets[{i}]", f"secret {source!r} is not declared")
                continue
            if as_bool(declared.get("external", False)):
                name = str(declared.get("name", source))
            else:
                name = self.ctx.secret_names[source]
            # compose mounts at /run/secrets/<target or key>; podform's secret is <stack>-<name>
            target = str(long.pop("target", source))
            item = {
                "name": name,
                "target": target if target.startswith("/") else f"/run/secrets/{target}",
            }
            for key in sorted(long):
                self.drop(f"secrets[{i}].{key}", "podform mounts secrets with Podman's defaults")
            out.append(item)
        if out:
            self.spec["secrets"] = out

    def _configs(self, value: Any) -> None:
        for i, entry in enumerate(value):
            long = {"source": entry} if isinstance(entry, str) else dict(entry)
            source = str(long.pop("source", ""))
            declared = self.ctx.project.configs.get(source) or {}
            target = str(long.pop("target", f"/{source}"))
            if "file" not in declared:
                self.drop(f"configs[{i}]", "only file configs have a podform form (a bind mount)")
                continue
            path = self.ctx.host_path(str(declared["file"]), f"configs[{i}]", self.service)
            self._mount(path, target, ["ro"])
            for key in sorted(long):
                self.drop(f"configs[{i}].{key}")


def scalar(value: Any) -> str:
    """A compose scalar as the string compose passes on (`true`, not Python's `True`)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def as_bool(value: Any) -> bool:
    """A compose boolean; after interpolation it may be the string `false`, which is not True."""
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("true", "yes", "y", "on", "1"):
        return True
    if text in ("false", "no", "n", "off", "0", ""):
        return False
    raise ValueError(f"{value!r} is not a boolean")


def str_list(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    return [scalar(v) for v in value or []]
