"""Networks and secrets in the plan: create, keep, replace, prune and delete them.

Pure, beside planner.py (which calls in here and makes each container depend on the actions
returned). Networks are detected as changed by a config hash label, like containers; secrets
by a keyed HMAC of their value kept in the inventory, since a secret's value can neither be
read back from Podman nor be stored anywhere podform writes.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from reconciler.engine.drift import short
from reconciler.engine.hashing import (
    LABEL_SPEC_HASH,
    LABEL_STACK,
    canonical_json,
    sha256_hex,
    stack_labels,
)
from reconciler.engine.observed import Observed, Recorded
from reconciler.engine.plan import (
    Action,
    Change,
    NetworkWork,
    RemoveWork,
    SecretWork,
    Verb,
    network_action_id,
    secret_action_id,
)
from reconciler.manifests.model import DEFAULT_CONNECTION, Desired, Network, Workload


def network_hash(network: Network) -> str:
    return sha256_hex(canonical_json(network.config()))


@dataclass
class Shared:
    """What the container actions need from here: action ids to wait for, and the facts
    (network config hashes, secret HMACs) that go into their spec hash."""

    actions: list[Action] = field(default_factory=list)
    action_ids: dict[tuple[str, str], str] = field(default_factory=dict)  # (conn, podman name)
    inputs: dict[str, str] = field(default_factory=dict)  # "network:x"/"secret:x" -> hash
    errors: list[str] = field(default_factory=list)

    def for_workload(self, w: Workload) -> tuple[tuple[str, ...], dict[str, str]]:
        """(action ids the workload's containers wait for, inputs of its spec hash)."""
        deps: list[str] = []
        inputs: dict[str, str] = {}
        for a in w.networks:
            if (w.connection, a.network) in self.action_ids:
                deps.append(self.action_ids[(w.connection, a.network)])
            if a.declared:
                inputs[f"network:{a.declared}"] = self.inputs.get(f"network:{a.declared}", "")
        for s in w.secrets:
            if s.declared:
                if (w.connection, s.podman_name) in self.action_ids:
                    deps.append(self.action_ids[(w.connection, s.podman_name)])
                inputs[f"secret:{s.name}"] = self.inputs.get(f"secret:{s.name}", "")
        return tuple(deps), inputs


def plan_shared(
    desired: Desired,
    observed: Observed,
    recorded: Recorded,
    digests: dict[str, str],
    machine_deps: dict[str, tuple[str, ...]],
) -> Shared:
    """Networks, then secrets, on every connection that uses them."""
    out = Shared()
    stack = desired.stack.name
    for (conn, name), net in sorted(desired.used_networks().items()):
        if conn in observed.errors:
            continue
        want = network_hash(net)
        if name != stack:  # a declared Network (the stack network is `<stack>` itself)
            out.inputs[f"network:{net.name}"] = want
        aid = network_action_id(conn, name)
        labels = stack_labels(stack, "Network", net.name) | net.labels | {LABEL_SPEC_HASH: want}
        work = NetworkWork(name, labels, net.internal, net.dns, net.subnet, net.driver)
        found = next((n for n in observed.networks.get(conn, []) if n.name == name), None)
        deps = machine_deps.get(conn, ())
        users = sorted(w.name for w in desired.workloads.values() if _joins(w, conn, name))
        used_by = f"used by {', '.join(users)}" if users else "declared"
        if found is None:
            out.actions.append(
                Action(
                    aid,
                    "Network",
                    name,
                    Verb.CREATE,
                    "create",
                    f"{used_by}; does not exist",
                    conn,
                    (),
                    deps,
                    work,
                )
            )
            out.action_ids[(conn, name)] = aid
        elif found.labels.get(LABEL_STACK) != stack:
            out.actions.append(
                Action(
                    aid,
                    "Network",
                    name,
                    Verb.UNCHANGED,
                    "none",
                    "exists (not created by this stack; left as is)",
                    conn,
                )
            )
        elif found.labels.get(LABEL_SPEC_HASH, "") != want:
            have = found.labels.get(LABEL_SPEC_HASH, "")
            out.actions.append(
                Action(
                    aid,
                    "Network",
                    name,
                    Verb.REPLACE,
                    "replace",
                    "settings changed (a network cannot change in place: its containers are recreated)",
                    conn,
                    (Change("spec-hash", short(have) or None, short(want)),),
                    deps,
                    work,
                )
            )
            out.action_ids[(conn, name)] = aid
        else:
            out.actions.append(
                Action(
                    aid,
                    "Network",
                    name,
                    Verb.UNCHANGED,
                    "none",
                    f"up to date (spec {short(want)})",
                    conn,
                )
            )
    _plan_secrets(desired, observed, recorded, digests, machine_deps, out)
    return out


def _joins(w: Workload, conn: str, network: str) -> bool:
    return w.connection == conn and any(a.network == network for a in w.networks)


def secret_places(desired: Desired) -> dict[tuple[str, str], str]:
    """(connection, Podman secret name) -> Secret name, wherever a workload uses it."""
    out: dict[tuple[str, str], str] = {}
    for w in desired.workloads.values():
        for s in w.secrets:
            if s.declared:
                out[(w.connection, s.podman_name)] = s.name
    placed = set(out.values())
    for decl in desired.secrets.values():
        if decl.name not in placed:
            out[(DEFAULT_CONNECTION, decl.podman_name)] = decl.name
    return out


def _plan_secrets(
    desired: Desired,
    observed: Observed,
    recorded: Recorded,
    digests: dict[str, str],
    machine_deps: dict[str, tuple[str, ...]],
    out: Shared,
) -> None:
    stack = desired.stack.name
    for (conn, name), decl in sorted(secret_places(desired).items()):
        if conn in observed.errors:
            continue
        secret = desired.secrets[decl]
        digest = digests.get(decl, "")
        out.inputs[f"secret:{decl}"] = digest
        aid = secret_action_id(conn, name)
        source = f"file {secret.file}" if secret.file else f"env {secret.env}"
        work = SecretWork(
            name,
            stack_labels(stack, "Secret", decl) | secret.labels,
            str(secret.file) if secret.file else None,
            secret.env,
            digest,
        )
        found = next((s for s in observed.secrets.get(conn, []) if s.name == name), None)
        rec = recorded.secrets.get(f"{conn}:{name}")
        deps = machine_deps.get(conn, ())
        if found is None:
            verb, op, reason = Verb.CREATE, "create", f"from {source}; does not exist"
        elif rec is None or rec.get("id") != found.id:
            # Not created by podform (or not recorded): a Podman secret by that name is someone
            # else's, and its value cannot be compared.
            out.errors.append(
                f"secret {name} already exists and was not created by podform for this stack; "
                "rename or remove it"
            )
            continue
        elif rec.get("hmac") != digest:
            verb, op, reason = Verb.REPLACE, "replace", f"value from {source} changed"
        else:
            out.actions.append(
                Action(
                    aid,
                    "Secret",
                    name,
                    Verb.UNCHANGED,
                    "none",
                    f"value from {source} unchanged",
                    conn,
                )
            )
            continue
        out.actions.append(Action(aid, "Secret", name, verb, op, reason, conn, (), deps, work))
        out.action_ids[(conn, name)] = aid


def prune_shared(
    desired: Desired,
    observed: Observed,
    recorded: Recorded,
    after: tuple[str, ...],
    deleted_containers: set[str],
    reason: str,
    only: set[tuple[str, str]] | None = None,
) -> tuple[list[Action], list[str]]:
    """Delete actions for networks and secrets podform created for this stack (inventory
    and, for networks, labels) that are no longer wanted: not in use by `desired` or, when
    `only` is given, exactly those. A network a remaining container is attached to stays."""
    stack = desired.stack.name
    wanted_nets = set(desired.used_networks())
    wanted_secrets = set(secret_places(desired))
    actions: list[Action] = []
    warnings: list[str] = []
    for _key, rec in sorted(recorded.networks.items()):
        conn, name = rec.get("connection", ""), rec.get("name", "")
        place = (conn, name)
        if (place in wanted_nets) if only is None else (place not in only):
            continue
        found = next((n for n in observed.networks.get(conn, []) if n.name == name), None)
        if found is None or found.labels.get(LABEL_STACK) != stack:
            continue
        users = [
            c.name
            for c in observed.containers.get(conn, [])
            if name in c.networks and c.name not in deleted_containers
        ]
        if users:
            warnings.append(
                f"network {name} is still used by {', '.join(sorted(users))}: left alone"
            )
            continue
        actions.append(
            Action(
                network_action_id(conn, name),
                "Network",
                name,
                Verb.DELETE,
                "remove",
                reason,
                conn,
                (),
                after,
                RemoveWork(name, name, 0.0),
            )
        )
    for _key, rec in sorted(recorded.secrets.items()):
        conn, name = rec.get("connection", ""), rec.get("name", "")
        place = (conn, name)
        if (place in wanted_secrets) if only is None else (place not in only):
            continue
        secret = next((s for s in observed.secrets.get(conn, []) if s.name == name), None)
        if secret is None or secret.id != rec.get("id"):
            continue
        actions.append(
            Action(
                secret_action_id(conn, name),
                "Secret",
                name,
                Verb.DELETE,
                "remove",
                reason,
                conn,
                (),
                after,
                RemoveWork(name, secret.id, 0.0),
            )
        )
    return actions, warnings
