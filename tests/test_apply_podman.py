"""`podform apply/plan/status` against real Podman: idempotence, targeted replacement, drift,
prune and ownership, volumes, devices and probes, secrets, foreign names, dependencies.

Every test drives the real entry point in a subprocess and checks the world with the podman
CLI, never with podform's own report of what it did.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from helpers import PodformRunner, doc, ok, workload, write_stack
from podman_env import container_ids, container_state, podform_subprocess, podman_cli


def names(stack: str, *suffixes: str) -> set[str]:
    return {f"{stack}-{s}" for s in suffixes}


def test_second_apply_changes_nothing_and_exit_codes_say_so(
    run_podform: PodformRunner, busybox_image: str, stack_name: str, tmp_path: Path
) -> None:
    """plan says 2 before and 0 after; apply --detailed-exitcode says 2 then 0; IDs stay."""
    d = write_stack(tmp_path / "m", stack_name, workload("web", busybox_image, replicas=2))
    ok(run_podform("plan", "-f", str(d)), 2)
    assert container_ids(stack_name) == {}, "plan must not create anything"
    # A dry run answers like plan: 2 while changes are pending, and changes nothing.
    ok(run_podform("apply", "-f", str(d), "--dry-run", "--detailed-exitcode"), 2)
    ok(run_podform("apply", "-f", str(d), "--dry-run"), 0)
    assert container_ids(stack_name) == {}, "a dry run must not create anything"
    ok(run_podform("apply", "-f", str(d), "--detailed-exitcode"), 2)
    first = container_ids(stack_name)
    assert set(first) == names(stack_name, "web-1", "web-2")
    assert all(container_state(n) == "running" for n in first)
    ok(run_podform("plan", "-f", str(d)), 0)
    ok(run_podform("apply", "-f", str(d), "--detailed-exitcode"), 0)
    ok(run_podform("apply", "-f", str(d), "--dry-run", "--detailed-exitcode"), 0)
    assert container_ids(stack_name) == first


def test_changing_one_workload_replaces_exactly_its_container(
    run_podform: PodformRunner, busybox_image: str, stack_name: str, tmp_path: Path
) -> None:
    """An env change in one of three workloads replaces that container only."""
    ws = [workload(n, busybox_image, env={"LEVEL": "info"}) for n in ("a", "b", "c")]
    d = write_stack(tmp_path / "m", stack_name, *ws)
    ok(run_podform("apply", "-f", str(d)))
    before = container_ids(stack_name)
    ws[1] = workload("b", busybox_image, env={"LEVEL": "debug"})
    write_stack(d, stack_name, *ws)
    ok(run_podform("apply", "-f", str(d)))
    after = container_ids(stack_name)
    assert set(after) == set(before)
    changed = {n for n in after if after[n] != before[n]}
    assert changed == names(stack_name, "b-1")
    env = podman_cli("exec", f"{stack_name}-b-1", "env")
    assert "LEVEL=debug" in env.splitlines()


def test_scaling_up_and_down_keeps_replica_one(
    run_podform: PodformRunner, busybox_image: str, stack_name: str, tmp_path: Path
) -> None:
    """replicas 2 -> 3 adds replica 3; 3 -> 1 removes 2 and 3; replica 1 keeps its ID."""
    d = write_stack(tmp_path / "m", stack_name, workload("web", busybox_image, replicas=2))
    ok(run_podform("apply", "-f", str(d)))
    first = container_ids(stack_name)
    write_stack(d, stack_name, workload("web", busybox_image, replicas=3))
    ok(run_podform("apply", "-f", str(d)))
    up = container_ids(stack_name)
    assert set(up) == names(stack_name, "web-1", "web-2", "web-3")
    assert {n: up[n] for n in first} == first
    write_stack(d, stack_name, workload("web", busybox_image, replicas=1))
    ok(run_podform("apply", "-f", str(d)))
    down = container_ids(stack_name)
    assert down == {f"{stack_name}-web-1": first[f"{stack_name}-web-1"]}


def test_drift_by_hand_is_corrected(
    run_podform: PodformRunner, busybox_image: str, stack_name: str, tmp_path: Path
) -> None:
    """A container stopped by hand is started again (same ID); one removed is recreated."""
    d = write_stack(tmp_path / "m", stack_name, workload("web", busybox_image))
    ok(run_podform("apply", "-f", str(d)))
    name = f"{stack_name}-web-1"
    cid = container_ids(stack_name)[name]
    podman_cli("stop", "-t", "0", name)
    assert container_state(name) != "running"
    ok(run_podform("plan", "-f", str(d)), 2)
    ok(run_podform("apply", "-f", str(d)))
    assert container_ids(stack_name) == {name: cid}
    assert container_state(name) == "running"
    podman_cli("rm", "-f", "-t", "0", name)
    ok(run_podform("apply", "-f", str(d)))
    new = container_ids(stack_name)
    assert set(new) == {name} and new[name] != cid
    assert container_state(name) == "running"


@pytest.mark.parametrize("how", ["flag", "stack-spec"])
def test_prune_deletes_only_owned_undeclared_containers(
    run_podform: PodformRunner, busybox_image: str, stack_name: str, tmp_path: Path, how: str
) -> None:
    """Prune removes a container podform created and no longer declared; a hand-made one with
    podform's labels, and a declared one, stay."""
    stack_spec = {"prune": True} if how == "stack-spec" else None
    flags = ["--prune"] if how == "flag" else []
    d = write_stack(
        tmp_path / "m", stack_name, workload("a", busybox_image), workload("b", busybox_image)
    )
    ok(run_podform("apply", "-f", str(d)))
    podman_cli(
        "create", "--name", f"{stack_name}-x-1", "--label", f"io.podform.stack={stack_name}",
        "--label", "io.podform.name=x", "--label", "io.podform.kind=Workload",
        busybox_image, "true",
    )  # fmt: skip
    before = container_ids(stack_name)
    write_stack(d, stack_name, workload("a", busybox_image))
    if how == "flag":  # without the flag, an undeclared container is left alone
        ok(run_podform("apply", "-f", str(d)))
        assert container_ids(stack_name) == before
    write_stack(d, stack_name, workload("a", busybox_image), stack_spec=stack_spec)
    done = run_podform("apply", "-f", str(d), *flags)
    ok(done)
    after = container_ids(stack_name)
    assert set(after) == names(stack_name, "a-1", "x-1")
    assert after == {n: before[n] for n in after}
    assert f"{stack_name}-x-1" in done.stdout + done.stderr, "the kept stranger is mentioned"


