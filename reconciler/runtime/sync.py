"""`podform sync`'s loop: fetch a git ref, apply each new revision, keep the last good one.

Sits on top of the orchestrator (the same load_desired, Reconciler and per-stack lock as
`apply`) and the git backend; the CLI gives it a logger, a stop event and a Reconciler.
Level-based like watch: every pass fetches, then applies the revision in force, so drift is
corrected on the interval even when the repository did not move. A new commit is checked out
into a fresh tree and loaded all-or-nothing; one that fails to verify, load or validate is
reported once (sha and reason) and the last good revision stays in force, nothing pruned.

State, under `<state dir>/sync/<key>/` (key: hash of URL without credentials, ref and path):
`repo.git` (bare, no remote configured), `trees/<sha>` (the last good tree and the one being
tried) and `sync.json` (the last good sha). The applied revision is in the stack's inventory.
"""

from __future__ import annotations

import contextlib
import enum
import fcntl
import hashlib
import json
import os
import random
import threading
import time
import traceback
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path, PurePosixPath
from typing import Any

from reconciler.errors import InvalidInput, PodformError
from reconciler.manifests.model import Desired
from reconciler.manifests.units import format_seconds
from reconciler.runtime.backends.git import GitRepo, Remote, check_ref
from reconciler.runtime.orchestrator import Reconciler, load_desired

MAX_BACKOFF_S = 300.0  # failures back off exponentially up to max(interval, this)


class Outcome(enum.Enum):
    """How one pass ended; `--once` exits 0 for the first two."""

    APPLIED = "applied"  # the revision in force was applied (new, or nothing new)
    NOTHING = "nothing"  # stopped before applying, nothing was wrong
    REJECTED = "rejected"  # the fetched revision was refused (the last good one may still run)
    FAILED = "failed"  # fetch or apply failed


@dataclass(frozen=True)
class Source:
    """What to follow: a remote, a ref on it, a folder in it, optionally signed commits."""

    remote: Remote
    ref: str = "main"
    path: str = "."
    allowed_signers: Path | None = None

    def __post_init__(self) -> None:
        check_ref(self.ref)
        p = PurePosixPath(self.path)
        if p.is_absolute() or ".." in p.parts:
            raise PodformError(f"--path {self.path!r} must be a folder inside the repository")
        if self.allowed_signers is not None and not self.allowed_signers.is_file():
            raise PodformError(f"allowed signers file {self.allowed_signers} does not exist")

    @property
    def key(self) -> str:
        text = f"{self.remote.url}\0{self.ref}\0{PurePosixPath(self.path)}"
        return hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Revision:
    """A commit that loaded and validated, with the desired state built from its tree."""

    sha: str
    tree: Path
    desired: Desired


