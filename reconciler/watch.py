"""Watch mode: file events and a jittered timer trigger full reconcile passes.

Sits on top of app (load_desired, Reconciler) beside the CLI. Level-based: an event never
carries meaning beyond "something may have changed"; every pass reloads the whole stack and
applies it. One pass at a time; events that arrive during a pass coalesce into one more.
A snapshot that does not load, is still being written, or lost a file's documents keeps the
last good desired state in force: nothing is deleted on absence.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import queue
import random
import signal
import sys
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from reconciler.app import Reconciler, Settings, load_desired, manifest_paths
from reconciler.errors import InvalidInput, PodformError
from reconciler.model import Desired
from reconciler.units import format_seconds, seconds

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


def _resource_keys(desired: Desired) -> set[tuple[str, str]]:
    groups: list[tuple[str, Iterable[str]]] = [
        ("Machine", desired.machines),
        ("Image", desired.images),
        ("DeviceMapping", desired.mappings),
        ("Workload", desired.workloads),
    ]
    return {(kind, name) for kind, names in groups for name in names}


def _blank(data: bytes) -> bool:
    """True when a file holds no YAML document: only blank lines, comments and separators."""
    for raw in data.splitlines():
        line = raw.strip()
        if line and not line.startswith(b"#") and line not in (b"---", b"..."):
            return False
    return True


def _read_all(files: Sequence[Path]) -> dict[Path, bytes | None]:
    out: dict[Path, bytes | None] = {}
    for path in files:
        try:
            out[path] = path.read_bytes()
        except OSError:
            out[path] = None
    return out


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
    """HEAD's commit, read from the repository files (no git binary needed)."""
    try:
        head = (git_dir / "HEAD").read_text().strip()
        if not head.startswith("ref:"):
            return head or None
        ref = head.removeprefix("ref:").strip()
        common = git_dir
        if (git_dir / "commondir").is_file():  # a linked worktree keeps refs in the main repo
            common = (git_dir / (git_dir / "commondir").read_text().strip()).resolve()
        for base in (git_dir, common):
            if (base / ref).is_file():
                return (base / ref).read_text().strip()
        for line in (common / "packed-refs").read_text().splitlines():
            if line.endswith(" " + ref):
                return line.split(" ", 1)[0]
    except OSError:
        return None
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


