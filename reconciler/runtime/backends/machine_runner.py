"""Running the podman binary: argument lists with a timeout, never a shell, a minimal env.

Backend layer, used by machine_cli. A Runner is the seam the machine tests replace.
"""

from __future__ import annotations

import os
import shlex
import subprocess
from collections.abc import Mapping, Sequence
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


# What podman on the host needs from the caller's environment; everything else stays out, so a
# stray DOCKER_HOST or CONTAINER_HOST cannot redirect a machine command.
_PASS_NAMES = frozenset({"PATH", "HOME", "TMPDIR", "PODMAN_CONNECTIONS_CONF"})
_PASS_PREFIXES = ("XDG_", "CONTAINERS_")


class SubprocessRunner:
    """The real Runner: subprocess with an argument list, no stdin, a minimal environment.

    `passthrough_prefixes` lets more variables through (tests pass `FAKE_PODMAN_`).
    """

    def __init__(
        self, passthrough_prefixes: Sequence[str] = (), base_env: Mapping[str, str] | None = None
    ) -> None:
        self._prefixes = _PASS_PREFIXES + tuple(passthrough_prefixes)
        self._base_env = os.environ if base_env is None else base_env

    def environment(self, extra: dict[str, str] | None) -> dict[str, str]:
        env = {
            k: v
            for k, v in self._base_env.items()
            if k in _PASS_NAMES or k.startswith(self._prefixes)
        }
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
