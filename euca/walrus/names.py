"""S3's rules for bucket names and object keys."""

from __future__ import annotations

import ipaddress
import re

from euca.core.s3errors import InvalidBucketName, KeyTooLongError

_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
MAX_KEY_BYTES = 1024


def check_bucket_name(name: str) -> None:
    """DNS-compliant names, as S3 requires of new buckets: 3-63 characters of lower-case letters,
    digits, dots and hyphens, starting and ending with a letter or digit, no two adjacent dots, not
    an IP address, none of the reserved prefixes and suffixes."""
    ok = bool(_BUCKET.match(name)) and ".." not in name and ".-" not in name and "-." not in name
    if ok:
        try:
            ipaddress.IPv4Address(name)
            ok = False
        except ValueError:
            pass
    if ok and (name.startswith(("xn--", "sthree-", "amzn-s3-demo-"))
               or name.endswith(("-s3alias", "--ol-s3", ".mrap", "--x-s3", "--table-s3"))):
        ok = False
    if not ok:
        raise InvalidBucketName(BucketName=name)


def check_key(key: str) -> None:
    if len(key.encode("utf-8", "surrogatepass")) > MAX_KEY_BYTES:
        raise KeyTooLongError()