class _FileWatch:
    """watchfiles in a daemon thread; every batch of events becomes one "files" trigger."""

    def __init__(
        self, dirs: Iterable[Path], recursive: bool, out: queue.Queue[str], ignore: Path | None
    ) -> None:
        import watchfiles

        self.stop = threading.Event()
        self.dirs = sorted(dirs)
        ignore_paths = [ignore] if ignore is not None else []
        self._filter = watchfiles.DefaultFilter(ignore_paths=ignore_paths)
        self._recursive = recursive
        self._out = out
        self.thread = threading.Thread(target=self._run, name="podform-watch", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        import watchfiles

        try:
            for _ in watchfiles.watch(
                *self.dirs,
                watch_filter=self._filter,
                step=50,
                stop_event=self.stop,
                rust_timeout=1000,
                recursive=self._recursive,
                raise_interrupt=False,
            ):
                self._out.put("files")
        except Exception:  # a watched folder vanished: the next pass re-creates the watch
            self._out.put("files")


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
        self.files = list(files)
        self.rec = reconciler
        self.stop = reconciler.stop_event
        self.interval_s = interval_s
        self.debounce_s = debounce_s
        self.log = log
        self.state_dir = state_dir
        self.triggers: queue.Queue[str] = queue.Queue()
        self.last_good: Snapshot | None = None
        self.rejected: Rejected | None = None
        self.failures = 0
        self.passes = 0
        self.waiting_for_git = False
        self._watches: list[_FileWatch] = []
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
        except PodformError as exc:
            return self._failed(trigger, str(exc), start)
        except Exception as exc:  # a bug must not end the watch; the next pass may succeed
            self.log.exception("internal error during pass", trigger=trigger)
            return self._failed(trigger, f"{type(exc).__name__}: {exc}", start)
        self.passes += 1
        ok = result.ok
        self.failures = 0 if ok else self.failures + 1
        delay = self._next_delay()
        changes = [
            {
                "resource": a.id,
                "action": a.verb.value,
                "reason": a.reason,
                "fields": [str(c) for c in a.changes],
            }
            for a in result.plan.pending()
        ]
        ex = result.execution
        failed = sorted(k for k, o in ex.outcomes.items() if o.status not in ("ok",)) if ex else []
        (self.log.info if ok else self.log.warning)(
            "pass complete" if ok else "pass failed",
            pass_number=self.passes,
            trigger=trigger,
            revision=self.revision(snap),
            using_last_good=self.rejected is not None,
            changed=bool(ex and ex.changed),
            changes=changes,
            errors=list(result.plan.errors) + result.problems,
            failed=failed,
            seconds=round(time.monotonic() - start, 3),
            **self._next_fields(delay),
        )
        return delay

    def _failed(self, trigger: str, error: str, start: float) -> float:
        self.failures += 1
        delay = self._next_delay()
        self.log.warning(
            "pass failed; backing off",
            trigger=trigger,
            error=error,
            attempt=self.failures,
            seconds=round(time.monotonic() - start, 3),
            **self._next_fields(delay),
        )
        return delay

    def _next_delay(self) -> float:
        """Interval ±10% jitter; after failures, exponential from 1s, capped at the interval."""
        if self.failures:
            return min(self.interval_s, 2.0 ** (self.failures - 1))
        return self.interval_s * random.uniform(0.9, 1.1)

    @staticmethod
    def _next_fields(delay: float) -> dict[str, str]:
        at = datetime.now(UTC) + timedelta(seconds=delay)
        return {
            "next_pass_in": format_seconds(round(delay, 3)),
            "next_pass_at": at.isoformat(timespec="seconds"),
        }

    # --- events -------------------------------------------------------------------------
    def ensure_watching(self) -> None:
        """(Re)start the file watches when the folders changed or a watch thread died."""
        desired = self.last_good.desired if self.last_good else None
        roots = watch_roots(self.files, desired, self.state_dir)
        if roots == self._roots and all(w.thread.is_alive() for w in self._watches):
            return
        self.close_watches()
        self._roots = roots
        for dirs, recursive in ((roots[0], True), (roots[1], False)):
            if dirs:
                self._watches.append(_FileWatch(dirs, recursive, self.triggers, self.state_dir))
        self.log.debug(
            "watching", recursive=sorted(map(str, roots[0])), flat=sorted(map(str, roots[1]))
        )

    def close_watches(self) -> None:
        for w in self._watches:
            w.stop.set()
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
            latest = time.monotonic() + self.debounce_s * MAX_DEBOUNCE_WAIT
            while not self.stop.is_set() and (now := time.monotonic()) < quiet_until:
                try:
                    self.triggers.get(timeout=max(0.0, min(quiet_until - now, 0.2)))
                    quiet_until = min(time.monotonic() + self.debounce_s, latest)
                except queue.Empty:
                    pass
            return "files"
        return None

    def run(self) -> None:
        self.ensure_watching()
        due, trigger = time.monotonic(), "start"
        while not self.stop.is_set():
            due = time.monotonic() + self.run_pass(trigger)
            next_trigger = self.next_trigger(due)
            if next_trigger is None:
                break
            trigger = next_trigger


def run_watch(args: argparse.Namespace, settings: Settings) -> int:
    """`podform watch`: pass now, on file change and every interval, until SIGINT/SIGTERM."""
    from reconciler import log as logging_setup
    from reconciler import report
    from reconciler.inventory import state_dir

    log = logging_setup.get()
    if "-" in args.files:
        log.error("watch cannot read manifests from stdin; name files or directories with -f")
        return 1
    try:
        interval_s, debounce_s = seconds(args.interval), seconds(args.debounce)
    except ValueError as exc:
        log.error("bad duration", error=str(exc))
        return 1
    stop = threading.Event()

    def on_signal(signum: int, _frame: Any) -> None:
        if stop.is_set() and signum == signal.SIGINT:
            os._exit(130)  # a second Ctrl-C: the user does not want to wait
        stop.set()  # only the Event: the handler must not take locks the loop may hold

    old = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    rec = Reconciler(settings, on_event=report.EventPrinter(sys.stderr, False), stop_event=stop)
    watcher = Watcher(
        args.files, rec, interval_s, debounce_s, log, Path(state_dir(settings.state_dir)).resolve()
    )
    log.info("watch started", files=args.files, interval=args.interval, debounce=args.debounce)
    try:
        watcher.run()
    finally:
        watcher.close_watches()
        rec.close()
        for s, h in old.items():
            signal.signal(s, h)
    log.info("watch stopped", passes=watcher.passes)
    return 0
