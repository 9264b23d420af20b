"""MachineCli against the fake `podman` through the real SubprocessRunner, Podman 5.8 and 6.0.

Pins what the engine relies on: parsed ObservedMachine values, the argv and provider env each
Podman version gets, 4.x refused, and each Podman error text turned into its typed error.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from helpers import VERSIONS, MakeFake

from reconciler.engine.observed import ClientInfo, ObservedMachine
from reconciler.errors import PermanentError, TemporaryError
from reconciler.runtime.backends.machine_cli import MachineCli, parse_version
from reconciler.runtime.backends.machine_errors import (
    ConnectionNameTaken,
    DiskShrinkRefused,
    KrunkitMissing,
    MachineAlreadyRunning,
    MachineCommandFailed,
    MachineExists,
    MachineMustBeStopped,
    MachineNotFound,
    MachineWrongState,
    OnlyOneVmActive,
    translate_failure,
)
from reconciler.runtime.backends.machine_runner import RunResult, SubprocessRunner


@pytest.mark.parametrize(
    ("text", "expected"),
    [("5.8.2", (5, 8, 2)), ("6.0.0-rc1", (6, 0, 0)), ("6.0.0-dev", (6, 0, 0)), ("5.3", (5, 3, 0))],
)
def test_parse_version(text: str, expected: tuple[int, int, int]) -> None:
    """Version strings with pre-release suffixes parse to their numeric triple."""
    assert parse_version(text) == expected


@pytest.mark.parametrize(
    ("version", "triple", "default"),
    [
        ("5.8.2", (5, 8, 2), "applehv"),
        ("6.0.1", (6, 0, 1), "libkrun"),
        ("5.2.1", (5, 2, 1), "applehv"),
    ],
)
def test_client_info_falls_back_to_machine_info_without_a_server(
    make_fake: MakeFake, version: str, triple: tuple[int, int, int], default: str
) -> None:
    """macOS, no machine running: `version` fails, `machine info` answers; read once, cached."""
    fake = make_fake(version)
    expected = ClientInfo(triple, "darwin", "arm64", default)
    assert fake.cli.client_info() == expected
    assert fake.cli.client_info() == expected
    assert [c["argv"] for c in fake.entries()] == [
        ["version", "--format", "json"],
        ["machine", "info", "--format", "json"],
    ]


@pytest.mark.parametrize(
    ("version", "osarch", "expected"),
    [
        ("5.8.2", "linux/amd64", ClientInfo((5, 8, 2), "linux", "amd64", "qemu")),
        ("6.0.1", "linux/arm64", ClientInfo((6, 0, 1), "linux", "arm64", "qemu")),
    ],
)
def test_client_info_from_version_when_it_answers(
    make_fake: MakeFake, version: str, osarch: str, expected: ClientInfo
) -> None:
    """Where `podman version` answers, Client.Version/OsArch are used and nothing else runs."""
    fake = make_fake(version, osarch=osarch)
    assert fake.cli.client_info() == expected
    assert [c["argv"] for c in fake.entries()] == [["version", "--format", "json"]]


def test_client_info_from_version_with_a_running_machine(make_fake: MakeFake) -> None:
    """macOS with a machine running: `version` answers Client and Server; Client is used."""
    fake = make_fake("6.0.1")
    fake.cli.init("m", "libkrun", 2, 2048, 10, False, [])
    fake.cli.start("m", "libkrun")
    fresh = fake.machine_cli()
    assert fresh.client_info() == ClientInfo((6, 0, 1), "darwin", "arm64", "libkrun")


def test_client_section_is_used_even_when_version_fails() -> None:
    """A Client section on stdout counts even with exit 125 (the server part failed)."""
    client = {"Version": "5.8.2", "OsArch": "darwin/arm64"}
    runner = ScriptedRunner(
        {"version": RunResult(125, json.dumps({"Client": client}), "Error: x\n")}
    )
    cli = MachineCli("podman", runner)
    assert cli.client_info() == ClientInfo((5, 8, 2), "darwin", "arm64", "applehv")
    assert runner.argvs == [["podman", "version", "--format", "json"]]


@pytest.mark.parametrize(
    "stdout", ["", "not json", "[]", '{"Client": {}}', '{"Client": {"Version": "x"}}']
)
def test_unusable_version_output_falls_back_to_machine_info(stdout: str) -> None:
    """Nothing usable from `version` (empty, garbage, no Client): `machine info` decides."""
    info = {"Host": {"OS": "darwin", "Arch": "arm64", "VMType": "libkrun"}, "Version": {}}
    info["Version"] = {"Version": "5.8.2", "OsArch": "darwin/arm64"}
    runner = ScriptedRunner(
        {
            "version": RunResult(125, stdout, "Error: x\n"),
            "info": RunResult(0, json.dumps(info), ""),
        }
    )
    assert MachineCli("podman", runner).client_info() == ClientInfo(
        (5, 8, 2), "darwin", "arm64", "libkrun"
    )


def test_podman_4_is_refused(make_fake: MakeFake) -> None:
    """Podman 4.x is refused before any machine command that looks at machines runs."""
    fake = make_fake("4.9.3")
    with pytest.raises(PermanentError, match=r"^Podman 4\.x machines are not supported; install"):
        fake.cli.list_machines()
    assert [c["argv"][:2] for c in fake.entries()] == [["version", "--format"], ["machine", "info"]]


@pytest.mark.parametrize("version", VERSIONS)
def test_list_machines_parses_both_providers(make_fake: MakeFake, version: str) -> None:
    """list_machines returns every provider's machines in MiB/GiB, socket only while running."""
    fake = make_fake(version, socket="/tmp/podform-test.sock")
    cli = fake.cli
    cli.init("gpu", "libkrun", 6, 12288, 120, True, ["/m:/models:ro"])
    cli.init("web", "applehv", 2, 4096, 50, False, [])
    cli.start("gpu", "libkrun")
    machines = sorted(cli.list_machines(), key=lambda m: m.name)
    assert machines == [
        ObservedMachine(
            "gpu", "libkrun", "running", 6, 12288, 120, True, (), "/tmp/podform-test.sock"
        ),
        ObservedMachine("web", "applehv", "stopped", 2, 4096, 50, False, (), ""),
    ]


