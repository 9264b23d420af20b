"""Shared fixtures: a private Podman API service, the busybox test image, per-test stacks.

Tests that need Podman are marked `podman` (using one of the Podman fixtures marks them too).
When Podman is unusable they fail with a message naming scripts/setup-podman; they are skipped
only when PODFORM_SKIP_PODMAN=1 asks for a quick run without Podman.
"""

from __future__ import annotations

import os
import secrets
import subprocess
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest
from helpers import FakePodman, MakeFake, PodformRunner
from podman_env import (
    PodmanUnavailable,
    build_test_image,
    cleanup_stack,
    podform_subprocess,
    private_service,
)

# Fixtures whose use means a test talks to real Podman.
_PODMAN_FIXTURES = frozenset({"podman_socket", "busybox_image", "stack_name", "run_podform"})


def _skip_podman() -> bool:
    return os.environ.get("PODFORM_SKIP_PODMAN", "") not in ("", "0")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark every test that uses a Podman fixture, and skip them all when asked to."""
    skip = pytest.mark.skip(reason="PODFORM_SKIP_PODMAN is set")
    for item in items:
        if _PODMAN_FIXTURES.intersection(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.podman)
        if _skip_podman() and item.get_closest_marker("podman") is not None:
            item.add_marker(skip)


@pytest.fixture(autouse=True)
def _podman_marked_tests_need_podman(request: pytest.FixtureRequest) -> None:
    """A test marked `podman` fails clearly when Podman is unusable, whatever fixtures it uses."""
    if request.node.get_closest_marker("podman") is not None:
        request.getfixturevalue("podman_socket")


@pytest.fixture(scope="session")
def podman_socket() -> Iterator[str]:
    """URL of a Podman API socket: PODFORM_TEST_URL if set, else a private service for the session."""
    if url := os.environ.get("PODFORM_TEST_URL"):
        yield url
        return
    service = private_service()
    try:
        url = service.start()
    except PodmanUnavailable as exc:
        pytest.fail(f"Podman is not usable ({exc}); run scripts/setup-podman", pytrace=False)
    try:
        yield url
    finally:
        service.stop()


@pytest.fixture(scope="session")
def busybox_image(podman_socket: str) -> str:
    """Reference of the FROM-scratch busybox image, built once per session."""
    try:
        return build_test_image()
    except PodmanUnavailable as exc:
        pytest.fail(str(exc), pytrace=False)


@pytest.fixture
def stack_name(podman_socket: str) -> Iterator[str]:
    """A stack name unique to this test; everything labelled with it is removed afterwards."""
    name = f"t-{secrets.token_hex(4)}"
    yield name
    cleanup_stack(name)


@pytest.fixture
def state_dir(tmp_path: Path) -> Path:
    """An empty podform state directory private to this test."""
    path = tmp_path / "state"
    path.mkdir()
    return path


@pytest.fixture
def run_podform(podman_socket: str, state_dir: Path) -> PodformRunner:
    """Runs `python -m reconciler ARGS...` against the test socket and this test's state dir."""

    def run(
        *args: str,
        env: Mapping[str, str] | None = None,
        input: str | None = None,
        timeout: float = 120.0,
    ) -> subprocess.CompletedProcess[str]:
        base = {"CONTAINER_HOST": podman_socket, "PODFORM_STATE_DIR": str(state_dir)}
        return podform_subprocess(*args, env={**base, **(env or {})}, input=input, timeout=timeout)

    return run


@pytest.fixture
def make_fake(tmp_path: Path) -> MakeFake:
    """Build a FakePodman in this test's tmp dir: version, then FAKE_PODMAN_* settings."""
    return lambda version="5.8.2", **env: FakePodman(tmp_path, version, **env)
