"""`podform sync` against real git remotes (a bare repo over file:// and git daemon on
127.0.0.1) and real Podman: first apply, pushed changes, a broken commit kept out while the
last good revision runs on, signed commits, credentials never shown, SIGTERM; plus the pure
rules of the loop and the URL handling.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from helpers import BackgroundPodform, documents
from podman_env import container_ids, podform_subprocess

from reconciler.errors import PodformError
from reconciler.runtime.backends.git import GitRepo, Remote
from reconciler.runtime.inventory import Inventory
from reconciler.runtime.sync import MAX_BACKOFF_S, Source

EMAIL = "signer@example.invalid"


def git(*args: str, cwd: Path | None = None) -> str:
    """Run git with a fixed identity and no user or system configuration."""
    env = {**os.environ, "GIT_CONFIG_GLOBAL": "/dev/null", "GIT_CONFIG_NOSYSTEM": "1"}
    done = subprocess.run(
        ["git", "-c", "user.name=t", "-c", f"user.email={EMAIL}", "-c", "init.defaultBranch=main",
         *args],
        cwd=cwd, env=env, capture_output=True, text=True, check=False, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, f"git {args} failed: {done.stderr}"
    return done.stdout


class Remote_:
    """A bare repository (the remote) and a working clone that commits and pushes to it."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.bare = root / "remote.git"
        self.work = root / "work"
        git("init", "-q", "--bare", str(self.bare))
        git("init", "-q", str(self.work))
        self.signing: list[str] = []

    @property
    def url(self) -> str:
        return self.bare.as_uri()

    def push(self, text: str, message: str = "change", sign_with: Path | None = None) -> str:
        """Commit stacks/stack.yaml with TEXT (ssh-signed with SIGN_WITH) and push to main."""
        folder = self.work / "stacks"
        folder.mkdir(exist_ok=True)
        (folder / "stack.yaml").write_text(text)
        (self.work / "README").write_text(message)  # every commit changes something
        git("add", "-A", cwd=self.work)
        sign = ["-c", "gpg.format=ssh", "-c", f"user.signingkey={sign_with}"] if sign_with else []
        git(*sign, "commit", "-q", *(["-S"] if sign_with else []), "-m", message, cwd=self.work)
        git("push", "-q", "--force", str(self.bare), "HEAD:refs/heads/main", cwd=self.work)
        return git("rev-parse", "HEAD", cwd=self.work).strip()


@pytest.fixture
def remote(tmp_path: Path) -> Remote_:
    """A fresh bare remote with a working clone beside it."""
    return Remote_(tmp_path / "git")


@pytest.fixture
def start_sync(podman_socket: str, state_dir: Path) -> Iterator[Callable[..., BackgroundPodform]]:
    """Starts sync processes; each is stopped (SIGTERM) after the test."""
    started: list[BackgroundPodform] = []

    def start(*args: str) -> BackgroundPodform:
        started.append(BackgroundPodform("sync", podman_socket, state_dir, *args))
        return started[-1]

    yield start
    for p in started:
        p.stop()


def recorded_revision(state_dir: Path, stack: str) -> dict[str, str]:
    return Inventory(state_dir, stack).load().revision


def web_env(stack: str) -> list[str]:
    cid = container_ids(stack)[f"{stack}-web-1"]
    out = subprocess.run(
        ["podman", "inspect", "--type", "container", "--format", "{{json .Config.Env}}", cid],
        capture_output=True, text=True, check=True, timeout=60,
    ).stdout  # fmt: skip
    env: list[str] = json.loads(out)
    return env