def test_list_machines_when_none_exist(make_fake: MakeFake) -> None:
    """No machines: an empty list and no inspect call."""
    fake = make_fake()
    assert fake.cli.list_machines() == []
    assert not any(c["argv"][1] == "inspect" for c in fake.entries())


def test_5x_names_the_provider_on_every_machine_call(make_fake: MakeFake) -> None:
    """5.8: discovery uses --all-providers; inspect and every change set the provider env."""
    fake = make_fake("5.8.2")
    fake.cli.init("gpu", "libkrun", 4, 8192, 100, False, [])
    fake.cli.start("gpu", "libkrun")
    with pytest.raises(MachineMustBeStopped):  # refused while running, still names the provider
        fake.cli.set("gpu", "libkrun", memory_mib=4096)
    fake.cli.stop("gpu", "libkrun")
    fake.cli.list_machines()
    fake.cli.rm("gpu", "libkrun")
    calls = [(c["argv"], c["provider_env"]) for c in fake.entries()]
    assert calls == [
        (["version", "--format", "json"], None),
        (["machine", "info", "--format", "json"], None),
        (["machine", "init", "--cpus", "4", "--memory", "8192", "--disk-size", "100",
          "--rootful=false", "gpu"], "libkrun"),
        (["machine", "start", "--no-info", "gpu"], "libkrun"),
        (["machine", "set", "--memory", "4096", "gpu"], "libkrun"),
        (["machine", "stop", "gpu"], "libkrun"),
        (["machine", "list", "--all-providers", "--format", "json"], None),
        (["machine", "inspect", "gpu"], "libkrun"),
        (["machine", "rm", "-f", "gpu"], "libkrun"),
    ]  # fmt: skip


