"""The JSON Schemas in schemas/ and the validation that turns their errors into located Issues."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from reconciler.errors import InvalidInput, Issue, Location
from reconciler.manifests import schema
from reconciler.manifests.loader import Document, JsonPath, load_manifests
from reconciler.redact import MASK, is_secret_key, is_secret_path, mask, redact

REPO_SCHEMAS = Path(__file__).parent.parent / "schemas"
SCHEMA_FILES = sorted(REPO_SCHEMAS.glob("*.json"))
SENTINEL = "sk-live-SENTINEL-4242"


def make_doc(data: dict[str, Any], file: str = "m.yaml") -> Document:
    """A Document whose nodes sit on consecutive lines, as a block-style YAML file would.

    Each mapping entry or sequence item takes one line; a key starts at its nesting depth's
    column and its value two columns after the key, so key and value locations differ.
    """
    positions: dict[JsonPath, Location] = {(): Location(file, 1, 1)}
    key_positions: dict[JsonPath, Location] = {}
    line = 0

    def walk(node: Any, path: JsonPath, col: int) -> None:
        nonlocal line
        items = node.items() if isinstance(node, dict) else enumerate(node)
        for key, value in items:
            line += 1
            child = (*path, key)
            if isinstance(node, dict):
                key_positions[child] = Location(file, line, col)
                positions[child] = Location(file, line, col + len(key) + 2)
            else:
                positions[child] = Location(file, line, col + 2)
            if isinstance(value, dict | list):
                walk(value, child, col + 2)

    walk(data, (), 1)
    return Document(file, 0, data, Path("."), positions, key_positions)


def envelope(kind: str, spec: dict[str, Any] | None, name: str = "web") -> dict[str, Any]:
    data: dict[str, Any] = {"apiVersion": "podform/v1", "kind": kind, "metadata": {"name": name}}
    if spec is not None:
        data["spec"] = spec
    return data


VALID: dict[str, dict[str, Any]] = {
    "Stack": envelope("Stack", {"prune": False, "policy": {"allowPrivileged": False}}, "llm"),
    "Machine": envelope(
        "Machine",
        {
            "provider": "libkrun",
            "cpus": 6,
            "memory": "12GiB",
            "diskSize": "100GiB",
            "rootful": True,
            "volumes": ["~/models:/models:ro"],
            "state": "running",
        },
        "gpu",
    ),
    "Image": envelope(
        "Image",
        {
            "machine": "gpu",
            "ref": "localhost/llama-vulkan:latest",
            "build": {
                "context": "./llama",
                "containerfile": "Containerfile",
                "args": {"LLAMA_VULKAN": "ON"},
                "target": "runtime",
            },
        },
        "llama-vulkan",
    ),
    "DeviceMapping": envelope(
        "DeviceMapping",
        {
            "devices": [
                "/dev/dri",
                "nvidia.com/gpu=all",
                "/dev/zero:/dev/dri/renderD128:rw",
                {"path": "/dev/kfd", "optional": True},
            ],
            "providers": ["libkrun", "native"],
            "env": {"GGML_VK_VISIBLE_DEVICES": "0"},
            "probe": {
                "command": ["vulkaninfo", "--summary"],
                "expect": "Virtio-GPU Venus",
                "timeout": "30s",
            },
        },
        "apple-gpu",
    ),
    "Network": envelope(
        "Network",
        {"internal": False, "dns": True, "subnet": "10.89.7.0/24", "driver": "bridge"},
        "backend",
    ),
    "Secret": envelope("Secret", {"file": "./secrets/hf-token"}, "hf-token"),
    "Workload": {
        **envelope(
            "Workload",
            {
                "machine": "gpu",
                "image": "llama-vulkan",
                "command": ["/llama/llama-server"],
                "args": ["-m", "/models/m.gguf", "-ngl", "32"],
                "env": {"LLAMA_LOG": "info"},
                "secrets": [{"name": "hf-token", "env": "HF_TOKEN"}, {"name": "c", "target": "/c"}],
                "ports": [
                    "8080:8080",
                    "127.0.0.1:9000:9000/tcp",
                    9100,
                    "53/udp",
                    "127.0.0.1::81",
                    "[::1]:80:80",
                ],
                "volumes": ["models:/models:ro", "./data:/data", "../x:/x", "/srv:/srv:rw,z"],
                "devices": ["apple-gpu", "/dev/dri", "nvidia.com/gpu=0"],
                "resources": {"memory": 8192, "cpus": 0.5},
                "restart": "unless-stopped",
                "healthcheck": {
                    "command": ["curl", "-f", "localhost:8080/health"],
                    "interval": "30s",
                    "timeout": "5s",
                    "retries": 3,
                    "startPeriod": "1m30s",
                },
                "dependsOn": ["cache", {"name": "db", "condition": "healthy"}],
                "replicas": 0,
                "init": False,
                "stopTimeout": "10s",
                "network": "bridge",
                "privileged": False,
                "capAdd": ["NET_BIND_SERVICE"],
                "capDrop": ["ALL"],
                "user": "1000:1000",
                "groupAdd": ["video", 44],
                "userns": "keep-id",
                "securityOpt": ["label=disable", "no-new-privileges"],
                "shmSize": "8GiB",
                "ipc": "private",
                "ulimits": {"nofile": 65536, "memlock": -1, "nproc": "1024:2048"},
                "pidsLimit": 4096,
                "readOnly": False,
                "tmpfs": ["/tmp:size=1g"],
                "workdir": "/app",
                "hostname": "api",
                "extraHosts": ["gateway:host-gateway", "db:10.0.0.2"],
                "dns": ["192.168.1.1"],
                "envFile": ["./api.env"],
                "stopSignal": "SIGINT",
                "logging": {"driver": "k8s-file", "options": {"max-size": "10m"}},
                "state": "running",
            },
            "llama",
        ),
        "metadata": {"name": "llama", "labels": {"team": "ml", "example.com/tier": "gpu-1"}},
    },
}


def issues_for(data: dict[str, Any]) -> list[Issue]:
    return schema.validate_documents([make_doc(data)])


def with_value(kind: str, path: JsonPath, value: Any) -> dict[str, Any]:
    """VALID[kind] with the node at `path` set to `value`."""
    data = copy.deepcopy(VALID[kind])
    node: Any = data
    for part in path[:-1]:
        node = node[part]
    node[path[-1]] = value
    return data


# --- the schema files ---------------------------------------------------------------------


@pytest.mark.parametrize("path", SCHEMA_FILES, ids=lambda p: p.name)
def test_schema_file_is_a_valid_draft_2020_12_schema(path: Path) -> None:
    """Each schema file passes the 2020-12 metaschema and carries its $schema and $id."""
    contents = json.loads(path.read_text())
    Draft202012Validator.check_schema(contents)
    assert contents["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert contents["$id"] == f"https://podform.dev/schemas/v1/{path.name}"


def test_there_is_one_schema_file_per_kind_plus_the_envelope() -> None:
    """schemas/ holds common.json and exactly one file per kind."""
    assert {p.stem for p in SCHEMA_FILES} == {"common", *(k.lower() for k in schema.KINDS)}


def test_every_ref_points_at_a_local_file() -> None:
    """No $ref leaves schemas/, so validation never needs the network."""

    def refs(node: Any) -> list[str]:
        if isinstance(node, dict):
            own = [node["$ref"]] if "$ref" in node else []
            return own + [r for v in node.values() for r in refs(v)]
        return [r for v in node for r in refs(v)] if isinstance(node, list) else []

    found = [r for p in SCHEMA_FILES for r in refs(json.loads(p.read_text()))]
    assert found
    for ref in found:
        file = ref.partition("#")[0]
        assert "://" not in ref
        assert not file or (REPO_SCHEMAS / file).is_file(), ref


def test_installed_schemas_are_preferred_over_the_repository_copy(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """schema_dir() looks next to the package (wheel layout) first, then at the repo's schemas/."""
    installed, repo = tmp_path / "installed", tmp_path / "repo"
    for d in (installed, repo):
        d.mkdir()
        (d / "common.json").write_text("{}")
    monkeypatch.setattr(schema, "_SCHEMA_DIRS", (installed, repo))
    assert schema.schema_dir() == installed
    (installed / "common.json").unlink()
    assert schema.schema_dir() == repo


