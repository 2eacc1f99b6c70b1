"""Running an ASGI app under uvicorn, and saying so only once it listens.

``euca up`` and ``euca node-controller`` print a line that scripts and operators wait for before
they send the first request; printed before the socket is bound, that line lets a fast client in
too early (connection refused). Here it is printed after uvicorn's start-up has bound the socket.
"""

from __future__ import annotations

import contextlib
import os
import socket
from typing import Any

import uvicorn

TCP_SAVE_SYN = 27  # Linux: keep each connection's SYN (IP and TCP headers) for TCP_SAVED_SYN


class _Server(uvicorn.Server):
    def __init__(self, config: uvicorn.Config, ready: str, save_syn: bool = False) -> None:
        super().__init__(config)
        self.ready, self.save_syn = ready, save_syn

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if self.save_syn:
            for server in self.servers:
                for listener in server.sockets:
                    with contextlib.suppress(OSError), socket.socket(fileno=os.dup(listener.fileno())) as dup:
                        dup.setsockopt(socket.IPPROTO_TCP, TCP_SAVE_SYN, 1)
        if not self.should_exit:
            print(self.ready, flush=True)


def serve(app: Any, host: str, port: int, ready: str, extra_port: int | None = None, save_syn: bool = False,
          **options: Any) -> None:
    """Serve ``app`` on host:port (and ``extra_port``: S3's own) until stopped (SIGINT/SIGTERM);
    print ``ready`` once it listens. ``save_syn``: the kernel keeps each connection's SYN, so the
    app can read the TTL a request arrived with (the metadata service's IMDSv2 hop limit)."""
    config = uvicorn.Config(app, host=host, port=port, **options)
    if extra_port is None:
        _Server(config, ready, save_syn).run()
        return
    sockets = []
    for number in (port, extra_port):
        sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, number))
        sock.set_inheritable(True)
        sockets.append(sock)
    _Server(config, ready, save_syn).run(sockets=sockets)