def test_named_volume_data_survives_replace_and_prune(
    run_podform: PodformRunner, busybox_image: str, stack_name: str, tmp_path: Path
) -> None:
    """A file written into a named volume is still there after a replace and after a prune."""
    vol = f"{stack_name}-data"
    db = workload("db", busybox_image, volumes=[f"{vol}:/data"], env={"V": "1"})
    other = workload("other", busybox_image)
    d = write_stack(tmp_path / "m", stack_name, db, other)
    ok(run_podform("apply", "-f", str(d)))
    podman_cli("exec", f"{stack_name}-db-1", "sh", "-c", "echo kept > /data/f")
    old = container_ids(stack_name)[f"{stack_name}-db-1"]
    db["spec"]["env"] = {"V": "2"}
    write_stack(d, stack_name, db, other)
    ok(run_podform("apply", "-f", str(d)))
    assert container_ids(stack_name)[f"{stack_name}-db-1"] != old
    assert podman_cli("exec", f"{stack_name}-db-1", "cat", "/data/f") == "kept\n"
    write_stack(d, stack_name, other)
    ok(run_podform("apply", "-f", str(d), "--prune"))
    assert set(container_ids(stack_name)) == names(stack_name, "other-1")
    assert vol in podman_cli("volume", "ls", "--format", "{{.Name}}").split()
    out = podman_cli("run", "--rm", "-v", f"{vol}:/data", busybox_image, "cat", "/data/f")
    assert out == "kept\n"


def test_prune_down_to_nothing_needs_allow_empty(
    run_podform: PodformRunner, busybox_image: str, stack_name: str, tmp_path: Path
) -> None:
    """Pruning with nothing declared is refused (exit 1, nothing deleted) unless --allow-empty."""
    d = write_stack(tmp_path / "m", stack_name, workload("web", busybox_image))
    ok(run_podform("apply", "-f", str(d)))
    before = container_ids(stack_name)
    write_stack(d, stack_name)
    done = run_podform("apply", "-f", str(d), "--prune")
    ok(done, 1)
    assert "--allow-empty" in done.stdout + done.stderr
    assert container_ids(stack_name) == before
    ok(run_podform("apply", "-f", str(d), "--prune", "--allow-empty"))
    assert container_ids(stack_name) == {}


