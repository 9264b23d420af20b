"""podform's benchmark: SPEC §7 targets measured side by side with podman-compose and a podman-py floor.

Not part of the test suite. It needs rootful Podman, the busybox test image (scripts/setup-podman
builds it) and podman-compose >= 1.6 (bench/.venv, or on PATH, or --compose PATH):

    .venv/bin/python bench/run.py [--n 20 --n 200] [--repeat 5] [--cold-repeat 3]

Every subject runs as a whole process with the same interpreter (start-up and imports included);
wall time comes from perf_counter around the child and peak RSS from the child's rusage (the child
and the processes it waited for, so podman-compose's podman calls count). Subjects are interleaved
within each round, and the round order rotates, so drift on a shared machine hits all of them.
Writes bench/results.json and removes every container and network it made, also on Ctrl-C.
"""

from __future__ import annotations

import argparse
import compileall
import datetime
import json
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
IMAGE = "localhost/podform-test-busybox:latest"
SOCKET = Path("/tmp/podform-bench.sock")
STACK_LABEL = "io.podform.stack"
COMPOSE_LABEL = "io.podman.compose.project"
PREFIX = "pfbench"  # podform stacks pfbench<N>, compose projects pfbenchc<N>: names never clash


class BenchError(RuntimeError):
    """A subject failed or the world is not what the bench expected."""


@dataclass
class Sample:
    wall_ms: float
    rss_mib: float


@dataclass
class Series:
    """Every timed run of one subject in one scenario."""

    samples: list[Sample] = field(default_factory=list)
    extra: list[int] = field(default_factory=list)  # e.g. containers replaced, per run

    @property
    def median_ms(self) -> float:
        return statistics.median(s.wall_ms for s in self.samples)

    @property
    def peak_rss_mib(self) -> float:
        return max(s.rss_mib for s in self.samples)


# --- processes ------------------------------------------------------------------------------------


# os.wait4's ru_maxrss of a child forked from this process starts at this process's RSS (Linux
# records the pre-exec memory's high-water mark), so a small C launcher measures instead when present.
GNU_TIME = shutil.which("time", path="/usr/bin:/bin")


def run_timed(argv: list[str], env: dict[str, str]) -> Sample:
    """Run ARGV to completion; wall time and the peak RSS of it and its reaped children."""
    with tempfile.TemporaryFile() as out, tempfile.NamedTemporaryFile("r") as rss:
        launch = [GNU_TIME, "-f", "%M", "-o", rss.name, *argv] if GNU_TIME else argv
        start = time.perf_counter()
        proc = subprocess.Popen(launch, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=out)
        try:
            _, status, usage = os.wait4(proc.pid, 0)
        except BaseException:  # Ctrl-C: stop the child before the bench cleans up after it
            proc.terminate()
            proc.wait(timeout=30)
            raise
        wall = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)  # reaped here, not by Popen
        if proc.returncode != 0:
            out.seek(0)
            tail = out.read().decode(errors="replace")[-3000:]
            raise BenchError(f"{' '.join(argv)} exited {proc.returncode}:\n{tail}")
        # Both report KiB on Linux; GNU time's last line is the child's ru_maxrss.
        max_kib = int(rss.read().split()[-1]) if GNU_TIME else usage.ru_maxrss
    return Sample(wall * 1000, max_kib / 1024)


def cli_env() -> dict[str, str]:
    """Environment for the podman CLI: CONTAINER_HOST would turn it into a remote client."""
    return {
        k: v for k, v in os.environ.items() if k not in ("CONTAINER_HOST", "CONTAINER_CONNECTION")
    }


def podman(*args: str, timeout: float = 300) -> str:
    done = subprocess.run(
        ["podman", *args], env=cli_env(), capture_output=True, text=True, timeout=timeout
    )
    if done.returncode != 0:
        raise BenchError(f"podman {' '.join(args)} exited {done.returncode}: {done.stderr.strip()}")
    return done.stdout


def container_ids(label: str, value: str) -> dict[str, str]:
    out = podman(
        "ps",
        "-a",
        "--no-trunc",
        "--filter",
        f"label={label}={value}",
        "--format",
        "{{.Names}} {{.ID}}",
    )
    return dict(line.split(" ", 1) for line in out.splitlines() if line.strip())


