"""`podform sync`: flags, signals and logging around runtime.sync's loop.

The loop itself (fetch, verify, fresh tree, load, apply, record) is runtime/sync.py; this
module turns arguments into a Source, installs the SIGINT/SIGTERM handlers (finish the running
action, exit 0) and maps `--once` outcomes to exit codes (0 applied or nothing new, 1 failure).
"""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING, Any

from reconciler.cli.signals import StopOnSignals

if TYPE_CHECKING:
    from reconciler.runtime.orchestrator import Settings


def add_parser(sub: Any, parents: list[argparse.ArgumentParser]) -> None:
    """The `sync` subcommand's flags (imports nothing heavy: `--version` stays fast)."""
    from reconciler.cli.parser import add_parallel

    p = sub.add_parser("sync", parents=parents, help="GitOps: apply each new revision of a repo")
    p.add_argument("--repo", required=True, metavar="URL", help="git URL (https, ssh, git, file)")
    p.add_argument("--ref", default="main", help="branch or tag to follow (default main)")
    p.add_argument("--path", default=".", help="folder of the manifests in the repo (default .)")
    p.add_argument("--interval", default="60s", help="fetch this often, ±10%% (default 60s)")
    p.add_argument("--once", action="store_true", help="one fetch and apply, then exit")
    p.add_argument(
        "--verify-signatures",
        metavar="ALLOWED_SIGNERS",
        default=None,
        help="apply only commits whose ssh signature verifies against this allowed-signers file",
    )
    p.add_argument("--prune", action="store_true", help="delete owned objects no longer declared")
    add_parallel(p)


def run_sync(args: argparse.Namespace, settings: Settings) -> int:
    """Fetch and apply now, then every interval until SIGINT/SIGTERM (or once with --once)."""
    from pathlib import Path

    from reconciler.cli import log as logging_setup
    from reconciler.cli import report
    from reconciler.errors import PodformError
    from reconciler.manifests.units import seconds
    from reconciler.redact import strip_url_credentials
    from reconciler.runtime.backends.git import Remote
    from reconciler.runtime.inventory import state_dir
    from reconciler.runtime.orchestrator import Reconciler
    from reconciler.runtime.sync import Outcome, Source, Syncer

    log = logging_setup.get()
    try:
        remote = Remote.parse(args.repo)
    except PodformError as exc:
        log.error("cannot sync", error=strip_url_credentials(str(exc)))
        return 1
    try:
        interval_s = seconds(args.interval)
        signers = Path(args.verify_signatures) if args.verify_signatures else None
        source = Source(remote, args.ref, args.path, signers)
    except (ValueError, PodformError) as exc:
        log.error("cannot sync", error=remote.scrub(str(exc)))
        return 1
    fields = {"url": remote.url, "ref": source.ref, "path": source.path}
    with StopOnSignals() as signals:
        rec = Reconciler(
            settings, on_event=report.EventPrinter(sys.stderr, False), stop_event=signals.event
        )
        state = Path(state_dir(settings.state_dir)).resolve()
        syncer = Syncer(source, rec, state, interval_s, log, once=args.once)
        try:
            with syncer.locked():
                syncer.restore()
                log.info("sync started", **fields, interval=args.interval, once=args.once)
                if args.once:
                    outcome = syncer.run_pass()
                    return 0 if outcome in (Outcome.APPLIED, Outcome.NOTHING) else 1
                syncer.run()
        except PodformError as exc:
            log.error("cannot sync", **fields, error=remote.scrub(str(exc)))
            return 1
        finally:
            rec.close()
    log.info("sync stopped", **fields, passes=syncer.passes)
    return 0
