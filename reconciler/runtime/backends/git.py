"""The `git` command for `podform sync`: a private bare clone, fetch, verify, fresh trees.

The only code that runs git. Every call is an argument list (no shell), has a timeout, runs
with GIT_TERMINAL_PROMPT=0 in its own session (no terminal to prompt on) and with stdin closed,
so a remote that wants a password fails instead of hanging. Credentials come from git's own
configuration (ssh agent and keys, credential helpers, GIT_ASKPASS). A `user:token@` in an
https URL is taken out of the URL before git sees it and handed to git through a credential
helper that reads it from the environment: it never appears in git's argv, the clone's files
(no remote is configured; FETCH_HEAD is not written) or any message, which are scrubbed anyway.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, unquote, urlsplit, urlunsplit

from reconciler.errors import PodformError
from reconciler.redact import strip_url_credentials

NETWORK_TIMEOUT_S = 120.0  # fetch: a stalled remote must not stop the loop for ever
LOCAL_TIMEOUT_S = 60.0  # rev-parse, worktree, verify-commit on the private clone
FETCHED_REF = "refs/podform/fetched"
_USER_ENV, _PASSWORD_ENV = "PODFORM_GIT_USERNAME", "PODFORM_GIT_PASSWORD"
# Reads the URL's user and token from the environment git was started with; the helper line
# itself holds no secret, so it may sit in argv.
_HELPER = (
    f'!f() {{ test "$1" = get && printf "username=%s\\npassword=%s\\n" '
    f'"${_USER_ENV}" "${_PASSWORD_ENV}"; }}; f'
)


class GitFailed(PodformError):
    """A git command failed; the message is scrubbed of credentials."""


@dataclass(frozen=True)
class Remote:
    """A repository URL split into what may be shown and what may not."""

    url: str  # shown, logged and recorded: no user:password
    username: str = ""
    password: str = ""

    @classmethod
    def parse(cls, raw: str) -> Remote:
        """`https://user:token@host/x` -> url `https://host/x` + credentials; other forms
        (ssh `git@host:x`, file://, git://) are kept, minus any password in them."""
        if raw.startswith("-"):
            raise PodformError(f"repository URL {raw.split('@')[-1]!r} must not start with '-'")
        parts = urlsplit(raw)
        if not parts.scheme or "://" not in raw or parts.username is None:
            return cls(raw)
        host = parts.netloc.rpartition("@")[2]  # as written: port, [IPv6] and case kept
        password = unquote(parts.password or "")
        if parts.scheme in ("http", "https"):  # a bare `token@` is a credential too
            return cls(urlunsplit(parts._replace(netloc=host)), unquote(parts.username), password)
        user = parts.username  # ssh://git@host: the user name is no secret, a password is
        return cls(urlunsplit(parts._replace(netloc=f"{user}@{host}")), "", password)

    def scrub(self, text: str) -> str:
        """TEXT without the password/token and without any `scheme://user:pass@` userinfo."""
        secret = self.password or self.username  # `https://TOKEN@host`: the user is the token
        for form in {secret, quote(secret, safe="")} - {""}:
            text = text.replace(form, "*****")
        return strip_url_credentials(text)


class GitRepo:
    """A private bare repository at `path`, fetched from `remote` by URL (no remote config)."""

    def __init__(self, path: Path, remote: Remote, git: str = "git") -> None:
        self.path = path
        self.remote = remote
        self.git = git

    # --- running git ------------------------------------------------------------------
    def _env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update(GIT_TERMINAL_PROMPT="0", LC_ALL="C", GCM_INTERACTIVE="never")
        for name in ("GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE", _USER_ENV, _PASSWORD_ENV):
            env.pop(name, None)
        if self.remote.password or self.remote.username:
            env[_USER_ENV], env[_PASSWORD_ENV] = self.remote.username, self.remote.password
        return env

    def run(
        self, *args: str, timeout: float = LOCAL_TIMEOUT_S, config: tuple[str, ...] = ()
    ) -> str:
        """`git --git-dir=PATH [-c k=v ...] ARGS`; its stdout, or GitFailed (scrubbed)."""
        argv = [self.git, f"--git-dir={self.path}"]
        for item in config:
            argv += ["-c", item]
        argv += list(args)
        shown = " ".join(args[:1])
        try:
            done = subprocess.run(
                argv,
                env=self._env(),
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                errors="replace",
                timeout=timeout,
                start_new_session=True,  # no controlling terminal for ssh to prompt on
                check=False,
            )
        except subprocess.TimeoutExpired:
            raise GitFailed(f"git {shown} timed out after {timeout:g}s") from None
        except OSError as exc:
            raise GitFailed(f"cannot run {self.git}: {exc.strerror}") from None
        if done.returncode != 0:
            lines = [x for x in done.stderr.strip().splitlines() if x.strip()]
            detail = "; ".join(lines[-3:]) or f"exit {done.returncode}"
            raise GitFailed(self.remote.scrub(f"git {shown} failed: {detail}"))
        return done.stdout

    # --- the clone --------------------------------------------------------------------
    def ensure(self) -> None:
        """Create the bare repository once: no template (no hooks), no reflogs, no remote."""
        if (self.path / "HEAD").is_file():
            return
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        init = subprocess.run(
            [self.git, "init", "--quiet", "--bare", "--template=", str(self.path)],
            env=self._env(), stdin=subprocess.DEVNULL, capture_output=True, text=True,
            timeout=LOCAL_TIMEOUT_S, check=False,
        )  # fmt: skip
        if init.returncode != 0:
            raise GitFailed(f"git init failed: {init.stderr.strip()}")
        self.run("config", "core.logAllRefUpdates", "false")
        self.run("config", "gc.autoDetach", "false")  # no gc left running in the background

    def fetch(self, ref: str, timeout: float = NETWORK_TIMEOUT_S) -> str:
        """Fetch REF (branch, tag or full name) from the remote; the commit it points at."""
        check_ref(ref)
        config: tuple[str, ...] = ()
        if self.remote.password or self.remote.username:
            config = ("credential.helper=", f"credential.helper={_HELPER}")
        self.run(
            "fetch", "--quiet", "--no-tags", "--no-write-fetch-head", "--no-recurse-submodules",
            "--", self.remote.url, f"+{ref}:{FETCHED_REF}",
            timeout=timeout, config=config,
        )  # fmt: skip
        return self.commit(FETCHED_REF)

    def commit(self, rev: str) -> str:
        return self.run("rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}").strip()

    def has_commit(self, sha: str) -> bool:
        try:
            return self.commit(sha) == sha
        except GitFailed:
            return False

    def verify_commit(self, sha: str, allowed_signers: Path) -> str:
        """'' when SHA carries an ssh signature that git verifies against ALLOWED_SIGNERS,
        else why not. OpenPGP/X.509 signatures are refused: git would check those against
        the user's keyring, not against the allowed-signers file."""
        header = self.run("cat-file", "commit", sha).split("\n\n", 1)[0]
        signature = re.search(r"^gpgsig(?:-sha256)? (.*)$", header, re.MULTILINE)
        if signature is None:
            return "the commit is not signed"
        if signature.group(1).strip() != "-----BEGIN SSH SIGNATURE-----":
            return "the commit is not signed with an ssh key (only ssh signatures are checked)"
        try:
            self.run(
                "verify-commit", "--raw", sha,
                config=(f"gpg.ssh.allowedSignersFile={allowed_signers.resolve()}",),
            )  # fmt: skip
        except GitFailed as exc:
            return f"its signature does not verify against {allowed_signers}: {exc}"
        return ""

    def checkout(self, sha: str, tree: Path) -> None:
        """A fresh tree of SHA at TREE (anything there before is removed first)."""
        self.remove_tree(tree)
        tree.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.run("worktree", "add", "--quiet", "--detach", "--force", str(tree), sha)

    def remove_tree(self, tree: Path) -> None:
        if tree.exists() or tree.is_symlink():
            shutil.rmtree(tree, ignore_errors=True)
        self.run("worktree", "prune")


def check_ref(ref: str) -> None:
    """Refuse refs git would read as options or refspec syntax."""
    if not ref or ref.startswith("-") or any(c in ref for c in ":^~?*[\\ \t\n") or ".." in ref:
        raise PodformError(f"{ref!r} is not a branch, tag or ref name")