def remove_everything(names: list[str]) -> None:
    """Remove the containers and compose networks of these podform stacks / compose projects."""
    for name in names:
        for label in (STACK_LABEL, COMPOSE_LABEL):
            ids = podman("ps", "-aq", "--filter", f"label={label}={name}").split()
            if ids:
                podman("rm", "--force", "--ignore", "-t", "0", *ids)
        nets = podman("network", "ls", "-q", "--filter", f"label={COMPOSE_LABEL}={name}").split()
        if nets:
            podman("network", "rm", "--force", *nets)


@contextmanager
def api_service() -> Iterator[str]:
    """A private `podman system service` for podform and the floor; yields its URL."""
    url = f"unix://{SOCKET}"
    SOCKET.unlink(missing_ok=True)
    proc = subprocess.Popen(
        ["podman", "system", "service", "--time=0", url],
        env=cli_env(),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while not _ping(SOCKET):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise BenchError("podman system service did not come up")
            time.sleep(0.1)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        SOCKET.unlink(missing_ok=True)


def _ping(sock: Path) -> bool:
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
            conn.settimeout(2)
            conn.connect(str(sock))
            conn.sendall(b"GET /_ping HTTP/1.0\r\nHost: podman\r\n\r\n")
            return conn.recv(64)[9:12] == b"200"
    except OSError:
        return False


# --- the stacks -----------------------------------------------------------------------------------


def workload_names(n: int) -> list[str]:
    return [f"w{i:03}" for i in range(n)]


def write_podform(directory: Path, stack: str, n: int, rev: int = 0) -> Path:
    """N Workload documents (after a Stack); workload w000 carries env BENCH=REV."""
    docs: list[dict[str, Any]] = [
        {"apiVersion": "podform/v1", "kind": "Stack", "metadata": {"name": stack}}
    ]
    for i, name in enumerate(workload_names(n)):
        spec = {
            "image": IMAGE,
            "command": ["sleep", "3600"],
            "init": True,
            "stopTimeout": "1s",
            "env": {"BENCH": str(rev if i == 0 else 0)},
        }
        docs.append(
            {
                "apiVersion": "podform/v1",
                "kind": "Workload",
                "metadata": {"name": name},
                "spec": spec,
            }
        )
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "stack.yaml").write_text(
        yaml.safe_dump_all(docs, explicit_start=True, sort_keys=False)
    )
    return directory


def write_compose(path: Path, n: int, rev: int = 0) -> Path:
    """The same containers as write_podform, as a compose file."""
    services = {
        name: {
            "image": IMAGE,
            "command": ["sleep", "3600"],
            "init": True,
            "stop_grace_period": "1s",
            "environment": {"BENCH": str(rev if i == 0 else 0)},
        }
        for i, name in enumerate(workload_names(n))
    }
    path.write_text(yaml.safe_dump({"services": services}, sort_keys=False))
    return path


@dataclass
class Bench:
    """The subjects' command lines and environments, and every measurement taken."""

    work: Path
    url: str
    compose_bin: str
    results: dict[str, dict[str, Series]] = field(default_factory=dict)

    def series(self, scenario: str, subject: str) -> Series:
        return self.results.setdefault(scenario, {}).setdefault(subject, Series())

    @property
    def podform_env(self) -> dict[str, str]:
        return {
            **cli_env(),
            "CONTAINER_HOST": self.url,
            "PODFORM_STATE_DIR": str(self.work / "state"),
        }

    def podform(self, *args: str) -> Sample:
        return run_timed([sys.executable, "-m", "reconciler", *args], self.podform_env)

    def compose(self, n: int, *args: str) -> Sample:
        argv = [
            self.compose_bin,
            "-p",
            f"{PREFIX}c{n}",
            "-f",
            str(self.work / f"compose{n}.yaml"),
            *args,
        ]
        return run_timed(argv, cli_env())

    def floor(self, n: int) -> Sample:
        argv = [
            sys.executable,
            str(BENCH / "floor.py"),
            "--url",
            self.url,
            "--stack",
            f"{PREFIX}{n}",
        ]
        return run_timed(argv, self.podform_env)

    def stack_dir(self, n: int) -> Path:
        return self.work / f"podform{n}"


