"""The test harness itself: real Podman socket, busybox image, stack clean-up, failure policy."""

from __future__ import annotations

import secrets
from pathlib import Path

import pytest
from podman import PodmanClient
from podman_env import STACK_LABEL, cleanup_stack, container_ids, container_state, podman_cli

pytest_plugins = ["pytester"]

TESTS = Path(__file__).parent


@pytest.mark.podman
def test_socket_answers_ping_and_version(podman_socket: str) -> None:
    """The session's API socket answers podman-py's ping and reports a Podman version."""
    with PodmanClient(base_url=podman_socket) as client:
        assert client.ping() is True
        version = client.version()  # type: ignore[no-untyped-call]
    assert version["Version"][0].isdigit()


@pytest.mark.podman
def test_busybox_image_runs_commands(busybox_image: str, stack_name: str) -> None:
    """The locally built busybox image runs a command and prints its output."""
    out = podman_cli(
        "run", "--rm", "--label", f"{STACK_LABEL}={stack_name}", busybox_image, "echo", "hello"
    )
    assert out == "hello\n"


@pytest.mark.podman
def test_cleanup_removes_only_the_stacks_objects(
    busybox_image: str, stack_name: str, tmp_path: Path
) -> None:
    """cleanup_stack removes the stack's labelled and name-prefixed objects, not another stack's."""
    other = f"t-{secrets.token_hex(4)}"
    try:
        for stack, suffix in [(stack_name, "web-1"), (other, "web-1")]:
            podman_cli("create", "--name", f"{stack}-{suffix}", "--label",
                       f"{STACK_LABEL}={stack}", busybox_image, "true")  # fmt: skip
            podman_cli("volume", "create", "--label", f"{STACK_LABEL}={stack}", f"{stack}-data")
        podman_cli("create", "--name", f"{stack_name}-unlabelled-1", busybox_image, "true")
        context = tmp_path / "ctx"
        context.mkdir()
        (context / "Containerfile").write_text(f"FROM {busybox_image}\n")
        image_ref = f"localhost/{stack_name}-img:latest"
        podman_cli(
            "build", "-q", "--label", f"{STACK_LABEL}={stack_name}", "-t", image_ref, str(context)
        )
        assert set(container_ids(stack_name)) == {f"{stack_name}-web-1"}
        assert container_state(f"{stack_name}-web-1") == "created"

        cleanup_stack(stack_name)

        assert container_ids(stack_name) == {}
        leftovers = podman_cli("ps", "-a", "-q", "--filter", f"name=^{stack_name}-")
        assert leftovers.strip() == ""
        volumes = podman_cli("volume", "ls", "-q").split()
        assert f"{stack_name}-data" not in volumes
        assert f"{other}-data" in volumes
        assert podman_cli("images", "-q", "--filter", f"reference={image_ref}").strip() == ""
        assert set(container_ids(other)) == {f"{other}-web-1"}
    finally:
        cleanup_stack(other)


@pytest.mark.parametrize(
    ("skip_env", "outcome"),
    [
        ("", {"errors": 1}),  # CI must not pass by skipping what it could not run
        ("1", {"skipped": 1}),  # explicit opt-out for quick unit runs
    ],
)
def test_podman_tests_fail_without_podman_unless_skipped(
    pytester: pytest.Pytester,
    monkeypatch: pytest.MonkeyPatch,
    skip_env: str,
    outcome: dict[str, int],
) -> None:
    """With no podman on PATH a `podman` test errors, and is skipped only under PODFORM_SKIP_PODMAN."""
    empty_bin = pytester.mkdir("empty-bin")
    monkeypatch.setenv("PATH", str(empty_bin))
    monkeypatch.delenv("PODFORM_TEST_URL", raising=False)
    monkeypatch.setenv("PODFORM_SKIP_PODMAN", skip_env)
    pytester.makeconftest((TESTS / "conftest.py").read_text())
    pytester.makepyfile(
        podman_env=(TESTS / "podman_env.py").read_text(),
        helpers=(TESTS / "helpers.py").read_text(),
    )
    pytester.makeini("[pytest]\nmarkers =\n    podman: needs Podman\n")
    pytester.makepyfile(
        test_needs_podman="""
        import pytest

        @pytest.mark.podman
        def test_uses_podman():
            pass
        """
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(**outcome)
    if not skip_env:
        result.stdout.fnmatch_lines(["*podman is not installed*scripts/setup-podman*"])
