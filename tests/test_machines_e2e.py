"""Machines end to end: `podform` with `--podman` pointing at the fake, workloads on real Podman.

The fake podman's machines report the real test socket as their API socket, so a workload
placed on machine `gpu` really runs. The fake is installed as a real binary would be: a
`podman` in its own folder beside its configuration file (fake-podman.json), so podform's
environment handling cannot hide its settings. What podform asked of `podman machine` is read
from the fake's call log; containers are checked with the podman CLI. Podman 5.8 and 6.x are
both driven through every scenario that depends on the version.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import PodformRunner
from podman_env import container_ids, container_state, podman_cli

FAKE = Path(__file__).parent / "fake_podman" / "podman"
VERSIONS = ["5.8.2", "6.0.1"]
CHANGING = {"init", "start", "stop", "set", "rm"}
READS_CLIENT = [["version", "--format", "json"], ["machine", "info", "--format", "json"]]


class FakePodman:
    """A fake podman installation: DIR/podman (a link to the fake) and DIR/fake-podman.json."""

    def __init__(self, directory: Path, version: str, socket_url: str, **settings: str) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.state = directory / "state.json"
        self.log = directory / "calls.log"
        config = {
            "state": str(self.state),
            "log": str(self.log),
            "version": version,
            "socket": socket_url.removeprefix("unix://"),
            **settings,
        }
        (directory / "fake-podman.json").write_text(json.dumps(config))
        self.path = directory / "podman"
        self.path.symlink_to(FAKE)

    def __call__(self, *argv: str, provider: str = "libkrun") -> None:
        """Run the fake by hand (a user typing `podman machine stop gpu`)."""
        env = {"PATH": os.environ["PATH"], "CONTAINERS_MACHINE_PROVIDER": provider}
        done = subprocess.run(
            [str(self.path), *argv], capture_output=True, text=True, check=False, env=env
        )
        assert done.returncode == 0, done.stderr

    def entries(self) -> list[dict[str, Any]]:
        if not self.log.exists():
            return []
        return [json.loads(line) for line in self.log.read_text().splitlines()]

    def calls(self) -> list[list[str]]:
        return [e["argv"] for e in self.entries()]

    def changing_calls(self) -> list[list[str]]:
        """Machine commands that change something: init, start, stop, set, rm."""
        return [c for c in self.calls() if c[:1] == ["machine"] and c[1] in CHANGING]

    def clear_log(self) -> None:
        self.log.unlink(missing_ok=True)

    def machines(self) -> dict[str, dict[str, Any]]:
        data: dict[str, dict[str, Any]] = json.loads(self.state.read_text())["machines"]
        return {m["name"]: m for m in data.values()}


def doc(kind: str, name: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": "podform/v1", "kind": kind, "metadata": {"name": name}, "spec": spec}


def machine(name: str = "gpu", **spec: Any) -> dict[str, Any]:
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
    spec: dict[str, Any] = {"image": "llama-img" if machine_name else base, "command": ["sleep", "3600"], "init": True,
                            "stopTimeout": "1s", "devices": ["apple-gpu"]}  # fmt: skip
    if machine_name:
        spec["machine"] = machine_name
    return doc("Workload", "llama", spec)


def image(base: str) -> dict[str, Any]:
    """An Image built on machine gpu (a fresh machine has no images: nothing to pull there)."""
    return doc("Image", "llama-img", {"machine": "gpu", "build": {"context": "./ctx",
               "args": {"BASE": base}}})  # fmt: skip


def gpu_stack(base: str, **machine_spec: Any) -> list[dict[str, Any]]:
    """Machine gpu (libkrun), the GPU mapping, an Image built there and the workload."""
    return [machine(**machine_spec), gpu_mapping(), image(base), llama(base)]


def write(directory: Path, stack: str, *docs: dict[str, Any]) -> str:
    """(Re)write DIRECTORY/stack.yaml (Stack + DOCS) beside a build context `ctx`.

    Images get the ref `localhost/<stack>-<name>:latest`: test runs in parallel share Podman's
    image store, and another run's clean-up must not remove this run's image under it.
    """
    for d in docs:
        if d["kind"] == "Image":
            d["spec"].setdefault("ref", f"localhost/{stack}-{d['metadata']['name']}:latest")
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "ctx").mkdir(exist_ok=True)
    (directory / "ctx" / "Containerfile").write_text("ARG BASE\nFROM $BASE\nLABEL role=llama\n")
    head = doc("Stack", stack, {})
    del head["spec"]
    text = yaml.safe_dump_all([head, *docs], sort_keys=False, explicit_start=True)
    (directory / "stack.yaml").write_text(text)
    return str(directory)


def flat(text: str) -> str:
    """Plan text with runs of blanks (column alignment) squeezed to one space."""
    return " ".join(text.split())


def ok(done: Any, code: int = 0) -> None:
    assert done.returncode == code, f"exit {done.returncode}\n{done.stdout}\n{done.stderr}"


@pytest.mark.parametrize("version", VERSIONS)
def test_gpu_stack_applies_converges_and_edits_in_place(
    run_podform: PodformRunner,
    podman_socket: str,
    busybox_image: str,
    stack_name: str,
    tmp_path: Path,
    version: str,
) -> None:
    """From nothing: init+start then the workload on the machine; re-apply changes nothing;
    a cpus/memory edit is stop -> set (only those flags) -> start, the workload restarted."""
    fake = FakePodman(tmp_path / "fake", version, podman_socket)
    podman = ("--podman", str(fake.path))
    d = write(tmp_path / "m", stack_name, *gpu_stack(busybox_image))

    plan = run_podform("plan", "-f", d, *podman)
    ok(plan, 2)
    text = flat(plan.stdout)
    assert "+ gpu create (init): machine does not exist: init, then start it" in text
    assert "? llama-img known after machine gpu starts" in text
    assert f"? {stack_name}-llama-1 known after machine gpu starts" in text
    assert f"? {stack_name} known after machine gpu starts" in text  # the stack network
    assert text.count("known after machine gpu starts") == 3, "each resource shown once"
    assert fake.changing_calls() == [], "plan must not change machines"

    ok(run_podform("apply", "-f", d, *podman))
    provider = ["--provider", "libkrun"] if version.startswith("6") else []
    prompt = ["--update-connection=false"] if version.startswith("6") else []
    assert fake.changing_calls() == [
        ["machine", "init", "--cpus", "4", "--memory", "8192", "--disk-size", "100",
         "--rootful=true", "--volume", "/tmp:/models:ro", *provider, "gpu"],
        ["machine", "start", "--no-info", *prompt, "gpu"],
    ]  # fmt: skip
    assert fake.machines()["gpu"]["running"] is True
    [cname] = container_ids(stack_name)
    assert cname == f"{stack_name}-llama-1"
    assert container_state(cname) == "running"

    fake.clear_log()
    again = run_podform("apply", "-f", d, *podman, "--detailed-exitcode", "-o", "json")
    ok(again)
    assert fake.changing_calls() == []
    assert {a["action"] for a in json.loads(again.stdout)["actions"]} == {"unchanged"}

    first_id = container_ids(stack_name)[cname]
    edited = write(tmp_path / "m", stack_name, *gpu_stack(busybox_image, cpus=6, memory="12GiB"))
    plan = run_podform("plan", "-f", edited, *podman)
    ok(plan, 2)
    assert (
        "~ gpu update (set): changes in place (stop, `podman machine set`, start); "
        "interrupts workloads llama" in flat(plan.stdout)
    )
    assert "cpus: 4 → 6" in plan.stdout and 'memory: "8192MiB" → "12288MiB"' in plan.stdout
    assert f"? {stack_name}-llama-1 known after machine gpu starts" in flat(plan.stdout)
    fake.clear_log()
    ok(run_podform("apply", "-f", edited, *podman))
    assert fake.changing_calls() == [
        ["machine", "stop", "gpu"],
        ["machine", "set", "--cpus", "6", "--memory", "12288", "gpu"],
        ["machine", "start", "--no-info", *prompt, "gpu"],
    ]
    gpu = fake.machines()["gpu"]
    assert (gpu["cpus"], gpu["memory_mib"], gpu["running"]) == (6, 12288, True)
    assert container_ids(stack_name)[cname] == first_id, "a machine edit must not replace"

    fake.clear_log()
    ok(run_podform("apply", "-f", edited, *podman))
    assert fake.changing_calls() == []


@pytest.mark.parametrize("version", VERSIONS)
def test_existing_machine_is_adopted_and_delete_leaves_it(
    run_podform: PodformRunner,
    podman_socket: str,
    busybox_image: str,
    stack_name: str,
    tmp_path: Path,
    version: str,
) -> None:
    """A machine that already exists is adopted, not re-created; delete --machines keeps it."""
    fake = FakePodman(tmp_path / "fake", version, podman_socket)
    podman = ("--podman", str(fake.path))
    d = write(tmp_path / "m", stack_name, *gpu_stack(busybox_image))
    ok(run_podform("apply", "-f", d, *podman))  # creates it: recorded as podform's
    adopted = FakePodman(tmp_path / "fake2", version, podman_socket)
    adopted.state.write_text(fake.state.read_text())  # the same machine, new inventory
    podman2 = ("--podman", str(adopted.path), "--state-dir", str(tmp_path / "other-state"))
    plan = run_podform("plan", "-f", d, *podman2)
    assert "adopted: not created by podform" in plan.stdout
    assert adopted.changing_calls() == []
    done = run_podform("delete", "-f", d, "--machines", *podman2)
    ok(done)
    assert "machine gpu was not created by podform: left alone" in done.stdout + done.stderr
    assert "gpu" in adopted.machines()
    assert container_ids(stack_name) == {}


@pytest.mark.parametrize("version", VERSIONS)
def test_delete_machines_removes_what_podform_created(
    run_podform: PodformRunner,
    podman_socket: str,
    busybox_image: str,
    stack_name: str,
    tmp_path: Path,
    version: str,
) -> None:
    """delete --machines removes the containers first, then the machine podform created."""
    fake = FakePodman(tmp_path / "fake", version, podman_socket)
    podman = ("--podman", str(fake.path))
    d = write(tmp_path / "m", stack_name, *gpu_stack(busybox_image))
    ok(run_podform("apply", "-f", d, *podman))
    fake.clear_log()
    ok(run_podform("delete", "-f", d, *podman))
    assert fake.changing_calls() == [] and "gpu" in fake.machines()
    ok(run_podform("apply", "-f", d, *podman))
    fake.clear_log()
    ok(run_podform("delete", "-f", d, "--machines", *podman))
    assert fake.changing_calls() == [["machine", "rm", "-f", "gpu"]]
    assert fake.machines() == {}
    assert container_ids(stack_name) == {}


def test_replace_is_refused_without_allow_recreate(
    run_podform: PodformRunner, podman_socket: str, busybox_image: str, stack_name: str,
    tmp_path: Path,
) -> None:  # fmt: skip
    """A volume change is a replace that destroys the machine's contents: refused by default."""
    fake = FakePodman(tmp_path / "fake", "6.0.1", podman_socket)
    podman = ("--podman", str(fake.path))
    d = write(tmp_path / "m", stack_name, *gpu_stack(busybox_image))
    ok(run_podform("apply", "-f", d, *podman))
    edited = write(
        tmp_path / "m", stack_name, *gpu_stack(busybox_image, volumes=["/srv:/models:ro"])
    )
    fake.clear_log()
    done = run_podform("apply", "-f", edited, *podman)
    ok(done, 1)
    assert "destroys every image, container and volume inside the machine" in done.stdout
    assert "--allow-recreate" in done.stdout
    assert fake.changing_calls() == []
    ok(run_podform("apply", "-f", edited, *podman, "--allow-recreate"))
    assert [c[:2] for c in fake.changing_calls()][:3] == [
        ["machine", "rm"], ["machine", "init"], ["machine", "start"]
    ]  # fmt: skip
    assert fake.machines()["gpu"]["volumes"] == ["/srv:/models:ro"]


