"""Running an ASGI app under uvicorn, and saying so only once it listens.

``euca up`` and ``euca node-controller`` print a line that scripts and operators wait for before
they send the first request; printed before the socket is bound, that line lets a fast client in
too early (connection refused). Here it is printed after uvicorn's start-up has bound the socket.
"""

from __future__ import annotations

import socket
from typing import Any

import uvicorn


class _Server(uvicorn.Server):
    def __init__(self, config: uvicorn.Config, ready: str) -> None:
        super().__init__(config)
        self.ready = ready

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if not self.should_exit:
            print(self.ready, flush=True)


def serve(app: Any, host: str, port: int, ready: str, extra_port: int | None = None, **options: Any) -> None:
    """Serve ``app`` on host:port (and ``extra_port``: S3's own) until stopped (SIGINT/SIGTERM);
    print ``ready`` once it listens."""
    config = uvicorn.Config(app, host=host, port=port, **options)
    if extra_port is None:
        _Server(config, ready).run()
        return
    sockets = []
    for number in (port, extra_port):
        sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, number))
        sock.set_inheritable(True)
        sockets.append(sock)
    _Server(config, ready).run(sockets=sockets)
