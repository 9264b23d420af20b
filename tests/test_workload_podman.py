"""Workload settings, the stack network, declared Networks and Secrets against real Podman.

Each test applies through the real entry point and checks the world with `podman inspect` and
commands inside the containers, never with podform's own report of what it did.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from conftest import PodformRunner
from podman_env import container_ids, podman_cli
from test_apply_podman import ok, workload, write_stack

HTTPD = [
    "sh",
    "-c",
    "mkdir -p /www && echo hello-from-$(hostname) > /www/index.html && exec httpd -f -p 8080 -h /www",
]


def doc(kind: str, name: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": "podform/v1", "kind": kind, "metadata": {"name": name}, "spec": spec}


def inspect(name: str) -> dict[str, Any]:
    data: list[dict[str, Any]] = json.loads(podman_cli("inspect", "--type", "container", name))
    return data[0]


def in_container(name: str, *command: str) -> str:
    return podman_cli("exec", name, *command)


def fetch(client: str, url: str) -> str:
    """busybox wget from inside CLIENT (its -T segfaults on Debian 12; timeout bounds it)."""
    return in_container(client, "timeout", "3", "wget", "-q", "-O-", url)


def test_every_new_field_reaches_podman_and_a_second_apply_changes_nothing(
    run_podform: PodformRunner, busybox_image: str, stack_name: str, tmp_path: Path, state_dir: Path
) -> None:
    """user, groups, shm, ipc, ulimits, pids, read-only, tmpfs, workdir, hostname, hosts, dns,
    envFile, stop signal, logging, securityOpt and capDrop show in inspect and inside; the
    env file's values appear in no output or state; re-applying is a no-op."""
    d = tmp_path / "m"
    d.mkdir()
    (d / "api.env").write_text("API_MODE=envfile-sentinel-1\n# comment\nOTHER='quoted'\n")
    w = workload(
        "api",
        busybox_image,
        network="bridge",
        user="1000:1000",
        groupAdd=["44"],
        securityOpt=["label=disable", "no-new-privileges"],
        capDrop=["NET_RAW"],
        shmSize="128Mi",
        ipc="shareable",
        ulimits={"nofile": 4096, "nproc": "1000:2000"},
        pidsLimit=64,
        readOnly=True,
        tmpfs=["/scratch:size=8m"],
        workdir="/scratch",
        hostname="api-host",
        extraHosts=["gateway:10.0.0.1"],
        dns=["192.0.2.53"],
        envFile=["./api.env"],
        stopSignal="SIGINT",
        logging={"driver": "k8s-file", "options": {"max-size": "10m"}},
    )
    write_stack(d, stack_name, w)
    first = run_podform("apply", "-f", str(d), "--detailed-exitcode")
    ok(first, 2)
    name = f"{stack_name}-api-1"
    info = inspect(name)
    host, config = info["HostConfig"], info["Config"]
    assert config["User"] == "1000:1000"
    assert host["GroupAdd"] == ["44"]
    assert sorted(host["SecurityOpt"]) == ["label=disable", "no-new-privileges"]
    assert "CAP_NET_RAW" in host["CapDrop"]
    assert host["ShmSize"] == 128 * 1024 * 1024
    assert host["IpcMode"] == "shareable"
    limits = {u["Name"]: (u["Soft"], u["Hard"]) for u in host["Ulimits"]}
    assert limits["RLIMIT_NOFILE"] == (4096, 4096)
    assert limits["RLIMIT_NPROC"] == (1000, 2000)
    assert host["PidsLimit"] == 64
    assert host["ReadonlyRootfs"] is True
    assert "size=8m" in host["Tmpfs"]["/scratch"]
    assert config["WorkingDir"] == "/scratch"
    assert config["Hostname"] == "api-host"
    assert host["ExtraHosts"] == ["gateway:10.0.0.1"]
    assert host["Dns"] == ["192.0.2.53"]
    assert "API_MODE=envfile-sentinel-1" in config["Env"]
    assert "OTHER=quoted" in config["Env"]
    assert config["StopSignal"] in (2, "2", "SIGINT")
    assert host["LogConfig"]["Type"] == "k8s-file"
    assert host["LogConfig"]["Size"] == "10MB"
    assert in_container(name, "id", "-u").strip() == "1000"
    assert in_container(name, "sh", "-c", "ulimit -n").strip() == "4096"
    shm_kib = in_container(name, "df", "-k", "/dev/shm").splitlines()[-1].split()[1]
    assert int(shm_kib) == 128 * 1024
    assert "10.0.0.1\tgateway" in in_container(name, "cat", "/etc/hosts")
    assert "nameserver 192.0.2.53" in in_container(name, "cat", "/etc/resolv.conf")
    assert in_container(name, "pwd").strip() == "/scratch"
    ids = container_ids(stack_name)
    again = run_podform("apply", "-f", str(d), "--detailed-exitcode")
    ok(again, 0)
    assert container_ids(stack_name) == ids
    shown = run_podform("plan", "-o", "json", "-f", str(d))
    ok(shown, 0)
    stored = "".join(p.read_text(errors="replace") for p in state_dir.rglob("*") if p.is_file())
    for text in (first.stdout, first.stderr, again.stdout, shown.stdout, stored):
        assert "envfile-sentinel" not in text
    # An edit of the env file is a spec change: the container is replaced, the value masked.
    (d / "api.env").write_text("API_MODE=envfile-sentinel-2\nOTHER='quoted'\n")
    changed = run_podform("plan", "-f", str(d))
    ok(changed, 2)
    assert "envfile-sentinel" not in changed.stdout + changed.stderr
    assert "a sensitive value" in changed.stdout