@pytest.mark.parametrize("damage", ["missing", "corrupt"])
def test_unusable_inventory_skips_prune_with_a_warning(
    run_podform: PodformRunner,
    busybox_image: str,
    stack_name: str,
    tmp_path: Path,
    state_dir: Path,
    damage: str,
) -> None:
    """With the inventory missing or corrupt, prune deletes nothing and says why."""
    d = write_stack(
        tmp_path / "m", stack_name, workload("a", busybox_image), workload("b", busybox_image)
    )
    ok(run_podform("apply", "-f", str(d)))
    before = container_ids(stack_name)
    inventory = state_dir / f"{stack_name}.json"
    assert inventory.is_file()
    if damage == "missing":
        inventory.unlink()
    else:
        inventory.write_text('{"containers": [oops')
    write_stack(d, stack_name, workload("a", busybox_image))
    done = run_podform("apply", "-f", str(d), "--prune")
    ok(done)
    assert container_ids(stack_name) == before
    assert "prune skipped" in done.stdout + done.stderr


def _gpu_stack(directory: Path, stack: str, image: str, expect: str) -> Path:
    mapping = doc(
        "DeviceMapping",
        "gpu",
        {
            "devices": ["/dev/zero:/dev/dri/renderD128"],
            "env": {"GGML_VK_VISIBLE_DEVICES": "0"},
            "probe": {"command": ["ls", "/dev/dri"], "expect": expect, "timeout": "10s"},
        },
    )
    return write_stack(directory, stack, mapping, workload("llm", image, devices=["gpu"]))


def test_device_mapping_devices_env_and_passing_probe(
    run_podform: PodformRunner, busybox_image: str, stack_name: str, tmp_path: Path
) -> None:
    """A mapping's device and env reach the container; its passing probe gives exit 0 and ready."""
    d = _gpu_stack(tmp_path / "m", stack_name, busybox_image, "renderD128")
    ok(run_podform("apply", "-f", str(d)))
    name = f"{stack_name}-llm-1"
    assert podman_cli("exec", name, "ls", "/dev/dri").split() == ["renderD128"]
    assert "GGML_VK_VISIBLE_DEVICES=0" in podman_cli("exec", name, "env").splitlines()
    ok(run_podform("status", "-f", str(d)))


def test_failing_probe_is_degraded_and_not_ready(
    run_podform: PodformRunner, busybox_image: str, stack_name: str, tmp_path: Path
) -> None:
    """A probe whose output lacks the expected text makes apply exit 1 and status not ready."""
    d = _gpu_stack(tmp_path / "m", stack_name, busybox_image, "Virtio-GPU Venus")
    done = run_podform("apply", "-f", str(d))
    ok(done, 1)
    assert "GPU not visible" in done.stdout + done.stderr
    assert container_state(f"{stack_name}-llm-1") == "running"
    status = run_podform("status", "-f", str(d))
    ok(status, 1)
    assert "GPU not visible" in status.stdout


def test_secret_env_values_never_shown_or_stored(
    run_podform: PodformRunner,
    busybox_image: str,
    stack_name: str,
    tmp_path: Path,
    state_dir: Path,
) -> None:
    """A TOKEN value is in the container but in no plan, apply output, log, error or inventory."""
    outputs: list[str] = []

    def run(*args: str, code: int) -> None:
        done = run_podform("--log-format", "json", "-v", *args)
        ok(done, code)
        outputs.extend([done.stdout, done.stderr])

    d = tmp_path / "m"
    for value in ("sentinel-XYZ", "sentinel-ABC"):
        write_stack(d, stack_name, workload("web", busybox_image, env={"API_TOKEN": value}))
        run("plan", "-f", str(d), code=2)
        run("plan", "-o", "json", "-f", str(d), code=2)
        run("apply", "-f", str(d), code=0)
        run("apply", "-o", "json", "-f", str(d), code=0)
        env = podman_cli("exec", f"{stack_name}-web-1", "env").splitlines()
        assert f"API_TOKEN={value}" in env
    # An invalid document next to the secret: the error must not quote it either.
    bad = workload("web", busybox_image, env={"API_TOKEN": "sentinel-XYZ"}, replicas="many")
    write_stack(d, stack_name, bad)
    run("apply", "-f", str(d), code=1)
    stored = "".join(p.read_text(errors="replace") for p in state_dir.rglob("*") if p.is_file())
    assert stored, "the inventory was written"
    for text in [*outputs, stored]:
        assert "sentinel" not in text


