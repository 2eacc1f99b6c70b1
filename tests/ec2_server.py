"""A real EC2 server on 127.0.0.1 for the end-to-end tests: uvicorn in a background thread, and
boto3 clients signed with an account's keys."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import uvicorn

from euca.api.app import create_app
from euca.api.s3 import open_walrus
from euca.core.config import Config
from euca.fleet.box import Timings
from euca.services.cloud import Cloud
from euca.services.common import ADMIN
from euca.services.seed import first_start
from euca.store import Store
from euca.walrus import Walrus


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Box:
    cloud: Cloud
    url: str
    data_dir: Path
    walrus: Walrus | None = None

    def keys(self, account: str = ADMIN) -> tuple[str, str]:
        if self.cloud.accounts.get(account) is None:
            self.cloud.accounts.create(account)
        key = self.cloud.accounts.keys_of(account)[0]
        return key.access_key, key.secret_key

    def client(self, account: str = ADMIN, **kw: Any) -> Any:
        access, secret = self.keys(account)
        return boto3.client("ec2", endpoint_url=self.url, aws_access_key_id=access, aws_secret_access_key=secret,
                            region_name="eucalyptus", **kw)

    def image(self, kernel: bool = True) -> str:
        admin = self.cloud.accounts.get(ADMIN)
        assert admin is not None
        eki = self.cloud.images.register(admin.caller, "images/vmlinuz-2.6.28", kind="kernel", public=True)
        eri = self.cloud.images.register(admin.caller, "images/initrd-2.6.28", kind="ramdisk", public=True)
        return self.cloud.images.register(admin.caller, f"images/ubuntu-{eki}.manifest.xml", public=True,
                                          kernel_id=eki if kernel else None, ramdisk_id=eri if kernel else None)


@contextmanager
def running_box(data_dir: Path, nodes: int = 2, cores: int = 4, memory: int = 4096, disk: int = 100,
                timings: Timings | None = None, database: str | None = None,
                config: Config | None = None, **cloud: Any) -> Iterator[Box]:
    """``database``: a PostgreSQL URL instead of the SQLite file in ``data_dir``."""
    store = Store(database or str(data_dir / "euca.db"))
    first_start(store, data_dir, nodes, cores, memory, disk)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    opened = Cloud.open(store, config, timings or Timings(0.3, 0.3, 60), endpoint=url, **cloud)
    walrus = open_walrus(opened, data_dir, f"{url}/services/Walrus")
    server = uvicorn.Server(uvicorn.Config(create_app(opened, tick_seconds=0.2, walrus=walrus), host="127.0.0.1",
                                           port=port,
                                           log_level="warning", loop="asyncio", lifespan="on"))
    thread = threading.Thread(target=server.run, name="ec2-server", daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the test server did not start")
        time.sleep(0.02)
    try:
        yield Box(opened, url, data_dir, walrus)
    finally:
        server.should_exit = True
        thread.join(10)
        store.close()
