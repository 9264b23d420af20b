"""The strict YAML loader: every bad-input class is an issue with a pinned message and position."""

from __future__ import annotations

import io
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from reconciler.errors import InvalidInput, Location
from reconciler.manifests.loader import Document, load_manifests, manifest_files

MIB = 1024 * 1024


@pytest.fixture(autouse=True)
def _in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Run every test in its own directory so display paths are short and stable."""
    monkeypatch.chdir(tmp_path)


def load(content: bytes | str, name: str = "m.yaml") -> list[Document]:
    data = content.encode() if isinstance(content, str) else content
    Path(name).write_bytes(data)
    return load_manifests([name])


def problems(content: bytes | str) -> list[str]:
    """The issues loading `content` from m.yaml raises, as printed."""
    with pytest.raises(InvalidInput) as caught:
        load(content)
    return [str(issue) for issue in caught.value.issues]


BAD = [
    # 1.1 duplicate and non-string keys
    ("name: a\nname: b\n", ["m.yaml:2:1: duplicate key 'name' (first at line 1)"]),
    ("name: x\n'name': y\n", ["m.yaml:2:1: duplicate key 'name' (first at line 1)"]),
    (
        "spec:\n  env:\n    A: 1\n    B: 2\n    A: 3\n",
        ["m.yaml:5:5: duplicate key 'A' (first at line 3)"],
    ),
    ("a: {x: 1, x: 2}\n", ["m.yaml:1:11: duplicate key 'x' (first at line 1)"]),
    (
        "true: a\n1: b\n",
        ["m.yaml:1:1: mapping keys must be strings", "m.yaml:2:1: mapping keys must be strings"],
    ),
    ("~: x\n", ["m.yaml:1:1: mapping keys must be strings"]),
    ("1.5: x\n", ["m.yaml:1:1: mapping keys must be strings"]),
    ("a: {[k]: v}\n", ["m.yaml:1:5: mapping keys must be strings"]),
    ("? [k]\n: v\n", ["m.yaml:1:3: mapping keys must be strings"]),
    # 1.2 anchors and aliases, even a single benign one
    (
        "a: &x 1\nb: *x\n",
        [
            "m.yaml:1:4: anchors and aliases are not allowed",
            "m.yaml:2:4: anchors and aliases are not allowed",
        ],
    ),
    (
        "a: &a [*a]\n",
        [
            "m.yaml:1:4: anchors and aliases are not allowed",
            "m.yaml:1:8: anchors and aliases are not allowed",
        ],
    ),
    # 1.4 YAML 1.1 octal trap
    ("mode: 0755\n", ['m.yaml:1:7: ambiguous number 0755: quote it ("0755") or write 0o755']),
    ("mode: 010\n", ['m.yaml:1:7: ambiguous number 010: quote it ("010") or write 0o10']),
    ("gpu: 08\n", ['m.yaml:1:6: ambiguous number 08: quote it ("08") or write 8']),
    ("n: -012\n", ['m.yaml:1:4: ambiguous number -012: quote it ("-012") or write -12']),
    ("0755: x\n", ['m.yaml:1:1: ambiguous number 0755: quote it ("0755") or write 0o755']),
    ("x: !!int 0755\n", ['m.yaml:1:4: ambiguous number 0755: quote it ("0755") or write 0o755']),
    # numbers JSON cannot carry
    ("x: .inf\n", ["m.yaml:1:4: .inf is not allowed: infinity and NaN are not JSON numbers"]),
    ("x: .NaN\n", ["m.yaml:1:4: .NaN is not allowed: infinity and NaN are not JSON numbers"]),
    ("x: 1e999\n", ["m.yaml:1:4: number 1e999 is out of range"]),
    # 1.5 tags outside the core schema
    ("a: !!binary aGk=\n", ["m.yaml:1:4: tag '!!binary' is not allowed"]),
    (
        "a: !!python/object/apply:os.system [ls]\n",
        ["m.yaml:1:4: tag '!!python/object/apply:os.system' is not allowed"],
    ),
    (
        "a: !!python/name:os.system ''\n",
        ["m.yaml:1:4: tag '!!python/name:os.system' is not allowed"],
    ),
    ("a: !!set {x, y}\n", ["m.yaml:1:4: tag '!!set' is not allowed"]),
    ("a: !!omap [x: 1]\n", ["m.yaml:1:4: tag '!!omap' is not allowed"]),
    ("a: !!timestamp 2024-01-01\n", ["m.yaml:1:4: tag '!!timestamp' is not allowed"]),
    ("a: !custom x\n", ["m.yaml:1:4: tag '!custom' is not allowed"]),
    ("a: !!seq {x: 1}\n", ["m.yaml:1:4: tag '!!seq' is not allowed"]),
    ("a: !!int x\n", ["m.yaml:1:4: 'x' is not a valid !!int"]),
    ("a: !!bool yes\n", ["m.yaml:1:4: 'yes' is not a valid !!bool"]),
    ("a: !!float x\n", ["m.yaml:1:4: 'x' is not a valid !!float"]),
    ("a: !!null 0\n", ["m.yaml:1:4: '0' is not a valid !!null"]),
    # 1.7 documents that are not mappings; N counts every document of the file, 1-based
    ("- a\n", ["m.yaml:1:1: document 1: expected a mapping, got a list"]),
    (
        "a: 1\n---\nhello\n--- 5\n--- true\n--- 1.5\n",
        [
            "m.yaml:3:1: document 2: expected a mapping, got a string",
            "m.yaml:4:5: document 3: expected a mapping, got an integer",
            "m.yaml:5:5: document 4: expected a mapping, got a boolean",
            "m.yaml:6:5: document 5: expected a mapping, got a number",
        ],
    ),
    ("---\n---\n- x\n", ["m.yaml:3:1: document 2: expected a mapping, got a list"]),
    # 1.8 merge keys
    ("x:\n  <<: {a: 2}\n  b: 1\n", ["m.yaml:2:3: merge keys are not allowed"]),
    (
        "base: &b {a: 1}\nx:\n  <<: *b\n",
        [
            "m.yaml:1:7: anchors and aliases are not allowed",
            "m.yaml:3:3: merge keys are not allowed",
            "m.yaml:3:7: anchors and aliases are not allowed",
        ],
    ),
    # 1.6 encoding and characters
    (b"name: caf\xe9\n", ["m.yaml:1:10: not valid UTF-8 at byte 9"]),
    (b"a: 1\nname: caf\xe9\n", ["m.yaml:2:10: not valid UTF-8 at byte 14"]),
    (b"\xef\xbb\xbfname: caf\xe9\n", ["m.yaml:1:10: not valid UTF-8 at byte 12"]),
    (b"a: x\x00y\n", ["m.yaml:1:5: non-printable character U+0000 is not allowed"]),
    (b"a: 1\nb: \x1b[31m\n", ["m.yaml:2:4: non-printable character U+001B is not allowed"]),
    ("a: x\x7f\n", ["m.yaml:1:5: non-printable character U+007F is not allowed"]),
    ("a: 1\n".encode("utf-16"), ["m.yaml:1:1: file is UTF-16 encoded; save it as UTF-8"]),
    ("a: 1\n".encode("utf-16-be"), ["m.yaml:1:1: non-printable character U+0000 is not allowed"]),
    (
        b"\xfe\xff" + "a: 1\n".encode("utf-16-be"),
        ["m.yaml:1:1: file is UTF-16 encoded; save it as UTF-8"],
    ),
    # syntax errors: libyaml's problem text at its problem mark
    (
        "a: b: c\n",
        [
            "m.yaml:1:5: mapping values are not allowed "
            + ("in this context" if yaml.__with_libyaml__ else "here")
        ],
    ),
    (
        "a: 1\nb: [1, 2\n",
        [
            "m.yaml:3:1: "
            + (
                "did not find expected ',' or ']'"
                if yaml.__with_libyaml__
                else "expected ',' or ']', but got '<stream end>'"
            )
        ],
    ),
    # a tab indenting a key: libyaml's text does not say the character is a tab
    (
        "a:\n\tb: 1\n",
        [
            "m.yaml:2:1: found character "
            + ("" if yaml.__with_libyaml__ else "'\\t' ")
            + "that cannot start any token (a tab: YAML indents with spaces only)"
        ],
    ),
    (
        "a: 1\n\tb: 2\n",
        [
            "m.yaml:2:1: "
            + (
                "found a tab character that violates indentation"
                if yaml.__with_libyaml__
                else "found character '\\t' that cannot start any token"
                " (a tab: YAML indents with spaces only)"
            )
        ],
    ),
    # problems in several documents are all reported
    (
        "name: a\nname: b\n---\nx: 0755\n---\n- 1\n",
        [
            "m.yaml:2:1: duplicate key 'name' (first at line 1)",
            'm.yaml:4:4: ambiguous number 0755: quote it ("0755") or write 0o755',
            "m.yaml:6:1: document 3: expected a mapping, got a list",
        ],
    ),
]


@pytest.mark.parametrize(("content", "expected"), BAD)
def test_bad_input_is_an_issue_at_its_position(content: bytes | str, expected: list[str]) -> None:
    """Each bad-input class yields exactly these issues, message and file:line:col."""
    assert problems(content) == expected


PLAIN_SCALARS = [
    # YAML 1.1 traps stay strings
    ("no", "no"),
    ("yes", "yes"),
    ("on", "on"),
    ("off", "off"),
    ("y", "y"),
    ("NO", "NO"),
    ("Yes", "Yes"),
    ("22:22", "22:22"),
    ("2024-01-01", "2024-01-01"),
    ("2024-01-01T10:00:00Z", "2024-01-01T10:00:00Z"),
    ("1_000", "1_000"),
    ("0b101", "0b101"),
    ("<<", "<<"),  # as a value, not a key
    # YAML 1.2 core
    ("true", True),
    ("True", True),
    ("TRUE", True),
    ("false", False),
    ("False", False),
    ("FALSE", False),
    ("~", None),
    ("null", None),
    ("Null", None),
    ("", None),
    ("0", 0),
    ("-5", -5),
    ("+7", 7),
    ("0o17", 15),
    ("0x1F", 31),
    ("1.10", 1.1),
    ("1e3", 1000.0),
    ("1.0e+3", 1000.0),
    (".5", 0.5),
    ("-0.0", -0.0),
    # quoted and tagged
    ("'0755'", "0755"),
    ('"yes"', "yes"),
    ("'true'", "true"),
    ("!!str 0755", "0755"),
    ("!!str true", "true"),
    ('!!int "12"', 12),
    ("!!float 1", 1.0),
    ("!!bool false", False),
    ("!!null ~", None),
    ("|\n  text", "text\n"),
]


@pytest.mark.parametrize(("scalar", "value"), PLAIN_SCALARS)
def test_scalars_resolve_by_yaml_1_2_core_rules(scalar: str, value: object) -> None:
    """Only YAML 1.2 core forms become bool/null/int/float; everything else stays a string."""
    (doc,) = load(f"v: {scalar}\n")
    assert doc.data["v"] == value
    assert type(doc.data["v"]) is type(value)


def test_core_collection_tags_are_accepted() -> None:
    """Explicit !!map and !!seq on the matching node are plain YAML and load normally."""
    (doc,) = load("a: !!map {x: !!seq [1]}\n")
    assert doc.data == {"a": {"x": [1]}}


def test_merge_key_spelled_quoted_is_an_ordinary_key() -> None:
    """Only the plain `<<` is a merge key; '<<' quoted is just a string key."""
    (doc,) = load("'<<': 1\n")
    assert doc.data == {"<<": 1}


def test_same_key_in_two_documents_is_fine() -> None:
    """Duplicate detection is per mapping: two documents may both say `name`."""
    docs = load("name: a\n---\nname: b\n")
    assert [d.data for d in docs] == [{"name": "a"}, {"name": "b"}]


def test_same_key_in_sibling_mappings_is_fine() -> None:
    """Two sibling mappings may share keys without being duplicates."""
    (doc,) = load("a: {x: 1}\nb: {x: 2}\nc: [{x: 3}, {x: 4}]\n")
    assert doc.data["c"] == [{"x": 3}, {"x": 4}]


EMPTY = ["", "# only a comment\n", "---\n", "---\n---\n", "--- # c\n...\n", "--- ~\n", "\n\n"]


@pytest.mark.parametrize("content", EMPTY)
def test_empty_documents_are_skipped(content: str) -> None:
    """Empty files, comments and empty `---` documents yield no documents and no error."""
    assert load(content) == []


def test_empty_documents_between_real_ones_are_skipped_and_terminators_handled() -> None:
    """`...` ends a document; empty ones are dropped and `index` counts only the others."""
    docs = load("---\na: 1\n...\n---\n---\n# nothing\n---\nb: 2\n...\n")
    assert [(d.index, d.data) for d in docs] == [(0, {"a": 1}), (1, {"b": 2})]


MULTI = """\
kind: Machine
metadata: {name: gpu}
---
kind: Image
---
kind: Workload
metadata:
  name: llama
