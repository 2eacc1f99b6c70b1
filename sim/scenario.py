"""A planning scenario: the cluster, its eucalyptus.conf, the images, the failures and the workload.

Scenarios are read from JSON or TOML files with the same nesting as these classes::

    name = "two racks"
    seed = 7
    policy = "POWERSAVE"            # SCHEDPOLICY
    [eucalyptus_conf]               # any eucalyptus.conf variable, as in the file
    VNET_MODE = "MANAGED"
    [[nodes]]                        # one table per node class
    count = 40
    cores = 32
    memory_mb = 131072
    [workload]
    kind = "synthetic"              # or "poisson", or "trace" with trace = "path.csv"
    requests = 20000
    load = 0.85

An unknown or ill-typed setting is a ``ScenarioError`` naming it, before anything runs.
"""

from __future__ import annotations

import json
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from drivers.sim import NodeShape
from euca.cluster import DEFAULT_VMTYPES, VmType, VmTypes
from euca.core.config import Config, ConfigError, load_config
from sim.workload import AZURE_SIZES

# The default scenario's network: MANAGED mode, /24 group networks and 2,046 public addresses.
DEFAULT_CONF: tuple[tuple[str, str], ...] = (
    ("VNET_MODE", "MANAGED"),
    ("VNET_SUBNET", "10.128.0.0"),
    ("VNET_NETMASK", "255.192.0.0"),
    ("VNET_ADDRSPERNET", "256"),
    ("VNET_PUBLICIPS", "100.64.0.0/21"),
    ("NC_CACHE_SIZE", "40000"),
)


AZURE_VMTYPES = tuple(VmType(f"az.c{c}m{m}", c, m, 10 * c) for c, m, _ in AZURE_SIZES)


class ScenarioError(ValueError):
    """A scenario the planner cannot run; the message names the setting."""


@dataclass(frozen=True)
class NodeClass:
    """``count`` identical nodes: capacity, boot and power behaviour, power draw and network link."""

    count: int = 100
    name: str = "nc"  # node host names are <name><number>
    cores: int = 32
    memory_mb: int = 131072
    disk_gb: int = 2000
    boot_s: float = 20.0  # an instance's boot, once its image is on the node
    power_up_s: float = 90.0
    power_down_s: float = 20.0
    watts_idle: float = 150.0
    watts_busy: float = 300.0
    watts_asleep: float = 5.0
    link_mbps: float = 1000.0  # the node's own link, that image downloads from Walrus share with nothing

    def shape(self) -> NodeShape:
        return NodeShape(self.cores, self.memory_mb, self.disk_gb, self.boot_s, self.power_up_s,
                         self.power_down_s, self.watts_idle, self.watts_busy, self.watts_asleep)


@dataclass(frozen=True)
class Images:
    """The registered images (``emi-`` ids): how many, their sizes, and what nodes hold before the start."""

    count: int = 20
    size_mb_min: float = 1024.0  # sizes are log-uniform between min and max, drawn per image
    size_mb_max: float = 10240.0
    skew: float = 1.1  # Zipf exponent of image popularity (synthetic workloads)
    prestaged: int = 0  # the most popular images already in every node's cache at the start
    walrus_mbps: float = 1000.0  # the one link out of Walrus that every download shares


@dataclass(frozen=True)
class Failures:
    """Node failures: time between failures and time to repair, per node. MTBF 0 turns them off."""

    mtbf_hours: float = 0.0
    mttr_hours: float = 4.0
    distribution: str = "exponential"  # "exponential", "weibull" (shape below) or "fixed"
    weibull_shape: float = 1.5


