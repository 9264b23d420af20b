"""`podform import compose`: compose files in, one podform manifest file out (SPEC §10).

The command layer only: arguments, where the output goes (never over an existing file without
--force, never over an input), warnings on stderr. Reading, mapping and writing YAML live in
reconciler/importers/. Imports stay lazy: building the parser must not load YAML.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pathlib import Path

DEFAULT_OUTPUT = "podform.yaml"


def add_import_parser(sub: Any) -> None:
    """`import compose ...` under the main parser's subcommands."""
    p = sub.add_parser("import", help="convert compose files into podform manifests")
    sources = p.add_subparsers(dest="source", metavar="SOURCE", required=True)
    c = sources.add_parser(
        "compose",
        help="compose files (base + overrides) to one podform manifest file",
        description="Read compose files as compose does (overrides merged, ${VAR} from the "
        "environment and .env) and write one podform manifest file. Every key without a "
        "podform meaning is a warning on stderr.",
    )
    c.add_argument(
        "-f", "--file", dest="files", action="append", required=True, metavar="FILE",
        help="compose file; repeat for overrides, base first",
    )  # fmt: skip
    c.add_argument("-p", "--project-name", dest="project", metavar="NAME", help="stack name")
    c.add_argument(
        "--env-file",
        metavar="FILE",
        help="variables for ${...} (default: .env beside the first file)",
    )
    c.add_argument(
        "-o", "--out", dest="out", metavar="PATH",
        help=f"output file or folder (default: {DEFAULT_OUTPUT} beside the first file; - prints)",
    )  # fmt: skip
    c.add_argument("--force", action="store_true", help="overwrite an existing output file")


def _output_path(args: argparse.Namespace, first: Path) -> Path | None:
    from pathlib import Path

    if args.out == "-":
        return None
    if not args.out:
        return first.parent / DEFAULT_OUTPUT
    out = Path(args.out)
    return out / DEFAULT_OUTPUT if out.is_dir() else out


def run_import(args: argparse.Namespace) -> int:
    from pathlib import Path

    from reconciler.errors import PodformError
    from reconciler.importers.compose_env import ComposeError
    from reconciler.importers.compose_load import load_compose
    from reconciler.importers.compose_map import map_project
    from reconciler.importers.emit import emit

    files = [Path(f) for f in args.files]
    for f in files:
        if not f.is_file():
            raise ComposeError(f"compose file {f} not found")
    first = Path(os.path.realpath(files[0]))
    out = _output_path(args, first)
    if out is not None:
        inputs = {os.path.realpath(f) for f in files}
        if os.path.realpath(out) in inputs:
            raise PodformError(f"{out} is one of the compose files; choose another -o")
        if out.exists() and not args.force:
            raise PodformError(f"{out} exists; pass --force to overwrite it, or -o another path")
    out_dir = Path(os.path.realpath(out.parent if out is not None else first.parent))

    try:
        project = load_compose(
            files,
            environ=dict(os.environ),
            env_file=Path(args.env_file) if args.env_file else None,
            project_name=args.project,
        )
        result = map_project(project, out_dir)
    except ValueError as exc:
        raise ComposeError(str(exc)) from exc
    sources = [os.path.relpath(os.path.realpath(f), out_dir) for f in files]
    header = [
        f"Imported by `podform import compose` from {', '.join(sources)} (project {project.name}).",
        "Read the warnings the import printed, then: podform validate -f <this file>",
    ]
    text = emit(result.docs, header)
    for note in result.warnings:
        print(f"warning: {note}", file=sys.stderr)
    if out is None:
        sys.stdout.write(text)
        return 0
    out.parent.mkdir(parents=True, exist_ok=True)
    _write_atomically(out, text)
    print(
        f"wrote {out}: {len(result.docs)} document(s) from {len(project.services)} service(s), "
        f"{len(result.warnings)} warning(s)",
        file=sys.stderr,
    )
    return 0


def _write_atomically(path: Path, text: str) -> None:
    import tempfile

    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise
