"""PodmanApi's parsing of recorded libpod answers (tests/fixtures/podman/<version>/), no Podman.

The transport is replaced at podform's own seams (unix_http.get for the read-only GETs,
PodmanApi._json/_call for podman-py's calls); everything from the bytes on is the real code.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from reconciler.engine.observed import ObservedContainer, ObservedVolume
from reconciler.errors import PermanentError, PodmanTimeout, TemporaryError
from reconciler.runtime.backends import podman_streams, unix_http
from reconciler.runtime.backends.podman_api import PodmanApi
from reconciler.runtime.backends.podman_errors import raise_for_status

FIXTURES = Path(__file__).parent / "fixtures" / "podman"
VERSIONS = ["4.3.1", "5.x"]
# The container's own labels plus the image's (Podman copies image labels onto containers).
WEB_LABELS = {
    "io.podform.content-hash": "3f1c0ffee",
    "io.podform.kind": "Workload",
    "io.podform.name": "web",
    "io.podform.replica": "1",
    "io.podform.spec-hash": "0123abcd",
    "io.podform.stack": "c14rec",
}


def fixture(version: str, name: str) -> bytes:
    return (FIXTURES / version / name).read_bytes()


def api_reading(
    monkeypatch: pytest.MonkeyPatch, version: str, answers: dict[str, tuple[int, str]]
) -> tuple[PodmanApi, list[tuple[str, dict[str, str]]]]:
    """A PodmanApi whose GETs answer from fixture files: resource -> (status, file name)."""
    asked: list[tuple[str, dict[str, str]]] = []

    def get(path: str, resource: str, params: dict[str, str], timeout: float) -> tuple[int, bytes]:
        asked.append((resource, params))
        status, name = answers[resource]
        return status, fixture(version, name)

    monkeypatch.setattr(unix_http, "get", get)
    return PodmanApi("unix:///nonexistent/podman.sock"), asked


@pytest.mark.parametrize("version", VERSIONS)
def test_container_list_parses_to_observed_containers(
    monkeypatch: pytest.MonkeyPatch, version: str
) -> None:
    """Id, name, state, labels, exit code and restart count (absent on 4.3: 0) come through."""
    api, asked = api_reading(
        monkeypatch, version, {"/containers/json": (200, "containers_json.json")}
    )
    web, job = api.list_containers("c14rec-")
    assert asked == [("/containers/json", {"all": "true", "filters": '{"name": ["^c14rec\\\\-"]}'})]
    assert (web.name, web.state, web.running, web.exit_code) == ("c14rec-web-1", "running", True, 0)
    assert {k: v for k, v in web.labels.items() if k.startswith("io.podform.")} == WEB_LABELS
    assert len(web.id) == 64
    assert (job.name, job.state, job.running, job.exit_code) == ("c14rec-job-1", "exited", False, 3)
    assert job.restart_count == (0 if version == "4.3.1" else 2)
    assert isinstance(job, ObservedContainer)


@pytest.mark.parametrize("version", VERSIONS)
def test_volume_list_keeps_name_and_labels(monkeypatch: pytest.MonkeyPatch, version: str) -> None:
    """Only the name and labels of a volume matter to podform."""
    api, _ = api_reading(monkeypatch, version, {"/volumes/json": (200, "volumes_json.json")})
    assert api.list_volumes() == [
        ObservedVolume(
            "c14rec-models",
            {
                "io.podform.kind": "Volume",
                "io.podform.name": "c14rec-models",
                "io.podform.stack": "c14rec",
            },
        )
    ]


@pytest.mark.parametrize("version", VERSIONS)
def test_image_inspect_gives_the_id_and_404_gives_none(
    monkeypatch: pytest.MonkeyPatch, version: str
) -> None:
    """image_id reads Id from an inspect; Podman's 404 error body means "not there"."""
    api, _ = api_reading(
        monkeypatch,
        version,
        {
            "/images/localhost/c14rec-app:latest/json": (200, "image_inspect.json"),
            "/images/localhost/c14rec-missing:latest/json": (404, "error_404.json"),
        },
    )
    expected = json.loads(fixture(version, "image_inspect.json"))["Id"]
    assert api.image_id("localhost/c14rec-app:latest") == expected
    assert api.image_id("localhost/c14rec-missing:latest") is None


@pytest.mark.parametrize("version", VERSIONS)
def test_find_image_gives_tags_digests_and_labels_and_none_when_missing(
    monkeypatch: pytest.MonkeyPatch, version: str
) -> None:
    """The observation of one image by name: what the planners compare (id, refs, labels)."""
    raw = json.loads(fixture(version, "image_inspect.json"))
    api, asked = api_reading(
        monkeypatch,
        version,
        {
            "/images/localhost/c14rec-app:latest/json": (200, "image_inspect.json"),
            f"/images/{raw['Id']}/json": (200, "image_inspect.json"),
            "/images/localhost/c14rec-missing:latest/json": (404, "error_404.json"),
        },
    )
    app = api.find_image("localhost/c14rec-app:latest")
    assert app == api.find_image(raw["Id"])
    assert app is not None
    assert app.id == raw["Id"]
    assert app.refs == (*raw["RepoTags"], *raw["RepoDigests"])
    assert app.labels["io.podform.stack"] == "c14rec"
    assert api.find_image("localhost/c14rec-missing:latest") is None
    assert all(resource.startswith("/images/") for resource, _ in asked)


