"""`podform doctor`: one ok/warn/fail line per check, JSON too, exit 1 on any fail.

Runs the real entry point with the fake podman (machines whose API is the real test socket).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from helpers import FakePodman, PodformRunner, gpu_stack, ok, write_gpu_stack

LINE = ("ok  ", "warn", "fail")


def lines(text: str) -> dict[str, tuple[str, str]]:
    """check -> (status, detail), asserting every line has the documented shape."""
    out = {}
    for line in text.splitlines():
        assert line[:4] in LINE and line[4:6] == "  ", line
        check, _, detail = line[6:].partition(": ")
        out[check] = (line[:4].strip(), detail)
    return out


def test_host_checks_without_a_stack(
    run_podform: PodformRunner, podman_socket: str, tmp_path: Path
) -> None:
    """No -f on Linux: client, default API, machines and CDI checked; all ok, exit 0."""
    fake = FakePodman(tmp_path / "fake", "5.8.2", podman_socket, osarch="linux/amd64")
    done = run_podform("doctor", "--podman", str(fake.path))
    ok(done)
    checks = lines(done.stdout)
    assert checks["podman client"] == ("ok", "5.8.2 (linux/amd64)")
    assert checks["api (default)"][0] == "ok"
    assert checks["machines"] == ("ok", "none")
    assert checks["cdi specs"][0] == "ok"
    assert not any(c.startswith(("probe", "/dev/dri", "krunkit")) for c in checks)


def test_gpu_stack_on_a_mac_machine(
    run_podform: PodformRunner,
    podman_socket: str,
    busybox_image: str,
    stack_name: str,
    tmp_path: Path,
) -> None:
    """With -f after apply: machine API, provider/state and the probe pass; /dev/dri (absent on
    this host) and krunkit (not installed here) fail with their fixes, so exit 1; -o json too."""
    fake = FakePodman(tmp_path / "fake", "6.0.1", podman_socket)
    d = write_gpu_stack(tmp_path / "m", stack_name, *gpu_stack(busybox_image))
    ok(run_podform("apply", "-f", d, "--podman", str(fake.path)))
    done = run_podform("doctor", "-f", d, "--podman", str(fake.path))
    ok(done, 1)
    checks = lines(done.stdout)
    assert checks["podman client"] == ("ok", "6.0.1 (darwin/arm64)")
    assert checks["machine gpu"] == ("ok", "libkrun, running, 4 cpus, 8192 MiB, 100 GiB")
    assert checks["api (machine gpu)"][0] == "ok"
    assert checks[f"probe {stack_name}-llama-1 (apple-gpu)"] == ("ok", "`ls /dev/dri` passed")
    assert checks["krunkit"] == (
        "fail",
        "libkrun machines need krunkit, which is not installed: `brew tap slp/krun && brew "
        "install krunkit`, or install Podman with the .pkg installer from podman.io, which "
        "bundles it",
    )
    assert checks["/dev/dri in machine gpu"][0] == "fail"
    body = json.loads(
        run_podform("doctor", "-f", d, "--podman", str(fake.path), "-o", "json").stdout
    )
    assert body["ok"] is False
    assert {c["check"] for c in body["checks"]} == set(checks)


def test_missing_nvidia_cdi_spec_fails_with_the_fix(
    run_podform: PodformRunner, podman_socket: str, tmp_path: Path
) -> None:
    """A stack using nvidia.com/gpu=all on a host without its CDI spec: fail naming nvidia-ctk."""
    fake = FakePodman(tmp_path / "fake", "5.8.2", podman_socket, osarch="linux/amd64")
    example = Path(__file__).parent.parent / "manifests" / "examples" / "linux-nvidia"
    done = run_podform("doctor", "-f", str(example), "--podman", str(fake.path))
    if Path("/etc/cdi").is_dir() or Path("/var/run/cdi").is_dir():
        pytest.skip("this host has CDI specs of its own")
    ok(done, 1)
    status, detail = lines(done.stdout)["cdi nvidia.com/gpu=all"]
    assert (status, detail.split(";")[0]) == ("fail", "no CDI spec")
    assert "nvidia-ctk cdi generate" in detail
