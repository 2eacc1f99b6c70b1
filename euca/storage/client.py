"""The cloud's side of its Storage Controller: the SC in this process, or ``euca storage-controller``
on another host, behind one interface.

:class:`StorageClient` is what the volume and snapshot services hold. The in-process
:class:`~euca.storage.controller.StorageController` satisfies it as it is; :class:`RemoteStorage`
speaks the SC's HTTP API (``euca.storage.service``), each request signed with the key the two
share. A refusal is a :class:`~euca.storage.backends.StorageError` carrying the SC's ``code``
(``VolumeLimitExceeded`` when a limit was hit); an SC that does not answer is
:class:`StorageUnreachable`.
"""

from __future__ import annotations

import http.client
from collections.abc import Iterable, Iterator
from typing import Any, Protocol
from urllib.parse import quote, urlsplit

import orjson

from euca.auth import shared_key
from euca.storage import frames
from euca.storage.backends import StorageError
from euca.storage.controller import Progress, VolumeLimit
from euca.storage.tgt import Export

TIMEOUT = 60.0


class StorageUnreachable(StorageError):
    """The Storage Controller did not answer."""


class StorageClient(Protocol):
    zone: str
    # whether in-box nodes can be handed a volume's own file (the SC is in this process)
    local: bool

    def admit(self, volume_id: str, size_gb: int, account: str = "") -> None: ...

    def fill(self, volume_id: str, source: Iterable[bytes] | None = None, progress: Progress | None = None) -> None: ...

    def delete(self, volume_id: str) -> None: ...

    def export(self, volume_id: str, initiator: str = "ALL") -> Export: ...

    def local_path(self, volume_id: str) -> str: ...

    def unexport(self, volume_id: str) -> None: ...

    def snapshot(self, volume_id: str, snapshot_id: str, progress: Progress | None = None) -> Iterator[bytes]: ...

    def describe(self) -> list[dict[str, Any]]: ...


class RemoteStorage:
    """``http://host:8773`` (the SC's port) and the key this cloud shares with it."""

    local = False

    def __init__(self, url: str, key: str, zone: str = "", timeout: float = TIMEOUT) -> None:
        parts = urlsplit(url)
        if parts.scheme != "http" or not parts.hostname:
            raise ValueError(f"a storage controller's URL is http://host:port, not {url!r}")
        self.url, self.key, self.zone, self.timeout = url, key, zone, timeout
        self.host, self.port = parts.hostname, parts.port or 8773

    def admit(self, volume_id: str, size_gb: int, account: str = "") -> None:
        self._call("admit", {"volume_id": volume_id, "size": size_gb, "account": account})

    def fill(self, volume_id: str, source: Iterable[bytes] | None = None, progress: Progress | None = None) -> None:
        if source is None:
            self._call("fill", {"volume_id": volume_id})
            return
        conn, response = self._request("PUT", f"/sc/fill/{quote(volume_id)}", source)
        try:
            self._answer(response, "fill")
        finally:
            conn.close()
        if progress is not None:
            progress(1, 1)

    def delete(self, volume_id: str) -> None:
        self._call("delete", {"volume_id": volume_id})

    def export(self, volume_id: str, initiator: str = "ALL") -> Export:
        answer = self._call("export", {"volume_id": volume_id, "initiator": initiator})
        return Export(str(answer["iqn"]), int(answer["tid"]), str(answer["host"]), int(answer["port"]),
                      int(answer["lun"]))

    def local_path(self, volume_id: str) -> str:
        raise StorageError(f"{volume_id}: the storage controller is on another host; export the volume")

    def unexport(self, volume_id: str) -> None:
        self._call("unexport", {"volume_id": volume_id})

    def snapshot(self, volume_id: str, snapshot_id: str, progress: Progress | None = None) -> Iterator[bytes]:
        conn, response = self._request("POST", f"/sc/snapshot/{quote(volume_id)}/{quote(snapshot_id)}", b"")
        if response.status != 200:
            try:
                self._answer(response, "snapshot")
            finally:
                conn.close()
        return self._stream(conn, response, progress)

    def _stream(self, conn: http.client.HTTPConnection, response: http.client.HTTPResponse,
                progress: Progress | None) -> Iterator[bytes]:
        """The gzip bytes out of the SC's frames; a stream cut short raises StorageUnreachable
        (the snapshot fails) rather than passing for a whole one."""
        try:
            size = int(response.getheader(frames.SIZE_HEADER) or "0")
            yield from frames.unframed(response.read, size, progress)
        except (frames.ShortStream, ValueError, OSError, http.client.HTTPException) as exc:
            raise StorageUnreachable(f"{self.url}: snapshot: {exc}") from None
        finally:
            conn.close()

    def describe(self) -> list[dict[str, Any]]:
        return list(self._call("describe", {})["volumes"])

    def _call(self, operation: str, payload: dict[str, Any]) -> Any:
        conn, response = self._request("POST", f"/sc/{operation}", orjson.dumps(payload))
        try:
            return self._answer(response, operation)
        finally:
            conn.close()

    def _request(self, method: str, path: str,
                 body: bytes | Iterable[bytes]) -> tuple[http.client.HTTPConnection, http.client.HTTPResponse]:
        signed = shared_key.sign(self.key, method, path, body if isinstance(body, bytes) else shared_key.UNSIGNED)
        conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
        try:
            if isinstance(body, bytes):
                conn.request(method, path, body, {"content-type": "application/json", **signed})
            else:
                conn.request(method, path, body, {"content-type": "application/octet-stream", **signed},
                             encode_chunked=True)
            return conn, conn.getresponse()
        except (OSError, http.client.HTTPException) as exc:
            conn.close()
            raise StorageUnreachable(f"{self.url}: {path}: {exc}") from None

    def _answer(self, response: http.client.HTTPResponse, operation: str) -> Any:
        try:
            data = response.read()
        except (OSError, http.client.HTTPException) as exc:
            raise StorageUnreachable(f"{self.url}: {operation}: {exc}") from None
        try:
            answer = orjson.loads(data) if data else {}
        except orjson.JSONDecodeError:
            raise StorageUnreachable(f"{self.url}: {operation}: not a storage controller's answer") from None
        if response.status != 200:
            message = f"{answer.get('error', '')}" if isinstance(answer, dict) else ""
            if isinstance(answer, dict) and answer.get("code") == VolumeLimit.code:
                raise VolumeLimit(message)
            raise StorageError(message or f"{operation}: {response.status}")
        return answer
