"""Manifest rules this issue added: Machine volume paths as `machine init -v` gets them, Machine
labels refused, and `condition: healthy` only on a dependency that has a health check."""

from __future__ import annotations

from pathlib import Path

import pytest

from reconciler.errors import InvalidInput
from reconciler.manifests.model import Desired
from reconciler.runtime.orchestrator import load_desired


def load(tmp_path: Path, text: str) -> Desired:
    path = tmp_path / "stack.yaml"
    path.write_text(text)
    return load_desired([str(path)])


def problems(tmp_path: Path, text: str) -> list[str]:
    with pytest.raises(InvalidInput) as caught:
        load(tmp_path, text)
    return [str(i) for i in caught.value.issues]


def test_machine_volumes_expand_home_and_resolve_relative_sources(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`~`, `~/x` and `./x` sources become absolute host paths; target and options stay."""
    monkeypatch.setenv("HOME", "/Users/ada")
    text = """\
apiVersion: podform/v1
kind: Machine
metadata: {name: gpu}
spec:
  volumes: ["~/models:/models:ro", "~:/home/ada", "./data:/data", "/srv/x:/x"]
"""
    machine = load(tmp_path, text).machines["gpu"]
    assert machine.volumes == (
        "/Users/ada/models:/models:ro",
        "/Users/ada:/home/ada",
        f"{tmp_path.resolve()}/data:/data",
        "/srv/x:/x",
    )


def test_machine_labels_are_refused_with_their_position(tmp_path: Path) -> None:
    """Podman machines have no labels: metadata.labels on a Machine is an error, not dropped."""
    text = "apiVersion: podform/v1\nkind: Machine\nmetadata:\n  name: gpu\n  labels: {a: b}\n"
    [problem] = problems(tmp_path, text)
    assert problem.startswith(f'{tmp_path / "stack.yaml"}:5:11: Machine "gpu": $.metadata.labels')
    assert "carry no labels" in problem


def test_healthy_dependency_without_a_healthcheck_is_an_error(tmp_path: Path) -> None:
    """dependsOn with condition healthy on a workload without healthcheck could never be met:
    a validation error at the dependsOn entry instead of a long wait at apply."""
    text = """\
apiVersion: podform/v1
kind: Workload
metadata: {name: db}
spec: {image: "localhost/db:1"}
---
apiVersion: podform/v1
kind: Workload
metadata: {name: api}
spec:
  image: "localhost/api:1"
  dependsOn: [db, {name: db, condition: healthy}]
"""
    [problem] = problems(tmp_path, text)
    assert problem.startswith(f'{tmp_path / "stack.yaml"}:11:19: Workload "api": ')
    assert "$.spec.dependsOn[1]" in problem
    assert "condition healthy needs a healthcheck on Workload 'db'" in problem