@pytest.mark.parametrize(
    "message",
    [
        "statfs /srv/podform-none: no such file or directory",
        "cannot listen on the TCP port: listen tcp4 :8080: bind: address already in use",
        "crun: executable file `nope` not found in $PATH: No such file or directory: OCI runtime "
        "attempted to invoke a command that was not found",
    ],
)
def test_a_500_that_can_never_succeed_is_not_retried(message: str) -> None:
    """Podman's 500s for a missing bind source, a taken host port or a missing command are
    final: retrying them only delays the error."""
    with pytest.raises(PermanentError):
        raise_for_status(500, f"{message} (HTTP 500)")
    with pytest.raises(TemporaryError):  # and any other 500 is still retried
        raise_for_status(500, "locating item named manifest for image with ID x (HTTP 500)")


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize(
    ("status", "error"), [(500, TemporaryError), (409, PermanentError), (400, PermanentError)]
)
def test_error_bodies_become_typed_errors_with_podmans_message(
    monkeypatch: pytest.MonkeyPatch, version: str, status: int, error: type[Exception]
) -> None:
    """A 5xx may pass on retry, other codes will not; the message is Podman's, with the code."""
    api, _ = api_reading(monkeypatch, version, {"/volumes/json": (status, "error_404.json")})
    with pytest.raises(error) as caught:
        api.list_volumes()
    assert str(caught.value) == (
        "Podman: failed to find image localhost/c14rec-missing:latest: "
        f"localhost/c14rec-missing:latest: image not known (HTTP {status})"
    )


class Recorded:
    """Stands in for PodmanApi._json/_call: answers (method, path) from fixture files."""

    def __init__(self, version: str) -> None:
        self.version = version
        self.exec_id = json.loads(fixture(version, "exec_inspect.json"))["ID"]

    def json(self, method: str, path: str, **kwargs: Any) -> Any:
        answers = {
            ("get", "/version"): "version.json",
            ("get", "/containers/c14rec-web-1/healthcheck"): "container_healthcheck.json",
            ("get", f"/exec/{self.exec_id}/json"): "exec_inspect.json",
        }
        if (method, path) == ("post", "/containers/c14rec-web-1/exec"):
            return {"Id": self.exec_id}
        return json.loads(fixture(self.version, answers[(method, path)]))

    def call(self, method: str, path: str, **kwargs: Any) -> Any:
        assert (method, path) == ("post", f"/exec/{self.exec_id}/start")
        return type("Response", (), {"content": fixture(self.version, "exec_start.bin")})()


@pytest.mark.parametrize("version", VERSIONS)
def test_version_healthcheck_and_exec_answers(
    monkeypatch: pytest.MonkeyPatch, version: str
) -> None:
    """ping reads Version, healthcheck reads Status, exec demuxes the stream and reads ExitCode."""
    recorded = Recorded(version)
    monkeypatch.setattr(PodmanApi, "_json", lambda self, m, p, **kw: recorded.json(m, p, **kw))
    monkeypatch.setattr(PodmanApi, "_call", lambda self, m, p, **kw: recorded.call(m, p, **kw))
    api = PodmanApi("unix:///nonexistent/podman.sock")
    assert api.ping() == ("4.3.1" if version == "4.3.1" else "5.4.2")
    assert api.healthcheck("c14rec-web-1") == "healthy"
    command = ["sh", "-c", "echo renderD128; exit 2"]
    assert api.exec("c14rec-web-1", command, 5.0) == (2, "renderD128\n")


def test_demux_reads_each_frame_of_the_recorded_stream() -> None:
    """The 8-byte frame header (stream, size) is stripped; frames are joined in order."""
    frame = fixture("4.3.1", "exec_start.bin")
    assert podman_streams.demux(frame + frame) == "renderD128\nrenderD128\n"


def test_exec_outliving_its_timeout_reads_as_exit_124(monkeypatch: pytest.MonkeyPatch) -> None:
    """A probe whose exec does not answer in time is a failed probe (124), not an error; other
    transport failures still raise."""
    recorded = Recorded("4.3.1")
    monkeypatch.setattr(PodmanApi, "_json", lambda self, m, p, **kw: recorded.json(m, p, **kw))
    failure: list[Exception] = [PodmanTimeout("Podman at x did not answer POST /exec in time")]

    def call(self: PodmanApi, method: str, path: str, **kwargs: Any) -> Any:
        raise failure[0]

    monkeypatch.setattr(PodmanApi, "_call", call)
    api = PodmanApi("unix:///nonexistent/podman.sock")
    assert api.exec("c14rec-web-1", ["ls"], 5.0) == (124, "timed out after 5s")
    failure[0] = TemporaryError("cannot reach Podman at x: connection refused")
    with pytest.raises(TemporaryError, match="connection refused"):
        api.exec("c14rec-web-1", ["ls"], 5.0)
