"""Shared test helpers: manifest builders, Desired builders, the fake `podman`, exit-code checks.

The one place for what several test modules need (test modules never import each other):
- manifest documents as dicts and `write_stack`, for tests that drive the real entry point;
- `Desired` values built directly, for the pure planners (no disk, no YAML, no jsonschema);
- `FakePodman`, the one wrapper around tests/fake_podman/podman, used three ways: run directly
  (`run`), through podform's MachineCli (`cli`), or as `podform --podman` (`path`);
- `ok`, the exit-code assertion that shows the output when it fails.
Real Podman's environment (the private service, the busybox image) is in podman_env.py.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import pytest
import yaml

from reconciler.manifests.model import (
    Desired,
    DeviceMapping,
    Image,
    Machine,
    Probe,
    Stack,
    Workload,
)
from reconciler.manifests.model_extras import NetworkAttachment
from reconciler.runtime.backends.machine_cli import MachineCli
from reconciler.runtime.backends.machine_runner import SubprocessRunner

TESTS = Path(__file__).parent
FAKE = TESTS / "fake_podman" / "podman"
VERSIONS = ["5.8.2", "6.0.1"]  # the Podman versions the machine tests run the fake as
SLEEP = ["sleep", "3600"]


# --- running podform ---------------------------------------------------------------------------


class PodformRunner(Protocol):
    """Signature of the `run_podform` fixture's value."""

    def __call__(
        self,
        *args: str,
        env: Mapping[str, str] | None = None,
        input: str | None = None,
        timeout: float = 120.0,
    ) -> subprocess.CompletedProcess[str]: ...


def ok(done: Any, code: int = 0) -> None:
    """Assert an exit code, showing podform's output when it differs."""
    assert done.returncode == code, f"exit {done.returncode}\n{done.stdout}\n{done.stderr}"


# --- manifest documents ------------------------------------------------------------------------


def doc(kind: str, name: str, spec: dict[str, Any] | None = None, **meta: Any) -> dict[str, Any]:
    """One manifest document; no spec (None) leaves the key out, as a bare Stack has none."""
    out: dict[str, Any] = {
        "apiVersion": "podform/v1",
        "kind": kind,
        "metadata": {"name": name, **meta},
    }
    if spec is not None:
        out["spec"] = spec
    return out


def workload(name: str, image: str, **spec: Any) -> dict[str, Any]:
    """A Workload document that stops at once (init + 1 s) and sleeps otherwise."""
    return doc("Workload", name, {"image": image, "command": SLEEP, "init": True,
                                  "stopTimeout": "1s", **spec})  # fmt: skip


def write_stack(
    directory: Path, stack: str, *docs: dict[str, Any], stack_spec: dict[str, Any] | None = None
) -> Path:
    """(Re)write DIRECTORY/stack.yaml: the Stack document, then DOCS; return the directory."""
    directory.mkdir(parents=True, exist_ok=True)
    head = doc("Stack", stack, stack_spec or None)
    text = yaml.safe_dump_all([head, *docs], sort_keys=False, explicit_start=True)
    (directory / "stack.yaml").write_text(text)
    return directory


# The GPU stack of the machine tests: machine `gpu` (libkrun), its mapping, an Image built there.


def gpu_machine(name: str = "gpu", **spec: Any) -> dict[str, Any]:
    base = {"provider": "libkrun", "cpus": 4, "memory": "8GiB", "diskSize": "100GiB",
            "rootful": True, "volumes": ["/tmp:/models:ro"], "state": "running"}  # fmt: skip
    return doc("Machine", name, {**base, **spec})


def gpu_mapping(providers: list[str] | None = None) -> dict[str, Any]:
    return doc(
        "DeviceMapping",
        "apple-gpu",
        {
            "devices": ["/dev/zero:/dev/dri/renderD128"],
            "providers": providers or ["libkrun"],
            "probe": {"command": ["ls", "/dev/dri"], "expect": "renderD128", "timeout": "10s"},
        },
    )


def llama(base: str, machine_name: str | None = "gpu") -> dict[str, Any]:
    """The workload; on a machine it runs the Image built there, else the base image."""
    spec: dict[str, Any] = {"image": "llama-img" if machine_name else base, "command": SLEEP,
                            "init": True, "stopTimeout": "1s", "devices": ["apple-gpu"]}  # fmt: skip
    if machine_name:
        spec["machine"] = machine_name
    return doc("Workload", "llama", spec)


