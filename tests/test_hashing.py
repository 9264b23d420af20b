"""Golden values for the spec hash and the build-context content hash.

A change in either recreates every user's containers or rebuilds every image on upgrade, so
these values may only change together with hashing.SPEC_VERSION, on purpose.
"""

from __future__ import annotations

import os
from pathlib import Path

from reconciler.engine.hashing import canonical_json, spec_hash, workload_spec
from reconciler.manifests.model import (
    Build,
    Dependency,
    Healthcheck,
    Mount,
    SecretRef,
    Workload,
)
from reconciler.runtime.buildcontext import content_hash, context_files, context_tar

IMAGE_ID = "sha256:" + "c" * 64


def sample_workload(**changes: object) -> Workload:
    fields: dict[str, object] = dict(
        name="llama",
        machine=None,
        image="llama",
        image_ref="localhost/llama:latest",
        command=("/llama/llama-server",),
        args=("-m", "/models/m.gguf"),
        env={"LEVEL": "info", "API_TOKEN": "t0ken"},
        secrets=(SecretRef("hf", "HF_TOKEN", None),),
        ports=("8080:8080",),
        volumes=(Mount("models", "/models", ("ro",), False),),
        devices=("/dev/dri",),
        mappings=("gpu",),
        memory_mib=8192,
        cpus=4.0,
        restart="unless-stopped",
        healthcheck=Healthcheck(("curl", "-f", "localhost:8080/health"), 30.0, 5.0, 3, 0.0),
        depends_on=(Dependency("db", "healthy"),),
        replicas=1,
        init=False,
        stop_timeout_s=10.0,
        network="bridge",
        privileged=False,
        cap_add=(),
        state="running",
        labels={"team": "ml"},
    )
    fields.update(changes)
    return Workload(**fields)  # type: ignore[arg-type]


def test_spec_hash_golden() -> None:
    """The spec hash of a fixed workload is pinned: it must never change by accident."""
    assert spec_hash(workload_spec(sample_workload(), IMAGE_ID)) == (
        "0b49983b3c5c35331bb716535e2d02acd85f29d514b57eee3d82614bb4b16e43"
    )


def test_spec_hash_ignores_replicas_state_dependson() -> None:
    """replicas, state and dependsOn do not need a new container, so they leave the hash alone."""
    base = spec_hash(workload_spec(sample_workload(), IMAGE_ID))
    for change in ({"replicas": 3}, {"state": "stopped"}, {"depends_on": ()}):
        assert spec_hash(workload_spec(sample_workload(**change), IMAGE_ID)) == base


def test_spec_hash_follows_every_container_field() -> None:
    """Each field that shapes the container changes the hash (image id included)."""
    base = spec_hash(workload_spec(sample_workload(), IMAGE_ID))
    for change in (
        {"env": {"LEVEL": "debug", "API_TOKEN": "t0ken"}},
        {"args": ("-m", "x")},
        {"devices": ()},
        {"ports": ()},
        {"init": True},
        {"stop_timeout_s": 5.0},
        {"memory_mib": 4096},
        {"restart": "no"},
        {"network": "none"},
        {"labels": {}},
    ):
        assert spec_hash(workload_spec(sample_workload(**change), IMAGE_ID)) != base, change
    assert spec_hash(workload_spec(sample_workload(), "sha256:" + "d" * 64)) != base


def test_env_order_does_not_matter() -> None:
    """Canonical JSON sorts keys: the same env in another order hashes the same."""
    a = sample_workload(env={"A": "1", "B": "2"})
    b = sample_workload(env={"B": "2", "A": "1"})
    assert canonical_json(workload_spec(a, IMAGE_ID)) == canonical_json(workload_spec(b, IMAGE_ID))


def make_context(tmp_path: Path) -> Build:
    ctx = tmp_path / "ctx"
    (ctx / "src").mkdir(parents=True)
    (ctx / "Containerfile").write_text("FROM scratch\nCOPY . /app\n")
    (ctx / "src" / "main.py").write_text("print('hi')\n")
    (ctx / "notes.md").write_text("notes\n")
    (ctx / ".containerignore").write_text("*.md\nbuild/\n")
    for p in ctx.rglob("*"):
        os.chmod(p, 0o755 if p.is_dir() else 0o644)
    os.chmod(ctx, 0o755)
    return Build(ctx, ctx / "Containerfile", {"V": "1"}, None)


def test_content_hash_golden(tmp_path: Path) -> None:
    """The content hash of a fixed context is pinned (paths, modes, bytes, args, target)."""
    assert content_hash(make_context(tmp_path)) == (
        "100abd8dae063ff3bd152c5f870306afac613a36720c3f380b0ae6c1c6df11dd"
    )


def test_ignored_files_do_not_change_the_hash(tmp_path: Path) -> None:
    """Editing a file the ignore file excludes leaves the hash alone; an admitted file changes it."""
    build = make_context(tmp_path)
    before = content_hash(build)
    (build.context / "notes.md").write_text("edited\n")
    (build.context / "build").mkdir()
    (build.context / "build" / "out.bin").write_bytes(b"\0")
    assert content_hash(build) == before
    (build.context / "src" / "main.py").write_text("print('bye')\n")
    assert content_hash(build) != before


def test_args_target_and_mode_change_the_hash(tmp_path: Path) -> None:
    """Build args, target and file mode are build inputs."""
    build = make_context(tmp_path)
    before = content_hash(build)
    assert content_hash(Build(build.context, build.containerfile, {"V": "2"}, None)) != before
    assert content_hash(Build(build.context, build.containerfile, {"V": "1"}, "rt")) != before
    os.chmod(build.context / "src" / "main.py", 0o755)
    assert content_hash(build) != before


def test_ignore_rules_follow_dockerignore(tmp_path: Path) -> None:
    """`**`, `!` re-includes (last match wins) and directory patterns behave like .dockerignore."""
    build = make_context(tmp_path)
    (build.context / ".containerignore").write_text("**/*.py\n!src/keep.py\n*.md\n")
    (build.context / "src" / "keep.py").write_text("k\n")
    (build.context / "README.md").write_text("r\n")
    files = context_files(build)
    assert "src/main.py" not in files and "src/keep.py" in files
    assert "README.md" not in files and "Containerfile" in files


def test_dockerignore_used_when_no_containerignore(tmp_path: Path) -> None:
    """.containerignore wins; without it .dockerignore applies."""
    build = make_context(tmp_path)
    (build.context / ".containerignore").unlink()
    (build.context / ".dockerignore").write_text("src\n")
    assert "src/main.py" not in context_files(build)
    assert "notes.md" in context_files(build)


def test_tar_holds_exactly_the_hashed_files(tmp_path: Path) -> None:
    """The tar sent to Podman contains the same files the hash covered, owned by root."""
    import io
    import tarfile

    build = make_context(tmp_path)
    with tarfile.open(fileobj=io.BytesIO(b"".join(context_tar(build)))) as tar:
        members = tar.getmembers()
    assert sorted(m.name for m in members) == context_files(build)
    assert all(m.uid == 0 and m.mtime == 0 for m in members)