def test_workloads_reach_each_other_by_name_on_the_stack_network(
    run_podform: PodformRunner, busybox_image: str, stack_name: str, tmp_path: Path
) -> None:
    """By default every workload joins the network `<stack>` (DNS on) with its name as alias;
    delete removes the network once its containers are gone."""
    d = write_stack(
        tmp_path / "m",
        stack_name,
        workload("api", busybox_image, command=HTTPD),
        workload("ui", busybox_image),
    )
    ok(run_podform("apply", "-f", str(d)))
    net = json.loads(podman_cli("network", "inspect", stack_name))[0]
    assert net["dns_enabled"] is True
    assert net["labels"]["io.podform.stack"] == stack_name
    assert "hello-from" in fetch(f"{stack_name}-ui-1", "http://api:8080/")
    assert "hello-from" in fetch(f"{stack_name}-ui-1", f"http://{stack_name}-api-1:8080/")
    ok(run_podform("apply", "-f", str(d), "--detailed-exitcode"), 0)
    ok(run_podform("delete", "-f", str(d)))
    assert stack_name not in podman_cli("network", "ls", "--format", "{{.Name}}").split()


def test_bridge_keeps_podmans_default_network(
    run_podform: PodformRunner, busybox_image: str, stack_name: str, tmp_path: Path
) -> None:
    """`network: bridge` puts the container on Podman's `podman` network and creates none."""
    d = write_stack(tmp_path / "m", stack_name, workload("web", busybox_image, network="bridge"))
    ok(run_podform("apply", "-f", str(d)))
    nets = inspect(f"{stack_name}-web-1")["NetworkSettings"]["Networks"]
    assert list(nets) == ["podman"]
    assert stack_name not in podman_cli("network", "ls", "--format", "{{.Name}}").split()


