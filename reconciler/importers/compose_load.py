"""Compose files read as compose reads them: YAML, `.env`, interpolation, normalising, merging.

First step of `podform import compose`; compose_map.py turns the result into podform documents.
The rules are the Compose Specification's, checked against what `podman-compose config` prints
for the same files (tests/test_import_compose_corpus.py):
- every file is parsed (YAML 1.1, as PyYAML and podman-compose read it; `!reset` and `!override`
  understood), interpolated on its own, normalised (`environment`/`labels` lists become mappings,
  `depends_on` lists become mappings with `condition: service_started`) and merged into the
  files before it: mappings key by key, sequences appended, `command`/`entrypoint`/
  `healthcheck.test` replaced, `volumes` unique by target, `ports` and `secrets` without
  duplicates;
- interpolation (compose_env.py): `$VAR`, `${VAR}`, `${VAR-d}`, `${VAR:-d}`, `${VAR+r}`, `${VAR:+r}`, `${VAR?e}`,
  `${VAR:?e}`, `$$`; values come from the environment, then the `.env` beside the first file (or
  `--env-file`), whose own values may use `${...}` too;
- project name: `-p`, else COMPOSE_PROJECT_NAME, else `name:`, else the first file's folder;
- services whose `profiles` are not in COMPOSE_PROFILES are left out (and reported);
- relative paths stay relative to the first file's folder (compose's project directory).
Pure apart from reading the compose and env files.
"""

from __future__ import annotations

import difflib
import os
import re
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from reconciler.importers.compose_env import ComposeError, interpolate, read_env_file

_PROJECT_NAME_DROP = re.compile(r"[^a-z0-9_-]")
# The service keys of the Compose Specification's schema (compose-spec.json): anything else is a
# typo, refused as compose refuses it, instead of a warning that is easy to miss.
SERVICE_KEYS = frozenset(
    {
        "annotations", "attach", "blkio_config", "build", "cap_add", "cap_drop", "cgroup",
        "cgroup_parent", "command", "configs", "container_name", "cpu_count", "cpu_percent",
        "cpu_period", "cpu_quota", "cpu_rt_period", "cpu_rt_runtime", "cpu_shares", "cpus", "cpuset",
        "credential_spec", "depends_on", "deploy", "develop", "device_cgroup_rules", "devices", "dns",
        "dns_opt", "dns_search", "domainname", "entrypoint", "env_file", "environment", "expose",
        "extends", "external_links", "extra_hosts", "gpus", "group_add", "healthcheck", "hostname",
        "image", "init", "ipc", "isolation", "label_file", "labels", "links", "logging",
        "mac_address", "mem_limit", "mem_reservation", "mem_swappiness", "memswap_limit", "models",
        "network_mode", "networks", "oom_kill_disable", "oom_score_adj", "pid", "pids_limit",
        "platform", "ports", "post_start", "pre_stop", "privileged", "profiles", "provider",
        "pull_policy", "pull_refresh_after", "read_only", "restart", "runtime", "scale", "secrets",
        "security_opt", "shm_size", "stdin_open", "stop_grace_period", "stop_signal", "storage_opt",
        "sysctls", "tmpfs", "tty", "ulimits", "use_api_socket", "user", "userns_mode", "uts",
        "volumes", "volumes_from", "working_dir",
    }
)  # fmt: skip


@dataclass(frozen=True)
class ComposeProject:
    """The merged compose model of one project, ready for mapping."""

    name: str
    project_dir: Path  # the first file's folder: relative paths resolve against it
    files: tuple[Path, ...]
    services: dict[str, dict[str, Any]]
    volumes: dict[str, dict[str, Any]]
    networks: dict[str, dict[str, Any]]
    secrets: dict[str, dict[str, Any]]
    configs: dict[str, dict[str, Any]]
    environ: Mapping[str, str]  # what interpolation saw (environment over .env)
    skipped: dict[str, list[str]] = field(default_factory=dict)  # service -> inactive profiles
    top_level_dropped: list[str] = field(default_factory=list)  # top-level keys with no meaning


