"""Observe: one snapshot of what Podman has, for the planners (the pipeline's second step).

Reads only: the stack's containers, volumes, networks and secrets where the stack has some, and
the images the planners will look at (engine/lookups.py decides which). The calls of one
connection go out together; the first one doubles as the reachability check, retried for a
few seconds while a socket comes up.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Protocol

from reconciler.engine.lookups import needs
from reconciler.engine.observed import (
    Observed,
    ObservedContainer,
    ObservedImage,
    ObservedNetwork,
    ObservedSecret,
    ObservedVolume,
    Recorded,
)
from reconciler.errors import Interrupted, PodmanUnreachable, TemporaryError
from reconciler.manifests.model import Desired
from reconciler.runtime.retry import RetryPolicy, retrying


class Reader(Protocol):
    """The reads observation makes (backends.podman_api.PodmanApi has them)."""

    url: str

    def list_containers(self, name_prefix: str) -> list[ObservedContainer]: ...
    def list_volumes(self) -> list[ObservedVolume]: ...
    def list_networks(self) -> list[ObservedNetwork]: ...
    def list_secrets(self) -> list[ObservedSecret]: ...
    def find_image(self, name: str) -> ObservedImage | None: ...


class Readers(Protocol):
    def engine(self, key: str) -> Reader: ...


def observe(
    desired: Desired,
    recorded: Recorded,
    keys: Sequence[str],
    connections: Readers,
    stop: threading.Event | None = None,
) -> Observed:
    """One snapshot of the given connections: the stack's containers (one name-filtered
    list), the volumes, the networks and secrets where the stack has some, and one inspect
    per image the planners will look at (engine/lookups.py). The calls go out together;
    they are independent reads.

    No separate ping (Podman's /version alone costs more than all of them): the first call
    doubles as the reachability check. A machine connection that cannot be reached is
    reported in `errors`; the default connection's failure is the pass's failure.

    STOP (the interrupt) ends the wait between retries with Interrupted: Ctrl-C while
    Podman is unreachable exits at once, as an interrupt, not seconds later as an error.
    """
    stop = stop or threading.Event()
    observed = Observed()
    for key in keys:
        try:
            engine = connections.engine(key)
        except TemporaryError as exc:  # a machine whose socket is not up
            observed.errors[key] = str(exc)
            continue
        need = needs(desired, recorded, key)
        calls: dict[str, Callable[[], Any]] = {
            "containers": functools.partial(engine.list_containers, f"{desired.stack.name}-"),
            "volumes": engine.list_volumes,
        }
        if need.networks:
            calls["networks"] = engine.list_networks
        if need.secrets:
            calls["secrets"] = engine.list_secrets
        for i, name in enumerate(need.images):
            calls[f"image {i}"] = functools.partial(engine.find_image, name)
        # When one call fails (or Ctrl-C lands here), the others stop retrying, so the pool
        # closes at once; the interrupt itself (STOP) is only read, never set, here.
        cancel = threading.Event()
        try:
            with ThreadPoolExecutor(max_workers=min(8, len(calls))) as pool:
                futures = {
                    what: pool.submit(_first_call, call, stop, cancel)
                    for what, call in calls.items()
                }
                try:
                    answers = {what: f.result() for what, f in futures.items()}
                except BaseException:
                    cancel.set()
                    raise
        except PodmanUnreachable:
            if key == "":
                raise
            observed.errors[key] = f"cannot reach Podman at {engine.url}"
            continue
        observed.containers[key] = answers["containers"]
        observed.volumes[key] = answers["volumes"]
        if "networks" in answers:
            observed.networks[key] = answers["networks"]
        if "secrets" in answers:
            observed.secrets[key] = answers["secrets"]
        found = (answers[f"image {i}"] for i in range(len(need.images)))
        observed.images[key] = list({i.id: i for i in found if i is not None}.values())
    return observed


# A socket that is just coming up gets a few seconds; then one clear error. The same policy
# covers Podman 4.x's transient 500 on an image list racing another client's removal
# ("locating item named manifest ...").
FIRST_CALL = RetryPolicy(attempts=20, max_delay_s=5.0, initial_s=0.1, max_wait_s=1.0)


def _first_call(
    call: Callable[[], Any],
    stop: threading.Event,
    cancel: threading.Event,
    policy: RetryPolicy = FIRST_CALL,
) -> Any:
    def pause(seconds: float) -> None:  # at most FIRST_CALL.max_wait_s
        if stop.wait(seconds):
            raise Interrupted("interrupted while waiting for Podman")
        if cancel.is_set():
            raise Interrupted("another call of this observation failed")

    try:
        return retrying(call, policy, sleep=pause)
    except TemporaryError as exc:
        raise PodmanUnreachable(
            f"{exc}. Is the Podman service running? Start it with `podman system service` "
            "or point podform at it with --url / CONTAINER_HOST."
        ) from None
