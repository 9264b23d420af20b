"""The command line through its real entry point: version, validate, schema, output formats,
global flag placement, user errors without tracebacks, and the plan's Terraform-style text."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pytest
from helpers import PodformRunner, make_desired, ok, workload, write_stack
from podman_env import podform_subprocess

from reconciler.cli.report import apply_text
from reconciler.engine.plan import Plan
from reconciler.runtime.orchestrator import PassResult
from reconciler.runtime.outcomes import Execution

KINDS = ["Stack", "Machine", "Image", "DeviceMapping", "Workload"]
GOOD = """\
apiVersion: podform/v1
kind: Workload
metadata: {name: web}
spec:
  image: localhost/web:latest
  env: {API_TOKEN: sentinel-XYZ}
"""

# (name, file text, the line the error points at, a fragment the error must contain)
BAD = [
    ("misspelled key", GOOD.replace("  image:", "  imag:"), 5, "did you mean 'image'"),
    ("duplicate key", GOOD + "  image: again\n", 7, "duplicate key 'image' (first at line 5)"),
    ("wrong type", GOOD.replace("  image: localhost/web:latest", "  image: [1]"), 5,
     "$.spec.image: [1] is not of type 'string'"),
    ("yaml syntax", GOOD.replace("  image: localhost/web:latest", "  image: [unclosed"), 6,
     "did not find expected ',' or ']'"),
]  # fmt: skip


def manifest(tmp_path: Path, text: str = GOOD) -> Path:
    path = tmp_path / "web.yaml"
    path.write_text(text)
    return path


def no_traceback(done: object) -> None:
    out = getattr(done, "stdout", "") + getattr(done, "stderr", "")
    assert "Traceback" not in out and "internal error" not in out, out


def test_version_prints_name_and_version() -> None:
    """`--version` exits 0 and prints `podform <version>`."""
    done = podform_subprocess("--version")
    ok(done)
    assert re.fullmatch(r"podform \d+\.\d+\S*\n", done.stdout)


def test_validate_accepts_a_valid_manifest(tmp_path: Path) -> None:
    """A valid manifest: exit 0, a one-line summary, and no secret value echoed."""
    done = podform_subprocess("validate", "-f", str(manifest(tmp_path)))
    ok(done)
    assert done.stdout.startswith("valid:")
    assert "sentinel" not in done.stdout + done.stderr


@pytest.mark.parametrize(("case", "text", "line", "fragment"), BAD, ids=[b[0] for b in BAD])
def test_validate_rejects_with_file_line_col(
    tmp_path: Path, case: str, text: str, line: int, fragment: str
) -> None:
    """An invalid manifest: exit 1, `file:line:col` and the cause on stderr, no traceback/secret."""
    path = manifest(tmp_path, text)
    done = podform_subprocess("validate", "-f", str(path))
    ok(done, 1)
    assert re.search(rf"{re.escape(str(path))}:{line}:\d+: ", done.stderr), done.stderr
    assert fragment in done.stderr, done.stderr
    assert "sentinel" not in done.stdout + done.stderr
    no_traceback(done)


def test_validate_counts_every_declared_resource(tmp_path: Path) -> None:
    """Networks and Secrets are counted with the other kinds (the Stack is not a resource)."""
    text = "".join(
        f"---\napiVersion: podform/v1\nkind: {kind}\nmetadata: {{name: {name}}}\nspec: {spec}\n"
        for kind, name, spec in (
            ("Stack", "qa", "{}"),
            ("Network", "backend", "{}"),
            ("Secret", "token", "{env: QA_TOKEN}"),
            ("Workload", "web", "{image: localhost/web:latest, networks: [{name: backend}]}"),
        )
    )
    path = manifest(tmp_path, text)
    done = podform_subprocess("validate", "-f", str(path))
    ok(done)
    assert done.stdout == "valid: stack 'qa', 3 resource(s) in 1 file(s)\n"
    done = podform_subprocess("validate", "-o", "json", "-f", str(path))
    assert json.loads(done.stdout)["resources"] == 3


@pytest.mark.parametrize("valid", [True, False])
def test_validate_json_output_parses(tmp_path: Path, valid: bool) -> None:
    """`-o json validate` prints one JSON document saying valid or listing located errors."""
    path = manifest(tmp_path, GOOD if valid else BAD[0][1])
    done = podform_subprocess("-o", "json", "validate", "-f", str(path))
    ok(done, 0 if valid else 1)
    data = json.loads(done.stdout)
    assert data["valid"] is valid
    if not valid:
        assert all(e["file"] == str(path) and e["line"] == 5 for e in data["errors"])


@pytest.mark.parametrize("kind", [*KINDS, None])
def test_schema_prints_json_schema(kind: str | None) -> None:
    """`schema [KIND]` prints a JSON Schema (Draft 2020-12) for each kind and for all."""
    done = podform_subprocess("schema", *([kind] if kind else []))
    ok(done)
    data = json.loads(done.stdout)
    assert "2020-12" in data["$schema"]
    if kind:
        assert kind.lower() in data["$id"]


@pytest.mark.parametrize(
    "argv",
    [
        ["-o", "json", "--log-format", "json", "-q", "validate", "-f", "{f}"],
        ["validate", "-f", "{f}", "-o", "json", "--log-format", "json", "-q"],
        ["--log-format", "json", "validate", "-o", "json", "-f", "{f}", "-v"],
        ["--state-dir", "{s}", "validate", "-f", "{f}", "--output", "json"],
    ],
)
def test_global_flags_before_or_after_the_command(tmp_path: Path, argv: list[str]) -> None:
    """Global flags work before and after the command; `-o json` takes effect either way."""
    f, s = str(manifest(tmp_path)), str(tmp_path / "state")
    done = podform_subprocess(*(a.format(f=f, s=s) for a in argv))
    ok(done)
    assert json.loads(done.stdout)["valid"] is True


@pytest.mark.parametrize("command", ["validate", "plan", "apply", "status", "delete", "watch"])
def test_command_help_lists_the_short_output_flag(command: str) -> None:
    """Each command's --help shows `-o {text,json}` (render's `-o DIR` must not hide it)."""
    done = podform_subprocess(command, "--help")
    ok(done)
    assert "-o {text,json}, --output {text,json}" in done.stdout, done.stdout


@pytest.mark.parametrize(
    ("argv", "text", "message"),
    [
        (["validate", "-f", "{d}/missing.yaml"], None, "missing.yaml"),
        (["plan", "-f", "{d}/missing.yaml"], None, "missing.yaml"),
        (["schema", "Nope"], None, "unknown kind"),
        (["apply", "-f", "{d}/web.yaml"], BAD[0][1], "web.yaml:5:"),
        (["status", "-f", "{d}/web.yaml"], BAD[3][1], "web.yaml:"),
        (["delete", "-f", "{d}/web.yaml"], "kind: Workload\n", "web.yaml:"),
    ],
)
def test_user_errors_print_no_traceback(
    tmp_path: Path, argv: list[str], text: str | None, message: str
) -> None:
    """A user error exits 1 with a message and no traceback, before any Podman call."""
    if text is not None:
        manifest(tmp_path, text)
    # A dead socket proves validation failed first: reaching Podman would be another error.
    done = podform_subprocess(
        *(a.format(d=tmp_path) for a in argv),
        "--url", "unix:///nonexistent.sock", "--state-dir", str(tmp_path / "state"),
    )  # fmt: skip
    ok(done, 1)
    assert message in done.stderr
    assert "nonexistent.sock" not in done.stderr
    no_traceback(done)


@pytest.mark.parametrize(
    "argv",
    [
        ["plan", "-f", "{f}", "--detailed-exitcodes"],  # a typo of a real flag
        ["plan"],  # -f missing
        ["apply", "-f", "{f}", "--detailed-exitcode", "--parallel", "many"],
        ["apply", "-f", "{f}", "--parallel", "0"],
        ["watch", "-f", "{f}", "--parallel", "-2"],
        ["-o", "yaml", "plan", "-f", "{f}"],
        ["import", "compose"],
        ["frobnicate"],
    ],
)
def test_usage_errors_exit_1_not_the_pending_changes_code(tmp_path: Path, argv: list[str]) -> None:
    """A usage error exits 1: argparse's 2 is `plan`'s "changes pending", so a mistyped flag in
    a CI job would pass as a plan that ran."""
    f = str(manifest(tmp_path))
    done = podform_subprocess(*(a.format(f=f) for a in argv))
    ok(done, 1)
    assert "usage: podform" in done.stderr and "error:" in done.stderr
    no_traceback(done)


def test_plan_text_has_terraform_style_symbols(
    run_podform: PodformRunner, busybox_image: str, stack_name: str, tmp_path: Path
) -> None:
    """plan marks create `+`, replace `-/+` with the changed field, delete `-`, and sums up."""
    d = tmp_path / "m"
    a = workload("a", busybox_image, env={"LEVEL": "info"})
    write_stack(d, stack_name, a, workload("b", busybox_image))
    done = run_podform("plan", "-f", str(d))
    ok(done, 2)
    assert re.search(rf"^\s+\+ {stack_name}-a-1\s+create", done.stdout, re.M), done.stdout
    ok(run_podform("apply", "-f", str(d)))
    a["spec"]["env"] = {"LEVEL": "debug"}
    write_stack(d, stack_name, a)
    done = run_podform("plan", "-f", str(d), "--prune")
    ok(done, 2)
    assert re.search(rf"^\s+-/\+ {stack_name}-a-1\s+replace", done.stdout, re.M), done.stdout
    assert 'env.LEVEL: "info" → "debug"' in done.stdout
    assert re.search(rf"^\s+- {stack_name}-b-1\s+delete", done.stdout, re.M), done.stdout
    assert f"Plan for stack '{stack_name}': 0 to create" in done.stdout
    data = json.loads(run_podform("plan", "-f", str(d), "--prune", "-o", "json").stdout)
    assert data["counts"]["replace"] == 1 and data["counts"]["delete"] == 1


def test_colour_only_on_a_tty_and_never_with_no_color(monkeypatch: pytest.MonkeyPatch) -> None:
    """Plans are coloured on a terminal, plain when piped, and plain whenever NO_COLOR is set."""
    from reconciler.cli import main as cli
    from reconciler.engine.plan import Action, Kind, Operation, Plan, Verb

    plan = Plan(
        "s",
        (
            Action(
                "Container/s-web-1",
                Kind.CONTAINER,
                "s-web-1",
                Verb.CREATE,
                Operation.CREATE,
                "container does not exist",
            ),
        ),
    )
    assert "\x1b[" in plan.render(color=True)
    assert "\x1b[" not in plan.render(color=False)
    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.setenv("TERM", "xterm")
    monkeypatch.setattr(sys.stdout, "isatty", lambda: True)
    assert cli._color() is True
    monkeypatch.setenv("NO_COLOR", "1")
    assert cli._color() is False
    monkeypatch.delenv("NO_COLOR")
    monkeypatch.setattr(sys.stdout, "isatty", lambda: False)
    assert cli._color() is False


def test_report_of_a_pass_with_nothing_to_do_has_no_empty_status_list() -> None:
    """Delete (or apply) of a stack with nothing in it ends `0 changed.`, not `0 changed; .`."""
    result = PassResult(make_desired(stack="qa"), Plan("qa", ()), Execution())
    text = apply_text(result, what="Delete")
    assert text.endswith("Delete complete: 0 changed.\n"), text


def test_watch_of_a_path_that_does_not_exist_exits_1_at_once(tmp_path: Path) -> None:
    """A typo in `watch -f` ends the command instead of being watched forever."""
    done = podform_subprocess(
        "watch", "-f", str(tmp_path / "nosuch"), "--log-format", "json", timeout=30
    )
    assert done.returncode == 1, done.stderr
    assert "nosuch: no such file or directory" in done.stderr


def test_a_folder_without_manifests_is_valid_but_warned_about(tmp_path: Path) -> None:
    """An empty set is legal (prune refuses it unless --allow-empty), but a mistyped folder
    must not pass without a word."""
    (tmp_path / "notes.txt").write_text("not a manifest\n")
    done = podform_subprocess("validate", "-f", str(tmp_path))
    assert done.returncode == 0, done.stderr
    assert f"warning: no manifest files (*.yaml, *.yml) in {tmp_path}" in done.stderr


def test_validate_reports_schema_problems_beside_a_file_that_does_not_parse(
    tmp_path: Path,
) -> None:
    """One broken file does not hide the schema errors of the others: one run, every problem."""
    (tmp_path / "a.yaml").write_text("apiVersion: podform/v1\nkind: Stack\nmetadata: {name: s}\n")
    (tmp_path / "b.yaml").write_text("a: [\n")
    (tmp_path / "c.yaml").write_text(
        "apiVersion: podform/v1\nkind: Workload\nmetadata: {name: web}\nspec: {imagee: x}\n"
    )
    done = podform_subprocess("validate", "-f", str(tmp_path))
    assert done.returncode == 1
    assert f"{tmp_path}/b.yaml:2:1: " in done.stderr
    assert f"{tmp_path}/c.yaml:4:8: " in done.stderr and "did you mean 'image'?" in done.stderr
    assert "3 problem(s) found; nothing was changed." in done.stderr
