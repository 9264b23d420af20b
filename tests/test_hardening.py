"""Issue 15 hardening: one-line errors for bad flags, URLs, ignore files and full disks; state
file names no stack can collide with; adoption of containers a killed pass left behind."""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from helpers import PodformRunner, ok, workload, write_stack
from podman_env import container_ids, podform_subprocess, podman_cli

from reconciler.engine.adoption import adopt
from reconciler.engine.observed import Observed, ObservedContainer, Recorded, RecordedContainer
from reconciler.labels import LABEL_KIND, LABEL_NAME, LABEL_REPLICA, LABEL_STACK
from reconciler.runtime.inventory import Inventory
from reconciler.runtime.orchestrator import load_desired

MANIFEST = (
    "apiVersion: podform/v1\nkind: Workload\nmetadata: {name: web}\nspec: {image: busybox:1}\n"
)


def one_line_error(done: subprocess.CompletedProcess[str], fragment: str) -> None:
    """Exit 1 with exactly one line on stderr holding `fragment`, and no traceback."""
    assert done.returncode == 1, (done.stdout, done.stderr)
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert fragment in lines[0] and "internal error" not in lines[0], lines[0]


@pytest.fixture
def manifest(tmp_path: Path) -> Path:
    path = tmp_path / "stack.yaml"
    path.write_text(MANIFEST)
    return path


# --- --url -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "fragment"),
    [
        ("garbage", "invalid Podman URL 'garbage': expected unix:///"),
        ("http://[::1", "invalid Podman URL 'http://[::1'"),
        ("tcp://host:99999", "Port out of range"),
        ("unix://", "no socket path"),
    ],
)
def test_garbage_url_is_a_one_line_error(
    manifest: Path, tmp_path: Path, url: str, fragment: str
) -> None:
    """An unusable --url is a one-line error naming the URL and what is expected."""
    done = podform_subprocess(
        "plan", "-f", str(manifest), "--url", url, "--state-dir", str(tmp_path / "s")
    )
    one_line_error(done, fragment)


def test_ssh_url_is_refused_at_once_with_how_to_forward(manifest: Path, tmp_path: Path) -> None:
    """ssh:// (never host-key checked by podman-py) is refused in well under the old 150 s hang,
    with the ssh -L socket forwarding to use instead."""
    started = time.monotonic()
    done = podform_subprocess(
        "apply", "-f", str(manifest), "--state-dir", str(tmp_path / "s"),
        env={"CONTAINER_HOST": "ssh://core@10.255.255.1:22/run/podman/podman.sock"},
        timeout=30,
    )  # fmt: skip
    assert time.monotonic() - started < 10
    one_line_error(done, "ssh:// URLs are not supported")
    assert "ssh -N -L" in done.stderr and "--url unix://" in done.stderr


# --- watch flags -----------------------------------------------------------------------------


@pytest.mark.parametrize("interval", ["0s", "0ms", "50ms", "99999999999h", "200h"])
def test_watch_interval_out_of_range_is_a_one_line_error(
    manifest: Path, tmp_path: Path, interval: str
) -> None:
    """--interval must be 100ms..168h: 0s busy-looped, 99999999999h crashed with an overflow."""
    done = podform_subprocess(
        "watch", "-f", str(manifest), "--interval", interval, "--state-dir", str(tmp_path / "s"),
        "--log-format", "json", timeout=20,
    )  # fmt: skip
    assert done.returncode == 1, done.stderr
    (line,) = done.stderr.strip().splitlines()
    assert json.loads(line)["error"] == f"--interval {interval} is out of range: use 100ms to 168h"


# --- .containerignore ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        (b"\xff\xfe junk\n", ".containerignore: not valid UTF-8 at byte 0"),
        (b"# ok\nlogs\n[\n", ".containerignore:3: invalid pattern '['"),
        (b"[z-a]\n", ".containerignore:1: invalid pattern '[z-a]'"),
    ],
)
def test_bad_containerignore_is_a_one_line_error(
    run_podform: PodformRunner, tmp_path: Path, content: bytes, fragment: str
) -> None:
    """A non-UTF-8 or unparsable .containerignore is an error naming file:line, not a crash."""
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Containerfile").write_text("FROM scratch\n")
    (ctx / ".containerignore").write_bytes(content)
    (tmp_path / "stack.yaml").write_text(
        "apiVersion: podform/v1\nkind: Image\nmetadata: {name: x}\nspec: {build: {context: ./ctx}}\n"
    )
    one_line_error(run_podform("plan", "-f", str(tmp_path / "stack.yaml")), fragment)


