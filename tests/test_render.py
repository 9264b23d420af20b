"""`podform render`: golden files per example and target, notes, determinism, the CLI.

The real engines (kube play, kubernetes-validate, podman-compose, Quadlet's generator) are in
tests/test_render_engines.py. Golden files: PODFORM_UPDATE_GOLDEN=1 rewrites them; read the
diff before committing it.
"""

from __future__ import annotations

import dataclasses
import os
import textwrap
from pathlib import Path

import pytest
import yaml
from helpers import everything_stack
from podman_env import podform_subprocess

from reconciler.manifests.model import Workload
from reconciler.render import Note, Target, render
from reconciler.render import compose as compose_target
from reconciler.render import kube as kube_target
from reconciler.render import quadlet as quadlet_target
from reconciler.render.common import duration, split_device
from reconciler.runtime.orchestrator import load_desired

ROOT = Path(__file__).parent.parent
EXAMPLES = ROOT / "manifests" / "examples"
GOLDEN = Path(__file__).parent / "golden" / "render"
EXAMPLE_NAMES = sorted(p.parent.name for p in EXAMPLES.glob("*/stack.yaml"))
REPO = "<repo>"

# A stack that uses every Workload field today's model has, and each thing a target cannot say.


def _golden_text(text: str) -> str:
    return text.replace(str(ROOT), REPO)


def _render_example(name: str, target: Target) -> dict[str, str]:
    folder = EXAMPLES / name
    rendering = render(load_desired([str(folder)]), target, base=folder)
    files = {n: _golden_text(t) for n, t in rendering.files.items()}
    files["notes.txt"] = _golden_text("".join(f"{n}\n" for n in rendering.notes))
    return files


@pytest.mark.parametrize("target", list(Target), ids=str)
@pytest.mark.parametrize("example", EXAMPLE_NAMES)
def test_examples_render_as_the_reviewed_golden_files(example: str, target: Target) -> None:
    """Each example renders byte for byte as tests/golden/render/<example>/<target>/ holds."""
    folder = GOLDEN / example / str(target)
    files = _render_example(example, target)
    if os.environ.get("PODFORM_UPDATE_GOLDEN") == "1":
        folder.mkdir(parents=True, exist_ok=True)
        for old in folder.iterdir():
            old.unlink()
        for name, text in files.items():
            (folder / name).write_text(text)
    expected = {p.name: p.read_text() for p in sorted(folder.iterdir())}
    assert files == expected


def test_the_golden_examples_are_all_there() -> None:
    """Golden files exist for the three examples (an empty glob must not pass silently)."""
    assert {"hello", "linux-nvidia", "llama-vulkan"} <= set(EXAMPLE_NAMES)


@pytest.mark.parametrize(
    "module", [kube_target, quadlet_target, compose_target], ids=["kube", "quadlet", "compose"]
)
def test_every_workload_field_has_a_line_in_every_target(module: object) -> None:
    """A field added to Workload fails here until each target maps it or notes what it cannot."""
    fields = {f.name for f in dataclasses.fields(Workload)} - {"location"}
    handled = module.WORKLOAD_FIELDS
    assert fields - handled == set(), "fields without a line in this target"
    assert handled - fields == set(), "lines for fields the model no longer has"


@pytest.mark.parametrize("target", list(Target), ids=str)
def test_output_is_deterministic_and_ends_with_a_newline(tmp_path: Path, target: Target) -> None:
    """Same input, same bytes (twice, and from a fresh load); every file ends with one newline."""
    first = render(everything_stack(tmp_path), target, base=tmp_path)
    second = render(load_desired([str(tmp_path)]), target, base=tmp_path)
    assert first.files == second.files and first.notes == second.notes
    for text in first.files.values():
        assert text.endswith("\n") and not text.endswith("\n\n")


def _notes(tmp_path: Path, target: Target) -> list[str]:
    return [str(n) for n in render(everything_stack(tmp_path), target, base=tmp_path).notes]


