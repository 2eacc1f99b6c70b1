"""Replaying a trace against a running cloud, and the simulator's account of the same trace.

``euca sim replay TRACE --against URL --data-dir DIR`` sends the trace's reservations to a cloud in
a box (``euca up``: the real EC2 API, cluster controller and store over simulated nodes) through
boto3, ``--speed`` times faster than the trace's clock: RunInstances with the trace's VM type, image
and security group (MinCount 1, or the whole reservation with ``--min-count all``), and
TerminateInstances when each instance's life is over. It records where the CC put every instance,
the addresses it got, and the error code and message of every refusal; then it runs the same trace
through the simulator on the box's nodes, VM types and eucalyptus.conf, and prints where the two
differ: the first differing decision, the rejection rates and the nodes' core utilisation.

Where an instance went is read from the box's store (``DIR/euca.db``, read-only): the instance
record the cloud writes before it answers RunInstances names its node. EC2's DescribeInstances has
no field for a node (boto3 would drop one it does not know), and the store is the cloud's own
record of the placement, so reading it needs no change to the API.

Both sides follow one clock, the simulator's: the replay is a SimPy process on a real-time
environment (``simpy.rt``), the very ``sim.processes.users`` the planner runs, and an instance ends
``boot`` seconds after its request plus its lifetime, computed as ``sim.cloud.Cloud`` computes it,
so the cloud is asked in exactly the order the simulated CC is. Where the box differs from the
planner's model, the model is set to the box's (``BoxModel``):

- images: the box's nodes never report their caches to the CC, so nothing is downloaded and the CC
  learns of no cached image (CACHEAWARE sees the cold caches the box's CC sees);
- boot and teardown: the box's node frees an instance's room the moment it is terminated, as the
  simulator's does; its boot time and BURY_TIME change nothing the CC decides;
- POWERSAVE: the box's CC puts idle nodes to sleep on the wall clock at its housekeeping ticks (every
  5 s) and its nodes never actually sleep or wake, while the simulator's sleep on the trace's clock
  and wake after their power-up delay. No speed makes those ticks fall at the same trace times, so
  POWERSAVE is compared with sleep out of reach (a POWER_IDLETHRESH longer than the replay) on what
  it decides among awake nodes, and the replay says so when the box's threshold is shorter.
"""

from __future__ import annotations

import argparse
import math
import sqlite3
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, NamedTuple, cast

import numpy as np
import orjson
import simpy
import simpy.rt

from euca.cluster import CLOUD_VMTYPES, ClusterController, Launch, Placed, RunRequest, VmType, VmTypes
from euca.core.config import Config, ConfigError, load_config
from pyx.errors import Exhausted, KernelError
from sim.cloud import Cloud
from sim.processes import Reservation, users
from sim.run import reservations
from sim.scenario import NodeClass, Scenario, Workload
from sim.trace import Demand, read_trace


class ReplayError(ValueError):
    """A replay that cannot start: the box or the trace is not what it needs."""


class Decision(NamedTuple):
    """What the CC decided for one reservation: where each started instance went (node index in
    NODES order, private address, public address or ""), or the error that refused it all."""

    at: float  # seconds of trace time
    placed: tuple[tuple[int, str, str], ...]
    error: str = ""  # "<AWS error code>: <message>"

    def describe(self, nodes: Sequence[str]) -> str:
        if self.error:
            return f"refused ({self.error})"
        return ", ".join(f"{nodes[n]} {private}" + (f" {public}" if public else "")
                         for n, private, public in self.placed) or "nothing started"


# An instance as one side ran it: (node index, cores, from, to). ``to`` is the time it was terminated,
# or infinity for one still running when the last request was made.
Held = tuple[int, int, float, float]


class Account(NamedTuple):
    """One side's own record of a replay: what it decided for each reservation, and each instance
    it ran, from when it started to when it was terminated (the cloud's as the replay saw its answers
    and sent its terminations, the simulator's as its CC was asked)."""

    decisions: list[Decision]
    held: list[Held]


# The AWS error code the cloud answers each of the CC's refusals with (euca.services.instances).
def error_code(exc: KernelError) -> str:
    return "InsufficientAddressCapacity" if isinstance(exc, Exhausted) else "InsufficientInstanceCapacity"


