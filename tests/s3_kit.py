"""S3 clients against the test server's Walrus (``running_box``): boto3 path style under
``/services/Walrus``, any account, any signature version."""

from __future__ import annotations

from typing import Any

import boto3
from botocore.config import Config

from tests.ec2_server import Box

OPEN: list[Any] = []  # clients the tests made; closed after each test (their sockets too)


def close_all() -> None:
    while OPEN:
        OPEN.pop().close()


def s3_client(box: Box, account: str = "admin", signature: str = "s3v4", **config: Any) -> Any:
    access, secret = box.keys(account)
    client = boto3.client("s3", endpoint_url=box.url + "/services/Walrus", aws_access_key_id=access,
                          aws_secret_access_key=secret, region_name="eucalyptus",
                          config=Config(s3={"addressing_style": "path"}, signature_version=signature,
                                        retries={"max_attempts": 1}, **config))
    OPEN.append(client)
    return client


def anonymous(box: Box) -> Any:
    from botocore import UNSIGNED

    client = boto3.client("s3", endpoint_url=box.url + "/services/Walrus", region_name="eucalyptus",
                          config=Config(s3={"addressing_style": "path"}, signature_version=UNSIGNED,
                                        retries={"max_attempts": 1}))
    OPEN.append(client)
    return client
