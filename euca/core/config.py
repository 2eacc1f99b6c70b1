"""``eucalyptus.conf``: the cluster's configuration, read as Eucalyptus reads it.

The file is a list of ``KEY="value"`` lines (shell syntax: comments after ``#``, optional quotes,
optional ``export``). Variables keep the reference's names (SCHEDPOLICY, NODES, VNET_MODE, ...).
A bad value is a ``ConfigError`` naming the file, the line and the variable, and nothing is
loaded. Variables Eucalyptus knows but this cluster does not use, and unknown ones, are kept as
warnings rather than errors, so an operator's existing file loads.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path

from drivers.protocol import HYPERVISORS
from euca.core.ipnotation import ip_to_int, netmask_bits, parse_macmap, parse_public_ips
from pyx.placement import POLICIES

NET_MODES = ("SYSTEM", "STATIC", "MANAGED", "MANAGED-NOVLAN")
# The modes with per-group networks and a VNET_PUBLICIPS pool.
MANAGED_MODES = ("MANAGED", "MANAGED-NOVLAN")

_LINE = re.compile(r"^(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)=(.*)$")

# Variables of Eucalyptus's eucalyptus.conf that this cluster reads elsewhere or not at all.
KNOWN_ELSEWHERE = frozenset({
    "EUCALYPTUS", "EUCA_USER", "ENABLE_WS_SECURITY", "LOGLEVEL", "CLOUD_OPTS", "CC_ARBITRATORS",
    "DISABLE_DNS", "DISABLE_ISCSI", "DISABLE_EBS", "CLOUD_CERT", "CLOUD_KEY", "NC_SERVICE",
    "CC_SERVICE", "VNET_DHCPSDAMON", "VNET_DHCPUSE", "VNET_LOCALIP", "VNET_PRIVATEIPS",
    "NC_WORK_SIZE", "USE_VIRTIO_DISK", "USE_VIRTIO_NET", "USE_VIRTIO_ROOT", "MANUAL_INSTANCES_CLEANUP",
    "CREATE_SC_LOOP_DEVICES", "LOGROLLNUMBER", "LOGMAXSIZE", "APACHE2_MODULE_DIR", "AXIS2C_HOME",
})


class ConfigError(ValueError):
    """A value in eucalyptus.conf (or a flag) that the cluster cannot run with."""


@dataclass(frozen=True)
class Config:
    """The cluster controller's and node controllers' settings, defaults as Eucalyptus ships them
    (cloud-in-a-box choices where Eucalyptus has none: MANAGED-NOVLAN networking, a private
    172.19.0.0/16 and a TEST-NET-2 range of public addresses that no packet ever reaches)."""

    schedpolicy: str = "ROUNDROBIN"
    schedpolicy_fallback: str = "BESTFIT"
    power_idlethresh: int = 300
    power_wakethresh: int = 300
    nc_polling_frequency: int = 6
    instance_timeout: int = 300
    nodes: tuple[str, ...] = ()
    nc_port: int = 8775
    cc_port: int = 8774
    max_cores: int = 0
    max_mem: int = 0
    max_disk: int = 0
    nc_cache_size: int = 999999
    concurrent_disk_ops: int = 4
    swap_size: int = 512
    instance_path: str = "/var/lib/eucalyptus/instances"
    hypervisor: str = "kvm"
    vnet_mode: str = "MANAGED-NOVLAN"
    vnet_subnet: str = "172.19.0.0"
    vnet_netmask: str = "255.255.0.0"
    vnet_addrspernet: int = 32
    vnet_dns: str = "127.0.0.1"
    vnet_publicips: str = "198.51.100.1-198.51.100.254"
    vnet_privinterface: str = "eth0"
    vnet_pubinterface: str = "eth0"
    vnet_bridge: str = ""
    vnet_dhcpdaemon: str = "/usr/sbin/dhcpd"
    vnet_dhcpuser: str = "root"
    vnet_cloudip: str = ""
    vnet_broadcast: str = ""
    vnet_router: str = ""
    vnet_macmap: str = ""
    vnet_macprefix: str = "d0:0d"
    vnet_domainname: str = "eucalyptus.internal"
    # Eucalyptus 2.0 keeps the VLAN range as cluster properties (minVlan 10, maxVlan 4095).
    vnet_vlanmin: int = 10
    vnet_vlanmax: int = 4095
    warnings: tuple[str, ...] = field(default=(), compare=False)

    @property
    def public_ips(self) -> list[int]:
        return parse_public_ips(self.vnet_publicips)

    @property
    def macmap(self) -> list[tuple[str, int]]:
        return parse_macmap(self.vnet_macmap)


# --- value checkers: each returns the typed value or raises ValueError with the reason ---------------

def _int(low: int, high: int = 2**62) -> Callable[[str], int]:
    def check(text: str) -> int:
        try:
            value = int(text.strip())
        except ValueError:
            raise ValueError("not an integer") from None
        if not low <= value <= high:
            raise ValueError(f"must be between {low} and {high}" if high < 2**62 else f"must be at least {low}")
        return value
    return check


def _choice(options: tuple[str, ...], what: str, fold: Callable[[str], str] = str.upper) -> Callable[[str], str]:
    def check(text: str) -> str:
        value = fold(text.strip())
        if value not in options:
            raise ValueError(f"unknown {what} (expected one of {', '.join(options)})")
        return value
    return check


def _ip(text: str) -> str:
    ip_to_int(text)
    return text.strip()


def _optional_ip(text: str) -> str:
    return _ip(text) if text.strip() else ""


def _netmask(text: str) -> str:
    netmask_bits(text)
    return text.strip()


def _nodes(text: str) -> tuple[str, ...]:
    return tuple(text.split())


def _text(text: str) -> str:
    return text


def _publicips(text: str) -> str:
    parse_public_ips(text)
    return text


def _macmap(text: str) -> str:
    parse_macmap(text)
    return text


def _macprefix(text: str) -> str:
    if not re.fullmatch(r"[0-9a-fA-F]{2}:[0-9a-fA-F]{2}", text.strip()):
        raise ValueError("must be two hex pairs such as d0:0d")
    return text.strip().lower()


def _fallback(text: str) -> str:
    value = _choice(POLICIES, "scheduling policy")(text)
    if value == "CACHEAWARE":
        raise ValueError("CACHEAWARE cannot be its own fallback")
    return value


_CHECKS: dict[str, Callable[[str], object]] = {
    "SCHEDPOLICY": _choice(POLICIES, "scheduling policy"),
    "SCHEDPOLICY_FALLBACK": _fallback,
    "POWER_IDLETHRESH": _int(300),
    "POWER_WAKETHRESH": _int(300),
    "NC_POLLING_FREQUENCY": _int(6),
    "INSTANCE_TIMEOUT": _int(30),
    "NODES": _nodes,
    "NC_PORT": _int(1, 65535),
    "CC_PORT": _int(1, 65535),
    "MAX_CORES": _int(0),
    "MAX_MEM": _int(0),
    "MAX_DISK": _int(0),
    "NC_CACHE_SIZE": _int(0),
    "CONCURRENT_DISK_OPS": _int(1, 1024),
    "SWAP_SIZE": _int(0),
    "INSTANCE_PATH": _text,
    "HYPERVISOR": _choice(HYPERVISORS, "hypervisor", str.lower),
    "VNET_MODE": _choice(NET_MODES, "networking mode"),
    "VNET_SUBNET": _ip,
    "VNET_NETMASK": _netmask,
    "VNET_ADDRSPERNET": _int(1),
    "VNET_DNS": _ip,
    "VNET_PUBLICIPS": _publicips,
    "VNET_PRIVINTERFACE": _text,
    "VNET_PUBINTERFACE": _text,
    "VNET_BRIDGE": _text,
    "VNET_DHCPDAEMON": _text,
    "VNET_DHCPUSER": _text,
    "VNET_CLOUDIP": _optional_ip,
    "VNET_BROADCAST": _optional_ip,
    "VNET_ROUTER": _optional_ip,
    "VNET_MACMAP": _macmap,
    "VNET_MACPREFIX": _macprefix,
    "VNET_DOMAINNAME": _text,
    "VNET_VLANMIN": _int(1, 4095),
    "VNET_VLANMAX": _int(1, 4095),
}
# Eucalyptus 1.4 had one interface variable for both sides.
_ALIASES = {"VNET_INTERFACE": ("VNET_PRIVINTERFACE", "VNET_PUBINTERFACE")}
_FIELDS = {f.name for f in fields(Config)}


def _unquote(raw: str) -> str:
    """The value of a shell assignment: quoted (single or double, then maybe a comment) or bare."""
    raw = raw.strip()
    if raw[:1] in ('"', "'"):
        quote = raw[0]
        end = raw.find(quote, 1)
        if end < 0:
            raise ValueError(f"unterminated {quote} quote")
        rest = raw[end + 1:].strip()
        if rest and not rest.startswith("#"):
            raise ValueError(f"unexpected text after the closing quote: {rest!r}")
        return raw[1:end]
    value = raw.split("#", 1)[0].strip()
    if any(c.isspace() for c in value):
        raise ValueError("a value with spaces must be quoted")
    return value


@dataclass
class _Entry:
    raw: str
    where: str


def _scan(text: str, source: str) -> dict[str, _Entry]:
    entries: dict[str, _Entry] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        where = f"{source}:{number}"
        match = _LINE.match(stripped)
        if not match:
            raise ConfigError(f"{where}: not a KEY=\"value\" line: {stripped[:60]!r}")
        name, raw = match.group(1), match.group(2)
        try:
            value = _unquote(raw)
        except ValueError as exc:
            raise ConfigError(f"{where}: {name}: {exc}") from None
        for target in _ALIASES.get(name, (name,)):
            entries[target] = _Entry(value, where)
    return entries


def load_config(
    path: str | Path | None = None,
    *,
    text: str | None = None,
    overrides: Mapping[str, str] | None = None,
) -> Config:
    """Read eucalyptus.conf from ``path`` (or ``text``), then apply ``overrides`` (flags, by variable name).

    Raises ConfigError naming the source line and the variable; on error nothing is returned.
    """
    source = str(path) if path is not None else "eucalyptus.conf"
    if path is not None:
        try:
            text = Path(path).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{source}: cannot read: {exc}") from None
    entries = _scan(text or "", source)
    for name, value in (overrides or {}).items():
        for target in _ALIASES.get(name.upper(), (name.upper(),)):
            entries[target] = _Entry(value, f"flag {name}")

    values: dict[str, object] = {}
    warnings: list[str] = []
    for name, entry in entries.items():
        check = _CHECKS.get(name)
        if check is None:
            note = "not used by this cluster" if name in KNOWN_ELSEWHERE else "unknown variable, ignored"
            warnings.append(f"{entry.where}: {name}: {note}")
            continue
        try:
            values[name.lower()] = check(entry.raw)
        except ValueError as exc:
            raise ConfigError(f'{entry.where}: {name}="{entry.raw}": {exc}') from None
    assert set(values) <= _FIELDS
    config = Config(**values, warnings=tuple(warnings))  # type: ignore[arg-type]
    _check_together(config, entries)
    return config


def _check_together(config: Config, entries: Mapping[str, _Entry]) -> None:
    """Checks that involve several variables; the error names the variable that has to change."""

    def fail(name: str, reason: str) -> None:
        entry = entries.get(name)
        where = entry.where if entry else "default"
        raise ConfigError(f"{where}: {name}: {reason}")

    if config.vnet_vlanmin > config.vnet_vlanmax:
        fail("VNET_VLANMIN", f"{config.vnet_vlanmin} is above VNET_VLANMAX {config.vnet_vlanmax}")
    if config.vnet_mode == "STATIC" and not config.vnet_macmap.strip():
        fail("VNET_MACMAP", "STATIC mode needs at least one MAC=IP pair")
    if config.vnet_mode in MANAGED_MODES:
        bits = netmask_bits(config.vnet_netmask)
        size = 1 << (32 - bits)
        subnet = ip_to_int(config.vnet_subnet)
        if subnet & (size - 1):
            fail("VNET_SUBNET", f"{config.vnet_subnet} is not aligned to VNET_NETMASK {config.vnet_netmask}")
        per_net = config.vnet_addrspernet
        if per_net & (per_net - 1) or not 16 <= per_net <= 2048:
            fail("VNET_ADDRSPERNET", f"{per_net} must be a power of two between 16 and 2048")
        # Network v owns block v - 2, so the subnet must reach the first usable VLAN's block.
        last = min(config.vnet_vlanmax, size // per_net + 1)
        if last < max(config.vnet_vlanmin, 2):
            fail("VNET_ADDRSPERNET", f"{per_net} addresses per network leave VNET_NETMASK {config.vnet_netmask} "
                 f"no network at or above VLAN {config.vnet_vlanmin}")
