"""Real-Podman test environment: the podman CLI, a private API service, the busybox test image.

Integration tests drive podform through the Podman API and check the world through the podman
CLI, so an assertion never trusts the code under test to report on itself. Nothing here imports
podform.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

STACK_LABEL = "io.podform.stack"
TEST_IMAGE = "localhost/podform-test-busybox:latest"
BUSYBOX = Path("/bin/busybox")
CLI_TIMEOUT = 120.0

# Same recipe as scripts/setup-podman: no registry is reachable, so the image is built around the
# host's static busybox.
_CONTAINERFILE = """\
FROM scratch
COPY busybox /bin/busybox
RUN ["/bin/busybox", "--install", "-s", "/bin"]
CMD ["/bin/sh"]
"""


class PodmanUnavailable(RuntimeError):
    """Podman cannot be used on this machine; the message says what to do."""


class PodmanCommandError(RuntimeError):
    """A podman CLI call exited non-zero; the message carries its argv and stderr."""


def podman_binary() -> str:
    """The podman executable, or PodmanUnavailable naming the set-up script."""
    path = shutil.which("podman")
    if path is None:
        raise PodmanUnavailable(
            "podman is not installed: run scripts/setup-podman (or set PODFORM_SKIP_PODMAN=1 "
            "to skip the tests that need it)"
        )
    return path


def podman_cli(*args: str, timeout: float = CLI_TIMEOUT) -> str:
    """Run `podman ARGS...` and return its stdout; raise PodmanCommandError with stderr if it fails."""
    argv = [podman_binary(), *args]
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired as exc:
        raise PodmanCommandError(f"{' '.join(argv)} timed out after {timeout:g}s") from exc
    if done.returncode != 0:
        raise PodmanCommandError(
            f"{' '.join(argv)} exited {done.returncode}: {done.stderr.strip()}"
        )
    return done.stdout


def container_ids(stack: str) -> dict[str, str]:
    """Name → full ID of every container (running or not) labelled with this stack."""
    out = podman_cli(
        "ps", "-a", "--no-trunc", "--filter", f"label={STACK_LABEL}={stack}",
        "--format", "{{.Names}} {{.ID}}",
    )  # fmt: skip
    return dict(line.split(" ", 1) for line in out.splitlines() if line.strip())


def image_id(ref: str) -> str:
    """The id of the image REF names (podman image inspect)."""
    return podman_cli("image", "inspect", "--format", "{{.Id}}", ref).strip()


def container_state(name: str) -> str:
    """Podman's state word for one container: running, exited, created, ..."""
    return podman_cli(
        "inspect", "--type", "container", "--format", "{{.State.Status}}", name
    ).strip()


