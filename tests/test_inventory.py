"""The per-stack inventory file (atomic, private, never trusted when damaged) and its lock."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from reconciler.engine.observed import Recorded, RecordedContainer
from reconciler.errors import LockHeld, PodformError
from reconciler.runtime import inventory as inventory_module
from reconciler.runtime.inventory import Inventory, state_dir

STACK = "demo"


def sample(container_id: str = "c0ffee", env: dict[str, object] | None = None) -> Recorded:
    spec: dict[str, object] = {"image": "sha256:abc", "env": env or {"LEVEL": "info"}}
    return Recorded(
        containers={
            "demo-web-1": RecordedContainer(container_id, "web", "", spec, "ok"),
            "demo-llama-1": RecordedContainer("beef", "llama", "gpu", {"devices": ["/dev/dri"]}),
        },
        images={"web": {"id": "sha256:abc", "connection": ""}},
        volumes={":models": {"name": "models"}},
        machines={"gpu": {"provider": "libkrun", "cpus": 4}},
    )


@pytest.fixture
def umask_000() -> Iterator[None]:
    old = os.umask(0)
    try:
        yield
    finally:
        os.umask(old)


def leftovers(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.name.endswith(".tmp"))


def test_round_trip(tmp_path: Path) -> None:
    """What save writes, load returns unchanged and valid, in the documented JSON layout."""
    inv = Inventory(tmp_path, STACK)
    assert not inv.exists()
    inv.save(sample())
    assert inv.exists()
    assert inv.load() == sample()
    assert inv.problem == ""
    doc = json.loads((tmp_path / "demo.json").read_text())
    assert (doc["version"], doc["stack"]) == (1, STACK)
    assert set(doc) == {
        "version",
        "stack",
        "updated",
        "containers",
        "images",
        "volumes",
        "machines",
    }
    assert doc["containers"]["demo-web-1"] == {
        "id": "c0ffee",
        "workload": "web",
        "connection": "",
        "spec": {"env": {"LEVEL": "info"}, "image": "sha256:abc"},
        "probe": "ok",
        "starts": 0,
    }


def test_missing_file_is_invalid_but_not_an_error(tmp_path: Path) -> None:
    """No inventory yet means nothing is recorded: valid=False (prune skipped), exists() False."""
    inv = Inventory(tmp_path, STACK)
    assert inv.load() == Recorded(valid=False)
    assert not inv.exists()
    assert "no inventory" in inv.problem


def test_saving_an_invalid_recorded_writes_a_valid_one(tmp_path: Path) -> None:
    """A Recorded rebuilt after a damaged inventory is written, and read back, as valid."""
    inv = Inventory(tmp_path, STACK)
    inv.save(Recorded(valid=False, images={"web": {"id": "x"}}))
    assert inv.load() == Recorded(valid=True, images={"web": {"id": "x"}})


def test_private_modes_under_umask_000(tmp_path: Path, umask_000: None) -> None:
    """With umask 000 the state directory is still created 0700 and the file written 0600."""
    assert stat.S_IMODE(state_dir(str(tmp_path / "a" / "state")).stat().st_mode) == 0o700
    directory = tmp_path / "b" / "state"  # Inventory creates a missing directory itself
    inv = Inventory(directory, STACK)
    inv.save(sample())
    with inv.lock():
        pass
    assert stat.S_IMODE((directory / "demo.json").stat().st_mode) == 0o600
    assert stat.S_IMODE((directory / "demo.lock").stat().st_mode) == 0o600
    assert stat.S_IMODE(directory.stat().st_mode) == 0o700


@pytest.mark.parametrize(
    ("explicit", "env", "expected"),
    [
        ("flag", {"PODFORM_STATE_DIR": "envdir", "XDG_STATE_HOME": "xdg"}, "flag"),
        (None, {"PODFORM_STATE_DIR": "envdir", "XDG_STATE_HOME": "xdg"}, "envdir"),
        (None, {"XDG_STATE_HOME": "xdg"}, "xdg/podform"),
        (None, {}, "home/.local/state/podform"),
    ],
)
def test_state_dir_precedence(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    explicit: str | None,
    env: dict[str, str],
    expected: str,
) -> None:
    """--state-dir beats PODFORM_STATE_DIR beats XDG_STATE_HOME beats ~/.local/state."""
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    for name in ("PODFORM_STATE_DIR", "XDG_STATE_HOME"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, str(tmp_path / value))
    got = state_dir(str(tmp_path / explicit) if explicit else None)
    assert got == tmp_path / expected
    assert got.is_dir()


@pytest.mark.parametrize("stack", ["", "../escape", "a/b", ".hidden"])
def test_stack_name_must_stay_inside_the_directory(tmp_path: Path, stack: str) -> None:
    """A stack name that would put the inventory outside the state directory is refused."""
    with pytest.raises(PodformError, match="cannot name an inventory file"):
        Inventory(tmp_path, stack)


def test_symlink_at_state_path_is_refused(tmp_path: Path) -> None:
    """A symlink planted at the inventory path is neither read nor followed on save."""
    target = tmp_path / "victim"
    target.write_text("precious")
    (tmp_path / "demo.json").symlink_to(target)
    inv = Inventory(tmp_path, STACK)
    assert inv.load() == Recorded(valid=False)
    assert "symlink" in inv.problem
    with pytest.raises(PodformError, match="symlink"):
        inv.save(sample())
    assert target.read_text() == "precious"
    assert (tmp_path / "demo.json").is_symlink()
    assert leftovers(tmp_path) == []


def test_symlink_at_lock_path_is_refused(tmp_path: Path) -> None:
    """A symlink planted at the lock path is refused instead of being opened."""
    target = tmp_path / "victim"
    target.write_text("precious")
    (tmp_path / "demo.lock").symlink_to(target)
    with pytest.raises(PodformError, match="symlink"), Inventory(tmp_path, STACK).lock():
        pass
    assert target.read_text() == "precious"


@pytest.mark.skipif(os.getuid() != 0, reason="chown to another uid needs root")
def test_file_owned_by_another_uid_is_refused(tmp_path: Path) -> None:
    """An inventory owned by another user is not trusted and not replaced."""
    inv = Inventory(tmp_path, STACK)
    inv.save(sample())
    os.chown(tmp_path / "demo.json", 65534, 65534)
    assert inv.load() == Recorded(valid=False)
    assert "uid 65534" in inv.problem
    with pytest.raises(PodformError, match="uid 65534"):
        inv.save(sample())


GOOD = json.dumps({"version": 1, "stack": STACK, "containers": {}})


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (GOOD[: len(GOOD) // 2].encode(), "unreadable"),  # truncated by a crash
        (b"", "unreadable"),
        (b"\xff\xfe garbage", "unreadable"),
        (b"[1, 2]", "not a JSON object"),
        (json.dumps({"version": 2, "stack": STACK}).encode(), "version"),
        (json.dumps({"version": 1, "stack": "other"}).encode(), "'other'"),
        (json.dumps({"version": 1, "stack": STACK, "images": []}).encode(), "images"),
        (
            json.dumps({"version": 1, "stack": STACK, "containers": {"c": {"id": 7}}}).encode(),
            "malformed",
        ),
        (
            json.dumps(
                {"version": 1, "stack": STACK, "containers": {"c": {"id": "x", "probe": "maybe"}}}
            ).encode(),
            "malformed",
        ),
    ],
)
def test_damaged_inventory_is_invalid_with_a_problem(
    tmp_path: Path, content: bytes, problem: str
) -> None:
    """Corrupt, truncated or foreign content gives valid=False and a reason, never an exception."""
    (tmp_path / "demo.json").write_bytes(content)
    inv = Inventory(tmp_path, STACK)
    assert inv.load() == Recorded(valid=False)
    assert problem in inv.problem


def test_crash_during_replace_keeps_old_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """If os.replace fails the previous inventory is intact and no temp file is left behind."""
    inv = Inventory(tmp_path, STACK)
    inv.save(sample("old"))
    before = (tmp_path / "demo.json").read_bytes()

    def broken_replace(src: object, dst: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(inventory_module.os, "replace", broken_replace)
    with pytest.raises(PodformError, match="No space left"):
        inv.save(sample("new"))
    monkeypatch.undo()
    assert (tmp_path / "demo.json").read_bytes() == before
    assert leftovers(tmp_path) == []
    assert inv.load().containers["demo-web-1"].id == "old"


def test_secret_env_values_never_reach_the_disk(tmp_path: Path) -> None:
    """Secret-looking env values are masked on save even when the caller forgot to."""
    sentinel = "sentinel-4f9c2e"
    inv = Inventory(tmp_path, STACK)
    inv.save(sample(env={"API_TOKEN": sentinel, "db_password": sentinel, "LEVEL": "info"}))
    assert sentinel.encode() not in (tmp_path / "demo.json").read_bytes()
    env = inv.load().containers["demo-web-1"].spec["env"]
    assert env == {"API_TOKEN": "*****", "db_password": "*****", "LEVEL": "info"}


def test_concurrent_saves_leave_valid_json(tmp_path: Path) -> None:
    """Two threads saving at once leave one complete inventory, never a mix or a temp file."""
    inv = Inventory(tmp_path, STACK)
    errors: list[BaseException] = []

    def writer(container_id: str) -> None:
        try:
            for _ in range(50):
                Inventory(tmp_path, STACK).save(sample(container_id))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(cid,)) for cid in ("aaa", "bbb")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    recorded = inv.load()
    assert recorded.valid, inv.problem
    assert recorded.containers["demo-web-1"].id in {"aaa", "bbb"}
    assert leftovers(tmp_path) == []


HOLDER = """
import pathlib, sys, time
from reconciler.runtime.inventory import Inventory
directory, ready, go = (pathlib.Path(a) for a in sys.argv[1:4])
with Inventory(directory, "demo").lock():
    ready.touch()
    while not go.exists():
        time.sleep(0.01)
    time.sleep(float(sys.argv[4]))