def test_kube_notes_name_resource_and_field_for_what_kubernetes_cannot_express(
    tmp_path: Path,
) -> None:
    """Machine, build, restart, dependsOn, init, CDI device, device folder, mount options, probe."""
    notes = "\n".join(_notes(tmp_path, Target.KUBE))
    for expected in (
        "Machine gpu: spec: not rendered",
        "Image app: spec.build: not rendered",
        "Workload db: spec.restart: 'on-failure' is not rendered",
        "Workload api: spec.dependsOn: not rendered (db, llm)",
        "Workload api: spec.init: not rendered",
        "Workload api: spec.machine: not rendered ('gpu')",
        "Workload api: spec.devices: vendor.com/fpga=1 (spec.devices) is not rendered",
        "Workload api: spec.devices: /dev/dri (DeviceMapping dri) is a directory of devices",
        "models:/models: options z have no Kubernetes form",
        "Workload db: spec.volumes: dbdata:/var/lib/db: options Z have no Kubernetes form",
        "Workload api: spec.ports: '8080': a host port chosen at random",
        "DeviceMapping nv: spec.probe.expect: checked through `sh -c",
        "Workload web: spec.network: 'container:api' is not rendered",
    ):
        assert expected in notes


def test_quadlet_notes_name_resource_and_field(tmp_path: Path) -> None:
    """Machine, probe and replicas: 0 are said, not dropped."""
    notes = _notes(tmp_path, Target.QUADLET)
    assert "Machine gpu: spec: not rendered" in "\n".join(notes)
    assert any(n.startswith("DeviceMapping nv: spec.probe: not rendered") for n in notes)
    assert "Workload web: spec.replicas: 0: no unit written" in notes
    assert any(n.startswith("Workload api: spec.machine: not rendered") for n in notes)


def test_compose_notes_name_resource_and_field(tmp_path: Path) -> None:
    """Machine, probe and podman-only secret forms are said, not dropped."""
    notes = "\n".join(_notes(tmp_path, Target.COMPOSE))
    assert "Machine gpu: spec: not rendered" in notes
    assert "DeviceMapping nv: spec.probe: not rendered" in notes
    assert (
        "Workload api: spec.secrets: hf-token as env HF_TOKEN is rendered as the file "
        "/run/secrets/hf-token" in notes
    )


