"""A container that keeps exiting is reported crash-looping on real Podman, not started forever."""

from __future__ import annotations

from pathlib import Path

from helpers import PodformRunner, ok, workload, write_stack
from podman_env import container_ids, container_state


def test_container_that_keeps_exiting_is_reported_not_restarted(
    run_podform: PodformRunner, busybox_image: str, stack_name: str, tmp_path: Path
) -> None:
    """Three starts in a row that each find it exited again: the next pass leaves it alone,
    says crash-looping with the exit code, and `status` is not ready; the id never changes."""
    d = write_stack(
        tmp_path / "m", stack_name, workload("flaky", busybox_image, command=["sh", "-c", "exit 3"])
    )
    ok(run_podform("apply", "-f", str(d)))
    first_id = container_ids(stack_name)[f"{stack_name}-flaky-1"]
    for _ in range(3):
        out = run_podform("apply", "-f", str(d))
        ok(out)
        assert "update (start)" in out.stdout
    looping = run_podform("apply", "-f", str(d))
    ok(looping)
    assert "crash-looping: started 3 times" in looping.stdout
    assert "exit code 3" in looping.stdout
    assert "update (start)" not in looping.stdout
    assert container_state(f"{stack_name}-flaky-1") == "exited"
    assert container_ids(stack_name)[f"{stack_name}-flaky-1"] == first_id
    status = run_podform("status", "-f", str(d))
    ok(status, 1)
    assert "crash-looping" in status.stdout
