"""Workload fields without Podman: port forms, validation with locations, policy refusals, the
SpecGenerator fields they become, env files and the spec hash of unset fields."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from reconciler.engine.hashing import masked_spec, spec_hash, workload_spec
from reconciler.errors import InvalidInput
from reconciler.manifests.loader import Document
from reconciler.manifests.policy import PRIVILEGE_FIX, check_policy
from reconciler.manifests.ports import PortMapping, parse_port
from reconciler.runtime.backends.podman_api import container_spec
from reconciler.runtime.orchestrator import load_desired


@pytest.mark.parametrize(
    ("text", "want"),
    [
        ("80", PortMapping(80, None, "", "tcp")),
        ("8080:80", PortMapping(80, 8080, "", "tcp")),
        ("127.0.0.1:9000:9000/tcp", PortMapping(9000, 9000, "127.0.0.1", "tcp")),
        ("127.0.0.1::8080", PortMapping(8080, None, "127.0.0.1", "tcp")),
        ("[::1]:80:80", PortMapping(80, 80, "::1", "tcp")),
        ("[::1]::53/udp", PortMapping(53, None, "::1", "udp")),
        ("53/udp", PortMapping(53, None, "", "udp")),
    ],
)
def test_every_port_form_parses(text: str, want: PortMapping) -> None:
    """C, H:C, IP:H:C, IP::C, [IPv6]:H:C and /proto parse; IPv6 loses its brackets."""
    assert parse_port(text) == want


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("127.0.0.1:8080", "ambiguous"),
        ("70000:80", "host port 70000"),
        ("80:0", "container port 0"),
        ("::1:80:80", "not a port mapping"),
        ("[127.0.0.1]:80:80", "IPv6 addresses in brackets"),
        ("999.1.1.1:80:80", "not an IP address"),
    ],
)
def test_bad_ports_say_why(text: str, fragment: str) -> None:
    """What Podman would refuse (or misread) is a ValueError that says how to write it."""
    with pytest.raises(ValueError, match=fragment):
        parse_port(text)


def write(tmp_path: Path, *docs: dict[str, Any]) -> Path:
    head = {"apiVersion": "podform/v1", "kind": "Stack", "metadata": {"name": "s"}}
    path = tmp_path / "stack.yaml"
    path.write_text(yaml.safe_dump_all([head, *docs], sort_keys=False, explicit_start=True))
    return path


def wl(name: str = "web", **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "podform/v1",
        "kind": "Workload",
        "metadata": {"name": name},
        "spec": {"image": "busybox:latest", **spec},
    }


def problems(tmp_path: Path, *docs: dict[str, Any]) -> list[str]:
    with pytest.raises(InvalidInput) as exc:
        load_desired([str(write(tmp_path, *docs))])
    return [str(i) for i in exc.value.issues]


def test_replicas_with_a_fixed_host_port_is_an_error_at_the_port(tmp_path: Path) -> None:
    """Two replicas cannot publish host port 8080: the error names file:line:col and the port."""
    [issue] = problems(tmp_path, wl(replicas=2, ports=["9000", "8080:80"]))
    assert "stack.yaml:" in issue
    assert "$.spec.ports[1]" in issue
    assert "replicas is 2" in issue


def test_a_host_port_published_twice_is_an_error_at_the_second(tmp_path: Path) -> None:
    """Podman would refuse the second at start ("address already in use"), after other
    containers were already replaced; addresses overlap when equal or when one is all."""
    found = problems(
        tmp_path,
        wl("web", ports=["8080:80", "8080:81", "8081:80/udp", "8081:80"]),
        wl("api", ports=["127.0.0.1:8081:80", "127.0.0.2:9000:80", "127.0.0.3:9000:80"]),
    )
    assert [i.split(": ", 1)[1] for i in found] == [
        'Workload "web": $.spec.ports[1]: host port 8080/tcp is already published by '
        "Workload web ('8080:80')",
        'Workload "api": $.spec.ports[0]: host port 8081/tcp is already published by '
        "Workload web ('8081:80')",
    ]


def test_an_ambiguous_ip_port_is_an_error_not_a_crash(tmp_path: Path) -> None:
    """`127.0.0.1:8080` validated, then raised ValueError at create: now a located error."""
    [issue] = problems(tmp_path, wl(ports=["127.0.0.1:8080"]))
    assert "$.spec.ports[0]" in issue and "127.0.0.1::8080" in issue


def test_ports_with_a_network_that_cannot_publish_are_refused(tmp_path: Path) -> None:
    """network: none has no ports to publish."""
    [issue] = problems(tmp_path, wl(network="none", ports=["80"]))
    assert "ports cannot be published with network: none" in issue


@pytest.mark.parametrize(
    ("doc", "path"),
    [
        (
            {
                "kind": "Image",
                "metadata": {"name": "i", "labels": {"a": "b"}},
                "spec": {"ref": "x/y:1", "pull": {}},
            },
            "pulled image cannot be labelled",
        ),
        (
            {"kind": "Machine", "metadata": {"name": "m", "labels": {"a": "b"}}, "spec": {}},
            "Podman machines carry no labels",
        ),
        (
            {
                "kind": "DeviceMapping",
                "metadata": {"name": "g", "labels": {"a": "b"}},
                "spec": {"devices": ["/dev/dri"]},
            },
            "creates no object to label",
        ),
    ],
)
def test_labels_that_could_reach_nothing_are_refused(
    tmp_path: Path, doc: dict[str, Any], path: str
) -> None:
    """Labels on a pulled Image, a Machine or a DeviceMapping were silently dropped; now refused."""
    issues = problems(tmp_path, {"apiVersion": "podform/v1", **doc})
    assert any("$.metadata.labels" in i and path in i for i in issues), issues


def test_stack_labels_reach_every_workload_network_and_secret(tmp_path: Path) -> None:
    """Stack labels are copied onto the objects of the stack; an object's own label wins."""
    (tmp_path / "tok").write_text("x")
    head = {
        "apiVersion": "podform/v1",
        "kind": "Stack",
        "metadata": {"name": "s", "labels": {"team": "ml", "tier": "a"}},
    }
    docs = [
        head,
        {"apiVersion": "podform/v1", "kind": "Network", "metadata": {"name": "n"}, "spec": {}},
        {
            "apiVersion": "podform/v1",
            "kind": "Secret",
            "metadata": {"name": "t"},
            "spec": {"file": "./tok"},
        },
        {**wl(networks=["n"]), "metadata": {"name": "web", "labels": {"tier": "b"}}},
    ]
    path = tmp_path / "stack.yaml"
    path.write_text(yaml.safe_dump_all(docs, sort_keys=False, explicit_start=True))
    d = load_desired([str(path)])
    assert d.workloads["web"].labels == {"team": "ml", "tier": "b"}
    assert d.networks["n"].labels == {"team": "ml", "tier": "a"}
    assert d.secrets["t"].labels == {"team": "ml", "tier": "a"}