# --- full disk -------------------------------------------------------------------------------


@pytest.fixture
def full_disk(tmp_path: Path) -> Iterator[Path]:
    """A 64 KiB tmpfs filled to the last byte (needs root and mount)."""
    mount = tmp_path / "full"
    mount.mkdir()
    tried = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mount)],
        capture_output=True,
        check=False,
    )
    if tried.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {tried.stderr.decode().strip()}")
    try:
        (mount / "state").mkdir()
        fd = os.open(mount / "fill", os.O_WRONLY | os.O_CREAT)
        try:
            with pytest.raises(OSError):
                while True:
                    os.write(fd, b"\0" * 4096)
        finally:
            os.close(fd)
        yield mount
    finally:
        subprocess.run(["umount", str(mount)], check=False)


def test_full_disk_at_lock_time_is_one_line_and_leaves_no_temp_files(
    full_disk: Path, manifest: Path
) -> None:
    """A full state disk fails with one line naming the lock file; no .validated-* is left."""
    state = full_disk / "state"
    done = podform_subprocess(
        "apply", "-f", str(manifest), "--state-dir", str(state), "--url", "unix:///nonexistent.sock"
    )
    one_line_error(done, f"cannot write lock file {state}/default.lock: No space left on device")
    assert sorted(p.name for p in state.iterdir()) == ["default.lock"]


# --- state file names ------------------------------------------------------------------------


def test_a_stack_named_validated_keeps_its_inventory(tmp_path: Path, manifest: Path) -> None:
    """The validation cache has a name no stack can have: stack "validated" keeps its inventory."""
    state = tmp_path / "state"
    state.mkdir()
    inventory = Inventory(state, "validated")
    inventory.save(Recorded(containers={"validated-web-1": RecordedContainer("c1", "web", "", {})}))
    load_desired([str(manifest)], cache_dir=state)  # writes the validation cache
    recorded = inventory.load()
    assert recorded.valid, inventory.problem
    assert list(recorded.containers) == ["validated-web-1"]


def test_old_validation_cache_file_is_dropped_but_an_inventory_is_not(
    tmp_path: Path, manifest: Path
) -> None:
    """validated.json holding the old cache (a JSON list) is removed; an inventory there stays."""
    state = tmp_path / "state"
    state.mkdir()
    (state / "validated.json").write_text('["abc"]')
    load_desired([str(manifest)], cache_dir=state)
    assert not (state / "validated.json").exists()
    Inventory(state, "validated").save(Recorded())
    manifest.write_text(MANIFEST.replace("busybox:1", "busybox:2"))  # a new cache entry
    load_desired([str(manifest)], cache_dir=state)
    assert Inventory(state, "validated").load().valid


# --- adoption --------------------------------------------------------------------------------


def labelled(name: str, stack: str, workload: str, replica: str, kind: str = "Workload") -> Any:
    labels = {LABEL_STACK: stack, LABEL_KIND: kind, LABEL_NAME: workload, LABEL_REPLICA: replica}
    return ObservedContainer(f"id-{name}", name, "running", labels)


def test_adopt_records_only_podform_named_containers_of_a_valid_inventory() -> None:
    """Labels and podform's exact name pattern are adopted; other names, other stacks and a
    missing inventory are not."""
    found = [
        labelled("s-web-2", "s", "web", "2"),
        labelled("s-web-x", "s", "web", "1"),  # labels, but not the name podform gives
        labelled("t-web-1", "t", "web", "1"),  # another stack
        labelled("s-db-1", "s", "db", "1", kind="Image"),
    ]
    observed = Observed(containers={"": found})
    adopted = adopt(Recorded(), observed, "s")
    assert list(adopted.containers) == ["s-web-2"]
    assert adopted.containers["s-web-2"] == RecordedContainer("id-s-web-2", "web", "", {})
    assert adopt(Recorded(valid=False), observed, "s").containers == {}


