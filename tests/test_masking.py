"""Secret values never leave the process: Podman's error texts, retry logs, YAML errors, crash logs."""

from __future__ import annotations

import argparse
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import PodformRunner, ok, workload, write_stack
from podman_env import podform_subprocess

from reconciler import redact
from reconciler.redact import MASK, register_secret, register_secret_env, scrub

SECRET = "S3CR3T-9f2a7c"


@pytest.fixture(autouse=True)
def empty_registry() -> Iterator[None]:
    """Each test starts with no registered secrets and leaves none behind."""
    redact.forget_secrets()
    yield
    redact.forget_secrets()


def test_scrub_masks_registered_values_in_any_text() -> None:
    """A registered value is masked wherever it appears, also JSON- or repr-escaped."""
    register_secret_env({"API_TOKEN": 'ab"c\x00def', "LEVEL": "debug-level"})
    register_secret(SECRET)
    text = (
        f'error: "API_TOKEN={SECRET}" and "ab\\"c\\u0000def" and \'ab"c\\x00def\' level debug-level'
    )
    assert scrub(text) == f'error: "API_TOKEN={MASK}" and "{MASK}" and \'{MASK}\' level debug-level'


def test_short_and_boolean_values_are_not_hunted_in_free_text() -> None:
    """Values such as "1" or "true" would mask ordinary text, so they stay out of the registry."""
    for value in ("1", "abc", "true", "False", "yes"):
        register_secret(value)
    assert scrub("1 abc true False yes") == "1 abc true False yes"


def test_crash_log_is_scrubbed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The debug log written for an internal error masks secret values in the traceback."""
    from reconciler.cli import main

    # tempfile caches its directory on first use, so TMPDIR alone would not reach it: the log
    # landed in /tmp on every run.
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    register_secret(SECRET)
    try:
        raise RuntimeError(f"boom with {SECRET}")
    except RuntimeError as exc:
        path = main._write_debug_log(exc, argparse.Namespace(command="apply"))
    assert Path(path).parent == tmp_path
    text = Path(path).read_text()
    assert "boom with" in text and SECRET not in text and MASK in text


@pytest.mark.parametrize(
    ("line", "value"),
    [("DB_PASSWORD: 0451982736", "0451982736"), ("API_KEY: 1e99999", "1e99999")],
)
def test_yaml_errors_under_secret_keys_do_not_quote_the_value(
    tmp_path: Path, line: str, value: str
) -> None:
    """A scalar the YAML loader rejects under a secret-looking key is reported without its text."""
    manifest = tmp_path / "stack.yaml"
    manifest.write_text(
        "apiVersion: podform/v1\nkind: Workload\nmetadata: {name: web}\n"
        f"spec:\n  image: busybox:latest\n  env:\n    {line}\n"
    )
    done = podform_subprocess("validate", "-f", str(manifest))
    assert done.returncode == 1
    assert f"{manifest}:7:" in done.stderr
    digits = value.lstrip("0")
    assert value not in done.stderr + done.stdout
    assert digits not in done.stderr + done.stdout


def test_podman_error_and_retry_logs_mask_env_secret(
    run_podform: PodformRunner, busybox_image: str, stack_name: str, tmp_path: Path
) -> None:
    """Podman's own error text echoes the env (runc: "API_TOKEN=..."); podform prints it masked."""
    d = write_stack(
        tmp_path / "m",
        stack_name,
        workload("web", busybox_image, env={"API_TOKEN": f"{SECRET}\x00x"}),
    )
    done = run_podform("apply", "-f", str(d), "-vv", "--log-format", "json")
    ok(done, 1)
    out = done.stdout + done.stderr
    assert "API_TOKEN=" in out, out  # the error is shown...
    assert SECRET not in out  # ...with the value masked, in the failure line and every retry log
