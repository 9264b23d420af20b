"""Build contexts at model scale: the digest cache (and git's racy-clean rule), special files,
files the ignore file leaves out, the streamed tar's memory, symlinks, and the >1 GiB hint."""

from __future__ import annotations

import hashlib
import io
import json
import os
import signal
import socket
import tarfile
import tracemalloc
from collections.abc import Iterator
from pathlib import Path

import pytest

from reconciler.errors import PermanentError
from reconciler.manifests.model import Build
from reconciler.runtime.buildcontext import (
    ContextDigest,
    DigestCache,
    content_hash,
    context_files,
    context_tar,
    digest_context,
    large_context_hint,
)
from reconciler.runtime.orchestrator import content_hashes, load_desired

MiB = 1 << 20
HOUR_AGO_NS = 3600 * 10**9


@pytest.fixture(autouse=True)
def _never_hang() -> Iterator[None]:
    """A FIFO read by mistake blocks forever; SIGALRM turns that into a failure."""

    def fail(*_: object) -> None:
        raise TimeoutError("build context handling hung")

    old = signal.signal(signal.SIGALRM, fail)
    signal.alarm(60)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, old)


def context(tmp_path: Path, **files: bytes) -> Build:
    """A context with a Containerfile and FILES, every mtime an hour back (clear of racy)."""
    ctx = tmp_path / "ctx"
    ctx.mkdir(parents=True, exist_ok=True)
    (ctx / "Containerfile").write_text("FROM scratch\nCOPY . /\n")
    for name, data in files.items():
        (ctx / name).parent.mkdir(parents=True, exist_ok=True)
        (ctx / name).write_bytes(data)
    age_all(ctx)
    return Build(ctx, ctx / "Containerfile", {}, None)


def age_all(ctx: Path) -> None:
    for p in [ctx, *ctx.rglob("*")]:
        if not p.is_symlink():
            st = p.stat()
            os.utime(p, ns=(st.st_atime_ns, st.st_mtime_ns - HOUR_AGO_NS))


def test_unchanged_files_are_not_read_again(tmp_path: Path) -> None:
    """A second hash with the cache reads no file, and gives the same hash as without it."""
    build = context(tmp_path, **{"model.bin": b"m" * (3 * MiB), "src/app.py": b"x"})
    cache_file = tmp_path / "state" / "s.contexts.json"
    cache_file.parent.mkdir()
    first = DigestCache(cache_file)
    want = content_hash(build, first)
    first.save()
    assert first.files_read == 3 and cache_file.exists()
    second = DigestCache(cache_file)
    assert content_hash(build, second) == want == content_hash(build)
    assert second.files_read == 0


def test_same_size_edit_is_seen_even_with_the_old_mtime(tmp_path: Path) -> None:
    """An edit that keeps size and mtime (touch -r) still changes ctime: the file is re-read."""
    build = context(tmp_path, **{"w.bin": b"a" * 4096})
    cache_file = tmp_path / "c.json"
    cache = DigestCache(cache_file)
    before = content_hash(build, cache)
    cache.save()
    path = build.context / "w.bin"
    old = path.stat()
    path.write_bytes(b"b" * 4096)
    os.utime(path, ns=(old.st_atime_ns, old.st_mtime_ns))
    again = DigestCache(cache_file)
    after = content_hash(build, again)
    assert again.files_read == 1
    assert after != before and after == content_hash(build)


def test_racy_clean_entry_is_verified_not_trusted(tmp_path: Path) -> None:
    """An entry whose stat still matches but whose mtime is not older than the cache file is
    re-read (git's racy-clean rule); the same entry with an older mtime is trusted.

    On filesystems with coarse timestamps, a write in the same tick as the cache write leaves
    (size, mtime, ctime) as they were; this kernel has fine-grained ones, so the test makes
    that situation exactly: the cache entry gets the edited file's stat with the old digest.
    """
    build = context(tmp_path, **{"w.bin": b"a" * 4096})
    path, cache_file = build.context / "w.bin", tmp_path / "c.json"
    cache = DigestCache(cache_file)
    stale = content_hash(build, cache)
    cache.save()
    path.write_bytes(b"b" * 4096)  # same size, new content
    st = path.stat()
    data = json.loads(cache_file.read_text())
    entry = data["entries"][str(path)]
    data["entries"][str(path)] = [st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns]
    data["entries"][str(path)].append(entry[5])  # the digest of the old bytes
    cache_file.write_text(json.dumps(data))

    os.utime(cache_file, ns=(st.st_mtime_ns, st.st_mtime_ns))  # written in the same tick
    racy = DigestCache(cache_file)
    assert content_hash(build, racy) == content_hash(build) != stale
    assert racy.files_read == 1

    os.utime(cache_file, ns=(st.st_mtime_ns + 10**9, st.st_mtime_ns + 10**9))  # a second later
    trusted = DigestCache(cache_file)
    assert content_hash(build, trusted) == stale  # the rule above is what caught the edit
    assert trusted.files_read == 0