def test_a_declared_network_with_an_alias(
    run_podform: PodformRunner, busybox_image: str, stack_name: str, tmp_path: Path
) -> None:
    """A Network is created as `<stack>-<name>` with its settings; a workload's extra alias
    resolves from another member; an unused network is pruned once it is no longer declared."""
    backend = doc("Network", "backend", {"internal": True, "subnet": "10.89.213.0/24"})
    d = write_stack(
        tmp_path / "m",
        stack_name,
        backend,
        workload(
            "db",
            busybox_image,
            command=HTTPD,
            networks=[{"name": "backend", "aliases": ["database"]}],
        ),
        workload("app", busybox_image, networks=["backend"]),
    )
    ok(run_podform("apply", "-f", str(d)))
    net = json.loads(podman_cli("network", "inspect", f"{stack_name}-backend"))[0]
    assert net["internal"] is True
    assert net["subnets"][0]["subnet"] == "10.89.213.0/24"
    assert "hello-from" in fetch(f"{stack_name}-app-1", "http://database:8080/")
    assert "hello-from" in fetch(f"{stack_name}-app-1", "http://db:8080/")
    ok(run_podform("apply", "-f", str(d), "--detailed-exitcode"), 0)
    write_stack(d, stack_name, workload("app", busybox_image, network="bridge"))
    ok(run_podform("apply", "--prune", "-f", str(d)))
    assert (
        f"{stack_name}-backend" not in podman_cli("network", "ls", "--format", "{{.Name}}").split()
    )


def test_a_secret_from_a_file_reaches_env_is_replaced_on_change_and_is_never_shown(
    run_podform: PodformRunner, busybox_image: str, stack_name: str, tmp_path: Path, state_dir: Path
) -> None:
    """A Secret is created as `<stack>-<name>`; its value reaches the container's env; a new
    value replaces the secret and the container; no output or state file holds a value."""
    d = tmp_path / "m"
    d.mkdir()
    secret_file = d / "hf-token"
    outputs: list[str] = []

    def run(*args: str, code: int = 0) -> None:
        done = run_podform("--log-format", "json", "-v", *args)
        ok(done, code)
        outputs.extend([done.stdout, done.stderr])

    ids: list[str] = []
    for value in ("secret-sentinel-one", "secret-sentinel-two"):
        secret_file.write_text(value)
        write_stack(
            d,
            stack_name,
            doc("Secret", "hf-token", {"file": "./hf-token"}),
            workload("llm", busybox_image, secrets=[{"name": "hf-token", "env": "HF_TOKEN"}]),
        )
        run("plan", "-f", str(d), code=2)
        run("plan", "-o", "json", "-f", str(d), code=2)
        run("apply", "-f", str(d), "--detailed-exitcode", code=2)
        run("apply", "-o", "json", "-f", str(d), "--detailed-exitcode", code=0)
        name = f"{stack_name}-llm-1"
        assert f"HF_TOKEN={value}" in in_container(name, "env").splitlines()
        assert (
            f"{stack_name}-hf-token" in podman_cli("secret", "ls", "--format", "{{.Name}}").split()
        )
        ids.append(container_ids(stack_name)[name])
    assert ids[0] != ids[1], "a changed secret value replaces the container using it"
    inventory = state_dir / f"{stack_name}.json"
    assert inventory.stat().st_mode & 0o777 == 0o600
    assert json.loads(inventory.read_text())["secrets"]
    stored = "".join(p.read_text(errors="replace") for p in state_dir.rglob("*") if p.is_file())
    for text in [*outputs, stored]:
        assert "secret-sentinel" not in text
    run("delete", "-f", str(d))
    assert (
        f"{stack_name}-hf-token" not in podman_cli("secret", "ls", "--format", "{{.Name}}").split()
    )