# --- valid documents and schema_text ------------------------------------------------------


@pytest.mark.parametrize("kind", schema.KINDS)
def test_a_full_valid_document_of_every_kind_passes(kind: str) -> None:
    """The spec's example of each kind, with every field set, gives no issue."""
    assert issues_for(VALID[kind]) == []


@pytest.mark.parametrize(
    "data",
    [
        envelope("Stack", None, "default"),
        envelope("Machine", None, "m"),
        envelope("Image", {"pull": {}}, "busybox"),
        envelope("DeviceMapping", {"devices": ["/dev/kfd"]}, "amd"),
        envelope("Workload", {"image": "docker.io/library/busybox:1.36"}, "w"),
    ],
    ids=lambda d: d["kind"],
)
def test_a_minimal_document_of_every_kind_passes(data: dict[str, Any]) -> None:
    """Only the required fields: Stack and Machine need no spec at all."""
    assert issues_for(data) == []


def test_schema_text_of_a_kind_is_that_schema_file() -> None:
    """`podform schema workload` prints workload.json (kind matched case-insensitively)."""
    expected = json.loads((REPO_SCHEMAS / "workload.json").read_text())
    assert json.loads(schema.schema_text("workload")) == expected
    assert schema.schema_text("Workload") == schema.schema_text("WORKLOAD")