def test_kube_maps_the_workload_fields(tmp_path: Path) -> None:
    """Resources, GPU resource, probes, ports, secrets and security land where Kubernetes reads them."""
    import yaml

    text = render(everything_stack(tmp_path), Target.KUBE).files["full.yaml"]
    docs = {(d["kind"], d["metadata"]["name"]): d for d in yaml.safe_load_all(text)}
    assert set(docs) == {
        ("PersistentVolumeClaim", "full-dbdata"),
        ("Deployment", "full-api"),
        ("Service", "full-api"),
        ("Deployment", "full-db"),
        ("Deployment", "full-web"),
        ("Deployment", "full-llm"),
    }
    db = docs[("Deployment", "full-db")]["spec"]
    assert db["replicas"] == 0  # state: stopped
    assert db["template"]["metadata"]["labels"]["tier"] == "data"
    startup = db["template"]["spec"]["containers"][0]["startupProbe"]
    assert startup["failureThreshold"] == 3 + 4 and startup["periodSeconds"] == 5
    db_pod = db["template"]["spec"]
    assert db_pod["hostNetwork"] is True
    pod = docs[("Deployment", "full-api")]["spec"]["template"]["spec"]
    assert "hostNetwork" not in pod and pod["terminationGracePeriodSeconds"] == 20
    c = pod["containers"][0]
    assert c["resources"] == {"limits": {"cpu": "1500m", "memory": "2048Mi", "nvidia.com/gpu": 1}}
    assert c["command"] == ["/bin/api", "--serve"]
    assert {"name": "DRI", "value": "yes"} in c["env"]
    assert {
        "name": "HF_TOKEN",
        "valueFrom": {"secretKeyRef": {"name": "hf-token", "key": "hf-token"}},
    } in c["env"]
    assert c["startupProbe"]["exec"]["command"][:2] == ["sh", "-c"]
    assert c["securityContext"] == {
        "privileged": True,
        "capabilities": {"add": ["NET_ADMIN", "SYS_TIME"]},
    }
    assert {"containerPort": 9000, "protocol": "UDP", "hostPort": 9000, "hostIP": "127.0.0.1"} in c[
        "ports"
    ]
    assert {"containerPort": 443, "protocol": "TCP", "hostPort": 9443, "hostIP": "::1"} in c[
        "ports"
    ]
    mounts = {m["mountPath"]: m for m in c["volumeMounts"]}
    assert mounts["/dev/dri/renderD128"]["name"] == "dev-zero"
    assert mounts["/etc/cert.pem"]["subPath"] == "cert"
    assert mounts["/run/secrets/plain"]["readOnly"] is True
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["dev-zero"]["hostPath"] == {"path": "/dev/zero", "type": "CharDevice"}
    assert volumes["dbdata"]["persistentVolumeClaim"]["claimName"] == "full-dbdata"
    assert "nvidia.com/gpu=all" not in text  # the mapping's resource replaced the CDI device
    assert "TOKEN_PATH" in text and "/run/x" in text

    llm = docs[("Deployment", "full-llm")]["spec"]["template"]["spec"]
    c = llm["containers"][0]
    assert c["securityContext"] == {
        "runAsUser": 1000,
        "allowPrivilegeEscalation": False,
        "seccompProfile": {"type": "Unconfined"},
        "appArmorProfile": {"type": "Unconfined"},
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
    }
    assert c["workingDir"] == "/srv"
    assert {
        "name": "TOK",
        "valueFrom": {"secretKeyRef": {"name": "full-tok", "key": "full-tok"}},
    } in c["env"]
    assert "FROM_FILE" not in text and "not-rendered-value" not in text  # env file: never values
    mounts = {m["mountPath"]: m["name"] for m in c["volumeMounts"]}
    volumes = {v["name"]: v for v in llm["volumes"]}
    assert volumes[mounts["/dev/shm"]]["emptyDir"] == {"medium": "Memory", "sizeLimit": "2048Mi"}
    assert volumes[mounts["/tmp"]]["emptyDir"] == {"medium": "Memory", "sizeLimit": "64Mi"}
    assert volumes[mounts["/run/secrets/full-key"]]["secret"] == {"secretName": "full-key"}
    assert "/dev/kfd" in mounts and "/dev/infiniband" not in mounts  # optional: warned instead
    assert llm["securityContext"] == {"supplementalGroups": [44]}
    assert llm["hostIPC"] is True and llm["hostname"] == "llm"
    assert llm["hostAliases"] == [{"ip": "10.0.0.5", "hostnames": ["db.local"]}]
    assert llm["dnsPolicy"] == "None" and llm["dnsConfig"] == {"nameservers": ["1.1.1.1"]}


def test_kube_notes_the_new_workload_fields_it_cannot_express(tmp_path: Path) -> None:
    """Each new option, env file, optional device, network and Secret Kubernetes lacks is said."""
    notes = "\n".join(_notes(tmp_path, Target.KUBE))
    for expected in (
        "Workload llm: spec.user: video not rendered",
        "Workload llm: spec.groupAdd: video not rendered",
        "Workload llm: spec.userns: 'keep-id' is not rendered",
        "Workload llm: spec.ulimits: not rendered (memlock=-1:-1, nofile=1024:65536)",
        "Workload llm: spec.pidsLimit: not rendered (500)",
        "Workload llm: spec.stopSignal: not rendered (SIGINT)",
        "Workload llm: spec.logging: not rendered (journald)",
        "Workload llm: spec.envFile: not rendered (FROM_FILE from ",
        "Workload llm: spec.devices: /dev/infiniband (DeviceMapping amd) is optional",
        "Workload llm: spec.networks: not rendered (back (aliases llm), front (aliases llm, model))",
        "Workload llm: spec.extraHosts: 'gw:host-gateway' is not rendered",
        "Workload llm: spec.securityOpt: label=disable is not rendered",
        "Workload llm: spec.tmpfs: /tmp:size=64m,mode=1777: options mode=1777",
        "Network back: spec: not rendered (full-back)",
        "Secret key: spec: not rendered: the cluster Secret full-key must exist",
        "Stack full: network: the stack network is the cluster network",
    ):
        assert expected in notes, expected
    assert "not-rendered-value" not in notes