@dataclass(frozen=True)
class Workload:
    """Where requests come from. ``load`` is the mean offered core demand as a fraction of the
    cluster's cores (or of ``reference_cores``, so that sweeps over cluster sizes keep the demand)."""

    # "synthetic": Azure-shaped deployments with daily and weekly cycles; "poisson": the same at a flat
    # rate; "exponential": single VMs of the first VM type with exponential lifetimes (an M/M/c/c
    # system); "trace": replay of the CSV file ``trace`` (columns in ``sim.trace``).
    kind: str = "synthetic"
    requests: int = 20000
    load: float = 0.85
    reference_cores: int = 0
    daily: float = 0.3
    weekly: float = 0.15
    groups: int = 100
    group_skew: float = 1.0
    warm_start: bool = True
    min_count: str = "one"  # reservations start "one" or more of their VMs, or "all" or none
    trace: str = ""
    vm_types: str = "azure"  # "azure" (the published trace sizes) or "eucalyptus" (the default table)
    lifetime_scale: float = 1.0  # multiplies synthetic lifetimes (shorter runs, same shape)
    lifetime_mean_s: float = 3600.0  # the "exponential" kind's mean lifetime


@dataclass(frozen=True)
class Scenario:
    """One cluster under one workload: everything a run needs besides its random stream."""

    name: str = "default"
    seed: int = 1
    policy: str = "GREEDY"
    nodes: tuple[NodeClass, ...] = (NodeClass(),)
    eucalyptus_conf: Mapping[str, str] = field(default_factory=lambda: dict(DEFAULT_CONF))
    public_ip_per_instance: bool = True  # doDynamicPublicAddresses
    images: Images = Images()
    failures: Failures = Failures()
    workload: Workload = Workload()
    power_tick_s: float = 60.0
    samples: int = 400

    @property
    def n_nodes(self) -> int:
        return sum(c.count for c in self.nodes)

    @property
    def total_cores(self) -> int:
        return sum(c.count * c.cores for c in self.nodes)

    def config(self) -> Config:
        """eucalyptus.conf as the cluster controller reads it, with SCHEDPOLICY from ``policy``."""
        try:
            return load_config(text="", overrides={**self.eucalyptus_conf, "SCHEDPOLICY": self.policy})
        except ConfigError as exc:
            raise ScenarioError(f"eucalyptus_conf: {exc}") from None

    def vmtypes(self) -> VmTypes:
        """Eucalyptus's default VM types, then one per published Azure size (``az.c2m3584``): a trace
        may name any of them; ``workload.vm_types`` picks the ones synthetic requests ask for."""
        return VmTypes((*DEFAULT_VMTYPES, *AZURE_VMTYPES))

    def with_nodes(self, n: int) -> Scenario:
        """The same cluster scaled to ``n`` nodes, each class keeping its share (largest remainder)."""
        total = self.n_nodes
        exact = [c.count * n / total for c in self.nodes]
        counts = [int(x) for x in exact]
        for i in sorted(range(len(exact)), key=lambda i: counts[i] - exact[i])[: n - sum(counts)]:
            counts[i] += 1
        return replace(self, nodes=tuple(replace(c, count=k) for c, k in zip(self.nodes, counts, strict=True)))

    def validate(self) -> Scenario:
        if not self.nodes or self.n_nodes < 1:
            raise ScenarioError("nodes: at least one node is needed")
        for i, c in enumerate(self.nodes):
            if c.count < 0 or c.cores < 1 or c.memory_mb < 1 or c.disk_gb < 1 or c.link_mbps <= 0:
                raise ScenarioError(f"nodes[{i}]: counts cannot be negative; capacity and link must be positive")
            try:
                c.shape()
            except ValueError as exc:
                raise ScenarioError(f"nodes[{i}]: {exc}") from None
        w = self.workload
        if w.kind not in ("synthetic", "poisson", "exponential", "trace"):
            raise ScenarioError(f"workload.kind: {w.kind!r} is not synthetic, poisson, exponential or trace")
        if w.kind == "trace" and not w.trace:
            raise ScenarioError("workload.trace: a trace workload needs the path of its CSV file")
        if w.requests < 1 or w.load <= 0 or w.groups < 1 or w.lifetime_scale <= 0 or w.lifetime_mean_s <= 0:
            raise ScenarioError("workload: requests and groups must be >= 1, load and lifetime_scale > 0")
        if w.min_count not in ("one", "all"):
            raise ScenarioError(f"workload.min_count: {w.min_count!r} is not one or all")
        if w.vm_types not in ("azure", "eucalyptus"):
            raise ScenarioError(f"workload.vm_types: {w.vm_types!r} is not azure or eucalyptus")
        if self.failures.distribution not in ("exponential", "weibull", "fixed"):
            raise ScenarioError(f"failures.distribution: {self.failures.distribution!r} is not exponential, "
                                "weibull or fixed")
        im = self.images
        if im.count < 1 or not 0 < im.size_mb_min <= im.size_mb_max or im.walrus_mbps <= 0:
            raise ScenarioError("images: count >= 1, 0 < size_mb_min <= size_mb_max and walrus_mbps > 0")
        if self.power_tick_s <= 0 or self.samples < 2:
            raise ScenarioError("power_tick_s must be > 0 and samples >= 2")
        self.config()
        return self

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name == "nodes":
                out[f.name] = [_plain(c) for c in value]
            elif f.name == "eucalyptus_conf":
                out[f.name] = dict(value)
            elif hasattr(value, "__dataclass_fields__"):
                out[f.name] = _plain(value)
            else:
                out[f.name] = value
        return out


