"""`podform watch`: atomic saves converge, broken or emptied files change nothing, drift is
corrected on the timer, SIGTERM exits 0, memory stays flat; plus the loop's pure rules.

The Podman tests run the real entry point as a long-lived process, read its JSON log lines and
check the world with the podman CLI.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from helpers import BackgroundPodform, documents
from podman_env import container_ids, container_state, podman_cli

from reconciler.cli.watch import GIT_POLL_S, Rejected, Snapshot, Watcher, _blank, watch_roots
from reconciler.engine.plan import Plan
from reconciler.errors import PodmanUnreachable
from reconciler.runtime.orchestrator import PassResult, load_desired


def save_atomically(path: Path, text: str) -> None:
    """What editors do: write a temporary file beside the target, then rename it over it."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


@pytest.fixture
def start_watch(
    podman_socket: str, state_dir: Path, busybox_image: str, stack_name: str
) -> Iterator[Callable[..., BackgroundPodform]]:
    """Starts watch processes for the test; each is stopped (SIGTERM) afterwards."""
    started: list[BackgroundPodform] = []

    def start(*args: str) -> BackgroundPodform:
        started.append(BackgroundPodform("watch", podman_socket, state_dir, *args))
        return started[-1]

    yield start
    for w in started:
        w.stop()


def running_web(stack: str) -> str | None:
    """The ID of the stack's web-1 container if it is running, else None (one podman call, so
    a container replaced meanwhile cannot make it fail)."""
    out = podman_cli(
        "ps", "--no-trunc", "--filter", f"name=^{stack}-web-1$", "--filter", "status=running",
        "--format", "{{.ID}}",
    )  # fmt: skip
    return out.strip() or None


def env_of(cid: str) -> list[str]:
    out = podman_cli("inspect", "--type", "container", "--format", "{{json .Config.Env}}", cid)
    env: list[str] = json.loads(out)
    return env


@pytest.mark.slow
def test_atomic_rename_save_converges_quickly(
    start_watch: Callable[..., BackgroundPodform],
    busybox_image: str,
    stack_name: str,
    tmp_path: Path,
) -> None:
    """An editor-style rename of a changed file replaces the container within seconds."""
    manifest = tmp_path / "m" / "stack.yaml"
    manifest.parent.mkdir()
    manifest.write_text(documents(stack_name, busybox_image, {"LEVEL": "one"}))
    w = start_watch("-f", str(manifest.parent), "--interval", "30s", "--debounce", "300ms")
    w.wait_for("first pass", lambda: running_web(stack_name) is not None and w.passes() >= 1, 60)
    first = running_web(stack_name)
    save_atomically(manifest, documents(stack_name, busybox_image, {"LEVEL": "two"}))
    t0 = time.monotonic()
    w.wait_for("new container", lambda: running_web(stack_name) not in (None, first), 20)
    elapsed = time.monotonic() - t0
    print(f"rename -> new container running: {elapsed:.2f}s (debounce 0.3s)")
    assert elapsed < 10
    new = running_web(stack_name)
    assert new is not None and "LEVEL=two" in env_of(new)
    done = w.events("pass complete")[-1]
    assert done["trigger"] == "files" and done["changed"] is True
    assert {"revision", "seconds", "next_pass_in", "next_pass_at"} <= set(done)


@pytest.mark.slow
def test_broken_then_emptied_file_changes_nothing_until_fixed(
    start_watch: Callable[..., BackgroundPodform],
    busybox_image: str,
    stack_name: str,
    tmp_path: Path,
) -> None:
    """Invalid YAML, then an empty file: same containers even with --prune, each logged once."""
    manifest = tmp_path / "m" / "stack.yaml"
    manifest.parent.mkdir()
    manifest.write_text(documents(stack_name, busybox_image))
    w = start_watch(
        "-f", str(manifest.parent), "--interval", "1s", "--debounce", "200ms", "--prune"
    )
    w.wait_for("first pass", lambda: running_web(stack_name) is not None, 60)
    before = container_ids(stack_name)

    save_atomically(manifest, "apiVersion: podform/v1\nkind: Workload\nmetadata: {name: [\n")
    w.wait_for("rejection", lambda: len(w.events("manifests rejected")) == 1, 10)
    n = w.passes()
    w.wait_for("two more timed passes", lambda: w.passes() >= n + 2, 10)
    rejected = w.events("manifests rejected")
    assert len(rejected) == 1, "the same broken content must be logged once"
    assert any("stack.yaml:" in p for p in rejected[0]["problems"]), rejected[0]

    manifest.write_text("")
    w.wait_for("second rejection", lambda: len(w.events("manifests rejected")) == 2, 10)
    n = w.passes()
    w.wait_for("two more timed passes", lambda: w.passes() >= n + 2, 10)
    assert len(w.events("manifests rejected")) == 2
    assert "is empty" in w.events("manifests rejected")[1]["problems"][0]
    assert container_ids(stack_name) == before
    assert running_web(stack_name) == before[f"{stack_name}-web-1"]

    save_atomically(manifest, documents(stack_name, busybox_image, {"FIXED": "yes"}))
    old = before[f"{stack_name}-web-1"]
    w.wait_for("converged after fix", lambda: running_web(stack_name) not in (None, old), 20)
    assert w.events("manifests valid again")


