"""One compose service as a podform Workload (and an Image when it has `build:`).

A walk over the service's keys: each key has a handler writing podform fields, or a hint saying
why it has no podform meaning (a warning naming service and key). Fields are written in the
order SPEC §1 lists them, so the output reads like a hand-written manifest.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from reconciler.importers import compose_values as cv
from reconciler.importers.compose_devices import norm_device, nvidia_request
from reconciler.importers.compose_env import ComposeError
from reconciler.importers.compose_storage import StorageFields, as_bool, scalar, str_list
from reconciler.importers.model import Doc

WORKLOAD_ORDER = (
    "machine", "image", "command", "args", "env", "secrets", "ports", "volumes", "devices",
    "resources", "restart", "healthcheck", "dependsOn", "replicas", "init", "stopTimeout",
    "network", "networks", "privileged", "capAdd", "capDrop", "user", "groupAdd", "userns",
    "securityOpt", "shmSize", "ipc", "ulimits", "pidsLimit", "readOnly", "tmpfs", "workdir",
    "hostname", "extraHosts", "dns", "envFile", "stopSignal", "logging", "state",
)  # fmt: skip

_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_LABEL_KEY = re.compile(
    r"([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?"
    r"[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?"
)  # schemas/common.json labelKey
_LABEL_VALUE = re.compile(r"(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?")  # labelValue
_SECURITY_PREFIXES = ("seccomp:", "apparmor:", "label:", "mask:", "unmask:", "proc-opts:")
_URL_CONTEXT = re.compile(r"^([a-z]+://|git@|github\.com/)")


class ServiceMapper(StorageFields):
    """Maps one service; warnings and policy needs go to the shared context."""

    def run(self) -> tuple[Doc, Doc | None]:
        handlers: dict[str, Callable[[Any], None]] = {
            "image": self._image, "build": self._build, "entrypoint": self._entrypoint,
            "command": self._command, "environment": self._environment,
            "env_file": self._env_file, "ports": self._ports, "volumes": self._volumes,
            "devices": self._devices, "deploy": self._deploy, "gpus": self._gpus,
            "runtime": self._runtime, "restart": self._restart,
            "healthcheck": self._healthcheck, "depends_on": self._depends_on,
            "network_mode": self._network_mode, "networks": self._networks,
            "security_opt": self._security_opt, "ipc": self._ipc, "ulimits": self._ulimits,
            "extra_hosts": self._extra_hosts, "logging": self._logging, "labels": self._labels,
            "secrets": self._secrets, "configs": self._configs, "tmpfs": self._tmpfs,
            "shm_size": lambda v: self._size("shmSize", "shm_size", v),
            "mem_limit": lambda v: self._memory("mem_limit", v),
            "cpus": lambda v: self._cpus("cpus", v),
            "stop_grace_period": lambda v: self._duration("stopTimeout", "stop_grace_period", v),
        }  # fmt: skip
        simple: dict[str, tuple[str, Callable[[Any], Any]]] = {
            "init": ("init", as_bool), "privileged": ("privileged", as_bool),
            "read_only": ("readOnly", as_bool), "user": ("user", str),
            "working_dir": ("workdir", str), "hostname": ("hostname", str),
            "stop_signal": ("stopSignal", str), "userns_mode": ("userns", str),
            "pids_limit": ("pidsLimit", int), "scale": ("replicas", int),
            "cap_add": ("capAdd", str_list), "cap_drop": ("capDrop", str_list),
            "group_add": ("groupAdd", str_list), "dns": ("dns", str_list),
        }  # fmt: skip
        for key, value in self.body.items():
            try:
                if key in handlers:
                    handlers[key](value)
                elif key in simple:
                    field, convert = simple[key]
                    self.spec[field] = convert(value)
                else:
                    self.drop(key)
            except (TypeError, AttributeError, ValueError, KeyError, IndexError) as exc:
                raise ComposeError(
                    f"services.{self.service}.{key}: cannot read {value!r} ({exc})"
                ) from exc
        if "image" not in self.spec:
            self.warn("image", "the service has neither image nor build; nothing to run")
            self.spec["image"] = f"{self.name}:latest"
        if self.spec.get("user") is not None:
            self.spec["user"] = str(self.spec["user"])
        if self._inline_devices or "devices" in self.spec:
            self.spec["devices"] = [*self.spec.get("devices", []), *self._inline_devices]
            self.devices.inline(self.name, self._inline_devices)
        spec = {k: self.spec[k] for k in WORKLOAD_ORDER if k in self.spec}
        return Doc("Workload", self.name, spec, labels=self.labels), self.image

    # --- image and process ---------------------------------------------------------------

    def _image(self, value: Any) -> None:
        if "build" in self.body:
            return  # the Image's ref; see _build
        self.spec["image"] = cv.image_ref(str(value))

    def _build(self, value: Any) -> None:
        build = dict(value or {})
        context = str(build.pop("context", "."))
        if _URL_CONTEXT.match(context):
            self.drop("build.context", "podform builds from a local folder; clone it first")
            if "image" in self.body:
                self.spec["image"] = cv.image_ref(str(self.body["image"]))
            return
        spec: dict[str, Any] = {
            "context": self.ctx.host_path(context, "build.context", self.service, allow=False)
        }
        if "dockerfile" in build:
            spec["containerfile"] = str(build.pop("dockerfile"))
        args = self._string_map("build.args", build.pop("args", None) or {})
        if args:
            spec["args"] = args
        if "target" in build:
            spec["target"] = str(build.pop("target"))
        for key in build:
            self.drop(f"build.{key}", "podform builds with context, containerfile, args, target")
        image: dict[str, Any] = {}
        if "image" in self.body:
            image["ref"] = cv.image_ref(str(self.body["image"]))
        image["build"] = spec
        self.image = Doc("Image", self.name, image)
        self.spec["image"] = self.name

    def _entrypoint(self, value: Any) -> None:
        self.spec["command"] = str_list(value)

    def _command(self, value: Any) -> None:
        self.spec["args"] = str_list(value)

    def _environment(self, value: Any) -> None:
        self.spec["env"] = {**self.spec.get("env", {}), **self._string_map("environment", value)}

    def _string_map(self, key: str, value: dict[str, Any]) -> dict[str, str]:
        out: dict[str, str] = {}
        for name, val in value.items():
            if not _ENV_NAME.fullmatch(str(name)):
                self.drop(f"{key}.{name}", "not a variable name podform accepts")
                continue
            if val is None:
                val = self.ctx.project.environ.get(str(name))
                if val is None:
                    self.drop(f"{key}.{name}", "taken from the environment, which has no value")
                    continue
            out[str(name)] = scalar(val)
        return out

    # --- ports, volumes, devices -------------------------------------------------------------

    def _ports(self, value: Any) -> None:
        out: list[str] = []
        for i, entry in enumerate(value if isinstance(value, list) else [value]):
            if isinstance(entry, dict):
                for key in sorted(set(entry) - {"target", "published", "host_ip", "protocol"}):
                    if key != "mode":  # host/ingress: swarm routing, one host here
                        self.drop(f"ports[{i}].{key}")
            try:
                out.extend(cv.ports(entry))
            except ValueError as exc:
                self.drop(f"ports[{i}]", str(exc))
        self.spec["ports"] = list(dict.fromkeys(out))

    def _devices(self, value: Any) -> None:
        for entry in value:
            if isinstance(entry, dict):
                text = str(entry.get("source", ""))
                if entry.get("target"):
                    text += f":{entry['target']}"
                if entry.get("permissions"):
                    text += f":{entry['permissions']}"
            else:
                text = str(entry)
            self._inline_devices.append(norm_device(text))

    def _add_gpu(self, cdi: list[str]) -> None:
        name = self.devices.gpu(cdi)
        current = self.spec.setdefault("devices", [])
        if name not in current:
            current.append(name)

    def _gpus(self, value: Any) -> None:
        entries = [{"count": "all"}] if value == "all" else list(value or [])
        for i, entry in enumerate(entries):
            request = nvidia_request({"driver": "nvidia", "capabilities": ["gpu"], **entry})
            if request is None:
                self.drop(f"gpus[{i}]", "only NVIDIA GPU requests have a CDI form")
            else:
                self._add_gpu(request)

    def _runtime(self, value: Any) -> None:
        if value != "nvidia":
            self.drop("runtime", "podform uses Podman's configured OCI runtime")
            return
        visible = str((self.body.get("environment") or {}).get("NVIDIA_VISIBLE_DEVICES") or "all")
        ids = [i.strip() for i in visible.split(",") if i.strip()]
        all_gpus = visible in ("all", "") or "none" in ids or "void" in ids
        self._add_gpu(["nvidia.com/gpu=all"] if all_gpus else [f"nvidia.com/gpu={i}" for i in ids])

    def _deploy(self, value: Any) -> None:
        deploy = dict(value or {})
        if "replicas" in deploy:
            self.spec["replicas"] = int(deploy.pop("replicas"))
        resources = dict(deploy.pop("resources", None) or {})
        limits = dict(resources.pop("limits", None) or {})
        if "memory" in limits:
            self._memory("deploy.resources.limits.memory", limits.pop("memory"))
        if "cpus" in limits:
            self._cpus("deploy.resources.limits.cpus", limits.pop("cpus"))
        if "pids" in limits:
            self.spec["pidsLimit"] = int(limits.pop("pids"))
        for key in limits:
            self.drop(f"deploy.resources.limits.{key}")
        reservations = dict(resources.pop("reservations", None) or {})
        for i, entry in enumerate(reservations.pop("devices", None) or []):
            request = nvidia_request(entry)
            if request is None:
                self.drop(
                    f"deploy.resources.reservations.devices[{i}]",
                    "only driver nvidia (capability gpu) or cdi has a CDI form; "
                    "list other GPUs under devices",
                )
            else:
                self._add_gpu(request)
        for key in reservations:
            self.drop(f"deploy.resources.reservations.{key}", "podform sets limits only")
        for key in resources:
            self.drop(f"deploy.resources.{key}")
        policy = deploy.pop("restart_policy", None)
        if isinstance(policy, dict) and "restart" in self.body:
            self.drop("deploy.restart_policy", "the service's restart: is used")
        elif isinstance(policy, dict):
            condition = {"none": "no", "on-failure": "on-failure", "any": "always"}
            self.spec["restart"] = condition.get(str(policy.get("condition", "any")), "always")
            for key in sorted(set(policy) - {"condition"}):
                self.drop(f"deploy.restart_policy.{key}")
        if deploy.get("mode", "replicated") == "replicated":
            deploy.pop("mode", None)
        for key in deploy:
            self.drop(f"deploy.{key}", "podform runs on one host; there is no swarm placement")

    # --- lifecycle -----------------------------------------------------------------------

    def _restart(self, value: Any) -> None:
        text = "no" if value is False else str(value)
        if text.startswith("on-failure:"):
            self.warn(
                "restart",
                f"{text}: the retry count is dropped",
                "podform's on-failure has no retry limit",
            )
            text = "on-failure"
        if text not in ("no", "on-failure", "always", "unless-stopped"):
            self.drop("restart", f"{text!r} is not a restart policy")
            return
        self.spec["restart"] = text

    def _healthcheck(self, value: Any) -> None:
        check = dict(value or {})
        test = check.pop("test", None)
        if as_bool(check.pop("disable", False)) or test in (["NONE"], "NONE") or test is None:
            self.drop("healthcheck", "podform cannot switch off an image's own health check")
            return
        if isinstance(test, str):
            command = ["/bin/sh", "-c", test]
        elif test[0] == "CMD-SHELL":
            command = ["/bin/sh", "-c", " ".join(str(t) for t in test[1:])]
        else:
            command = [str(t) for t in (test[1:] if test[0] == "CMD" else test)]
        out: dict[str, Any] = {"command": command}
        for key, field in (("interval", "interval"), ("timeout", "timeout")):
            if key in check:
                out[field] = cv.duration(check.pop(key))
        if "retries" in check:
            out["retries"] = int(check.pop("retries"))
        if "start_period" in check:
            out["startPeriod"] = cv.duration(check.pop("start_period"))
        for key in check:
            self.drop(f"healthcheck.{key}")
        self.spec["healthcheck"] = out

    def _depends_on(self, value: dict[str, Any]) -> None:
        deps: list[Any] = []
        for dep, opts in value.items():
            if dep not in self.ctx.service_names:
                self.drop(f"depends_on.{dep}", "that service is not imported")
                continue
            name = self.ctx.service_names[dep]
            condition = str((opts or {}).get("condition", "service_started"))
            if condition == "service_healthy":
                deps.append({"name": name, "condition": "healthy"})
            else:
                if condition == "service_completed_successfully":
                    self.warn(
                        f"depends_on.{dep}.condition",
                        "service_completed_successfully imported as started",
                        "podform has no run-to-completion condition",
                    )
                deps.append(name)
            if not as_bool((opts or {}).get("required", True)):
                self.warn(f"depends_on.{dep}.required", "false: imported as a dependency")
            for key in sorted(set(opts or {}) - {"condition", "required"}):
                self.drop(f"depends_on.{dep}.{key}")
        self.spec["dependsOn"] = deps

    def _duration(self, field: str, key: str, value: Any) -> None:
        try:
            self.spec[field] = cv.duration(value)
        except ValueError as exc:
            self.drop(key, str(exc))

    # --- networking ----------------------------------------------------------------------

    def _network_mode(self, value: Any) -> None:
        mode = str(value)
        if mode.startswith("service:"):
            mode = "container:" + cv.podform_name(mode.split(":", 1)[1])
        elif mode.startswith("container:"):
            self.warn("network_mode", "container: now names a workload, not a container")
        self.spec["network"] = mode

    def _networks(self, value: Any) -> None:
        nets = {n: {} for n in value} if isinstance(value, list) else dict(value or {})
        if list(nets) == ["default"] and "default" not in self.ctx.project.networks:
            return  # the stack network, as compose's default network
        out: list[dict[str, Any]] = []
        for net, opts in nets.items():
            entry: dict[str, Any] = {"name": cv.podform_name(net)}
            for key, val in (opts or {}).items():
                if key == "aliases":
                    entry["aliases"] = str_list(val)
                else:
                    self.drop(f"networks.{net}.{key}", "podform does not pin addresses")
            if net not in self.ctx.project.networks:
                self.ctx.implicit_networks.add(entry["name"])
            out.append(entry)
        self.spec["networks"] = out

    def _extra_hosts(self, value: Any) -> None:
        if isinstance(value, dict):
            items = [f"{h}:{ip}" for h, ip in value.items()]
        else:
            items = [str(v).replace("=", ":", 1) if "=" in str(v) else str(v) for v in value]
        self.spec["extraHosts"] = items

    def _ipc(self, value: Any) -> None:
        mode = str(value)
        if mode.startswith("service:"):
            mode = "container:" + cv.podform_name(mode.split(":", 1)[1])
        if mode == "host":
            self.ctx.extra_privileges.append((self.service, "ipc", "host IPC namespace"))
        self.spec["ipc"] = mode

    # --- security and limits -------------------------------------------------------------

    def _security_opt(self, value: Any) -> None:
        out: list[str] = []
        for opt in str_list(value):
            if opt.startswith(_SECURITY_PREFIXES):
                opt = opt.replace(":", "=", 1)
            if opt in ("no-new-privileges:true", "no-new-privileges=true"):
                opt = "no-new-privileges"
            if opt in ("seccomp=unconfined", "apparmor=unconfined"):
                self.ctx.extra_privileges.append((self.service, "securityOpt", f"{opt} set"))
            out.append(opt)
        self.spec["securityOpt"] = out

    def _ulimits(self, value: dict[str, Any]) -> None:
        out: dict[str, Any] = {}
        for name, limit in value.items():
            if isinstance(limit, dict):
                soft = limit.get("soft", limit.get("hard"))
                hard = limit.get("hard", soft)
                out[name] = int(str(soft)) if soft == hard else f"{soft}:{hard}"
            else:
                out[name] = int(limit)
        self.spec["ulimits"] = out

    def _size(self, field: str, key: str, value: Any) -> None:
        try:
            size, rounded = cv.podform_size(value)
        except ValueError as exc:
            self.drop(key, str(exc))
            return
        if rounded:
            self.warn(key, f"{value} rounded up to {size}", "podform sizes are whole MiB")
        self.spec[field] = size

    def _memory(self, key: str, value: Any) -> None:
        self._size("_memory", key, value)
        if "_memory" in self.spec:
            self.spec.setdefault("resources", {})["memory"] = self.spec.pop("_memory")

    def _cpus(self, key: str, value: Any) -> None:
        cpus = float(value)
        self.spec.setdefault("resources", {})["cpus"] = int(cpus) if cpus.is_integer() else cpus

    def _logging(self, value: Any) -> None:
        out: dict[str, Any] = {}
        if value.get("driver"):
            out["driver"] = str(value["driver"])
        if value.get("options"):
            out["options"] = {str(k): scalar(v) for k, v in value["options"].items()}
        self.spec["logging"] = out

    # --- metadata, secrets, configs --------------------------------------------------------

    def _labels(self, value: dict[str, Any]) -> None:
        for key, val in value.items():
            text = "" if val is None else scalar(val)
            valid = _LABEL_KEY.fullmatch(key) and _LABEL_VALUE.fullmatch(text) and len(text) <= 63
            if valid and not key.lower().startswith("io.podform."):
                self.labels[key] = text
                continue
            self.drop(f"labels.{key}", "podform labels are names and short values only")
