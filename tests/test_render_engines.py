"""Rendered stacks checked by the engines that will run them, not only by golden files.

- kube: Kubernetes' own OpenAPI schemas in strict mode (kubernetes-validate, 1.31), and
  `podman kube play` on real Podman (env, published port, named volume, device stand-in).
- compose: `podman-compose up -d` on real Podman.
- quadlet: every key against the documented key set of podman-systemd.unit(5) for Podman 5.4
  (the version we target; Debian 12's Podman 4.3 has no Quadlet), and Podman's own generator
  (`quadlet -dryrun`) where one is installed (or PODFORM_TEST_QUADLET names one), whose podman
  commands are then run here. On Debian 12, Debian 13's podman_5.4.2 .deb unpacked with
  `dpkg-deb -x` gives a usr/libexec/podman/quadlet that runs (it needs only libc).
"""

from __future__ import annotations

import configparser
import os
import re
import shlex
import shutil
import socket
import subprocess
import sys
import textwrap
import time
import urllib.request
from pathlib import Path

import pytest
from helpers import everything_stack
from podman_env import STACK_LABEL, cleanup_stack, podform_subprocess, podman_cli

from reconciler.render import Target, render
from reconciler.runtime.orchestrator import load_desired

ROOT = Path(__file__).parent.parent
EXAMPLES = sorted(p.parent for p in (ROOT / "manifests" / "examples").glob("*/stack.yaml"))

# podman-systemd.unit(5) of Podman 5.4.2 (Debian 13's podman_5.4.2+ds1-2), its option tables.
QUADLET_54_KEYS = {
    "Container": frozenset(
        [
            "AddCapability",
            "AddDevice",
            "AddHost",
            "Annotation",
            "AutoUpdate",
            "CgroupsMode",
            "ContainerName",
            "ContainersConfModule",
            "DNS",
            "DNSOption",
            "DNSSearch",
            "DropCapability",
            "Entrypoint",
            "Environment",
            "EnvironmentFile",
            "EnvironmentHost",
            "Exec",
            "ExposeHostPort",
            "GIDMap",
            "GlobalArgs",
            "Group",
            "GroupAdd",
            "HealthCmd",
            "HealthInterval",
            "HealthLogDestination",
            "HealthMaxLogCount",
            "HealthMaxLogSize",
            "HealthOnFailure",
            "HealthRetries",
            "HealthStartPeriod",
            "HealthStartupCmd",
            "HealthStartupInterval",
            "HealthStartupRetries",
            "HealthStartupSuccess",
            "HealthStartupTimeout",
            "HealthTimeout",
            "HostName",
            "IP",
            "IP6",
            "Image",
            "Label",
            "LogDriver",
            "LogOpt",
            "Mask",
            "Mount",
            "Network",
            "NetworkAlias",
            "NoNewPrivileges",
            "Notify",
            "PidsLimit",
            "Pod",
            "PodmanArgs",
            "PublishPort",
            "Pull",
            "ReadOnly",
            "ReadOnlyTmpfs",
            "Rootfs",
            "RunInit",
            "SeccompProfile",
            "Secret",
            "SecurityLabelDisable",
            "SecurityLabelFileType",
            "SecurityLabelLevel",
            "SecurityLabelNested",
            "SecurityLabelType",
            "ShmSize",
            "StartWithPod",
            "StopSignal",
            "StopTimeout",
            "SubGIDMap",
            "SubUIDMap",
            "Sysctl",
            "Timezone",
            "Tmpfs",
            "UIDMap",
            "Ulimit",
            "Unmask",
            "User",
            "UserNS",
            "Volume",
            "WorkingDir",
        ]
    ),
    "Volume": frozenset(
        [
            "ContainersConfModule",
            "Copy",
            "Device",
            "Driver",
            "GlobalArgs",
            "Group",
            "Image",
            "Label",
            "Options",
            "PodmanArgs",
            "Type",
            "User",
            "VolumeName",
        ]
    ),
    "Network": frozenset(
        [
            "ContainersConfModule",
            "DNS",
            "DisableDNS",
            "Driver",
            "Gateway",
            "GlobalArgs",
            "IPAMDriver",
            "IPRange",
            "IPv6",
            "Internal",
            "Label",
            "NetworkName",
            "Options",
            "PodmanArgs",
            "Subnet",
        ]
    ),
    "Build": frozenset(
        [
            "Annotation",
            "Arch",
            "AuthFile",
            "ContainersConfModule",
            "DNS",
            "DNSOption",
            "DNSSearch",
            "Environment",
            "File",
            "ForceRM",
            "GlobalArgs",
            "GroupAdd",
            "ImageTag",
            "Label",
            "Network",
            "PodmanArgs",
            "Pull",
            "Secret",
            "SetWorkingDirectory",
            "TLSVerify",
            "Target",
            "Variant",
            "Volume",
        ]
    ),
    "Image": frozenset(
        [
            "AllTags",
            "Arch",
            "AuthFile",
            "CertDir",
            "ContainersConfModule",
            "Creds",
            "DecryptionKey",
            "GlobalArgs",
            "Image",
            "ImageTag",
            "OS",
            "PodmanArgs",
            "TLSVerify",
            "Variant",
        ]
    ),
    # "Currently, only the Alias, WantedBy and RequiredBy keys are supported."
    "Install": frozenset({"Alias", "WantedBy", "RequiredBy"}),
}
# The systemd keys podform writes into the sections Quadlet passes through (systemd.unit(5),
# systemd.service(5)).
SYSTEMD_KEYS = {
    "Unit": frozenset({"Description", "Requires", "After"}),
    "Service": frozenset({"Restart", "TimeoutStartSec"}),
}
UNIT_SECTION = {".container": "Container", ".volume": "Volume", ".network": "Network"}
UNIT_SECTION |= {".build": "Build", ".image": "Image"}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _stack(tmp_path: Path, stack: str, image: str, port: int) -> Path:
    """One web workload: env, a published port, a named volume, the device stand-in, probes."""
    folder = tmp_path / "manifests"
    folder.mkdir()
    (folder / "web.env").write_text("FILE_ENV=from-file\n")
    (folder / "stack.yaml").write_text(
        textwrap.dedent(
            f"""\
            apiVersion: podform/v1
            kind: Stack
            metadata: {{name: {stack}}}
            ---
            apiVersion: podform/v1
            kind: DeviceMapping
            metadata: {{name: gpu}}
            spec:
              devices: ["/dev/zero:/dev/dri/renderD128"]
              env: {{GPU_ENV: "from-mapping"}}
              probe: {{command: [test, -c, /dev/dri/renderD128], timeout: 5s}}
            ---
            apiVersion: podform/v1
            kind: Workload
            metadata: {{name: web}}
            spec:
              image: {image}
              command: [httpd, -f, -p, "8080", -h, /data]
              env: {{GREETING: "hello world"}}
              envFile: [./web.env]
              ports: ["127.0.0.1:{port}:8080"]
              volumes: ["{stack}-data:/data"]
              devices: [gpu]
              restart: always
              stopTimeout: 1s
              healthcheck: {{command: [test, -f, /bin/sh], interval: 5s, timeout: 2s}}
              workdir: /data
              hostname: webhost
              shmSize: 96MiB
              extraHosts: ["podform-extra.test:10.1.2.3"]
            """
        )
    )
    return folder


