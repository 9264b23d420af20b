"""Render: the same stack for Kubernetes, Quadlet (systemd) and compose (SPEC §8).

Pure (desired state in, text out; no Podman, no files): the CLI loads and validates the
manifests all-or-nothing, calls render(), then writes the files and prints the notes.
"""

from __future__ import annotations

from pathlib import Path

from reconciler.manifests.model import Desired
from reconciler.render.common import Note, Rendering, Target

__all__ = ["Note", "Rendering", "Target", "render"]


def render(desired: Desired, target: Target, base: Path | None = None) -> Rendering:
    """base: the folder the output will live in (compose writes paths inside it as ./x)."""
    if target is Target.KUBE:
        from reconciler.render.kube import render_kube

        return render_kube(desired)
    if target is Target.QUADLET:
        from reconciler.render.quadlet import render_quadlet

        return render_quadlet(desired)
    from reconciler.render.compose import render_compose

    return render_compose(desired, base)
