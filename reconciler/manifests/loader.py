"""Strict YAML loading: files, directories and stdin into Documents that remember where every node is.

First step of the pipeline (sources.py says which files and reads them). Nothing here knows
about kinds or schemas; it only guarantees that what comes out is plain JSON-compatible data
(str, int, float, bool, None, list, dict with str keys) and that every value can be traced back
to file:line:col.

The rules, each reported as an Issue at the offending node (all problems of all files are
collected, then raised together as InvalidInput):
- files over 1 MiB, bytes that are not UTF-8 (a UTF-8 BOM is fine; UTF-16/32 is refused), and
  characters YAML does not allow (NUL, ESC, DEL, ...) stop a file before it is parsed;
- nesting deeper than 64 levels (the document's top-level mapping is level 1);
- anchors, aliases, merge keys, duplicate keys, keys that are not strings, tags outside the
  YAML core schema (!!str !!int !!float !!bool !!null !!map !!seq);
- scalars resolve by the YAML 1.2 core schema: only true/false in three spellings are booleans,
  `yes`/`no`/`on`/`22:22`/`2024-01-01` stay strings, `0o17`/`0x1F` are ints, `1e3` is the float
  1000.0; a plain leading-zero integer such as `0755` is refused as ambiguous, and .inf/.nan
  (not JSON) are refused;
- every document must be a mapping ("document N" counts all documents of the file, 1-based);
  empty documents are skipped.
"""

from __future__ import annotations

import codecs
import json
import os
import re
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, Final

import yaml

from reconciler.errors import InvalidInput, Issue, Location
from reconciler.manifests.jsonpath import JsonPath
from reconciler.manifests.sources import manifest_files as manifest_files
from reconciler.manifests.sources import manifest_sources, read_problem
from reconciler.manifests.sources import read_regular_file as read_regular_file
from reconciler.manifests.yamlcore import CORE, SCALAR_TAGS, ScalarError, resolve_plain, short_tag
from reconciler.redact import MASK, is_secret_key, register_secret


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
        # json.dumps: a name that slipped past the schema (e.g. "web\n") must not break the line.
        return f"{self.kind} {json.dumps(self.name)}" if self.kind and self.name else self.kind


# --- Loading -------------------------------------------------------------------------------------
#
# One pass over the parser's event stream builds the plain data, checks every strictness rule and
# records positions. Walking events with an explicit stack (instead of composing nodes and
# constructing them recursively) means no Python or C recursion ever depends on the input's depth:
# the walk gives up at the 65th level before anything deeper is parsed. PyYAML's constructors,
# resolvers and the global SafeLoader are never used, so nothing of YAML 1.1 typing leaks in.

MAX_BYTES = 1024 * 1024
MAX_DEPTH = 64  # the document's top-level mapping is level 1

# libyaml's parser (fast, and it keeps marks); the pure-Python parser yields the same events.
_LOADER: type[yaml.SafeLoader] | type[yaml.CSafeLoader] = (
    yaml.CSafeLoader if yaml.__with_libyaml__ else yaml.SafeLoader
)
_ANCHORS = "anchors and aliases are not allowed"
_NON_STRING_KEY = "mapping keys must be strings"
_TOO_DEEP = f"nesting deeper than {MAX_DEPTH} levels"
# libyaml has its own limit (1000 levels) and, looking ahead for a flow key, may hit it before the
# walk sees level 65: that error gets podform's message, at the position where libyaml stopped.
_LIBYAML_TOO_DEEP = "exceeded maximum nesting depth"

# Characters YAML 1.2 allows in a stream (c-printable); everything else is refused up front.
_NON_PRINTABLE = re.compile("[^\t\n\r\x20-\x7e\x85\xa0-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")

_SECRET_SCALAR = (
    f"this value is not a valid YAML scalar as written ({MASK}: a value under a secret-looking"
    ' key is not shown); quote it, e.g. "..."'
)

_INVALID: Final = object()  # a value already reported as an issue
_NO_KEY: Final = object()  # a mapping frame waiting for its next key
_BAD_KEY: Final = object()  # the key was rejected: its value is walked but not stored


def _secret_value_path(path: JsonPath) -> bool:
    """A scalar whose own key looks secret (`env: {API_KEY: ...}`): its text is a secret value.

    Only the last key counts: `secrets: [{name: hf-token}]` names a secret, it is not one.
    """
    return bool(path) and isinstance(path[-1], str) and is_secret_key(path[-1])


def _describe(value: object) -> str:
    for kind, article in ((bool, "a boolean"), (int, "an integer"), (float, "a number")):
        if isinstance(value, kind):
            return article
    return "a list" if isinstance(value, list) else "a string"


