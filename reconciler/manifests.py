"""Strict YAML loading: files, directories and stdin into Documents that remember where every node is.

First step of the pipeline. Nothing here knows about kinds or schemas; it only guarantees that
what comes out is plain JSON-compatible data (str, int, float, bool, None, list, dict with str
keys) and that every value can be traced back to file:line:col.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from reconciler.errors import Location

JsonPath = tuple[str | int, ...]


@dataclass(frozen=True)
class Document:
    """One non-empty YAML document of a manifest file."""

    file: str  # display path as the user named it ("-" for stdin)
    index: int  # 0-based position among the file's non-empty documents
    data: dict[str, Any]
    base_dir: Path  # relative paths inside the document resolve against this (stdin: cwd)
    positions: Mapping[JsonPath, Location] = field(default_factory=dict)  # value nodes; () = doc
    key_positions: Mapping[JsonPath, Location] = field(default_factory=dict)  # keys, by value path

    def locate(self, path: Sequence[str | int]) -> Location:
        """Start of the value at `path`, or of its nearest existing ancestor."""
        p = tuple(path)
        while p and p not in self.positions:
            p = p[:-1]
        return self.positions.get(p) or Location(self.file, 1, 1)

    def locate_key(self, path: Sequence[str | int]) -> Location:
        """Start of the key naming `path` (for unknown or duplicate keys), else of its value."""
        return self.key_positions.get(tuple(path)) or self.locate(path)

    @property
    def kind(self) -> str:
        kind = self.data.get("kind")
        return kind if isinstance(kind, str) else ""

    @property
    def name(self) -> str:
        meta = self.data.get("metadata")
        name = meta.get("name") if isinstance(meta, dict) else None
        return name if isinstance(name, str) else ""

    @property
    def subject(self) -> str:
        """`Workload "llama"` for messages; empty when kind or name is unusable."""
        return f'{self.kind} "{self.name}"' if self.kind and self.name else self.kind
