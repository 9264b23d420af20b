"""Pins the fake `podman` to Podman's documented machine behaviour.

podform's machine layer is tested against tests/fake_podman/podman, so the fake's own
faithfulness is tested here: JSON shapes and units (Podman 5.8.2 cmd/podman/machine/list.go,
pkg/machine/config.go), error texts with exit 125, per-provider visibility in 5.x, every
provider in 6.x, and one running applehv/libkrun VM at a time on macOS.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from helpers import FAKE, FakePodman, Out

Podman = Callable[..., Out]


@pytest.fixture
def podman(tmp_path: Path) -> Podman:
    """Run the fake with a private state file; keyword args become FAKE_PODMAN_* / provider env."""
    return FakePodman(tmp_path).run


def listed(out: Out) -> list[dict[str, object]]:
    assert out.rc == 0, out.stderr
    data = json.loads(out.stdout)
    assert isinstance(data, list)
    return data


def names(out: Out) -> list[str]:
    return [str(m["Name"]) for m in listed(out)]


LIST_KEYS_58 = [
    "Name", "Default", "Created", "Running", "Starting", "LastUp", "Stream", "VMType", "CPUs",
    "Memory", "Swap", "DiskSize", "Port", "RemoteUsername", "IdentityPath", "UserModeNetworking",
]  # fmt: skip
INSPECT_KEYS = [
    "ConfigDir", "ConnectionInfo", "Created", "LastUp", "Name", "Resources", "SSHConfig",
    "State", "UserModeNetworking", "Rootful", "Rosetta",
]  # fmt: skip


def test_list_shape_units_and_formatting(podman: Podman) -> None:
    """list: ListReporter keys in order, sizes as byte strings, 4-space indent, no newline."""
    assert (
        podman("machine", "init", "gpu", "--cpus", "6", "-m", "8192", "--disk-size", "50").rc == 0
    )
    out = podman("machine", "list", "--format", "json")
    [entry] = listed(out)
    assert list(entry) == LIST_KEYS_58
    assert (entry["Memory"], entry["DiskSize"], entry["Swap"]) == ("8589934592", "53687091200", "0")
    assert (entry["CPUs"], entry["VMType"], entry["Stream"]) == (6, "applehv", "default")
    assert entry["LastUp"] == "0001-01-01T00:00:00Z"
    assert entry["UserModeNetworking"] is True
    assert out.stdout.startswith('[\n    {\n        "Name"') and not out.stdout.endswith("\n")


def test_list_without_machines_and_without_swap_before_5_6(podman: Podman) -> None:
    """An empty list prints `[]`; the Swap key only exists from 5.6.0."""
    assert podman("machine", "list", "--format", "json").stdout == "[]"
    podman("machine", "init", "a", version="5.5.0")
    assert "Swap" not in listed(podman("machine", "list", "--format", "json", version="5.5.0"))[0]


def test_inspect_shape_units_and_formatting(podman: Podman) -> None:
    """inspect: InspectInfo keys, Memory in MiB and DiskSize in GiB, 5-space indent, newline."""
    podman("machine", "init", "gpu", "--memory", "12288", "--disk-size", "80", "--rootful")
    out = podman("machine", "inspect", "gpu")
    assert out.rc == 0 and out.stdout.endswith("]\n")
    assert out.stdout.startswith('[\n     {\n          "ConfigDir"')
    [info] = json.loads(out.stdout)
    assert list(info) == INSPECT_KEYS
    assert info["Resources"] == {"CPUs": 4, "DiskSize": 80, "Memory": 12288, "USBs": []}
    assert info["ConnectionInfo"] == {
        "PodmanSocket": {"Path": "/tmp/podman/gpu-api.sock"},
        "PodmanPipe": None,
    }
    assert (info["State"], info["Rootful"]) == ("stopped", True)
    assert info["ConfigDir"]["Path"].endswith("/.config/containers/podman/machine/applehv")


def test_inspect_reports_socket_override_and_symlink_for_long_paths(podman: Podman) -> None:
    """FAKE_PODMAN_SOCKET is reported as the socket; past 103 chars a ~/.podman symlink appears."""
    podman("machine", "init", "gpu")
    short = json.loads(podman("machine", "inspect", "gpu", socket="/run/t.sock").stdout)[0]
    assert short["ConnectionInfo"]["PodmanSocket"] == {"Path": "/run/t.sock"}
    long_path = "/var/folders/" + "x" * 100 + "/podman/gpu-api.sock"
    info = json.loads(podman("machine", "inspect", "gpu", socket=long_path).stdout)[0]
    sock = info["ConnectionInfo"]["PodmanSocket"]
    assert sock["Path"] == long_path and sock["symlink"].endswith("/.podman/gpu-api.sock")


def test_inspect_unknown_name_prints_the_rest_and_fails(podman: Podman) -> None:
    """inspect with an unknown name still prints the known ones, then exits 125."""
    podman("machine", "init", "a")
    out = podman("machine", "inspect", "a", "ghost")
    assert out.rc == 125
    assert [m["Name"] for m in json.loads(out.stdout)] == ["a"]
    assert out.stderr == "Error: ghost: VM does not exist\n"


def test_5x_sees_only_the_current_provider(podman: Podman) -> None:
    """5.8: machines of another provider are invisible unless --all-providers is given."""
    podman("machine", "init", "apple")
    podman("machine", "init", "krun", provider="libkrun")
    assert names(podman("machine", "list", "--format", "json")) == ["apple"]
    assert names(podman("machine", "list", "--format", "json", provider="libkrun")) == ["krun"]
    both = listed(podman("machine", "list", "--all-providers", "--format", "json"))
    assert {(m["Name"], m["VMType"]) for m in both} == {("apple", "applehv"), ("krun", "libkrun")}
    out = podman("machine", "start", "krun")
    assert (out.rc, out.stderr) == (125, "Error: krun: VM does not exist\n")


def test_6x_sees_every_provider_and_defaults_to_libkrun(podman: Podman) -> None:
    """6.0: init --provider exists, the default is libkrun, every command sees every provider."""
    assert podman("machine", "init", "apple", "--provider", "applehv", version="6.0.1").rc == 0
    assert podman("machine", "init", "krun", version="6.0.1").rc == 0
    both = listed(podman("machine", "list", "--format", "json", version="6.0.1"))
    assert {(m["Name"], m["VMType"]) for m in both} == {("apple", "applehv"), ("krun", "libkrun")}
    assert podman("machine", "start", "apple", provider="libkrun", version="6.0.1").rc == 0


@pytest.mark.parametrize(
    ("version", "argv", "flag"),
    [
        ("6.0.1", ["machine", "list", "--all-providers", "--format", "json"], "--all-providers"),
        ("5.2.1", ["machine", "list", "--all-providers", "--format", "json"], "--all-providers"),
        ("5.8.2", ["machine", "init", "--provider", "libkrun", "x"], "--provider"),
        ("5.8.2", ["machine", "start", "--update-connection=false", "x"], "--update-connection"),
    ],
)
def test_flags_that_do_not_exist_in_a_version(
    podman: Podman, version: str, argv: list[str], flag: str
) -> None:
    """Flags outside their versions fail like cobra: `Error: unknown flag: ...`, exit 125."""
    out = podman(*argv, version=version)
    assert out.rc == 125
    assert out.stderr.startswith(f"Error: unknown flag: {flag}\n")


def test_one_running_vm_at_a_time_on_macos(podman: Podman) -> None:
    """applehv/libkrun: a second start fails, with Podman's texts for same and other provider."""
    for name in ("a", "b"):
        podman("machine", "init", name)
    podman("machine", "init", "k", provider="libkrun")
    assert podman("machine", "start", "a").rc == 0
    same = podman("machine", "start", "b")
    assert (same.rc, same.stderr) == (
        125,
        'Error: unable to start "b": a already starting or running: '
        "only one VM can be active at a time\n",
    )
    other = podman("machine", "start", "k", provider="libkrun")
    assert other.stderr == (
        "Error: unable to start: a already starting or running on the applehv provider: "
        "only one VM can be active at a time\n"
    )
    assert podman("machine", "stop", "a").rc == 0
    assert podman("machine", "start", "k", provider="libkrun").rc == 0