def test_schema_text_of_an_unknown_kind_is_invalid_input() -> None:
    """An unknown KIND is a user error that names the valid kinds."""
    with pytest.raises(InvalidInput, match=r"unknown kind 'Pod'.*Workload"):
        schema.schema_text("Pod")


def test_schema_text_without_kind_is_a_self_contained_bundle() -> None:
    """The bundle is a valid schema needing no other file: it accepts and rejects like the files."""
    bundle = json.loads(schema.schema_text(None))
    Draft202012Validator.check_schema(bundle)
    validator = Draft202012Validator(bundle)  # no registry: every $ref resolves inside it
    for data in VALID.values():
        assert list(validator.iter_errors(data)) == []
    bad = with_value("Workload", ("spec", "replicas"), -1)
    assert [e.message for e in validator.iter_errors(bad)] == ["-1 is less than the minimum of 0"]


# --- one rule per case --------------------------------------------------------------------

RULES: list[tuple[str, JsonPath, Any, str, str]] = [
    # kind, path set, value, expected json path, expected message fragment
    ("Workload", ("apiVersion",), "podform/v2", "$.apiVersion", "'podform/v1' was expected"),
    ("Workload", ("spec", "replicas"), -1, "$.spec.replicas", "-1 is less than the minimum of 0"),
    ("Workload", ("spec", "replicas"), "2", "$.spec.replicas", "'2' is not of type 'integer'"),
    ("Workload", ("spec", "replicas"), True, "$.spec.replicas", "True is not of type 'integer'"),
    ("Workload", ("spec", "restart"), False, "$.spec.restart", "False is not one of"),
    ("Workload", ("spec", "restart"), "sometimes", "$.spec.restart", "is not one of"),
    ("Workload", ("spec", "state"), "paused", "$.spec.state", "'paused' is not one of"),
    ("Workload", ("spec", "init"), "yes", "$.spec.init", "'yes' is not of type 'boolean'"),
    ("Workload", ("spec", "command"), "/bin/sh -c x", "$.spec.command", "is not of type 'array'"),
    ("Workload", ("spec", "args", 3), 32, "$.spec.args[3]", "32 is not of type 'string'"),
    ("Workload", ("spec", "ports", 0), "80:80:80:80", "$.spec.ports[0]", "is not a port mapping"),
    ("Workload", ("spec", "ports", 0), 0, "$.spec.ports[0]", "0 is less than the minimum of 1"),
    ("Workload", ("spec", "ports", 0), 70000, "$.spec.ports[0]", "greater than the maximum"),
    ("Workload", ("spec", "ports", 0), "8080:80/sctp", "$.spec.ports[0]", "is not a port mapping"),
    ("Workload", ("spec", "volumes", 0), "models", "$.spec.volumes[0]", "is not a volume"),
    ("Workload", ("spec", "volumes", 0), "data:rel/path", "$.spec.volumes[0]", "is not a volume"),
    ("Workload", ("spec", "volumes", 0), "Bad_Vol:/x", "$.spec.volumes[0]", "is not a volume"),
    ("Workload", ("spec", "resources", "cpus"), 0, "$.spec.resources.cpus", "less than or equal"),
    ("Workload", ("spec", "resources", "memory"), "8GB", "$.spec.resources.memory", "Mi, MiB"),
    ("Workload", ("spec", "resources", "memory"), 0, "$.spec.resources.memory", "minimum of 1"),
    ("Workload", ("spec", "resources", "memory"), 1.5, "$.spec.resources.memory", "'integer'"),
    ("Workload", ("spec", "stopTimeout"), "10", "$.spec.stopTimeout", "'10' is not a duration"),
    ("Workload", ("spec", "stopTimeout"), "10 s", "$.spec.stopTimeout", "is not a duration"),
    ("Workload", ("spec", "healthcheck", "command"), [], "$.spec.healthcheck.command", "empty"),
    ("Workload", ("spec", "healthcheck", "retries"), -1, "$.spec.healthcheck.retries", "minimum"),
    ("Workload", ("spec", "dependsOn", 0), "Cache", "$.spec.dependsOn[0]", "'Cache' is not a name"),
    ("Workload", ("spec", "network"), "a b", "$.spec.network", "is not a network"),
    ("Workload", ("spec", "capAdd", 0), "SYS_ADMIN;", "$.spec.capAdd[0]", "is not a capability"),
    ("Workload", ("spec", "machine"), "GPU", "$.spec.machine", "'GPU' is not a name"),
    ("Workload", ("spec", "image"), "", "$.spec.image", "should be non-empty"),
    ("Workload", ("spec", "image"), "a b", "$.spec.image", "is not an Image name"),
    ("Workload", ("spec", "secrets", 0), {"env": "X"}, "$.spec.secrets[0]", "'name' is a required"),
    (
        "Workload",
        ("spec", "secrets", 0),
        {"name": "s", "env": "X", "target": "/x"},
        "$.spec.secrets[0]",
        "set either env or target, not both",
    ),
    (
        "Workload",
        ("spec", "env"),
        {"1BAD": "x"},
        "$.spec.env['1BAD']",
        "'1BAD' is not an environment",
    ),
    (
        "Workload",
        ("metadata", "labels", "team"),
        "a b",
        "$.metadata.labels.team",
        "is not a label value",
    ),
    ("Workload", ("metadata", "labels", "team"), "x" * 64, "$.metadata.labels.team", "too long"),
    (
        "Workload",
        ("metadata", "labels", "io.podform.stack"),
        "llm",
        "$.metadata.labels['io.podform.stack']",
        "reserved",
    ),
    ("Machine", ("spec", "provider"), "kvm", "$.spec.provider", "'kvm' is not one of"),
    ("Machine", ("spec", "cpus"), 0, "$.spec.cpus", "0 is less than the minimum of 1"),
    ("Machine", ("spec", "diskSize"), "100MiB", "$.spec.diskSize", "Gi or GiB"),
    ("Machine", ("spec", "diskSize"), "0GiB", "$.spec.diskSize", "is not a disk size"),
    ("Machine", ("spec", "rootful"), "true", "$.spec.rootful", "not of type 'boolean'"),
    ("Machine", ("metadata", "name"), "g" * 31, "$.metadata.name", "is too long"),
    ("Image", ("spec", "build", "args", "N"), 1, "$.spec.build.args.N", "(quote it)"),
    ("Image", ("spec", "build"), {"target": "x"}, "$.spec.build", "'context' is a required"),
    ("Image", ("spec", "ref"), "a b", "$.spec.ref", "is not an Image name"),
    ("Image", ("spec", "pull"), {"policy": "Always"}, "$.spec", "exactly one of"),
    ("DeviceMapping", ("spec", "devices"), [], "$.spec.devices", "should be non-empty"),
    ("DeviceMapping", ("spec", "devices", 0), "/etc/shadow", "$.spec.devices[0]", "match"),
    ("DeviceMapping", ("spec", "devices", 0), "/dev/../etc/x", "$.spec.devices[0]", "match"),
    ("DeviceMapping", ("spec", "devices", 0), "/dev/dri:rwx", "$.spec.devices[0]", "match"),
    ("DeviceMapping", ("spec", "devices", 1), "nvidia.com/gpu=$(id)", "$.spec.devices[1]", "match"),
    ("DeviceMapping", ("spec", "providers", 0), "docker", "$.spec.providers[0]", "not one of"),
    ("DeviceMapping", ("spec", "providers", 1), "libkrun", "$.spec.providers", "non-unique"),
    (
        "DeviceMapping",
        ("spec", "probe", "timeout"),
        "soon",
        "$.spec.probe.timeout",
        "is not a duration",
    ),
    ("DeviceMapping", ("spec", "probe", "command"), [], "$.spec.probe.command", "non-empty"),
    ("Stack", ("spec", "prune"), "no", "$.spec.prune", "'no' is not of type 'boolean'"),
    ("Stack", ("spec", "policy", "allowPrivileged"), 1, "$.spec.policy.allowPrivileged", "bool"),
]


