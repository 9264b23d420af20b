"""Only regular files are read as manifests: FIFOs, sockets, devices and symlink loops are errors
naming the path (never a hang), in `validate` and in a running `watch`, which keeps going."""

from __future__ import annotations

import os
import socket
import stat
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from helpers import BackgroundPodform, documents
from podman_env import podform_subprocess

from reconciler.errors import InvalidInput
from reconciler.manifests.loader import load_manifests, read_regular_file

GOOD = "apiVersion: podform/v1\nkind: Workload\nmetadata: {name: web}\nspec: {image: busybox:1}\n"


def make_fifo(path: Path) -> str:
    os.mkfifo(path)
    return "FIFO"


def make_socket(path: Path) -> str:
    server = socket.socket(socket.AF_UNIX)
    server.bind(str(path))
    server.close()  # the socket file stays
    return "socket"


def make_loop(path: Path) -> str:
    other = path.with_name("l2.yaml")
    os.symlink(other.name, path)
    os.symlink(path.name, other)
    return "symbolic link loop"


def make_device(path: Path) -> str:
    try:
        os.mknod(path, stat.S_IFCHR | 0o600, os.makedev(1, 5))  # like /dev/zero: endless bytes
    except PermissionError:
        pytest.skip("mknod needs CAP_MKNOD")
    return "character device"


MAKERS = [make_fifo, make_socket, make_loop, make_device]


@pytest.mark.parametrize("make", MAKERS)
def test_special_file_in_a_folder_is_an_error_naming_it(
    tmp_path: Path, make: Callable[[Path], str]
) -> None:
    """Loading a folder holding a special *.yaml reports that path and what it is, at once."""
    (tmp_path / "good.yaml").write_text(GOOD)
    what = make(tmp_path / "l1.yaml")
    started = time.monotonic()
    with pytest.raises(InvalidInput) as caught:
        load_manifests([str(tmp_path)])
    assert time.monotonic() - started < 2
    messages = [str(i) for i in caught.value.issues]
    assert any(str(tmp_path / "l1.yaml") in m and what in m for m in messages), messages


@pytest.mark.parametrize("make", MAKERS)
def test_special_file_named_with_f_is_an_error(tmp_path: Path, make: Callable[[Path], str]) -> None:
    """`validate -f special.yaml` exits 1 naming the path instead of hanging or crashing."""
    what = make(tmp_path / "l1.yaml")
    done = podform_subprocess("validate", "-f", str(tmp_path / "l1.yaml"), timeout=20)
    assert done.returncode == 1, done.stderr
    assert f"{tmp_path / 'l1.yaml'}: cannot read: " in done.stderr and what in done.stderr
    assert "internal error" not in done.stderr


def test_read_regular_file_is_bounded(tmp_path: Path) -> None:
    """The reader stops at its limit."""
    (tmp_path / "big").write_bytes(b"x" * 1000)
    assert read_regular_file(tmp_path / "big", 10) == b"x" * 10


@pytest.fixture
def watch_process(
    podman_socket: str, state_dir: Path
) -> Iterator[Callable[..., BackgroundPodform]]:
    started: list[BackgroundPodform] = []

    def start(*args: str) -> BackgroundPodform:
        started.append(BackgroundPodform("watch", podman_socket, state_dir, *args))
        return started[-1]

    yield start
    for w in started:
        w.stop()


@pytest.mark.parametrize("make", [make_fifo, make_loop])
def test_watch_reports_a_special_file_once_keeps_running_and_stops_on_sigterm(
    watch_process: Callable[..., BackgroundPodform],
    busybox_image: str,
    stack_name: str,
    tmp_path: Path,
    make: Callable[[Path], str],
) -> None:
    """A FIFO or symlink loop appearing in a watched folder is logged once as a rejection; watch
    keeps its last good state running, and SIGTERM still ends it within a few seconds."""
    (tmp_path / "stack.yaml").write_text(documents(stack_name, busybox_image))
    w = watch_process("-f", str(tmp_path), "--interval", "1s", "--debounce", "100ms")
    w.wait_for("first pass", lambda: w.passes() >= 1, 60)
    what = make(tmp_path / "l1.yaml")
    w.wait_for("rejection", lambda: bool(w.events("manifests rejected")), 20)
    time.sleep(3)  # three more timed passes
    rejected = w.events("manifests rejected")
    assert len(rejected) == 1, w.log()
    assert any(what in p and "l1.yaml" in p for p in rejected[0]["problems"]), rejected
    assert w.proc.poll() is None
    t0 = time.monotonic()
    assert w.stop() == 0, w.log()
    assert time.monotonic() - t0 < 5
    assert "internal error" not in w.log()