def test_quadlet_writes_one_unit_per_replica_with_dependencies(tmp_path: Path) -> None:
    """Numbered units per replica; a dependent Requires/After every replica of what it needs."""
    files = render(everything_stack(tmp_path), Target.QUADLET).files
    assert sorted(files) == [
        "full-api-1.container",
        "full-app.build",
        "full-back.network",
        "full-db-1.container",
        "full-db-2.container",
        "full-dbdata.volume",
        "full-front.network",
        "full-llm-1.container",
        "full.network",
    ]
    api = files["full-api-1.container"]
    for line in (
        "Requires=full-db-1.service",
        "After=full-db-2.service",
        "Image=full-app.build",
        'Entrypoint=["/bin/api","--serve"]',
        'Exec=--msg "it\'s 100%% $$HOME \\"q\\""',
        'Environment="MODE=two words"',
        "Secret=hf-token,type=env,target=HF_TOKEN",
        "Secret=cert,type=mount,target=/etc/cert.pem",
        "PublishPort=[::1]:9443:443",
        "Volume=full-dbdata.volume:/data:ro",
        "AddDevice=nvidia.com/gpu=all",
        "AddDevice=/dev/dri",
        "PodmanArgs=--memory=2048m",
        "PodmanArgs=--cpus=1.5",
        "PodmanArgs=--privileged",
        "AddCapability=CAP_NET_ADMIN SYS_TIME",
        "Network=full.network",
        "NetworkAlias=api",
        "RunInit=true",
        "StopTimeout=20",
        "Restart=always",
    ):
        assert line in api.splitlines(), line
    db = files["full-db-2.container"]
    assert "Notify=healthy" in db and "Pull=always" in db and "Restart=on-failure" in db
    assert "Network=host" in db.splitlines()
    assert "[Install]" not in db  # state: stopped: installed, not started at boot
    assert "ContainerName=full-db-2" in db and "Label=io.podform.replica=2" in db


def test_quadlet_maps_the_container_options_networks_and_secrets(tmp_path: Path) -> None:
    """Every option has its Quadlet key (PodmanArgs where 5.4 has none); networks are units."""
    rendering = render(everything_stack(tmp_path), Target.QUADLET)
    files = rendering.files
    llm = files["full-llm-1.container"].splitlines()
    for line in (
        f"EnvironmentFile={tmp_path}/llm.env",
        "Environment=SHOWN=1",
        "Secret=full-key",
        "Secret=full-tok,type=env,target=TOK",
        "AddDevice=/dev/kfd",
        "AddDevice=-/dev/infiniband",
        "Network=full-back.network",
        "Network=full-front.network",
        "NetworkAlias=llm",
        "NetworkAlias=model",
        "User=1000",
        "Group=video",
        "GroupAdd=video",
        "GroupAdd=44",
        "UserNS=keep-id",
        "SecurityLabelDisable=true",
        "NoNewPrivileges=true",
        "SeccompProfile=unconfined",
        "PodmanArgs=--security-opt=apparmor=unconfined",
        "DropCapability=ALL",
        "ShmSize=2048m",
        "PodmanArgs=--ipc=host",
        "Ulimit=memlock=-1:-1",
        "Ulimit=nofile=1024:65536",
        "PidsLimit=500",
        "ReadOnly=true",
        "Tmpfs=/tmp:size=64m,mode=1777",
        "WorkingDir=/srv",
        "HostName=llm",
        "AddHost=db.local:10.0.0.5",
        "AddHost=gw:host-gateway",
        "DNS=1.1.1.1",
        "StopSignal=SIGINT",
        "LogDriver=journald",
        "LogOpt=tag=llm",
    ):
        assert line in llm, line
    assert not any("FROM_FILE" in x for x in llm)
    back = files["full-back.network"].splitlines()
    for line in (
        "NetworkName=full-back",
        "Internal=true",
        "DisableDNS=true",
        "Subnet=10.89.7.0/24",
        "Label=io.podform.name=back",
    ):
        assert line in back, line
    assert "NetworkName=full" in files["full.network"].splitlines()
    notes = [str(n) for n in rendering.notes]
    assert any(n.startswith("Secret key: spec: not rendered: Quadlet has no secret") for n in notes)
    assert any(n.startswith("Workload llm: spec.networks: Quadlet's NetworkAlias") for n in notes)


