"""Build contexts through the CLI on real Podman: special files fail `plan` at once, a large
context gets its hint, and a streamed build reports the bytes it sent."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from helpers import PodformRunner, app_stack, image_doc, image_ref, ok, write_stack
from podman_env import podman_cli

MiB = 1 << 20


def test_plan_with_a_fifo_in_the_context_fails_naming_it(
    run_podform: PodformRunner, stack_name: str, tmp_path: Path
) -> None:
    """A FIFO in a build context makes `plan` exit 1 at once with a line naming the file."""
    ctx = tmp_path / "m" / "ctx"
    ctx.mkdir(parents=True)
    (ctx / "Containerfile").write_text("FROM scratch\nCOPY . /\n")
    os.mkfifo(ctx / "pipe")
    d = write_stack(tmp_path / "m", stack_name, image_doc("app", stack_name, "./ctx"))
    start = time.monotonic()
    done = run_podform("plan", "-f", str(d), timeout=30)
    assert done.returncode == 1, done.stderr
    assert f"{ctx / 'pipe'} is a FIFO" in done.stderr
    assert "internal error" not in done.stderr
    assert time.monotonic() - start < 20


def test_plan_hints_at_a_context_over_one_gib(
    run_podform: PodformRunner, stack_name: str, tmp_path: Path
) -> None:
    """`plan` prints one warning line for a 1.1 GiB context, naming its largest file."""
    ctx = tmp_path / "m" / "llm"
    ctx.mkdir(parents=True)
    (ctx / "Containerfile").write_text("FROM scratch\nCOPY . /\n")
    with open(ctx / "model.gguf", "wb") as f:
        f.truncate(1100 * MiB)  # sparse: no disk used
    d = write_stack(tmp_path / "m", stack_name, image_doc("llm", stack_name, "./llm"))
    done = run_podform("plan", "-f", str(d))
    ok(done, 2)
    hints = [ln for ln in done.stdout.splitlines() if "better mounted as volumes" in ln]
    assert len(hints) == 1, done.stdout
    assert hints[0].startswith("warning: image llm: build context") and "model.gguf" in hints[0]


def test_build_reports_context_bytes_sent(
    run_podform: PodformRunner, busybox_image: str, stack_name: str, tmp_path: Path
) -> None:
    """The streamed build logs how much context it sent before Podman's own output, and a
    3 MiB file arrives whole in the image."""
    d = app_stack(tmp_path / "m", stack_name, busybox_image)
    (d / "ctx" / "app.txt").write_bytes(b"z" * (3 * MiB))
    done = run_podform("apply", "-f", str(d), "--log-format", "json", "-vv")
    ok(done)
    events = [json.loads(line) for line in done.stderr.splitlines() if line.startswith("{")]
    lines = [e["line"] for e in events if e.get("event") == "progress"]
    sent = [i for i, line in enumerate(lines) if "of build context" in line]
    copy = [i for i, line in enumerate(lines) if "COPY app.txt /app.txt" in line]
    assert sent and copy and sent[-1] < copy[0], lines
    assert "sent 3.0 MiB of build context" in lines[sent[-1]]
    ref = image_ref(stack_name, "app")
    size = podman_cli("run", "--rm", ref, "wc", "-c", "/app.txt").split()[0]
    assert int(size) == 3 * MiB


def test_build_over_tcp_streams_through_podman_py(
    busybox_image: str, stack_name: str, tmp_path: Path
) -> None:
    """A non-unix URL (a private tcp:// service) builds from the same streamed tar through
    podman-py, with the same progress lines."""
    import socket
    import subprocess

    from podman_env import podman_binary

    from reconciler.manifests.model import Build
    from reconciler.runtime.backends.podman_api import PodmanApi
    from reconciler.runtime.buildcontext import context_tar

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"tcp://127.0.0.1:{port}"
    service = subprocess.Popen(
        [podman_binary(), "system", "service", "--time=0", url],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    ref = image_ref(stack_name, "tcp")
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert time.monotonic() < deadline and service.poll() is None
                time.sleep(0.1)
        ctx = tmp_path / "ctx"
        ctx.mkdir()
        (ctx / "Containerfile").write_text(f"FROM {busybox_image}\nCOPY a.bin /a.bin\n")
        (ctx / "a.bin").write_bytes(b"q" * (2 * MiB))
        lines: list[str] = []
        api = PodmanApi(url)
        build = Build(ctx, ctx / "Containerfile", {}, None)
        image = api.build(ref, context_tar(build), "Containerfile", {}, {}, None, lines.append)
        api.close()
        assert image and any("sent 2.0 MiB of build context" in ln for ln in lines), lines
        assert podman_cli("run", "--rm", ref, "wc", "-c", "/a.bin").split()[0] == str(2 * MiB)
    finally:
        service.terminate()
        service.wait(timeout=10)
        subprocess.run([podman_binary(), "rmi", "--force", "--ignore", ref], capture_output=True)
