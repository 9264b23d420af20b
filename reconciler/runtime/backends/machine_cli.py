"""`podman machine ...` through a Runner: the only code that runs the podman binary for machines.

Backend layer: runtime/machines.py calls the mutating methods and `list_machines()`.
Everything version-dependent lives here (Podman 5.x machines are per provider and need
CONTAINERS_MACHINE_PROVIDER on every call; Podman 6 sees every provider, takes `init
--provider` and refuses `--all-providers`), as does turning Podman's error texts into typed
errors. Podman reports every failure as `Error: <text>` with exit 125, so texts are all there is.

Argument lists only, never a shell. Machine names are checked against Podman's own name rule
before any call; such a name cannot start with "-", so no `--` separator is needed and argv
stays what a user would type.
"""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Iterable
from typing import Any, Literal

from reconciler.engine.observed import ClientInfo, ObservedMachine
from reconciler.errors import PermanentError
from reconciler.runtime.backends.machine_errors import translate_failure
from reconciler.runtime.backends.machine_runner import Runner, RunResult

MIB = 1024**2
GIB = 1024**3
PROVIDER_ENV = "CONTAINERS_MACHINE_PROVIDER"
# cmd/podman/machine/init.go (Podman 5.x): the name rule and its length limit.
NAME_RE = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]*$")
MAX_NAME_LEN = 30

# Seconds. init may download a machine image; stop waits up to 90 s for a graceful shutdown.
TIMEOUT_QUERY = 60.0
TIMEOUT_INIT = 1800.0
TIMEOUT_START = 600.0
TIMEOUT_STOP = 180.0
TIMEOUT_CHANGE = 300.0


def parse_version(text: str) -> tuple[int, int, int]:
    """'5.8.2' -> (5, 8, 2); pre-release suffixes ('6.0.0-rc1', '6.0.0-dev') are ignored."""
    match = re.match(r"^\s*v?(\d+)\.(\d+)(?:\.(\d+))?", text)
    if match is None:
        raise PermanentError(f"cannot read the Podman version from {text!r}")
    return int(match[1]), int(match[2]), int(match[3] or 0)


def check_name(name: str) -> None:
    """Refuse names Podman would refuse, before anything runs (and before any argv is built)."""
    if len(name) > MAX_NAME_LEN or not NAME_RE.match(name):
        raise PermanentError(
            f"invalid machine name {name!r}: at most {MAX_NAME_LEN} characters matching "
            "[a-zA-Z0-9][a-zA-Z0-9_.-]*"
        )


def _exact_units(raw: Any, unit: int, what: str, name: str) -> int:
    """`machine list` reports sizes as decimal strings of bytes; podform keeps whole MiB/GiB."""
    try:
        value = int(raw)
    except (TypeError, ValueError):
        raise PermanentError(f"machine {name}: unexpected {what} {raw!r} from podman") from None
    if value % unit:
        raise PermanentError(f"machine {name}: {what} of {value} bytes is not a whole unit")
    return value // unit


def _socket_path(info: dict[str, Any]) -> str:
    """ConnectionInfo.PodmanSocket: the `symlink` is the usable path when present (GetPath)."""
    sock = (info.get("ConnectionInfo") or {}).get("PodmanSocket") or {}
    return str(sock.get("symlink") or sock.get("Path") or "")


def _state(entry: dict[str, Any]) -> Literal["running", "starting", "stopped"]:
    # Running is queried live; Starting is a persisted flag that can be stale after a crash,
    # so it only counts when the machine is not running. The engine decides what stale means.
    if entry.get("Running"):
        return "running"
    if entry.get("Starting"):
        return "starting"
    return "stopped"