def test_before_5_4_providers_do_not_exclude_each_other(podman: Podman) -> None:
    """Before 5.4.0 an applehv and a libkrun VM could run at once (#25112)."""
    podman("machine", "init", "a", version="5.3.1")
    podman("machine", "init", "k", provider="libkrun", version="5.3.1")
    assert podman("machine", "start", "a", version="5.3.1").rc == 0
    assert podman("machine", "start", "k", provider="libkrun", version="5.3.1").rc == 0


def test_linux_qemu_machines_may_run_together(podman: Podman) -> None:
    """The one-VM rule is macOS only: two qemu machines on Linux both start."""
    for name in ("a", "b"):
        assert podman("machine", "init", name, "--now", osarch="linux/amd64").rc == 0
    running = listed(podman("machine", "list", "--format", "json", osarch="linux/amd64"))
    assert {m["VMType"] for m in running} == {"qemu"} and all(m["Running"] for m in running)


def test_stale_starting_blocks_other_starts(podman: Podman, tmp_path: Path) -> None:
    """A persisted Starting flag (crash during start) counts as active and is listed as such."""
    podman("machine", "init", "a")
    podman("machine", "init", "b")
    state_file = tmp_path / "state.json"
    state = json.loads(state_file.read_text())
    state["machines"]["applehv/a"]["starting"] = True
    state_file.write_text(json.dumps(state))
    entry = listed(podman("machine", "list", "--format", "json"))[0]
    assert (entry["Name"], entry["Running"], entry["Starting"]) == ("a", False, True)
    assert "only one VM can be active" in podman("machine", "start", "b").stderr
    assert podman("machine", "stop", "a").stderr == "Error: VM in wrong state to perform action\n"


