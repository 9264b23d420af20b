"""Compose's variables: `${...}` interpolation and `.env` files.

Used by compose_load.py on every string of every compose file before merging. The grammar is the
Compose Specification's, and tests check it against podman-compose's own `var_interpolate`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path

from reconciler.errors import PodformError

_NAME_START = re.compile(r"[A-Za-z_]")
_NAME_CHARS = re.compile(r"[A-Za-z0-9_]*")
_OPERATORS = (":-", ":?", ":+", "-", "?", "+")


class ComposeError(PodformError):
    """A compose file that compose itself would refuse: bad YAML, a required variable unset, ..."""


def interpolate(text: str, env: Mapping[str, str], where: str = "") -> str:
    """`text` with compose's `${...}` expressions replaced from `env`; `$$` is a literal `$`."""
    out: list[str] = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c != "$" or i + 1 >= n:
            out.append(c)
            i += 1
            continue
        nxt = text[i + 1]
        if nxt == "$":
            out.append("$")
            i += 2
        elif nxt == "{":
            end = _closing_brace(text, i + 2, where)
            out.append(_resolve(text[i + 2 : end], env, where))
            i = end + 1
        elif _NAME_START.match(nxt):
            m = _NAME_CHARS.match(text, i + 2)
            end = m.end() if m else i + 2
            out.append(env.get(text[i + 1 : end], ""))
            i = end
        else:
            out.append(c)
            i += 1
    return "".join(out)


def _closing_brace(text: str, start: int, where: str) -> int:
    depth = 1
    for j in range(start, len(text)):
        if text[j] == "{":
            depth += 1
        elif text[j] == "}":
            depth -= 1
            if depth == 0:
                return j
    raise ComposeError(f"{where}invalid interpolation {text!r}: no closing '}}'")


def _resolve(content: str, env: Mapping[str, str], where: str) -> str:
    if not content or not _NAME_START.match(content):
        raise ComposeError(
            f"{where}invalid interpolation format ${{{content}}}: write $$ for a literal $"
        )
    m = _NAME_CHARS.match(content, 1)
    end = m.end() if m else 1
    name, rest = content[:end], content[end:]
    value = env.get(name)
    if not rest:
        return value or ""
    op = next((o for o in _OPERATORS if rest.startswith(o)), None)
    if op is None:
        raise ComposeError(f"{where}invalid interpolation format ${{{content}}}")
    operand = rest[len(op) :]
    if op in (":?", "?"):
        if value is None or (op == ":?" and value == ""):
            message = interpolate(operand, env, where) or "required variable is not set"
            raise ComposeError(f"{where}required variable {name} is missing a value: {message}")
        return value
    if op == ":-":
        return value if value else interpolate(operand, env, where)
    if op == "-":
        return value if value is not None else interpolate(operand, env, where)
    if op == ":+":
        return interpolate(operand, env, where) if value else ""
    return interpolate(operand, env, where) if value is not None else ""  # "+"


def read_env_file(path: Path, environ: Mapping[str, str]) -> dict[str, str]:
    """KEY=VALUE lines as compose (and python-dotenv) read them; `${VAR}` works in values."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ComposeError(f"cannot read env file {path}: {exc.strerror or exc}") from exc
    values: dict[str, str] = {}
    for lineno, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        line = line.removeprefix("export ").lstrip()
        key, sep, value = line.partition("=")
        key = key.strip()
        if not sep or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_.-]*", key):
            raise ComposeError(f"{path}:{lineno}: expected KEY=VALUE")
        value = value.strip()
        lookup = {**values, **environ}
        if value[:1] == "'" and value.rfind("'") > 0:
            value = value[1 : value.rfind("'")]
        elif value[:1] == '"' and value.rfind('"') > 0:
            inner = value[1 : value.rfind('"')]
            inner = inner.replace("\\n", "\n").replace('\\"', '"')
            value = interpolate(inner, lookup, f"{path}:{lineno}: ")
        else:
            value = re.split(r"\s+#", value, maxsplit=1)[0].strip()
            value = interpolate(value, lookup, f"{path}:{lineno}: ")
        values[key] = value
    return values