PREFLIGHT_CASES = [
    # (id, version, osarch, docs, expected message)
    ("libkrun-on-linux", "5.8.2", "linux/amd64", gpu_stack,
     "provider libkrun needs an Apple-Silicon Mac"),
    ("libkrun-memory", "6.0.1", "darwin/arm64",
     lambda img: gpu_stack(img, memory="64GiB"),
     "set memory: 60GiB or less"),
    ("two-running", "5.8.2", "darwin/arm64",
     lambda img: [*gpu_stack(img), machine("web", provider="applehv", volumes=[])],
     "set state: stopped on all but one"),
    ("gpu-on-applehv", "5.8.2", "darwin/arm64",
     lambda img: gpu_stack(img, provider="applehv"),
     "applehv exposes no GPU; use provider: libkrun"),
    ("gpu-mapping-native", "6.0.1", "darwin/arm64",
     lambda img: [gpu_mapping(), llama(img, machine_name=None)],
     "run it on a Machine with provider: libkrun"),
    ("podman-4", "4.9.3", "darwin/arm64", gpu_stack,
     "Podman 4.x machines are not supported; install Podman 5 or newer"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("version", "osarch", "docs", "message"),
    [pytest.param(*case[1:], id=case[0]) for case in PREFLIGHT_CASES],
)
def test_preflight_fails_before_any_machine_command(
    run_podform: PodformRunner,
    podman_socket: str,
    busybox_image: str,
    stack_name: str,
    tmp_path: Path,
    version: str,
    osarch: str,
    docs: Any,
    message: str,
) -> None:
    """Each known limit stops apply before podman is asked about or to change any machine."""
    fake = FakePodman(tmp_path / "fake", version, podman_socket, osarch=osarch)
    d = write(tmp_path / "m", stack_name, *docs(busybox_image))
    done = run_podform("apply", "-f", d, "--podman", str(fake.path))
    ok(done, 1)
    assert message in done.stderr
    assert all(c in READS_CLIENT for c in fake.calls()), fake.calls()
    assert container_ids(stack_name) == {}


@pytest.mark.parametrize("version", VERSIONS)
def test_missing_krunkit_is_reported_and_the_machine_still_recorded(
    run_podform: PodformRunner,
    podman_socket: str,
    busybox_image: str,
    stack_name: str,
    tmp_path: Path,
    version: str,
) -> None:
    """libkrun start without krunkit fails, saying how to install it; the workload is skipped;
    the machine init created is in the inventory, so `delete --machines` removes it."""
    fake = FakePodman(tmp_path / "fake", version, podman_socket, no_krunkit="1")
    d = write(tmp_path / "m", stack_name, *gpu_stack(busybox_image))
    done = run_podform("apply", "-f", d, "--podman", str(fake.path))
    ok(done, 1)
    assert "brew tap slp/krun && brew install krunkit" in done.stdout + done.stderr
    assert container_ids(stack_name) == {}
    # init succeeded before the start failed: the machine is podform's, so --machines removes it.
    fake.clear_log()
    ok(run_podform("delete", "-f", d, "--machines", "--podman", str(fake.path)))
    assert fake.changing_calls() == [["machine", "rm", "-f", "gpu"]]
    assert fake.machines() == {}


def image_id(ref: str) -> str:
    return podman_cli("image", "inspect", "--format", "{{.Id}}", ref).strip()


@pytest.mark.parametrize("version", VERSIONS)
def test_machine_found_stopped_is_started_and_nothing_inside_is_redone(
    run_podform: PodformRunner,
    podman_socket: str,
    busybox_image: str,
    stack_name: str,
    tmp_path: Path,
    version: str,
) -> None:
    """After a reboot (machine stopped, its container exited) plan shows the insides as known
    after the start and exits 2; apply only runs `machine start`, keeps the built image and
    starts the same container; the next apply changes nothing."""
    fake = FakePodman(tmp_path / "fake", version, podman_socket)
    podman = ("--podman", str(fake.path))
    d = write(tmp_path / "m", stack_name, *gpu_stack(busybox_image))
    ok(run_podform("apply", "-f", d, *podman))
    cname = f"{stack_name}-llama-1"
    built, first_id = (
        image_id(f"localhost/{stack_name}-llama-img:latest"),
        container_ids(stack_name)[cname],
    )

    fake("machine", "stop", "gpu")  # what a reboot does: the VM and its containers stop
    podman_cli("stop", "-t", "1", cname)
    fake.clear_log()
    plan = run_podform("plan", "-f", d, *podman)
    ok(plan, 2)
    text = flat(plan.stdout)
    assert "~ gpu update (start): machine is stopped, should be running" in text
    assert "? llama-img known after machine gpu starts" in text
    assert f"? {cname} known after machine gpu starts" in text
    marked = run_podform("plan", "-f", d, *podman, "-o", "json")
    ok(marked, 2)
    by_name = {a["name"]: a for a in json.loads(marked.stdout)["actions"]}
    assert by_name["llama-img"]["action"] == "deferred"
    assert by_name[cname]["known_after"] == {"machine": "gpu"}
    assert by_name["gpu"]["known_after"] is None
    assert fake.changing_calls() == []

    done = run_podform("apply", "-f", d, *podman, "-o", "json")
    ok(done)
    prompt = ["--update-connection=false"] if version.startswith("6") else []
    assert fake.changing_calls() == [["machine", "start", "--no-info", *prompt, "gpu"]]
    applied = {a["name"]: a for a in json.loads(done.stdout)["actions"]}
    assert applied["llama-img"]["action"] == "unchanged", "a held image is not rebuilt"
    assert (applied[cname]["action"], applied[cname]["operation"]) == ("update", "start")
    assert image_id(f"localhost/{stack_name}-llama-img:latest") == built
    assert container_ids(stack_name)[cname] == first_id, "started, not recreated"
    assert container_state(cname) == "running"

    fake.clear_log()
    again = run_podform("apply", "-f", d, *podman, "--detailed-exitcode")
    ok(again)
    assert fake.changing_calls() == []


def test_machine_init_sees_proxies_and_expanded_home(
    run_podform: PodformRunner,
    podman_socket: str,
    busybox_image: str,
    stack_name: str,
    tmp_path: Path,
) -> None:
    """`machine init` runs with the caller's proxy and certificate variables but without the
    ones that redirect podman, and gets `~/models` and `./data` as absolute host paths."""
    fake = FakePodman(tmp_path / "fake", "5.8.2", podman_socket)
    home = tmp_path / "home"
    (home / "models").mkdir(parents=True)
    volumes = ["~/models:/models:ro", "./data:/data"]
    d = write(tmp_path / "m", stack_name, *gpu_stack(busybox_image, volumes=volumes))
    env = {"HOME": str(home), "HTTPS_PROXY": "http://proxy.corp:3128", "NO_PROXY": "localhost",
           "SSL_CERT_FILE": "/etc/corp-ca.pem", "LANG": "C.UTF-8",
           "DOCKER_HOST": "tcp://elsewhere:2375", "CONTAINER_CONNECTION": "other"}  # fmt: skip
    ok(run_podform("apply", "-f", d, "--podman", str(fake.path), env=env))
    [init] = [e for e in fake.entries() if e["argv"][:2] == ["machine", "init"]]
    assert init["env"] == {"HTTPS_PROXY": "http://proxy.corp:3128", "NO_PROXY": "localhost",
                           "SSL_CERT_FILE": "/etc/corp-ca.pem", "LANG": "C.UTF-8"}  # fmt: skip
    argv = init["argv"]
    given = [argv[i + 1] for i, a in enumerate(argv) if a == "--volume"]
    assert given == [f"{home}/models:/models:ro", f"{tmp_path / 'm' / 'data'}:/data"]
    assert fake.machines()["gpu"]["volumes"] == given
    # The inventory records the expanded paths: the next pass sees no volume change.
    fake.clear_log()
    ok(run_podform("apply", "-f", d, "--podman", str(fake.path), env=env))
    assert fake.changing_calls() == []
