"""Built images on real Podman: reuse by content hash, rebuild on context or arg change, ignore
files, and a failing build that skips only its own workload."""

from __future__ import annotations

import subprocess
from pathlib import Path

from helpers import (
    PodformRunner,
    app_stack,
    image_doc,
    image_ref,
    ok,
    workload,
    write_stack,
)
from podman_env import container_ids, container_state, image_id, podman_cli


def test_unchanged_image_is_reused_and_ignored_files_do_not_count(
    run_podform: PodformRunner, busybox_image: str, stack_name: str, tmp_path: Path
) -> None:
    """A second apply builds nothing; editing a .containerignore'd file changes nothing either."""
    d = app_stack(tmp_path / "m", stack_name, busybox_image)
    ok(run_podform("apply", "-f", str(d), "--detailed-exitcode"), 2)
    ref = image_ref(stack_name, "app")
    built, before = image_id(ref), container_ids(stack_name)
    assert podman_cli("exec", f"{stack_name}-app-1", "cat", "/app.txt") == "v1\n"
    ok(run_podform("apply", "-f", str(d), "--detailed-exitcode"), 0)
    (d / "ctx" / "notes.txt").write_text("edited, but ignored\n")
    ok(run_podform("plan", "-f", str(d)), 0)
    ok(run_podform("apply", "-f", str(d), "--detailed-exitcode"), 0)
    assert image_id(ref) == built
    assert container_ids(stack_name) == before


def test_context_edit_rebuilds_and_replaces_only_its_workload(
    run_podform: PodformRunner, busybox_image: str, stack_name: str, tmp_path: Path
) -> None:
    """Editing a context file rebuilds the image and replaces its workload; `side` keeps its ID."""
    d = app_stack(tmp_path / "m", stack_name, busybox_image)
    ok(run_podform("apply", "-f", str(d)))
    ref = image_ref(stack_name, "app")
    built, before = image_id(ref), container_ids(stack_name)
    (d / "ctx" / "app.txt").write_text("v2\n")
    ok(run_podform("plan", "-f", str(d)), 2)
    ok(run_podform("apply", "-f", str(d)))
    assert image_id(ref) != built
    after = container_ids(stack_name)
    assert after[f"{stack_name}-side-1"] == before[f"{stack_name}-side-1"]
    assert after[f"{stack_name}-app-1"] != before[f"{stack_name}-app-1"]
    assert podman_cli("exec", f"{stack_name}-app-1", "cat", "/app.txt") == "v2\n"


def test_build_arg_change_rebuilds(
    run_podform: PodformRunner, busybox_image: str, stack_name: str, tmp_path: Path
) -> None:
    """Changing a build arg rebuilds the image, and the new container sees the new value."""
    root = tmp_path / "m"
    d = app_stack(root, stack_name, busybox_image, flavor="plain")
    ok(run_podform("apply", "-f", str(d)))
    built = image_id(image_ref(stack_name, "app"))
    app_stack(root, stack_name, busybox_image, flavor="spicy")
    done = run_podform("apply", "-f", str(d))
    ok(done)
    assert image_id(image_ref(stack_name, "app")) != built
    assert podman_cli("exec", f"{stack_name}-app-1", "cat", "/flavor") == "spicy\n"
    # The previous build is removed once its container was replaced (gigabytes with models).
    assert f"previous build {built[:12]}, superseded by this rebuild" in done.stdout
    gone = subprocess.run(["podman", "image", "exists", built], check=False)
    assert gone.returncode == 1, f"the previous build {built} is still there"
    ok(run_podform("apply", "-f", str(d), "--detailed-exitcode"), 0)


def test_previous_build_still_used_by_a_foreign_container_is_kept(
    run_podform: PodformRunner, busybox_image: str, stack_name: str, tmp_path: Path
) -> None:
    """A container podform does not manage that runs the previous build keeps it alive, and
    the apply still succeeds."""
    root = tmp_path / "m"
    d = app_stack(root, stack_name, busybox_image, flavor="plain")
    ok(run_podform("apply", "-f", str(d)))
    built = image_id(image_ref(stack_name, "app"))
    podman_cli("create", "--name", f"{stack_name}x-by-hand", built, "true")
    try:
        app_stack(root, stack_name, busybox_image, flavor="spicy")
        done = run_podform("apply", "-f", str(d))
        ok(done)
        assert "kept: a container podform does not manage still uses it" in done.stdout
        assert image_id(built) == built
    finally:
        podman_cli("rm", "--force", f"{stack_name}x-by-hand")


def test_failing_build_skips_its_workload_only(
    run_podform: PodformRunner, busybox_image: str, stack_name: str, tmp_path: Path
) -> None:
    """A build that fails exits 1 and skips its workload; an independent workload is created;
    the failed build leaves no working container behind (the API's forcerm default is off)."""
    before = set(podman_cli("ps", "-a", "--external", "-q", "--no-trunc").split())
    root = tmp_path / "m"
    (root / "broken").mkdir(parents=True)
    (root / "broken" / "Containerfile").write_text(f"FROM {busybox_image}\nRUN false\n")
    d = write_stack(
        root,
        stack_name,
        image_doc("broken", stack_name, "./broken"),
        workload("uses-broken", "broken"),
        workload("side", busybox_image),
    )
    done = run_podform("apply", "-f", str(d))
    ok(done, 1)
    assert "Traceback" not in done.stdout + done.stderr
    assert "uses-broken" in done.stdout
    assert set(container_ids(stack_name)) == {f"{stack_name}-side-1"}
    assert container_state(f"{stack_name}-side-1") == "running"
    refs = podman_cli("images", "--format", "{{.Repository}}:{{.Tag}}").split()
    assert image_ref(stack_name, "broken") not in refs
    after = set(podman_cli("ps", "-a", "--external", "-q", "--no-trunc").split())
    left = after - before - set(container_ids(stack_name).values())
    assert not left, podman_cli("ps", "-a", "--external", "--filter", f"id={next(iter(left))}")
