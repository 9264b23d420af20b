"""The command line's flags: every command, its options and their help (argparse).

main.py parses with build_parser() and dispatches; imports here stay light (`--version`).
"""

from __future__ import annotations

import argparse

from reconciler import __version__


def _global_flags(defaults: bool) -> argparse.ArgumentParser:
    """Flags accepted before or after the command (the subcommand copy must not reset them)."""
    d = (lambda v: v) if defaults else (lambda v: argparse.SUPPRESS)
    p = argparse.ArgumentParser(add_help=False)
    p.add_argument(
        "-o",
        "--output",
        choices=["text", "json"],
        default=d("text"),
        help="output format for validate/plan/apply/status/delete",
    )
    p.add_argument(
        "--log-format",
        choices=["console", "json"],
        default=d(None),
        help="log rendering (default: console on a TTY, else json)",
    )
    p.add_argument("-v", "--verbose", action="count", default=d(0), help="more logging")
    p.add_argument("-q", "--quiet", action="store_true", default=d(False), help="warnings only")
    p.add_argument(
        "--url",
        default=d(None),
        help="Podman API (default: CONTAINER_HOST, else Podman's default socket)",
    )
    p.add_argument(
        "--podman",
        default=d(None),
        help="podman binary for machine commands (default: PODFORM_PODMAN, else podman)",
    )
    p.add_argument(
        "--state-dir",
        default=d(None),
        help="inventory and lock directory (default: PODFORM_STATE_DIR, else XDG state dir)",
    )
    return p


def _files(p: argparse.ArgumentParser, required: bool = True) -> None:
    p.add_argument(
        "-f",
        "--file",
        dest="files",
        action="append",
        required=required,
        default=None,
        metavar="PATH",
        help="manifest file or directory, or - for stdin (repeatable)",
    )


def _at_least_one(text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid int value: {text!r}") from None
    if n < 1:  # the executor would quietly run one at a time
        raise argparse.ArgumentTypeError(f"must be 1 or more, not {n}")
    return n


def add_parallel(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--parallel", type=_at_least_one, default=4, metavar="N",
        help="run up to N independent actions at once (default: 4)",
    )  # fmt: skip


def _lock_timeout(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--lock-timeout", type=float, default=0.0, metavar="SECONDS",
        help="wait up to SECONDS for another podform pass on this stack to finish (default: 0)",
    )  # fmt: skip


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="podform",
        parents=[_global_flags(True)],
        description="Declarative reconciler for Podman GPU stacks.",
    )
    parser.add_argument("--version", action="version", version=f"podform {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    g = [_global_flags(False)]

    p = sub.add_parser("validate", parents=g, help="check manifests; needs no Podman")
    _files(p)
    for name, aliases, text in (
        ("plan", ["diff"], "show what apply would change"),
        ("apply", [], "converge Podman to the manifests"),
    ):
        p = sub.add_parser(name, aliases=aliases, parents=g, help=text)
        _files(p)
        p.add_argument(
            "--prune", action="store_true", help="delete owned objects no longer declared"
        )
        p.add_argument("--allow-empty", action="store_true", help="allow pruning down to nothing")
        p.add_argument(
            "--allow-recreate",
            action="store_true",
            help="allow destroying and re-creating machines",
        )
        _lock_timeout(p)
        p.add_argument(
            "--detailed-exitcode",
            action="store_true",
            help="exit 2 when something changed (with --dry-run: when changes are pending)"
            if name == "apply"
            else "accepted for CI scripts: plan always exits 2 when changes are pending",
        )
        if name == "apply":
            p.add_argument("--dry-run", action="store_true", help="plan only, change nothing")
            add_parallel(p)
    p = sub.add_parser("status", parents=g, help="state, health, GPU probe and drift per resource")
    _files(p)
    p = sub.add_parser("delete", parents=g, help="remove what the manifests declare")
    _files(p)
    p.add_argument(
        "--volumes", action="store_true", help="also delete named volumes (their data is lost)"
    )
    p.add_argument("--machines", action="store_true", help="also remove machines podform created")
    _lock_timeout(p)
    p = sub.add_parser("watch", parents=g, help="apply on every file change and every interval")
    _files(p)
    p.add_argument("--interval", default="60s", help="reconcile at least this often (default 60s)")
    p.add_argument(
        "--debounce", default="500ms", help="quiet time after a file event (default 500ms)"
    )
    p.add_argument("--prune", action="store_true")
    add_parallel(p)
    from reconciler.cli.sync import add_parser as add_sync_parser

    add_sync_parser(sub, g)
    p = sub.add_parser("doctor", parents=g, help="check Podman, machines and GPU prerequisites")
    _files(p, required=False)
    p = sub.add_parser("schema", parents=g, help="print the JSON Schema of a kind (or all)")
    p.add_argument("kind", nargs="?", default=None)
    # render's -o is a destination (SPEC §8); "resolve" leaves the output format as --output.
    # Its own copy of the flags: "resolve" edits the shared -o action, which took `-o` out of
    # every other command's --help.
    p = sub.add_parser(
        "render",
        parents=[_global_flags(False)],
        conflict_handler="resolve",
        help="write the stack for kube, quadlet or compose",
    )
    _files(p)
    p.add_argument("--to", required=True, choices=["kube", "quadlet", "compose"])
    p.add_argument(
        "-o", "--out", default="-", metavar="DIR", help="a folder, or - for stdout (default)"
    )
    from reconciler.cli.import_compose import add_import_parser

    add_import_parser(sub)
    return parser