class Syncer:
    """The loop's state: the clone, the revision in force, the last refusal, failures."""

    def __init__(
        self,
        source: Source,
        reconciler: Reconciler,
        state_root: Path,
        interval_s: float,
        log: Any,
        once: bool = False,
    ) -> None:
        self.source, self.rec, self.log = source, reconciler, log
        self.once = once  # `--once`: no next fetch to announce
        self.stop: threading.Event = reconciler.stop_event
        self.interval_s = interval_s
        self.dir = state_root / "sync" / source.key
        self.repo = GitRepo(self.dir / "repo.git", source.remote)
        self.current: Revision | None = None  # last good: in force while newer ones are refused
        self.refused: str | None = None  # sha reported as refused (reported once)
        self.failures = 0
        self.passes = 0
        self.next_delay = interval_s

    # --- state ------------------------------------------------------------------------
    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """One sync per (url, ref, path): a second one would fight over the clone."""
        self.dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(self.dir / "sync.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise PodformError(
                    f"another podform sync of {self.source.remote.url} ({self.source.ref}) "
                    f"is running (lock {self.dir / 'sync.lock'})"
                ) from None
            yield
        finally:
            os.close(fd)

    def _tree(self, sha: str) -> Path:
        return self.dir / "trees" / sha

    def _saved_sha(self) -> str:
        with contextlib.suppress(OSError, ValueError, AttributeError):
            sha = json.loads((self.dir / "sync.json").read_text()).get("last_good", "")
            return sha if isinstance(sha, str) else ""
        return ""

    def _save(self) -> None:
        assert self.current is not None
        doc = {
            "url": self.source.remote.url,
            "ref": self.source.ref,
            "path": self.source.path,
            "last_good": self.current.sha,
            "stack": self.current.desired.stack.name,
        }
        tmp = self.dir / "sync.json.tmp"
        tmp.write_text(json.dumps(doc, indent=2) + "\n")
        os.replace(tmp, self.dir / "sync.json")

    def restore(self) -> None:
        """After a restart, the last good revision is in force again (if it still loads)."""
        self.repo.ensure()
        sha = self._saved_sha()
        if sha and self.repo.has_commit(sha):
            try:
                self.current = self._load(sha)
            except PodformError as exc:  # InvalidInput and GitFailed included
                self.log.warning("last good revision no longer loads", sha=sha, error=str(exc))
        self._prune_trees()

    def _prune_trees(self) -> None:
        keep = {self.current.tree} if self.current else set()
        trees = self.dir / "trees"
        for tree in sorted(trees.iterdir()) if trees.is_dir() else []:
            if tree not in keep:
                self.repo.remove_tree(tree)

    # --- one revision -----------------------------------------------------------------
    def _load(self, sha: str) -> Revision:
        """Verify (when asked), check SHA out into a fresh tree, load it all-or-nothing."""
        if self.source.allowed_signers is not None:
            why = self.repo.verify_commit(sha, self.source.allowed_signers)
            if why:
                raise PodformError(f"signature refused: {why}")
        tree = self._tree(sha)
        self.repo.checkout(sha, tree)
        folder = tree / self.source.path
        if not folder.is_dir():
            raise PodformError(f"{self.source.path!r} is not a folder in this revision")
        desired = load_desired([str(folder)])
        if not desired.files:  # a wrong --path or an emptied repo is no order to remove all
            raise PodformError(f"no manifest documents under {self.source.path!r}")
        return Revision(sha, tree, desired)

    def _revision_record(self, target: Revision) -> dict[str, str]:
        """The inventory's revision entry; its time is when this sha was first applied."""
        recorded = self.rec.inventory(target.desired).load().revision
        entry = {
            "url": self.source.remote.url,
            "ref": self.source.ref,
            "path": self.source.path,
            "sha": target.sha,
        }
        if recorded.get("time") and all(recorded.get(k) == v for k, v in entry.items()):
            return {**entry, "time": recorded["time"]}
        return {**entry, "time": datetime.now(UTC).isoformat(timespec="seconds")}

    # --- one pass ---------------------------------------------------------------------
    def run_pass(self) -> Outcome:
        """Fetch; take up a new commit if it loads; apply the revision in force."""
        start = time.monotonic()
        try:
            self.repo.ensure()
            sha = self.repo.fetch(self.source.ref)
        except PodformError as exc:
            self._finish(start, False, "fetch failed", error=str(exc))
            return Outcome.FAILED
        new = refused_now = False
        if (self.current is None or sha != self.current.sha) and sha != self.refused:
            try:
                candidate = self._load(sha)
            except InvalidInput as exc:
                self._refuse(sha, [str(i) for i in exc.issues])
                refused_now = True
            except PodformError as exc:
                self._refuse(sha, [self.source.remote.scrub(str(exc))])
                refused_now = True
            else:
                previous = self.current.sha if self.current else None
                old_stack = self.current.desired.stack.name if self.current else None
                if old_stack not in (None, candidate.desired.stack.name):
                    self.log.warning(
                        "stack renamed",
                        old=old_stack,
                        new=candidate.desired.stack.name,
                        note=f"stack {old_stack!r} is left as it is; remove it with podform delete",
                    )
                self.current, self.refused, new = candidate, None, True
                self._save()
                self._prune_trees()
                self.log.info("new revision", sha=sha, previous=previous, ref=self.source.ref)
        if self.current is None:
            self._finish(start, True, "no good revision to apply yet", fetched=sha)
            return Outcome.REJECTED
        if self.stop.is_set():
            return Outcome.REJECTED if refused_now else Outcome.NOTHING
        target = self.current
        try:
            result = self.rec.apply(target.desired, revision=self._revision_record(target))
        except PodformError as exc:  # Podman down, lock held, ...: back off and try again
            self._finish(start, False, "apply failed", sha=target.sha, error=str(exc))
            return Outcome.FAILED
        except Exception as exc:  # a bug must not end the loop; the next pass may succeed
            self.log.error("internal error", sha=target.sha, traceback=traceback.format_exc())
            self._finish(start, False, "apply failed", sha=target.sha, error=repr(exc))
            return Outcome.FAILED
        self.passes += 1
        self._finish(
            start,
            result.ok,
            "revision applied" if result.ok else "apply failed",
            sha=target.sha,
            stack=target.desired.stack.name,
            new_revision=new,
            fetched=sha,
            using_last_good=sha != target.sha,
            **result.log_fields(),
        )
        if not result.ok:
            return Outcome.FAILED
        return Outcome.REJECTED if refused_now else Outcome.APPLIED

    def _refuse(self, sha: str, problems: list[str]) -> None:
        """Report a refused revision once; the revision in force stays, nothing is pruned."""
        self.refused = sha
        inside = f"{self._tree(sha)}/"  # locations relative to the repository's root
        problems = [p.replace(inside, "") for p in problems]
        if self._tree(sha).exists():
            self.repo.remove_tree(self._tree(sha))
        self.log.error(
            "revision refused",
            sha=sha,
            ref=self.source.ref,
            problems=problems,
            keeping=self.current.sha if self.current else None,
            note="the last good revision stays in force; nothing is pruned",
        )

    def _finish(self, start: float, ok: bool, event: str, **fields: Any) -> None:
        """Log the pass (what, which revision, how long, when the next fetch is)."""
        self.failures = 0 if ok else self.failures + 1
        self.next_delay = self._next_delay()
        when = {
            "next_fetch_in": format_seconds(round(self.next_delay, 3)),
            "next_fetch_at": (datetime.now(UTC) + timedelta(seconds=self.next_delay)).isoformat(
                "T", "seconds"
            ),
        }
        (self.log.info if ok else self.log.warning)(
            event,
            url=self.source.remote.url,
            ref=self.source.ref,
            **fields,
            consecutive_failures=self.failures,
            seconds=round(time.monotonic() - start, 3),
            **({} if self.once else when),
        )

    def _next_delay(self) -> float:
        """Interval ±10% jitter; after failures, the interval doubled per failure, capped."""
        base = self.interval_s
        if self.failures:
            cap = max(self.interval_s, MAX_BACKOFF_S)
            base = min(cap, self.interval_s * 2.0 ** (self.failures - 1))
        return base * random.uniform(0.9, 1.1)

    def run(self) -> None:
        """Pass, wait, pass ... until the stop event is set (a running pass finishes first)."""
        while not self.stop.is_set():
            self.run_pass()
            self.stop.wait(self.next_delay)
