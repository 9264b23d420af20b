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
from pathlib import Path
from typing import Any

import pytest
from helpers import (
    VERSIONS,
    FakePodman,
    PodformRunner,
    gpu_machine,
    gpu_mapping,
    gpu_stack,
    llama,
    ok,
    write_gpu_stack,
)
from podman_env import container_ids, container_state, image_id, podman_cli

READS_CLIENT = [["version", "--format", "json"], ["machine", "info", "--format", "json"]]


def flat(text: str) -> str:
    """Plan text with runs of blanks (column alignment) squeezed to one space."""
    return " ".join(text.split())


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
    d = write_gpu_stack(tmp_path / "m", stack_name, *gpu_stack(busybox_image))

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
    edited = write_gpu_stack(
        tmp_path / "m", stack_name, *gpu_stack(busybox_image, cpus=6, memory="12GiB")
    )
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
    d = write_gpu_stack(tmp_path / "m", stack_name, *gpu_stack(busybox_image))
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
    d = write_gpu_stack(tmp_path / "m", stack_name, *gpu_stack(busybox_image))
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
    d = write_gpu_stack(tmp_path / "m", stack_name, *gpu_stack(busybox_image))
    ok(run_podform("apply", "-f", d, *podman))
    edited = write_gpu_stack(
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
     lambda img: [*gpu_stack(img), gpu_machine("web", provider="applehv", volumes=[])],
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
    d = write_gpu_stack(tmp_path / "m", stack_name, *docs(busybox_image))
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
    d = write_gpu_stack(tmp_path / "m", stack_name, *gpu_stack(busybox_image))
    done = run_podform("apply", "-f", d, "--podman", str(fake.path))
    ok(done, 1)
    assert "brew tap slp/krun && brew install krunkit" in done.stdout + done.stderr
    assert container_ids(stack_name) == {}
    # init succeeded before the start failed: the machine is podform's, so --machines removes it.
    fake.clear_log()
    ok(run_podform("delete", "-f", d, "--machines", "--podman", str(fake.path)))
    assert fake.changing_calls() == [["machine", "rm", "-f", "gpu"]]
    assert fake.machines() == {}


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
    d = write_gpu_stack(tmp_path / "m", stack_name, *gpu_stack(busybox_image))
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
    d = write_gpu_stack(tmp_path / "m", stack_name, *gpu_stack(busybox_image, volumes=volumes))
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