def test_unmanaged_container_holding_a_name_fails_apply_and_changes_nothing(
    run_podform: PodformRunner, busybox_image: str, stack_name: str, tmp_path: Path
) -> None:
    """A foreign container named like ours: apply exits 1 naming it, creates nothing else."""
    foreign = f"{stack_name}-web-1"
    fid = podman_cli("create", "--name", foreign, busybox_image, "true").strip()
    d = write_stack(
        tmp_path / "m", stack_name, workload("web", busybox_image), workload("db", busybox_image)
    )
    done = run_podform("apply", "-f", str(d))
    ok(done, 1)
    assert foreign in done.stdout + done.stderr
    assert container_ids(stack_name) == {}
    listed = podman_cli("ps", "-a", "--no-trunc", "--filter", f"name=^{stack_name}-", "-q")
    assert listed.split() == [fid]
    assert container_state(foreign) == "created"


def test_unreachable_podman_is_one_clear_line(tmp_path: Path) -> None:
    """A dead socket: exit 1 within 15 s, one line naming the socket, no traceback."""
    d = write_stack(tmp_path / "m", "t-unreachable", workload("web", "localhost/x:latest"))
    start = time.monotonic()
    done = podform_subprocess(
        "apply", "-f", str(d), "--url", "unix:///nonexistent.sock", "--state-dir",
        str(tmp_path / "state"), timeout=30,
    )  # fmt: skip
    elapsed = time.monotonic() - start
    ok(done, 1)
    assert elapsed < 15
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, done.stderr
    assert "/nonexistent.sock" in lines[0]
    assert "Traceback" not in done.stdout + done.stderr


def test_depends_on_healthy_and_stopped_state(
    run_podform: PodformRunner, busybox_image: str, stack_name: str, tmp_path: Path
) -> None:
    """A dependent is created after its dependency is healthy; state: stopped exists, not running."""
    db = workload("db", busybox_image, healthcheck={"command": ["true"], "interval": "30s"})
    web = workload("web", busybox_image, dependsOn=[{"name": "db", "condition": "healthy"}])
    idle = workload("idle", busybox_image, state="stopped")
    d = write_stack(tmp_path / "m", stack_name, web, idle, db)
    ok(run_podform("apply", "-f", str(d)))
    assert set(container_ids(stack_name)) == names(stack_name, "db-1", "web-1", "idle-1")
    fmt = "{{.State.StartedAt.UnixNano}} {{.Created.UnixNano}}"
    db_started, _ = map(int, podman_cli("inspect", "-f", fmt, f"{stack_name}-db-1").split())
    _, web_created = map(int, podman_cli("inspect", "-f", fmt, f"{stack_name}-web-1").split())
    assert web_created > db_started
    # No systemd timers here: "healthy" means podform ran the check before creating web.
    health = podman_cli("inspect", "-f", "{{.State.Health.Status}}", f"{stack_name}-db-1")
    assert health.strip() == "healthy"
    assert container_state(f"{stack_name}-web-1") == "running"
    assert container_state(f"{stack_name}-idle-1") != "running"
    ok(run_podform("apply", "-f", str(d), "--detailed-exitcode"), 0)


def test_twenty_workloads_cold_apply_then_noop_apply_and_plan(
    run_podform: PodformRunner, busybox_image: str, stack_name: str, tmp_path: Path
) -> None:
    """20 workloads: a cold apply creates 20 containers; a second apply and a plan change
    nothing, keep every container id and say so (timings are bench/'s job, not a test's)."""
    d = write_stack(
        tmp_path / "m", stack_name, *(workload(f"w{i:02}", busybox_image) for i in range(20))
    )
    ok(run_podform("apply", "-f", str(d)))
    first = container_ids(stack_name)
    assert len(first) == 20
    noop = run_podform("apply", "-f", str(d), "--detailed-exitcode")
    ok(noop, 0)
    assert "Apply complete: 0 changed; " in noop.stdout, noop.stdout
    plan = run_podform("plan", "-f", str(d))
    ok(plan, 0)
    assert "0 to create, 0 to update, 0 to replace, 0 to delete, " in plan.stdout, plan.stdout
    assert container_ids(stack_name) == first
