"""A real EC2 server on 127.0.0.1 for the end-to-end tests: uvicorn in a background thread, and
boto3 clients signed with an account's keys."""

from __future__ import annotations

import contextlib
import secrets
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import botocore.exceptions
import pytest
import uvicorn

from euca.api.app import create_app
from euca.api.images import images_in_walrus, keep_images
from euca.api.s3 import open_walrus
from euca.console import create_console
from euca.core.config import Config
from euca.fleet.box import Timings
from euca.services.cloud import Cloud
from euca.services.common import ADMIN
from euca.services.seed import first_start
from euca.store import Store
from euca.walrus import Walrus
from euca.walrus.images import ImageStore


def until(check: Callable[[], Any], timeout: float = 30.0) -> Any:
    """Poll ``check`` until it answers something truthy, and return that; fail after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.05)
    raise AssertionError("timed out")


def refused(code: str, call: Callable[..., Any], **kw: Any) -> str:
    """``call(**kw)`` fails with EC2's error ``code``; returns its message."""
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        call(**kw)
    assert exc.value.response["Error"]["Code"] == code, exc.value.response["Error"]
    return str(exc.value.response["Error"]["Message"])


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
    imaging: ImageStore | None = None

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
        """A new public machine image (with a kernel and ramdisk unless told not), its bytes in Walrus."""
        from euca.services.seed import import_files, store_image

        assert self.imaging is not None
        name = f"ubuntu-{secrets.token_hex(4)}"
        if not kernel:
            return store_image(self.cloud.images, "machine", name.encode(), name)
        return import_files(self.cloud.images, name.encode(), kernel=b"vmlinuz-2.6.28",
                            ramdisk=b"initrd-2.6.28", name=name).machine

    def upload_bundle(self, account: str, location: str, image: bytes = b"", image_type: str = "machine",
                      acl: str = "aws-exec-read") -> str:
        """A bundle of ``image`` made with ``account``'s certificate and uploaded by it to
        ``location`` (``bucket/prefix.manifest.xml``), as ``euca bundle-image`` and ``euca
        upload-bundle`` do: the location, for RegisterImage."""
        import tempfile

        from euca.auth.certs import cloud_credentials, load_certificate, load_private_key, user_credentials
        from euca.core.s3errors import BucketAlreadyOwnedByYou
        from euca.walrus import Requester
        from euca.walrus.bundle import bundle_image

        assert self.walrus is not None
        self.keys(account)
        found = self.cloud.accounts.get(account)
        assert found is not None
        mine = user_credentials(self.data_dir, account, found.account_id)
        cloud = cloud_credentials(self.data_dir)
        bucket, _, key = location.partition("/")
        folder, _, manifest_name = key.rpartition("/")
        prefix = manifest_name.removesuffix(".manifest.xml")
        who = Requester(account, found.account_id, found.admin)
        with tempfile.TemporaryDirectory() as tmp:
            source = Path(tmp) / prefix
            source.write_bytes(image or f"{location} root file system\n".encode() + bytes(20000))
            made = bundle_image(source, Path(tmp) / "out", prefix, load_certificate(mine.cert),
                                load_private_key(mine.key), load_certificate(cloud.cert), "x86_64",
                                image_type=image_type, part_size=8192)
            with contextlib.suppress(BucketAlreadyOwnedByYou):
                self.walrus.create_bucket(who, bucket)
            for path in [*made.parts, made.manifest]:
                with path.open("rb") as body:
                    self.walrus.put_object(who, bucket, f"{folder}/{path.name}" if folder else path.name, body,
                                           acl=acl)
        return location

    def registered(self, client: Any, location: str, name: str, timeout: float = 20.0, **kw: Any) -> str:
        """RegisterImage, then wait until the image is available (the cloud unbundles it)."""
        image_id = str(client.register_image(ImageLocation=location, Name=name, **kw)["ImageId"])
        deadline = time.monotonic() + timeout
        while True:
            state = client.describe_images(ImageIds=[image_id])["Images"][0]
            if state["State"] == "available":
                return image_id
            if state["State"] == "failed" or time.monotonic() > deadline:
                raise AssertionError(f"{image_id} is {state['State']}: {state.get('StateReason')}")
            time.sleep(0.05)


@contextmanager
def running_box(data_dir: Path, nodes: int = 2, cores: int = 4, memory: int = 4096, disk: int = 100,
                timings: Timings | None = None, database: str | None = None,
                config: Config | None = None, **cloud: Any) -> Iterator[Box]:
    """``database``: a PostgreSQL URL instead of the SQLite file in ``data_dir``."""
    store = Store(database or str(data_dir / "euca.db"))
    first_start(store, images_in_walrus(store, data_dir), nodes, cores, memory, disk)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    opened = Cloud.open(store, config, timings or Timings(0.3, 0.3, 60), endpoint=url, **cloud)
    walrus = open_walrus(opened, data_dir, f"{url}/services/Walrus")
    images = keep_images(opened.images, data_dir, walrus)
    images.start()
    app = create_app(opened, tick_seconds=0.2, walrus=walrus, console=create_console)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", loop="asyncio",
                                           lifespan="on"))
    thread = threading.Thread(target=server.run, name="ec2-server", daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the test server did not start")
        time.sleep(0.02)
    try:
        yield Box(opened, url, data_dir, walrus, images)
    finally:
        server.should_exit = True
        thread.join(10)
        images.close()
        store.close()