def test_unknown_network_workload_and_both_network_forms_are_errors(tmp_path: Path) -> None:
    """networks: names declared Networks; network and networks exclude each other; container:
    and ipc container: name declared workloads."""
    issues = problems(
        tmp_path,
        wl("a", networks=["nope"]),
        wl("b", network="container:ghost"),
        wl("c", ipc="container:ghost"),
        wl("d", network="bridge", networks=["nope"]),
        wl("e", groupAdd=["keep-groups", "video"]),
        wl("f", extraHosts=["gw:1.2.3"], dns=["1.2.3"]),
    )
    text = "\n".join(issues)
    assert "$.spec.networks[0]: unknown Network 'nope'" in text
    assert "$.spec.network: unknown Workload 'ghost'" in text
    assert "$.spec.ipc: unknown Workload 'ghost'" in text
    assert "set network or networks, not both" in text
    assert "keep-groups cannot be combined" in text
    assert "$.spec.extraHosts[0]" in text and "$.spec.dns[0]" in text


def test_joining_another_workloads_namespace_orders_it_first(tmp_path: Path) -> None:
    """network: container:db resolves to the container s-db-1 and depends on db starting."""
    d = load_desired([str(write(tmp_path, wl("db"), wl("web", network="container:db")))])
    web = d.workloads["web"]
    assert web.network_target == "s-db-1"
    assert [x.name for x in web.depends_on] == ["db"]
    assert d.workload_order() == ["db", "web"]
    spec = container_spec("s-web-1", web, "sha256:x", {})
    assert spec["netns"] == {"nsmode": "container", "value": "s-db-1"}