def test_6x_passes_init_provider_and_never_all_providers(make_fake: MakeFake) -> None:
    """6.0: init --provider, no provider env, no --all-providers, start never prompts."""
    fake = make_fake("6.0.1")
    fake.cli.init("gpu", "applehv", 4, 8192, 100, True, ["/a:/b"])
    fake.cli.start("gpu", "applehv")
    fake.cli.stop("gpu", "applehv")
    fake.cli.start("gpu", "applehv")
    assert [m.provider for m in fake.cli.list_machines()] == ["applehv"]
    calls = [(c["argv"], c["provider_env"]) for c in fake.entries()]
    assert calls == [
        (["version", "--format", "json"], None),
        (["machine", "info", "--format", "json"], None),
        (["machine", "init", "--cpus", "4", "--memory", "8192", "--disk-size", "100",
          "--rootful=true", "--volume", "/a:/b", "--provider", "applehv", "gpu"], None),
        (["machine", "start", "--no-info", "--update-connection=false", "gpu"], None),
        (["machine", "stop", "gpu"], None),
        (["machine", "start", "--no-info", "--update-connection=false", "gpu"], None),
        (["machine", "list", "--format", "json"], None),
        (["machine", "inspect", "gpu"], None),
    ]  # fmt: skip


def test_before_5_3_each_provider_is_listed_in_turn(make_fake: MakeFake) -> None:
    """5.0-5.2 have no --all-providers: list runs once per macOS provider with its env."""
    fake = make_fake("5.2.1")
    fake.cli.init("a", "applehv", 2, 2048, 100, False, [])
    fake.cli.init("k", "libkrun", 2, 2048, 100, False, [])
    assert sorted((m.name, m.provider) for m in fake.cli.list_machines()) == [
        ("a", "applehv"),
        ("k", "libkrun"),
    ]
    lists = [(c["argv"], c["provider_env"]) for c in fake.entries() if c["argv"][1] == "list"]
    assert lists == [
        (["machine", "list", "--format", "json"], "applehv"),
        (["machine", "list", "--format", "json"], "libkrun"),
    ]


def test_stale_starting_and_symlinked_socket(make_fake: MakeFake) -> None:
    """A stale Starting flag reads as "starting"; a long socket path yields its ~/.podman symlink."""
    long_path = "/var/folders/" + "x" * 100 + "/T/podman/a-api.sock"
    fake = make_fake(socket=long_path)
    fake.cli.init("a", "applehv", 2, 2048, 100, False, [])
    fake.cli.start("a", "applehv")
    fake.cli.init("b", "applehv", 2, 2048, 100, False, [])
    fake.edit("applehv/b", starting=True)
    by_name = {m.name: m for m in fake.cli.list_machines()}
    assert by_name["a"].socket_path == fake.env["HOME"] + "/.podman/a-api.sock"
    assert (by_name["b"].state, by_name["b"].socket_path) == ("starting", "")


def test_set_passes_only_given_flags_and_nothing_for_no_change(make_fake: MakeFake) -> None:
    """set sends just the given settings; with none it does not run podman at all."""
    fake = make_fake()
    fake.cli.init("a", "applehv", 2, 2048, 100, False, [])
    fake.cli.set("a", "applehv", disk_gib=150, rootful=True)
    fake.cli.set("a", "applehv")
    sets = [c["argv"] for c in fake.entries() if c["argv"][1] == "set"]
    assert sets == [["machine", "set", "--disk-size", "150", "--rootful=true", "a"]]
    [machine] = fake.cli.list_machines()
    assert (machine.disk_gib, machine.rootful) == (150, True)


def running_a(cli: MachineCli, provider: str = "applehv") -> None:
    cli.init("a", provider, 2, 2048, 100, False, [])
    cli.start("a", provider)


