"""JSON Schema validation of loaded manifest documents: schemas/*.json -> Issues with locations.

Second step of the pipeline, after manifests.py has loaded Documents that know where each node
sits. Every document is checked against its kind's schema (Draft 2020-12) and every problem
comes back as an Issue (`file:line:col: Kind "name": $.spec.replicas: message`), never raised:
validation is all-or-nothing, so the caller needs all of them. Messages follow
check-jsonschema: jsonschema's own wording, the best match first, `oneOf`/`anyOf` failures
replaced by their best deep match, plus "did you mean" for misspelled keys and "(quote it)"
where YAML turned a number or boolean into something a string was expected for. Values under
secret-looking keys are masked in every message.

jsonschema is imported lazily (inside functions) so `podform --version` stays fast; the
validators are compiled once per process.
"""

from __future__ import annotations

import difflib
import functools
import json
import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from reconciler.errors import InvalidInput, Issue
from reconciler.manifests.loader import Document
from reconciler.redact import MASK, is_secret_path, redact

KINDS: tuple[str, ...] = (
    "Stack",
    "Machine",
    "Image",
    "DeviceMapping",
    "Network",
    "Secret",
    "Workload",
)
BASE_URI = "https://podform.dev/schemas/v1/"
_COMMON = "common"

# Next to the package in an installed wheel (the build force-includes schemas/ there), else
# the repository's top-level schemas/ for a source checkout or an editable install.
_PACKAGE = Path(__file__).parent.parent
_SCHEMA_DIRS = (_PACKAGE / "schemas", _PACKAGE.parent / "schemas")

_COMBINATORS = frozenset({"oneOf", "anyOf"})
# Keywords through which other subschemas can evaluate an object's properties.
_APPLICATORS = frozenset(
    {
        "allOf",
        "anyOf",
        "oneOf",
        "if",
        "dependentSchemas",
        "patternProperties",
        "additionalProperties",
    }
)
_CLOSED = frozenset({"unevaluatedProperties", "additionalProperties"})
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*")


def schema_dir() -> Path:
    """The directory holding podform's schema files (installed copy first, then the repo's)."""
    for candidate in _SCHEMA_DIRS:
        if (candidate / f"{_COMMON}.json").is_file():
            return candidate
    raise FileNotFoundError(f"podform's schemas are missing (looked in {_SCHEMA_DIRS})")


@functools.cache
def _schemas() -> dict[str, dict[str, Any]]:
    """File stem ("common", "workload", ...) -> parsed schema."""
    base = schema_dir()
    stems = (_COMMON, *(kind.lower() for kind in KINDS))
    return {stem: json.loads((base / f"{stem}.json").read_text("utf-8")) for stem in stems}


@functools.cache
def _validators() -> dict[str, Any]:
    """Kind -> compiled Draft202012Validator, all sharing one registry of the local files."""
    from jsonschema import Draft202012Validator  # type: ignore[import-untyped]
    from referencing import Registry, Resource

    schemas = _schemas()
    # Only these resources: an unknown $ref fails loudly instead of being fetched from the web.
    registry: Registry[Any] = Registry().with_resources(
        (s["$id"], Resource.from_contents(s)) for s in schemas.values()
    )
    return {
        kind: Draft202012Validator(
            _inline_refs(schemas, kind.lower()),
            registry=registry,
            format_checker=Draft202012Validator.FORMAT_CHECKER,
        )
        for kind in KINDS
    }


def _inline_refs(schemas: dict[str, dict[str, Any]], stem: str) -> dict[str, Any]:
    """`stem`'s schema with every `$ref` replaced by what it points at.

    Resolving a `$ref` on every validation took half of the time (measured on 200
    workloads). The schemas are not recursive, so this terminates, and `{"$ref": X, ...}`
    becomes `{..., "allOf": [X]}`, which validates identically (both are in-place
    applicators, so unevaluatedProperties sees the same annotations).
    """

    def resolve(ref: str, current: str) -> tuple[Any, str]:
        file, _, pointer = ref.partition("#")
        target = file.removesuffix(".json") if file else current
        node: Any = schemas[target]
        for part in filter(None, pointer.split("/")):
            node = node[part]
        return node, target

    def walk(node: Any, current: str) -> Any:
        if isinstance(node, list):
            return [walk(item, current) for item in node]
        if not isinstance(node, dict):
            return node
        out = {k: walk(v, current) for k, v in node.items() if k not in ("$ref", "$id", "$schema")}
        if "$ref" in node:
            target, file = resolve(node["$ref"], current)
            inlined = walk(target, file)
            if not out:
                return inlined
            out["allOf"] = [*out.get("allOf", []), inlined]
        if out.get("unevaluatedProperties") is False and not _APPLICATORS.intersection(out):
            # Nothing else evaluates properties here, so the cheaper keyword means the same.
            del out["unevaluatedProperties"]
            out["additionalProperties"] = False
        return out

    return {"$schema": schemas[stem]["$schema"], **walk(schemas[stem], stem)}


