"""The key a component shares with the cloud, as every command that needs one takes it."""

from __future__ import annotations

import os
from pathlib import Path


def shared_key(key: str | None, key_file: str | None, variable: str, file_flag: str = "--key-file") -> str:
    """``key`` as given, else the contents of ``key_file``, else ``$variable`` ("" when none of them
    says). A file that cannot be read is a ValueError naming ``file_flag``."""
    if key:
        return key
    if key_file:
        try:
            return Path(key_file).read_text().strip()
        except OSError as exc:
            raise ValueError(f"{file_flag}: {exc}") from None
    return os.environ.get(variable, "")