@pytest.mark.parametrize(
    ("kind", "path", "value", "json_path", "fragment"),
    RULES,
    ids=[f"{r[0]}{schema.format_json_path(r[1])[1:]}={r[2]!r}"[:60] for r in RULES],
)
def test_a_rule_violation_is_one_issue_at_its_path(
    kind: str, path: JsonPath, value: Any, json_path: str, fragment: str
) -> None:
    """Breaking one rule of a valid document gives exactly one issue, at the path, saying why."""
    issues = issues_for(with_value(kind, path, value))
    assert [(i.json_path, fragment in i.message) for i in issues] == [(json_path, True)], issues


@pytest.mark.parametrize(
    "name",
    ["web\n", "web\r", "Web", "-web", "web-", "a b", "a;id", "$(id)", "`id`", "a/b", "a\\b", "..",
     "--help", "", "Ωmega", "a_b", "x" * 64],
)  # fmt: skip
def test_names_outside_the_dns_label_form_are_rejected(name: str) -> None:
    """metadata.name must be a lowercase DNS label; a trailing newline does not slip through."""
    issues = issues_for(with_value("Workload", ("metadata", "name"), name))
    assert [i.json_path for i in issues] == ["$.metadata.name"], issues


def test_a_trailing_newline_is_rejected_by_the_schema_itself() -> None:
    """Python's `$` matches before a final newline; the schema's `$(?!\\n)` rejects 'web\\n'."""
    validator = Draft202012Validator(json.loads(schema.schema_text(None)))
    bad = with_value("Workload", ("metadata", "name"), "web\n")
    errors = list(validator.iter_errors(bad))
    assert errors
    assert {(tuple(e.absolute_path), e.validator) for e in errors} == {
        (("metadata", "name"), "pattern")
    }
    assert issues_for(bad)[0].message.startswith("'web\\n' is not a name")


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("", "'' should be non-empty"),
        (
            "web\n",
            "'web\\n' is not a name: a-z, 0-9 and '-', starting and ending with a letter or digit",
        ),
        ("x" * 64, f"{'x' * 64!r} is too long"),
    ],
)
def test_a_value_failing_several_rules_gets_the_plainest_message(name: str, message: str) -> None:
    """One issue per value: the plain rule it breaks, not also the regex it then fails."""
    [issue] = issues_for(with_value("Workload", ("metadata", "name"), name))
    assert issue.message == message