def bundle() -> dict[str, Any]:
    """One self-contained schema for any podform document (for editors and `podform schema`).

    A compound document: every file embedded under $defs with its own $id, so the kind schemas'
    relative `$ref`s resolve inside it; the document's `kind` selects the kind schema.
    """
    schemas = _schemas()
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": f"{BASE_URI}manifest.json",
        "title": "podform manifest document",
        "description": "Any podform/v1 document; `kind` selects the schema that applies.",
        "$ref": f"{_COMMON}.json",
        "allOf": [
            {
                "if": {"properties": {"kind": {"const": kind}}, "required": ["kind"]},
                "then": {"$ref": f"{kind.lower()}.json"},
            }
            for kind in KINDS
        ],
        "$defs": dict(schemas),
    }


def schema_text(kind: str | None = None) -> str:
    """Pretty JSON for `podform schema [KIND]`: one kind's schema, or with None the bundle.

    KIND is matched case-insensitively; an unknown one raises InvalidInput.
    """
    if kind is None:
        return json.dumps(bundle(), indent=2) + "\n"
    match = {k.lower(): k for k in KINDS}.get(kind.lower())
    if match is None:
        raise InvalidInput([Issue(message=_unknown_kind_message(kind))])
    return json.dumps(_schemas()[match.lower()], indent=2) + "\n"


def validate_documents(docs: Sequence[Document]) -> list[Issue]:
    """Every schema problem of every document, each document's best match first."""
    issues: list[Issue] = []
    for doc in docs:
        issues.extend(validate_document(doc))
    return issues


def validate_document(doc: Document) -> list[Issue]:
    """Schema problems of one document: an unknown kind alone, else all errors of its kind."""
    kind = doc.data.get("kind")
    if kind not in KINDS:
        present = "kind" in doc.data
        message = _unknown_kind_message(kind) if present else "'kind' is a required property"
        if not present:
            message += f"; valid kinds: {', '.join(KINDS)}"
        return [
            Issue(
                message=message,
                location=doc.locate(("kind",)),
                json_path="$.kind" if present else "$",
                subject=doc.subject,
            )
        ]
    from jsonschema.exceptions import relevance  # type: ignore[import-untyped]

    errors = _validators()[kind].iter_errors(doc.data)
    # Shallow errors first (jsonschema's best match), then in document order; for one value,
    # the error that says most plainly what is wrong.
    ranked = sorted(
        errors,
        key=lambda e: (-relevance(e)[0], _sort_path(e.absolute_path), _plainness(e.validator)),
    )
    issues: list[Issue] = []
    seen: set[str] = set()
    for error in ranked:
        for issue in _issues(doc, error):
            # One issue per value: '' fails minLength and the pattern, but one fix cures both.
            if issue.json_path not in seen:
                seen.add(issue.json_path)
                issues.append(issue)
    return issues


def format_json_path(path: Iterable[str | int]) -> str:
    """`$.spec.devices[0]`; keys that are not identifiers are quoted: `$.metadata.labels['a/b']`."""
    out = "$"
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        elif _IDENTIFIER.fullmatch(part):
            out += f".{part}"
        else:
            out += f"[{part!r}]"
    return out


def _unknown_kind_message(kind: object) -> str:
    hint = ""
    if isinstance(kind, str):
        by_lower = {k.lower(): k for k in KINDS}
        close = difflib.get_close_matches(kind.lower(), list(by_lower), n=1, cutoff=0.6)
        if close:
            hint = f" (did you mean {by_lower[close[0]]!r}?)"
    return f"unknown kind {kind!r}{hint}; valid kinds: {', '.join(KINDS)}"


