"""The Podman API adapter: with unix_http.py (its read-only GETs), the only code using the API.

It speaks libpod's REST API with plain JSON so that what podform asks for is exactly what is
sent (podman-py's high-level create() rewrites many arguments). Every failure leaves here as
one of podform's errors: TemporaryError (connection refused while a socket comes up, 5xx,
409 while a container stops) or PermanentError (everything a retry will not fix).
"""

from __future__ import annotations

import contextlib
import json
import re
import urllib.parse
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any

from reconciler.engine.observed import (
    ObservedContainer,
    ObservedImage,
    ObservedNetwork,
    ObservedSecret,
    ObservedVolume,
)
from reconciler.errors import PermanentError, PodmanTimeout, PodmanUnreachable, TemporaryError
from reconciler.manifests.model import Workload
from reconciler.runtime.backends import unix_http
from reconciler.runtime.backends.podman_errors import BuildFailed as BuildFailed
from reconciler.runtime.backends.podman_errors import (
    NotFoundError,
    error_message,
    raise_for_status,
    root_cause,
)
from reconciler.runtime.backends.podman_specs import container_spec as container_spec
from reconciler.runtime.backends.podman_specs import missing_optional_device
from reconciler.runtime.backends.podman_streams import (
    SentProgress,
    demux,
    json_lines,
    json_objects,
)
from reconciler.runtime.backends.podman_url import check_url as check_url
from reconciler.runtime.backends.podman_url import default_url as default_url

if TYPE_CHECKING:
    import requests

LineSink = Callable[[str], None]