def test_a_damaged_cache_is_ignored(tmp_path: Path) -> None:
    """A cache file that is not valid JSON costs a re-read, never an error."""
    build = context(tmp_path, **{"a": b"1"})
    cache_file = tmp_path / "c.json"
    cache_file.write_text("{not json")
    cache = DigestCache(cache_file)
    assert content_hash(build, cache) == content_hash(build)
    assert cache.files_read == 2


def test_ignored_files_are_never_read(tmp_path: Path) -> None:
    """Files .containerignore leaves out are not opened, not even stat'ed as special files:
    an ignored FIFO and socket neither hang nor fail, and only admitted files are read."""
    build = context(tmp_path, **{"app.py": b"x", "models/big.gguf": b"\0" * MiB})
    (build.context / ".containerignore").write_text("models/\npipe\n*.sock\n")
    os.mkfifo(build.context / "pipe")
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(build.context / "agent.sock"))
    try:
        cache = DigestCache(None)
        content_hash(build, cache)
        with tarfile.open(fileobj=io.BytesIO(b"".join(context_tar(build)))) as tar:
            tar_names = tar.getnames()
    finally:
        sock.close()
    assert context_files(build) == [".containerignore", "Containerfile", "app.py"]
    assert cache.files_read == 3
    assert sorted(tar_names) == context_files(build)


def special(kind: str, path: Path) -> socket.socket | None:
    if kind == "FIFO":
        os.mkfifo(path)
    elif kind == "socket":
        sock = socket.socket(socket.AF_UNIX)
        sock.bind(str(path))
        return sock
    else:
        if os.geteuid() != 0:
            pytest.skip("mknod of a character device needs root")
        os.mknod(path, 0o600 | 0o020000, os.makedev(1, 5))  # /dev/zero's numbers
    return None


@pytest.mark.parametrize("kind", ["FIFO", "socket", "character device"])
def test_special_files_in_a_context_are_errors_naming_them(tmp_path: Path, kind: str) -> None:
    """A FIFO, socket or device node is refused by the hash and by the tar, naming the file,
    at once: never a hang on the FIFO, never an endless read of /dev/zero's twin."""
    build = context(tmp_path, **{"app.py": b"x"})
    path = build.context / "sub" / "odd"
    path.parent.mkdir()
    sock = special(kind, path)
    try:
        with pytest.raises(PermanentError, match=f"{path} is a {kind}"):
            content_hash(build)
        with pytest.raises(PermanentError, match=f"{path} is a {kind}"):
            b"".join(context_tar(build))
    finally:
        if sock:
            sock.close()


def test_a_fifo_swapped_in_after_the_walk_is_refused(tmp_path: Path) -> None:
    """The file is opened non-blocking and checked again: a FIFO that replaced a regular file
    between the lstat and the open is an error, not a hang."""
    build = context(tmp_path, **{"w.bin": b"a"})
    path = build.context / "w.bin"
    st = path.lstat()
    path.unlink()
    os.mkfifo(path)
    with pytest.raises(PermanentError, match="is a FIFO"):
        DigestCache(None).digest(path, st)


def test_tar_streams_in_constant_memory(tmp_path: Path) -> None:
    """Hashing and streaming a 300 MiB context keep Python's peak allocation under 8 MiB."""
    build = context(tmp_path)
    big = build.context / "model.gguf"
    with open(big, "wb") as f:
        f.truncate(300 * MiB)  # sparse: read as zeros, no disk used

    tracemalloc.start()
    try:
        digest_context(build)
        total, seen = 0, 0
        h = hashlib.sha256()
        for piece in context_tar(build):
            total += len(piece)
            seen = max(seen, len(piece))
            h.update(piece)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
        big.unlink()
    assert peak < 8 * MiB, f"peak {peak / MiB:.1f} MiB"
    assert seen <= 2 * MiB and total % tarfile.RECORDSIZE == 0
    assert total > 300 * MiB


