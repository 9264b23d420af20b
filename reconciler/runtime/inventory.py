"""The per-stack inventory file and the lock that serialises applies of one stack.

Sits beside the executor: the orchestrator loads the inventory before planning (the planner prunes
only what it records) and saves it after executing. A missing or unreadable inventory is
reported as `Recorded(valid=False)`, never as "nothing is ours", so prune is skipped rather
than everything being recreated. Writes are atomic (temp file in the same directory, fsync,
os.replace, fsync of the directory) and private (0600 in a 0700 directory, whatever the
umask). The lock is an flock on a separate file, so the kernel frees it when its holder dies.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import secrets
import shlex
import stat
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from reconciler.engine.hashing import masked_spec
from reconciler.engine.observed import ProbeResult, Recorded, RecordedContainer
from reconciler.errors import LockHeld, PodformError
from reconciler.redact import strip_url_credentials

VERSION = 1
_POLL_SECONDS = 0.05  # how often a waiting lock() retries: a freed lock is taken quickly
_CONTAINER_STRINGS = ("id", "workload", "connection", "probe")
_PROBE_RESULTS = frozenset(p.value for p in ProbeResult)


def state_dir(explicit: str | None) -> Path:
    """`--state-dir`, else $PODFORM_STATE_DIR, else $XDG_STATE_HOME/podform, else
    ~/.local/state/podform; created (0700) when missing."""
    chosen = explicit or os.environ.get("PODFORM_STATE_DIR")
    if chosen:
        path = Path(chosen).expanduser()
    else:
        xdg = os.environ.get("XDG_STATE_HOME")
        path = (Path(xdg) if xdg else Path.home() / ".local" / "state") / "podform"
    _ensure_private_dir(path)
    return path


def _ensure_private_dir(path: Path) -> None:
    if path.is_dir():
        return
    try:
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
        # mkdir's mode is filtered by the umask, which may even strip the owner's own bits.
        os.chmod(path, 0o700)
    except OSError as exc:
        raise PodformError(f"cannot create state directory {path}: {exc.strerror}") from exc


def _open_nofollow(path: Path, flags: int, what: str) -> int:
    """os.open that refuses a symlink at `path` with a PodformError naming it."""
    try:
        return os.open(path, flags | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise PodformError(f"{what} {path} is a symlink; refusing to follow it") from exc
        raise


def _check_owned_file(fd: int, path: Path, what: str) -> None:
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode):
        raise PodformError(f"{what} {path} is not a regular file")
    if st.st_uid != os.getuid():
        raise PodformError(f"{what} {path} is owned by uid {st.st_uid}, not by this user")


def _mappings(data: dict[str, Any], key: str) -> dict[str, Any]:
    value = data.get(key, {})
    if not isinstance(value, dict) or not all(isinstance(v, dict) for v in value.values()):
        raise ValueError(f"{key!r} is not a mapping of names to mappings")
    return value


def _decode(data: object, stack: str) -> Recorded:
    """The Recorded value in a parsed inventory document; ValueError says what is wrong."""
    if not isinstance(data, dict):
        raise ValueError("top level is not a JSON object")
    if data.get("version") != VERSION:
        raise ValueError(f"unsupported version {data.get('version')!r} (expected {VERSION})")
    if data.get("stack") != stack:
        raise ValueError(f"it belongs to stack {data.get('stack')!r}, not {stack!r}")
    containers: dict[str, RecordedContainer] = {}
    for name, c in _mappings(data, "containers").items():
        ident, workload, connection, probe = (c.get(k, "") for k in _CONTAINER_STRINGS)
        spec = c.get("spec", {})
        strings = (ident, workload, connection, probe)
        if not isinstance(spec, dict) or not all(isinstance(v, str) for v in strings):
            raise ValueError(f"container {name!r} has malformed fields")
        if probe not in _PROBE_RESULTS:
            raise ValueError(f"container {name!r} has malformed fields")
        starts = c.get("starts", 0)
        if not isinstance(starts, int) or isinstance(starts, bool):
            raise ValueError(f"container {name!r} has malformed fields")
        containers[name] = RecordedContainer(
            ident, workload, connection, spec, ProbeResult(probe), starts
        )
    secret_key = data.get("secret_key", "")
    if not isinstance(secret_key, str):
        raise ValueError("'secret_key' is not a string")
    return Recorded(
        valid=True,
        containers=containers,
        images=_mappings(data, "images"),
        volumes=_mappings(data, "volumes"),
        machines=_mappings(data, "machines"),
        networks=_mappings(data, "networks"),
        secrets=_mappings(data, "secrets"),
        secret_key=secret_key,
        revision=_revision(data),
    )


def _revision(data: dict[str, Any]) -> dict[str, str]:
    value = data.get("revision", {})
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        raise ValueError("'revision' is not a mapping of strings")
    return value


class Inventory:
    """`<directory>/<stack>.json` and its lock file `<directory>/<stack>.lock`."""

    def __init__(self, directory: Path, stack: str) -> None:
        if not stack or "/" in stack or stack.startswith("."):  # must stay inside `directory`
            raise PodformError(f"stack name {stack!r} cannot name an inventory file")
        self.directory = directory
        self.stack = stack
        self.path = directory / f"{stack}.json"
        self.lock_path = directory / f"{stack}.lock"
        self.problem = ""  # why the last load() returned valid=False; "" when it did not

    def exists(self) -> bool:
        return os.path.lexists(self.path)

    def load(self) -> Recorded:
        """What the inventory records; valid=False (and `problem` set) when it cannot be trusted."""
        self.problem = ""
        try:
            fd = _open_nofollow(self.path, os.O_RDONLY, "inventory")
        except FileNotFoundError:
            self.problem = f"no inventory at {self.path} yet: nothing is recorded for this stack"
            return Recorded(valid=False)
        except (OSError, PodformError) as exc:
            self.problem = str(exc) if isinstance(exc, PodformError) else f"{self.path}: {exc}"
            return Recorded(valid=False)
        try:
            with os.fdopen(fd, "rb") as f:
                _check_owned_file(f.fileno(), self.path, "inventory")
                recorded = _decode(json.loads(f.read()), self.stack)
        except PodformError as exc:
            self.problem = str(exc)
            return Recorded(valid=False)
        except (OSError, ValueError) as exc:  # JSONDecodeError and UnicodeError are ValueErrors
            self.problem = f"inventory {self.path} is unreadable ({exc}); prune is skipped"
            return Recorded(valid=False)
        return recorded

    def save(self, recorded: Recorded) -> None:
        """Write `recorded` atomically; the old file stays whole if anything fails."""
        _ensure_private_dir(self.directory)
        with contextlib.suppress(FileNotFoundError):
            st = os.lstat(self.path)
            if stat.S_ISLNK(st.st_mode):
                raise PodformError(f"inventory {self.path} is a symlink; refusing to replace it")
            if st.st_uid != os.getuid():
                raise PodformError(f"inventory {self.path} is owned by uid {st.st_uid}; refusing")
        document = {
            "version": VERSION,
            "stack": self.stack,
            "updated": datetime.now(UTC).isoformat(timespec="seconds"),
            "containers": {
                name: {
                    "id": c.id,
                    "workload": c.workload,
                    "connection": c.connection,
                    "spec": masked_spec(c.spec),  # last line of defence
                    "probe": c.probe,
                    "starts": c.starts,
                }
                for name, c in recorded.containers.items()
            },
            "images": recorded.images,
            "volumes": recorded.volumes,
            "machines": recorded.machines,
        }
        # Written only when used, so inventories of stacks without them keep their shape.
        for key, value in (
            ("networks", recorded.networks),
            ("secrets", recorded.secrets),
            ("secret_key", recorded.secret_key),
        ):
            if value:
                document[key] = value
        if recorded.revision:
            document["revision"] = recorded.revision
        payload = (json.dumps(document, sort_keys=True, indent=2) + "\n").encode()
        # A unique name per writer, so concurrent saves never share a temp file.
        tmp = self.directory / f".{self.stack}.json.{os.getpid()}.{secrets.token_hex(4)}.tmp"
        try:
            fd = _open_nofollow(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, "temporary inventory")
            try:
                os.fchmod(fd, 0o600)  # exact, whatever the umask filtered from the open mode
                with os.fdopen(fd, "wb") as f:
                    f.write(payload)
                    f.flush()
                    os.fsync(f.fileno())
                os.replace(tmp, self.path)
            except BaseException:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)
                raise
            dir_fd = os.open(self.directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
            try:
                os.fsync(dir_fd)  # make the rename itself durable
            finally:
                os.close(dir_fd)
        except OSError as exc:
            raise PodformError(f"cannot write inventory {self.path}: {exc}") from exc

    def lock(self, timeout: float = 0.0) -> contextlib.AbstractContextManager[None]:
        """Hold this stack's exclusive lock; wait up to `timeout` seconds, then raise LockHeld."""
        return self._locked(timeout)

    @contextlib.contextmanager
    def _locked(self, timeout: float) -> Iterator[None]:
        _ensure_private_dir(self.directory)
        try:
            fd = _open_nofollow(self.lock_path, os.O_RDWR | os.O_CREAT, "lock file")
        except OSError as exc:
            raise PodformError(f"cannot open lock file {self.lock_path}: {exc}") from exc
        try:
            _check_owned_file(fd, self.lock_path, "lock file")
            deadline = time.monotonic() + timeout
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        raise self._held(fd) from None
                    time.sleep(min(_POLL_SECONDS, remaining))
            # The file is never deleted (unlinking flock files races); its content names the holder.
            try:
                os.ftruncate(fd, 0)
                command = strip_url_credentials(shlex.join(sys.argv))  # e.g. sync --repo URL
                os.pwrite(fd, f"{os.getpid()}\n{command}\n".encode(), 0)
            except OSError as exc:  # a full disk: no pass could save its inventory either
                fcntl.flock(fd, fcntl.LOCK_UN)
                raise PodformError(
                    f"cannot write lock file {self.lock_path}: {exc.strerror or exc}"
                ) from None
            try:
                yield
            finally:
                with contextlib.suppress(OSError):
                    os.ftruncate(fd, 0)  # no stale pid once released
                fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)

    def _held(self, fd: int) -> LockHeld:
        pid, _, cmd = os.pread(fd, 4096, 0).decode(errors="replace").partition("\n")
        return LockHeld(
            f"stack {self.stack!r} is locked by pid {pid.strip() or 'unknown'} "
            f"({cmd.strip() or 'unknown command'}); another podform apply is running — "
            "wait for it or pass --lock-timeout"
        )
