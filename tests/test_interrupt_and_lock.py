"""SIGINT mid-apply and the per-stack lock, through the real entry point on real Podman."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers import doc, workload, write_stack
from podman_env import container_ids


def slow_stack(tmp_path: Path, stack: str, base: str, seconds: int = 4) -> Path:
    """An Image whose build sleeps, and a workload that needs it."""
    ctx = tmp_path / "m" / "slow"
    ctx.mkdir(parents=True)
    (ctx / "Containerfile").write_text(f"FROM {base}\nRUN sleep {seconds}\n")
    image = doc("Image", "slow", {"ref": f"localhost/{stack}-slow:latest",
                                  "build": {"context": "./slow"}})  # fmt: skip
    return write_stack(tmp_path / "m", stack, image, workload("web", "slow"))


def start_apply(manifests: Path, socket: str, state: Path) -> subprocess.Popen[str]:
    env = {**os.environ, "CONTAINER_HOST": socket, "PODFORM_STATE_DIR": str(state)}
    return subprocess.Popen(
        [sys.executable, "-m", "reconciler", "apply", "-f", str(manifests)],
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_for_build(state: Path, proc: subprocess.Popen[str], stack: str) -> None:
    """The lock file names the holder once apply is past loading; give the build a moment."""
    deadline = time.monotonic() + 20
    lock = state / f"{stack}.lock"
    while time.monotonic() < deadline:
        if lock.exists() and lock.read_text().strip():
            time.sleep(1.0)
            return
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.05)
    raise AssertionError("apply never took the lock")


def test_sigint_finishes_running_action_saves_state_exits_130(
    tmp_path: Path,
    podman_socket: str,
    busybox_image: str,
    stack_name: str,
    state_dir: Path,
    run_podform: object,
) -> None:
    """First SIGINT: the running build finishes, nothing new starts, inventory saved, exit 130;
    the next apply converges."""
    manifests = slow_stack(tmp_path, stack_name, busybox_image)
    proc = start_apply(manifests, podman_socket, state_dir)
    wait_for_build(state_dir, proc, stack_name)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, (out, err)
    assert container_ids(stack_name) == {}  # the workload was not started after the interrupt
    inventory = json.loads((state_dir / f"{stack_name}.json").read_text())
    assert "slow" in inventory["images"]  # the finished build was recorded
    again = run_podform("apply", "-f", str(manifests))  # type: ignore[operator]
    assert again.returncode == 0, again.stderr
    assert "Image slow" not in again.stdout  # not rebuilt: the interrupted pass had finished it
    assert list(container_ids(stack_name)) == [f"{stack_name}-web-1"]


def test_second_sigint_exits_at_once(
    tmp_path: Path, podman_socket: str, busybox_image: str, stack_name: str, state_dir: Path
) -> None:
    """A second SIGINT does not wait for the running build."""
    manifests = slow_stack(tmp_path, stack_name, busybox_image, seconds=30)
    proc = start_apply(manifests, podman_socket, state_dir)
    wait_for_build(state_dir, proc, stack_name)
    proc.send_signal(signal.SIGINT)
    time.sleep(0.3)
    started = time.monotonic()
    proc.send_signal(signal.SIGINT)
    proc.communicate(timeout=20)
    assert proc.returncode == 130
    assert time.monotonic() - started < 5


def test_concurrent_apply_fails_naming_the_holder(
    tmp_path: Path,
    podman_socket: str,
    busybox_image: str,
    stack_name: str,
    state_dir: Path,
    run_podform: object,
) -> None:
    """While one apply runs, a second fails at once naming the holder's pid; with
    --lock-timeout it waits for the first to finish and succeeds."""
    manifests = slow_stack(tmp_path, stack_name, busybox_image, seconds=3)
    first = start_apply(manifests, podman_socket, state_dir)
    wait_for_build(state_dir, first, stack_name)
    second = run_podform("apply", "-f", str(manifests))  # type: ignore[operator]
    assert second.returncode == 1
    assert f"locked by pid {first.pid}" in second.stderr
    waited = run_podform("apply", "-f", str(manifests), "--lock-timeout", "60")  # type: ignore[operator]
    assert waited.returncode == 0, waited.stderr
    first.communicate(timeout=60)
    assert first.returncode == 0


def test_sigint_with_parallel_1_stops_the_queue_of_replacements(
    tmp_path: Path,
    podman_socket: str,
    busybox_image: str,
    stack_name: str,
    state_dir: Path,
    run_podform: object,
) -> None:
    """apply --parallel 1 of 12 replacements, SIGINT: the running one finishes, the queued ones
    are reported "not started" and never run, exit 130 within the running action's time."""

    def stack(version: str) -> Path:
        # PID 1 sleep ignores SIGTERM: each replacement waits the 3 s stop timeout, so the
        # queue takes over 36 s when it runs on after SIGINT.
        ws = [
            workload(f"w{n}", busybox_image, env={"V": version}, init=False, stopTimeout="3s")
            for n in range(12)
        ]
        return write_stack(tmp_path / "m", stack_name, *ws)

    first = run_podform("apply", "-f", str(stack("1")), "--parallel", "4")  # type: ignore[operator]
    assert first.returncode == 0, first.stderr
    before = container_ids(stack_name)
    env = {**os.environ, "CONTAINER_HOST": podman_socket, "PODFORM_STATE_DIR": str(state_dir)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "reconciler", "apply", "-f", str(stack("2")), "--parallel", "1"],
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    wait_for_build(state_dir, proc, stack_name)  # the lock is taken; a replacement is running
    proc.send_signal(signal.SIGINT)
    sent = time.monotonic()
    out, err = proc.communicate(timeout=60)
    elapsed = time.monotonic() - sent
    assert proc.returncode == 130, (out, err)
    assert elapsed < 15, f"exit took {elapsed:.1f}s after SIGINT"  # one replacement, loaded host
    after = container_ids(stack_name)
    replaced = [n for n in before if after.get(n) != before[n]]
    assert len(replaced) <= 2, replaced  # the running one (and at most one finishing its stop)
    assert "not started" in out + err


