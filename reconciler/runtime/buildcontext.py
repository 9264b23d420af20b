"""Build contexts: which files a build sees, their content hash, and the tar sent to Podman.

One walk decides the file list, and both the hash and the tar are made from that list, so
"the hash changed" and "the build input changed" can never disagree. Ignore files follow
Docker's .dockerignore rules (last match wins, `!` re-includes, `**` spans directories, a
pattern that matches a directory excludes what is below it); .containerignore wins over
.dockerignore, as in Podman.
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import stat
import tarfile
from dataclasses import dataclass
from pathlib import Path

from reconciler.engine.hashing import canonical_json, sha256_hex
from reconciler.errors import PermanentError
from reconciler.manifests.model import Build

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


def content_hash(build: Build) -> str:
    """SHA-256 over (path, mode, bytes) of every admitted file, plus args and target."""
    h = hashlib.sha256()
    for rel in context_files(build):
        path = build.context / rel
        st = path.lstat()
        if stat.S_ISLNK(st.st_mode):
            digest = "link:" + os.readlink(path)
        else:
            digest = hashlib.sha256(path.read_bytes()).hexdigest()
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
    return h.hexdigest()


def context_tar(build: Build) -> bytes:
    """The same files as content_hash(), as an uncompressed tar with neutral owners/times."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for rel in context_files(build):
            info = tar.gettarinfo(str(build.context / rel), arcname=rel)
            info.uid = info.gid = 0
            info.uname = info.gname = "root"
            info.mtime = 0
            if info.isfile():
                with open(build.context / rel, "rb") as f:
                    tar.addfile(info, f)
            else:
                tar.addfile(info)
    return buf.getvalue()


__all__ = ["content_hash", "context_files", "context_tar", "sha256_hex"]
