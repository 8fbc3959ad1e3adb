"""restic's REST protocol (FORMAT.md §10), as rest-server and `rclone serve restic` speak it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence

import httpx
import trio

from ..errors import BackendError
from .base import FileNotFound, FileType, Handle, Payload, PermanentError, TransientError, payload_size

API_V2 = "application/vnd.x.restic.rest.v2"


def _error(what: str, resp: httpx.Response) -> BackendError:
    if resp.status_code == 404:
        return FileNotFound(f"{what}: file does not exist")
    cls = TransientError if resp.status_code >= 500 or resp.status_code == 429 else PermanentError
    return cls(f"{what}: server answered {resp.status_code} {resp.reason_phrase}")


async def _stream(parts: Sequence[bytes]) -> AsyncIterator[bytes]:
    for part in parts:
        yield part


class RestBackend:
    """A repository behind a REST server; ``connections`` requests at most run at once."""

    blocking_load = None  # every request goes through the event loop

    def __init__(self, url: str, connections: int = 5) -> None:
        self.base = url.rstrip("/") + "/"
        self.location = f"rest:{url}"
        self.connections = connections
        self.upload_slots = connections  # one per connection hides the latency
        self._limiter = trio.CapacityLimiter(connections)
        self._client = httpx.AsyncClient(
            headers={"Accept": API_V2},
            limits=httpx.Limits(max_connections=connections, max_keepalive_connections=connections),
            timeout=httpx.Timeout(120.0, connect=20.0),
        )

    def url(self, h: Handle) -> str:
        if h.type is FileType.CONFIG:
            return self.base + "config"
        return f"{self.base}{h.type.value}/{h.name}"

    async def _request(self, what: str, method: str, url: str, **kw: object) -> httpx.Response:
        async with self._limiter:
            try:
                return await self._client.request(method, url, **kw)  # type: ignore[arg-type]
            except httpx.TransportError as exc:
                raise TransientError(f"{what}: {exc or type(exc).__name__}") from None

    async def create(self) -> None:
        resp = await self._request(self.location, "HEAD", self.base + "config")
        if resp.status_code == 200:
            raise BackendError(f"{self.location}: a repository already exists there")
        resp = await self._request(self.location, "POST", self.base, params={"create": "true"},
                                   headers={"Content-Type": "binary/octet-stream"})
        if resp.status_code != 200:
            raise _error(self.location, resp)

    async def list(self, type: FileType) -> list[tuple[str, int]]:
        what = f"{self.location} {type.value}/"
        resp = await self._request(what, "GET", f"{self.base}{type.value}/")
        if resp.status_code == 404:
            return []
        if resp.status_code != 200:
            raise _error(what, resp)
        body = resp.json()
        if resp.headers.get("Content-Type", "").startswith(API_V2):
            return [(e["name"], int(e["size"])) for e in body]
        # Protocol v1: names only; the sizes take one HEAD each.
        return [(name, await self.stat(Handle(type, name))) for name in body]

    async def stat(self, h: Handle) -> int:
        resp = await self._request(str(h), "HEAD", self.url(h))
        if resp.status_code != 200:
            raise _error(str(h), resp)
        return int(resp.headers["Content-Length"])

    async def load(self, h: Handle, length: int = 0, offset: int = 0) -> bytes:
        end = str(offset + length - 1) if length > 0 else ""
        resp = await self._request(str(h), "GET", self.url(h), headers={"Range": f"bytes={offset}-{end}"})
        if resp.status_code == 200 and (offset or length):
            return resp.content[offset:offset + length if length else None]
        if resp.status_code not in (200, 206):
            raise _error(str(h), resp)
        return resp.content

    async def save(self, h: Handle, data: Payload) -> None:
        headers = {"Content-Type": "application/octet-stream"}
        body: bytes | AsyncIterator[bytes]
        if isinstance(data, bytes):
            body = data
        else:  # parts streamed as they are, with their length (not chunked encoding)
            body = _stream(data)
            headers["Content-Length"] = str(payload_size(data))
        resp = await self._request(str(h), "POST", self.url(h), content=body, headers=headers)
        if resp.status_code != 200:
            raise _error(str(h), resp)

    async def remove(self, h: Handle) -> None:
        resp = await self._request(str(h), "DELETE", self.url(h))
        if resp.status_code != 200:
            raise _error(str(h), resp)

    async def close(self) -> None:
        await self._client.aclose()