spec:
  env:
    A: "1"
  ports: ["8080:8080", "9000:9000"]
"""


def test_positions_are_file_absolute_in_later_documents() -> None:
    """A node in document 3 reports its real line in the file, for values and for keys."""
    docs = load(MULTI)
    third = docs[2]
    assert third.index == 2
    assert third.positions[()] == Location("m.yaml", 6, 1)
    assert third.positions[("spec", "env", "A")] == Location("m.yaml", 11, 8)
    assert third.key_positions[("spec", "env", "A")] == Location("m.yaml", 11, 5)
    assert third.positions[("spec", "ports", 1)] == Location("m.yaml", 12, 24)
    assert third.locate(("spec", "ports", 7)) == Location("m.yaml", 12, 10)
    assert third.locate_key(("metadata", "name")) == Location("m.yaml", 8, 3)
    assert docs[0].positions[("metadata", "name")] == Location("m.yaml", 2, 18)
    assert third.subject == 'Workload "llama"'


def test_crlf_gives_the_same_result_as_lf() -> None:
    """CRLF line endings give the same data and positions as LF, block scalars included."""
    text = MULTI + "  script: |\n    line one\n    line two\n"
    lf = load(text, "lf.yaml")
    crlf = load(text.replace("\n", "\r\n"), "crlf.yaml")
    assert [d.data for d in crlf] == [d.data for d in lf]
    relocate = [{p: (loc.line, loc.col) for p, loc in d.positions.items()} for d in crlf]
    assert relocate == [{p: (loc.line, loc.col) for p, loc in d.positions.items()} for d in lf]
    assert crlf[2].data["spec"]["script"] == "line one\nline two\n"


def test_utf8_bom_is_accepted() -> None:
    """A UTF-8 byte-order mark is dropped and does not shift columns."""
    (doc,) = load(b"\xef\xbb\xbfname: caf\xc3\xa9\n")
    assert doc.data == {"name": "café"}
    assert doc.key_positions[("name",)] == Location("m.yaml", 1, 1)
    assert doc.positions[("name",)] == Location("m.yaml", 1, 7)


def test_columns_count_characters_not_bytes() -> None:
    """Columns after multi-byte characters count characters, as editors show them."""
    (doc,) = load("é: [x, y]\n")
    assert doc.positions[("é", 1)] == Location("m.yaml", 1, 8)


def test_size_limit_is_one_mib_exactly() -> None:
    """A file of exactly 1 MiB loads; one byte more is refused before parsing."""
    body = b"a: 1\n#"
    at_limit = body + b"x" * (MIB - len(body) - 1) + b"\n"
    assert len(at_limit) == MIB
    assert [d.data for d in load(at_limit)] == [{"a": 1}]
    assert problems(at_limit + b"\n") == ["m.yaml:1:1: file is larger than 1 MiB"]


def nested_flow(levels: int) -> str:
    """A document whose top-level mapping holds `levels - 1` nested flow lists (depth = levels)."""
    return "a: " + "[" * (levels - 1) + "]" * (levels - 1) + "\n"


def nested_block(levels: int) -> str:
    """A document of `levels` nested block mappings."""
    return "".join("  " * i + "k:\n" for i in range(levels - 1)) + "  " * (levels - 1) + "k: v\n"


def test_nesting_of_64_levels_loads() -> None:
    """The top-level mapping counts as level 1; 64 levels, flow or block, are accepted."""
    innermost = ("a", *[0] * 62)  # the 63rd list, level 64
    assert load(nested_flow(64))[0].positions[innermost] == Location("m.yaml", 1, 66)
    assert load(nested_block(64), "b.yaml")[0].positions[("k",) * 64] == Location("b.yaml", 64, 130)


def test_nesting_of_65_levels_is_refused_at_the_65th() -> None:
    """Level 65 is refused, located at the collection that opens it."""
    assert problems(nested_flow(65)) == ["m.yaml:1:67: nesting deeper than 64 levels"]
    assert problems(nested_block(66)) == ["m.yaml:65:129: nesting deeper than 64 levels"]


DEEP_SCRIPT = """
import io, sys, time
from reconciler.errors import InvalidInput
from reconciler.manifests.loader import load_manifests
data = sys.stdin.buffer.read()
start = time.perf_counter()
try:
    load_manifests(["-"], stdin=io.BytesIO(data))