class PodmanApi:
    """One connection to one Podman service (the default one, or a machine's)."""

    def __init__(self, url: str, timeout: float = 60.0) -> None:
        self.url = check_url(url)
        self.timeout = timeout
        self._socket = unix_http.socket_path(url)
        self._podman_py: Any = None  # created on first write: importing podman-py is costly

    @property
    def _client(self) -> Any:
        if self._podman_py is None:
            from podman.api import APIClient

            self._podman_py = APIClient(base_url=self.url, timeout=self.timeout)
        return self._podman_py

    def close(self) -> None:
        if self._podman_py is not None:
            self._podman_py.close()

    def _read(self, resource: str, params: dict[str, str] | None = None) -> Any:
        """A JSON GET: over the unix socket directly when we can, else through podman-py."""
        if self._socket is None:
            return self._json("get", resource, params=params or {})
        with self._over_socket(f"GET {resource}"):
            status, body = unix_http.get(self._socket, resource, params or {}, self.timeout)
        if status != 200:
            raise_for_status(status, unix_http.error_message(status, body))
        return json.loads(body) if body else None

    # --- transport ----------------------------------------------------------------------
    @contextlib.contextmanager
    def _over_socket(self, request: str) -> Iterator[None]:
        """Failures of the unix socket as podform's errors, both worth a retry."""
        try:
            yield
        except TimeoutError:
            raise PodmanTimeout(f"Podman at {self.url} did not answer {request} in time") from None
        except OSError as exc:
            raise TemporaryError(f"cannot reach Podman at {self.url}: {root_cause(exc)}") from None

    def _call(
        self,
        method: str,
        path: str,
        *,
        ok: tuple[int, ...] = (200, 201, 204),
        stream: bool = False,
        timeout: float | None = None,
        **kwargs: Any,
    ) -> requests.Response:
        from podman.errors import APIError

        try:
            resp: requests.Response = getattr(self._client, method)(
                path, stream=stream, timeout=timeout or self.timeout, **kwargs
            )
        except APIError as exc:
            # podman-py wraps every transport failure (an OSError: missing socket, refused,
            # timeout) in APIError; it is the same "cannot reach" as a bare one, not a crash.
            if not isinstance(exc.__cause__, OSError):
                raise
            raise self._transport_error(exc.__cause__, method, path) from None
        except OSError as exc:  # requests.ConnectionError, FileNotFoundError, refused, ...
            raise self._transport_error(exc, method, path) from None
        if resp.status_code in ok:
            return resp
        raise_for_status(resp.status_code, error_message(resp))

    def _transport_error(self, exc: OSError, method: str, path: str) -> TemporaryError:
        import requests

        if isinstance(exc, requests.Timeout):
            return PodmanTimeout(
                f"Podman at {self.url} did not answer {method.upper()} {path} in time"
            )
        return TemporaryError(f"cannot reach Podman at {self.url}: {root_cause(exc)}")

    def _json(self, method: str, path: str, **kwargs: Any) -> Any:
        resp = self._call(method, path, **kwargs)
        return resp.json() if resp.content else None

    def ping(self) -> str:
        """The service's version; PodmanUnreachable when nothing answers."""
        try:
            data = self._json("get", "/version", timeout=10)
        except TemporaryError as exc:
            raise PodmanUnreachable(str(exc)) from None
        return str(data.get("Version", "?"))

    # --- observe ------------------------------------------------------------------------
    def list_containers(self, name_prefix: str = "") -> list[ObservedContainer]:
        """One call. With a prefix (`<stack>-`), only containers whose names start with it:
        every container podform names for the stack, owned or not (a foreign one holding a
        needed name must be seen), and the cost follows the stack, not the host."""
        params = {"all": "true"}
        if name_prefix:
            params["filters"] = json.dumps({"name": [f"^{re.escape(name_prefix)}"]})
        out = []
        for c in self._read("/containers/json", params):
            labels = c.get("Labels") or {}
            names = c.get("Names") or [""]
            out.append(
                ObservedContainer(
                    id=c["Id"],
                    name=names[0].lstrip("/"),
                    state=str(c.get("State", "")),
                    labels=labels,
                    restart_count=int(c.get("Restarts") or 0),
                    exit_code=int(c.get("ExitCode") or 0),
                    networks=tuple(c.get("Networks") or ()),
                )
            )
        return out

    def find_image(self, name: str) -> ObservedImage | None:
        """The image a ref or id names, or None: one inspect. Its refs are its tags and
        digested names, so a caller can check the ref it asked for is really one of them
        (Podman also resolves short names and id prefixes). There is no list of every image:
        Podman 4.x computes sizes and container counts for each, ~150 ms for a dozen."""
        try:
            i = self._read(f"/images/{urllib.parse.quote(name, safe='/:@')}/json")
        except NotFoundError:
            return None
        refs = tuple(i.get("RepoTags") or ()) + tuple(i.get("RepoDigests") or ())
        return ObservedImage(
            id=str(i["Id"]), refs=tuple(dict.fromkeys(refs)), labels=i.get("Labels") or {}
        )

    def list_volumes(self) -> list[ObservedVolume]:
        return [
            ObservedVolume(v["Name"], v.get("Labels") or {})
            for v in self._read("/volumes/json") or []
        ]

    def list_networks(self) -> list[ObservedNetwork]:
        return [
            ObservedNetwork(str(n.get("name", "")), n.get("labels") or {})
            for n in self._read("/networks/json") or []
        ]

    def list_secrets(self) -> list[ObservedSecret]:
        """Names and ids only: Podman never returns a secret's value here."""
        return [
            ObservedSecret(str((s.get("Spec") or {}).get("Name", "")), str(s.get("ID", "")))
            for s in self._read("/secrets/json") or []
        ]

    def image_id(self, ref: str) -> str | None:
        found = self.find_image(ref)
        return found.id if found else None

    # --- images -------------------------------------------------------------------------
    def build(
        self,
        ref: str,
        tar: Iterable[bytes],
        containerfile: str,
        labels: dict[str, str],
        args: dict[str, str],
        target: str | None,
        on_line: LineSink,
    ) -> str:
        """Build from a tar streamed piece by piece: memory does not grow with the context.

        Progress: "sent N MiB of build context" about once a second while sending, then
        Podman's own output lines.
        """
        params: dict[str, str] = {
            "t": ref,
            "dockerfile": containerfile,
            "labels": json.dumps(labels),
            "buildargs": json.dumps(args),
            "rm": "true",
            "layers": "true",
            # The CLI's default, not the API's: a failed build must not leave its working
            # container behind (only `podman ps --external` shows those).
            "forcerm": "true",
        }
        if target:
            params["target"] = target
        progress = SentProgress(on_line)
        if self._socket is None:  # tcp:// or http://: podman-py sends a generator chunked too
            resp = self._call(
                "post",
                "/build",
                params=params,
                data=progress.counting(tar),
                stream=True,
                timeout=3600,
                headers={"Content-Type": "application/x-tar"},
            )
            progress.done()
            return self._build_result(ref, resp.iter_content(chunk_size=None), on_line)
        with self._over_socket("POST /build"):
            conn, raw = unix_http.post_stream(
                self._socket,
                "/build",
                params,
                tar,
                "application/x-tar",
                3600,
                progress.sent,
            )
        try:
            progress.done()
            if raw.status != 200:
                raise_for_status(raw.status, unix_http.error_message(raw.status, raw.read()))
            return self._build_result(ref, iter(lambda: raw.read1(65536), b""), on_line)
        except OSError as exc:
            raise TemporaryError(
                f"lost Podman at {self.url} during a build: {root_cause(exc)}"
            ) from None
        finally:
            conn.close()

    def _build_result(self, ref: str, chunks: Iterable[bytes], on_line: LineSink) -> str:
        image_id = ""
        for event in json_objects(chunks):
            if "error" in event:
                raise BuildFailed(f"build of {ref} failed: {str(event['error']).strip()}")
            text = str(event.get("stream", ""))
            if text.strip():
                on_line(text.rstrip("\n"))
            if "aux" in event and isinstance(event["aux"], dict):
                image_id = str(event["aux"].get("ID", image_id))
        return self.image_id(ref) or image_id

    def pull(self, ref: str, on_line: LineSink) -> str:
        resp = self._call(
            "post", "/images/pull", params={"reference": ref}, stream=True, timeout=3600
        )
        for event in json_lines(resp):
            if event.get("error"):
                raise PermanentError(f"pull of {ref} failed: {event['error']}")
            if event.get("stream"):
                on_line(str(event["stream"]).rstrip("\n"))
        return self.image_id(ref) or ""

    def remove_image(self, ident: str) -> None:
        with contextlib.suppress(NotFoundError):
            self._call("delete", f"/images/{ident}")

    # --- volumes ------------------------------------------------------------------------
    def create_volume(self, name: str, labels: dict[str, str]) -> None:
        self._call("post", "/volumes/create", data=json.dumps({"Name": name, "Label": labels}))

    def remove_volume(self, name: str) -> None:
        with contextlib.suppress(NotFoundError):
            self._call("delete", f"/volumes/{name}")

    # --- networks and secrets -----------------------------------------------------------
    def create_network(
        self,
        name: str,
        labels: dict[str, str],
        internal: bool,
        dns: bool,
        subnet: str | None,
        driver: str,
    ) -> None:
        body: dict[str, Any] = {
            "name": name,
            "labels": labels,
            "internal": internal,
            "dns_enabled": dns,
            "driver": driver,
        }
        if subnet:
            body["subnets"] = [{"subnet": subnet}]
        self._call("post", "/networks/create", data=json.dumps(body))

    def remove_network(self, name: str, force: bool = False) -> None:
        """Without force Podman refuses while a container uses it; with force it removes them."""
        with contextlib.suppress(NotFoundError):
            self._call(
                "delete", f"/networks/{name}", params={"force": "true" if force else "false"}
            )

    def create_secret(self, name: str, value: bytes, labels: dict[str, str]) -> str:
        """The value travels in the body only: never in a URL, a message or a log."""
        data = self._json(
            "post",
            "/secrets/create",
            params={"name": name, "driver": "file", "labels": json.dumps(labels)},
            data=value,
            headers={"Content-Type": "application/octet-stream"},
        )
        return str(data.get("ID", "")) if isinstance(data, dict) else ""

    def remove_secret(self, name: str) -> None:
        with contextlib.suppress(NotFoundError):
            self._call("delete", f"/secrets/{name}")

    # --- containers ---------------------------------------------------------------------
    def create_container(
        self, name: str, workload: Workload, image_id: str, labels: dict[str, str]
    ) -> str:
        spec = container_spec(name, workload, image_id, labels)
        optional = set(workload.optional_devices)
        while True:
            try:
                return str(self._json("post", "/containers/create", data=json.dumps(spec))["Id"])
            except (TemporaryError, PermanentError) as exc:
                # An optional device (ROCm's /dev/kfd, a second GPU) that this host lacks is
                # left out: only Podman, on the target, knows whether it exists.
                missing = missing_optional_device(str(exc), optional)
                if missing is None:
                    raise
                optional.discard(missing)
                spec["devices"] = [d for d in spec["devices"] if d["path"] != missing]

    def start(self, ident: str) -> None:
        self._call("post", f"/containers/{ident}/start", ok=(200, 204, 304))

    def stop(self, ident: str, timeout_s: float) -> None:
        t = max(0, round(timeout_s))
        self._call(
            "post",
            f"/containers/{ident}/stop",
            params={"timeout": t},
            ok=(200, 204, 304),
            timeout=t + 30,
        )

    def remove(self, ident: str, timeout_s: float) -> None:
        """Stop (with the workload's timeout) and remove; named volumes are never removed."""
        t = max(0, round(timeout_s))
        with contextlib.suppress(NotFoundError):
            self._call(
                "delete",
                f"/containers/{ident}",
                params={"force": "true", "timeout": t},
                timeout=t + 30,
            )

    def healthcheck(self, ident: str) -> str:
        """Run the container's health check now (no systemd timer needed): healthy|unhealthy|..."""
        data = self._json("get", f"/containers/{ident}/healthcheck", ok=(200,))
        return str(data.get("Status", "")) if isinstance(data, dict) else ""

    def exec(self, ident: str, command: list[str], timeout_s: float) -> tuple[int, str]:
        """Run a command in a running container; (exit code, stdout+stderr text)."""
        created = self._json(
            "post",
            f"/containers/{ident}/exec",
            data=json.dumps({"Cmd": command, "AttachStdout": True, "AttachStderr": True}),
        )
        exec_id = created["Id"]
        try:
            resp = self._call(
                "post",
                f"/exec/{exec_id}/start",
                data=json.dumps({"Detach": False, "Tty": False}),
                timeout=timeout_s,
            )
        except PodmanTimeout:
            return 124, f"timed out after {timeout_s:g}s"
        output = demux(resp.content)
        info = self._json("get", f"/exec/{exec_id}/json")
        return int(info.get("ExitCode") or 0), output
