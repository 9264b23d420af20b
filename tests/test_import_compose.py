"""`podform import compose` without Podman: interpolation, .env, merge rules, the key mapping,
GPU requests, privileges and host paths, warnings for every dropped key, and the output file
(deterministic, never overwritten without --force)."""

from __future__ import annotations

import json
import os
import textwrap
from pathlib import Path
from typing import Any

import podman_compose
import pytest
import yaml
from podman_env import podform_subprocess

from reconciler.importers.compose_env import ComposeError, interpolate
from reconciler.importers.compose_load import load_compose
from reconciler.importers.compose_map import map_project
from reconciler.importers.emit import emit

ROOT = Path(__file__).parent.parent
ENV = {"SET": "value", "EMPTY": ""}
# (template, expected with ENV): compose's interpolation grammar.
INTERPOLATION = [
    ("${SET}", "value"),
    ("$SET/x", "value/x"),
    ("${UNSET}", ""),
    ("${UNSET-default}", "default"),
    ("${EMPTY-default}", ""),
    ("${UNSET:-default}", "default"),
    ("${EMPTY:-default}", "default"),
    ("${SET:-default}", "value"),
    ("${SET+alt}", "alt"),
    ("${EMPTY:+alt}", ""),
    ("${UNSET+alt}", ""),
    ("${UNSET:-${SET}-nested}", "value-nested"),
    ("$$SET and $${SET}", "$SET and ${SET}"),
    ("price $5", "price $5"),
    ("${SET?must be set}", "value"),
    ("${EMPTY?set but empty is fine}", ""),
]


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text))
    return path


def imported(
    folder: Path, *texts: str, env: dict[str, str] | None = None, out: Path | None = None
) -> tuple[list[dict[str, Any]], list[str]]:
    """Import compose texts (base first) in-process: the documents and the warning lines."""
    files = [write(folder, f"compose{i}.yaml", t) for i, t in enumerate(texts)]
    project = load_compose(files, environ=env or {})
    result = map_project(project, out or folder)
    docs = list(yaml.safe_load_all(emit(result.docs, ["test"])))
    return docs, [str(w) for w in result.warnings]