def rounds(
    repeat: int, subjects: dict[str, Callable[[], Sample]], into: Callable[[str], Series]
) -> None:
    """REPEAT rounds, one run of every subject each, the order rotating by one every round."""
    names = list(subjects)
    for r in range(repeat):
        order = names[r % len(names) :] + names[: r % len(names)]
        for name in order:
            into(name).samples.append(subjects[name]())
        print(
            f"    round {r + 1}/{repeat}: "
            + ", ".join(f"{n} {into(n).samples[-1].wall_ms:.0f} ms" for n in names),
            flush=True,
        )


# --- scenarios ------------------------------------------------------------------------------------


def bench_static(b: Bench, repeat: int, n_validate: int) -> None:
    print(f"--version, validate of {n_validate} documents", flush=True)
    docs = write_podform(b.work / "validate", f"{PREFIX}v", n_validate)
    b.podform("--version")  # warm the page cache and bytecode
    subjects = {
        "podform --version": lambda: b.podform("--version"),
        "python -c pass": lambda: run_timed([sys.executable, "-c", "pass"], cli_env()),
        f"podform validate {n_validate}": lambda: b.podform("validate", "-f", str(docs)),
    }
    rounds(repeat, subjects, lambda s: b.series("static", s))


def bench_cold(b: Bench, n: int, repeat: int) -> None:
    print(f"cold apply of {n} workloads (everything removed before each run)", flush=True)
    stack, project = f"{PREFIX}{n}", f"{PREFIX}c{n}"

    def podform_cold() -> Sample:
        remove_everything([stack])
        shutil.rmtree(b.work / "state", ignore_errors=True)
        sample = b.podform("apply", "-f", str(b.stack_dir(n)), "-q")
        expect_count(STACK_LABEL, stack, n)
        return sample

    def compose_cold() -> Sample:
        remove_everything([project])
        sample = b.compose(n, "up", "-d")
        expect_count(COMPOSE_LABEL, project, n)
        return sample

    subjects = {"podform apply": podform_cold, "podman-compose up -d": compose_cold}
    rounds(repeat, subjects, lambda s: b.series(f"cold{n}", s))


def bench_noop(b: Bench, n: int, repeat: int) -> None:
    print(f"no-op of {n} workloads (converged stack)", flush=True)
    subjects = {
        "podform apply": lambda: b.podform("apply", "-f", str(b.stack_dir(n)), "-q"),
        "podman-compose up -d": lambda: b.compose(n, "up", "-d"),
        "floor (podman-py)": lambda: b.floor(n),
    }
    rounds(repeat, subjects, lambda s: b.series(f"noop{n}", s))


def bench_change(b: Bench, n: int, repeat: int) -> None:
    """Flip one workload's env each run: the time to converge and the containers replaced."""
    print(f"one changed workload among {n}", flush=True)
    stack, project = f"{PREFIX}{n}", f"{PREFIX}c{n}"
    revs = iter(range(1, 1000))

    def replaced(label: str, value: str, act: Callable[[], Sample], series: Series) -> Sample:
        before = container_ids(label, value)
        sample = act()
        after = container_ids(label, value)
        series.extra.append(sum(1 for name, cid in before.items() if after.get(name) != cid))
        return sample

    def podform_change() -> Sample:
        write_podform(b.stack_dir(n), stack, n, rev=next(revs))
        return replaced(
            STACK_LABEL,
            stack,
            lambda: b.podform("apply", "-f", str(b.stack_dir(n)), "-q"),
            b.series(f"change{n}", "podform apply"),
        )

    def compose_change() -> Sample:
        write_compose(b.work / f"compose{n}.yaml", n, rev=next(revs))
        return replaced(
            COMPOSE_LABEL,
            project,
            lambda: b.compose(n, "up", "-d"),
            b.series(f"change{n}", "podman-compose up -d"),
        )

    subjects = {"podform apply": podform_change, "podman-compose up -d": compose_change}
    rounds(repeat, subjects, lambda s: b.series(f"change{n}", s))


CONTEXT_STACK = f"{PREFIX}ctx"  # the stack with the big file; f"{PREFIX}ctx0" without it
CONTEXT_FILE = "model.bin"


def context_ref(stack: str) -> str:
    return f"localhost/{stack}-model:latest"