"""


def start_holder(tmp_path: Path, hold_after_go: float) -> tuple[subprocess.Popen[bytes], Path]:
    """A separate process holding the stack lock until `go` exists, plus `hold_after_go` s."""
    ready, go = tmp_path / "ready", tmp_path / "go"
    argv = [str(tmp_path / "state"), str(ready), str(go), str(hold_after_go)]
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, *argv])
    deadline = time.monotonic() + 10
    while not ready.exists():
        assert proc.poll() is None, "lock holder exited early"
        assert time.monotonic() < deadline, "lock holder never took the lock"
        time.sleep(0.01)
    return proc, go


def test_lock_held_by_another_process(tmp_path: Path) -> None:
    """A held lock fails at once naming the holder's pid; with a timeout it waits for release."""
    proc, go = start_holder(tmp_path, hold_after_go=0.3)
    inv = Inventory(tmp_path / "state", STACK)
    try:
        with (
            pytest.raises(LockHeld, match=rf"stack 'demo' is locked by pid {proc.pid} \("),
            inv.lock(),
        ):
            pass
        go.touch()
        started = time.monotonic()
        with inv.lock(timeout=1.0):
            waited = time.monotonic() - started
            assert (tmp_path / "state" / "demo.lock").read_text().startswith(f"{os.getpid()}\n")
        assert 0.2 < waited < 1.0
    finally:
        proc.kill()
        proc.wait()
    assert (tmp_path / "state" / "demo.lock").exists()  # never deleted