def test_a_secret_from_a_missing_env_var_fails_naming_the_variable(
    run_podform: PodformRunner, busybox_image: str, stack_name: str, tmp_path: Path
) -> None:
    """`env:` is read from podform's environment at apply; unset, apply exits 1 naming it."""
    d = write_stack(
        tmp_path / "m",
        stack_name,
        doc("Secret", "key", {"env": "PODFORM_TEST_UNSET_VAR"}),
        workload("web", busybox_image, secrets=[{"name": "key", "env": "KEY"}]),
    )
    done = run_podform("apply", "-f", str(d))
    ok(done, 1)
    assert "PODFORM_TEST_UNSET_VAR" in done.stdout + done.stderr
    assert container_ids(stack_name) == {}
    done = run_podform("apply", "-f", str(d), env={"PODFORM_TEST_UNSET_VAR": "env-sentinel"})
    ok(done, 0)
    assert "KEY=env-sentinel" in in_container(f"{stack_name}-web-1", "env").splitlines()
    assert "env-sentinel" not in done.stdout + done.stderr


def test_every_port_form_is_published_as_written(
    run_podform: PodformRunner, busybox_image: str, stack_name: str, tmp_path: Path
) -> None:
    """C, H:C, IP:H:C, IP::C, [IPv6]:H:C and /udp reach Podman's port bindings."""
    ports = [
        "8081",
        "18082:8082",
        "127.0.0.1:18083:8083",
        "127.0.0.1::8084",
        "[::1]:18085:8085",
        "18086:8086/udp",
    ]
    d = write_stack(tmp_path / "m", stack_name, workload("web", busybox_image, ports=ports))
    ok(run_podform("apply", "-f", str(d)))
    bindings = inspect(f"{stack_name}-web-1")["HostConfig"]["PortBindings"]
    assert int(bindings["8081/tcp"][0]["HostPort"]) > 0
    assert bindings["8082/tcp"][0]["HostPort"] == "18082"
    assert bindings["8083/tcp"][0] == {"HostIp": "127.0.0.1", "HostPort": "18083"}
    assert bindings["8084/tcp"][0]["HostIp"] == "127.0.0.1"
    assert int(bindings["8084/tcp"][0]["HostPort"]) > 0
    assert bindings["8085/tcp"][0] == {"HostIp": "::1", "HostPort": "18085"}
    assert bindings["8086/udp"][0]["HostPort"] == "18086"
    ok(run_podform("apply", "-f", str(d), "--detailed-exitcode"), 0)


def test_an_optional_device_missing_here_is_left_out(
    run_podform: PodformRunner, busybox_image: str, stack_name: str, tmp_path: Path
) -> None:
    """A DeviceMapping's `{path, optional: true}` that this host lacks is not an error; the
    required devices still reach the container."""
    gpu = doc(
        "DeviceMapping",
        "gpu",
        {
            "devices": [
                "/dev/zero:/dev/dri/renderD128",
                {"path": "/dev/kfd-absent", "optional": True},
            ]
        },
    )
    d = write_stack(
        tmp_path / "m", stack_name, gpu, workload("llm", busybox_image, devices=["gpu"])
    )
    ok(run_podform("apply", "-f", str(d)))
    devices = inspect(f"{stack_name}-llm-1")["HostConfig"]["Devices"]
    assert [x["PathInContainer"] for x in devices] == ["/dev/dri/renderD128"]
    ok(run_podform("apply", "-f", str(d), "--detailed-exitcode"), 0)


def test_a_changed_network_is_replaced_with_the_containers_on_it(
    run_podform: PodformRunner, busybox_image: str, stack_name: str, tmp_path: Path
) -> None:
    """Networks cannot change in place: a new setting replaces the network and recreates the
    workloads joined to it, which end up attached to the new one."""
    d = tmp_path / "m"
    for internal in (False, True):
        write_stack(
            d,
            stack_name,
            doc("Network", "backend", {"internal": internal}),
            workload("app", busybox_image, networks=["backend"]),
        )
        ok(run_podform("apply", "-f", str(d)))
        net = json.loads(podman_cli("network", "inspect", f"{stack_name}-backend"))[0]
        assert net["internal"] is internal
        attached = inspect(f"{stack_name}-app-1")["NetworkSettings"]["Networks"]
        assert list(attached) == [f"{stack_name}-backend"]
    ok(run_podform("apply", "-f", str(d), "--detailed-exitcode"), 0)