ERROR_CASES = [
    # (version, setup commands, failing command, expected stderr)
    ("5.8.2", [["init", "a", "--now"]], ["start", "a"], 'unable to start "a": already running'),
    ("5.8.2", [["init", "a", "--now"]], ["set", "--cpus", "2", "a"],
     "unable to change settings unless vm is stopped"),
    ("5.8.2", [["init", "a", "--disk-size", "50"]], ["set", "--disk-size", "40", "a"],
     "new disk size must be larger than 50 GB"),
    ("5.8.2", [["init", "a", "--disk-size", "50"]], ["set", "--disk-size", "50", "a"],
     "new disk size must be larger than 50 GB"),
    ("5.8.2", [["init", "a"]], ["init", "a"], "a: VM already exists"),
    ("6.0.1", [["init", "a"]], ["init", "--provider", "applehv", "a"],
     'machine "a" already exists'),
    ("5.8.2", [["init", "a", "--now"]], ["rm", "a"], 'running vm "a" cannot be destroyed'),
    ("5.8.2", [], ["rm", "-f", "ghost"], "ghost: VM does not exist"),
    ("5.8.2", [], ["stop", "ghost"], "ghost: VM does not exist"),
    ("5.8.2", [], ["init", "a" * 31], f'machine name "{"a" * 31}" must be 30 characters or less'),
    ("5.8.2", [], ["init", "_bad"],
     'invalid name "_bad": names must match [a-zA-Z0-9][a-zA-Z0-9_.-]*: invalid argument'),
    ("5.8.2", [], ["init", "libkrun"], 'cannot use "libkrun" for a machine name'),
    ("6.0.1", [], ["init", "--provider", "LibKrun", "a"], 'unsupported provider "LibKrun"'),
    ("5.8.2", [], ["init", "a", "--usb", "bus=1,devnum=2"], None),
]  # fmt: skip


@pytest.mark.parametrize(("version", "setup", "argv", "message"), ERROR_CASES)
def test_error_texts_and_exit_125(
    podman: Podman, version: str, setup: list[list[str]], argv: list[str], message: str | None
) -> None:
    """Each refusal prints Podman's `Error: <text>` and exits 125 (None: the call succeeds)."""
    for step in setup:
        assert podman("machine", *step, version=version).rc == 0
    out = podman("machine", *argv, version=version)
    if message is None:
        assert out.rc == 0, out.stderr
    else:
        assert (out.rc, out.stderr) == (125, f"Error: {message}\n")


