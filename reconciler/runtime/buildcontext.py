"""Build contexts: which files a build sees, their content hash, and the tar sent to Podman.

One walk decides the file list, and both the hash and the tar are made from that list, so
"the hash changed" and "the build input changed" can never disagree. Ignore files follow
Docker's .dockerignore rules (last match wins, `!` re-includes, `**` spans directories, a
pattern that matches a directory excludes what is below it); .containerignore wins over
.dockerignore, as in Podman.
"""

from __future__ import annotations

import contextlib
import hashlib
import heapq
import json
import os
import re
import stat
import tarfile
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

from reconciler.engine.hashing import canonical_json
from reconciler.errors import PermanentError
from reconciler.manifests.model import Build

CHUNK = 1 << 20  # bytes per read, and the largest piece of tar held in memory
IGNORE_FILES = (".containerignore", ".dockerignore")


@dataclass(frozen=True)
class _Rule:
    regex: re.Pattern[str]
    include: bool


def _compile(pattern: str) -> _Rule | None:
    include = pattern.startswith("!")
    pattern = pattern[1:].strip() if include else pattern
    pattern = os.path.normpath(pattern).lstrip("/")
    if pattern in ("", "."):
        return None
    out, i = [], 0
    while i < len(pattern):
        c = pattern[i]
        if pattern.startswith("**", i):
            out.append(".*")
            i += 2
            if pattern.startswith("/", i):
                out[-1] = "(?:.*/)?"
                i += 1
            continue
        out.append({"*": "[^/]*", "?": "[^/]"}.get(c) or (c if c in "[]-^" else re.escape(c)))
        i += 1
    return _Rule(re.compile("".join(out) + r"(?:/.*)?\Z"), include)


def read_ignore_rules(context: Path) -> list[_Rule]:
    for name in IGNORE_FILES:
        path = context / name
        if path.is_file():
            try:
                lines = path.read_text(encoding="utf-8").splitlines()
            except UnicodeDecodeError as exc:
                raise PermanentError(f"{path}: not valid UTF-8 at byte {exc.start}") from None
            except OSError as exc:
                raise PermanentError(f"{path}: cannot read: {exc.strerror or exc}") from None
            rules = []
            for number, ln in enumerate(lines, 1):
                if ln.strip() and not ln.startswith("#"):
                    try:
                        rules.append(_compile(ln.strip()))
                    except re.error as exc:
                        bad = f"{path}:{number}: invalid pattern {ln.strip()!r}: {exc.msg}"
                        raise PermanentError(bad) from None
            return [r for r in rules if r]
    return []


def _ignored(rel: str, rules: list[_Rule]) -> bool:
    ignored = False
    for rule in rules:
        if rule.regex.match(rel):
            ignored = not rule.include
    return ignored


def context_files(build: Build) -> list[str]:
    """Relative POSIX paths of every file and symlink the build sees, sorted; dirs implied."""
    rules = read_ignore_rules(build.context)
    containerfile = build.containerfile.relative_to(build.context).as_posix()
    found: list[str] = []
    for root, dirs, files in os.walk(build.context):
        rel_root = Path(root).relative_to(build.context).as_posix()
        prefix = "" if rel_root == "." else rel_root + "/"
        # A directory excluded by a rule can still hold a `!`-included file, so directories
        # are only pruned when no include rule exists (the common, fast case).
        if not any(r.include for r in rules):
            dirs[:] = [d for d in dirs if not _ignored(prefix + d, rules)]
        dirs.sort()
        for name in sorted(files):
            rel = prefix + name
            if rel == containerfile or not _ignored(rel, rules):
                found.append(rel)
        for d in dirs:
            if os.path.islink(os.path.join(root, d)) and not _ignored(prefix + d, rules):
                found.append(prefix + d)
    if containerfile not in found:
        found.append(containerfile)
    return sorted(found)


# --- special files --------------------------------------------------------------------------
def _kind(mode: int) -> str:
    if stat.S_ISFIFO(mode):
        return "a FIFO"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISCHR(mode):
        return "a character device"
    if stat.S_ISBLK(mode):
        return "a block device"
    return "not a regular file"


def _refuse(path: Path, mode: int) -> NoReturn:
    raise PermanentError(
        f"build context file {path} is {_kind(mode)}: only regular files, directories and "
        "symlinks can be sent to a build (list it in .containerignore to leave it out)"
    )