@pytest.mark.slow
def test_drift_by_hand_is_corrected_within_the_interval(
    start_watch: Callable[..., BackgroundPodform],
    busybox_image: str,
    stack_name: str,
    tmp_path: Path,
) -> None:
    """The timed pass starts a container stopped by hand and recreates one removed by hand."""
    manifest = tmp_path / "stack.yaml"
    manifest.write_text(documents(stack_name, busybox_image))
    w = start_watch("-f", str(manifest), "--interval", "2s", "--debounce", "200ms")
    w.wait_for("first pass", lambda: running_web(stack_name) is not None, 60)
    cid = running_web(stack_name)
    assert cid is not None
    podman_cli("stop", "-t", "1", cid)
    assert container_state(cid) != "running"
    t0 = time.monotonic()
    w.wait_for("restart", lambda: running_web(stack_name) == cid, 2 * 1.1 + 6)
    print(f"stopped by hand -> running again: {time.monotonic() - t0:.2f}s (interval 2s)")
    w.wait_for(
        "the timed pass's log line",
        lambda: any(p["trigger"] == "interval" and p["changed"] for p in w.events("pass complete")),
        5,
    )
    podman_cli("rm", "--force", "-t", "0", cid)
    w.wait_for("recreate", lambda: running_web(stack_name) not in (None, cid), 2 * 1.1 + 6)


def test_sigterm_exits_zero_promptly(
    start_watch: Callable[..., BackgroundPodform],
    busybox_image: str,
    stack_name: str,
    tmp_path: Path,
) -> None:
    """SIGTERM ends watch with exit 0 within a few seconds."""
    manifest = tmp_path / "stack.yaml"
    manifest.write_text(documents(stack_name, busybox_image))
    w = start_watch("-f", str(manifest), "--interval", "60s")
    w.wait_for("first pass", lambda: w.passes() >= 1, 60)
    t0 = time.monotonic()
    assert w.stop() == 0, w.log()
    assert time.monotonic() - t0 < 5
    assert w.events("watch stopped")


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


@pytest.mark.slow
def test_rss_stays_flat_over_many_passes(
    start_watch: Callable[..., BackgroundPodform],
    busybox_image: str,
    stack_name: str,
    tmp_path: Path,
) -> None:
    """RSS after 100 passes is within 5 MiB of RSS after 10."""
    manifest = tmp_path / "stack.yaml"
    manifest.write_text(documents(stack_name, busybox_image))
    w = start_watch("-f", str(manifest), "--interval", "100ms", "--debounce", "50ms")
    w.wait_for("10 passes", lambda: w.passes() >= 10, 60)
    at_10 = rss_kib(w.proc.pid)
    w.wait_for("100 passes", lambda: w.passes() >= 100, 120)
    at_100 = rss_kib(w.proc.pid)
    print(f"VmRSS after 10 passes: {at_10} KiB, after 100: {at_100} KiB")
    assert abs(at_100 - at_10) <= 5 * 1024


# --- the loop's pure rules (no Podman) -------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "blank"),
    [
        (b"", True),
        (b"\n  \n# only a comment\n---\n...\n", True),
        (b"kind: Workload\n", False),
        (b"---\n{}\n", False),
    ],
)
def test_blank_means_no_document(text: bytes, blank: bool) -> None:
    """A file of whitespace, comments and separators counts as holding no document."""
    assert _blank(text) is blank