def test_compose_maps_the_workload_fields(tmp_path: Path) -> None:
    """Build, deploy, healthcheck, depends_on, ports and paths relative to the compose folder."""
    import yaml

    rendering = render(everything_stack(tmp_path), Target.COMPOSE, base=tmp_path)
    doc = yaml.safe_load(rendering.stream())
    api = doc["services"]["api"]
    assert api["build"] == {
        "context": "./ctx",
        "dockerfile": "Containerfile",
        "args": {"V": "1"},
        "target": "runtime",
        "labels": {
            "io.podform.stack": "full",
            "io.podform.kind": "Image",
            "io.podform.name": "app",
        },
    }
    assert api["volumes"] == ["dbdata:/data:ro", "./models:/models:ro,z"]
    assert api["deploy"] == {
        "replicas": 1,
        "resources": {"limits": {"memory": "2048m", "cpus": "1.5"}},
    }
    assert api["depends_on"] == {
        "db": {"condition": "service_healthy"},
        "llm": {"condition": "service_started"},
    }
    assert {"target": 8080, "protocol": "tcp"} in api["ports"]
    assert {"target": 443, "published": "9443", "host_ip": "::1", "protocol": "tcp"} in api["ports"]
    assert "network_mode" not in api and api["privileged"] is True
    assert doc["services"]["db"]["network_mode"] == "host"
    assert doc["services"]["web"]["network_mode"] == "service:api"
    assert doc["services"]["db"]["deploy"]["replicas"] == 0
    assert doc["services"]["db"]["pull_policy"] == "always"
    assert doc["services"]["db"]["healthcheck"]["start_period"] == "12s"
    assert doc["volumes"]["dbdata"]["name"] == "dbdata"
    assert doc["secrets"]["hf-token"] == {"name": "hf-token", "external": True}
    assert api["secrets"] == ["hf-token", {"source": "cert", "target": "/etc/cert.pem"}, "plain"]

    llm = doc["services"]["llm"]
    assert llm["env_file"] == ["./llm.env"] and llm["environment"] == {"SHOWN": "1"}
    assert llm["secrets"] == ["full-key", "full-tok"] and llm["devices"] == ["/dev/kfd"]
    assert llm["networks"] == {"back": None, "front": {"aliases": ["model"]}}
    options = {
        "user": "1000:video",
        "group_add": ["video", "44"],
        "userns_mode": "keep-id",
        "security_opt": [
            "label=disable",
            "no-new-privileges",
            "seccomp=unconfined",
            "apparmor=unconfined",
        ],
        "cap_drop": ["ALL"],
        "shm_size": "2048m",
        "ipc": "host",
        "ulimits": {"memlock": -1, "nofile": {"soft": 1024, "hard": 65536}},
        "pids_limit": 500,
        "read_only": True,
        "tmpfs": ["/tmp:size=64m,mode=1777"],
        "working_dir": "/srv",
        "hostname": "llm",
        "extra_hosts": ["db.local:10.0.0.5", "gw:host-gateway"],
        "dns": ["1.1.1.1"],
        "stop_signal": "SIGINT",
        "logging": {"driver": "journald", "options": {"tag": "llm"}},
        "labels": {
            "io.podform.stack": "full",
            "io.podform.kind": "Workload",
            "io.podform.name": "llm",
        },
    }
    assert {k: llm.get(k) for k in options} == options
    assert doc["networks"]["default"]["name"] == "full"  # the stack network, podform's name
    assert doc["networks"]["back"] == {
        "name": "full-back",
        "internal": True,
        "ipam": {"config": [{"subnet": "10.89.7.0/24"}]},
        "x-podman.disable_dns": True,
        "labels": {
            "io.podform.stack": "full",
            "io.podform.kind": "Network",
            "io.podform.name": "back",
        },
    }
    assert doc["secrets"]["full-key"] == {"name": "full-key", "file": "./key.txt"}
    assert doc["secrets"]["full-tok"] == {"name": "full-tok", "environment": "TOK"}
    notes = "\n".join(str(n) for n in rendering.notes)
    assert "Workload llm: spec.devices: /dev/infiniband optional: not rendered" in notes
    assert "not-rendered-value" not in rendering.stream() + notes