ERRORS: list[tuple[str, Callable[[MachineCli], None], type[Exception], str]] = [
    ("missing", lambda c: c.start("ghost", "applehv"), MachineNotFound, "ghost: VM does not exist"),
    ("rm missing", lambda c: c.rm("ghost", "applehv"), MachineNotFound, "ghost"),
    ("already running", lambda c: (running_a(c), c.start("a", "applehv")), MachineAlreadyRunning,
     'unable to start "a": already running'),
    ("one active", lambda c: (running_a(c), (c.init("b", "libkrun", 2, 2048, 100, False, []), c.start("b", "libkrun"))),
     OnlyOneVmActive, "only one VM can be active at a time"),
    ("set running", lambda c: (running_a(c), c.set("a", "applehv", cpus=1)), MachineMustBeStopped,
     "unable to change settings unless vm is stopped"),
    ("shrink", lambda c: (c.init("a", "applehv", 2, 2048, 100, False, []),
                          c.set("a", "applehv", disk_gib=50)),
     DiskShrinkRefused, "new disk size must be larger than 100 GB"),
    ("exists", lambda c: (running_a(c), c.init("a", "applehv", 2, 2048, 100, False, [])),
     MachineExists, "already exists"),
    ("krunkit", lambda c: running_a(c, "libkrun"), KrunkitMissing,
     "brew tap slp/krun && brew install krunkit"),
]  # fmt: skip


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize(("case", "action", "error", "text"), ERRORS, ids=[e[0] for e in ERRORS])
def test_podman_errors_become_typed_errors(
    make_fake: MakeFake,
    version: str,
    case: str,
    action: Callable[[MachineCli], None],
    error: type[Exception],
    text: str,
) -> None:
    """Each Podman error text raises its typed error, whose message says what happened."""
    fake = make_fake(version, no_krunkit="1")
    with pytest.raises(error) as caught:
        action(fake.cli)
    assert text in str(caught.value)
    assert isinstance(caught.value, PermanentError)


def test_name_taken_by_another_provider_on_5x(make_fake: MakeFake) -> None:
    """5.x: reusing a name under another provider fails on the global connection name."""
    fake = make_fake("5.8.2")
    fake.cli.init("a", "applehv", 2, 2048, 100, False, [])
    with pytest.raises(ConnectionNameTaken, match='system connection "a" already exists'):
        fake.cli.init("a", "libkrun", 2, 2048, 100, False, [])


def test_stop_while_starting_is_temporary(make_fake: MakeFake) -> None:
    """stop on a machine stuck in Starting is a TemporaryError (wrong state), not permanent."""
    fake = make_fake()
    fake.cli.init("a", "applehv", 2, 2048, 100, False, [])
    fake.edit("applehv/a", starting=True)
    with pytest.raises(MachineWrongState) as caught:
        fake.cli.stop("a", "applehv")
    assert isinstance(caught.value, TemporaryError)


def test_unknown_failure_keeps_last_line_and_command() -> None:
    """An unrecognised failure is permanent and names Podman's last error line and the command."""
    err = translate_failure("podman machine start a", "warning: x\nError: something odd\n")
    assert type(err) is MachineCommandFailed
    assert str(err) == "something odd (command: podman machine start a)"
    assert err.stderr == "warning: x\nError: something odd\n"


@pytest.mark.parametrize("name", ["a;rm -rf /", "-rf", "x" * 31, ""])
def test_bad_names_are_refused_before_podman_runs(make_fake: MakeFake, name: str) -> None:
    """Names Podman would refuse never reach the runner."""
    fake = make_fake()
    with pytest.raises(PermanentError, match="invalid machine name"):
        fake.cli.start(name, "applehv")
    assert fake.entries() == []