def doc(docs: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    found = [d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name]
    assert found, f"no {kind} {name} in {[(d['kind'], d['metadata']['name']) for d in docs]}"
    return found[0]


def spec(docs: list[dict[str, Any]], name: str) -> dict[str, Any]:
    return doc(docs, "Workload", name)["spec"]  # type: ignore[no-any-return]


@pytest.mark.parametrize(("template", "expected"), INTERPOLATION)
def test_interpolation_follows_compose_grammar(template: str, expected: str) -> None:
    """Each `${...}` form resolves as the Compose Specification says."""
    assert interpolate(template, ENV) == expected


@pytest.mark.parametrize(("template", "expected"), INTERPOLATION)
def test_interpolation_agrees_with_podman_compose(template: str, expected: str) -> None:
    """podman-compose's own interpolation gives the same string for every form."""
    assert interpolate(template, ENV) == podman_compose.var_interpolate(template, dict(ENV))


@pytest.mark.parametrize(
    ("template", "fragment"),
    [
        ("${UNSET?set UNSET please}", "set UNSET please"),
        ("${EMPTY:?EMPTY must not be empty}", "EMPTY must not be empty"),
        ("${UNSET:?}", "UNSET"),
        ("${}", "invalid interpolation"),
        ("${SET", "no closing"),
    ],
)
def test_interpolation_errors_name_the_variable(template: str, fragment: str) -> None:
    """`?`/`:?` on a missing value and malformed expressions are errors saying why."""
    with pytest.raises(ComposeError, match=fragment.replace("$", r"\$")):
        interpolate(template, ENV)


@pytest.mark.parametrize(
    ("text", "where", "fragment"),
    [
        ("services:\n  a:\n\timage: x\n", "3:1", "found character '\\t'"),
        ("services:\n  a: {image: [x}\n", "2:16", "expected ',' or ']'"),
    ],
)
def test_invalid_yaml_is_one_line_at_file_line_col(
    tmp_path: Path, text: str, where: str, fragment: str
) -> None:
    """A compose file that is not YAML: one line `file:line:col: invalid YAML: ...`, without
    PyYAML's multi-line block naming `<unicode string>`."""
    path = tmp_path / "compose.yaml"
    path.write_text(text)
    with pytest.raises(ComposeError) as caught:
        load_compose([path], environ={})
    message = str(caught.value)
    assert message.startswith(f"{path}:{where}: invalid YAML: {fragment}"), message
    assert "\n" not in message and "<unicode string>" not in message


def test_dotenv_beside_first_file_feeds_interpolation_and_environment_wins(tmp_path: Path) -> None:
    """`.env` values (quoted, exported, commented, self-referencing) interpolate; the process
    environment overrides them."""
    write(
        tmp_path,
        ".env",
        """\
        # a comment
        export TAG=1.2
        QUOTED="a b"
        SINGLE='${NOT_EXPANDED}'
        DERIVED=${TAG}-x   # trailing comment
        PORT=8080
        """,
    )
    docs, _ = imported(
        tmp_path,
        """\
        services:
          web:
            image: example/web:${TAG}
            environment: {Q: "${QUOTED}", S: "${SINGLE}", D: "${DERIVED}"}
            ports: ["${PORT}:80"]
        """,
        env={"PORT": "9090"},
    )
    web = spec(docs, "web")
    assert web["image"] == "example/web:1.2"
    assert web["env"] == {"Q": "a b", "S": "${NOT_EXPANDED}", "D": "1.2-x"}
    assert web["ports"] == ["9090:80"]


def test_env_file_option_replaces_dotenv(tmp_path: Path) -> None:
    """--env-file is read instead of the `.env` beside the compose file."""
    write(tmp_path, ".env", "TAG=from-dotenv\n")
    other = write(tmp_path, "prod.env", "TAG=from-option\n")
    compose = write(tmp_path, "compose.yaml", "services: {web: {image: 'x/web:${TAG}'}}\n")
    project = load_compose([compose], environ={}, env_file=other)
    docs = list(yaml.safe_load_all(emit(map_project(project, tmp_path).docs, [])))
    assert spec(docs, "web")["image"] == "x/web:from-option"


def test_overrides_merge_as_compose_defines(tmp_path: Path) -> None:
    """Mappings merge, environment lists and maps merge by key, ports append without
    duplicates, volumes replace by target, command and healthcheck.test are replaced,
    !reset removes and !override replaces."""
    base = """\
    services:
      app:
        image: example/app:1
        command: ["serve", "--port", "80"]
        environment: [A=1, B=2]
        ports: ["80:80"]
        volumes: ["./a:/data", "logs:/logs"]
        dns: [1.1.1.1]
        healthcheck: {test: ["CMD", "true"], interval: 10s}
        labels: {team: ml}
        cap_add: [CHOWN]
    volumes: {logs: {}}
    """
    override = """\
    services:
      app:
        command: serve --port 81
        environment: {B: "3", C: "4"}
        ports: ["80:80", "443:443"]
        volumes: ["./b:/data"]
        dns: [8.8.8.8]
        healthcheck: {test: ["CMD", "false"]}
        labels: !reset {}
        cap_add: !override [SETUID]
    """
    docs, _ = imported(tmp_path, base, override)
    app = spec(docs, "app")
    assert app["args"] == ["serve", "--port", "81"]
    assert app["env"] == {"A": "1", "B": "3", "C": "4"}
    assert app["ports"] == ["80:80", "443:443"]
    assert app["volumes"] == ["./b:/data", "logs:/logs"]
    assert app["dns"] == ["1.1.1.1", "8.8.8.8"]
    assert app["healthcheck"] == {"command": ["false"], "interval": "10s"}
    assert app["capAdd"] == ["SETUID"]
    assert "labels" not in doc(docs, "Workload", "app")["metadata"]


def test_project_name_order_and_normalisation(tmp_path: Path) -> None:
    """-p beats COMPOSE_PROJECT_NAME beats `name:` beats the folder; the Stack name is a
    podform name made of it."""
    compose = write(tmp_path / "My_Proj", "compose.yaml", "name: Top_Name\nservices: {}\n")
    assert load_compose([compose], environ={}).name == "top_name"
    env = {"COMPOSE_PROJECT_NAME": "from_env"}
    assert load_compose([compose], environ=env).name == "from_env"
    assert load_compose([compose], environ=env, project_name="cli").name == "cli"
    plain = write(tmp_path / "My_Proj", "plain.yaml", "services: {}\n")
    project = load_compose([plain], environ={})
    assert project.name == "my_proj"
    assert map_project(project, tmp_path).docs[0].name == "my-proj"


def test_fields_map_to_spec_names(tmp_path: Path) -> None:
    """The service keys SPEC §10 lists land in the Workload fields SPEC §1 names."""
    docs, _ = imported(
        tmp_path,
        """\
        services:
          api:
            image: example/api
            entrypoint: /bin/api
            command: ["--serve"]
            user: 1000
            group_add: [video, 44]
            security_opt: ["no-new-privileges:true", "label:disable"]
            cap_drop: [ALL]
            shm_size: 1gb
            ipc: shareable
            ulimits: {nofile: {soft: 1024, hard: 2048}, memlock: -1}
            tmpfs: /run
            working_dir: /srv
            hostname: api
            extra_hosts: {gateway: host-gateway}
            dns: 9.9.9.9
            init: true
            read_only: true
            stop_signal: SIGINT
            stop_grace_period: 1m30s
            pids_limit: 512
            logging: {driver: k8s-file, options: {max-size: 10m}}
            network_mode: service:db
            restart: "no"
            deploy: {replicas: 3, resources: {limits: {cpus: "0.5", memory: 512M}}}
            labels: [team=ml]
          db:
            image: postgres:16
        """,
    )
    api = spec(docs, "api")
    assert api == {
        "image": "example/api",
        "command": ["/bin/api"],
        "args": ["--serve"],
        "resources": {"memory": "512MiB", "cpus": 0.5},
        "restart": "no",
        "replicas": 3,
        "init": True,
        "stopTimeout": "90s",
        "network": "container:db",
        "capDrop": ["ALL"],
        "user": "1000",
        "groupAdd": ["video", "44"],
        "securityOpt": ["no-new-privileges", "label=disable"],
        "shmSize": "1GiB",
        "ipc": "shareable",
        "ulimits": {"nofile": "1024:2048", "memlock": -1},
        "pidsLimit": 512,
        "readOnly": True,
        "tmpfs": ["/run"],
        "workdir": "/srv",
        "hostname": "api",
        "extraHosts": ["gateway:host-gateway"],
        "dns": ["9.9.9.9"],
        "stopSignal": "SIGINT",
        "logging": {"driver": "k8s-file", "options": {"max-size": "10m"}},
    }
    assert doc(docs, "Workload", "api")["metadata"]["labels"] == {"team": "ml"}


DROPPED = """\
x-shared: {a: 1}
services:
  web:
    image: nginx:1.27
    container_name: my-web
    tty: true
    stdin_open: true
    pull_policy: always
    profiles: [web]
    expose: ["80"]
    links: [db]
    x-custom: hello
    networks:
      front:
        ipv4_address: 10.5.0.5
  db:
    image: postgres:16
networks:
  front:
    ipam: {config: [{subnet: 10.5.0.0/16}]}
"""


def test_every_dropped_key_is_a_warning_naming_service_and_key(tmp_path: Path) -> None:
    """container_name, tty, stdin_open, pull_policy, profiles, expose, links, x-* and
    ipv4_address each produce a stderr warning naming the service and key, with a hint."""
    write(tmp_path, "compose.yaml", DROPPED)
    done = podform_subprocess(
        "import", "compose", "-f", str(tmp_path / "compose.yaml"), "-o", "-",
        env={"COMPOSE_PROFILES": "web"},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    warnings = [line for line in done.stderr.splitlines() if line.startswith("warning: ")]
    for key in (
        "container_name", "tty", "stdin_open", "pull_policy", "profiles", "expose", "links",
        "x-custom", "networks.front.ipv4_address",
    ):  # fmt: skip
        hits = [w for w in warnings if f"service 'web': {key}: " in w]
        assert len(hits) == 1, (key, warnings)
        assert "(" in hits[0], f"no hint for {key}: {hits[0]}"
    assert any(w.startswith("warning: x-shared: top-level key dropped") for w in warnings)
    assert "container_name" not in done.stdout and "10.5.0.5" not in done.stdout


def test_inactive_profiles_skip_the_service_with_a_warning(tmp_path: Path) -> None:
    """Without COMPOSE_PROFILES a profiled service is left out, as compose does, and said so."""
    docs, warnings = imported(tmp_path, DROPPED)
    assert [d["metadata"]["name"] for d in docs if d["kind"] == "Workload"] == ["db"]
    assert any("service 'web': profiles: not imported" in w for w in warnings)


@pytest.mark.parametrize(
    ("request_yaml", "devices"),
    [
        ("deploy: {resources: {reservations: {devices: [{driver: nvidia, count: all, "
         "capabilities: [gpu]}]}}}", ["nvidia.com/gpu=all"]),
        ("deploy: {resources: {reservations: {devices: [{driver: nvidia, count: 2, "
         "capabilities: [gpu]}]}}}", ["nvidia.com/gpu=0", "nvidia.com/gpu=1"]),
        ("deploy: {resources: {reservations: {devices: [{driver: nvidia, "
         "device_ids: ['GPU-3a1f'], capabilities: [gpu]}]}}}", ["nvidia.com/gpu=GPU-3a1f"]),
        ("deploy: {resources: {reservations: {devices: [{driver: cdi, "
         "device_ids: ['nvidia.com/gpu=all']}]}}}", ["nvidia.com/gpu=all"]),
        ("gpus: all", ["nvidia.com/gpu=all"]),
        ("gpus: [{count: 1}]", ["nvidia.com/gpu=0"]),
        ("runtime: nvidia", ["nvidia.com/gpu=all"]),
        ("{runtime: nvidia, environment: {NVIDIA_VISIBLE_DEVICES: '1,2'}}",
         ["nvidia.com/gpu=1", "nvidia.com/gpu=2"]),
    ],
)  # fmt: skip
def test_gpu_requests_become_a_cdi_mapping_with_probe(
    tmp_path: Path, request_yaml: str, devices: list[str]
) -> None:
    """Every NVIDIA request form becomes one DeviceMapping with the matching CDI names and
    the nvidia-smi probe, named by the workload."""
    body = yaml.safe_load(request_yaml)
    compose = {"services": {"llm": {"image": "ollama/ollama:0.5", **body}}}
    docs, _ = imported(tmp_path, yaml.safe_dump(compose))
    mappings = [d for d in docs if d["kind"] == "DeviceMapping"]
    assert len(mappings) == 1
    assert mappings[0]["spec"]["devices"] == devices
    assert mappings[0]["spec"]["probe"] == {
        "command": ["nvidia-smi", "-L"],
        "expect": "GPU",
        "timeout": "30s",
    }
    assert spec(docs, "llm")["devices"] == [mappings[0]["metadata"]["name"]]


def test_cdi_driver_for_other_vendors_has_no_probe(tmp_path: Path) -> None:
    """`driver: cdi` with another vendor's CDI names becomes a mapping of those names, without
    the NVIDIA probe."""
    compose = {"services": {"w": {"image": "x/w:1", "deploy": {"resources": {"reservations": {
        "devices": [{"driver": "cdi", "device_ids": ["amd.com/gpu=0"]}]}}}}}}  # fmt: skip
    docs, _ = imported(tmp_path, yaml.safe_dump(compose))
    mapping = doc(docs, "DeviceMapping", "cdi-amd-com-gpu-0")
    assert mapping["spec"] == {"devices": ["amd.com/gpu=0"]}
    assert spec(docs, "w")["devices"] == ["cdi-amd-com-gpu-0"]


def test_amd_devices_inline_or_shared_mapping_with_commented_probe(tmp_path: Path) -> None:
    """`devices:` stay inline for one service; a set two services share becomes one mapping
    whose probe is a commented suggestion."""
    single = "services: {a: {image: rocm/x:1, devices: [/dev/kfd, /dev/dri]}}"
    docs, _ = imported(tmp_path / "single", single)
    assert spec(docs, "a")["devices"] == ["/dev/kfd", "/dev/dri"]
    assert not [d for d in docs if d["kind"] == "DeviceMapping"]

    shared = """\
    services:
      a: {image: rocm/x:1, devices: ["/dev/kfd:/dev/kfd", /dev/dri]}
      b: {image: rocm/y:1, devices: [/dev/dri, /dev/kfd, /dev/zero]}
      c: {image: rocm/z:1, devices: [/dev/kfd, /dev/dri]}
    """
    folder = tmp_path / "shared"
    write(folder, "compose.yaml", shared)
    project = load_compose([folder / "compose.yaml"], environ={})
    text = emit(map_project(project, folder).docs, [])
    docs = list(yaml.safe_load_all(text))
    amd = doc(docs, "DeviceMapping", "amd-gpu")
    assert sorted(amd["spec"]["devices"]) == ["/dev/dri", "/dev/kfd"]
    assert "probe" not in amd["spec"]
    assert "#   probe: {command: [rocminfo]" in text
    assert spec(docs, "a")["devices"] == ["amd-gpu"]
    assert spec(docs, "c")["devices"] == ["amd-gpu"]
    assert sorted(spec(docs, "b")["devices"]) == ["/dev/dri", "/dev/kfd", "/dev/zero"]


def test_privileges_set_the_policy_with_one_warning_per_service_and_reason(
    tmp_path: Path,
) -> None:
    """A Docker socket mount, privileged, host network and host IPC are imported with
    allowPrivileged set, each named in a warning with its service."""
    docs, warnings = imported(
        tmp_path,
        """\
        services:
          updater: {image: containrrr/watchtower:1, volumes: [/var/run/docker.sock:/var/run/docker.sock]}
          tools: {image: x/tools:1, privileged: true, network_mode: host, ipc: host}
          plain: {image: x/plain:1}
        """,
    )
    assert doc(docs, "Stack", tmp_path.name.lower().replace("_", "-"))["spec"] == {
        "policy": {"allowPrivileged": True}
    }
    privileged = [w for w in warnings if "policy.allowPrivileged" in w]
    assert len(privileged) == 4, privileged
    assert any("service 'updater'" in w and "socket" in w for w in privileged)
    for field in ("privileged", "network", "ipc"):
        assert any(w.startswith(f"service 'tools': {field}") for w in privileged), field
    assert not any("'plain'" in w for w in warnings)


def test_plain_stack_needs_no_policy(tmp_path: Path) -> None:
    """Without anything privileged or outside the folder the Stack has no spec at all."""
    docs, warnings = imported(tmp_path, "services: {web: {image: x/web:1, volumes: [./d:/d]}}")
    assert "spec" not in docs[0] and warnings == []


def test_paths_are_rewritten_for_the_output_folder(tmp_path: Path) -> None:
    """With the output in a sub-folder, relative binds, env files, secrets and build contexts
    are rewritten for it; those now leaving it add the compose folder to allowedHostPaths;
    absolute sources outside it are added themselves."""
    write(tmp_path, "app.env", "A=1\n")
    write(tmp_path, "app/Dockerfile", "FROM scratch\n")
    write(tmp_path, "token.txt", "t\n")
    out = tmp_path / "deploy"
    out.mkdir()
    docs, warnings = imported(
        tmp_path,
        """\
        services:
          app:
            build: ./app
            env_file: app.env
            volumes: ["./data:/data", "/srv/models:/models:ro", "~/cache:/cache"]
            secrets: [token]
        secrets: {token: {file: ./token.txt}}
        """,
        out=out,
    )
    app = spec(docs, "app")
    assert app["volumes"] == ["../data:/data", "/srv/models:/models:ro", "~/cache:/cache"]
    assert app["envFile"] == ["../app.env"]
    assert app["secrets"] == [{"name": "token", "target": "/run/secrets/token"}]
    assert doc(docs, "Secret", "token")["spec"] == {"file": "../token.txt"}
    assert doc(docs, "Image", "app")["spec"]["build"] == {"context": "../app"}
    policy = docs[0]["spec"]["policy"]
    assert policy["allowedHostPaths"] == sorted([str(tmp_path), "/srv/models"])
    assert sum("policy.allowedHostPaths" in w for w in warnings) == 2


def test_named_volumes_networks_and_secrets_become_kinds(tmp_path: Path) -> None:
    """Named volumes keep a podform name, networks with ipam become Network documents with
    their subnet, and services join them with aliases."""
    docs, _ = imported(
        tmp_path,
        """\
        services:
          db:
            image: postgres:16
            volumes: [db_data:/var/lib/postgresql/data]
            networks: {back_end: {aliases: [pg]}}
        networks:
          back_end: {internal: true, ipam: {config: [{subnet: 10.9.0.0/24}]}}
        volumes: {db_data: {}}
        """,
    )
    assert doc(docs, "Network", "back-end")["spec"] == {
        "internal": True,
        "dns": True,
        "subnet": "10.9.0.0/24",
    }
    db = spec(docs, "db")
    assert db["volumes"] == ["db-data:/var/lib/postgresql/data"]
    assert db["networks"] == [{"name": "back-end", "aliases": ["pg"]}]


def test_depends_on_conditions(tmp_path: Path) -> None:
    """service_healthy becomes condition healthy, service_started a bare name, and
    service_completed_successfully is imported as started with a warning."""
    docs, warnings = imported(
        tmp_path,
        """\
        services:
          app:
            image: x/app:1
            depends_on:
              db: {condition: service_healthy}
              cache: {condition: service_started}
              migrate: {condition: service_completed_successfully}
          db: {image: postgres:16}
          cache: {image: redis:7}
          migrate: {image: x/app:1}
        """,
    )
    assert spec(docs, "app")["dependsOn"] == [
        {"name": "db", "condition": "healthy"},
        "cache",
        "migrate",
    ]
    assert any("depends_on.migrate.condition" in w for w in warnings)


def cli_import(*args: str, env: dict[str, str] | None = None) -> Any:
    return podform_subprocess("import", "compose", *args, env=env)


def test_default_output_beside_first_file_never_overwritten_without_force(
    tmp_path: Path,
) -> None:
    """podform.yaml is written beside the first file; a second run refuses to overwrite it
    (exit 1, file untouched) until --force; an input file is never the output."""
    compose = write(tmp_path, "compose.yaml", "services: {web: {image: x/web:1}}\n")
    first = cli_import("-f", str(compose))
    assert first.returncode == 0, first.stderr
    out = tmp_path / "podform.yaml"
    assert out.is_file()
    out.write_text("# edited by hand\n")
    again = cli_import("-f", str(compose))
    assert again.returncode == 1
    assert "exists" in again.stderr and "--force" in again.stderr
    assert out.read_text() == "# edited by hand\n"
    forced = cli_import("-f", str(compose), "--force")
    assert forced.returncode == 0, forced.stderr
    assert "kind: Workload" in out.read_text()
    onto_input = cli_import("-f", str(compose), "-o", str(compose), "--force")
    assert onto_input.returncode == 1
    assert "services:" in compose.read_text()


def test_output_is_deterministic(tmp_path: Path) -> None:
    """Two imports of the same files (different hash seeds) give the same bytes."""
    fixture = Path(__file__).parent / "fixtures" / "compose" / "ragstack" / "compose.yaml"
    env = {"LLM_MODEL": "org/model", "COMPOSE_PROFILES": "ops"}
    texts = []
    for seed in ("1", "2"):
        out = tmp_path / f"out-{seed}.yaml"
        done = cli_import("-f", str(fixture), "-o", str(out), env={**env, "PYTHONHASHSEED": seed})
        assert done.returncode == 0, done.stderr
        texts.append(out.read_bytes())
    assert texts[0] == texts[1]
    assert texts[0].startswith(b"# Imported by `podform import compose` from ")


def test_missing_required_variable_is_an_error_without_traceback(tmp_path: Path) -> None:
    """`${VAR:?message}` with VAR unset: exit 1, the message, no output file, no traceback."""
    compose = write(tmp_path, "compose.yaml", "services: {w: {image: 'x/w:${TAG:?set TAG}'}}\n")
    done = cli_import("-f", str(compose), env={"TAG": ""})
    assert done.returncode == 1
    assert "set TAG" in done.stderr and "Traceback" not in done.stderr
    assert not (tmp_path / "podform.yaml").exists()


def test_stdout_output_prints_and_writes_nothing(tmp_path: Path) -> None:
    """`-o -` prints the manifests on stdout and creates no file."""
    compose = write(tmp_path, "compose.yaml", "services: {web: {image: x/web:1}}\n")
    done = cli_import("-f", str(compose), "-o", "-")
    assert done.returncode == 0, done.stderr
    assert "kind: Workload" in done.stdout
    assert os.listdir(tmp_path) == ["compose.yaml"]


def test_spec_keys_follow_schema_order(tmp_path: Path) -> None:
    """Spec keys come out in the order the kind's JSON Schema lists them, whatever order
    the compose file used; documents come Stack first, then by kind and name."""
    docs, _ = imported(
        tmp_path,
        """\
        services:
          zeta: {restart: always, ports: ["80:80"], environment: {A: "1"}, image: x/z:1}
          alpha: {image: x/a:1}
        """,
    )
    order = json.loads((ROOT / "schemas" / "workload.json").read_text())
    keys = list(order["properties"]["spec"]["properties"])
    zeta = list(spec(docs, "zeta"))
    assert zeta == sorted(zeta, key=keys.index) == ["image", "env", "ports", "restart"]
    assert [(d["kind"], d["metadata"]["name"]) for d in docs] == [
        ("Stack", docs[0]["metadata"]["name"]),
        ("Workload", "alpha"),
        ("Workload", "zeta"),
    ]


def test_extends_and_anchors_are_resolved(tmp_path: Path) -> None:
    """`extends` (same file and another file) and YAML anchors with merge keys are resolved
    before mapping, the extending service winning."""
    write(tmp_path, "common.yaml", "services: {base: {image: x/base:1, environment: {A: '1'}}}\n")
    docs, _ = imported(
        tmp_path,
        """\
        x-env: &env {SHARED: "yes"}
        services:
          web:
            extends: {file: common.yaml, service: base}
            environment: {<<: *env, B: "2"}
          worker:
            extends: web
            image: x/worker:1
        """,
    )
    assert spec(docs, "web") == {"image": "x/base:1", "env": {"A": "1", "SHARED": "yes", "B": "2"}}
    assert spec(docs, "worker")["image"] == "x/worker:1"
    assert spec(docs, "worker")["env"] == {"A": "1", "SHARED": "yes", "B": "2"}


def test_interpolated_booleans_are_read_as_compose_casts_them(tmp_path: Path) -> None:
    """`privileged: ${PRIV:-false}` is the string "false" after interpolation: not privileged,
    and no allowPrivileged on the Stack."""
    docs, warnings = imported(
        tmp_path,
        "services: {w: {image: x/w:1, privileged: '${PRIV:-false}', init: '${INIT:-true}'}}",
    )
    assert spec(docs, "w")["privileged"] is False
    assert spec(docs, "w")["init"] is True
    assert "spec" not in docs[0] and warnings == []


def test_unreadable_value_is_an_error_naming_the_key(tmp_path: Path) -> None:
    """A value of the wrong shape (deploy: 5) is exit 1 naming services.NAME.KEY, no traceback."""
    compose = write(tmp_path, "compose.yaml", "services: {web: {image: x/web:1, deploy: 5}}\n")
    done = cli_import("-f", str(compose), "-o", "-")
    assert done.returncode == 1
    assert "services.web.deploy" in done.stderr
    assert "Traceback" not in done.stderr and "internal error" not in done.stderr


def test_long_syntax_volumes_and_ports(tmp_path: Path) -> None:
    """Long-syntax binds keep read_only and SELinux labels, tmpfs mounts keep size and mode,
    anonymous volumes become named ones, and what has no podform form (consistency, a port's
    name) is a warning while the rest of the entry is still imported."""
    docs, warnings = imported(
        tmp_path,
        """\
        services:
          app:
            image: x/app:1
            volumes:
              - {type: bind, source: ./conf, target: /conf, read_only: true, bind: {selinux: z}}
              - {type: tmpfs, target: /scratch, tmpfs: {size: 1g, mode: 1777}}
              - {type: volume, target: /cache}
              - ./src:/src:cached
            ports:
              - {target: 80, published: 8080, name: web, app_protocol: http}
              - "9000-9001:9000-9001/udp"
        """,
    )
    app = spec(docs, "app")
    assert app["volumes"] == ["./conf:/conf:ro,z", "app-cache:/cache", "./src:/src"]
    assert app["tmpfs"] == ["/scratch:size=1g,mode=1777"]
    assert app["ports"] == ["8080:80", "9000:9000/udp", "9001:9001/udp"]
    for key in ("ports[0].name", "ports[0].app_protocol", "volumes[3].consistency"):
        assert any(w.startswith(f"service 'app': {key}: dropped") for w in warnings), key
    assert any("anonymous volume imported as the named volume 'app-cache'" in w for w in warnings)


def test_output_folder_is_created(tmp_path: Path) -> None:
    """`-o deploy/podform.yaml` creates the folder, and paths in the file resolve from it."""
    compose = write(
        tmp_path, "compose.yaml", "services: {web: {image: x/web:1, volumes: [./d:/d]}}\n"
    )
    out = tmp_path / "deploy" / "podform.yaml"
    done = cli_import("-f", str(compose), "-o", str(out))
    assert done.returncode == 0, done.stderr
    assert "../d:/d" in out.read_text()


def test_misspelled_service_key_is_refused_with_a_suggestion(tmp_path: Path) -> None:
    """A key the Compose Specification does not have (`enviroment`) is an error, as in compose,
    with "did you mean"; nothing is written."""
    compose = write(
        tmp_path, "compose.yaml", "services: {web: {image: x/web:1, enviroment: {A: '1'}}}\n"
    )
    done = cli_import("-f", str(compose))
    assert done.returncode == 1
    assert "services.web.enviroment" in done.stderr
    assert "did you mean 'environment'" in done.stderr
    assert not (tmp_path / "podform.yaml").exists()


def test_names_meeting_in_one_podform_name_are_refused(tmp_path: Path) -> None:
    """Services `my_app` and `my-app` would both be the workload my-app: an error naming both."""
    with pytest.raises(ComposeError, match="'my_app' and 'my-app' both become 'my-app'"):
        imported(tmp_path, "services: {my_app: {image: x/a:1}, my-app: {image: x/b:1}}")