@pytest.mark.parametrize("command", ["plan", "apply"])
def test_sigint_while_podman_is_unreachable_exits_130_at_once(
    tmp_path: Path, busybox_image: str, command: str
) -> None:
    """Observation retries an unreachable socket for a few seconds; Ctrl-C during those
    retries is an interrupt (130) right away, not the connection error seconds later."""
    manifests = write_stack(tmp_path / "m", "qint", workload("web", busybox_image))
    env = {
        **os.environ,
        "CONTAINER_HOST": f"unix://{tmp_path}/nothing-listens.sock",
        "PODFORM_STATE_DIR": str(tmp_path / "state"),
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "reconciler", command, "-f", str(manifests)],
        env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    time.sleep(1.5)  # past loading, inside the retries (they last about 5 s)
    assert proc.poll() is None, proc.communicate()
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, err  # before: 1, once the retries gave up
    assert "cannot reach Podman" not in err


def test_apply_prints_its_plan_before_it_changes_anything(
    tmp_path: Path, podman_socket: str, busybox_image: str, stack_name: str, state_dir: Path
) -> None:
    """The plan is on stdout while the (slow) build still runs, as Terraform shows its plan
    before applying; the final report does not print it a second time."""
    manifests = slow_stack(tmp_path, stack_name, busybox_image, seconds=4)
    proc = start_apply(manifests, podman_socket, state_dir)
    assert proc.stdout is not None
    seen: list[str] = []
    for line in proc.stdout:
        seen.append(line)
        if line.startswith(f"Plan for stack '{stack_name}'"):
            break
    assert proc.poll() is None, "the plan came only after apply had finished"
    rest, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    assert "Apply complete" in rest
    assert "Plan for stack" not in rest  # printed once
    assert any("slow" in line and "create" in line for line in seen), seen