def policy_doc(tmp_path: Path, **spec: Any) -> Document:
    data = wl(**spec)
    return Document(file="m.yaml", index=0, data=data, base_dir=tmp_path)


@pytest.mark.parametrize(
    ("spec", "json_path"),
    [
        ({"securityOpt": ["label=disable", "seccomp=unconfined"]}, "$.spec.securityOpt[1]"),
        ({"securityOpt": ["apparmor=unconfined"]}, "$.spec.securityOpt[0]"),
        ({"securityOpt": ["label=type:spc_t"]}, "$.spec.securityOpt[0]"),
        ({"securityOpt": ["unmask=ALL"]}, "$.spec.securityOpt[0]"),
        ({"ipc": "host"}, "$.spec.ipc"),
    ],
)
def test_unconfining_options_need_allow_privileged(
    tmp_path: Path, spec: dict[str, Any], json_path: str
) -> None:
    """seccomp/apparmor=unconfined, label=type:spc_t, unmask and ipc: host are refused unless
    the Stack allows privilege."""
    issues = check_policy([policy_doc(tmp_path, **spec)], allow_privileged=False)
    assert [i.json_path for i in issues] == [json_path]
    assert PRIVILEGE_FIX in issues[0].message
    assert check_policy([policy_doc(tmp_path, **spec)], allow_privileged=True) == []


def test_gpu_friendly_options_need_no_privilege(tmp_path: Path) -> None:
    """label=disable, no-new-privileges, capDrop ALL, keep-groups, keep-id and ipc private pass."""
    spec = {
        "securityOpt": ["label=disable", "no-new-privileges"],
        "capDrop": ["ALL"],
        "groupAdd": ["keep-groups"],
        "userns": "keep-id",
        "ipc": "private",
    }
    assert check_policy([policy_doc(tmp_path, **spec)], allow_privileged=False) == []


def test_options_become_the_fields_the_podman_cli_sends(tmp_path: Path) -> None:
    """Each option lands in the SpecGenerator field (and inspect annotation) `podman create` uses."""
    (tmp_path / "a.env").write_text("export A_TOKEN='t'\nPLAIN=1\n")
    d = load_desired(
        [
            str(
                write(
                    tmp_path,
                    wl(
                        network="slirp4netns",
                        groupAdd=["keep-groups"],
                        userns="keep-id",
                        securityOpt=["label=disable", "seccomp=/etc/p.json", "mask=/a:/b"],
                        ulimits={"memlock": -1, "nofile": "1024:2048"},
                        shmSize="8GiB",
                        ipc="private",
                        stopSignal="INT",
                        envFile=["./a.env"],
                        env={"PLAIN": "2"},
                        logging={"driver": "journald", "options": {"tag": "x", "max-size": "1.5k"}},
                    ),
                )
            )
        ]
    )
    w = d.workloads["web"]
    spec = container_spec("s-web-1", w, "sha256:x", {})
    assert spec["netns"] == {"nsmode": "slirp4netns"}
    assert spec["annotations"]["run.oci.keep_original_groups"] == "1"
    assert spec["annotations"]["io.podman.annotations.label"] == "disable"
    assert "groups" not in spec
    assert spec["userns"] == {"nsmode": "keep-id"}
    assert spec["seccomp_profile_path"] == "/etc/p.json"
    assert spec["mask"] == ["/a", "/b"]
    assert spec["r_limits"] == [
        {"type": "memlock", "soft": 2**64 - 1, "hard": 2**64 - 1},
        {"type": "nofile", "soft": 1024, "hard": 2048},
    ]
    assert spec["shm_size"] == 8 * 1024**3
    assert spec["ipcns"] == {"nsmode": "private"}
    assert spec["stop_signal"] == 2
    assert spec["log_configuration"] == {
        "driver": "journald",
        "size": 1500,
        "options": {"tag": "x"},
    }
    assert spec["env"] == {"A_TOKEN": "t", "PLAIN": "2"}  # env wins over the env file
    masked = masked_spec(workload_spec(w, "sha256:x"))
    assert masked["env"] == {"A_TOKEN": "*****", "PLAIN": "2"}


