"""Running the podman binary: argument lists with a timeout, never a shell, the caller's env.

Backend layer, used by machine_cli. A Runner is the seam the machine tests replace.
"""

from __future__ import annotations

import os
import shlex
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

from reconciler.errors import PermanentError, TemporaryError

# --- running podman --------------------------------------------------------------------------


@dataclass(frozen=True)
class RunResult:
    returncode: int
    stdout: str
    stderr: str


class Runner(Protocol):
    """Runs one command (an argument list, never a shell line) and returns what it printed."""

    def run(self, argv: list[str], env: dict[str, str] | None, timeout: float) -> RunResult: ...


# Variables that would point `podman machine` at another Podman. Everything else the caller
# has (proxies, certificates, locale, SSH agent, XDG and CONTAINERS_* settings) passes: `machine
# init` downloads the machine image, and behind a corporate proxy it must see the proxy.
REDIRECTING = frozenset({"CONTAINER_HOST", "CONTAINER_CONNECTION", "DOCKER_HOST"})


class SubprocessRunner:
    """The real Runner: subprocess with an argument list, no stdin, the caller's environment
    without the variables that would redirect podman (REDIRECTING)."""

    def __init__(self, base_env: Mapping[str, str] | None = None) -> None:
        self._base_env = os.environ if base_env is None else base_env

    def environment(self, extra: dict[str, str] | None) -> dict[str, str]:
        env = {k: v for k, v in self._base_env.items() if k not in REDIRECTING}
        env.update(extra or {})
        return env

    def run(self, argv: list[str], env: dict[str, str] | None, timeout: float) -> RunResult:
        try:
            done = subprocess.run(
                argv,
                env=self.environment(env),
                stdin=subprocess.DEVNULL,  # never a TTY: Podman must not prompt
                capture_output=True,
                text=True,
                timeout=timeout,
                check=False,
            )
        except subprocess.TimeoutExpired:
            raise TemporaryError(
                f"`{shlex.join(argv)}` did not finish within {timeout:g}s"
            ) from None
        except OSError as e:
            raise PermanentError(f"cannot run {argv[0]!r}: {e.strerror or e}") from None
        return RunResult(done.returncode, done.stdout, done.stderr)
