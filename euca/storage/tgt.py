"""Volumes exported over iSCSI by Debian's ``tgt`` (a userspace target: no kernel module).

One target per volume, named ``iqn.2009-06.com.eucalyptus.<zone>:<vol-id>`` as Eucalyptus 2.0
named them, with the volume as LUN 1, bound to the initiator's address (or ``ALL``). Target ids
(``tid``) are tgtd's small integers: the next free one is read from ``tgtadm --op show``.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass
from pathlib import Path

from euca.storage.backends import Runner, StorageError, run_command

IQN_PREFIX = "iqn.2009-06.com.eucalyptus."
LUN = 1
_TARGET = re.compile(r"^Target (\d+): (\S+)$", re.M)


@dataclass(frozen=True)
class Export:
    """How a node reaches a volume: tgtd's target ``iqn``, LUN 1, on ``host:port``."""

    iqn: str
    tid: int
    host: str
    port: int = 3260
    lun: int = LUN


def iqn_of(zone: str, volume_id: str) -> str:
    safe = re.sub(r"[^a-z0-9.-]", "-", zone.lower()) or "cluster"
    return f"{IQN_PREFIX}{safe}:{volume_id.lower()}"


class Tgt:
    """tgtadm against the local tgtd (``--lld iscsi``)."""

    def __init__(self, host: str = "127.0.0.1", port: int = 3260, run: Runner = run_command,
                 control_port: int | None = None) -> None:
        self.host, self.port, self.run = host, port, run
        self._control = ["-C", str(control_port)] if control_port is not None else []
        # a new target's id is read from tgtd and then taken: two exports at once would pick the same one
        self._lock = threading.Lock()

    def _tgtadm(self, *args: str) -> str:
        return self.run(["tgtadm", *self._control, "--lld", "iscsi", *args])

    def targets(self) -> dict[str, int]:
        """The targets tgtd has now: IQN -> tid."""
        return {m.group(2): int(m.group(1)) for m in _TARGET.finditer(self._tgtadm("--op", "show", "--mode", "target"))}

    def export(self, iqn: str, path: Path, initiator: str = "ALL") -> Export:
        """Make (or find) the target for ``path`` and let ``initiator`` (an address, or ALL) in."""
        with self._lock:
            return self._export(iqn, path, initiator)

    def _export(self, iqn: str, path: Path, initiator: str) -> Export:
        have = self.targets()
        if iqn in have:
            return Export(iqn, have[iqn], self.host, self.port)
        tid = next(t for t in range(1, len(have) + 2) if t not in have.values())
        self._tgtadm("--op", "new", "--mode", "target", "--tid", str(tid), "-T", iqn)
        try:
            self._tgtadm("--op", "new", "--mode", "logicalunit", "--tid", str(tid), "--lun", str(LUN),
                         "-b", str(path))
            self._tgtadm("--op", "bind", "--mode", "target", "--tid", str(tid), "-I", initiator)
        except StorageError:
            self._tgtadm("--op", "delete", "--force", "--mode", "target", "--tid", str(tid))
            raise
        return Export(iqn, tid, self.host, self.port)

    def unexport(self, iqn: str) -> bool:
        """Remove the target (and with it the LUN and its bindings); False if there was none."""
        with self._lock:
            tid = self.targets().get(iqn)
            if tid is None:
                return False
            self._tgtadm("--op", "delete", "--force", "--mode", "target", "--tid", str(tid))
            return True
