"""Host paths as manifests write them: normalised, resolved, and told apart from volume names.

Shared by the policy checks, the builder and the model's env and secret files. Resolving a
path reads the local filesystem (symlinks); nothing else here touches it.
"""

from __future__ import annotations

import os
import posixpath
from pathlib import Path


def normalize_host_path(raw: str, base_dir: Path) -> Path:
    """`raw` as the host sees it: `~` expanded, relative to base_dir, `..` and symlinks resolved."""
    return Path(os.path.realpath(os.path.join(base_dir, os.path.expanduser(raw))))


def find_repo_root(start: Path) -> Path | None:
    """The nearest directory at or above `start` holding `.git` (a directory, or a worktree file)."""
    start = Path(os.path.realpath(start))
    for directory in (start, *start.parents):
        if (directory / ".git").exists():
            return directory
    return None


def is_bind_source(source: str) -> bool:
    """Whether the source of a `source:target` volume is a host path rather than a volume name."""
    return source in (".", "..") or source.startswith(("/", "./", "../", "~"))


def lexical(path: str) -> str:
    """`..`, `.` and repeated slashes collapsed without touching the filesystem."""
    normal = posixpath.normpath(path)
    # POSIX keeps exactly two leading slashes as implementation-defined; Linux treats them as one.
    return "/" + normal.lstrip("/") if normal.startswith("/") else normal


def under(path: str, root: str) -> bool:
    """`path` is `root` or below it (both lexical, absolute)."""
    return path == root or path.startswith(root.rstrip("/") + "/")