def test_a_value_from_an_env_file_is_masked_even_under_a_plain_key(tmp_path: Path) -> None:
    """Every envFile value is masked in what podform stores and shows, whatever its key."""
    (tmp_path / "a.env").write_text("MODEL_URL=https://user:pw@example.com/m\n")
    d = load_desired([str(write(tmp_path, wl(envFile=["./a.env"])))])
    masked = masked_spec(workload_spec(d.workloads["web"], "sha256:x"))
    assert masked["env"] == {"MODEL_URL": "*****"}


def test_a_bad_env_file_names_its_line(tmp_path: Path) -> None:
    """A line without `=` is an error naming the file and line, not the value."""
    (tmp_path / "a.env").write_text("OK=1\nnot-a-pair secret-value\n")
    [issue] = problems(tmp_path, wl(envFile=["./a.env"]))
    assert "a.env:2: expected KEY=VALUE" in issue
    assert "secret-value" not in issue


def test_unset_new_fields_keep_the_spec_hash_of_older_manifests(tmp_path: Path) -> None:
    """A manifest using none of the new fields (network: bridge) hashes as before; setting
    one changes the hash."""
    plain = load_desired([str(write(tmp_path, wl(network="bridge")))]).workloads["web"]
    spec = workload_spec(plain, "sha256:x")
    assert set(spec) == {
        "v", "image", "command", "args", "env", "secrets", "ports", "volumes", "devices",
        "memory_mib", "cpus", "restart", "healthcheck", "init", "stop_timeout_s", "network",
        "privileged", "cap_add", "labels",
    }  # fmt: skip
    shm = load_desired([str(write(tmp_path, wl(network="bridge", shmSize="1Gi")))]).workloads["web"]
    assert spec_hash(workload_spec(shm, "sha256:x")) != spec_hash(spec)


def test_env_and_secret_files_must_be_regular_files(tmp_path: Path) -> None:
    """A FIFO as env file and a directory as secret file are errors naming the path, never a hang."""
    import os

    os.mkfifo(tmp_path / "fifo.env")
    (tmp_path / "secret-dir").mkdir()
    secret = {
        "apiVersion": "podform/v1",
        "kind": "Secret",
        "metadata": {"name": "t"},
        "spec": {"file": "./secret-dir"},
    }
    issues = "\n".join(problems(tmp_path, wl(envFile=["./fifo.env"]), secret))
    assert "fifo.env is not a regular file" in issues
    assert "secret-dir is not a regular file" in issues


def test_podform_schema_workload_describes_every_new_field() -> None:
    """`podform schema Workload` lists each new field with a description."""
    import json

    from reconciler.manifests.schema import schema_text

    props = json.loads(schema_text("Workload"))["properties"]["spec"]["properties"]
    new = [
        "user", "groupAdd", "userns", "securityOpt", "capDrop", "shmSize", "ipc", "ulimits",
        "pidsLimit", "readOnly", "tmpfs", "workdir", "hostname", "extraHosts", "dns", "envFile",
        "stopSignal", "logging", "networks", "network",
    ]  # fmt: skip
    for name in new:
        assert props[name].get("description"), name