def _stack_container(stack: str) -> str:
    names = podman_cli(
        "ps", "--filter", f"label={STACK_LABEL}={stack}", "--format", "{{.Names}}"
    ).split()  # fmt: skip
    assert len(names) == 1, names
    return names[0]


def _check_running_workload(container: str, port: int, kube: bool = False) -> None:
    """env (own, the mapping's and, but for kube, the env file's), the device at its container
    path, the volume, the port, workdir, hostname, extraHosts and /dev/shm's size (not kube)."""
    out = podman_cli(
        "exec", container, "sh", "-c",
        'echo "$GREETING|$GPU_ENV|$FILE_ENV"; ls -l /dev/dri/renderD128;'
        "echo served > /data/index.html;"
        "pwd; hostname; grep -c podform-extra.test /etc/hosts; df -k /dev/shm | tail -n 1",
    )  # fmt: skip
    lines = out.splitlines()
    # kube never writes an env file's values (a warning says so)
    assert lines[0] == "hello world|from-mapping|" + ("" if kube else "from-file")
    assert lines[1].startswith("c")  # a character device (/dev/zero's)
    # workdir, hostname, extraHosts, shmSize
    assert lines[2:5] == ["/data", "webhost", "1"], lines
    if not kube:
        assert lines[5].split()[1] == str(96 * 1024), lines[5]
    body = b""
    for _ in range(50):
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2) as response:
                body = response.read()
            break
        except OSError:
            time.sleep(0.2)
    assert body == b"served\n"


def _tool(name: str) -> str:
    path = shutil.which(name) or str(Path(sys.executable).parent / name)
    if not Path(path).exists():
        pytest.fail(f"{name} is not installed: pip install -e '.[test]'", pytrace=False)
    return path


# --- kube ----------------------------------------------------------------------------------


def _kube_texts(tmp_path: Path) -> dict[str, str]:
    texts = {p.name: render(load_desired([str(p)]), Target.KUBE).stream() for p in EXAMPLES}
    full = tmp_path / "full"
    full.mkdir()
    texts["everything"] = render(everything_stack(full), Target.KUBE).files["full.yaml"]
    return texts


