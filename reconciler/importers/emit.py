"""Deterministic YAML for imported documents: same input, same bytes.

Stack first, then Network, Secret, DeviceMapping, Image, Workload, each kind sorted by name; spec
keys in the order the kind's JSON Schema lists them; a header comment naming the source files.
Strings YAML 1.1 would read as something else (`no`, `22:22`, `0755`) come out quoted, so both
podform's YAML 1.2 loader and older tools read back the same strings.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from functools import cache
from typing import Any

import yaml

from reconciler.importers.model import Doc
from reconciler.manifests.schema import schema_dir

KIND_ORDER = ("Stack", "Network", "Secret", "DeviceMapping", "Image", "Workload")


class _Dumper(yaml.SafeDumper):
    """Block style, lists indented under their key as people write them by hand."""

    def increase_indent(self, flow: bool = False, indentless: bool = False) -> None:
        super().increase_indent(flow, False)


def _dump(data: dict[str, Any]) -> str:
    return yaml.dump(
        data,
        Dumper=_Dumper,
        sort_keys=False,
        default_flow_style=False,
        allow_unicode=True,
        width=100,
    )


@cache
def _schema_keys(kind: str) -> tuple[str, ...]:
    """The spec keys of `kind` in the order its JSON Schema lists them."""
    try:
        schema = json.loads((schema_dir() / f"{kind.lower()}.json").read_text(encoding="utf-8"))
        return tuple(schema["properties"]["spec"]["properties"])
    except (OSError, ValueError, KeyError):
        return ()


def in_schema_order(kind: str, spec: dict[str, Any]) -> dict[str, Any]:
    """`spec` with its keys in schema order; keys the schema does not list keep their place
    after them (the mapper writes SPEC §1's order, of which the schema's is a part)."""
    order = _schema_keys(kind)
    keys = [k for k in order if k in spec] + [k for k in spec if k not in order]
    return {k: spec[k] for k in keys}


def ordered(docs: Sequence[Doc]) -> list[Doc]:
    """Documents in output order: by kind as KIND_ORDER lists them, then by name."""
    return sorted(docs, key=lambda d: (KIND_ORDER.index(d.kind), d.name))


def emit(docs: Sequence[Doc], header: Sequence[str]) -> str:
    """One multi-document YAML text; `header` lines become the leading comment."""
    parts = ["".join(f"# {line}".rstrip() + "\n" for line in header)]
    for i, doc in enumerate(ordered(docs)):
        data = doc.as_dict()
        if "spec" in data:
            data["spec"] = in_schema_order(doc.kind, data["spec"])
        text = _dump(data)
        if doc.comment:
            text += "".join(f"{line}\n" for line in doc.comment)
        parts.append(("---\n" if i else "") + text)
    return "".join(parts)