class MachineCli:
    """Podman's machine commands for one podman binary, with version quirks handled."""

    def __init__(self, podman: str, runner: Runner) -> None:
        self._podman = podman
        self._runner = runner
        self._info: ClientInfo | None = None

    # --- queries ---------------------------------------------------------------------------

    def client_info(self) -> ClientInfo:
        """Version and OS/arch of the installed client, from `podman version` (cached).

        `podman version` asks the API service too. On macOS with no machine running that part
        fails (exit 125); Podman 5.x then prints nothing on stdout (cmd/podman/root.go sets up
        the remote engine before `version` runs), but a Client section printed before a
        failure is still used. Only when it gives nothing usable is `podman machine info`
        asked, which the client answers alone.
        """
        if self._info is None:
            info = self._client_from_version() or self._client_from_machine_info()
            if info.version < (5, 0, 0):
                raise PermanentError(
                    "Podman 4.x machines are not supported; install Podman 5 or newer"
                )
            self._info = info
        return self._info

    def _client_from_version(self) -> ClientInfo | None:
        argv = ["version", "--format", "json"]
        result = self._runner.run([self._podman, *argv], None, TIMEOUT_QUERY)
        try:
            client = json.loads(result.stdout).get("Client") or {}
            version = parse_version(str(client["Version"]))
        except (json.JSONDecodeError, AttributeError, KeyError, TypeError, PermanentError):
            return None
        os_name, _, arch = str(client.get("OsArch", "")).partition("/")
        if not os_name or not arch:
            return None
        return ClientInfo(version, os_name, arch, platform_default_provider(os_name, version))

    def _client_from_machine_info(self) -> ClientInfo:
        out = self._run_json(["machine", "info", "--format", "json"], None, TIMEOUT_QUERY)
        if not isinstance(out, dict):
            raise PermanentError("unexpected output from `podman machine info`")
        version = parse_version(str(out.get("Version", {}).get("Version", "")))
        host = out.get("Host", {})
        os_arch = str(out.get("Version", {}).get("OsArch", "/")).partition("/")
        os_name = str(host.get("OS") or os_arch[0])
        return ClientInfo(
            version=version,
            os=os_name,
            arch=str(host.get("Arch") or os_arch[2]),
            default_provider=str(host.get("VMType") or platform_default_provider(os_name, version)),
        )

    def socket_path(self, name: str, provider: str | None) -> str:
        """The API socket of one machine from `inspect` (re-read: it may move at start).

        Empty while the machine is not running.
        """
        check_name(name)
        for item in self._inspect([name], provider):
            if item.get("Name") == name and item.get("State") == "running":
                return _socket_path(item)
        return ""

    def list_machines(self) -> list[ObservedMachine]:
        """Every machine of every provider, in podform's units, in Podman's list order."""
        info = self.client_info()
        if info.sees_all_providers:
            entries = self._list(["machine", "list", "--format", "json"], None)
        elif info.has_all_providers_flag:
            entries = self._list(["machine", "list", "--all-providers", "--format", "json"], None)
        else:  # 5.0-5.2: no --all-providers, ask each provider of this OS in turn
            entries = []
            for provider in _os_providers(info):
                entries += self._list(["machine", "list", "--format", "json"], provider)
        by_provider: dict[str, list[str]] = {}
        for entry in entries:
            by_provider.setdefault(str(entry["VMType"]), []).append(str(entry["Name"]))
        inspected: dict[tuple[str, str], dict[str, Any]] = {}
        if info.sees_all_providers and entries:
            names = list(dict.fromkeys(str(e["Name"]) for e in entries))
            for item in self._inspect(names, None):
                inspected[(str(_find_provider(item, entries)), str(item["Name"]))] = item
        else:
            for provider, names in by_provider.items():
                for item in self._inspect(names, provider):
                    inspected[(provider, str(item["Name"]))] = item
        machines = []
        for entry in entries:
            name, provider = str(entry["Name"]), str(entry["VMType"])
            detail = inspected.get((provider, name))
            if detail is None:  # removed between list and inspect: it is gone now
                continue
            state = _state(entry)
            machines.append(
                ObservedMachine(
                    name=name,
                    provider=provider,
                    state=state,
                    cpus=int(entry["CPUs"]),
                    memory_mib=_exact_units(entry["Memory"], MIB, "Memory", name),
                    disk_gib=_exact_units(entry["DiskSize"], GIB, "DiskSize", name),
                    rootful=bool(detail.get("Rootful")),
                    # Podman reports no mounts (InspectInfo has no such field), so a machine's
                    # volumes are known only from what podform recorded when it created it.
                    volumes=(),
                    socket_path=_socket_path(detail) if state == "running" else "",
                )
            )
        return machines

    # --- changes ---------------------------------------------------------------------------

    def init(
        self,
        name: str,
        provider: str | None,
        cpus: int | None,
        memory_mib: int | None,
        disk_gib: int | None,
        rootful: bool | None,
        volumes: Iterable[str],
    ) -> None:
        """`podman machine init` with the given settings (memory MiB, disk GiB).

        A setting or provider that is None is left to Podman's defaults (containers.conf);
        no volumes means Podman's defaults (on macOS /Users, /private, /var/folders).
        """
        check_name(name)
        argv = ["machine", "init", *_setting_flags(cpus, memory_mib, disk_gib, rootful)]
        for volume in volumes:
            argv += ["--volume", volume]
        if provider and self.client_info().sees_all_providers:
            argv += ["--provider", provider]
        self._change([*argv, name], provider, TIMEOUT_INIT)

    def start(self, name: str, provider: str | None) -> None:
        """`podman machine start`; re-read the socket path afterwards, it may have moved."""
        check_name(name)
        argv = ["machine", "start", "--no-info", *self._no_connection_prompt(), name]
        self._change(argv, provider, TIMEOUT_START)

    def stop(self, name: str, provider: str | None) -> None:
        """`podman machine stop`; stopping a stopped machine succeeds."""
        check_name(name)
        self._change(["machine", "stop", name], provider, TIMEOUT_STOP)

    def set(
        self,
        name: str,
        provider: str | None,
        cpus: int | None = None,
        memory_mib: int | None = None,
        disk_gib: int | None = None,
        rootful: bool | None = None,
    ) -> None:
        """`podman machine set` with only the given settings; the machine must be stopped."""
        check_name(name)
        flags = _setting_flags(cpus, memory_mib, disk_gib, rootful)
        if not flags:
            return
        argv = ["machine", "set", *flags]
        self._change([*argv, name], provider, TIMEOUT_CHANGE)

    def rm(self, name: str, provider: str | None) -> None:
        """`podman machine rm -f`: stops it if running, never prompts. Missing is an error."""
        check_name(name)
        self._change(["machine", "rm", "-f", name], provider, TIMEOUT_CHANGE)

    # --- plumbing --------------------------------------------------------------------------

    def _no_connection_prompt(self) -> list[str]:
        # Podman 6 asks on a TTY whether the started machine becomes the default connection;
        # podform reaches machines by socket path and leaves the user's default alone.
        return ["--update-connection=false"] if self.client_info().sees_all_providers else []

    def _env(self, provider: str | None) -> dict[str, str] | None:
        # 5.x sees only the current provider's machines, so every call names it (as Podman
        # Desktop does). Podman 6 finds machines across providers by itself.
        if not provider or self.client_info().sees_all_providers:
            return None
        return {PROVIDER_ENV: provider}

    def _change(self, argv: list[str], provider: str | None, timeout: float) -> None:
        env = self._env(provider)
        result = self._runner.run([self._podman, *argv], env, timeout)
        if result.returncode != 0:
            raise translate_failure(self._display(argv, env), result.stderr)

    def _list(self, argv: list[str], provider: str | None) -> list[dict[str, Any]]:
        out = self._run_json(argv, self._env(provider), TIMEOUT_QUERY)
        if not isinstance(out, list):
            raise PermanentError(f"unexpected output from `{self._display(argv, None)}`")
        return out

    def _inspect(self, names: list[str], provider: str | None) -> list[dict[str, Any]]:
        argv = ["machine", "inspect", *names]
        env = self._env(provider)
        result = self._runner.run([self._podman, *argv], env, TIMEOUT_QUERY)
        # Unknown names still print the others and exit 125; a machine that vanished since
        # `list` is simply absent from the answer.
        vanished = result.returncode != 0 and "VM does not exist" in result.stderr
        if result.returncode != 0 and not vanished:
            raise translate_failure(self._display(argv, env), result.stderr)
        out = self._decode(result, argv)
        if not isinstance(out, list):
            raise PermanentError(f"unexpected output from `{self._display(argv, env)}`")
        return out

    def _run_json(self, argv: list[str], env: dict[str, str] | None, timeout: float) -> Any:
        result = self._runner.run([self._podman, *argv], env, timeout)
        if result.returncode != 0:
            raise translate_failure(self._display(argv, env), result.stderr)
        return self._decode(result, argv)

    def _decode(self, result: RunResult, argv: list[str]) -> Any:
        try:
            return json.loads(result.stdout)
        except json.JSONDecodeError as e:
            raise PermanentError(
                f"`{self._display(argv, None)}` printed something that is not JSON: {e}"
            ) from None

    def _display(self, argv: list[str], env: dict[str, str] | None) -> str:
        prefix = " ".join(f"{k}={v}" for k, v in (env or {}).items())
        return (prefix + " " if prefix else "") + shlex.join([self._podman, *argv])