def test_a_pull_policy_must_be_one_of_the_three() -> None:
    """pull.policy is IfNotPresent, Always or Never."""
    [issue] = issues_for(envelope("Image", {"pull": {"policy": "Sometimes"}}))
    assert issue.json_path == "$.spec.pull.policy"
    assert issue.message == "'Sometimes' is not one of ['IfNotPresent', 'Always', 'Never']"


def test_a_thirty_character_machine_name_is_accepted() -> None:
    """Machine names may have up to 30 characters (31 is refused by the rules table)."""
    assert issues_for(with_value("Machine", ("metadata", "name"), "g" * 30)) == []


# --- messages -----------------------------------------------------------------------------


def test_a_misspelled_key_says_did_you_mean_at_the_key() -> None:
    """An unexpected key is reported at the key's own position with the closest known key."""
    data = with_value("Workload", ("spec", "imgae"), "x")
    doc = make_doc(data)
    [issue] = schema.validate_documents([doc])
    assert issue.message == "'imgae' is not allowed here; did you mean 'image'?"
    assert issue.json_path == "$.spec.imgae"
    assert issue.location == doc.key_positions[("spec", "imgae")]
    assert issue.location != doc.positions[("spec", "imgae")]
    assert issue.subject == 'Workload "llama"'


@pytest.mark.parametrize(
    ("path", "message"),
    [
        (("spec", "dependson"), "'dependson' is not allowed here; did you mean 'dependsOn'?"),
        (("spec", "gpu"), "'gpu' is not allowed here"),
        (("metadata", "label"), "'label' is not allowed here; did you mean 'labels'?"),
        (("kindd",), "'kindd' is not allowed here; did you mean 'kind'?"),
        (("spec", "healthcheck", "intervall"), "'intervall' is not allowed here; did you mean 'interval'?"),
        (("spec", "dependsOn", 1, "conditon"), "'conditon' is not allowed here; did you mean 'condition'?"),
    ],
)  # fmt: skip
def test_unexpected_keys_are_named_with_a_suggestion_when_one_is_close(
    path: JsonPath, message: str
) -> None:
    """Closed objects everywhere, including under anyOf; the hint uses difflib's 0.8 cutoff."""
    assert [i.message for i in issues_for(with_value("Workload", path, "x"))] == [message]


