"""The schema-verdict cache: only unchanged, already valid document sets skip jsonschema."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from reconciler.errors import InvalidInput
from reconciler.runtime.orchestrator import load_desired

VALID = """apiVersion: podform/v1
kind: Workload
metadata: {name: web}
spec: {image: localhost/x:latest}
"""


def test_unchanged_valid_set_skips_jsonschema(tmp_path: Path) -> None:
    """Second load of the same valid manifests does not even import jsonschema."""
    (tmp_path / "m.yaml").write_text(VALID)
    cache = tmp_path / "state"
    load_desired([str(tmp_path / "m.yaml")], cache_dir=cache)
    probe = (
        "import sys; from pathlib import Path; from reconciler.runtime.orchestrator import load_desired; "
        f"load_desired([{str(tmp_path / 'm.yaml')!r}], cache_dir=Path({str(cache)!r})); "
        "print('jsonschema' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_edited_set_is_validated_again(tmp_path: Path) -> None:
    """A change to any value means a new key: the schema runs and rejects the bad value."""
    path = tmp_path / "m.yaml"
    path.write_text(VALID)
    cache = tmp_path / "state"
    load_desired([str(path)], cache_dir=cache)
    path.write_text(VALID.replace("spec: {", "spec: {replicas: -1, "))
    with pytest.raises(InvalidInput) as err:
        load_desired([str(path)], cache_dir=cache)
    assert "less than the minimum of 0" in str(err.value)


def test_invalid_sets_are_never_remembered(tmp_path: Path) -> None:
    """An invalid set fails every time, cache or not."""
    path = tmp_path / "m.yaml"
    path.write_text(VALID.replace("image:", "imgae:"))
    cache = tmp_path / "state"
    for _ in range(2):
        with pytest.raises(InvalidInput):
            load_desired([str(path)], cache_dir=cache)
    assert not (cache / "_validated.json").exists()


def test_unreadable_cache_is_ignored(tmp_path: Path) -> None:
    """A damaged cache file only costs a full validation."""
    path = tmp_path / "m.yaml"
    path.write_text(VALID)
    cache = tmp_path / "state"
    cache.mkdir()
    (cache / "_validated.json").write_text("{not json")
    assert "web" in load_desired([str(path)], cache_dir=cache).workloads
