"""``GET /services/NetworkInfo``: the cluster's network view for a node's network agent
(Eucalyptus's BroadcastNetworkInfo, pulled instead of pushed).

The agent signs the request as a node controller's caller does (``euca.auth.shared_key``) with the key
the node was registered with, and names its node in ``X-Euca-Node``: the view lists every
instance's addresses and every group's rules, so nobody without a node's key reads it. An unknown
node, a missing, stale or wrong signature get 403.
"""

from __future__ import annotations

from collections.abc import Callable

from starlette.types import Receive, Scope, Send

from euca.auth.shared_key import DATE, SIGNATURE, verify
from euca.services.cloud import Cloud, stored_nodes
from euca.services.netview import network_view, render_view

PATH = "/services/NetworkInfo"
NODE = "x-euca-node"


def node_keys(cloud: Cloud) -> Callable[[str], str | None]:
    def key_of(node: str) -> str | None:
        return next((n.key for n in stored_nodes(cloud.store) if n.name == node and n.key), None)
    return key_of


class NetViewApp:
    def __init__(self, cloud: Cloud, key_of: Callable[[str], str | None], metadata: str = "",
                 mode: str | None = None) -> None:
        self.cloud, self.key_of, self.metadata, self.mode = cloud, key_of, metadata, mode

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        key = self.key_of(headers.get(NODE, ""))
        refused = "unknown node" if key is None else verify(key, scope["method"], scope["path"], b"",
                                                           headers.get(DATE), headers.get(SIGNATURE))
        if scope["method"] != "GET":
            refused = "GET only"
        if refused is not None:
            await _send(send, 403, refused.encode(), b"text/plain")
            return
        self.cloud.refresh()
        body, etag = render_view(network_view(self.cloud, self.metadata, self.mode))
        if headers.get("if-none-match") == etag:
            await _send(send, 304, b"", b"application/json", etag)
        else:
            await _send(send, 200, body, b"application/json", etag)


async def _send(send: Send, status: int, body: bytes, kind: bytes, etag: str = "") -> None:
    headers = [(b"content-type", kind), (b"content-length", str(len(body)).encode())]
    if etag:
        headers.append((b"etag", etag.encode()))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