def write_context_stack(directory: Path, stack: str, big_gib: float) -> Path:
    """A Stack with one Image (no workload) built from DIRECTORY/ctx: a Containerfile that
    copies the context, a small `run-id` file and, when BIG_GIB > 0, a random model.bin."""
    ctx = directory / "ctx"
    ctx.mkdir(parents=True, exist_ok=True)
    (ctx / "Containerfile").write_text(f"FROM {IMAGE}\nCOPY . /data/\n")
    (ctx / "run-id").write_text("0\n")
    if big_gib > 0 and not (ctx / CONTEXT_FILE).exists():
        chunk, left = 16 << 20, int(big_gib * (1 << 30))
        with open(ctx / CONTEXT_FILE, "wb") as f:  # random: nothing compresses or dedups it
            while left > 0:
                left -= f.write(os.urandom(min(chunk, left)))
    docs = [
        {"apiVersion": "podform/v1", "kind": "Stack", "metadata": {"name": stack}},
        {
            "apiVersion": "podform/v1",
            "kind": "Image",
            "metadata": {"name": "model"},
            "spec": {"ref": context_ref(stack), "build": {"context": "./ctx"}},
        },
    ]
    (directory / "stack.yaml").write_text(
        yaml.safe_dump_all(docs, explicit_start=True, sort_keys=False)
    )
    return directory


def bench_context(b: Bench, repeat: int, big_gib: float) -> None:
    """A model-sized file in a build context: the no-op plan with it against the same plan
    without it, the first plan after it appeared (digest cache cold), and the build itself
    (podform apply against `podman build` of the same context; wall time and peak RSS)."""
    print(f"build context with a {big_gib:g} GiB file", flush=True)
    big = write_context_stack(b.work / "ctx-big", CONTEXT_STACK, big_gib)
    small = write_context_stack(b.work / "ctx-small", f"{CONTEXT_STACK}0", 0)
    peer_ref = f"localhost/{CONTEXT_STACK}-podman:latest"
    runs = iter(range(1, 10_000))

    def fresh() -> None:
        """A new run-id (so neither tool finds a cached COPY layer) and no image to reuse;
        then sync, so the gigabytes the previous build left to be written to disk are not
        charged to the next subject (the kernel throttles writers once ~2 GiB are dirty)."""
        (big / "ctx" / "run-id").write_text(f"{next(runs)}\n")
        podman("rmi", "--force", "--ignore", context_ref(CONTEXT_STACK), peer_ref)
        os.sync()

    def podform_build() -> Sample:
        fresh()
        return b.podform("apply", "-f", str(big), "-q")

    def podman_build() -> Sample:
        fresh()
        ctx = str(big / "ctx")
        return run_timed(["podman", "build", "-q", "-t", peer_ref, ctx], cli_env())

    def podman_remote_build() -> Sample:
        """The podman CLI as an API client of the same service: it uploads the context too."""
        fresh()
        ctx = str(big / "ctx")
        argv = ["podman", "--remote", "--url", b.url, "build", "-q", "-t", peer_ref, ctx]
        return run_timed(argv, cli_env())

    def curl_build() -> Sample:
        """The least any API client does: a ready tar (made before the clock starts) uploaded
        by curl, which streams it from disk, and the build's output read to the end."""
        fresh()
        tar = b.work / "ctx.tar"
        subprocess.run(["tar", "-cf", str(tar), "-C", str(big / "ctx"), "."], check=True)
        os.sync()  # the tar just written must not slow the upload it feeds
        out = b.work / "curl.out"
        query = urllib.parse.urlencode({"t": peer_ref, "layers": "true", "rm": "true"})
        argv = [
            "curl", "-sS", "--fail", "--unix-socket", str(SOCKET), "-X", "POST", "-T", str(tar),
            "-H", "Content-Type: application/x-tar", "-o", str(out),
            f"http://podman/v4.0.0/libpod/build?{query}",
        ]  # fmt: skip
        try:
            sample = run_timed(argv, cli_env())
            if '"error"' in out.read_text(errors="replace"):
                raise BenchError(f"curl build failed: {out.read_text()[-2000:]}")
            return sample
        finally:
            tar.unlink(missing_ok=True)

    subjects = {
        "podform apply (build)": podform_build,
        "podman build": podman_build,
        "podman --remote build": podman_remote_build,
        "curl POST /build": curl_build,
    }
    rounds(repeat, subjects, lambda s: b.series("context-build", s))
    podman("rmi", "--force", "--ignore", peer_ref)

    # Converge both stacks once, then plan them: nothing to do, the digest cache warm.
    (big / "ctx" / "run-id").write_text("0\n")
    b.podform("apply", "-f", str(big), "-q")
    b.podform("apply", "-f", str(small), "-q")
    cache = b.work / "state" / f"{CONTEXT_STACK}.contexts.json"

    def cold_plan() -> Sample:
        cache.unlink(missing_ok=True)
        return b.podform("plan", "-f", str(big), "-q")

    subjects = {
        "podform plan (with the file)": lambda: b.podform("plan", "-f", str(big), "-q"),
        "podform plan (without it)": lambda: b.podform("plan", "-f", str(small), "-q"),
    }
    rounds(repeat * 2, subjects, lambda s: b.series("context-plan", s))
    cold = {"podform plan, cache cold": cold_plan}
    rounds(repeat, cold, lambda s: b.series("context-plan-cold", s))