def test_rendered_kube_passes_the_kubernetes_schemas_in_strict_mode(tmp_path: Path) -> None:
    """Every example and the all-fields stack validate against Kubernetes 1.31's OpenAPI schemas."""
    validate = _tool("kubernetes-validate")
    texts = _kube_texts(tmp_path)
    for name, text in texts.items():
        path = tmp_path / f"{name}.yaml"
        path.write_text(text)
        done = subprocess.run(
            [validate, "--strict", "-k", "1.31.0", str(path)],
            capture_output=True,
            text=True,
            check=False,
        )
        assert done.returncode == 0, f"{name}: {done.stdout}{done.stderr}"
        assert "passed" in done.stdout and "Deployment" not in done.stderr
    # The check can fail: a misspelt field is refused in strict mode.
    bad = tmp_path / "bad.yaml"
    bad.write_text(texts["hello"].replace("replicas:", "replica:", 1))
    done = subprocess.run(
        [validate, "--strict", "-k", "1.31.0", str(bad)], capture_output=True, text=True
    )
    assert done.returncode != 0


def test_podman_kube_play_runs_the_rendered_deployment(
    tmp_path: Path, stack_name: str, busybox_image: str
) -> None:
    """kube play: env, published port, named volume (PVC) and the device stand-in are in the container."""
    port = _free_port()
    folder = _stack(tmp_path, stack_name, busybox_image, port)
    rendered = podform_subprocess("render", "-f", str(folder), "--to", "kube")
    assert rendered.returncode == 0, rendered.stderr
    kube = tmp_path / "kube.yaml"
    kube.write_text(rendered.stdout)
    kube_network = "podman-default-kube-network"
    had_kube_network = kube_network in podman_cli("network", "ls", "--format", "{{.Name}}").split()
    try:
        podman_cli("kube", "play", str(kube))
        container = _stack_container(stack_name)
        # Podman 4.3's kube play makes every emptyDir a volume on disk (Podman 5 and a cluster
        # make a Memory one a tmpfs), so the /dev/shm size is checked by the others only.
        _check_running_workload(container, port, kube=True)
        volumes = podman_cli("volume", "ls", "--filter", f"label={STACK_LABEL}={stack_name}", "-q")
        assert volumes.split() == [f"{stack_name}-{stack_name}-data"]
    finally:
        podman_cli("kube", "down", str(kube))
        # kube play creates Podman's shared kube network on first use; leave the host as found
        # (without --force: another kube play in use keeps it).
        if not had_kube_network:
            subprocess.run(["podman", "network", "rm", kube_network], capture_output=True)
    assert podman_cli("ps", "-a", "-q", "--filter", f"label={STACK_LABEL}={stack_name}") == ""


# --- compose -------------------------------------------------------------------------------


def test_podman_compose_up_runs_the_rendered_compose_file(
    tmp_path: Path, stack_name: str, busybox_image: str
) -> None:
    """podman-compose up -d: env, published port, named volume and the device stand-in."""
    compose = _tool("podman-compose")
    port = _free_port()
    folder = _stack(tmp_path, stack_name, busybox_image, port)
    out = tmp_path / "compose"
    rendered = podform_subprocess("render", "-f", str(folder), "--to", "compose", "-o", str(out))
    assert rendered.returncode == 0, rendered.stderr

    def run(*args: str) -> None:
        done = subprocess.run(
            [compose, *args], cwd=out, capture_output=True, text=True, timeout=180, check=False
        )
        assert done.returncode == 0, done.stdout + done.stderr

    try:
        run("up", "-d")
        container = _stack_container(stack_name)
        _check_running_workload(container, port)
        volumes = podman_cli("volume", "ls", "--filter", f"label={STACK_LABEL}={stack_name}", "-q")
        assert volumes.split() == [f"{stack_name}-data"]  # podform's own volume name
    finally:
        run("down", "-v")
        cleanup_stack(stack_name)
    assert podman_cli("ps", "-a", "-q", "--filter", f"label={STACK_LABEL}={stack_name}") == ""


# --- quadlet -------------------------------------------------------------------------------


def _quadlet_dirs(tmp_path: Path) -> dict[str, Path]:
    dirs: dict[str, Path] = {}
    sources = [(p.name, load_desired([str(p)])) for p in EXAMPLES]
    full = tmp_path / "full"
    full.mkdir()
    sources.append(("everything", everything_stack(full)))
    for name, desired in sources:
        folder = tmp_path / "units" / name
        folder.mkdir(parents=True)
        for file, text in render(desired, Target.QUADLET).files.items():
            (folder / file).write_text(text)
        dirs[name] = folder
    return dirs