class _Reset:
    """`!reset`: remove what the earlier files set."""


@dataclass
class _Override:
    """`!override VALUE`: replace, do not merge."""

    value: Any


class _ComposeYaml(yaml.SafeLoader):
    """PyYAML's safe loader plus compose's two merge tags (a subclass: no global registration)."""


def _reset(_loader: yaml.SafeLoader, _node: yaml.Node) -> _Reset:
    return _Reset()


def _override(loader: yaml.SafeLoader, node: yaml.Node) -> _Override:
    if isinstance(node, yaml.MappingNode):
        return _Override(loader.construct_mapping(node, deep=True))
    if isinstance(node, yaml.SequenceNode):
        return _Override(loader.construct_sequence(node, deep=True))
    return _Override(loader.construct_scalar(node))  # type: ignore[arg-type]


_ComposeYaml.add_constructor("!reset", _reset)
_ComposeYaml.add_constructor("!override", _override)


def _interpolate_tree(node: Any, env: Mapping[str, str], where: str) -> Any:
    if isinstance(node, str):
        return interpolate(node, env, where)
    if isinstance(node, dict):
        return {k: _interpolate_tree(v, env, f"{where}{k}: ") for k, v in node.items()}
    if isinstance(node, list):
        return [_interpolate_tree(v, env, where) for v in node]
    if isinstance(node, _Override):
        return _Override(_interpolate_tree(node.value, env, where))
    return node


# --- normalising and merging -------------------------------------------------------------------


def _as_dict(value: Any, where: str) -> dict[str, Any]:
    """A compose `KEY=VALUE` list or mapping as a mapping (a bare KEY maps to None)."""
    if value is None:
        return {}
    if isinstance(value, dict):
        return dict(value)
    if isinstance(value, list):
        out: dict[str, Any] = {}
        for item in value:
            if not isinstance(item, str):
                raise ComposeError(f"{where}: expected KEY=VALUE strings, got {item!r}")
            key, sep, val = item.partition("=")
            out[key] = val if sep else None
        return out
    if isinstance(value, str):
        return _as_dict([value], where)
    raise ComposeError(f"{where}: expected a mapping or a list, got {value!r}")


def _normalise_service(service: dict[str, Any], where: str) -> dict[str, Any]:
    for key in ("environment", "labels"):
        if key in service and not isinstance(service[key], (_Reset, _Override)):
            service[key] = _as_dict(service[key], f"{where}.{key}")
    build = service.get("build")
    if isinstance(build, str):
        service["build"] = {"context": build}
    if isinstance(service.get("build"), dict) and "args" in service["build"]:
        service["build"]["args"] = _as_dict(service["build"]["args"], f"{where}.build.args")
    for key in ("env_file", "volumes", "security_opt", "dns", "tmpfs"):
        if isinstance(service.get(key), str):
            service[key] = [service[key]]
    for key in ("command", "entrypoint"):
        if isinstance(service.get(key), str):
            service[key] = shlex.split(service[key])
    deps = service.get("depends_on")
    if isinstance(deps, (str, list)):
        deps = [deps] if isinstance(deps, str) else deps
        service["depends_on"] = {d: {"condition": "service_started"} for d in deps}
    elif isinstance(deps, dict):
        for dep in deps.values():
            if isinstance(dep, dict):
                dep.setdefault("condition", "service_started")
    if isinstance(service.get("extends"), str):
        service["extends"] = {"service": service["extends"]}
    return service


def volume_target(volume: Any) -> str | None:
    """Where a service volume (short or long syntax) is mounted inside the container."""
    if isinstance(volume, dict):
        target = volume.get("target")
        return str(target) if target is not None else None
    if isinstance(volume, str):
        parts = volume.split(":")
        return parts[1] if len(parts) > 1 else parts[0]
    return None


