"""Watch mode: file events and a jittered timer trigger full reconcile passes.

Sits on top of runtime.orchestrator (load_desired, Reconciler) beside the other commands. Level-based: an event never
carries meaning beyond "something may have changed"; every pass reloads the whole stack and
applies it. One pass at a time; events that arrive during a pass coalesce into one more.
A snapshot that does not load, is still being written, or lost a file's documents keeps the
last good desired state in force: nothing is deleted on absence.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import os
import queue
import random
import sys
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from reconciler.cli.signals import StopOnSignals
from reconciler.errors import InvalidInput, PodformError
from reconciler.manifests.loader import MAX_BYTES, read_regular_file
from reconciler.manifests.model import Desired
from reconciler.manifests.units import format_seconds, seconds
from reconciler.runtime.orchestrator import Reconciler, Settings, load_desired, manifest_paths

STABLE_TRIES = 10  # reads of a snapshot that keeps changing before the pass is deferred
STEP_S = 0.05  # pause between the two reads of the stability check
GIT_POLL_S = 0.2  # how often a held `.git/index.lock` is re-checked
MAX_DEBOUNCE_WAIT = 10  # under continuous writes, run anyway after this many debounce periods


@dataclass(frozen=True)
class Snapshot:
    """One consistent read of the manifests and the desired state built from it."""

    desired: Desired
    digest: str  # SHA-256 over every manifest path and its bytes
    nonblank: frozenset[Path]  # files that held at least one document


@dataclass(frozen=True)
class Rejected:
    """Why a snapshot was not accepted; the lines name file:line where they can."""

    problems: tuple[str, ...]


def _resource_keys(d: Desired) -> set[tuple[str, str]]:
    return (
        {("Machine", n) for n in d.machines}
        | {("Image", n) for n in d.images}
        | {("DeviceMapping", n) for n in d.mappings}
        | {("Workload", n) for n in d.workloads}
    )


def _blank(data: bytes) -> bool:
    """True when a file holds no YAML document: only blank lines, comments and separators."""
    lines = (raw.strip() for raw in data.splitlines())
    return not any(x and not x.startswith(b"#") and x not in (b"---", b"...") for x in lines)


def _read(path: Path) -> bytes | None:
    try:  # never blocks: a FIFO or device named *.yaml is an error, not a hang
        return read_regular_file(path, MAX_BYTES + 1)
    except OSError:
        return None


def _read_all(files: Sequence[Path]) -> dict[Path, bytes | None]:
    return {path: _read(path) for path in files}


def _digest(contents: dict[Path, bytes | None]) -> str:
    h = hashlib.sha256()
    for path in sorted(contents):
        data = contents[path]
        h.update(f"{path}\0{-1 if data is None else len(data)}\0".encode())
        h.update(data or b"")
    return h.hexdigest()


def _git_dir(start: Path) -> Path | None:
    """The git directory of the repository holding START (a `.git` file points elsewhere)."""
    for folder in (start, *start.parents):
        dot = folder / ".git"
        if dot.is_dir():
            return dot
        if dot.is_file():
            text = dot.read_text(errors="replace").strip()
            if text.startswith("gitdir:"):
                return (folder / text.removeprefix("gitdir:").strip()).resolve()
    return None


def _head_sha(git_dir: Path) -> str | None:
    """HEAD's commit, read from the repository files (no git binary needed); None when
    it cannot be read that way (e.g. a linked worktree): the content hash stands in."""
    with contextlib.suppress(OSError):
        head = (git_dir / "HEAD").read_text().strip()
        if not head.startswith("ref:"):
            return head or None
        ref = head.removeprefix("ref:").strip()
        if (git_dir / ref).is_file():
            return (git_dir / ref).read_text().strip()
        for line in (git_dir / "packed-refs").read_text().splitlines():
            if line.endswith(" " + ref):
                return line.split(" ", 1)[0]
    return None


def watch_roots(
    given: Sequence[str], desired: Desired | None, ignore: Path | None = None
) -> tuple[frozenset[Path], frozenset[Path]]:
    """(recursive, flat) directories to watch: -f directories and build contexts recursively,
    the folder of each -f file flat. Directories, never files: an editor's atomic rename
    replaces the file's inode, and a watch on the old inode goes silent."""
    recursive: set[Path] = set()
    flat: set[Path] = set()
    for name in given:
        path = Path(name).absolute()
        if path.is_dir():
            recursive.add(path.resolve())
        elif path.parent.is_dir():
            flat.add(path.parent.resolve())
    if desired is not None:
        recursive |= {
            i.build.context for i in desired.images.values() if i.build and i.build.context.is_dir()
        }
    if ignore is not None:  # the state directory: writing the inventory must not trigger a pass
        recursive = {p for p in recursive if not p.is_relative_to(ignore)}
    recursive = {p for p in recursive if not any(p != q and p.is_relative_to(q) for q in recursive)}
    flat = {p for p in flat if not any(p.is_relative_to(q) for q in recursive)}
    return frozenset(recursive), frozenset(flat)