@dataclass
class _Frame:
    """A mapping or sequence being filled."""

    value: dict[str, Any] | list[Any]
    path: JsonPath | None  # None inside a key or a rejected entry: no positions are recorded
    location: Location
    key: object = _NO_KEY
    first_line: dict[str, int] = field(default_factory=dict)  # for duplicate-key messages


def _char_at(text: str, line: int, column: int) -> str:
    """The character at a YAML mark (0-based), or "" past the end."""
    lines = text.split("\n")
    return lines[line][column : column + 1] if line < len(lines) else ""


class _FileWalker:
    """Turns the text of one file into Documents, reporting every problem into `issues`."""

    def __init__(self, file: str, base_dir: Path, issues: list[Issue]) -> None:
        self.file = file
        self.base_dir = base_dir
        self.issues = issues
        self.documents: list[Document] = []
        self.number = 0  # 1-based, counting empty documents too: what a reader of the file sees
        self.stack: list[_Frame] = []
        self.root: object = None
        self.root_location = Location(file, 1, 1)
        self.positions: dict[JsonPath, Location] = {}
        self.key_positions: dict[JsonPath, Location] = {}

    def walk(self, text: str) -> list[Document]:
        try:
            for event in yaml.parse(text, Loader=_LOADER):
                if not self._feed(event):
                    break
        except yaml.MarkedYAMLError as exc:
            mark = exc.problem_mark or exc.context_mark
            problem = exc.problem or exc.context or "invalid YAML"
            message = _TOO_DEEP if problem == _LIBYAML_TOO_DEEP else problem
            if mark and "tab" not in message and _char_at(text, mark.line, mark.column) == "\t":
                message += " (a tab: YAML indents with spaces only)"
            self._issue(message, self._location(mark) if mark else Location(self.file, 1, 1))
        except yaml.YAMLError as exc:  # reader errors; the byte checks should have caught them
            self._issue(str(exc), Location(self.file, 1, 1))
        return self.documents

    def _location(self, mark: Any) -> Location:
        return Location(self.file, mark.line + 1, mark.column + 1)

    def _issue(self, message: str, location: Location) -> None:
        self.issues.append(Issue(message, location))

    def _feed(self, event: yaml.Event) -> bool:
        """Take one event; False when the file must not be read further."""
        kind = type(event)  # exact types, most frequent first: this is the loader's hot loop
        if kind is yaml.ScalarEvent:
            assert isinstance(event, yaml.ScalarEvent)
            location = self._location(event.start_mark)
            if event.anchor is not None:
                self._issue(_ANCHORS, location)
            path = self._child_path()
            if path is not None:
                self.positions[path] = location
            merge = event.value == "<<" and event.implicit[0]
            secret = path is not None and _secret_value_path(path)
            if secret:
                register_secret(event.value)
            self._attach(self._scalar(event, location, secret), location, merge=merge)
        elif kind is yaml.MappingEndEvent or kind is yaml.SequenceEndEvent:
            frame = self.stack.pop()
            self._attach(frame.value, frame.location)
        elif kind is yaml.MappingStartEvent or kind is yaml.SequenceStartEvent:
            assert isinstance(event, yaml.CollectionStartEvent)
            return self._start_collection(event, kind is yaml.MappingStartEvent)
        elif kind is yaml.AliasEvent:
            location = self._location(event.start_mark)
            self._issue(_ANCHORS, location)
            self._attach(_INVALID, location)
        elif kind is yaml.DocumentStartEvent:
            self.number += 1
            self.root, self.positions, self.key_positions = None, {}, {}
        elif kind is yaml.DocumentEndEvent:
            self._end_document()
        return True

    def _start_collection(self, event: yaml.CollectionStartEvent, is_map: bool) -> bool:
        location = self._location(event.start_mark)
        if len(self.stack) >= MAX_DEPTH:
            self._issue(_TOO_DEEP, location)
            return False
        if event.anchor is not None:
            self._issue(_ANCHORS, location)
        if event.tag is not None and event.tag != CORE + ("map" if is_map else "seq"):
            self._issue(f"tag '{short_tag(event.tag)}' is not allowed", location)
        path = self._child_path()
        if path is not None:
            self.positions[path] = location
        self.stack.append(_Frame({} if is_map else [], path, location))
        return True

    def _scalar(self, event: yaml.ScalarEvent, location: Location, secret: bool = False) -> Any:
        if event.tag is None:  # quoted and block scalars are always strings
            convert: Callable[[str], Any] = resolve_plain if event.implicit[0] else str
        elif event.tag in SCALAR_TAGS:
            convert = SCALAR_TAGS[event.tag]
        else:
            self._issue(f"tag '{short_tag(event.tag)}' is not allowed", location)
            return _INVALID
        try:
            return convert(event.value)
        except ScalarError as exc:
            # The message quotes the value (and hints derived from it): not under a secret key.
            message = _SECRET_SCALAR if secret else str(exc)
            self._issue(message, location)
            return _INVALID

    def _child_path(self) -> JsonPath | None:
        """Path of the node about to start, or None when it is a key or under a rejected key."""
        if not self.stack:
            return ()
        top = self.stack[-1]
        if top.path is None:
            return None
        if isinstance(top.value, list):
            return (*top.path, len(top.value))
        return (*top.path, top.key) if isinstance(top.key, str) else None

    def _attach(self, value: object, location: Location, *, merge: bool = False) -> None:
        """Put a finished node where it belongs: document root, list item, mapping key or value."""
        if not self.stack:
            self.root, self.root_location = value, location
            return
        top = self.stack[-1]
        if isinstance(top.value, list):
            top.value.append(value)
        elif top.key is _NO_KEY:
            top.key = self._accept_key(top, value, location, merge)
        else:
            if isinstance(top.key, str):
                top.value[top.key] = value
            top.key = _NO_KEY

    def _accept_key(self, top: _Frame, key: object, location: Location, merge: bool) -> object:
        if key is _INVALID:
            return _BAD_KEY
        if merge:
            self._issue("merge keys are not allowed", location)
            return _BAD_KEY
        if not isinstance(key, str):
            self._issue(_NON_STRING_KEY, location)
            return _BAD_KEY
        first = top.first_line.get(key)
        if first is not None:
            self._issue(f"duplicate key {key!r} (first at line {first})", location)
            return _BAD_KEY
        top.first_line[key] = location.line
        if top.path is not None:
            self.key_positions[(*top.path, key)] = location
        return key

    def _end_document(self) -> None:
        root = self.root
        if root is None or root is _INVALID:  # empty document, or already reported
            return
        if isinstance(root, dict):
            self.documents.append(
                Document(
                    file=self.file,
                    index=len(self.documents),
                    data=root,
                    base_dir=self.base_dir,
                    positions=self.positions,
                    key_positions=self.key_positions,
                )
            )
        else:
            message = f"document {self.number}: expected a mapping, got {_describe(root)}"
            self._issue(message, self.root_location)