def test_watch_roots_are_directories_and_skip_the_state_dir(tmp_path: Path) -> None:
    """-f dirs are watched recursively, -f files via their folder, never the state dir."""
    (tmp_path / "dir" / "sub").mkdir(parents=True)
    (tmp_path / "flat").mkdir()
    (tmp_path / "flat" / "a.yaml").write_text("")
    recursive, flat = watch_roots(
        [str(tmp_path / "dir"), str(tmp_path / "dir" / "sub"), str(tmp_path / "flat" / "a.yaml")],
        None,
        ignore=tmp_path / "flat" / "state",
    )
    assert recursive == {tmp_path / "dir"} and flat == {tmp_path / "flat"}
    recursive, _ = watch_roots([str(tmp_path / "dir")], None, ignore=tmp_path)
    assert recursive == set()


def test_build_contexts_are_watched_recursively(tmp_path: Path) -> None:
    """An Image's build context joins the watched folders, beside the manifest's folder."""
    (tmp_path / "ctx").mkdir()
    (tmp_path / "ctx" / "Containerfile").write_text("FROM scratch\n")
    image = {"apiVersion": "podform/v1", "kind": "Image", "metadata": {"name": "app"}}
    image["spec"] = {"build": {"context": "./ctx"}}
    (tmp_path / "stack.yaml").write_text(yaml.safe_dump(image))
    desired = load_desired([str(tmp_path / "stack.yaml")])
    recursive, flat = watch_roots([str(tmp_path / "stack.yaml")], desired)
    assert recursive == {tmp_path / "ctx"} and flat == {tmp_path}


