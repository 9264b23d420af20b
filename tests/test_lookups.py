"""engine/lookups.py: a pass observes what the planners will read, and nothing of the rest of
the host (pure; no Podman)."""

from __future__ import annotations

from helpers import make_desired, make_workload

from reconciler.engine.lookups import needs
from reconciler.engine.observed import Recorded
from reconciler.manifests.model import Image


def image(name: str, ref: str, machine: str | None = None) -> Image:
    return Image(name, ref, machine, None, "IfNotPresent")


def test_declared_and_workload_images_and_recorded_ids_are_inspected_once_each() -> None:
    d = make_desired(
        image("app", "localhost/s-app:latest"),
        make_workload("web", image="app", image_ref="localhost/s-app:latest"),
        make_workload("db", image=None, image_ref="docker.io/library/postgres:16"),
        make_workload("cache", image=None, image_ref="docker.io/library/postgres:16"),
    )
    rec = Recorded(images={"old": {"id": "sha256:0ld", "connection": ""}})
    got = needs(d, rec, "")
    assert got.images == (
        "localhost/s-app:latest",
        "docker.io/library/postgres:16",
        "sha256:0ld",
    )
    assert got.networks  # workloads sit on the stack network
    assert not got.secrets


def test_only_what_lives_on_the_connection_is_looked_up_there() -> None:
    d = make_desired(
        image("llama", "localhost/s-llama:latest", machine="gpu"),
        make_workload("web", image=None, image_ref="localhost/web:1"),
    )
    rec = Recorded(
        images={"gone": {"id": "sha256:g0ne", "connection": "gpu"}},
        secrets={"gpu:token": {"id": "x"}},
    )
    assert needs(d, rec, "gpu").images == ("localhost/s-llama:latest", "sha256:g0ne")
    assert needs(d, rec, "gpu").secrets
    assert needs(d, rec, "").images == ("localhost/web:1",)
    assert not needs(d, rec, "").secrets


def test_an_empty_stack_that_never_had_networks_asks_for_none() -> None:
    got = needs(make_desired(), Recorded(), "")
    assert got.images == ()
    assert not got.networks
    assert not got.secrets
