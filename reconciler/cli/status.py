"""`podform status`: per resource, its state, health, GPU probe and drift; exit 0 when all ready.

Drift comes from the planner (anything it would change is drift, with its reason); health
comes from running the container's health check now and the probe from running it now,
since nothing else runs them on a host without systemd timers.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from typing import Any

from reconciler.engine.observed import ProbeResult
from reconciler.engine.plan import ContainerWork, Kind
from reconciler.errors import PodformError
from reconciler.runtime.orchestrator import Reconciler, Settings, load_desired
from reconciler.runtime.probes import first_failure


@dataclass
class Row:
    kind: str
    name: str
    state: str
    health: str
    probe: str
    drift: str
    ready: bool

    def to_json(self) -> dict[str, Any]:
        return self.__dict__.copy()


def collect(rec: Reconciler, desired: Any) -> tuple[list[Row], list[str]]:
    result = rec.plan(desired)
    plan, problems = result.plan, result.problems
    # The snapshot the plan was made from: no second round of list calls.
    observed = {c.name: c for cs in result.observed.containers.values() for c in cs}
    rows: list[Row] = []
    for a in plan.actions:
        drift = "none" if not a.changes_something else f"{a.verb.value}: {a.reason}"
        if a.kind is not Kind.CONTAINER or not isinstance(a.work, ContainerWork):
            rows.append(
                Row(
                    a.kind,
                    a.name,
                    {"create": "missing", "deferred": "unknown"}.get(a.verb.value, "present"),
                    "-",
                    "-",
                    drift,
                    not a.changes_something,
                )
            )
            continue
        c = observed.get(a.name)
        w = a.work.workload
        state = c.state if c else "missing"
        health, probe = "-", "-"
        engine = rec.connections.engine(a.connection)
        if c and c.running and w.healthcheck:
            try:
                health = engine.healthcheck(c.id) or "unknown"
            except PodformError as exc:
                health = f"error: {exc}"
        if c and c.running and a.work.probes:
            failed = first_failure(engine, c.id, a.work.probes)
            probe = str(failed) if failed else ProbeResult.PASSED.value
        if a.warnings:
            drift = "; ".join(a.warnings)
        should_run = w.state == "running"
        ready = (
            not a.changes_something
            and not a.warnings
            and (not should_run or (c is not None and c.running))
            and health in ("-", "healthy")
            and probe in ("-", ProbeResult.PASSED.value)
        )
        rows.append(Row(Kind.CONTAINER, a.name, state, health, probe, drift, ready))
    return rows, problems + list(plan.errors) + list(plan.warnings)


def run_status(args: argparse.Namespace, settings: Settings) -> int:
    desired = load_desired(args.files, stdin=sys.stdin.buffer if "-" in args.files else None)
    rec = Reconciler(settings)
    try:
        rows, notes = collect(rec, desired)
        revision = rec.inventory(desired).load().revision  # set when `podform sync` applied it
    finally:
        rec.close()
    all_ready = all(r.ready for r in rows)
    if args.output == "json":
        print(
            json.dumps(
                {
                    "stack": desired.stack.name,
                    "ready": all_ready,
                    "resources": [r.to_json() for r in rows],
                    "notes": notes,
                    "revision": revision or None,
                },
                indent=2,
            )
        )
    else:
        header = ("RESOURCE", "STATE", "HEALTH", "PROBE", "DRIFT")
        table = [header] + [
            (f"{r.kind}/{r.name}", r.state, r.health, r.probe, r.drift) for r in rows
        ]
        widths = [max(len(row[i]) for row in table) for i in range(4)]
        for row in table:
            print("  ".join(f"{v:<{widths[i]}}" for i, v in enumerate(row[:4])) + "  " + row[4])
        for n in notes:
            print(f"note: {n}")
        if revision:
            print(
                f"revision {revision.get('sha', '?')} ({revision.get('ref', '?')} of "
                f"{revision.get('url', '?')}, path {revision.get('path', '.')}), "
                f"applied {revision.get('time', '?')} by podform sync"
            )
        print(f"stack {desired.stack.name!r}: " + ("all ready" if all_ready else "NOT ready"))
    return 0 if all_ready else 1