def test_name_reuse_across_providers_is_blocked_by_connections(podman: Podman) -> None:
    """5.x: a libkrun machine cannot take the name of an applehv one (connections are global)."""
    podman("machine", "init", "podman-machine-default")
    out = podman("machine", "init", provider="libkrun")
    assert out.rc == 125
    assert out.stderr.startswith(
        'Error: system connection "podman-machine-default" already exists. consider a different'
    )


def test_provider_env_values(podman: Podman) -> None:
    """CONTAINERS_MACHINE_PROVIDER is trimmed and lower-cased; unknown or foreign ones fail."""
    assert podman("machine", "init", "k", provider=" LibKrun ").rc == 0
    assert names(podman("machine", "list", "--format", "json", provider="libkrun")) == ["k"]
    bad = podman("machine", "list", "--format", "json", provider="vbox")
    assert (bad.rc, bad.stderr) == (125, "Error: unknown VMType `vbox`\n")
    qemu = podman("machine", "list", "--format", "json", provider="qemu")
    assert qemu.stderr == "Error: unsupported virtualization provider: `qemu`\n"


def test_libkrun_start_without_krunkit(podman: Podman) -> None:
    """FAKE_PODMAN_NO_KRUNKIT=1: starting a libkrun machine fails with the exec error."""
    podman("machine", "init", "k", provider="libkrun")
    out = podman("machine", "start", "k", provider="libkrun", no_krunkit="1")
    assert out.rc == 125
    assert out.stderr == 'Error: exec: "krunkit": executable file not found in $PATH\n'


def test_stop_is_idempotent_and_records_last_up(podman: Podman) -> None:
    """stop on a stopped machine succeeds; LastUp is written by stop only."""
    podman("machine", "init", "a", "--now")
    assert listed(podman("machine", "list", "--format", "json"))[0]["LastUp"].startswith("0001")
    assert podman("machine", "stop", "a").rc == 0
    last_up = listed(podman("machine", "list", "--format", "json"))[0]["LastUp"]
    assert not last_up.startswith("0001")
    again = podman("machine", "stop", "a")
    assert (again.rc, again.stdout) == (0, 'Machine "a" stopped successfully\n')


def test_set_applies_only_given_flags(podman: Podman) -> None:
    """set on a stopped machine changes just the flags passed."""
    podman("machine", "init", "a", "--cpus", "2", "--memory", "4096", "--disk-size", "50")
    assert podman("machine", "set", "--memory", "8192", "--disk-size", "60", "a").rc == 0
    info = json.loads(podman("machine", "inspect", "a").stdout)[0]
    assert info["Resources"]["CPUs"] == 2
    assert (info["Resources"]["Memory"], info["Resources"]["DiskSize"]) == (8192, 60)


def test_default_flag_follows_connections(podman: Podman) -> None:
    """Default is true for the first rootless machine, false when its -root connection is default."""
    podman("machine", "init", "a")
    podman("machine", "init", "b")
    assert {
        m["Name"]: m["Default"] for m in listed(podman("machine", "list", "--format", "json"))
    } == {
        "a": True,
        "b": False,
    }
    podman("machine", "set", "--rootful", "a")
    assert not any(m["Default"] for m in listed(podman("machine", "list", "--format", "json")))


def test_rm_force_removes_and_frees_the_name(podman: Podman) -> None:
    """rm -f stops and removes a running machine and its connections; rm -f again fails."""
    podman("machine", "init", "a", "--now")
    assert podman("machine", "rm", "-f", "a").rc == 0
    assert podman("machine", "list", "--format", "json").stdout == "[]"
    assert podman("machine", "rm", "-f", "a").rc == 125
    assert podman("machine", "init", "a", provider="libkrun").rc == 0


def test_rm_without_force_fails_on_closed_stdin(podman: Podman) -> None:
    """rm without -f prompts; with stdin at EOF the command fails and nothing is removed."""
    podman("machine", "init", "a")
    out = podman("machine", "rm", "a")
    assert (out.rc, out.stderr) == (125, "Error: EOF\n")
    assert names(podman("machine", "list", "--format", "json")) == ["a"]