# "should be non-empty" or "is too long" says more than the pattern that also failed.
_PLAIN_FIRST = ("type", "required", "const", "enum", "minLength", "maxLength", "not")


def _plainness(validator: str) -> int:
    return _PLAIN_FIRST.index(validator) if validator in _PLAIN_FIRST else len(_PLAIN_FIRST)


def _sort_path(path: Iterable[str | int]) -> tuple[tuple[int, str], ...]:
    # Mixed str/int paths do not compare directly; tag each part with its type.
    return tuple((0, str(p)) if isinstance(p, int) else (1, p) for p in path)


def _issues(doc: Document, error: Any) -> list[Issue]:
    """The Issues one jsonschema error stands for (an unexpected-keys error gives one per key)."""
    path: list[str | int] = list(error.absolute_path)
    if error.validator in _CLOSED and error.validator_value is False:
        return _unexpected_keys(doc, error, path)
    if error.validator in _COMBINATORS and "description" not in error.schema:
        deep = _best_deep_match(error)
        if deep is not None:
            return _issues(doc, deep)
    is_key = "propertyNames" in error.absolute_schema_path
    if is_key:  # the error is about a mapping key, and error.instance is that key
        path.append(error.instance)
    return [
        Issue(
            message=_message(error, path, is_key),
            location=doc.locate_key(path) if is_key else doc.locate(path),
            json_path=format_json_path(path),
            subject=doc.subject,
        )
    ]


def _unexpected_keys(doc: Document, error: Any, path: list[str | int]) -> list[Issue]:
    known = list(error.schema.get("properties", {}))
    by_lower = {k.lower(): k for k in known}
    issues = []
    for key in error.instance:
        if key in known:
            continue
        close = difflib.get_close_matches(key.lower(), list(by_lower), n=1, cutoff=0.8)
        hint = f"; did you mean {by_lower[close[0]]!r}?" if close else ""
        key_path = [*path, key]
        issues.append(
            Issue(
                message=f"{key!r} is not allowed here{hint}",
                location=doc.locate_key(key_path),
                json_path=format_json_path(key_path),
                subject=doc.subject,
            )
        )
    return issues


def _best_deep_match(error: Any) -> Any:
    """The most specific error under a oneOf/anyOf, or None to keep the error itself.

    Deepest path first, then real constraints over type mismatches (a string that fails a
    pattern says more than "is not of type 'object'"); among equals, the first alternative.
    Ties between pattern errors are left to _message, which names every alternative.
    """
    if not error.context:
        return None

    def rank(e: Any) -> tuple[int, bool, bool]:
        return (len(e.absolute_path), e.validator not in _COMBINATORS, e.validator != "type")

    top = max(rank(e) for e in error.context)
    best = [e for e in error.context if rank(e) == top]
    if len(best) > 1 and all(e.validator == "pattern" for e in best):
        return None
    return best[0]


def _message(error: Any, path: Sequence[str | int], is_key: bool) -> str:
    """jsonschema's message, made kinder where it can be, with secret values masked."""
    instance = error.instance
    shown = repr(instance)
    description = error.schema.get("description")
    if error.validator in _COMBINATORS and description is None and error.context:
        # Only tied pattern alternatives reach here: list what each would have accepted.
        accepted = [e.schema.get("description") or repr(e.validator_value) for e in error.context]
        message = f"{shown} does not match any of: {'; '.join(accepted)}"
    elif error.validator in (*_COMBINATORS, "not") and description:
        message = description if isinstance(instance, dict | list) else f"{shown}: {description}"
    else:
        message = error.message
        if error.validator == "pattern" and description:
            message = f"{shown} is not {description}"  # the words, not the regex
        if (
            error.validator == "type"
            and error.validator_value == "string"
            and isinstance(instance, bool | int | float)
        ):
            message += " (quote it)"
        elif error.validator == "type" and instance is None:
            message += " (the value is empty)"  # `image:` with nothing after it
    if not is_key and is_secret_path(path):
        message = message.replace(shown, repr(MASK))
    else:
        hidden = redact(instance)
        if hidden != instance:
            message = message.replace(shown, repr(hidden))
    return message