def test_a_snapshot_is_taken_only_between_two_equal_reads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A file that changes while it is loaded is read again; one that never settles defers."""
    watcher, folder = _watcher_with(tmp_path, {"a.yaml": documents("s", "busybox:1")})
    writes = iter(range(2))

    def load_while_writing(paths: Any) -> Any:
        if next(writes, None) is not None:  # the first two loads race with a writer
            with (folder / "a.yaml").open("a") as f:
                f.write("# more\n")
        return load_desired(paths)

    monkeypatch.setattr("reconciler.cli.watch.load_desired", load_while_writing)
    snap = watcher.read_snapshot()
    assert isinstance(snap, Snapshot) and snap.desired.workloads
    writes = iter(range(10**6))
    assert watcher.read_snapshot() is None


class _Log:
    """Stands in for the structlog logger: records (event, fields)."""

    def __init__(self) -> None:
        self.records: list[tuple[str, dict[str, Any]]] = []

    def __getattr__(self, _level: str) -> Callable[..., None]:
        return lambda event, **kw: self.records.append((event, kw))


class _FakeReconciler:
    """Reconciler stand-in: counts applies; raises the queued errors first, then succeeds."""

    def __init__(self, *errors: Exception) -> None:
        self.stop_event = threading.Event()
        self.errors = list(errors)
        self.applied = 0

    def apply(self, desired: Any) -> PassResult:
        self.applied += 1
        if self.errors:
            raise self.errors.pop(0)
        return PassResult(desired, Plan("s", ()))


def _watcher_with(
    tmp_path: Path, files: dict[str, str], rec: _FakeReconciler | None = None
) -> tuple[Watcher, Path]:
    folder = tmp_path / "m"
    folder.mkdir(exist_ok=True)
    for name, text in files.items():
        (folder / name).write_text(text)
    fake: Any = rec or _FakeReconciler()
    return Watcher([str(folder)], fake, 60.0, 0.1, _Log()), folder


def test_snapshot_losing_a_file_is_rejected_but_a_rename_is_not(tmp_path: Path) -> None:
    """Emptying or deleting a file whose resources vanish keeps the last good state."""
    a = documents("s", "busybox:1")
    watcher, folder = _watcher_with(tmp_path, {"a.yaml": a})
    good = watcher.read_snapshot()
    assert isinstance(good, Snapshot) and set(good.desired.workloads) == {"web"}
    watcher.last_good = good
    os.replace(folder / "a.yaml", folder / "b.yaml")  # a rename loses no resource
    renamed = watcher.read_snapshot()
    assert isinstance(renamed, Snapshot)
    watcher.last_good = renamed
    (folder / "b.yaml").write_text("# emptied\n")
    emptied = watcher.read_snapshot()
    assert isinstance(emptied, Rejected) and "b.yaml:1: is empty" in emptied.problems[0]
    (folder / "b.yaml").unlink()
    vanished = watcher.read_snapshot()
    assert isinstance(vanished, Rejected) and "b.yaml:1: vanished" in vanished.problems[0]


def test_invalid_snapshot_is_rejected_with_locations(tmp_path: Path) -> None:
    """A manifest that does not load becomes a Rejected naming file:line."""
    watcher, _ = _watcher_with(tmp_path, {"a.yaml": "kind: [\n"})
    snap = watcher.read_snapshot()
    assert isinstance(snap, Rejected) and "a.yaml:" in snap.problems[0]


@pytest.mark.parametrize(
    ("failures", "interval", "delay"),
    [(1, 60.0, 1.0), (2, 60.0, 2.0), (4, 60.0, 8.0), (9, 60.0, 60.0), (3, 3.0, 3.0)],
)
def test_backoff_doubles_and_is_capped_by_the_interval(
    tmp_path: Path, failures: int, interval: float, delay: float
) -> None:
    """After failures the next pass waits 1, 2, 4 ... seconds, never longer than the interval."""
    watcher, _ = _watcher_with(tmp_path, {})
    watcher.interval_s, watcher.failures = interval, failures
    assert watcher._next_delay() == delay


def test_interval_has_ten_percent_jitter(tmp_path: Path) -> None:
    """Timed passes are spread within ±10% of the interval, not all at the same instant."""
    watcher, _ = _watcher_with(tmp_path, {})
    delays = {watcher._next_delay() for _ in range(50)}
    assert all(54.0 <= d <= 66.0 for d in delays) and len(delays) > 1


def test_podman_failures_back_off_and_a_success_resets(tmp_path: Path) -> None:
    """A pass that cannot reach Podman is retried after 1 s, then 2 s; success resets."""
    rec = _FakeReconciler(PodmanUnreachable("down"), PodmanUnreachable("down"))
    watcher, _ = _watcher_with(tmp_path, {"a.yaml": documents("s", "busybox:1")}, rec)
    assert [watcher.run_pass("start"), watcher.run_pass("retry")] == [1.0, 2.0]
    assert 54.0 <= watcher.run_pass("retry") <= 66.0 and watcher.failures == 0
    assert rec.applied == 3 and watcher.passes == 1


def test_events_during_a_pass_coalesce_into_one_more(tmp_path: Path) -> None:
    """Many queued file events yield one "files" trigger after the quiet period, then the timer."""
    watcher, _ = _watcher_with(tmp_path, {})
    for _ in range(7):
        watcher.triggers.put("files")
    t0 = time.monotonic()
    assert watcher.next_trigger(time.monotonic() + 60) == "files"
    assert time.monotonic() - t0 >= watcher.debounce_s and watcher.triggers.empty()
    assert watcher.next_trigger(time.monotonic() + 0.05) == "interval"


def test_git_index_lock_defers_the_pass_and_head_is_the_revision(tmp_path: Path) -> None:
    """While .git/index.lock exists nothing is read or applied; the pass logs HEAD's sha."""
    sha = "0123456789abcdef0123456789abcdef01234567"
    (tmp_path / ".git" / "refs" / "heads").mkdir(parents=True)
    (tmp_path / ".git" / "HEAD").write_text("ref: refs/heads/main\n")
    (tmp_path / ".git" / "refs" / "heads" / "main").write_text(sha + "\n")
    (tmp_path / ".git" / "index.lock").write_text("")
    rec = _FakeReconciler()
    watcher, _ = _watcher_with(tmp_path, {"a.yaml": documents("s", "busybox:1")}, rec)
    assert watcher.run_pass("files") == GIT_POLL_S and rec.applied == 0
    (tmp_path / ".git" / "index.lock").unlink()
    watcher.run_pass("files")
    assert rec.applied == 1
    log: Any = watcher.log
    assert [kw["revision"] for ev, kw in log.records if ev == "pass complete"] == [sha]


def test_sigterm_while_podman_is_unreachable_stops_watch_at_once(
    state_dir: Path, busybox_image: str, tmp_path: Path
) -> None:
    """A pass retrying an unreachable socket ends on SIGTERM, and watch exits 0 as after any
    pass, without waiting out the retries."""
    (tmp_path / "stack.yaml").write_text(documents("qwatchint", busybox_image))
    w = BackgroundPodform(
        "watch", f"unix://{tmp_path}/nothing-listens.sock", state_dir, "-f", str(tmp_path)
    )
    try:
        w.wait_for("watch started", lambda: bool(w.events("watch started")), 20)
        time.sleep(1.5)  # inside the first pass's retries (about 5 s)
        assert w.stop() == 0, w.log()
        (ended,) = w.events("pass failed")  # by the signal, not by the retries giving up
        assert "interrupted" in ended["error"], ended
        assert w.events("watch stopped"), w.log()
    finally:
        w.stop()