def remove_context_images() -> None:
    for stack in (CONTEXT_STACK, f"{CONTEXT_STACK}0"):
        podman("rmi", "--force", "--ignore", context_ref(stack))
    podman("rmi", "--force", "--ignore", f"localhost/{CONTEXT_STACK}-podman:latest")


def converge(b: Bench, n: int) -> None:
    """Bring both stacks of N workloads up once (timed for information, not compared)."""
    print(f"converging {n} workloads once with each tool", flush=True)
    b.series(f"converge{n}", "podform apply").samples.append(
        b.podform("apply", "-f", str(b.stack_dir(n)), "-q")
    )
    expect_count(STACK_LABEL, f"{PREFIX}{n}", n)
    b.series(f"converge{n}", "podman-compose up -d").samples.append(b.compose(n, "up", "-d"))
    expect_count(COMPOSE_LABEL, f"{PREFIX}c{n}", n)


def expect_count(label: str, value: str, n: int) -> None:
    found = len(container_ids(label, value))
    if found != n:
        raise BenchError(f"{label}={value}: {found} containers, expected {n}")


# --- report ---------------------------------------------------------------------------------------


def table_rows(b: Bench, ns: list[int], n_validate: int) -> list[dict[str, Any]]:
    """One row per SPEC §7 target: podform's median against its peer's, and whether it is met."""
    rows: list[dict[str, Any]] = []

    def row(
        what: str,
        scenario: str,
        peer: str | None,
        target: str,
        limit: float | None,
        subject: str = "podform apply",
        absolute: bool = False,
    ) -> None:
        series = b.results.get(scenario, {})
        if subject not in series:
            return
        mine = series[subject]
        entry: dict[str, Any] = {
            "row": what,
            "podform_ms": round(mine.median_ms),
            "podform_rss_mib": round(mine.peak_rss_mib, 1),
            "peer": peer,
            "target": target,
            "runs": len(mine.samples),
        }
        value = mine.median_ms
        if peer is not None and peer in series:
            other = series[peer]
            entry |= {
                "peer_ms": round(other.median_ms),
                "peer_rss_mib": round(other.peak_rss_mib, 1),
            }
            entry["ratio"] = round(mine.median_ms / other.median_ms, 3)
            value = entry["ratio"]
        if mine.extra:
            entry["replaced"] = mine.extra
            if peer is not None and series.get(peer) and series[peer].extra:
                entry["peer_replaced"] = series[peer].extra
        if mine.extra:  # the target is "exactly one container replaced"
            entry["met"] = all(x == 1 for x in mine.extra)
        elif limit is not None and (absolute or "ratio" in entry):
            entry["met"] = value <= limit
        rows.append(entry)

    for n in ns:
        row(f"no-op apply, {n} workloads", f"noop{n}", "floor (podman-py)", "<= 1.5x floor", 1.5)
        row(
            f"no-op apply, {n} workloads",
            f"noop{n}",
            "podman-compose up -d",
            "<= 0.25x compose",
            0.25,
        )
    if 20 in ns:
        row("cold apply, 20 workloads", "cold20", "podman-compose up -d", "<= 0.6x compose", 0.6)
        row("one changed workload of 20", "change20", "podman-compose up -d", "1 replaced", None)
    row("podform --version", "static", "python -c pass", "< 100 ms", 100, "podform --version", True)
    row(
        f"podform validate, {n_validate} docs",
        "static",
        None,
        "< 500 ms",
        500,
        f"podform validate {n_validate}",
        True,
    )
    if len(ns) > 1 and all(f"noop{n}" in b.results for n in ns):
        lo, hi = min(ns), max(ns)
        for subject in ("podform apply", "floor (podman-py)"):
            growth = (
                b.results[f"noop{hi}"][subject].median_ms
                / b.results[f"noop{lo}"][subject].median_ms
            )
            rows.append(
                {
                    "row": f"no-op growth {lo}->{hi}: {subject}",
                    "ratio": round(growth, 2),
                    "target": "flat (info)",
                }
            )
    row(
        "no-op plan, build context with a big file",
        "context-plan",
        "podform plan (without it)",
        "<= 1.5x without it",
        1.5,
        "podform plan (with the file)",
    )
    row(
        "first plan after the big file appeared (info)",
        "context-plan-cold",
        None,
        "info",
        None,
        "podform plan, cache cold",
    )
    row(
        "build of that context",
        "context-build",
        "podman build",
        "<= 1.15x podman build",
        1.15,
        "podform apply (build)",
    )
    row(
        "build of that context (info)",
        "context-build",
        "podman --remote build",
        "info: the same API",
        None,
        "podform apply (build)",
    )
    row(
        "build of that context (info)",
        "context-build",
        "curl POST /build",
        "info: the API floor",
        None,
        "podform apply (build)",
    )
    build = b.results.get("context-build", {}).get("podform apply (build)")
    if build is not None:
        rows.append(
            {
                "row": "build of that context: peak RSS",
                "podform_rss_mib": round(build.peak_rss_mib, 1),
                "target": "<= 150 MiB",
                "met": build.peak_rss_mib <= 150,
                "runs": len(build.samples),
            }
        )
    for n in ns:
        row(
            f"first up of {n} workloads, 1 run",
            f"converge{n}",
            "podman-compose up -d",
            "info",
            None,
        )
    return rows