def test_each_unexpected_key_is_its_own_issue() -> None:
    """Two unknown keys in one mapping give two issues, each at its key."""
    data = with_value("Workload", ("spec", "imgae"), "x")
    data["spec"]["replica"] = 2
    paths = sorted(i.json_path for i in issues_for(data))
    assert paths == ["$.spec.imgae", "$.spec.replica"]


def test_all_errors_of_all_documents_are_collected() -> None:
    """validate_documents returns every issue of every document, not the first one."""
    bad_workload = with_value("Workload", ("spec", "replicas"), -1)
    bad_workload["spec"]["restart"] = "sometimes"
    bad_machine = with_value("Machine", ("spec", "cpus"), 0)
    docs = [
        make_doc(VALID["Stack"]),
        make_doc(bad_workload, "a.yaml"),
        make_doc(bad_machine, "b.yaml"),
    ]
    issues = schema.validate_documents(docs)
    assert sorted((i.location.file if i.location else "", i.json_path) for i in issues) == [
        ("a.yaml", "$.spec.replicas"),
        ("a.yaml", "$.spec.restart"),
        ("b.yaml", "$.spec.cpus"),
    ]


def test_issues_carry_the_value_location() -> None:
    """A wrong value is located at the value node, not at its key."""
    doc = make_doc(with_value("Workload", ("spec", "replicas"), -1))
    [issue] = schema.validate_documents([doc])
    assert issue.location == doc.positions[("spec", "replicas")]
    assert str(issue).startswith(f"m.yaml:{issue.location.line}:") if issue.location else False


def test_the_shallowest_error_comes_first_within_a_document() -> None:
    """Best match first: a missing required field before a deep type error."""
    data = with_value("Workload", ("spec", "healthcheck", "retries"), "3")
    del data["spec"]["image"]
    assert [i.json_path for i in issues_for(data)] == ["$.spec", "$.spec.healthcheck.retries"]


def test_an_invalid_device_shows_the_best_deep_match_not_any_of() -> None:
    """anyOf failures descend: the message names the value and what each alternative accepts."""
    [issue] = issues_for(with_value("Workload", ("spec", "devices", 0), "gpu0;rm"))
    assert issue.json_path == "$.spec.devices[0]"
    assert issue.message.startswith("'gpu0;rm' does not match")
    assert "CDI" in issue.message
    assert "is not valid under any of the given schemas" not in issue.message


def test_a_depends_on_object_error_points_inside_the_object() -> None:
    """For an object under name-or-object, the object's own error wins over the name's."""
    data = with_value("Workload", ("spec", "dependsOn", 1, "condition"), "ready")
    [issue] = issues_for(data)
    assert issue.json_path == "$.spec.dependsOn[1].condition"
    assert issue.message == "'ready' is not one of ['started', 'healthy']"