def llama_image(base: str) -> dict[str, Any]:
    """An Image built on machine gpu (a fresh machine has no images: nothing to pull there)."""
    return doc("Image", "llama-img", {"machine": "gpu", "build": {"context": "./ctx",
               "args": {"BASE": base}}})  # fmt: skip


def gpu_stack(base: str, **machine_spec: Any) -> list[dict[str, Any]]:
    """Machine gpu (libkrun), the GPU mapping, an Image built there and the workload."""
    return [gpu_machine(**machine_spec), gpu_mapping(), llama_image(base), llama(base)]


def write_gpu_stack(directory: Path, stack: str, *docs: dict[str, Any]) -> str:
    """(Re)write DIRECTORY/stack.yaml (Stack + DOCS) beside the build context `ctx`.

    Images get the ref `localhost/<stack>-<name>:latest`: test runs in parallel share Podman's
    image store, and another run's clean-up must not remove this run's image under it.
    """
    for d in docs:
        if d["kind"] == "Image":
            d["spec"].setdefault("ref", image_ref(stack, d["metadata"]["name"]))
    (directory / "ctx").mkdir(parents=True, exist_ok=True)
    (directory / "ctx" / "Containerfile").write_text("ARG BASE\nFROM $BASE\nLABEL role=llama\n")
    return str(write_stack(directory, stack, *docs))


# Built images on real Podman.

APP_CONTAINERFILE = """\
FROM {base}
ARG FLAVOR=plain
COPY app.txt /app.txt
RUN echo "$FLAVOR" > /flavor
"""


def image_ref(stack: str, name: str) -> str:
    """Tagged per stack, so parallel tests never share a ref."""
    return f"localhost/{stack}-{name}:latest"


def image_doc(name: str, stack: str, context: str, **build: Any) -> dict[str, Any]:
    """An Image built from CONTEXT."""
    return doc("Image", name, {"ref": image_ref(stack, name), "build": {"context": context,
                                                                        **build}})  # fmt: skip


def app_stack(root: Path, stack: str, base: str, flavor: str = "plain") -> Path:
    """Manifests with Image `app` (./ctx) used by workload `app`, plus an independent `side`."""
    ctx = root / "ctx"
    if not ctx.exists():
        ctx.mkdir(parents=True)
        (ctx / "Containerfile").write_text(APP_CONTAINERFILE.format(base=base))
        (ctx / "app.txt").write_text("v1\n")
        (ctx / ".containerignore").write_text("notes.txt\n")
        (ctx / "notes.txt").write_text("ignored\n")
    return write_stack(
        root,
        stack,
        image_doc("app", stack, "./ctx", args={"FLAVOR": flavor}),
        workload("app", "app"),
        workload("side", base),
    )


# --- Desired values, built directly (for the pure planners) -------------------------------------

IMAGE_REF = "localhost/base:latest"

_WORKLOAD_DEFAULTS: dict[str, Any] = {
    "machine": None,
    "image": None,
    "image_ref": IMAGE_REF,
    "command": ("sleep", "3600"),
    "args": None,
    "env": {},
    "secrets": (),
    "ports": (),
    "volumes": (),
    "devices": (),
    "mappings": (),
    "memory_mib": None,
    "cpus": None,
    "restart": "no",
    "healthcheck": None,
    "depends_on": (),
    "replicas": 1,
    "init": False,
    "stop_timeout_s": 10.0,
    "network": "default",
    "privileged": False,
    "cap_add": (),
    "state": "running",
}


def make_workload(name: str, stack: str = "s", **fields: Any) -> Workload:
    """A Workload as the model builds it from a minimal manifest (model.py's defaults): on the
    stack network, aliased by its name."""
    attached = (NetworkAttachment(stack, (name,), ""),)
    return Workload(name=name, **{**_WORKLOAD_DEFAULTS, "networks": attached, **fields})


def make_machine(name: str = "gpu", **fields: Any) -> Machine:
    """A Machine with nothing declared but its name (Podman's defaults), state running."""
    base: dict[str, Any] = {"provider": None, "cpus": None, "memory_mib": None,
                            "disk_gib": None, "rootful": None, "volumes": (), "state": "running"}  # fmt: skip
    return Machine(name=name, **{**base, **fields})