except InvalidInput as exc:
    print(f"{time.perf_counter() - start:.3f}")
    print(exc)
    sys.exit(3)
"""


# Past 1000 flow levels libyaml stops on its own, before the walk sees level 65.
_STOPPED = "-:1:1001:" if yaml.__with_libyaml__ else "-:1:65:"


@pytest.mark.parametrize(
    ("payload", "where"),
    [
        (b"[" * 5_000 + b"]" * 5_000, _STOPPED),
        (b"[" * 100_000 + b"]" * 100_000, _STOPPED),
        (b"a: " + b"{a: " * 100_000 + b"}" * 100_000, "-:1:256:"),
        (b"".join(b"  " * i + b"- \n" for i in range(1_000)), "-:65:129:"),
    ],
    ids=["flow-5000", "flow-100000", "flow-map-100000", "block-1000"],
)
def test_hostile_nesting_fails_fast_and_never_crashes(payload: bytes, where: str) -> None:
    """Deep nesting ends in a clean issue in well under a second: no segfault, no RecursionError."""
    run = subprocess.run(
        [sys.executable, "-c", DEEP_SCRIPT], input=payload, capture_output=True, timeout=60
    )
    assert run.returncode == 3, run.stderr.decode()
    seconds, message = run.stdout.decode().split("\n", 1)
    assert float(seconds) < 0.5
    assert message.rstrip() == f"{where} nesting deeper than 64 levels"
    assert "RecursionError" not in run.stderr.decode()


def test_billion_laughs_is_refused_quickly() -> None:
    """The 9-level alias bomb is refused at its first anchor in well under 100 ms."""
    lines = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for level in "bcdefghi":
        prev = chr(ord(level) - 1)
        lines.append(f"{level}: &{level} [" + ",".join([f"*{prev}"] * 9) + "]")
    Path("m.yaml").write_text("\n".join(lines) + "\n")
    start = time.perf_counter()
    with pytest.raises(InvalidInput) as caught:
        load_manifests(["m.yaml"])
    assert time.perf_counter() - start < 0.1
    assert str(caught.value.issues[0]) == "m.yaml:1:4: anchors and aliases are not allowed"
    assert all(i.message == "anchors and aliases are not allowed" for i in caught.value.issues)


def test_problems_in_every_file_are_collected() -> None:
    """One bad file does not hide another: issues from all files come in one InvalidInput."""
    Path("a.yaml").write_text("x: 1\nx: 2\n")
    Path("b.yaml").write_text("ok: true\n")
    Path("c.yaml").write_text("- 1\n")
    with pytest.raises(InvalidInput) as caught:
        load_manifests(["a.yaml", "b.yaml", "c.yaml", "missing.yaml"])
    assert [str(i) for i in caught.value.issues] == [
        "missing.yaml: no such file or directory",
        "a.yaml:2:1: duplicate key 'x' (first at line 1)",
        "c.yaml:1:1: document 1: expected a mapping, got a list",
    ]


def make_tree() -> None:
    files = {
        "manifests/b.yaml": "n: b\n",
        "manifests/a.yml": "n: a\n",
        "manifests/sub/c.yaml": "n: c\n",
        "manifests/sub-x.yaml": "n: sub-x\n",
        "manifests/.hidden.yaml": "n: hidden\n",
        "manifests/.git/x.yaml": "n: git\n",
        "manifests/.cache/y.yaml": "n: cache\n",
        "manifests/b.yaml~": "n: backup\n",
        "manifests/#b.yaml#": "n: autosave\n",
        "manifests/.#b.yaml": "n: lock\n",
        "manifests/.b.yaml.swp": "n: swap\n",
        "manifests/notes.txt": "n: notes\n",
        "manifests/README.md": "# docs\n",
    }
    for name, text in files.items():
        Path(name).parent.mkdir(parents=True, exist_ok=True)
        Path(name).write_text(text)


def test_directories_are_walked_sorted_and_skip_hidden_and_backup_files() -> None:
    """A directory yields its *.yaml/*.yml files recursively, sorted by path components."""
    make_tree()
    expected = [
        "manifests/a.yml",
        "manifests/b.yaml",
        "manifests/sub/c.yaml",
        "manifests/sub-x.yaml",
    ]
    assert manifest_files(["manifests"]) == [Path(p) for p in expected]
    docs = load_manifests(["manifests/"])
    assert [d.file for d in docs] == expected
    assert [d.data["n"] for d in docs] == ["a", "b", "c", "sub-x"]
    assert docs[2].base_dir == (Path.cwd() / "manifests" / "sub").resolve()
    assert docs[2].base_dir.is_absolute()


def test_explicit_file_is_read_whatever_its_extension_and_only_once() -> None:
    """A file named explicitly is loaded even as .txt; naming it twice loads it once."""
    make_tree()
    docs = load_manifests(["manifests/notes.txt", "manifests/b.yaml", "manifests"])
    assert [d.file for d in docs] == [
        "manifests/notes.txt",
        "manifests/b.yaml",
        "manifests/a.yml",
        "manifests/sub/c.yaml",
        "manifests/sub-x.yaml",
    ]


def test_hidden_directory_named_explicitly_is_walked() -> None:
    """Skipping applies below the given directory, not to the directory the user named."""
    make_tree()
    assert [d.file for d in load_manifests(["manifests/.git"])] == ["manifests/.git/x.yaml"]


def test_empty_directory_gives_no_documents() -> None:
    """A directory without manifests is not an error here (empty-set policy lives elsewhere)."""
    Path("empty").mkdir()
    assert load_manifests(["empty"]) == []
    assert manifest_files(["empty", "-", "nope.yaml"]) == []


def test_stdin_is_read_with_cwd_as_base_dir() -> None:
    """`-` reads the given stream; documents are named "-" and resolve paths against cwd."""
    docs = load_manifests(["-"], stdin=io.BytesIO(b"a: 1\n---\nb: 2\n"))
    assert [(d.file, d.index, d.data) for d in docs] == [("-", 0, {"a": 1}), ("-", 1, {"b": 2})]
    assert docs[0].base_dir == Path.cwd()
    assert docs[1].positions[("b",)] == Location("-", 3, 4)


def test_stdin_problems_are_located_in_dash() -> None:
    """Issues from stdin name "-" as their file."""
    with pytest.raises(InvalidInput) as caught:
        load_manifests(["-"], stdin=io.BytesIO(b"a: yes\na: no\n"))
    assert [str(i) for i in caught.value.issues] == ["-:2:1: duplicate key 'a' (first at line 1)"]


def test_loading_does_not_change_pyyaml_globals() -> None:
    """PyYAML's own SafeLoader keeps its YAML 1.1 behaviour: podform never mutates it."""
    load("a: no\n")
    assert yaml.safe_load("a: no") == {"a": False}


def test_two_hundred_documents_load_fast() -> None:
    """200 twenty-line documents across 10 files load in well under 200 ms."""
    doc = textwrap.dedent(
        """\
        apiVersion: podform/v1
        kind: Workload
        metadata:
          name: w{n}
          labels: {{team: ml}}
        spec:
          image: llama-vulkan
          command: [/llama/llama-server]
          args: [-m, /models/m.gguf, -ngl, "32"]
          env:
            LLAMA_LOG: info
            MODE: "fast"
          ports: ["8080:8080"]
          volumes: ["models:/models:ro"]
          devices: [apple-gpu]
          resources: {{memory: 8GiB, cpus: 4}}
          restart: unless-stopped
          replicas: 1
          init: false
          stopTimeout: 10s
        """
    )
    Path("perf").mkdir()
    for f in range(10):
        texts = (doc.format(n=f * 20 + i) for i in range(20))
        Path(f"perf/f{f}.yaml").write_text("---\n".join(texts))
    best = min(_timed(lambda: load_manifests(["perf"])) for _ in range(3))
    assert len(load_manifests(["perf"])) == 200
    assert best < 0.2


def _timed(action: Callable[[], object]) -> float:
    start = time.perf_counter()
    action()
    return time.perf_counter() - start