def test_loop_follows_pushes_keeps_last_good_on_a_broken_commit_and_exits_0_on_sigterm(
    start_sync: Callable[..., BackgroundPodform],
    remote: Remote_,
    busybox_image: str,
    stack_name: str,
    state_dir: Path,
    run_podform: Any,
) -> None:
    """file:// remote: first commit applied; a push applied within a couple of 1s intervals;
    a broken commit reported once while the running container stays; a later good commit
    applied; the revision is in the inventory and status; SIGTERM exits 0."""
    sha1 = remote.push(documents(stack_name, busybox_image), "first")
    s = start_sync("--repo", remote.url, "--path", "stacks", "--interval", "1s")
    s.wait_for("first apply", lambda: bool(s.events("revision applied", sha=sha1)), 90)
    first = container_ids(stack_name)
    assert list(first) == [f"{stack_name}-web-1"]
    assert recorded_revision(state_dir, stack_name)["sha"] == sha1

    sha2 = remote.push(documents(stack_name, busybox_image, {"MODE": "two"}), "second")
    took = s.wait_for(
        "pushed change applied",
        lambda: any(e["changed"] for e in s.events("revision applied", sha=sha2)),
        60,
    )
    assert took < 15, f"a pushed change took {took:.1f}s with a 1s interval"
    assert "MODE=two" in web_env(stack_name)
    second = container_ids(stack_name)
    assert second != first

    sha3 = remote.push(documents(stack_name, busybox_image, {"MODE": "x"}, bad=True), "broken")
    s.wait_for("broken commit refused", lambda: bool(s.events("revision refused", sha=sha3)), 30)
    n = len(s.events("revision applied"))
    s.wait_for("two more passes", lambda: len(s.events("revision applied")) >= n + 2, 30)
    refused = s.events("revision refused")
    assert len(refused) == 1, "a refused revision is reported once"
    assert "imagee" in json.dumps(refused[0]["problems"]) and refused[0]["keeping"] == sha2
    assert refused[0]["problems"][0].startswith("stacks/stack.yaml:"), "repo-relative location"
    kept = s.events("revision applied")[-1]
    assert kept["sha"] == sha2 and kept["using_last_good"] and not kept["changed"]
    assert container_ids(stack_name) == second, "the last good revision keeps running"
    assert recorded_revision(state_dir, stack_name)["sha"] == sha2

    sha4 = remote.push(documents(stack_name, busybox_image, {"MODE": "four"}), "fixed")
    s.wait_for("good commit applied", lambda: bool(s.events("revision applied", sha=sha4)), 60)
    assert "MODE=four" in web_env(stack_name)
    rev = recorded_revision(state_dir, stack_name)
    assert rev["sha"] == sha4 and rev["ref"] == "main" and rev["url"] == remote.url
    assert rev["path"] == "stacks" and rev["time"]
    assert s.events("revision applied", sha=sha4)[-1]["next_fetch_in"].endswith(("ms", "s"))

    t0 = time.monotonic()
    assert s.stop() == 0, s.log()
    assert time.monotonic() - t0 < 10
    assert s.events("sync stopped")

    tree = next((state_dir / "sync").glob(f"*/trees/{sha4}/stacks"))
    status = run_podform("status", "-f", str(tree))
    assert status.returncode == 0, status.stderr
    assert f"revision {sha4} (main of {remote.url}" in status.stdout
    status_json = run_podform("status", "-f", str(tree), "-o", "json")
    assert json.loads(status_json.stdout)["revision"]["sha"] == sha4


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@pytest.fixture
def git_daemon(remote: Remote_) -> Iterator[str]:
    """`git daemon` serving the remote's folder on 127.0.0.1; its git:// URL. Stopped after."""
    port = free_port()
    base = remote.bare.parent
    proc = subprocess.Popen(
        ["git", "daemon", "--export-all", f"--base-path={base}", "--listen=127.0.0.1",
         f"--port={port}", "--reuseaddr", str(base)],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 10
        while True:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1):
                break
            assert proc.poll() is None and time.monotonic() < deadline, "git daemon did not start"
            time.sleep(0.05)
        yield f"git://127.0.0.1:{port}/{remote.bare.name}"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_once_over_git_daemon_applies_then_reports_nothing_new_and_fails_when_down(
    git_daemon: str,
    remote: Remote_,
    busybox_image: str,
    stack_name: str,
    state_dir: Path,
    run_podform: Any,
) -> None:
    """git:// remote with --once: exit 0 for an applied revision and for nothing new, a pushed
    change applied by the next run, exit 1 when the daemon is gone (nothing changed)."""
    sha1 = remote.push(documents(stack_name, busybox_image), "first")
    once = ("sync", "--repo", git_daemon, "--path", "stacks", "--once", "--log-format", "json")
    first = run_podform(*once)
    assert first.returncode == 0, first.stderr
    assert recorded_revision(state_dir, stack_name)["sha"] == sha1
    ids = container_ids(stack_name)
    assert len(ids) == 1

    again = run_podform(*once)
    assert again.returncode == 0, again.stderr
    applied = [json.loads(x) for x in again.stderr.splitlines() if "revision applied" in x]
    assert applied and applied[0]["sha"] == sha1 and not applied[0]["changed"]
    assert not applied[0]["new_revision"] and container_ids(stack_name) == ids
    assert "next_fetch_in" not in applied[0]  # --once fetches no more

    sha2 = remote.push(documents(stack_name, busybox_image, {"MODE": "two"}), "second")
    third = run_podform(*once)
    assert third.returncode == 0, third.stderr
    assert recorded_revision(state_dir, stack_name)["sha"] == sha2
    assert "MODE=two" in web_env(stack_name)

    down = run_podform("sync", "--repo", "git://127.0.0.1:1/remote.git", "--once")
    assert down.returncode == 1
    assert "fetch failed" in down.stderr

    tree = next((state_dir / "sync").glob(f"*/trees/{sha2}/stacks"))
    manual = run_podform("apply", "-f", str(tree))
    assert manual.returncode == 0, manual.stderr
    assert recorded_revision(state_dir, stack_name) == {}, "a plain apply clears the revision"