def test_version_and_machine_info(podman: Podman) -> None:
    """version/--version/machine info report FAKE_PODMAN_VERSION, OS/arch and current provider."""
    linux = json.loads(podman("version", "--format", "json", osarch="linux/amd64").stdout)
    assert linux == {"Client": linux["Client"]}
    assert (linux["Client"]["Version"], linux["Client"]["OsArch"]) == ("5.8.2", "linux/amd64")
    podman("machine", "init", "--now", "m", version="6.0.1")
    both = json.loads(podman("version", "--format", "json", version="6.0.1").stdout)
    assert (both["Client"]["Version"], both["Client"]["OsArch"]) == ("6.0.1", "darwin/arm64")
    assert both["Server"]["OsArch"] == "linux/arm64"
    assert podman("--version", version="4.9.3").stdout == "podman version 4.9.3\n"
    info = json.loads(podman("machine", "info", "--format", "json", osarch="linux/amd64").stdout)
    assert (info["Host"]["OS"], info["Host"]["Arch"], info["Host"]["VMType"]) == (
        "linux",
        "amd64",
        "qemu",
    )
    assert info["Version"]["Version"] == "5.8.2"


def test_version_without_a_running_machine_fails_like_the_remote_client(podman: Podman) -> None:
    """macOS, no machine running: `version` prints nothing on stdout, Podman's texts, exit 125."""
    podman("machine", "init", "m")
    out = podman("version", "--format", "json")
    assert (out.rc, out.stdout) == (125, "")
    first, second = out.stderr.splitlines()
    assert first.startswith("Cannot connect to Podman. Please verify your connection")
    assert second.startswith("Error: unable to connect to Podman socket: failed to connect")


def test_every_call_is_logged_with_provider_env(podman: Podman, tmp_path: Path) -> None:
    """FAKE_PODMAN_LOG gets one JSON line per call: argv and CONTAINERS_MACHINE_PROVIDER."""
    podman("machine", "list", "--format", "json", provider="libkrun")
    podman("machine", "stop", "ghost")
    lines = [json.loads(line) for line in (tmp_path / "calls.log").read_text().splitlines()]
    assert lines == [
        {"argv": ["machine", "list", "--format", "json"], "provider_env": "libkrun", "env": {}},
        {"argv": ["machine", "stop", "ghost"], "provider_env": None, "env": {}},
    ]


def test_settings_come_from_a_config_file_beside_the_binary(tmp_path: Path) -> None:
    """Run through a symlink, the fake reads fake-podman.json beside it, so an empty
    environment keeps its settings; the log records proxy and redirecting variables."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    (bindir / "podman").symlink_to(FAKE)
    config = {"state": str(tmp_path / "s.json"), "log": str(tmp_path / "c.log"),
              "version": "6.0.1", "osarch": "linux/amd64"}  # fmt: skip
    (bindir / "fake-podman.json").write_text(json.dumps(config))
    env = {"PATH": os.environ["PATH"], "HTTPS_PROXY": "http://proxy:3128", "OTHER": "x"}
    done = subprocess.run(
        [str(bindir / "podman"), "--version"], env=env, capture_output=True, text=True, check=False
    )
    assert (done.returncode, done.stdout) == (0, "podman version 6.0.1\n")
    [line] = [json.loads(x) for x in (tmp_path / "c.log").read_text().splitlines()]
    assert line["env"] == {"HTTPS_PROXY": "http://proxy:3128"}


def test_refusals_outside_the_fake(podman: Podman, tmp_path: Path) -> None:
    """Non-machine commands, a missing state variable and 4.x machine commands exit 125."""
    assert podman("ps").stderr == "Error: fake podman: only version and machine are implemented\n"
    assert podman("machine", "list", "--format", "json", version="4.9.3").rc == 125
    done = subprocess.run(
        [str(FAKE), "machine", "list", "--format", "json"],
        env={"PATH": os.environ["PATH"]},
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 125 and "FAKE_PODMAN_STATE" in done.stderr
    assert not (tmp_path / "state.json").exists()
