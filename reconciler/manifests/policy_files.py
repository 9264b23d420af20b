"""Policy checks that look at the local filesystem: device paths, CDI names, build contexts.

Part of the static security policy (policy.py calls these per document); each yields
Findings, (JSON path, message) pairs. Device paths are resolved (symlinks) and stat-ed; build
contexts are walked for symlinks leaving them, never read.
"""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from reconciler.manifests.hostpath import find_repo_root, lexical, normalize_host_path
from reconciler.manifests.jsonpath import JsonPath
from reconciler.manifests.loader import Document

Finding = tuple[JsonPath, str]  # where in the document, and what is wrong there

PRIVILEGE_FIX = "privileged containers need the Stack's spec.policy.allowPrivileged: true"
# CDI qualified device name vendor.tld/class=name (container-device-interface parser).
CDI_NAME_RE = re.compile(r"[a-zA-Z][a-zA-Z0-9_.-]*/[a-zA-Z][a-zA-Z0-9_.-]*=[a-zA-Z0-9_.:-]+")
FORBIDDEN_DEVICES = frozenset({"/dev/mem", "/dev/kmem", "/dev/port"})
# Disks, partitions and their aliases: raw access to them is access to every file on the host.
_BLOCK_DEVICE_RE = re.compile(
    r"/dev/(?:(?:sd|hd|vd|xvd)[a-z].*|nvme\d.*|mmcblk\d.*|loop.*|dm-.*|md.*|nbd\d.*|sr\d+|sg\d+"
    r"|(?:disk|mapper|block)(?:/.*)?)"
)
MAX_CONTEXT_ENTRIES = 20_000


def check_cdi(at: JsonPath, entry: str) -> Iterator[Finding]:
    if not CDI_NAME_RE.fullmatch(entry):
        yield (
            at,
            (
                f"{entry!r} is neither a /dev path nor a CDI device name"
                " (vendor.tld/class=name, e.g. nvidia.com/gpu=all)"
            ),
        )


def check_device_path(at: JsonPath, entry: str, allow: bool) -> Iterator[Finding]:
    parts = entry.split(":")
    if len(parts) > 3 or (len(parts) == 3 and not set(parts[2]) <= set("rwm")):
        yield at, f"device {entry!r}: expected /dev/host[:/dev/container[:rwm]]"
        return
    host = lexical(parts[0])
    if len(parts) > 1 and not lexical(parts[1]).startswith("/dev/"):
        yield at, f"device {entry!r}: the container path {parts[1]} must be under /dev"
    if not host.startswith("/dev/"):
        yield at, f"device {parts[0]} is refused: device paths must be under /dev"
        return
    resolved = os.path.realpath(host)
    if not resolved.startswith("/dev/"):
        yield at, f"device {parts[0]} is refused: it is a symlink that resolves outside /dev"
        return
    if host in FORBIDDEN_DEVICES or resolved in FORBIDDEN_DEVICES:
        yield at, f"device {parts[0]} is refused: it exposes the host's memory or I/O ports"
        return
    if allow:
        return
    if (
        _BLOCK_DEVICE_RE.fullmatch(host)
        or _BLOCK_DEVICE_RE.fullmatch(resolved)
        or _is_block(resolved)
    ):
        yield (
            at,
            f"device {parts[0]} is refused: block devices give raw disk access; {PRIVILEGE_FIX}",
        )


def _is_block(path: str) -> bool:
    try:
        return stat.S_ISBLK(os.stat(path).st_mode)
    except OSError:
        return False  # absent here; it may exist on the machine that runs the workload


def check_build(doc: Document, build: dict[str, Any]) -> Iterator[Finding]:
    raw_context = build.get("context", ".")
    if not isinstance(raw_context, str):
        return
    at: JsonPath = ("spec", "build", "context")
    repo = find_repo_root(doc.base_dir)
    root = repo or Path(os.path.realpath(doc.base_dir))
    where = f"the git repository {root}" if repo else f"the manifest's folder {root}"
    context = normalize_host_path(raw_context, doc.base_dir)
    if not context.is_relative_to(root):
        yield at, f"build context {raw_context} is refused: it must stay inside {where}"
        return
    if not context.is_dir():
        what = "is not a directory" if context.exists() else "does not exist"
        yield at, f"build context {raw_context} {what}"
        return
    containerfile = build.get("containerfile")
    if isinstance(containerfile, str):
        cf_at: JsonPath = ("spec", "build", "containerfile")
        resolved = normalize_host_path(containerfile, context)
        if not resolved.is_relative_to(context):
            yield (
                cf_at,
                f"containerfile {containerfile} is refused: it must stay inside the build context",
            )
        elif not resolved.is_file():
            yield (
                cf_at,
                f"containerfile {containerfile} does not exist in build context {raw_context}",
            )
    elif not any((context / name).is_file() for name in ("Containerfile", "Dockerfile")):
        # Else plan fails later with no location ("build context file .../Containerfile: ...").
        yield (
            at,
            f"build context {raw_context} has no Containerfile or Dockerfile;"
            " add one, or name it with spec.build.containerfile",
        )
    yield from ((at, message) for message in _context_symlinks(context, raw_context))


def _context_symlinks(context: Path, raw_context: str) -> Iterator[str]:
    """Symlinks leaving the context. Only link targets' paths are resolved, never read."""
    errors: list[OSError] = []
    seen = 0
    for directory, dirs, files in os.walk(context, onerror=errors.append):
        # A clone never writes symlinks into .git, and its objects would eat the entry budget.
        if ".git" in dirs:
            dirs.remove(".git")
        for entry in (*dirs, *files):
            seen += 1
            if seen > MAX_CONTEXT_ENTRIES:
                yield f"build context has more than {MAX_CONTEXT_ENTRIES} files"
                return
            path = os.path.join(directory, entry)
            if os.path.islink(path) and not Path(os.path.realpath(path)).is_relative_to(context):
                link = os.path.relpath(path, context)
                yield f"symlink {link} in build context {raw_context} points outside the build context"
    for error in errors:
        yield f"build context {raw_context} cannot be read: {error.strerror}"