def make_key(folder: Path, name: str) -> tuple[Path, str]:
    """An ed25519 key made by ssh-keygen; (private key path, public key line)."""
    key = folder / name
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", EMAIL, "-f", str(key)],
        check=True, capture_output=True, timeout=30,
    )  # fmt: skip
    return key, (folder / f"{name}.pub").read_text().strip()


def test_verify_signatures_applies_signed_and_refuses_unsigned_or_unknown_keys(
    remote: Remote_, busybox_image: str, stack_name: str, state_dir: Path, tmp_path: Path,
    run_podform: Any,
) -> None:  # fmt: skip
    """--verify-signatures: a commit signed by an allowed key is applied; an unsigned one and
    one signed by another key are refused (exit 1) and the running container stays."""
    keys = tmp_path / "keys"
    keys.mkdir()
    good, good_pub = make_key(keys, "good")
    other, _ = make_key(keys, "other")
    allowed = keys / "allowed_signers"
    allowed.write_text(f"{EMAIL} {good_pub}\n")
    once = ("sync", "--repo", remote.url, "--path", "stacks", "--once", "--log-format", "json",
            "--verify-signatures", str(allowed))  # fmt: skip

    sha1 = remote.push(documents(stack_name, busybox_image), "signed", sign_with=good)
    signed = run_podform(*once)
    assert signed.returncode == 0, signed.stderr
    assert recorded_revision(state_dir, stack_name)["sha"] == sha1
    ids = container_ids(stack_name)

    sha2 = remote.push(documents(stack_name, busybox_image, {"MODE": "u"}), "unsigned")
    unsigned = run_podform(*once)
    assert unsigned.returncode == 1
    assert sha2 in unsigned.stderr and "not signed" in unsigned.stderr
    assert '"using_last_good": true' in unsigned.stderr, "a restarted sync restores the last good"
    assert container_ids(stack_name) == ids

    sha3 = remote.push(documents(stack_name, busybox_image, {"MODE": "o"}), "other", other)
    unknown = run_podform(*once)
    assert unknown.returncode == 1
    assert sha3 in unknown.stderr and "signature refused" in unknown.stderr
    assert container_ids(stack_name) == ids
    assert recorded_revision(state_dir, stack_name)["sha"] == sha1