def make_mapping(
    name: str,
    devices: tuple[str, ...] = ("/dev/dri",),
    providers: tuple[str, ...] | None = None,
    env: dict[str, str] | None = None,
    probe: Probe | None = None,
) -> DeviceMapping:
    return DeviceMapping(name, devices, providers, env or {}, probe)


def make_desired(
    *items: Workload | Machine | DeviceMapping | Image, stack: str = "s", prune: bool = False
) -> Desired:
    """A Desired holding ITEMS, keyed by name, in stack STACK."""
    return Desired(
        Stack(stack, prune),
        {i.name: i for i in items if isinstance(i, Machine)},
        {i.name: i for i in items if isinstance(i, Image)},
        {i.name: i for i in items if isinstance(i, DeviceMapping)},
        {i.name: i for i in items if isinstance(i, Workload)},
    )


# Every kind and field in one stack: what the render tests map to each target.
EVERYTHING = """\
apiVersion: podform/v1
kind: Stack
metadata: {name: full}
spec: {policy: {allowPrivileged: true}}
---
apiVersion: podform/v1
kind: Machine
metadata: {name: gpu}
spec: {provider: libkrun}
---
apiVersion: podform/v1
kind: Image
metadata: {name: app}
spec:
  machine: gpu
  build: {context: ./ctx, args: {V: "1"}, target: runtime}
---
apiVersion: podform/v1
kind: Image
metadata: {name: base}
spec: {ref: "quay.io/x/base:1", pull: {policy: Always}}
---
apiVersion: podform/v1
kind: DeviceMapping
metadata: {name: nv}
spec:
  devices: [nvidia.com/gpu=all]
  kubernetes: {resources: {nvidia.com/gpu: 1}}
  probe: {command: [nvidia-smi, -L], expect: "GPU 0", timeout: 20s}
---
apiVersion: podform/v1
kind: DeviceMapping
metadata: {name: dri}
spec:
  devices: [/dev/dri]
  env: {DRI: "yes"}
---
apiVersion: podform/v1
kind: Workload
metadata: {name: db, labels: {tier: data}}
spec:
  image: base
  healthcheck: {command: [pg_isready], interval: 5s, timeout: 2s, retries: 4, startPeriod: 12s}
  volumes: ["dbdata:/var/lib/db:Z"]
  network: host
  replicas: 2
  state: stopped
  restart: on-failure
---
apiVersion: podform/v1
kind: Workload
metadata: {name: api}
spec:
  machine: gpu
  image: app
  command: [/bin/api, --serve]
  args: [--msg, "it's 100% $HOME \\"q\\""]
  env: {MODE: "two words", TOKEN_PATH: /run/x}
  secrets: [{name: hf-token, env: HF_TOKEN}, {name: cert, target: /etc/cert.pem}, {name: plain}]
  ports: ["8080", "127.0.0.1:9000:9000/udp", "[::1]:9443:443"]
  volumes: ["dbdata:/data:ro", "./models:/models:ro,z"]
  devices: [nv, dri, "/dev/zero:/dev/dri/renderD128:rw", vendor.com/fpga=1]
  resources: {memory: 2GiB, cpus: 1.5}
  restart: always
  dependsOn: [{name: db, condition: healthy}, llm]
  init: true
  stopTimeout: 20s
  privileged: true
  capAdd: [CAP_NET_ADMIN, SYS_TIME]
---
apiVersion: podform/v1
kind: Workload
metadata: {name: web}
spec:
  image: docker.io/library/nginx:1
  network: container:api
  replicas: 0
---
apiVersion: podform/v1
kind: Network
metadata: {name: back}
spec: {internal: true, dns: false, subnet: 10.89.7.0/24}
---
apiVersion: podform/v1
kind: Network
metadata: {name: front}
---
apiVersion: podform/v1
kind: Secret
metadata: {name: key}
spec: {file: ./key.txt}
---
apiVersion: podform/v1
kind: Secret
metadata: {name: tok}
spec: {env: TOK}
---
apiVersion: podform/v1
kind: DeviceMapping
metadata: {name: amd}
spec:
  devices: [/dev/kfd, {path: /dev/infiniband, optional: true}]
---
apiVersion: podform/v1
kind: Workload
metadata: {name: llm}
spec:
  image: docker.io/x/llm:1
  envFile: [./llm.env]
  env: {SHOWN: "1"}
  secrets: [{name: key}, {name: tok, env: TOK}]
  devices: [amd]
  networks: [back, {name: front, aliases: [model]}]
  user: "1000:video"
  groupAdd: [video, 44]
  userns: keep-id
  securityOpt: [label=disable, no-new-privileges, seccomp=unconfined, apparmor=unconfined]
  capDrop: [ALL]
  shmSize: 2GiB
  ipc: host
  ulimits: {memlock: -1, nofile: "1024:65536"}
  pidsLimit: 500
  readOnly: true
  tmpfs: ["/tmp:size=64m,mode=1777"]
  workdir: /srv
  hostname: llm
  extraHosts: ["db.local:10.0.0.5", "gw:host-gateway"]
  dns: [1.1.1.1]
  stopSignal: INT
  logging: {driver: journald, options: {tag: llm}}
"""


