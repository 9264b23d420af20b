"""Which files manifests come from, and reading them safely.

Beside loader.py, which parses what is read here: `-f` paths expanded (directories walked,
hidden and editor files skipped, the same file named twice read once, `-` for stdin) and regular
files read without ever blocking on a FIFO, socket or device.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Sequence
from pathlib import Path

from reconciler.errors import Issue

STDIN = "-"


# --- Reading files -------------------------------------------------------------------------------

_FILE_TYPES = (
    (stat.S_ISFIFO, "a FIFO (named pipe)"),
    (stat.S_ISSOCK, "a socket"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISDIR, "a directory"),
)


def _not_regular(mode: int) -> str | None:
    if stat.S_ISREG(mode):
        return None
    return next((what for test, what in _FILE_TYPES if test(mode)), "not a regular file")


def read_regular_file(path: Path | str, limit: int) -> bytes:
    """At most `limit` bytes of the regular file at `path` (symlinks followed).

    Anything else raises OSError with a message for the user, and never blocks: a FIFO, socket
    or device is refused by its type before it is read (and opened non-blocking, so one swapped
    in between is refused too), a symlink loop fails with ELOOP. Manifests and env files are
    read through here.
    """
    st = os.stat(path)  # follows symlinks; a loop raises ELOOP here
    what = _not_regular(st.st_mode)
    if what is not None:
        raise OSError(errno.EINVAL, f"is {what}, not a regular file", str(path))
    flags = os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | getattr(os, "O_CLOEXEC", 0)
    fd = os.open(path, flags)
    try:
        what = _not_regular(os.fstat(fd).st_mode)
        if what is not None:
            raise OSError(errno.EINVAL, f"is {what}, not a regular file", str(path))
        os.set_blocking(fd, True)
        chunks: list[bytes] = []
        left = limit
        while left > 0 and (chunk := os.read(fd, min(left, 1 << 16))):
            chunks.append(chunk)
            left -= len(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)


def read_problem(display: str, exc: OSError) -> str:
    if exc.errno == errno.ELOOP:
        return f"{display}: cannot read: symbolic link loop"
    return f"{display}: cannot read: {exc.strerror or exc}"


def _identity(path: Path) -> object:
    """What makes two spellings the same file; a path that cannot be stat'ed is its own."""
    try:
        st = os.stat(path)
    except OSError:
        return os.path.abspath(path)
    return (st.st_dev, st.st_ino)


# --- Finding files -------------------------------------------------------------------------------


def _skipped(name: str) -> bool:
    """Hidden entries and editor leftovers (vim `.x.swp`, emacs `x~`, `#x#`, `.#x`)."""
    return (
        name.startswith(".") or name.endswith("~") or (name.startswith("#") and name.endswith("#"))
    )


def _walk(root: Path, issues: list[Issue]) -> list[Path]:
    """Manifest files below `root`, relative to it, sorted by path components."""

    def unreadable(exc: OSError) -> None:
        # A silently missing subdirectory would look like deleted manifests to prune.
        issues.append(Issue(f"{exc.filename}: cannot read directory: {exc.strerror}"))

    found: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(root, onerror=unreadable):
        dirnames[:] = [d for d in dirnames if not _skipped(d)]
        for name in filenames:
            if name.endswith((".yaml", ".yml")) and not _skipped(name):
                found.append(Path(dirpath, name).relative_to(root))
    return sorted(found, key=lambda p: p.parts)


def manifest_sources(paths: Sequence[str], issues: list[Issue]) -> list[tuple[str, Path | None]]:
    """(display name, file) for every file to read, in order; the file is None for stdin."""
    seen: set[object] = set()
    sources: list[tuple[str, Path | None]] = []
    for given in paths:
        if given == STDIN:
            sources.append((STDIN, None))
            continue
        root = Path(given)
        if root.is_dir():
            files = [(os.path.join(given, *rel.parts), root / rel) for rel in _walk(root, issues)]
        elif root.exists() or root.is_symlink():  # named explicitly: read whatever its extension
            files = [(given, root)]  # a dangling link or a loop is reported when it is read
        else:
            issues.append(Issue(f"{given}: no such file or directory"))
            continue
        for display, path in files:
            identity = _identity(path)
            if identity not in seen:  # `-f a.yaml -f .` must not declare everything twice
                seen.add(identity)
                sources.append((display, path))
    return sources


def manifest_files(paths: Sequence[str]) -> list[Path]:
    """The files `load_manifests(paths)` would read, as the user named them (stdin left out)."""
    return [path for _, path in manifest_sources(paths, []) if path is not None]
