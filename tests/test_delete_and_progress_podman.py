"""`podform delete` (volumes only when asked) and build progress in the logs, on real Podman."""

from __future__ import annotations

import json
from pathlib import Path

from helpers import PodformRunner, app_stack, image_ref, ok, workload, write_stack
from podman_env import container_ids, podman_cli


def volume_exists(name: str) -> bool:
    return name in podman_cli("volume", "ls", "--format", "{{.Name}}").split()


def test_delete_keeps_named_volumes_unless_asked(
    run_podform: PodformRunner, busybox_image: str, stack_name: str, tmp_path: Path
) -> None:
    """delete removes the declared containers and keeps the named volume; --volumes removes it."""
    volume = f"{stack_name}-data"
    d = write_stack(
        tmp_path / "m", stack_name, workload("db", busybox_image, volumes=[f"{volume}:/data"])
    )
    ok(run_podform("apply", "-f", str(d)))
    assert container_ids(stack_name) and volume_exists(volume)
    done = run_podform("delete", "-f", str(d))
    ok(done)
    assert "Delete complete" in done.stdout
    assert container_ids(stack_name) == {}
    assert volume_exists(volume)
    ok(run_podform("delete", "-f", str(d), "--volumes"))
    assert not volume_exists(volume)


def test_build_progress_is_logged_when_not_on_a_terminal(
    run_podform: PodformRunner, busybox_image: str, stack_name: str, tmp_path: Path
) -> None:
    """Off a TTY, each build output line arrives as a `progress` log event of its image."""
    d = app_stack(tmp_path / "m", stack_name, busybox_image)
    done = run_podform("apply", "-f", str(d), "--log-format", "json", "-vv")
    ok(done)
    events = [json.loads(line) for line in done.stderr.splitlines() if line.startswith("{")]
    lines = [e["line"] for e in events if e.get("event") == "progress"]
    assert all(e["resource"] == "Image/app" for e in events if e.get("event") == "progress")
    assert any("COPY app.txt /app.txt" in line for line in lines), lines
    assert podman_cli("image", "exists", image_ref(stack_name, "app")) == ""


def test_delete_volumes_keeps_a_volume_podform_did_not_create(
    run_podform: PodformRunner, busybox_image: str, stack_name: str, tmp_path: Path
) -> None:
    """delete --volumes removes only podform's volumes; a pre-existing one survives, named with why."""
    mine, theirs = f"{stack_name}-data", f"{stack_name}-users"
    podman_cli("volume", "create", theirs)
    try:
        podman_cli(
            "run", "--rm", "-v", f"{theirs}:/d", busybox_image, "sh", "-c", "echo keep >/d/f"
        )
        volumes = [f"{mine}:/data", f"{theirs}:/users"]
        d = write_stack(tmp_path / "m", stack_name, workload("db", busybox_image, volumes=volumes))
        ok(run_podform("apply", "-f", str(d)))
        done = run_podform("delete", "-f", str(d), "--volumes")
        ok(done)
        assert not volume_exists(mine)
        assert volume_exists(theirs)
        assert f"volume {theirs} kept: podform did not create it" in done.stdout
        out = podman_cli("run", "--rm", "-v", f"{theirs}:/d", busybox_image, "cat", "/d/f")
        assert out.strip() == "keep"
    finally:
        podman_cli("volume", "rm", "-f", theirs)
