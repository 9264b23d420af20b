"""Podman's machine error texts turned into typed errors.

Podman reports every failure as `Error: <text>` with exit 125, so texts are all there is;
each known one maps to a class saying whether a retry can help and, where known, the fix.
"""

from __future__ import annotations

from reconciler.errors import PermanentError, PodformError, TemporaryError


class _CommandFailure(PodformError):
    """Carries the failed command line and Podman's stderr for debugging."""

    def __init__(self, message: str, command: str = "", stderr: str = "") -> None:
        self.command = command
        self.stderr = stderr
        super().__init__(message)


class MachineCommandFailed(_CommandFailure, PermanentError):
    """A `podman machine` command failed in a way podform does not recognise."""


class MachineNotFound(MachineCommandFailed):
    """`<name>: VM does not exist` (on 5.x also when it exists under another provider)."""


class MachineExists(MachineCommandFailed):
    """init: the machine exists (5.x: in this provider; 6.x: in any provider)."""


class ConnectionNameTaken(MachineExists):
    """init: a system connection `<name>` or `<name>-root` exists, e.g. from another provider."""


class MachineAlreadyRunning(MachineCommandFailed):
    """start: the machine is already running."""


class OnlyOneVmActive(MachineCommandFailed):
    """start: on macOS another applehv/libkrun machine is starting or running."""


class MachineMustBeStopped(MachineCommandFailed):
    """set (or rm without -f) refused because the machine is running."""


class DiskShrinkRefused(MachineCommandFailed):
    """set --disk-size: the disk can only grow."""


class KrunkitMissing(MachineCommandFailed):
    """libkrun needs the krunkit helper, which Homebrew's podman does not bundle."""


class ProviderUnsupported(MachineCommandFailed):
    """The provider is unknown or not available on this OS."""


class MachineWrongState(_CommandFailure, TemporaryError):
    """The machine is between states (e.g. starting); a later pass may succeed."""


class MachineBootFailed(_CommandFailure, TemporaryError):
    """start: the VM did not reach the running state."""


KRUNKIT_FIX = (
    "libkrun machines need krunkit, which is not installed: "
    "`brew tap slp/krun && brew install krunkit`, or install Podman with the .pkg installer "
    "from podman.io, which bundles it"
)

# Podman's texts (pkg/machine/define/errors.go, shim/host.go, apple/apple.go), most specific
# first: "system connection ... already exists" must win over "already exists".
_KNOWN: tuple[tuple[str, type[_CommandFailure]], ...] = (
    ("only one VM can be active at a time", OnlyOneVmActive),
    ("VM does not exist", MachineNotFound),
    ("already running", MachineAlreadyRunning),
    ("unable to change settings unless vm is stopped", MachineMustBeStopped),
    ("cannot be destroyed", MachineMustBeStopped),
    ("new disk size must be larger than", DiskShrinkRefused),
    ("system connection", ConnectionNameTaken),
    ("already exists", MachineExists),
    ('"krunkit": executable file not found', KrunkitMissing),
    ("unknown VMType", ProviderUnsupported),
    ("unsupported virtualization provider", ProviderUnsupported),
    ("unsupported provider", ProviderUnsupported),
    ("VM in wrong state to perform action", MachineWrongState),
    ("did not transition into running state", MachineBootFailed),
)


def translate_failure(command: str, stderr: str) -> PodformError:
    """Podman's `Error: ...` text (exit 125) -> the matching typed error."""
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    errors = [line.removeprefix("Error: ") for line in lines if line.startswith("Error: ")]
    detail = (errors or lines or ["no error message"])[-1]
    for needle, cls in _KNOWN:
        if needle in stderr:
            message = KRUNKIT_FIX if cls is KrunkitMissing else detail
            return cls(message, command, stderr)
    return MachineCommandFailed(f"{detail} (command: {command})", command, stderr)