def _watch_thread(
    dirs: Iterable[Path], recursive: bool, out: queue.Queue[str], ignore: Path | None
) -> tuple[threading.Thread, threading.Event]:
    """watchfiles in a daemon thread; every batch of events becomes one "files" trigger."""
    import watchfiles

    stop = threading.Event()
    only = watchfiles.DefaultFilter(ignore_paths=[ignore] if ignore else [])  # + .git, *.swp, ~

    def run() -> None:
        try:
            for _ in watchfiles.watch(
                *sorted(dirs), watch_filter=only, step=50, stop_event=stop, rust_timeout=1000,
                recursive=recursive, raise_interrupt=False,
            ):  # fmt: skip
                out.put("files")
        except Exception:  # a watched folder vanished: the next pass re-creates the watch
            out.put("files")

    thread = threading.Thread(target=run, name="podform-watch", daemon=True)
    thread.start()
    return thread, stop


class Watcher:
    """The loop's state: last good snapshot, last logged rejection, failures, the timer."""

    def __init__(
        self,
        files: Sequence[str],
        reconciler: Reconciler,
        interval_s: float,
        debounce_s: float,
        log: Any,
        state_dir: Path | None = None,
    ) -> None:
        self.files, self.rec, self.stop = list(files), reconciler, reconciler.stop_event
        self.interval_s, self.debounce_s, self.log = interval_s, debounce_s, log
        self.state_dir = state_dir  # never watched: the inventory written there is no event
        self.triggers: queue.Queue[str] = queue.Queue()
        self.last_good: Snapshot | None = None  # in force while newer snapshots are rejected
        self.rejected: Rejected | None = None  # logged once; a different rejection logs again
        self.failures = self.passes = 0
        self.waiting_for_git = False
        self._watches: list[tuple[threading.Thread, threading.Event]] = []
        self._roots: tuple[frozenset[Path], frozenset[Path]] | None = None
        self.git_dirs = {g for f in self.files if (g := _git_dir(Path(f).absolute())) is not None}

    # --- snapshot -----------------------------------------------------------------------
    def read_snapshot(self) -> Snapshot | Rejected | None:
        """Load the manifests between two equal reads; None while they keep changing."""
        for _ in range(STABLE_TRIES):
            before = _read_all(manifest_paths(self.files))
            try:
                desired: Desired | None = load_desired(self.files)
                problems: tuple[str, ...] = ()
            except InvalidInput as exc:
                desired, problems = None, tuple(str(i) for i in exc.issues)
            except PodformError as exc:
                desired, problems = None, (str(exc),)
            after = _read_all(manifest_paths(self.files))
            if before == after:
                if desired is None:
                    return Rejected(problems)
                nonblank = frozenset(p for p, d in after.items() if d is not None and not _blank(d))
                return self._check_losses(Snapshot(desired, _digest(after), nonblank))
            time.sleep(STEP_S)
        return None

    def _check_losses(self, snap: Snapshot) -> Snapshot | Rejected:
        """A file that held documents and is now empty or gone is not taken as a deletion."""
        good = self.last_good
        if good is None:
            return snap
        emptied = sorted(p for p in good.nonblank - snap.nonblank)
        lost = _resource_keys(good.desired) - _resource_keys(snap.desired)
        if not emptied or not lost:
            return snap
        problems = [
            f"{p}:1: {'is empty' if p.exists() else 'vanished'}; it declared resources that are "
            "no longer declared anywhere (restart watch or run apply to accept the removal)"
            for p in emptied
        ]
        return Rejected(tuple(problems))

    def revision(self, snap: Snapshot) -> str:
        for git_dir in sorted(self.git_dirs):
            if sha := _head_sha(git_dir):
                return sha
        return f"sha256:{snap.digest[:16]}"

    def git_busy(self) -> bool:
        return any((g / "index.lock").exists() for g in self.git_dirs)

    # --- one pass -----------------------------------------------------------------------
    def run_pass(self, trigger: str) -> float:
        """Reload, reconcile, log; return the seconds until the next timed pass."""
        if self.git_busy():
            if not self.waiting_for_git:
                self.log.info("waiting for git: index.lock present", trigger=trigger)
            self.waiting_for_git = True
            return GIT_POLL_S
        self.waiting_for_git = False
        start = time.monotonic()
        snap = self.read_snapshot()
        if snap is None:
            self.log.info("manifests still being written; will retry", trigger=trigger)
            return max(self.debounce_s, STEP_S)
        if isinstance(snap, Rejected):
            if snap != self.rejected:
                self.log.error(
                    "manifests rejected",
                    keeping="the last good desired state; nothing is deleted",
                    problems=list(snap.problems),
                    last_good=self.revision(self.last_good) if self.last_good else None,
                )
            self.rejected = snap
            if self.last_good is None:
                return self.interval_s
            snap = self.last_good
        else:
            if self.rejected is not None:
                self.log.info("manifests valid again")
            self.rejected = None
            self.last_good = snap
        self.ensure_watching()
        try:
            result = self.rec.apply(snap.desired)
        except PodformError as exc:  # Podman down, lock held, ...: back off and try again
            return self._finish(trigger, start, False, "pass failed", error=str(exc))
        except Exception as exc:  # a bug must not end the watch; the next pass may succeed
            self.log.exception("internal error during pass", trigger=trigger)
            return self._finish(trigger, start, False, "pass failed", error=repr(exc))
        self.passes += 1
        return self._finish(
            trigger,
            start,
            result.ok,
            "pass complete" if result.ok else "pass failed",
            pass_number=self.passes,
            revision=self.revision(snap),
            using_last_good=self.rejected is not None,
            **result.log_fields(),
        )

    def _finish(self, trigger: str, start: float, ok: bool, event: str, **fields: Any) -> float:
        """Log the pass (what, why, how long, when next) and return the delay to the next."""
        self.failures = 0 if ok else self.failures + 1
        delay = self._next_delay()
        (self.log.info if ok else self.log.warning)(
            event,
            trigger=trigger,
            **fields,
            consecutive_failures=self.failures,
            seconds=round(time.monotonic() - start, 3),
            next_pass_in=format_seconds(round(delay, 3)),
            next_pass_at=(datetime.now(UTC) + timedelta(seconds=delay)).isoformat("T", "seconds"),
        )
        return delay

    def _next_delay(self) -> float:
        """Interval ±10% jitter; after failures, exponential from 1s, capped at the interval."""
        if self.failures:
            return min(self.interval_s, 2.0 ** (self.failures - 1))
        return self.interval_s * random.uniform(0.9, 1.1)

    # --- events -------------------------------------------------------------------------
    def ensure_watching(self) -> None:
        """(Re)start the file watches when the folders changed or a watch thread died."""
        desired = self.last_good.desired if self.last_good else None
        roots = watch_roots(self.files, desired, self.state_dir)
        if roots == self._roots and all(t.is_alive() for t, _ in self._watches):
            return
        self.close_watches()
        self._roots = roots
        for dirs, recursive in ((roots[0], True), (roots[1], False)):
            if dirs:
                self._watches.append(_watch_thread(dirs, recursive, self.triggers, self.state_dir))
        self.log.debug(
            "watching", recursive=sorted(map(str, roots[0])), flat=sorted(map(str, roots[1]))
        )

    def close_watches(self) -> None:
        for _, stop in self._watches:
            stop.set()
        self._watches = []

    def next_trigger(self, due: float) -> str | None:
        """Block until the timer is due or files changed (then quiet for the debounce period)."""
        while not self.stop.is_set():
            now = time.monotonic()
            if now >= due:
                return "retry" if self.failures else "interval"
            try:
                self.triggers.get(timeout=min(due - now, 0.2))
            except queue.Empty:
                continue
            quiet_until = time.monotonic() + self.debounce_s
            latest = quiet_until + self.debounce_s * (MAX_DEBOUNCE_WAIT - 1)
            while not self.stop.is_set() and (left := quiet_until - time.monotonic()) > 0:
                with contextlib.suppress(queue.Empty):
                    self.triggers.get(timeout=min(left, 0.2))
                    quiet_until = min(time.monotonic() + self.debounce_s, latest)
            return "files"
        return None

    def run(self) -> None:
        """Pass, wait for the timer or files, pass again ... until the stop event is set."""
        self.ensure_watching()
        trigger: str | None = "start"
        while trigger is not None and not self.stop.is_set():
            trigger = self.next_trigger(time.monotonic() + self.run_pass(trigger))


