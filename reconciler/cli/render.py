"""`podform render`: write the rendered stack to stdout or a folder and print the notes.

The renderers (reconciler/render/) are pure; this module does the IO: the files, the notes on
stderr (one line each, naming resource and field), and the exit code (0 even with notes).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from reconciler.errors import PodformError
from reconciler.manifests.model import Desired
from reconciler.render import Target, render


def run_render(args: argparse.Namespace, desired: Desired) -> int:
    target = Target(args.to)
    to_stdout = args.out == "-"
    if to_stdout and target is Target.QUADLET:
        raise PodformError("quadlet writes one unit file per object: give a folder with -o DIR")
    folder = Path.cwd() if to_stdout else Path(args.out).absolute()
    rendering = render(desired, target, base=folder)
    for note in rendering.notes:
        print(f"warning: render {target}: {note}", file=sys.stderr)
    if to_stdout:
        sys.stdout.write(rendering.stream())
        return 0
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in rendering.files.items():
        (folder / name).write_text(text, encoding="utf-8")
    print(f"wrote {len(rendering.files)} file(s) to {folder}", file=sys.stderr)
    return 0