def test_lock_timeout_expires_while_held(tmp_path: Path) -> None:
    """Waiting gives up after the timeout when the holder keeps the lock."""
    proc, _ = start_holder(tmp_path, hold_after_go=0)
    try:
        started = time.monotonic()
        with (
            pytest.raises(LockHeld, match=f"pid {proc.pid}"),
            Inventory(tmp_path / "state", STACK).lock(timeout=0.3),
        ):
            pass
        assert 0.25 < time.monotonic() - started < 2.0
    finally:
        proc.kill()
        proc.wait()


def test_lock_of_killed_holder_is_free(tmp_path: Path) -> None:
    """SIGKILL of the holder frees the lock (the kernel drops flocks; no stale pid file)."""
    proc, _ = start_holder(tmp_path, hold_after_go=0)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    with Inventory(tmp_path / "state", STACK).lock():
        pass


def test_lock_released_on_exception(tmp_path: Path) -> None:
    """An exception inside the locked block releases the lock for the next apply."""
    inv = Inventory(tmp_path, STACK)
    with pytest.raises(RuntimeError), inv.lock():
        raise RuntimeError("apply failed")
    with inv.lock():
        pass
    assert (tmp_path / "demo.lock").read_text() == ""


def test_save_fsyncs_file_then_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Durability: the temp file is fsynced before the rename and the directory after it."""
    synced: list[str] = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd: int) -> None:
        synced.append("dir" if stat.S_ISDIR(os.fstat(fd).st_mode) else "file")
        real_fsync(fd)

    def replace(src: str, dst: str) -> None:
        synced.append("replace")
        real_replace(src, dst)

    monkeypatch.setattr(inventory_module.os, "fsync", fsync)
    monkeypatch.setattr(inventory_module.os, "replace", replace)
    Inventory(tmp_path, STACK).save(sample())
    assert synced == ["file", "replace", "dir"]