def test_credentials_in_the_url_are_never_printed_or_stored(tmp_path: Path) -> None:
    """An unreachable https URL with user:token and one with a bare token: exit 1, and the
    token is in no output, log line or file of the state directory."""
    token = "ghp_FAKEtoken1234567890secret"
    state = tmp_path / "state"
    outputs = []
    for url in (
        f"https://podform-user:{token}@127.0.0.1:1/org/repo.git",
        f"https://{token}@127.0.0.1:1/org/repo.git",
    ):
        for fmt in ("json", "console"):
            done = podform_subprocess(
                "sync", "--repo", url, "--once", "--log-format", fmt, "-vv",
                env={"PODFORM_STATE_DIR": str(state), "CONTAINER_HOST": "unix:///nonexistent"},
                timeout=120,
            )  # fmt: skip
            assert done.returncode == 1
            assert "fetch failed" in done.stderr and "127.0.0.1:1/org/repo.git" in done.stderr
            outputs += [done.stdout, done.stderr]
    bad_flag = podform_subprocess(
        "sync", "--repo", f"https://u:{token}@127.0.0.1:1/r.git", "--interval", "soon", "--once",
        env={"PODFORM_STATE_DIR": str(state)},
    )  # fmt: skip
    assert bad_flag.returncode == 1
    outputs += [bad_flag.stdout, bad_flag.stderr]
    for text in outputs:
        assert token not in text
        assert "podform-user:" not in text
    stored = [p for p in state.rglob("*") if p.is_file()]
    assert stored, "the clone was made in the state dir"
    for path in stored:
        assert token.encode() not in path.read_bytes(), path


def test_remote_parse_keeps_credentials_out_of_the_url() -> None:
    """user:token (and a bare token) leave https URLs; ssh users stay; scrub masks both."""
    r = Remote.parse("https://me:tok3n@example.com:8443/x.git")
    assert (r.url, r.username, r.password) == ("https://example.com:8443/x.git", "me", "tok3n")
    assert r.scrub("fatal: 'https://me:tok3n@example.com' tok3n") == (
        "fatal: 'https://example.com' *****"
    )
    bare = Remote.parse("https://tok3n@example.com/x.git")
    assert bare.url == "https://example.com/x.git" and bare.scrub("tok3n") == "*****"
    assert Remote.parse("ssh://git@example.com/x.git").url == "ssh://git@example.com/x.git"
    assert Remote.parse("ssh://git:pw@example.com/x.git").url == "ssh://git@example.com/x.git"
    assert Remote.parse("git@example.com:org/x.git").url == "git@example.com:org/x.git"
    encoded = Remote.parse("https://me:p%40ss@[::1]:8443/x.git")
    assert (encoded.url, encoded.password) == ("https://[::1]:8443/x.git", "p@ss")
    assert encoded.scrub("p%40ss and p@ss") == "***** and *****"
    with pytest.raises(PodformError):
        Remote.parse("--upload-pack=touch /tmp/x")


@pytest.mark.parametrize("ref", ["-x", "a:b", "a..b", "main^", "", "a b"])
def test_refs_that_git_would_misread_are_refused(ref: str, tmp_path: Path) -> None:
    """Options and refspec syntax are not accepted as --ref."""
    with pytest.raises(PodformError):
        Source(Remote.parse(tmp_path.as_uri()), ref)


@pytest.mark.parametrize("path", ["/etc", "../up", "a/../../b"])
def test_path_must_stay_inside_the_repository(path: str, tmp_path: Path) -> None:
    """--path is a folder inside the checkout, never absolute or escaping it."""
    with pytest.raises(PodformError):
        Source(Remote.parse(tmp_path.as_uri()), "main", path)


def test_backoff_doubles_from_the_interval_and_is_capped(tmp_path: Path) -> None:
    """Failures double the delay from the interval up to max(interval, 5 min), ±10% jitter."""
    from reconciler.runtime.sync import Syncer

    class Rec:
        stop_event = threading.Event()

    syncer = Syncer(Source(Remote.parse(tmp_path.as_uri())), Rec(), tmp_path, 10.0, None)  # type: ignore[arg-type]
    for failures, base in ((0, 10), (1, 10), (2, 20), (3, 40), (6, 300), (20, 300)):
        syncer.failures = failures
        delays = [syncer._next_delay() for _ in range(50)]
        assert all(base * 0.9 <= d <= base * 1.1 for d in delays), (failures, delays[:3])
    assert MAX_BACKOFF_S == 300