def print_table(rows: list[dict[str, Any]]) -> None:
    head = ("measurement", "podform ms", "MiB", "peer", "peer ms", "MiB", "ratio", "target", "met")
    lines = [head]
    for r in rows:
        met = {True: "met", False: "NOT MET", None: ""}[r.get("met")]
        if "replaced" in r:
            met += f" (replaced {r['replaced']}; peer {r.get('peer_replaced', '-')})"
        lines.append(
            (
                r["row"],
                _fmt(r.get("podform_ms")),
                _fmt(r.get("podform_rss_mib")),
                r.get("peer") or "",
                _fmt(r.get("peer_ms")),
                _fmt(r.get("peer_rss_mib")),
                _fmt(r.get("ratio")),
                r["target"],
                met,
            )
        )
    widths = [max(len(str(line[i])) for line in lines) for i in range(len(head))]
    for line in lines:
        print("  ".join(str(c).ljust(w) for c, w in zip(line, widths, strict=True)).rstrip())


def _fmt(value: Any) -> str:
    return "" if value is None else str(value)


def machine_facts() -> dict[str, Any]:
    def out(*argv: str) -> str:
        done = subprocess.run(argv, capture_output=True, text=True, env=cli_env(), cwd=REPO)
        return done.stdout.strip()

    sha = out("git", "rev-parse", "HEAD")
    dirty = bool(out("git", "status", "--porcelain", "--untracked-files=no", "--", "reconciler"))
    return {
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "machine": {
            "arch": platform.machine(),
            "nproc": os.cpu_count(),
            "kernel": platform.release(),
            "python": platform.python_version(),
        },
        "podman": out("podman", "--version").removeprefix("podman version "),
        "podform_sha": sha + ("-dirty" if dirty else ""),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, action="append", help="stack sizes (default: 20 and 200)")
    parser.add_argument(
        "--repeat", type=int, default=5, help="runs per subject for no-op and static rows"
    )
    parser.add_argument(
        "--cold-repeat", type=int, default=3, help="runs per subject for cold and change"
    )
    parser.add_argument("--validate-docs", type=int, default=200)
    parser.add_argument(
        "--compose", help="podman-compose executable (default: bench/.venv, then PATH)"
    )
    parser.add_argument(
        "--context-gib", type=float, default=1.0, help="size of the big build-context file"
    )
    parser.add_argument(
        "--context-repeat", type=int, default=3, help="builds per subject (plans: twice that)"
    )
    parser.add_argument(
        "--only-context",
        action="store_true",
        help="only the build-context rows (no podman-compose needed)",
    )
    parser.add_argument("--out", type=Path, default=BENCH / "results.json")
    args = parser.parse_args()
    ns = [] if args.only_context else sorted(set(args.n or [20, 200]))
    compose_bin = "" if args.only_context else (args.compose or _find_compose())
    try:
        import podman  # noqa: F401  (the floor needs podman-py in this interpreter)
    except ImportError:
        parser.error("podman-py is not importable: run with the project's .venv/bin/python")
    if subprocess.run(["podman", "image", "exists", IMAGE], env=cli_env()).returncode != 0:
        print(f"{IMAGE} is missing: building it with scripts/setup-podman", flush=True)
        subprocess.run([str(REPO / "scripts" / "setup-podman")], check=True)

    # pip compiles the bytecode of what it installs (podman-py, podman-compose), but not of an
    # editable install; without this, an environment with PYTHONDONTWRITEBYTECODE=1 would time
    # podform compiling its ~80 modules on every run (about 55 ms here).
    compileall.compile_dir(REPO / "reconciler", quiet=1)
    signal.signal(signal.SIGTERM, signal.default_int_handler)  # SIGTERM cleans up like Ctrl-C
    names = [f"{PREFIX}{n}" for n in ns] + [f"{PREFIX}c{n}" for n in ns]
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="podform-bench-") as tmp, api_service() as url:
        b = Bench(work=Path(tmp), url=url, compose_bin=compose_bin)
        try:
            remove_everything(names)  # leftovers of an interrupted run
            for n in ns:
                write_podform(b.stack_dir(n), f"{PREFIX}{n}", n)
                write_compose(b.work / f"compose{n}.yaml", n)
            if not args.only_context:
                bench_static(b, args.repeat, args.validate_docs)
            for n in ns:
                if n == 20:  # cold and change only where podman-compose's cold start is affordable
                    bench_cold(b, n, args.cold_repeat)
                else:
                    converge(b, n)
                bench_noop(b, n, args.repeat)
                if n == 20:
                    bench_change(b, n, args.cold_repeat)
                remove_everything([f"{PREFIX}{n}", f"{PREFIX}c{n}"])  # a big store slows every list
            bench_context(b, args.context_repeat, args.context_gib)
        except KeyboardInterrupt:
            print("\ninterrupted: removing the bench containers", file=sys.stderr)
            return 130
        finally:
            signal.signal(signal.SIGINT, signal.SIG_IGN)  # cleanup must not be cut short
            remove_everything(names)
            remove_context_images()
    rows = table_rows(b, ns, args.validate_docs)
    print(
        f"\nmedians of {args.repeat} runs ({args.cold_repeat} for cold and change); "
        f"total {time.monotonic() - started:.0f} s\n"
    )
    print_table(rows)
    report = machine_facts() | {
        "podman_compose": compose_bin,
        "repeat": args.repeat,
        "cold_repeat": args.cold_repeat,
        "rows": rows,
        "samples": {
            scenario: {
                subject: {
                    "wall_ms": [round(s.wall_ms, 1) for s in series.samples],
                    "rss_mib": [round(s.rss_mib, 1) for s in series.samples],
                    **({"replaced": series.extra} if series.extra else {}),
                }
                for subject, series in subjects.items()
            }
            for scenario, subjects in b.results.items()
        },
    }
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"\nwrote {args.out}")
    return 0


def _find_compose() -> str:
    local = BENCH / ".venv" / "bin" / "podman-compose"
    found = str(local) if local.exists() else shutil.which("podman-compose")
    if found is None:
        raise SystemExit(
            "podman-compose not found: python -m venv bench/.venv && "
            "bench/.venv/bin/pip install 'podman-compose>=1.6' (or pass --compose)"
        )
    return found


if __name__ == "__main__":
    raise SystemExit(main())