def context_entries(build: Build) -> list[tuple[str, os.stat_result]]:
    """context_files() with each one's lstat; FIFOs, sockets and device nodes are refused."""
    out = []
    for rel in context_files(build):
        path = build.context / rel
        try:
            st = path.lstat()
        except OSError as exc:
            raise PermanentError(f"build context file {path}: {exc.strerror}") from None
        if not (stat.S_ISREG(st.st_mode) or stat.S_ISLNK(st.st_mode)):
            _refuse(path, st.st_mode)
        out.append((rel, st))
    return out


def _open_regular(path: Path, st: os.stat_result) -> int:
    """A read fd on the very file lstat() saw. O_NONBLOCK: a FIFO swapped in cannot hang us."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError as exc:
        raise PermanentError(f"build context file {path}: {exc.strerror}") from None
    now = os.fstat(fd)
    if not stat.S_ISREG(now.st_mode):
        os.close(fd)
        _refuse(path, now.st_mode)
    if (now.st_dev, now.st_ino) != (st.st_dev, st.st_ino):
        os.close(fd)
        raise PermanentError(f"build context file {path} was replaced while podform read it")
    return fd


# --- the digest cache -----------------------------------------------------------------------
def _key(st: os.stat_result) -> list[int]:
    return [st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns]


class DigestCache:
    """(path, device, inode, size, mtime_ns, ctime_ns) -> SHA-256 of the bytes, like git's index.

    An unchanged file costs one lstat. Racy clean (git's rule): an entry whose mtime is not
    older than the cache file itself may have been written again within the same timestamp
    tick after it was hashed, so it is verified by reading, not trusted. `path=None` keeps
    nothing on disk. `files_read` counts the files actually read (tests and the bench use it).
    """

    VERSION = 1

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self.files_read = 0
        self._old: dict[str, list[Any]] = {}
        self._new: dict[str, list[Any]] = {}
        self._stamp = 0  # the cache file's mtime_ns: entries at or after it are racy
        self._dirty = False
        if path is not None:
            self._load(path)

    def _load(self, path: Path) -> None:
        try:
            with open(path, "rb") as f:
                stamp = os.fstat(f.fileno()).st_mtime_ns
                data = json.loads(f.read())
        except (OSError, ValueError):
            return  # no cache yet, or a damaged one: everything is hashed again
        if isinstance(data, dict) and data.get("version") == self.VERSION:
            entries = data.get("entries")
            if isinstance(entries, dict):
                self._old = entries
                self._stamp = stamp

    def digest(self, path: Path, st: os.stat_result) -> str:
        """The SHA-256 of the regular file `path` (whose lstat is `st`), from cache or read."""
        name = str(path)
        key = _key(st)
        entry = self._old.get(name)
        if (
            isinstance(entry, list)
            and len(entry) == 6
            and entry[:5] == key
            and st.st_mtime_ns < self._stamp
            and isinstance(entry[5], str)
        ):
            self._new[name] = entry
            return entry[5]
        digest, after = _hash_file(path, st)
        self.files_read += 1
        self._dirty = True
        if _key(after) == key:  # a file that changed while it was read is not remembered
            self._new[name] = [*key, digest]
        return digest

    def save(self) -> None:
        """Write the entries this walk used (atomically); stale ones drop out. Best effort."""
        if self.path is None or not (self._dirty or self._new.keys() != self._old.keys()):
            return
        data = json.dumps({"version": self.VERSION, "entries": self._new}, separators=(",", ":"))
        directory = self.path.parent
        try:
            fd, tmp = tempfile.mkstemp(prefix=".contexts-", dir=directory)
            try:
                with os.fdopen(fd, "w", encoding="utf-8") as f:
                    f.write(data)
                os.replace(tmp, self.path)
            except BaseException:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)
                raise
        except OSError:
            return  # a cache that cannot be written only costs a re-read next time
        self._old, self._dirty = dict(self._new), False


def _hash_file(path: Path, st: os.stat_result) -> tuple[str, os.stat_result]:
    """SHA-256 of at most st_size bytes read in chunks; and the fstat after reading."""
    fd = _open_regular(path, st)
    h = hashlib.sha256()
    buf = bytearray(CHUNK)
    view = memoryview(buf)
    left = st.st_size
    try:
        with open(fd, "rb", buffering=0, closefd=False) as f:
            while left > 0:
                n = f.readinto(view[: min(CHUNK, left)])
                if not n:
                    break  # shrank while read: fstat below differs, so it is not cached
                h.update(view[:n])
                left -= n
        return h.hexdigest(), os.fstat(fd)
    finally:
        os.close(fd)


# --- the content hash -----------------------------------------------------------------------
@dataclass(frozen=True)
class ContextDigest:
    """A context's content hash, its size in bytes, and its largest files (largest first)."""

    hash: str
    size: int
    largest: tuple[tuple[str, int], ...]


def digest_context(build: Build, cache: DigestCache | None = None) -> ContextDigest:
    """SHA-256 over (path, mode, bytes) of every admitted file, plus args and target."""
    cache = cache or DigestCache(None)
    h = hashlib.sha256()
    size = 0
    sizes: list[tuple[int, str]] = []
    for rel, st in context_entries(build):
        path = build.context / rel
        if stat.S_ISLNK(st.st_mode):
            digest = "link:" + os.readlink(path)
        else:
            digest = cache.digest(path, st)
            size += st.st_size
            sizes.append((st.st_size, rel))
        h.update(f"{rel}\0{st.st_mode:o}\0{digest}\n".encode())
    h.update(
        canonical_json(
            {
                "containerfile": build.containerfile.relative_to(build.context).as_posix(),
                "args": build.args,
                "target": build.target,
            }
        ).encode()
    )
    largest = tuple((rel, n) for n, rel in heapq.nlargest(3, sizes))
    return ContextDigest(h.hexdigest(), size, largest)


def content_hash(build: Build, cache: DigestCache | None = None) -> str:
    return digest_context(build, cache).hash


LARGE_CONTEXT = 1 << 30


def large_context_hint(image: str, context: Path, digest: ContextDigest) -> str | None:
    """The plan-time hint for a context over 1 GiB, naming its largest files; else None."""
    if digest.size <= LARGE_CONTEXT:
        return None
    shown = [(rel, n) for rel, n in digest.largest if n >= 1 << 20] or digest.largest[:1]
    files = ", ".join(f"{rel} ({human_bytes(n)})" for rel, n in shown)
    return (
        f"image {image}: build context {context} holds {human_bytes(digest.size)} "
        f"(largest: {files}); models are better mounted as volumes (or image volumes) "
        "than copied into images"
    )


def human_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GiB"


# --- the tar --------------------------------------------------------------------------------
class ContextTar:
    """The same files as content_hash(), as an uncompressed tar streamed in chunks.

    Iterable again on each retry (every iteration walks the context afresh). Memory stays at
    about one CHUNK whatever the context holds: headers come from TarInfo.tobuf() and file
    bytes are read and yielded piece by piece, never whole. Owners are root, times 0.
    """

    def __init__(self, build: Build) -> None:
        self.build = build

    def __iter__(self) -> Iterator[bytes]:
        pending = bytearray()
        total = 0  # bytes yielded so far, for the final padding to a whole tar record
        for rel, st in context_entries(self.build):
            path = self.build.context / rel
            info = tarfile.TarInfo(rel)
            info.mode = stat.S_IMODE(st.st_mode)
            info.uid = info.gid = 0
            info.uname = info.gname = "root"
            info.mtime = 0
            if stat.S_ISLNK(st.st_mode):
                info.type = tarfile.SYMTYPE
                info.linkname = os.readlink(path)
                pending += info.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape")
                continue
            info.size = st.st_size
            pending += info.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape")
            fd = _open_regular(path, st)
            try:
                left = st.st_size
                while left > 0:
                    data = os.read(fd, min(CHUNK, left))
                    if not data:
                        raise PermanentError(
                            f"build context file {path} shrank while it was sent to the build"
                        )
                    left -= len(data)
                    if len(pending) + len(data) <= CHUNK:
                        pending += data
                        continue
                    if pending:
                        total += len(pending)
                        yield bytes(pending)
                        pending.clear()
                    total += len(data)
                    yield data
            finally:
                os.close(fd)
            pending += bytes(-st.st_size % tarfile.BLOCKSIZE)
            if len(pending) >= CHUNK:
                total += len(pending)
                yield bytes(pending)
                pending.clear()
        # End of archive: two zero blocks, then zeros to a whole record, as tarfile writes it.
        pending += bytes(2 * tarfile.BLOCKSIZE)
        pending += bytes(-(total + len(pending)) % tarfile.RECORDSIZE)
        yield bytes(pending)


def context_tar(build: Build) -> ContextTar:
    return ContextTar(build)


__all__ = [
    "ContextDigest",
    "ContextTar",
    "DigestCache",
    "content_hash",
    "context_entries",
    "context_files",
    "context_tar",
    "digest_context",
    "large_context_hint",
]