def forget_containers(state_dir: Path, stack: str, *names: str) -> list[dict[str, Any]]:
    """Drop NAMES from the stack's inventory, as a pass killed before saving would have left
    it; return their records."""
    inventory = state_dir / f"{stack}.json"
    doc = json.loads(inventory.read_text())
    dropped = [doc["containers"].pop(name) for name in names]
    inventory.write_text(json.dumps(doc))
    return dropped


def test_scale_down_removes_replicas_a_killed_pass_never_recorded(
    run_podform: PodformRunner,
    busybox_image: str,
    stack_name: str,
    tmp_path: Path,
    state_dir: Path,
) -> None:
    """Replicas created by a pass killed before it saved the inventory are adopted and scaled
    down; no "podform did not create it" warning for containers it did create."""
    d = write_stack(tmp_path / "m", stack_name, workload("web", busybox_image, replicas=3))
    ok(run_podform("apply", "-f", str(d)))
    # as if the pass had been killed before recording them
    forget_containers(state_dir, stack_name, f"{stack_name}-web-2", f"{stack_name}-web-3")
    write_stack(d, stack_name, workload("web", busybox_image, replicas=1))
    done = run_podform("apply", "-f", str(d))
    ok(done)
    assert list(container_ids(stack_name)) == [f"{stack_name}-web-1"]
    assert "did not create" not in done.stdout + done.stderr


def test_a_no_op_pass_saves_what_it_adopted(
    run_podform: PodformRunner,
    busybox_image: str,
    stack_name: str,
    tmp_path: Path,
    state_dir: Path,
) -> None:
    """A container a killed pass left unrecorded is written to the inventory by the next
    pass even when that pass changes nothing (it used to be re-adopted every pass)."""
    d = write_stack(tmp_path / "m", stack_name, workload("web", busybox_image))
    ok(run_podform("apply", "-f", str(d)))
    (recorded,) = forget_containers(state_dir, stack_name, f"{stack_name}-web-1")
    ok(run_podform("apply", "-f", str(d), "--detailed-exitcode"), 0)  # nothing to change
    saved = json.loads((state_dir / f"{stack_name}.json").read_text())["containers"]
    assert saved[f"{stack_name}-web-1"]["id"] == recorded["id"]


def test_prune_works_again_on_the_pass_after_a_lost_inventory(
    run_podform: PodformRunner,
    busybox_image: str,
    stack_name: str,
    tmp_path: Path,
    state_dir: Path,
) -> None:
    """ "prune skipped this time" is true: the next pass adopts the leftovers and prunes them."""
    d = write_stack(
        tmp_path / "m", stack_name, workload("a", busybox_image), workload("b", busybox_image)
    )
    ok(run_podform("apply", "-f", str(d)))
    (state_dir / f"{stack_name}.json").unlink()
    write_stack(d, stack_name, workload("a", busybox_image))
    first = run_podform("apply", "-f", str(d), "--prune")
    ok(first)
    assert "prune skipped this time" in first.stdout + first.stderr
    assert len(container_ids(stack_name)) == 2
    ok(run_podform("apply", "-f", str(d), "--prune"))
    assert list(container_ids(stack_name)) == [f"{stack_name}-a-1"]


def test_labelled_container_with_a_foreign_name_is_left_alone_with_a_true_warning(
    run_podform: PodformRunner, busybox_image: str, stack_name: str, tmp_path: Path
) -> None:
    """A container someone labelled like this stack but named differently is not pruned, and the
    warning says why (not podform's name), not that podform never made a container it made."""
    d = write_stack(tmp_path / "m", stack_name, workload("a", busybox_image))
    ok(run_podform("apply", "-f", str(d)))
    odd = f"{stack_name}-handmade"
    labels = [f"{LABEL_STACK}={stack_name}", f"{LABEL_KIND}=Workload", f"{LABEL_NAME}=gone"]
    podman_cli(
        "create", "--name", odd, *(x for label in labels for x in ("--label", label)),
        busybox_image, "true",
    )  # fmt: skip
    done = run_podform("apply", "-f", str(d), "--prune")
    ok(done)
    assert odd in container_ids(stack_name)
    assert f"container {odd} carries this stack's labels but not the name" in done.stdout + (
        done.stderr
    )