@pytest.mark.parametrize(
    ("build", "pull"), [(None, None), ({"context": "."}, {"policy": "Always"})]
)
def test_an_image_needs_exactly_one_of_build_and_pull(build: Any, pull: Any) -> None:
    """Neither or both of build/pull is one issue that says so, without echoing the spec."""
    spec = {k: v for k, v in (("build", build), ("pull", pull)) if v is not None}
    [issue] = issues_for(envelope("Image", spec))
    assert (issue.json_path, issue.message) == (
        "$.spec",
        "exactly one of 'build' or 'pull' must be set",
    )


@pytest.mark.parametrize(
    ("path", "value"),
    [
        (("spec", "env", "GPU_LAYERS"), 32),
        (("spec", "env", "RATIO"), 1.5),
        (("spec", "env", "DEBUG"), True),
        (("spec", "image"), 1.10),
        (("spec", "args", 0), False),
    ],
)
def test_a_number_or_boolean_where_a_string_is_expected_says_quote_it(
    path: JsonPath, value: Any
) -> None:
    """YAML's unquoted 32, 1.10 or true under a string field gets the hint "(quote it)"."""
    [issue] = issues_for(with_value("Workload", path, value))
    assert issue.message == f"{value!r} is not of type 'string' (quote it)"


def test_an_empty_value_says_so() -> None:
    """`image:` with nothing after it loads as null; the message says the value is empty."""
    [issue] = issues_for(with_value("Workload", ("spec", "image"), None))
    assert issue.message == "None is not of type 'string' (the value is empty)"


def test_locations_come_from_the_yaml_file(tmp_path: Path) -> None:
    """Through the real loader: file:line:col of the bad value, and of a misspelled key."""
    manifest = tmp_path / "app.yaml"
    manifest.write_text(
        "apiVersion: podform/v1\n"
        "kind: Workload\n"
        "metadata: {name: web}\n"
        "spec:\n"
        "  image: nginx\n"
        "  replicas: two\n"
        "  restrat: always\n"
    )
    issues = schema.validate_documents(load_manifests([str(manifest)]))
    assert sorted(str(i).removeprefix(str(tmp_path) + "/") for i in issues) == [
        "app.yaml:6:13: Workload \"web\": $.spec.replicas: 'two' is not of type 'integer'",
        'app.yaml:7:3: Workload "web": $.spec.restrat: '
        "'restrat' is not allowed here; did you mean 'restart'?",
    ]


def test_yaml_traps_are_caught_by_the_schema(tmp_path: Path) -> None:
    """A block-scalar name ('web\\n') and an unquoted number in env are both reported."""
    manifest = tmp_path / "app.yaml"
    manifest.write_text(
        "apiVersion: podform/v1\n"
        "kind: Workload\n"
        "metadata:\n"
        "  name: |\n"
        "    web\n"
        "spec:\n"
        "  image: nginx\n"
        "  env: {GPU_LAYERS: 32}\n"
    )
    issues = schema.validate_documents(load_manifests([str(manifest)]))
    assert sorted((i.json_path, i.message[:26]) for i in issues) == [
        ("$.metadata.name", "'web\\n' is not a name: a-z"),
        ("$.spec.env.GPU_LAYERS", "32 is not of type 'string'"),
    ]
    assert issues[-1].message.endswith("(quote it)")


def test_an_unknown_kind_is_one_issue_with_a_suggestion() -> None:
    """An unknown kind stops there: one issue on $.kind naming the valid kinds."""
    doc = make_doc({**VALID["Workload"], "kind": "Workloda", "spec": {"imgae": 1}})
    [issue] = schema.validate_documents([doc])
    assert issue.json_path == "$.kind"
    assert issue.location == doc.positions[("kind",)]
    assert issue.message == (
        "unknown kind 'Workloda' (did you mean 'Workload'?); "
        "valid kinds: Stack, Machine, Image, DeviceMapping, Network, Secret, Workload"
    )