def test_small_value_forms() -> None:
    """Durations in compose/Podman text; devices split into host, container and permissions."""
    assert [duration(v) for v in (0.5, 30, 90, 3600, 0)] == ["500ms", "30s", "1m30s", "1h", "0s"]
    assert split_device("/dev/dri") == ("/dev/dri", "/dev/dri", None)
    assert split_device("/dev/zero:/dev/x:rw") == ("/dev/zero", "/dev/x", "rw")
    assert split_device("/dev/kfd:rwm") == ("/dev/kfd", "/dev/kfd", "rwm")
    assert str(Note("Workload a", "spec.init", "x")) == "Workload a: spec.init: x"


# --- the command ---------------------------------------------------------------------------


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "m"
    path.mkdir()
    (path / "stack.yaml").write_text(textwrap.dedent(text))
    return path


_NO_PODMAN = {"CONTAINER_HOST": "unix:///nonexistent/podman.sock"}


def test_render_command_prints_yaml_and_warnings_needing_no_podman(tmp_path: Path) -> None:
    """Exit 0, kube YAML on stdout, each note on stderr naming resource and field; no Podman."""
    done = podform_subprocess(
        "render", "-f", str(EXAMPLES / "hello"), "--to", "kube", env=_NO_PODMAN
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == _golden_text_for_cli("hello", Target.KUBE)
    assert "warning: render kube: Workload worker: spec.dependsOn:" in done.stderr


def _golden_text_for_cli(example: str, target: Target) -> str:
    return (GOLDEN / example / str(target) / f"{example}.yaml").read_text().replace(REPO, str(ROOT))


def test_render_command_writes_a_folder(tmp_path: Path) -> None:
    """-o DIR writes compose.yaml / one unit per object there."""
    out = tmp_path / "out"
    done = podform_subprocess(
        "render", "-f", str(EXAMPLES / "hello"), "--to", "quadlet", "-o", str(out), env=_NO_PODMAN
    )
    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in out.iterdir()) == [
        "hello-hello-data.volume",
        "hello-site.build",
        "hello-web-1.container",
        "hello-worker-1.container",
        "hello.network",
    ]
    done = podform_subprocess(
        "render", "-f", str(EXAMPLES / "hello"), "--to", "compose", "-o", str(out), env=_NO_PODMAN
    )
    assert done.returncode == 0 and (out / "compose.yaml").read_text().startswith("name: hello\n")


def test_quadlet_to_stdout_is_refused(tmp_path: Path) -> None:
    """Quadlet is one file per unit: without -o DIR it exits 1 and writes nothing."""
    done = podform_subprocess("render", "-f", str(EXAMPLES / "hello"), "--to", "quadlet")
    assert done.returncode == 1 and done.stdout == ""
    assert "-o DIR" in done.stderr


def test_invalid_manifests_render_nothing(tmp_path: Path) -> None:
    """All-or-nothing: one bad document means exit 1, no output, the problem on stderr."""
    path = _write(
        tmp_path,
        """\
        apiVersion: podform/v1
        kind: Workload
        metadata: {name: ok}
        spec: {image: "docker.io/x/y:1"}
        ---
        apiVersion: podform/v1
        kind: Workload
        metadata: {name: bad}
        spec: {image: "docker.io/x/y:1", replicas: many}
        """,
    )
    out = tmp_path / "out"
    done = podform_subprocess("render", "-f", str(path), "--to", "compose", "-o", str(out))
    assert done.returncode == 1 and done.stdout == ""
    assert "replicas" in done.stderr and not out.exists()


