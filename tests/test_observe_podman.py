"""Observation against real Podman: a pass inspects the images the stack names and never
asks for the host's whole image list, whose cost grows with every image on the host."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest
from helpers import workload, write_stack
from podman_env import image_id

from reconciler.engine.observed import Recorded
from reconciler.runtime.backends import unix_http
from reconciler.runtime.backends.podman_api import PodmanApi
from reconciler.runtime.observe import observe
from reconciler.runtime.orchestrator import Connections, Settings, load_desired


def test_observe_inspects_the_stacks_images_without_listing_the_host(
    podman_socket: str,
    busybox_image: str,
    stack_name: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    asked: list[str] = []
    real_get = unix_http.get

    def get(path: str, resource: str, params: dict[str, str], timeout: float) -> Any:
        asked.append(resource)
        return real_get(path, resource, params, timeout)

    monkeypatch.setattr(unix_http, "get", get)
    write_stack(
        tmp_path,
        stack_name,
        workload("web", busybox_image),
        workload("missing", "localhost/podform-never-built:latest"),
    )
    desired = load_desired([str(tmp_path)])
    busybox_id = image_id(busybox_image)
    # An image the stack built once and no longer declares (prune looks it up by id).
    recorded = Recorded(images={"old": {"id": busybox_id, "connection": ""}})
    connections = Connections(Settings(url=podman_socket))
    try:
        observed = observe(desired, recorded, [""], connections)
    finally:
        connections.close()
    assert "/images/json" not in asked, "a pass listed every image on the host"
    assert sum(r.startswith("/images/") for r in asked) == 3  # two refs and one recorded id
    (found,) = observed.images[""]  # the workload's image and the recorded id: one image
    assert found.id == busybox_id
    assert busybox_image in found.refs
    assert observed.networks[""] is not None
    assert observed.containers[""] == []


class _Unreachable:
    """An engine whose every call fails as a socket that is not there does."""

    url = "unix:///nonexistent/machine.sock"

    def _fail(self, *args: object) -> None:
        from reconciler.errors import TemporaryError

        raise TemporaryError("cannot reach Podman at unix:///nonexistent/machine.sock")

    list_containers = list_volumes = list_networks = list_secrets = find_image = _fail


class _Connections:
    def __init__(self, engines: dict[str, object]) -> None:
        self.engines = engines

    def engine(self, key: str) -> object:
        return self.engines[key]


def test_an_unreachable_machine_is_an_error_of_its_own_not_an_interrupt(
    podman_socket: str, busybox_image: str, stack_name: str, tmp_path: Path
) -> None:
    """One connection that cannot be reached is reported for that connection; the pass's
    interrupt event stays clear, so what can run still runs."""
    write_stack(tmp_path, stack_name, workload("web", busybox_image))
    desired = load_desired([str(tmp_path)])
    stop = threading.Event()
    default = PodmanApi(podman_socket)
    connections = _Connections({"": default, "gpu": _Unreachable()})
    observed = observe(desired, Recorded(), ["", "gpu"], connections, stop)  # type: ignore[arg-type]
    assert observed.errors == {"gpu": "cannot reach Podman at unix:///nonexistent/machine.sock"}
    assert not stop.is_set()
    assert any(busybox_image in i.refs for i in observed.images[""])  # the default connection