def _decode(data: bytes, file: str, issues: list[Issue]) -> str | None:
    """The text of a file's bytes, or None after reporting why it cannot be read as YAML."""
    start = Location(file, 1, 1)
    if len(data) > MAX_BYTES:
        issues.append(Issue("file is larger than 1 MiB", start))
        return None
    # UTF-16/32 are legal YAML but no manifest needs them; one encoding keeps byte offsets,
    # hashes and diffs simple. (UTF-32 LE starts with the UTF-16 LE mark.)
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        issues.append(Issue("file is UTF-16 encoded; save it as UTF-8", start))
        return None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line_start = data.rfind(b"\n", 0, exc.start) + 1
        codec = "utf-8-sig" if line_start == 0 else "utf-8"  # a BOM is not a column
        col = len(data[line_start : exc.start].decode(codec)) + 1
        line = data.count(b"\n", 0, exc.start) + 1
        issues.append(Issue(f"not valid UTF-8 at byte {exc.start}", Location(file, line, col)))
        return None
    text = text.removeprefix("\ufeff")
    bad = _NON_PRINTABLE.search(text)
    if bad:
        pos = bad.start()
        line = text.count("\n", 0, pos) + 1
        col = pos - text.rfind("\n", 0, pos)
        message = f"non-printable character U+{ord(bad.group()):04X} is not allowed"
        issues.append(Issue(message, Location(file, line, col)))
        return None
    return text


def _load_bytes(data: bytes, file: str, base_dir: Path, issues: list[Issue]) -> list[Document]:
    text = _decode(data, file, issues)
    return [] if text is None else _FileWalker(file, base_dir, issues).walk(text)


def load_manifests(paths: Sequence[str], stdin: BinaryIO | None = None) -> list[Document]:
    """Every non-empty document of `paths` in order, or InvalidInput with every problem found."""
    documents, issues = read_manifests(paths, stdin)
    if issues:
        raise InvalidInput(issues)
    return documents


def read_manifests(
    paths: Sequence[str], stdin: BinaryIO | None = None
) -> tuple[list[Document], list[Issue]]:
    """The documents that could be read, and the problems of those that could not: a caller
    can still check the good ones, so one run reports every problem in every file."""
    issues: list[Issue] = []
    documents: list[Document] = []
    for display, path in manifest_sources(paths, issues):
        if path is None:
            data = (stdin or sys.stdin.buffer).read(MAX_BYTES + 1)
            base_dir = Path.cwd()
        else:
            try:
                data = read_regular_file(path, MAX_BYTES + 1)
            except OSError as exc:
                issues.append(Issue(read_problem(display, exc)))
                continue
            base_dir = Path(os.path.realpath(path.absolute().parent))
        documents.extend(_load_bytes(data, display, base_dir, issues))
    return documents, issues