def _unique_by(items: list[Any], key: Any) -> list[Any]:
    """Later entries replace earlier ones with the same key, in the earlier one's place."""
    out: list[Any] = []
    index: dict[Any, int] = {}
    for item in items:
        k = key(item)
        if k is not None and k in index:
            out[index[k]] = item
            continue
        if k is not None:
            index[k] = len(out)
        out.append(item)
    return out


def _secret_target(item: Any) -> Any:
    if isinstance(item, dict):
        return item.get("target") or item.get("source")
    return item


def _merge_lists(key: str, old: list[Any], new: list[Any], in_service: bool) -> list[Any]:
    merged = old + new
    if not in_service:
        return merged
    if key == "volumes":
        return _unique_by(merged, volume_target)
    if key in ("secrets", "configs"):
        return _unique_by(merged, _secret_target)
    if key == "ports":
        return _unique_by(merged, repr)  # identical entries once; ports unique by their spec
    return merged


def _merge(base: dict[str, Any], over: dict[str, Any], path: tuple[str, ...]) -> dict[str, Any]:
    in_service = len(path) == 2 and path[0] == "services"
    for key, value in over.items():
        if isinstance(value, _Reset):
            base.pop(key, None)
            continue
        if isinstance(value, _Override):
            base[key] = value.value
            continue
        old = base.get(key)
        replace = (in_service and key in ("command", "entrypoint")) or (
            path[-1:] == ("healthcheck",) and key == "test"
        )
        if old is None or replace:
            base[key] = value
        elif isinstance(old, dict) and isinstance(value, dict):
            _merge(old, value, (*path, key))
        elif isinstance(old, list) and isinstance(value, list):
            base[key] = _merge_lists(key, old, value, in_service)
        else:
            base[key] = value
    return base


def _strip_tags(node: Any) -> Any:
    if isinstance(node, _Override):
        return _strip_tags(node.value)
    if isinstance(node, dict):
        return {k: _strip_tags(v) for k, v in node.items() if not isinstance(v, _Reset)}
    if isinstance(node, list):
        return [_strip_tags(v) for v in node]
    return node


# --- loading ---------------------------------------------------------------------------------


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ComposeError(f"cannot read {path}: {exc.strerror or exc}") from exc
    except UnicodeDecodeError as exc:
        raise ComposeError(f"{path}: not UTF-8 text") from exc
    try:
        data = yaml.load(text, Loader=_ComposeYaml)  # a SafeLoader subclass
    except yaml.MarkedYAMLError as exc:
        # One line at file:line:col, not PyYAML's block naming "<unicode string>".
        mark = exc.problem_mark or exc.context_mark
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else str(path)
        problem = exc.problem or exc.context or "not YAML"
        raise ComposeError(f"{where}: invalid YAML: {problem}") from exc
    except yaml.YAMLError as exc:
        raise ComposeError(f"{path}: invalid YAML: {exc}") from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ComposeError(f"{path}: a compose file is a mapping at the top level")
    return data


def _prepare(path: Path, env: Mapping[str, str]) -> dict[str, Any]:
    data = _interpolate_tree(_read_yaml(path), env, f"{path}: ")
    services = data.get("services")
    if isinstance(services, dict):
        for name, service in services.items():
            body = service.value if isinstance(service, _Override) else service
            if isinstance(body, dict):
                _normalise_service(body, f"{path}: services.{name}")
            elif body is None:
                services[name] = {}
    return data  # type: ignore[no-any-return]


def _resolve_extends(
    services: dict[str, dict[str, Any]], env: Mapping[str, str], base_dir: Path
) -> None:
    done: set[str] = set()

    def resolve(name: str, chain: tuple[str, ...]) -> dict[str, Any]:
        service = services[name]
        if name in done or "extends" not in service:
            done.add(name)
            return service
        if name in chain:
            raise ComposeError(f"services.{name}.extends: circular ({' -> '.join(chain)})")
        ext = service["extends"]
        parent_name = str(ext.get("service", ""))
        if ext.get("file"):
            other = _prepare(base_dir / str(ext["file"]), env).get("services") or {}
            if parent_name not in other:
                raise ComposeError(f"services.{name}.extends: no service {parent_name!r}")
            parent = _strip_tags(other[parent_name])
        else:
            if parent_name not in services:
                raise ComposeError(f"services.{name}.extends: no service {parent_name!r}")
            parent = resolve(parent_name, (*chain, name))
        merged = _merge(
            _copy({k: v for k, v in parent.items() if k != "extends"}),
            {k: v for k, v in service.items() if k != "extends"},
            ("services", name),
        )
        services[name] = merged
        done.add(name)
        return merged

    for name in list(services):
        resolve(name, ())


