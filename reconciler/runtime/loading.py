"""Manifests -> Desired for a pass: load, validate (with a cache of schema verdicts), build.

The first steps of every pass (orchestrator.py, watch, sync, status, doctor): all-or-nothing,
InvalidInput carries every problem found. The verdict cache lives in the state directory.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any, BinaryIO

from reconciler.errors import InvalidInput, Issue
from reconciler.manifests.builder import build_desired
from reconciler.manifests.model import Desired


def load_desired(
    paths: Sequence[str], stdin: BinaryIO | None = None, cache_dir: Path | None = None
) -> Desired:
    """Manifests -> Desired, all-or-nothing: InvalidInput carries every problem found.

    With cache_dir, a document set that already passed schema validation unchanged (same
    bytes-level data, same schemas, same podform) skips jsonschema, whose import and
    compilation are a large share of a no-op apply. References and policy are always checked.
    """
    from reconciler.manifests.loader import read_manifests
    from reconciler.manifests.schema import validate_documents

    docs, unreadable = read_manifests(paths, stdin=stdin)
    if unreadable:  # the documents that did parse are checked too: every problem in one run
        raise InvalidInput(unreadable + validate_documents(docs))
    key = _validation_key(docs) if cache_dir else ""
    if not (cache_dir and key in _read_validated(cache_dir)):
        issues: list[Issue] = validate_documents(docs)
        if issues:
            raise InvalidInput(issues)
        if cache_dir:
            _remember_validated(cache_dir, key)
    return build_desired(docs)


# Stack names match [a-z0-9]...: a leading "_" keeps podform's own state files apart from every
# `<stack>.json` inventory (a stack named "validated" once shared this file and lost its inventory).
_VALIDATED_FILE = "_validated.json"
_LEGACY_VALIDATED_FILE = "validated.json"
_VALIDATED_KEEP = 16


def _validation_key(docs: Sequence[Any]) -> str:
    from reconciler import __version__
    from reconciler.engine.hashing import canonical_json, sha256_hex
    from reconciler.manifests.schema import schema_dir

    schemas = b"".join(p.read_bytes() for p in sorted(schema_dir().glob("*.json")))
    data = canonical_json([[d.file, d.data] for d in docs])
    return sha256_hex(__version__.encode() + sha256_hex(schemas).encode() + data.encode())


def _read_validated(cache_dir: Path) -> list[str]:

    try:
        keys = json.loads((cache_dir / _VALIDATED_FILE).read_text())
    except (OSError, ValueError):
        return []
    return [k for k in keys if isinstance(k, str)] if isinstance(keys, list) else []


def _remember_validated(cache_dir: Path, key: str) -> None:
    """Best effort: a cache that cannot be written only costs the next run some time."""
    import os
    import tempfile

    keys = [key, *(k for k in _read_validated(cache_dir) if k != key)][:_VALIDATED_KEEP]
    tmp = ""
    try:
        cache_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=cache_dir, prefix=".validated-")
        with os.fdopen(fd, "w") as f:
            json.dump(keys, f)
        os.replace(tmp, cache_dir / _VALIDATED_FILE)
        tmp = ""
        _drop_legacy_cache(cache_dir)
    except OSError:
        if tmp:  # a full disk must not leave temporary files behind
            with contextlib.suppress(OSError):
                os.unlink(tmp)


def _drop_legacy_cache(cache_dir: Path) -> None:
    """Remove the old cache file `validated.json` (a JSON list), never a stack's inventory."""

    legacy = cache_dir / _LEGACY_VALIDATED_FILE
    with contextlib.suppress(OSError, ValueError):
        if isinstance(json.loads(legacy.read_text()), list):
            legacy.unlink()


def manifest_paths(paths: Sequence[str]) -> list[Path]:
    from reconciler.manifests.loader import manifest_files

    return manifest_files(paths)