def _plain(obj: Any) -> dict[str, Any]:
    return {f.name: getattr(obj, f.name) for f in fields(obj)}


def _build(cls: Any, data: Any, where: str) -> Any:
    if not isinstance(data, Mapping):
        raise ScenarioError(f"{where}: expected a table of settings, not {data!r}")
    known = {f.name: f for f in fields(cls)}
    defaults = cls()
    kwargs: dict[str, Any] = {}
    for key, value in data.items():
        if key not in known:
            raise ScenarioError(f"{where}{key}: unknown setting (known: {', '.join(known)})")
        kwargs[key] = _coerce(key, value, getattr(defaults, key), f"{where}{key}")
    return cls(**kwargs)


def _coerce(key: str, value: Any, default: Any, where: str) -> Any:
    if key == "nodes":
        if not isinstance(value, list):
            raise ScenarioError(f"{where}: expected a list of node classes")
        return tuple(_build(NodeClass, v, f"{where}[{i}].") for i, v in enumerate(value))
    if key == "eucalyptus_conf":
        if not isinstance(value, Mapping):
            raise ScenarioError(f"{where}: expected a table of eucalyptus.conf variables")
        return {str(k): str(v) for k, v in value.items()}
    if hasattr(default, "__dataclass_fields__"):
        return _build(type(default), value, f"{where}.")
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise ScenarioError(f"{where}: expected true or false, not {value!r}")
        return value
    if isinstance(default, int):
        if isinstance(value, bool) or not isinstance(value, int):
            raise ScenarioError(f"{where}: expected a whole number, not {value!r}")
        return value
    if isinstance(default, float):
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ScenarioError(f"{where}: expected a number, not {value!r}")
        return float(value)
    if isinstance(default, str):
        if not isinstance(value, str):
            raise ScenarioError(f"{where}: expected a string, not {value!r}")
        return value.upper() if key == "policy" else value
    raise ScenarioError(f"{where}: cannot be set from a file")


def scenario_from_dict(data: Mapping[str, Any], source: str = "scenario") -> Scenario:
    scenario: Scenario = _build(Scenario, data, f"{source}: ")
    return scenario.validate()


def load_scenario(path: str | Path) -> Scenario:
    """Read a scenario from a ``.json`` or ``.toml`` file."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise ScenarioError(f"{path}: cannot read the scenario: {exc.strerror}") from None
    try:
        data = json.loads(text) if path.suffix == ".json" else tomllib.loads(text)
    except (json.JSONDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ScenarioError(f"{path}: {exc}") from None
    scenario = scenario_from_dict(data, str(path))
    trace = scenario.workload.trace
    if trace and not Path(trace).is_absolute():  # a trace path is relative to the scenario file
        scenario = replace(scenario, workload=replace(scenario.workload, trace=str(path.parent / trace)))
    return scenario