def _sections(path: Path) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(strict=False, interpolation=None, delimiters=("=",))
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    # systemd repeats keys; configparser keeps the last, which is enough to list the names.
    parser.read_string(path.read_text())
    return parser


def test_quadlet_units_use_only_keys_podman_5_4_documents(tmp_path: Path) -> None:
    """Each section's keys are in podman-systemd.unit(5) of Podman 5.4 (or are systemd's own)."""
    seen: set[str] = set()
    for folder in _quadlet_dirs(tmp_path).values():
        for unit in sorted(folder.iterdir()):
            main = UNIT_SECTION[unit.suffix]
            for section in _sections(unit).sections():
                allowed = QUADLET_54_KEYS.get(section) or SYSTEMD_KEYS.get(section)
                assert allowed is not None, f"{unit.name}: unknown section [{section}]"
                assert section in (main, "Unit", "Service", "Install"), (unit.name, section)
                keys = set(_sections(unit)[section])
                assert keys <= allowed, f"{unit.name} [{section}]: {sorted(keys - allowed)}"
                seen.add(unit.suffix)
    assert seen == {".container", ".volume", ".build", ".network"}


def _quadlet_binary() -> str | None:
    for candidate in (os.environ.get("PODFORM_TEST_QUADLET"), "/usr/libexec/podman/quadlet"):
        if candidate and Path(candidate).is_file():
            return candidate
    return None


def _dryrun(quadlet: str, folder: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [quadlet, "-dryrun"],
        env={**os.environ, "QUADLET_UNIT_DIRS": str(folder)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.skipif(_quadlet_binary() is None, reason="no Quadlet generator (Podman < 4.4)")
def test_podmans_quadlet_generator_accepts_the_units(tmp_path: Path) -> None:
    """`quadlet -dryrun` converts every unit of every example without an error."""
    quadlet = _quadlet_binary()
    assert quadlet is not None
    for name, folder in _quadlet_dirs(tmp_path).items():
        done = _dryrun(quadlet, folder)
        assert done.returncode == 0, f"{name}: {done.stderr}"
        assert "unsupported" not in done.stderr and "error" not in done.stderr.lower(), done.stderr
        for unit in folder.iterdir():
            assert f"---{unit.stem}" in done.stdout, f"{name}: {unit.name} generated no service"


def _exec_starts(generated: str, cid_dir: Path) -> dict[str, list[str]]:
    """Service name -> the podman argv of its ExecStart, as systemd would run it here."""
    out: dict[str, list[str]] = {}
    parts = re.split(r"^---(.+)---$", generated, flags=re.M)
    for service, body in zip(parts[1::2], parts[2::2], strict=True):
        line = next(x for x in body.splitlines() if x.startswith("ExecStart="))
        argv = shlex.split(line.removeprefix("ExecStart="))
        stem = service.removesuffix(".service")
        argv = [
            a.replace("%t/%N.cid", str(cid_dir / f"{stem}.cid"))
            .replace("%N", stem)
            .replace("%%", "%")
            .replace("$$", "$")
            for a in argv
        ]
        # No systemd here (no notify socket, no delegated cgroup to split), and Podman 4.3's
        # `volume create` predates --ignore: those flags are the host's, not the workload's.
        dropped = ("--sdnotify", "--cgroups", "--ignore")
        out[service] = [a for a in argv if not a.startswith(dropped)]
    return out


@pytest.mark.skipif(_quadlet_binary() is None, reason="no Quadlet generator (Podman < 4.4)")
def test_the_generated_quadlet_services_run_the_workload(
    tmp_path: Path, stack_name: str, busybox_image: str
) -> None:
    """The podman commands Quadlet generates from the units run the workload on this Podman."""
    quadlet = _quadlet_binary()
    assert quadlet is not None
    port = _free_port()
    folder = _stack(tmp_path, stack_name, busybox_image, port)
    units = tmp_path / "units"
    rendered = podform_subprocess("render", "-f", str(folder), "--to", "quadlet", "-o", str(units))
    assert rendered.returncode == 0, rendered.stderr
    done = _dryrun(quadlet, units)
    assert done.returncode == 0, done.stderr
    starts = _exec_starts(done.stdout, tmp_path)
    assert sorted(starts) == [
        f"{stack_name}-network.service",  # the stack network, <stack>.network
        f"{stack_name}-{stack_name}-data-volume.service",
        f"{stack_name}-web-1.service",
    ]
    try:
        # The volume and the network before the container (systemd orders them so).
        for service in sorted(starts, key=lambda s: s.endswith("-1.service")):
            argv = starts[service]
            assert argv[0].endswith("/podman")
            podman_cli(*argv[1:])
        assert _stack_container(stack_name) == f"{stack_name}-web-1"
        _check_running_workload(f"{stack_name}-web-1", port)
    finally:
        cleanup_stack(stack_name)