@pytest.mark.parametrize(
    ("kind", "json_path", "message"),
    [
        (None, "$", "'kind' is a required property; valid kinds: Stack, Machine"),
        (5, "$.kind", "unknown kind 5; valid kinds: Stack"),
        ("Pod", "$.kind", "unknown kind 'Pod'; valid kinds: Stack"),
    ],
)
def test_a_missing_or_non_string_kind_is_one_issue(kind: Any, json_path: str, message: str) -> None:
    """No kind, or a kind that is not a known string, is reported without a traceback."""
    data = {k: v for k, v in VALID["Stack"].items() if k != "kind"}
    if kind is not None:
        data["kind"] = kind
    [issue] = issues_for(data)
    assert issue.json_path == json_path
    assert issue.message.startswith(message)


# --- secrets ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "value"),
    [
        (("spec", "env", "HF_TOKEN"), [SENTINEL]),
        (("spec", "env", "DB_PASSWORD"), 12345678),
        (("spec", "env", "api_key"), {"v": SENTINEL}),
        (("spec", "secrets", 0, "name"), f"{SENTINEL};rm"),
        (("spec", "secrets", 0, "env"), f"{SENTINEL}="),
        (("spec", "image"), {"aws_secret_access_key": SENTINEL}),
        (("spec", "args"), {"Credentials": SENTINEL}),
        (("spec", "command"), [{"passwd": SENTINEL}]),
        (("metadata", "labels", "token"), f"{SENTINEL}!"),
    ],
)
def test_secret_values_never_appear_in_messages(path: JsonPath, value: Any) -> None:
    """Values under secret-looking keys (and in secrets) are shown as ***** in every message."""
    issues = issues_for(with_value("Workload", path, value))
    assert issues
    for issue in issues:
        text = str(issue) + json.dumps(issue.to_json())
        assert SENTINEL not in text and "12345678" not in text, text
    assert any(MASK in i.message for i in issues)


@pytest.mark.parametrize(
    ("name", "secret"),
    [
        ("HF_TOKEN", True), ("token", True), ("AWS_SECRET_ACCESS_KEY", True),
        ("DB_PASSWORD", True), ("passwd", True), ("apiKey", True), ("ssh_key", True),
        ("GOOGLE_CREDENTIALS", True), ("secrets", True),
        ("LLAMA_LOG", False), ("GGML_VK_VISIBLE_DEVICES", False), ("image", False), ("", False),
    ],
)  # fmt: skip
def test_is_secret_key(name: str, secret: bool) -> None:
    """Secret-looking key names: TOKEN, SECRET, PASSWORD, PASSWD, KEY, CREDENTIAL, any case."""
    assert is_secret_key(name) is secret


def test_redact_masks_values_under_secret_keys_only() -> None:
    """redact() masks every scalar below a secret key, keeps keys and other values."""
    data = {"env": {"HF_TOKEN": "t", "LOG": "info"}, "secrets": [{"name": "n"}], "n": 1}
    assert redact(data) == {
        "env": {"HF_TOKEN": MASK, "LOG": "info"},
        "secrets": [{"name": MASK}],
        "n": 1,
    }
    assert redact("plain", secret=True) == MASK
    assert mask(SENTINEL) == MASK == "*****"
    assert is_secret_path(("spec", "env", "HF_TOKEN")) and not is_secret_path(("spec", 0))


# --- cost ---------------------------------------------------------------------------------


def test_importing_the_schema_module_does_not_import_jsonschema() -> None:
    """jsonschema is imported on first validation only (podform --version stays fast)."""
    code = "import sys, reconciler.manifests.schema; print('jsonschema' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_two_hundred_documents_validate_quickly() -> None:
    """200 full workloads validate in well under the CLI budget; the time is printed."""
    docs = []
    for n in range(200):
        data = copy.deepcopy(VALID["Workload"])
        data["metadata"]["name"] = f"w{n}"
        docs.append(make_doc(data))
    schema.validate_documents(docs[:1])  # compile the validators first
    start = time.perf_counter()
    issues = schema.validate_documents(docs)
    elapsed = time.perf_counter() - start
    print(f"validated 200 workloads in {elapsed * 1000:.0f} ms")
    assert issues == []
    assert elapsed < 2.0