def test_fetch_writes_no_url_into_the_clone(remote: Remote_, tmp_path: Path) -> None:
    """The private clone has no remote configured and no FETCH_HEAD: the URL is not stored."""
    sha = remote.push("# nothing\n", "first")
    repo = GitRepo(tmp_path / "clone.git", Remote.parse(remote.url))
    repo.ensure()
    assert repo.fetch("main") == sha
    assert not (tmp_path / "clone.git" / "FETCH_HEAD").exists()
    for path in (tmp_path / "clone.git").rglob("*"):
        if path.is_file():
            assert str(remote.bare).encode() not in path.read_bytes(), path


ROOT = Path(__file__).resolve().parent.parent


def test_ci_pr_check_validates_then_plans_with_changes_pending_passing(
    podman_socket: str, busybox_image: str, stack_name: str, tmp_path: Path
) -> None:
    """contrib/ci/podform-pr-check.sh: exit 0 with a plan JSON when changes are pending, exit 1
    (and no plan) when a manifest is invalid."""
    stack = tmp_path / "stacks" / "web"
    stack.mkdir(parents=True)
    (stack / "stack.yaml").write_text(documents(stack_name, busybox_image))
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
        "CONTAINER_HOST": podman_socket,
        "PODFORM_STATE_DIR": str(tmp_path / "state"),
    }
    script = str(ROOT / "contrib" / "ci" / "podform-pr-check.sh")
    ok = subprocess.run(
        [script, "stacks/web"], cwd=tmp_path, env=env, capture_output=True, text=True,
        timeout=120, check=False,
    )  # fmt: skip
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "changes pending" in ok.stdout
    plan = json.loads((tmp_path / "podform-plan-stacks-web.json").read_text())
    assert plan["stack"] == stack_name
    assert container_ids(stack_name) == {}, "plan changes nothing"

    (stack / "stack.yaml").write_text(documents(stack_name, busybox_image, bad=True))
    (tmp_path / "podform-plan-stacks-web.json").unlink()
    bad = subprocess.run(
        [script, "stacks/web"], cwd=tmp_path, env=env, capture_output=True, text=True,
        timeout=120, check=False,
    )  # fmt: skip
    assert bad.returncode == 1 and "imagee" in bad.stderr
    assert not (tmp_path / "podform-plan-stacks-web.json").exists()


def test_pre_commit_hook_manifest_exposes_podform_validate() -> None:
    """.pre-commit-hooks.yaml offers `podform-validate`, running `podform validate` once per
    commit on the folders given with -f (not on single changed files)."""
    hooks = yaml.safe_load((ROOT / ".pre-commit-hooks.yaml").read_text())
    (hook,) = [h for h in hooks if h["id"] == "podform-validate"]
    assert hook["entry"] == "podform validate" and hook["language"] == "python"
    assert hook["pass_filenames"] is False and hook["args"][0] == "-f"
    assert "podform" in (ROOT / "pyproject.toml").read_text().split("[project.scripts]")[1]