def everything_stack(tmp_path: Path) -> Desired:
    """EVERYTHING loaded from TMP_PATH, with the files it refers to (render tests)."""
    from reconciler.runtime.loading import load_desired

    (tmp_path / "ctx").mkdir()
    (tmp_path / "ctx" / "Containerfile").write_text("FROM scratch\n")
    (tmp_path / "models").mkdir()
    (tmp_path / "key.txt").write_text("not-rendered-key\n")
    (tmp_path / "llm.env").write_text("FROM_FILE=not-rendered-value\n")
    (tmp_path / "stack.yaml").write_text(EVERYTHING)
    return load_desired([str(tmp_path)])


# --- the fake `podman` (machines) --------------------------------------------------------------


@dataclass(frozen=True)
class Out:
    rc: int
    stdout: str
    stderr: str


class FakePodman:
    """One fake Podman installation: its state file, call log and settings.

    Installed as a real binary would be: `DIR/podman` (a link to the fake) beside
    `DIR/fake-podman.json`, so podform's environment handling cannot hide its settings;
    `env` carries the same settings as FAKE_PODMAN_* variables for direct runs. `socket_url`
    is the API socket its machines report (the real test socket in end-to-end tests); other
    settings are keyword arguments (osarch="linux/amd64", no_krunkit="1").
    """

    def __init__(
        self, directory: Path, version: str = "5.8.2", socket_url: str = "", **settings: str
    ) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.state = directory / "state.json"
        self.log = directory / "calls.log"
        config = {
            "state": str(self.state),
            "log": str(self.log),
            "version": version,
            **({"socket": socket_url.removeprefix("unix://")} if socket_url else {}),
            **settings,
        }
        (directory / "fake-podman.json").write_text(json.dumps(config))
        self.path = directory / "podman"
        self.path.symlink_to(FAKE)
        # What podform's runner is given: DOCKER_HOST is there to prove it never reaches podman.
        self.env = {
            "PATH": os.environ["PATH"],
            "HOME": str(directory),
            "TMPDIR": "/tmp",
            "DOCKER_HOST": "unix:///must/not/leak",
            **{f"FAKE_PODMAN_{k.upper()}": v for k, v in config.items()},
        }
        self.cli = self.machine_cli()

    def machine_cli(self) -> MachineCli:
        """A fresh MachineCli on this installation (nothing cached yet)."""
        return MachineCli(str(FAKE), SubprocessRunner(base_env=self.env))

    def run(
        self, *argv: str, version: str | None = None, provider: str | None = None, **env: str
    ) -> Out:
        """Run the fake directly; keyword args become FAKE_PODMAN_* settings for this call."""
        full = {k: v for k, v in self.env.items() if k != "DOCKER_HOST"}
        if version is not None:
            full["FAKE_PODMAN_VERSION"] = version
        full.update({f"FAKE_PODMAN_{k.upper()}": v for k, v in env.items()})
        if provider is not None:
            full["CONTAINERS_MACHINE_PROVIDER"] = provider
        done = subprocess.run(
            [str(FAKE), *argv],
            env=full,
            capture_output=True,
            text=True,
            stdin=subprocess.DEVNULL,
            check=False,
        )
        return Out(done.returncode, done.stdout, done.stderr)

    def __call__(self, *argv: str, provider: str = "libkrun") -> None:
        """Run the installed fake by hand (a user typing `podman machine stop gpu`)."""
        env = {"PATH": os.environ["PATH"], "CONTAINERS_MACHINE_PROVIDER": provider}
        done = subprocess.run(
            [str(self.path), *argv], capture_output=True, text=True, check=False, env=env
        )
        assert done.returncode == 0, done.stderr

    def entries(self) -> list[dict[str, Any]]:
        """The call log: one record per run ({"argv": [...], "provider_env": ..., "env": ...})."""
        if not self.log.exists():
            return []
        return [json.loads(line) for line in self.log.read_text().splitlines()]

    def calls(self) -> list[list[str]]:
        return [e["argv"] for e in self.entries()]

    def changing_calls(self) -> list[list[str]]:
        """Machine commands that change something: init, start, stop, set, rm."""
        changing = {"init", "start", "stop", "set", "rm"}
        return [c for c in self.calls() if c[:1] == ["machine"] and c[1] in changing]

    def clear_log(self) -> None:
        self.log.unlink(missing_ok=True)

    def machines(self) -> dict[str, dict[str, Any]]:
        data: dict[str, dict[str, Any]] = json.loads(self.state.read_text())["machines"]
        return {m["name"]: m for m in data.values()}

    def edit(self, key: str, **fields: object) -> None:
        """Change a machine record ("provider/name") behind podman's back."""
        data = json.loads(self.state.read_text())
        data["machines"][key].update(fields)
        self.state.write_text(json.dumps(data))