@dataclass(frozen=True)
class BoxPlan:
    """A cloud in a box as its store describes it: nodes in NODES order (name, cores, memory MB,
    disk GB), VM types, and the CC's eucalyptus.conf."""

    nodes: tuple[tuple[str, int, int, int], ...]
    vmtypes: VmTypes
    config: Config

    def scenario(self, boot: float, min_count: str) -> Scenario:
        """The simulator's cluster: one node class per run of same-shaped nodes, in NODES order."""
        classes: list[NodeClass] = []
        for name, cores, memory, disk in self.nodes:
            last = classes[-1] if classes else None
            if last is not None and (last.cores, last.memory_mb, last.disk_gb) == (cores, memory, disk):
                classes[-1] = replace(last, count=last.count + 1)
            else:
                classes.append(NodeClass(count=1, name=name, cores=cores, memory_mb=memory, disk_gb=disk,
                                         boot_s=boot))
        return Scenario(name="replay", policy=self.config.schedpolicy, nodes=tuple(classes),
                        workload=Workload(kind="trace", min_count=min_count))


def _read_only(data_dir: Path) -> sqlite3.Connection:
    path = data_dir / "euca.db"
    if not path.exists():
        raise ReplayError(f"{data_dir}: no euca.db (the box's --data-dir)")
    return sqlite3.connect(f"file:{path}?mode=ro", uri=True, check_same_thread=False, timeout=30)


def read_box(data_dir: Path, config: Config | None = None) -> BoxPlan:
    """The box's nodes and VM types from its store, as ``euca up`` registers them (ordered by
    name), and its eucalyptus.conf: ``config`` if it was started with one, else the box's own."""
    with _read_only(data_dir) as db:
        rows = db.execute("SELECT kind, id, body FROM records WHERE kind IN ('node', 'vmtype') ORDER BY id").fetchall()
    nodes, types = [], VmTypes(CLOUD_VMTYPES)
    for kind, name, text in rows:
        body = orjson.loads(text)
        if kind == "vmtype":
            types = types.replaced(VmType(name, body["cores"], body["memory"], body["disk"]))
        elif body.get("url"):
            raise ReplayError(f"node {name} is a remote node controller: a replay needs the box's own nodes")
        else:
            nodes.append((name, int(body["cores"]), int(body["memory"]), int(body["disk"])))
    if not nodes:
        raise ReplayError(f"{data_dir}: the box has no nodes")
    if config is None:
        from euca.fleet.box import NodeSpec, box_config  # the box's defaults, as euca up derives them

        config = box_config([NodeSpec(*n) for n in nodes], types)
    return BoxPlan(tuple(nodes), types, config)


# --- the simulator's side --------------------------------------------------------------------------