def test_kubernetes_names_that_a_cluster_would_refuse_are_warned(tmp_path: Path) -> None:
    """A Service name must be a DNS label starting with a letter: `<stack>-<name>` is checked."""
    path = _write(
        tmp_path,
        """\
        apiVersion: podform/v1
        kind: Stack
        metadata: {name: 1st}
        ---
        apiVersion: podform/v1
        kind: Workload
        metadata: {name: web}
        spec: {image: "docker.io/x/y:1", ports: ["8080:80"], restart: always}
        """,
    )
    notes = [str(n) for n in render(load_desired([str(path)]), Target.KUBE).notes]
    assert [n for n in notes if not n.startswith("Stack ")] == [
        "Service 1st-web: metadata.name: is not a valid Kubernetes name (a Service needs a DNS "
        "label of at most 63 characters starting with a letter): shorten the stack or resource "
        "name"
    ]


def test_render_reads_manifests_from_stdin(tmp_path: Path) -> None:
    """`-f -` works as for validate: the compose file for the piped stack on stdout."""
    text = (EXAMPLES / "linux-nvidia" / "stack.yaml").read_text()
    text = text.replace("./models:", "models:").replace("{name: llama-cuda}", "{name: piped}")
    done = podform_subprocess("render", "-f", "-", "--to", "compose", input=text, env=_NO_PODMAN)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("name: piped\n") and "- models:/models:ro,z\n" in done.stdout


def test_a_workload_joining_anothers_network_starts_after_it(tmp_path: Path) -> None:
    """network: container:W -> Quadlet joins W's first replica and requires its unit."""
    path = _write(
        tmp_path,
        """\
        apiVersion: podform/v1
        kind: Workload
        metadata: {name: vpn}
        spec: {image: "docker.io/x/vpn:1"}
        ---
        apiVersion: podform/v1
        kind: Workload
        metadata: {name: app}
        spec: {image: "docker.io/x/app:1", network: "container:vpn"}
        """,
    )
    desired = load_desired([str(path)])
    app = render(desired, Target.QUADLET).files["default-app-1.container"].splitlines()
    assert "Network=container:default-vpn-1" in app
    assert "Requires=default-vpn-1.service" in app and "After=default-vpn-1.service" in app
    compose = render(desired, Target.COMPOSE).stream()
    assert "network_mode: service:vpn\n" in compose


def test_shared_ipc_and_podmans_bridge_keep_their_meaning_in_each_target(tmp_path: Path) -> None:
    """ipc: container:W joins W's first replica (compose: service:W); bridge is not the stack's."""
    path = _write(
        tmp_path,
        """\
        apiVersion: podform/v1
        kind: Workload
        metadata: {name: shm}
        spec: {image: "docker.io/x/shm:1", ipc: shareable, network: bridge}
        ---
        apiVersion: podform/v1
        kind: Workload
        metadata: {name: app}
        spec: {image: "docker.io/x/app:1", ipc: "container:shm"}
        """,
    )
    desired = load_desired([str(path)])
    quadlet = render(desired, Target.QUADLET)
    app = quadlet.files["default-app-1.container"].splitlines()
    assert "PodmanArgs=--ipc=container:default-shm-1" in app
    assert "Requires=default-shm-1.service" in app
    assert "Network=bridge" in quadlet.files["default-shm-1.container"].splitlines()
    assert "Network=default.network" in app
    services = yaml.safe_load(render(desired, Target.COMPOSE).stream())["services"]
    assert services["app"]["ipc"] == "service:shm" and services["shm"]["ipc"] == "shareable"
    assert services["shm"]["network_mode"] == "bridge" and "network_mode" not in services["app"]
    kube_notes = [str(n) for n in render(desired, Target.KUBE).notes]
    assert (
        "Workload shm: spec.ipc: 'shareable' is not rendered: a pod's IPC is its own or the host's"
        in kube_notes
    )