def test_streamed_tar_matches_the_files(tmp_path: Path) -> None:
    """Members, modes, sizes and bytes of the stream are the files; odd sizes pad correctly."""
    files = {"a.txt": b"a", "b/odd.bin": os.urandom(MiB + 3), "c/" + "n" * 120: b"long name"}
    build = context(tmp_path, **files)
    os.chmod(build.context / "a.txt", 0o755)
    with tarfile.open(fileobj=io.BytesIO(b"".join(context_tar(build)))) as tar:
        got = {m.name: m for m in tar.getmembers()}
        assert sorted(got) == context_files(build)
        for name, data in files.items():
            reader = tar.extractfile(got[name])
            assert reader is not None and reader.read() == data
        assert got["a.txt"].mode == 0o755 and got["a.txt"].uid == 0 and got["a.txt"].mtime == 0


def test_symlinks_are_hashed_and_sent_as_links(tmp_path: Path) -> None:
    """As before: a link counts by its target text, is sent as a link, and a linked directory
    is one entry whose contents are not walked or read."""
    build = context(tmp_path, **{"src/main.py": b"print()", "src/lib.py": b"x"})
    os.symlink("src/main.py", build.context / "entry.py")
    os.symlink("src", build.context / "code")
    before = content_hash(build)
    cache = DigestCache(None)
    content_hash(build, cache)
    assert cache.files_read == 3  # Containerfile and the two files in src/, not code/*
    assert "code" in context_files(build) and "code/main.py" not in context_files(build)
    with tarfile.open(fileobj=io.BytesIO(b"".join(context_tar(build)))) as tar:
        links = {m.name: m.linkname for m in tar.getmembers() if m.issym()}
    assert links == {"entry.py": "src/main.py", "code": "src"}
    (build.context / "entry.py").unlink()
    os.symlink("src/lib.py", build.context / "entry.py")
    assert content_hash(build) != before


def test_large_context_hint_names_the_largest_files() -> None:
    """Over 1 GiB: one line with the total and the largest files; at 1 GiB or less, nothing."""
    largest = (("m/a.gguf", 900 * MiB), ("w.whl", 124 * MiB), ("Containerfile", 60))
    digest = ContextDigest("h", (1 << 30) + 1, largest)
    hint = large_context_hint("llm", Path("/ctx"), digest)
    assert hint is not None and "\n" not in hint
    assert "1.0 GiB" in hint and "(largest: m/a.gguf (900.0 MiB), w.whl (124.0 MiB))" in hint
    assert "volume" in hint
    assert large_context_hint("llm", Path("/ctx"), ContextDigest("h", 1 << 30, ())) is None


def test_content_hashes_warn_on_a_large_context_and_use_the_state_cache(tmp_path: Path) -> None:
    """The orchestrator's content_hashes: a 1.1 GiB (sparse) context yields the hint, and the
    second pass reads nothing (the cache file sits in the state directory)."""
    ctx = tmp_path / "m" / "llm"
    ctx.mkdir(parents=True)
    (ctx / "Containerfile").write_text("FROM scratch\nCOPY . /\n")
    with open(ctx / "model.gguf", "wb") as f:
        f.truncate(1100 * MiB)  # sparse: no disk used, reads as zeros
    age_all(ctx)
    (tmp_path / "m" / "stack.yaml").write_text(
        "apiVersion: podform/v1\nkind: Stack\nmetadata: {name: big}\n---\n"
        "apiVersion: podform/v1\nkind: Image\nmetadata: {name: llm}\n"
        "spec: {build: {context: ./llm}}\n"
    )
    desired = load_desired([str(tmp_path / "m")])
    state = tmp_path / "state"
    state.mkdir()
    hashes, hints = content_hashes(desired, state)
    assert list(hashes) == ["llm"] and len(hints) == 1
    assert "model.gguf (1.1 GiB)" in hints[0]
    assert (state / "big.contexts.json").exists()
    again = DigestCache(state / "big.contexts.json")
    assert content_hash(desired.images["llm"].build, again) == hashes["llm"]  # type: ignore[arg-type]
    assert again.files_read == 0