def _setting_flags(
    cpus: int | None, memory_mib: int | None, disk_gib: int | None, rootful: bool | None
) -> list[str]:
    """init and set share these flags and units (MiB, GiB); None means "leave as is"."""
    flags: list[str] = []
    if cpus is not None:
        flags += ["--cpus", str(cpus)]
    if memory_mib is not None:
        flags += ["--memory", str(memory_mib)]
    if disk_gib is not None:
        flags += ["--disk-size", str(disk_gib)]
    if rootful is not None:
        flags.append(f"--rootful={str(rootful).lower()}")
    return flags


def platform_default_provider(os_name: str, version: tuple[int, int, int]) -> str:
    """The provider `init` uses when neither containers.conf nor the environment names one
    (pkg/machine/provider/platform_*.go: applehv on macOS in 5.x, libkrun from 6.0)."""
    if os_name == "darwin":
        return "libkrun" if version >= (6, 0, 0) else "applehv"
    return {"windows": "wsl"}.get(os_name, "qemu")


def _os_providers(info: ClientInfo) -> list[str]:
    """Providers a 5.0-5.2 client supports on this OS (pkg/machine/provider/platform_*.go)."""
    if info.os == "darwin":
        return ["applehv", "libkrun"] if info.version >= (5, 1, 0) else ["applehv"]
    if info.os == "windows":
        return ["wsl", "hyperv"]
    return ["qemu"]


def _find_provider(item: dict[str, Any], entries: list[dict[str, Any]]) -> str:
    """Podman 6 inspects across providers; match an inspect entry back to its list entry."""
    config_dir = str((item.get("ConfigDir") or {}).get("Path", ""))
    candidates = [str(e["VMType"]) for e in entries if e["Name"] == item.get("Name")]
    for provider in candidates:
        if config_dir.rstrip("/").endswith("/" + provider):
            return provider
    return candidates[0] if candidates else ""