@pytest.fixture
def http_remote(remote: Remote_) -> Iterator[tuple[str, str, str]]:
    """The remote served over git's dumb HTTP protocol on 127.0.0.1, behind basic auth;
    (URL without credentials, user, token). The server stops after the test."""
    import base64
    import functools
    from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

    user, token = "podform-bot", "tok-" + os.urandom(8).hex()
    expected = "Basic " + base64.b64encode(f"{user}:{token}".encode()).decode()

    class Handler(SimpleHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.headers.get("Authorization") != expected:
                self.send_response(401)
                self.send_header("WWW-Authenticate", 'Basic realm="git"')
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            super().do_GET()

        def log_message(self, *args: Any) -> None:
            pass

    handler = functools.partial(Handler, directory=str(remote.bare.parent))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/{remote.bare.name}", user, token
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def test_a_token_in_the_url_reaches_git_through_a_helper_and_nowhere_else(
    http_remote: tuple[str, str, str], remote: Remote_, tmp_path: Path
) -> None:
    """http://user:token@ against a server that demands them: the fetch succeeds (the token
    reached git), and the token is in no output, no state file and no credential store even
    though the user's git config names `credential.helper store`; a wrong token fails cleanly."""
    url, user, token = http_remote
    sha = remote.push("# empty\n", "first")
    git("update-server-info", cwd=remote.bare)
    home = tmp_path / "home"
    home.mkdir()
    (home / ".gitconfig").write_text("[credential]\n\thelper = store\n")
    state = tmp_path / "state"
    with_token = url.replace("http://", f"http://{user}:{token}@")
    done = podform_subprocess(
        "sync", "--repo", with_token, "--once", "--log-format", "json", "-vv",
        env={"PODFORM_STATE_DIR": str(state), "HOME": str(home), "XDG_CONFIG_HOME": str(home),
             "CONTAINER_HOST": "unix:///nonexistent"},
    )  # fmt: skip
    # The fetch worked (the sha is known); a folder without documents is then refused: exit 1.
    assert done.returncode == 1
    assert "fetch failed" not in done.stderr and sha in done.stderr, done.stderr
    assert "no manifest documents" in done.stderr
    wrong = podform_subprocess(
        "sync", "--repo", url.replace("http://", f"http://{user}:wrong-{token}@"), "--once",
        env={"PODFORM_STATE_DIR": str(state), "HOME": str(home), "XDG_CONFIG_HOME": str(home)},
    )  # fmt: skip
    assert wrong.returncode == 1 and "fetch failed" in wrong.stderr
    for text in (done.stdout, done.stderr, wrong.stdout, wrong.stderr):
        assert token not in text
    files = [p for p in (*state.rglob("*"), *home.rglob("*")) if p.is_file()]
    assert any(p.name == "HEAD" for p in files)
    for path in files:
        assert token.encode() not in path.read_bytes(), path
    assert not (home / ".git-credentials").exists()


def test_inventory_keeps_the_revision_and_refuses_a_malformed_one(tmp_path: Path) -> None:
    """The revision round-trips through the inventory file; a non-string field makes the
    inventory unreadable (valid=False, so nothing is pruned) rather than silently dropped."""
    from reconciler.engine.observed import Recorded

    inv = Inventory(tmp_path, "s")
    rev = {"url": "file:///r", "ref": "main", "path": ".", "sha": "a" * 40, "time": "t"}
    inv.save(Recorded(revision=rev))
    assert inv.load().revision == rev
    data = json.loads(inv.path.read_text())
    data["revision"]["sha"] = 1
    inv.path.write_text(json.dumps(data))
    assert not inv.load().valid and "revision" in inv.problem


def test_the_lock_file_names_the_command_without_url_credentials(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """While sync holds a stack's lock, the lock file names the holder's command line with
    the repository URL's user:token removed (the state dir never holds the token)."""
    monkeypatch.setattr(
        sys, "argv", ["podform", "sync", "--repo", "https://bot:tok-SECRET@example.com/r.git"]
    )
    inv = Inventory(tmp_path, "s")
    with inv.lock():
        held = inv.lock_path.read_text()
    assert "tok-SECRET" not in held and "bot:" not in held
    assert "--repo https://example.com/r.git" in held


def test_sigterm_during_an_apply_finishes_it_and_exits_0(
    start_sync: Callable[..., BackgroundPodform],
    remote: Remote_,
    busybox_image: str,
    stack_name: str,
    state_dir: Path,
) -> None:
    """SIGTERM right after a new revision was taken up (its apply running): exit 0, and every
    container that exists is recorded in the inventory (the running action finished, state saved)."""
    remote.push(documents(stack_name, busybox_image), "first")
    s = start_sync("--repo", remote.url, "--path", "stacks", "--interval", "1s")
    s.wait_for("new revision", lambda: bool(s.events("new revision")), 60)
    s.proc.send_signal(signal.SIGTERM)
    assert s.stop() == 0, s.log()
    assert s.events("sync stopped")
    recorded = Inventory(state_dir, stack_name).load()
    for name, cid in container_ids(stack_name).items():
        assert recorded.containers[name].id == cid
