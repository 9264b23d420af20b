"""Canonical JSON, the workload spec hash and the labels podform owns objects by.

A change to what goes into workload_spec() changes every spec-hash and so recreates every
user's containers on upgrade: the golden tests in tests/test_hashing.py pin the values, and
SPEC_VERSION is the one knob to turn on purpose.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from reconciler.manifests.model import Workload
from reconciler.redact import is_secret_key, mask

LABEL_STACK = "io.podform.stack"
LABEL_KIND = "io.podform.kind"
LABEL_NAME = "io.podform.name"
LABEL_REPLICA = "io.podform.replica"
LABEL_SPEC_HASH = "io.podform.spec-hash"
LABEL_CONTENT_HASH = "io.podform.content-hash"
LABEL_PREFIX = "io.podform."

SPEC_VERSION = 1


def canonical_json(value: Any) -> str:
    """Sorted keys, no whitespace, UTF-8 kept: equal values always give equal text."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def sha256_hex(text: str | bytes) -> str:
    data = text.encode() if isinstance(text, str) else text
    return hashlib.sha256(data).hexdigest()


def workload_spec(
    workload: Workload, image_id: str, inputs: dict[str, str] | None = None
) -> dict[str, Any]:
    """Everything that, when changed, needs a new container. Not replicas, state, dependsOn.

    `inputs` are facts from outside the manifest the containers depend on: the keyed HMAC of
    each declared Secret's value and the config hash of each declared Network they join.
    Fields added after SPEC_VERSION 1 appear only when set, so a manifest that does not use
    them keeps its hash (and its containers) across upgrades.
    """
    hc = workload.healthcheck
    spec = {
        "v": SPEC_VERSION,
        "image": image_id,
        "command": list(workload.command) if workload.command is not None else None,
        "args": list(workload.args) if workload.args is not None else None,
        "env": dict(sorted(workload.env.items())),
        "secrets": [[s.name, s.env, s.target] for s in workload.secrets],
        "ports": list(workload.ports),
        "volumes": [[m.source, m.target, list(m.options), m.bind] for m in workload.volumes],
        "devices": list(workload.devices),
        "memory_mib": workload.memory_mib,
        "cpus": workload.cpus,
        "restart": workload.restart,
        "healthcheck": None
        if hc is None
        else {
            "command": list(hc.command),
            "interval_s": hc.interval_s,
            "timeout_s": hc.timeout_s,
            "retries": hc.retries,
            "start_period_s": hc.start_period_s,
        },
        "init": workload.init,
        "stop_timeout_s": workload.stop_timeout_s,
        "network": workload.network,
        "privileged": workload.privileged,
        "cap_add": list(workload.cap_add),
        "labels": dict(sorted(workload.labels.items())),
    }
    later: dict[str, Any] = {
        "options": workload.options.to_spec(),
        "env_file_keys": list(workload.env_file_keys),
        "optional_devices": list(workload.optional_devices),
        "networks": [[a.network, list(a.aliases)] for a in workload.networks],
        "network_target": workload.network_target,
        "secret_sources": [[s.name, s.podman_name] for s in workload.secrets if s.declared],
        "inputs": dict(sorted((inputs or {}).items())),
    }
    spec.update({k: v for k, v in later.items() if v})
    return spec


def spec_hash(spec: dict[str, Any]) -> str:
    return sha256_hex(canonical_json(spec))


def masked_spec(spec: dict[str, Any]) -> dict[str, Any]:
    """The spec as it may be written to disk or shown: secret-looking env values masked."""
    env = spec.get("env")
    if not isinstance(env, dict):
        return spec
    from_files = set(spec.get("env_file_keys") or ())
    return {
        **spec,
        "env": {
            k: mask(v) if is_secret_key(str(k)) or k in from_files else v for k, v in env.items()
        },
    }


def stack_labels(stack: str, kind: str, name: str) -> dict[str, str]:
    return {LABEL_STACK: stack, LABEL_KIND: kind, LABEL_NAME: name}