def test_subprocess_runner_uses_argv_list_and_callers_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """SubprocessRunner passes a list (no shell), no stdin, and the caller's environment
    (proxies, certificates, locale included) without the variables that redirect podman."""
    seen: dict[str, Any] = {}

    def fake_run(argv: object, **kwargs: Any) -> subprocess.CompletedProcess[str]:
        seen["argv"], seen["kwargs"] = argv, kwargs
        return subprocess.CompletedProcess(argv, 0, "out", "err")  # type: ignore[arg-type]

    monkeypatch.setattr(subprocess, "run", fake_run)
    base = {"PATH": "/bin", "HOME": "/h", "XDG_CONFIG_HOME": "/c", "DOCKER_HOST": "tcp://x",
            "CONTAINER_HOST": "unix:///x", "CONTAINER_CONNECTION": "other",
            "CONTAINERS_CONF": "/cc", "HTTPS_PROXY": "http://proxy:3128", "NO_PROXY": "local",
            "SSL_CERT_FILE": "/ca.pem", "LANG": "C.UTF-8", "TMPDIR": "/t"}  # fmt: skip
    result = SubprocessRunner(base_env=base).run(
        ["podman", "machine", "stop", "a;b"], {"CONTAINERS_MACHINE_PROVIDER": "libkrun"}, 5.0
    )
    assert result == RunResult(0, "out", "err")
    assert seen["argv"] == ["podman", "machine", "stop", "a;b"]
    assert not seen["kwargs"].get("shell", False)
    assert seen["kwargs"]["stdin"] is subprocess.DEVNULL
    assert seen["kwargs"]["env"] == {
        "PATH": "/bin", "HOME": "/h", "XDG_CONFIG_HOME": "/c", "CONTAINERS_CONF": "/cc",
        "HTTPS_PROXY": "http://proxy:3128", "NO_PROXY": "local", "SSL_CERT_FILE": "/ca.pem",
        "LANG": "C.UTF-8", "TMPDIR": "/t", "CONTAINERS_MACHINE_PROVIDER": "libkrun",
    }  # fmt: skip


def test_subprocess_runner_timeout_and_missing_binary(tmp_path: Path) -> None:
    """A command past its timeout is a TemporaryError; a missing binary is permanent."""
    with pytest.raises(TemporaryError, match=r"did not finish within 0\.2s"):
        SubprocessRunner().run(["sleep", "5"], None, 0.2)
    with pytest.raises(PermanentError, match="cannot run"):
        SubprocessRunner().run([str(tmp_path / "no-podman")], None, 5.0)


class ScriptedRunner:
    """A Runner answering from a table, for cases the fake cannot stage (races)."""

    def __init__(self, answers: dict[str, RunResult]) -> None:
        self.answers = answers
        self.argvs: list[list[str]] = []

    def run(self, argv: list[str], env: dict[str, str] | None, timeout: float) -> RunResult:
        self.argvs.append(argv)
        key = argv[2] if argv[1] == "machine" else argv[1]
        if key == "version" and key not in self.answers:  # macOS, no machine running
            return RunResult(125, "", "Error: unable to connect to Podman socket\n")
        return self.answers[key]


def test_machine_removed_between_list_and_inspect_is_left_out() -> None:
    """A machine that vanished before inspect is not reported; the others still are."""
    entry = {"Name": "", "Running": False, "Starting": False, "VMType": "applehv", "CPUs": 1,
             "Memory": str(2048 * 1024**2), "DiskSize": str(10 * 1024**3)}  # fmt: skip
    info = {"Version": {"Version": "5.8.2", "OsArch": "darwin/arm64"},
            "Host": {"OS": "darwin", "Arch": "arm64", "VMType": "applehv"}}  # fmt: skip
    runner = ScriptedRunner(
        {
            "info": RunResult(0, json.dumps(info), ""),
            "list": RunResult(0, json.dumps([{**entry, "Name": "a"}, {**entry, "Name": "b"}]), ""),
            "inspect": RunResult(
                125, json.dumps([{"Name": "a", "Rootful": True}]), "Error: b: VM does not exist\n"
            ),
        }
    )
    [machine] = MachineCli("podman", runner).list_machines()
    assert (machine.name, machine.rootful, machine.memory_mib, machine.disk_gib) == (
        "a",
        True,
        2048,
        10,
    )


def test_sizes_that_are_not_whole_units_are_refused() -> None:
    """list sizes must be whole MiB/GiB; anything else is reported, not rounded."""
    info = {"Version": {"Version": "6.0.0"}, "Host": {"OS": "darwin", "Arch": "arm64"}}
    entry = {"Name": "a", "VMType": "libkrun", "CPUs": 1, "Memory": "1000", "DiskSize": "0"}
    runner = ScriptedRunner(
        {
            "info": RunResult(0, json.dumps(info), ""),
            "list": RunResult(0, json.dumps([entry]), ""),
            "inspect": RunResult(0, json.dumps([{"Name": "a"}]), ""),
        }
    )
    with pytest.raises(PermanentError, match="Memory of 1000 bytes is not a whole unit"):
        MachineCli("podman", runner).list_machines()