def podform_subprocess(
    *args: str,
    env: Mapping[str, str] | None = None,
    input: str | None = None,
    timeout: float = 120.0,
    cwd: Path | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run podform's real entry point (`python -m reconciler ARGS...`) and capture its text output.

    ENV is laid over this process's environment. The exit code is left to the caller to assert.
    """
    return subprocess.run(
        [sys.executable, "-m", "reconciler", *args],
        env={**os.environ, **(env or {})},
        input=input,
        # No inherited terminal: a command that waits for stdin must fail, not hang the suite.
        stdin=subprocess.DEVNULL if input is None else None,
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=cwd,
        check=False,
    )


def build_test_image(ref: str = TEST_IMAGE) -> str:
    """Build the FROM-scratch busybox image under REF (layer cache makes repeats cheap)."""
    if not BUSYBOX.is_file():
        raise PodmanUnavailable(
            f"{BUSYBOX} is missing: install busybox-static (scripts/setup-podman)"
        )
    with tempfile.TemporaryDirectory(prefix="podform-image-") as ctx:
        shutil.copy2(BUSYBOX, Path(ctx, "busybox"))
        Path(ctx, "Containerfile").write_text(_CONTAINERFILE)
        podman_cli("build", "--quiet", "--tag", ref, ctx, timeout=300)
    return ref


def cleanup_stack(stack: str) -> None:
    """Remove every container, pod, image, volume and network of STACK, by label or name prefix.

    The name prefix catches containers a test made by hand without labels (e.g. to check that
    podform refuses to touch them); stack names are random, so the prefix is the test's own.
    """
    label = f"label={STACK_LABEL}={stack}"
    # Pods first: their infra containers can only go with the pod. --ignore and -t 0 because
    # objects may vanish between listing and removal, and nobody waits for a graceful stop.
    pods = podman_cli("pod", "ps", "-q", "--filter", label).split()
    if pods:
        podman_cli("pod", "rm", "--force", "--ignore", "-t", "0", *pods)
    containers = set(podman_cli("ps", "-a", "-q", "--filter", label).split())
    containers |= set(podman_cli("ps", "-a", "-q", "--filter", f"name=^{stack}-").split())
    if containers:
        podman_cli("rm", "--force", "--ignore", "-t", "0", *sorted(containers))
    listings: list[tuple[list[str], list[str]]] = [
        (["images", "-q", "--filter", label], ["rmi", "--force", "--ignore"]),
        (["volume", "ls", "-q", "--filter", label], ["volume", "rm", "--force", "-t", "0"]),
        (["network", "ls", "-q", "--filter", label], ["network", "rm", "--force", "-t", "0"]),
    ]
    failures: list[str] = []
    for list_args, remove_args in listings:
        # One failing step (Podman 4.3's image list races other clients' removals) must not
        # leave the networks and secrets after it behind.
        try:
            found = sorted(set(podman_cli(*list_args).split()))
            if found:
                podman_cli(*remove_args, *found)
        except PodmanCommandError as exc:
            failures.append(str(exc))
    # Podman 4.3 keeps no labels on secrets: podform names them `<stack>-<name>`.
    secrets = podman_cli("secret", "ls", "--format", "{{.Name}}").split()
    mine = sorted(s for s in secrets if s.startswith(f"{stack}-"))
    if mine:
        podman_cli("secret", "rm", *mine)
    if failures:
        raise PodmanCommandError("; ".join(failures))


def _ping(sock: Path, timeout: float) -> bool:
    """True when the API behind SOCK answers GET /_ping with 200."""
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
            conn.settimeout(timeout)
            conn.connect(str(sock))
            conn.sendall(b"GET /_ping HTTP/1.0\r\nHost: podman\r\n\r\n")
            status = conn.recv(64)
    except OSError:
        return False
    return status.startswith(b"HTTP/1.") and status[9:12] == b"200"


@dataclass
class PodmanService:
    """A private `podman system service` on a unix socket, for one test session."""

    socket_path: Path
    log_path: Path
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"unix://{self.socket_path}"

    def start(self, ready_timeout: float = 30.0) -> str:
        """Start the service and wait until it answers a ping; return its URL."""
        argv = [podman_binary(), "system", "service", "--time=0", self.url]
        self.socket_path.unlink(missing_ok=True)
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + ready_timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise PodmanUnavailable(f"podman system service exited early:\n{self._failed()}")
            if self.socket_path.exists() and _ping(self.socket_path, timeout=2.0):
                return self.url
            time.sleep(0.1)
        raise PodmanUnavailable(
            f"podman system service did not answer /_ping within {ready_timeout:g}s:\n"
            f"{self._failed()}"
        )

    def stop(self) -> None:
        """Stop the service (containers it started live on under conmon) and remove its socket."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        self.socket_path.unlink(missing_ok=True)
        self.log_path.unlink(missing_ok=True)

    def _failed(self) -> str:
        """Stop after a failed start and return what the service logged."""
        try:
            log = self.log_path.read_text(errors="replace").strip() or "(empty log)"
        except OSError:
            log = "(no log)"
        self.stop()
        return log


def private_service() -> PodmanService:
    """A service whose socket and log are named after this process, so parallel runs don't meet."""
    # /tmp rather than $TMPDIR: a unix socket path must stay under 108 bytes.
    base = Path("/tmp", f"podform-test-{os.getpid()}")
    return PodmanService(socket_path=base.with_suffix(".sock"), log_path=base.with_suffix(".log"))
