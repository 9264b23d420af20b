"""Command line: the composition root and exit codes (the flags are in parser.py).

cli/ is the layer that prints: this module, report.py, status.py, doctor.py, watch.py and the
log set-up in log.py; nothing below cli/ writes to stdout or stderr.

Imports stay lazy: `podform --version` must not load podman-py, jsonschema or structlog.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from reconciler import __version__
from reconciler.cli.parser import build_parser
from reconciler.cli.signals import EXIT_INTERRUPTED, StopOnSignals

if TYPE_CHECKING:
    from reconciler.engine.plan import Plan

EXIT_OK, EXIT_FAIL, EXIT_CHANGES = 0, 1, 2


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:
        # argparse exits 2 on a usage error, which is `plan`'s "changes pending" (and `apply
        # --detailed-exitcode`'s "changed"): a mistyped flag in CI would pass as a plan that ran.
        if exc.code == EXIT_CHANGES:
            return EXIT_FAIL
        raise
    from reconciler.cli.streams import masked_output

    with masked_output():
        return _main(args)


def _main(args: argparse.Namespace) -> int:
    try:
        return _dispatch(args)
    except KeyboardInterrupt:
        return _interrupted()
    except BrokenPipeError:
        return EXIT_FAIL
    except Exception as exc:
        return _report_error(exc, args)


def _interrupted() -> int:
    print("interrupted", file=sys.stderr)
    return EXIT_INTERRUPTED


def _report_error(exc: BaseException, args: argparse.Namespace) -> int:
    from reconciler.errors import Interrupted, InvalidInput, PodformError

    if isinstance(exc, Interrupted):  # Ctrl-C while a pass waited to retry
        return _interrupted()
    if isinstance(exc, InvalidInput):
        if args.output == "json":
            print(
                json.dumps({"valid": False, "errors": [i.to_json() for i in exc.issues]}, indent=2)
            )
        for issue in exc.issues:
            print(f"{issue}", file=sys.stderr)
        print(f"{len(exc.issues)} problem(s) found; nothing was changed.", file=sys.stderr)
        return EXIT_FAIL
    if isinstance(exc, PodformError):
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FAIL
    path = _write_debug_log(exc, args)
    print(f"internal error: {type(exc).__name__}: {exc} (details in {path})", file=sys.stderr)
    return EXIT_FAIL


def _write_debug_log(exc: BaseException, args: argparse.Namespace) -> str:
    import tempfile
    import traceback

    from reconciler.redact import scrub

    fd, path = tempfile.mkstemp(prefix="podform-crash-", suffix=".log")
    with os.fdopen(fd, "w") as f:
        f.write(f"podform {__version__} {args.command}\n")
        f.write(scrub("".join(traceback.format_exception(exc))))
    return path


def _settings(args: argparse.Namespace) -> Any:
    from reconciler.engine.plan import PlanOptions
    from reconciler.runtime.orchestrator import Settings

    return Settings(
        url=args.url,
        state_dir=args.state_dir,
        podman=args.podman or os.environ.get("PODFORM_PODMAN"),
        parallel=getattr(args, "parallel", 4),
        lock_timeout=getattr(args, "lock_timeout", 0.0),
        plan=PlanOptions(
            prune=getattr(args, "prune", False),
            allow_empty=getattr(args, "allow_empty", False),
            allow_recreate=getattr(args, "allow_recreate", False),
        ),
    )


def _color() -> bool:
    return sys.stdout.isatty() and "NO_COLOR" not in os.environ and os.environ.get("TERM") != "dumb"


def _dispatch(args: argparse.Namespace) -> int:
    if args.command == "schema":
        from reconciler.manifests.schema import schema_text

        print(schema_text(args.kind))
        return EXIT_OK
    if args.command == "import":
        from reconciler.cli.import_compose import run_import

        return run_import(args)
    from reconciler.cli import log

    verbosity = -1 if args.quiet else args.verbose + (1 if args.command in ("watch", "sync") else 0)
    log.configure(args.log_format, verbosity)
    if args.command == "validate":
        return _validate(args)
    if args.command in ("plan", "diff"):
        return _plan(args)
    if args.command == "apply":
        return _apply(args)
    if args.command == "status":
        from reconciler.cli.status import run_status

        return run_status(args, _settings(args))
    if args.command == "delete":
        return _delete(args)
    if args.command == "watch":
        from reconciler.cli.watch import run_watch

        return run_watch(args, _settings(args))
    if args.command == "sync":
        from reconciler.cli.sync import run_sync

        return run_sync(args, _settings(args))
    if args.command == "doctor":
        from reconciler.cli.doctor import run_doctor

        return run_doctor(args, _settings(args))
    if args.command == "render":
        from reconciler.cli.render import run_render

        return run_render(args, _load(args))
    raise AssertionError(args.command)


def _load(args: argparse.Namespace) -> Any:
    from reconciler.runtime.inventory import state_dir
    from reconciler.runtime.orchestrator import load_desired

    # `validate` always runs the schemas; the other commands may reuse a previous verdict.
    cache = None if args.command in ("validate", "render") else state_dir(args.state_dir)
    stdin = sys.stdin.buffer if "-" in args.files else None
    desired = load_desired(args.files, stdin=stdin, cache_dir=cache)
    if not desired.files:
        # Not an error (SPEC §4: an empty set is refused only with prune, unless --allow-empty),
        # but a mistyped folder should not pass silently as a stack that declares nothing.
        names = ", ".join(args.files)
        print(f"warning: no manifest files (*.yaml, *.yml) in {names}", file=sys.stderr)
    return desired


def _validate(args: argparse.Namespace) -> int:
    desired = _load(args)
    kinds = (desired.machines, desired.images, desired.mappings, desired.networks, desired.secrets)
    n = sum(len(x) for x in (*kinds, desired.workloads))
    if args.output == "json":
        print(
            json.dumps({"valid": True, "errors": [], "stack": desired.stack.name, "resources": n})
        )
    else:
        print(
            f"valid: stack {desired.stack.name!r}, {n} resource(s) in {len(desired.files)} file(s)"
        )
    return EXIT_OK


def _plan(args: argparse.Namespace) -> int:
    from reconciler.runtime.orchestrator import Reconciler

    desired = _load(args)
    rec = Reconciler(_settings(args))
    try:
        result = rec.plan(desired)
    finally:
        rec.close()
    plan, problems = result.plan, result.problems
    _print_problems(problems)
    if args.output == "json":
        print(json.dumps(plan.to_json(), indent=2, ensure_ascii=False))
    else:
        sys.stdout.write(plan.render(color=_color()))
    if plan.errors:
        return EXIT_FAIL
    return EXIT_OK if plan.is_empty() else EXIT_CHANGES


def _print_problems(problems: list[str]) -> None:
    for p in problems:
        print(f"warning: {p}", file=sys.stderr)


def _interrupts() -> StopOnSignals:
    """First SIGINT/SIGTERM: finish running actions, save state. Second: exit now."""
    return StopOnSignals(
        "\ninterrupt: finishing running actions and saving state (again to exit now)",
        again=(signal.SIGINT, signal.SIGTERM),
    )


def _apply(args: argparse.Namespace) -> int:
    from reconciler.cli import report
    from reconciler.runtime.orchestrator import Reconciler

    desired = _load(args)
    shown: list[Plan] = []

    def show(plan: Plan) -> None:  # before anything changes: a long build or Ctrl-C hides nothing
        if args.output == "text":
            sys.stdout.write(plan.render(color=_color(), show_unchanged=False))
            sys.stdout.flush()
            shown.append(plan)

    with _interrupts() as interrupts:
        sink = report.EventPrinter(sys.stderr, args.output == "text")
        rec = Reconciler(_settings(args), on_event=sink, stop_event=interrupts.event)
        try:
            result = rec.apply(desired, dry_run=args.dry_run, on_plan=show)
        finally:
            rec.close()
    _print_problems(result.problems)
    if args.output == "json":
        print(json.dumps(report.apply_json(result), indent=2, ensure_ascii=False))
    else:
        sys.stdout.write(report.apply_text(result, _color(), shown=shown[0] if shown else None))
    if result.execution and result.execution.interrupted:
        return EXIT_INTERRUPTED
    if not result.ok:
        return EXIT_FAIL
    # A dry run changes nothing; like plan, it answers whether a real apply would.
    changed = (
        not result.plan.is_empty()
        if args.dry_run
        else bool(result.execution and result.execution.changed)
    )
    return EXIT_CHANGES if args.detailed_exitcode and changed else EXIT_OK


def _delete(args: argparse.Namespace) -> int:
    from reconciler.cli import report
    from reconciler.runtime.orchestrator import Reconciler

    desired = _load(args)
    with _interrupts() as interrupts:
        rec = Reconciler(
            _settings(args),
            on_event=report.EventPrinter(sys.stderr, False),
            stop_event=interrupts.event,
        )
        try:
            result = rec.delete(desired, volumes=args.volumes, machines=args.machines)
        finally:
            rec.close()
    if args.output == "json":
        print(json.dumps(report.apply_json(result), indent=2, ensure_ascii=False))
    else:
        sys.stdout.write(report.apply_text(result, color=_color(), what="Delete"))
    return EXIT_OK if result.ok else EXIT_FAIL