class RecordingController(ClusterController):
    """The CC, noting what it decides for each reservation."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.decisions: list[Decision] = []
        self.started: dict[str, tuple[int, int, float]] = {}  # instance -> (node, cores, from)
        self.held: list[Held] = []

    def run(self, request: RunRequest) -> list[Launch]:
        now = self.clock()
        try:
            launches = super().run(request)
        except KernelError as exc:
            self.decisions.append(Decision(now, (), f"{error_code(exc)}: {exc}"))
            raise
        public = self.network.public_of
        self.decisions.append(Decision(now, tuple(
            (launch.node_index, launch.net.private_ip, public(launch.instance_id) or "") for launch in launches)))
        cores = self.vmtypes[request.vmtype].cores
        for launch in launches:
            self.started[launch.instance_id] = (launch.node_index, cores, now)
        return launches

    def terminate(self, instance_id: str) -> Placed:
        placed = super().terminate(instance_id)
        self.held.append((*self.started.pop(instance_id), self.clock()))
        return placed

    def account(self) -> Account:
        """Its decisions, and the instances it ran (those still running held to infinity)."""
        return Account(self.decisions, self.held + [(*started, math.inf) for started in self.started.values()])


class BoxModel(Cloud):
    """The planner's model of a cloud in a box: its nodes hold every image at once and never tell
    the CC what they cache (the box's nodes report no caches), so no download is simulated."""

    controller = RecordingController

    def _fetch(self, n: int, image: int, start: float, instance_id: str) -> float:
        return start


def simulate(box: BoxPlan, demand: Demand, boot: float, min_count: str) -> Account:
    """The trace through the simulator, on the box's cluster: one decision per reservation, and
    the instances its CC ran."""
    env = simpy.Environment()
    cloud = BoxModel(env, box.scenario(boot, min_count), demand, [1] * len(demand.images), config=box.config)
    done = env.process(users(env, cloud, reservations(demand)))
    env.run(until=done)
    cc = cloud.cc
    assert isinstance(cc, RecordingController)
    return cc.account()


# --- the cloud's side -------------------------------------------------------------------------------


def read_eucarc(data_dir: Path) -> dict[str, str]:
    """The variables ``euca up`` wrote to DIR/eucarc (the admin's keys, the default image)."""
    path = data_dir / "eucarc"
    try:
        text = path.read_text()
    except OSError as exc:
        raise ReplayError(f"{path}: cannot read the box's credentials: {exc.strerror}") from None
    out = {}
    for line in text.splitlines():
        name, sep, value = line.removeprefix("export ").partition("=")
        if sep:
            out[name.strip()] = value.strip()
    return out


def ec2_client(url: str, access_key: str, secret_key: str) -> Any:
    import boto3
    import botocore.config

    # No retries: RunInstances is not idempotent without a client token, and a refusal is an answer.
    return boto3.client("ec2", endpoint_url=url, aws_access_key_id=access_key, aws_secret_access_key=secret_key,
                        region_name="eucalyptus",
                        config=botocore.config.Config(retries={"total_max_attempts": 1}, read_timeout=300))


class _Nodes:
    """Where the box's CC put each instance: its record in the box's store."""

    def __init__(self, data_dir: Path, names: Sequence[str]) -> None:
        self._db = _read_only(data_dir)
        self._index = {name: k for k, name in enumerate(names)}

    def of(self, instance_ids: Sequence[str]) -> list[int]:
        marks = ",".join("?" * len(instance_ids))
        rows = dict(self._db.execute(f"SELECT id, body FROM records WHERE kind = 'instance' AND id IN ({marks})",
                                     list(instance_ids)).fetchall())
        missing = [i for i in instance_ids if i not in rows]
        if missing:
            raise ReplayError(f"{missing[0]}: the box's store has no record of it")
        return [self._index[orjson.loads(rows[i])["node"]] for i in instance_ids]

    def close(self) -> None:
        self._db.close()


class _Driver:
    """What ``sim.processes.users`` calls a cloud: ``reserve`` sends RunInstances, and each started
    instance ends with TerminateInstances when the simulator would end it."""

    def __init__(self, env: simpy.Environment, ec2: Any, nodes: _Nodes, demand: Demand, boot: list[float],
                 all_or_none: bool) -> None:
        import botocore.exceptions

        self.env, self.ec2, self.nodes, self.boot, self.all_or_none = env, ec2, nodes, boot, all_or_none
        self._refused = botocore.exceptions.ClientError
        self.types = [t.name for t in demand.vmtypes]
        self.images, self.groups = demand.images, demand.groups
        self.decisions: list[Decision] = []
        self.cores = [t.cores for t in demand.vmtypes]
        self.live: dict[str, tuple[int, int, float]] = {}  # instance -> (node, cores, from)
        self.held: list[Held] = []
        self._ends = self._instance_ends

    def reserve(self, vmtype: int, image: int, group: int, lifetimes: list[float], counted: bool) -> None:
        now = self.env.now
        count = len(lifetimes)
        try:
            answer = self.ec2.run_instances(ImageId=self.images[image], InstanceType=self.types[vmtype],
                                            MinCount=count if self.all_or_none else 1, MaxCount=count,
                                            SecurityGroups=[self.groups[group]])
        except self._refused as exc:
            error = exc.response.get("Error", {})
            self.decisions.append(Decision(now, (), f"{error.get('Code')}: {error.get('Message')}"))
            return
        instances = answer["Instances"]
        ids = [i["InstanceId"] for i in instances]
        where = self.nodes.of(ids)
        self.decisions.append(Decision(now, tuple(
            (n, i.get("PrivateIpAddress") or "", i.get("PublicIpAddress") or "") for n, i in zip(where, instances,
                                                                                                 strict=True))))
        timeout, ends, boot, cores = self.env.timeout, self._ends, self.boot, self.cores[vmtype]
        for iid, n, life in zip(ids, where, lifetimes, strict=False):
            running = now + boot[n]  # as sim.cloud.Cloud.reserve computes it, for the same float
            timeout(running + life - now, iid).callbacks.append(ends)
            self.live[iid] = (n, cores, now)

    def _instance_ends(self, event: simpy.Event) -> None:
        iid = cast(str, event.value)
        self.ec2.terminate_instances(InstanceIds=[iid])
        self.held.append((*self.live.pop(iid), self.env.now))

    def account(self) -> Account:
        return Account(self.decisions, self.held + [(*started, math.inf) for started in self.live.values()])


def prepare(ec2: Any, demand: Demand, default_image: str) -> Demand:
    """Make the box ready for the trace: no instance of its own running, the trace's security groups
    there; trace images the box does not have run as its default image (placement in the box does
    not depend on which image: its CC knows no cached images). Returns the trace as the box runs it."""
    running = [i["InstanceId"] for r in ec2.describe_instances(
        Filters=[{"Name": "instance-state-name", "Values": ["pending", "running"]}])["Reservations"]
        for i in r["Instances"]]
    if running:
        raise ReplayError(f"the box runs {len(running)} instances already ({running[0]}, ...): "
                          "a replay starts from an empty cloud")
    machines = {i["ImageId"] for i in ec2.describe_images()["Images"] if i["ImageId"].startswith("emi-")}
    fallback = default_image if default_image in machines else min(machines, default="")
    images = tuple(name if name in machines else fallback for name in demand.images)
    if not all(images):
        raise ReplayError("the box has no machine image to run the trace's instances")
    have = {g["GroupName"] for g in ec2.describe_security_groups()["SecurityGroups"]}
    for name in demand.groups:
        if name not in have:
            ec2.create_security_group(GroupName=name, Description=f"trace group {name}")
    return replace(demand, images=images)


def drive(ec2: Any, data_dir: Path, box: BoxPlan, demand: Demand, speed: float, boot: float,
          min_count: str, on_progress: Callable[[int, int], None] | None = None) -> Account:
    """Replay ``demand`` against the box at ``speed`` times the trace's pace: one decision per
    reservation, and the instances the cloud ran. Every instance the replay started is terminated
    before it returns."""
    plan: list[Reservation] = reservations(demand)
    env = simpy.rt.RealtimeEnvironment(factor=1.0 / speed, strict=False)
    nodes = _Nodes(data_dir, [n[0] for n in box.nodes])
    driver = _Driver(env, ec2, nodes, demand, [boot] * len(box.nodes), min_count == "all")
    try:
        done = env.process(users(env, driver, plan))
        if on_progress is None:
            env.run(until=done)
        else:
            steps = 50
            for k in range(1, steps + 1):
                plan_at = plan[min(len(plan) - 1, len(plan) * k // steps)][0]
                env.run(until=done if k == steps else max(plan_at, env.now + 1e-9))
                on_progress(len(driver.decisions), len(plan))
    finally:
        nodes.close()
        live = sorted(driver.live)
        for k in range(0, len(live), 500):
            ec2.terminate_instances(InstanceIds=live[k:k + 500])
    return driver.account()


# --- the comparison ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Comparison:
    """The cloud's decisions against the simulator's, reservation by reservation."""

    cloud: list[Decision]
    simulated: list[Decision]
    requested: list[int]  # instances asked for, per reservation
    first_difference: int | None  # index of the first reservation decided differently
    utilisation: tuple[list[float], list[float]]  # per node: (cloud, simulator) core utilisation

    @property
    def agree(self) -> bool:
        return self.first_difference is None

    def rejection_rate(self, decisions: list[Decision]) -> float:
        asked = sum(self.requested)
        return sum(r - len(d.placed) for r, d in zip(self.requested, decisions, strict=True)) / asked if asked else 0.0


def utilisation(held: list[Held], box: BoxPlan, horizon: float) -> list[float]:
    """Each node's mean fraction of its cores in use from the first request to the last, from one
    side's own record of the instances it ran."""
    used = [0.0] * len(box.nodes)
    for n, cores, start, end in held:
        used[n] += cores * max(0.0, min(end, horizon) - start)
    span = horizon if horizon > 0 else 1.0
    return [u / (node[1] * span) for u, node in zip(used, box.nodes, strict=True)]


def compare(cloud: Account, simulated: Account, demand: Demand, box: BoxPlan) -> Comparison:
    """Decision by decision, and the utilisation each side's own records give (so that instances
    held for different times show even where every decision agrees)."""
    plan = reservations(demand)
    if len(cloud.decisions) != len(plan) or len(simulated.decisions) != len(plan):
        raise ReplayError(f"{len(plan)} reservations, but {len(cloud.decisions)} cloud and "
                          f"{len(simulated.decisions)} simulated decisions")
    first = next((k for k, (a, b) in enumerate(zip(cloud.decisions, simulated.decisions, strict=True))
                  if a.placed != b.placed or a.error != b.error), None)
    horizon = plan[-1][0] if plan else 0.0
    return Comparison(cloud.decisions, simulated.decisions, [len(r[4]) for r in plan], first,
                      (utilisation(cloud.held, box, horizon), utilisation(simulated.held, box, horizon)))


def report(c: Comparison, box: BoxPlan) -> list[str]:
    names = [n[0] for n in box.nodes]
    placed = sum(len(d.placed) for d in c.cloud)
    lines = []
    if c.agree:
        lines.append(f"agreement: all {len(c.cloud):,} reservations decided alike ({placed:,} instances "
                     "on the same nodes with the same addresses, the same refusals)")
    else:
        k = c.first_difference
        assert k is not None
        same = sum(a == b for a, b in zip(c.cloud, c.simulated, strict=True))
        lines.append(f"DIFFERENT: {len(c.cloud) - same:,} of {len(c.cloud):,} reservations decided differently; "
                     f"the first is #{k + 1} at t={c.cloud[k].at:,.1f} s ({c.requested[k]} instances):")
        lines.append(f"  cloud:     {c.cloud[k].describe(names)}")
        lines.append(f"  simulator: {c.simulated[k].describe(names)}")
    lines.append(f"rejection rate: cloud {100 * c.rejection_rate(c.cloud):.2f} %, "
                 f"simulator {100 * c.rejection_rate(c.simulated):.2f} %")
    ours, theirs = c.utilisation
    gap = max(abs(a - b) for a, b in zip(ours, theirs, strict=True))
    lines.append(f"node core utilisation: cloud mean {100 * float(np.mean(ours)):.2f} %, simulator mean "
                 f"{100 * float(np.mean(theirs)):.2f} %; largest difference on one node {100 * gap:.2f} points")
    return lines


# --- euca sim replay ---------------------------------------------------------------------------------


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("trace", help="the CSV trace (columns in sim.trace)")
    parser.add_argument("--against", required=True, metavar="URL", help="the box's EC2 endpoint, e.g. "
                        "http://127.0.0.1:8773")
    parser.add_argument("--data-dir", default="./euca-data", help="the box's data directory (./euca-data)")
    parser.add_argument("--config", help="the eucalyptus.conf the box was started with, if any")
    parser.add_argument("--speed", type=float, default=1.0, help="trace seconds per wall-clock second (1)")
    parser.add_argument("--boot", type=float, default=NodeClass.boot_s,
                        help="trace seconds from request to running, before the lifetime starts (20)")
    parser.add_argument("--min-count", choices=("one", "all"), default="one",
                        help="a reservation starts one or more of its instances, or all or none")


def command(args: argparse.Namespace) -> int:
    from sim.progress import bar

    if args.speed <= 0 or args.boot < 0:
        raise ReplayError("--speed must be > 0 and --boot >= 0")
    data_dir = Path(args.data_dir)
    try:
        config = load_config(args.config) if args.config else None
    except ConfigError as exc:
        raise ReplayError(str(exc)) from None
    box = read_box(data_dir, config)
    demand = read_trace(args.trace, box.vmtypes)
    unknown = sorted({t.name for t in demand.vmtypes} - set(box.vmtypes.names))
    if unknown:
        raise ReplayError(f"the box has no VM type {unknown[0]} (add it with euca vmtype, or name a type it has)")
    rc = read_eucarc(data_dir)
    ec2 = ec2_client(args.against, rc["EC2_ACCESS_KEY"], rc["EC2_SECRET_KEY"])
    demand = prepare(ec2, demand, rc.get("EUCA_DEFAULT_IMAGE", ""))
    plan = reservations(demand)
    span = plan[-1][0] / args.speed
    print(f"replaying {len(demand.requests):,} requests ({len(plan):,} reservations, {plan[-1][0]:,.0f} s of trace) "
          f"against {args.against} at {args.speed:g}x: {span:,.0f} s at the least; {len(box.nodes)} nodes, "
          f"{box.config.schedpolicy}, {box.config.vnet_mode}", file=sys.stderr)
    if box.config.schedpolicy == "POWERSAVE" and box.config.power_idlethresh < span:
        print(f"note: the box's POWER_IDLETHRESH ({box.config.power_idlethresh} s) is shorter than the replay: "
              "its nodes may sleep on the wall clock, which the simulator cannot follow (see sim.replay)",
              file=sys.stderr)
    started = time.perf_counter()
    cloud = drive(ec2, data_dir, box, demand, args.speed, args.boot, args.min_count,
                  on_progress=lambda done, total: bar("replaying", done, total, f"{done:,} of {total:,}"))
    replayed = time.perf_counter() - started
    started = time.perf_counter()
    simulated = simulate(box, demand, args.boot, args.min_count)
    simulated_s = time.perf_counter() - started
    c = compare(cloud, simulated, demand, box)
    placed = sum(len(d.placed) for d in cloud.decisions)
    print(f"cloud: {len(plan):,} reservations replayed in {replayed:.1f} s, {placed:,} of "
          f"{sum(c.requested):,} instances started; simulator: the same trace in {simulated_s:.2f} s")
    for line in report(c, box):
        print(line)
    return 0 if c.agree else 1