MIN_INTERVAL_S = 0.1  # 0s reconciled in a busy loop; 100ms is what tests of many passes use
MAX_INTERVAL_S = 7 * 24 * 3600.0  # a week; longer is "never", and overflows date arithmetic
MAX_DEBOUNCE_S = 3600.0


def _check_range(flag: str, raw: str, value: float, low: float, high: float) -> None:
    if not low <= value <= high:
        raise ValueError(f"{flag} {raw} is out of range: use {_hours(low)} to {_hours(high)}")


def _hours(value: float) -> str:
    return f"{value / 3600:g}h" if value >= 3600 else format_seconds(value)


def run_watch(args: argparse.Namespace, settings: Settings) -> int:
    """`podform watch`: pass now, on file change and every interval, until SIGINT/SIGTERM."""
    from reconciler.cli import log as logging_setup
    from reconciler.cli import report
    from reconciler.runtime.inventory import state_dir

    log = logging_setup.get()
    try:
        if "-" in args.files:
            raise ValueError("stdin cannot be watched; name files or directories with -f")
        if missing := [f for f in args.files if not os.path.lexists(f)]:
            # A typo would otherwise be watched forever; a file that vanishes later is rejected
            # per pass instead (the last good state stays), like a half-written one.
            raise ValueError(f"{missing[0]}: no such file or directory")
        interval_s, debounce_s = seconds(args.interval), seconds(args.debounce)
        _check_range("--interval", args.interval, interval_s, MIN_INTERVAL_S, MAX_INTERVAL_S)
        _check_range("--debounce", args.debounce, debounce_s, 0.0, MAX_DEBOUNCE_S)
    except ValueError as exc:
        log.error("cannot watch", error=str(exc))
        return 1
    with StopOnSignals() as signals:
        rec = Reconciler(
            settings, on_event=report.EventPrinter(sys.stderr, False), stop_event=signals.event
        )
        watcher = Watcher(
            args.files, rec, interval_s, debounce_s, log,
            Path(state_dir(settings.state_dir)).resolve(),
        )  # fmt: skip
        log.info("watch started", files=args.files, interval=args.interval, debounce=args.debounce)
        try:
            watcher.run()
        finally:
            watcher.close_watches()
            rec.close()
    log.info("watch stopped", passes=watcher.passes)
    return 0
