"""VM types: the instance sizes a user may ask for (cores, memory in MB, disk in GB)."""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

_NAME = re.compile(r"^[a-z][a-z0-9]*\.[a-z0-9]+$")


@dataclass(frozen=True)
class VmType:
    """One row of Eucalyptus's VM type table."""

    name: str
    cores: int
    memory: int  # MB
    disk: int  # GB

    def __post_init__(self) -> None:
        if not _NAME.match(self.name):
            raise ValueError(f"VM type name {self.name!r} must look like m1.small")
        for what in ("cores", "memory", "disk"):
            value = getattr(self, what)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"VM type {self.name}: {what} must be a positive integer, not {value!r}")

    @property
    def need(self) -> tuple[int, int, int]:
        return (self.cores, self.memory, self.disk)


# Eucalyptus 3.3+ defaults (vmtypes/VmTypes.java), with t1.micro and m1.medium, smallest first.
DEFAULT_VMTYPES = (
    VmType("t1.micro", 1, 256, 5),
    VmType("m1.small", 1, 256, 5),
    VmType("m1.medium", 1, 512, 10),
    VmType("c1.medium", 2, 512, 10),
    VmType("m1.large", 2, 512, 10),
    VmType("m1.xlarge", 2, 1024, 10),
    VmType("c1.xlarge", 2, 2048, 10),
)

# The current-generation names EC2 clients pass by habit, as Eucalyptus kept adding AWS's names
# (cores, MB and AWS's memory; a 10 GB root disk for the EBS-only types, whose root is the image).
AWS_VMTYPES = (
    VmType("t2.nano", 1, 512, 10),
    VmType("t2.micro", 1, 1024, 10),
    VmType("t2.small", 1, 2048, 10),
    VmType("t2.medium", 2, 4096, 10),
    VmType("t2.large", 2, 8192, 10),
    VmType("t3.nano", 2, 512, 10),
    VmType("t3.micro", 2, 1024, 10),
    VmType("t3.small", 2, 2048, 10),
    VmType("t3.medium", 2, 4096, 10),
    VmType("t3.large", 2, 8192, 10),
    VmType("m5.large", 2, 8192, 10),
    VmType("m5.xlarge", 4, 16384, 10),
    VmType("m5.2xlarge", 8, 32768, 10),
    VmType("c5.large", 2, 4096, 10),
    VmType("c5.xlarge", 4, 8192, 10),
    VmType("r5.large", 2, 16384, 10),
)
# The cloud's table: Eucalyptus's types, then AWS's. (The simulator's default is Eucalyptus's alone:
# placement keeps per-type state, and a planning run pays for every type on every start.)
CLOUD_VMTYPES = DEFAULT_VMTYPES + AWS_VMTYPES


class VmTypes:
    """The ordered VM type table; the order is the kernel's type index and the describe order."""

    def __init__(self, types: Iterable[VmType] = DEFAULT_VMTYPES) -> None:
        self._types = list(types)
        if not self._types:
            raise ValueError("at least one VM type is needed")
        self._index = {t.name: i for i, t in enumerate(self._types)}
        self.names = tuple(t.name for t in self._types)
        if len(self._index) != len(self._types):
            raise ValueError("VM type names must be unique")

    def __iter__(self) -> Iterator[VmType]:
        return iter(self._types)

    def __len__(self) -> int:
        return len(self._types)

    def __contains__(self, name: object) -> bool:
        return name in self._index

    def __getitem__(self, name: str) -> VmType:
        return self._types[self.index(name)]

    def index(self, name: str) -> int:
        try:
            return self._index[name]
        except KeyError:
            raise KeyError(f"unknown VM type {name!r} (known: {', '.join(self._index)})") from None

    def needs(self) -> list[tuple[int, int, int]]:
        return [t.need for t in self._types]

    def replaced(self, vmtype: VmType) -> VmTypes:
        """A new table with one type edited (or added at the end)."""
        types = list(self._types)
        if vmtype.name in self._index:
            types[self._index[vmtype.name]] = vmtype
        else:
            types.append(vmtype)
        return VmTypes(types)