def _copy(node: Any) -> Any:
    if isinstance(node, dict):
        return {k: _copy(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_copy(v) for v in node]
    return node


def project_name_from(raw: str) -> str:
    """Compose's normalisation of a project name: lowercase, only a-z 0-9 `_` `-`."""
    return _PROJECT_NAME_DROP.sub("", raw.lower())


def load_compose(
    files: Sequence[Path],
    *,
    environ: Mapping[str, str],
    env_file: Path | None = None,
    project_name: str | None = None,
) -> ComposeProject:
    """Read, interpolate and merge `files` (base first) the way compose does."""
    if not files:
        raise ComposeError("no compose file given")
    paths = tuple(Path(f) for f in files)
    project_dir = Path(os.path.realpath(paths[0])).parent
    dotenv_path = env_file if env_file is not None else project_dir / ".env"
    dotenv = read_env_file(dotenv_path, environ) if dotenv_path.is_file() else {}
    if env_file is not None and not env_file.is_file():
        raise ComposeError(f"env file {env_file} not found")
    env: dict[str, str] = {**dotenv, **environ}

    merged: dict[str, Any] = {}
    for path in paths:
        _merge(merged, _prepare(path, env), ())
    merged = _strip_tags(merged)

    raw_name = project_name or env.get("COMPOSE_PROJECT_NAME") or merged.get("name")
    name = project_name_from(str(raw_name or project_dir.name))
    if not name:
        raise ComposeError(f"project name {raw_name!r} is empty once normalised; pass -p NAME")

    services = merged.get("services") or {}
    if not isinstance(services, dict):
        raise ComposeError("services: expected a mapping")
    unknown: list[str] = []
    for svc, body in services.items():
        if not isinstance(body, dict):
            raise ComposeError(f"services.{svc}: expected a mapping, got {body!r}")
        for key in body:
            if key not in SERVICE_KEYS and not str(key).startswith("x-"):
                near = difflib.get_close_matches(str(key), SERVICE_KEYS, n=1)
                hint = f" (did you mean {near[0]!r}?)" if near else ""
                unknown.append(f"services.{svc}.{key}: not a Compose Specification key{hint}")
    if unknown:
        raise ComposeError("; ".join(unknown))
    _resolve_extends(services, env, project_dir)
    active = {p.strip() for p in env.get("COMPOSE_PROFILES", "").split(",") if p.strip()}
    kept: dict[str, dict[str, Any]] = {}
    skipped: dict[str, list[str]] = {}
    for svc, body in services.items():
        profiles = [str(p) for p in body.get("profiles") or []]
        if profiles and not active.intersection(profiles):
            skipped[svc] = profiles
        else:
            kept[svc] = body

    known = {"version", "name", "services", "volumes", "networks", "secrets", "configs"}
    return ComposeProject(
        name=name,
        project_dir=project_dir,
        files=paths,
        services=kept,
        volumes=_section(merged, "volumes"),
        networks=_section(merged, "networks"),
        secrets=_section(merged, "secrets"),
        configs=_section(merged, "configs"),
        environ=env,
        skipped=skipped,
        top_level_dropped=sorted(k for k in merged if k not in known),
    )


def _section(merged: dict[str, Any], key: str) -> dict[str, dict[str, Any]]:
    section = merged.get(key) or {}
    if not isinstance(section, dict):
        raise ComposeError(f"{key}: expected a mapping")
    return {k: (v if isinstance(v, dict) else {}) for k, v in section.items()}