MakeFake = Callable[..., FakePodman]


def documents(stack: str, image: str, env: dict[str, str] | None = None, bad: bool = False) -> str:
    """A Stack and one quick-stopping Workload `web`; BAD misspells a key (schema error)."""
    spec: dict[str, Any] = {
        "image": image, "command": ["sleep", "3600"], "init": True, "stopTimeout": "1s",
    }  # fmt: skip
    if env:
        spec["env"] = env
    if bad:
        spec["imagee"] = spec.pop("image")
    docs = [
        {"apiVersion": "podform/v1", "kind": "Stack", "metadata": {"name": stack}},
        {"apiVersion": "podform/v1", "kind": "Workload", "metadata": {"name": "web"}, "spec": spec},
    ]
    return yaml.safe_dump_all(docs, sort_keys=False, explicit_start=True)


LogLine = dict[str, Any]


class BackgroundPodform:
    """`python -m reconciler COMMAND ...` (watch, sync) in the background, its JSON log lines
    collected from stderr."""

    def __init__(self, command: str, socket_url: str, state_dir: Path, *args: str) -> None:
        self.command = command
        env = {**os.environ, "CONTAINER_HOST": socket_url, "PODFORM_STATE_DIR": str(state_dir)}
        argv = [sys.executable, "-m", "reconciler", command, *args, "--log-format", "json"]
        self.proc = subprocess.Popen(
            argv, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        self.lines: list[LogLine] = []
        self.raw: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.raw.append(line)
            with contextlib.suppress(json.JSONDecodeError):  # a non-JSON line is kept in raw
                self.lines.append(json.loads(line))

    def events(self, name: str, **match: Any) -> list[LogLine]:
        return [
            x
            for x in list(self.lines)
            if x.get("event") == name and all(x.get(k) == v for k, v in match.items())
        ]

    def passes(self) -> int:
        return len(self.events("pass complete"))

    def wait_for(self, what: str, pred: Callable[[], bool], timeout: float) -> float:
        """Seconds until PRED held; fails after TIMEOUT or when the process exits."""
        t0 = time.monotonic()
        while time.monotonic() - t0 < timeout:
            if pred():
                return time.monotonic() - t0
            assert self.proc.poll() is None, (
                f"{self.command} exited {self.proc.returncode}:\n{self.log()}"
            )
            time.sleep(0.05)
        pytest.fail(f"timed out after {timeout}s waiting for {what}\n{self.log()}")

    def log(self) -> str:
        return "".join(self.raw[-40:])

    def stop(self) -> int:
        """SIGTERM, then the exit code (killed after 30 s)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._reader.join(timeout=5)
        if self.proc.stderr is not None:
            self.proc.stderr.close()
        return self.proc.returncode
