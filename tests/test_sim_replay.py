"""The cloud and the simulator decide alike: a trace replayed through boto3 against a real box (the
EC2 API, the store, simulated nodes) gets the same nodes, addresses and refusals as the simulator
gives it, for every scheduling policy and networking mode."""

from __future__ import annotations

import math
import random
from pathlib import Path

import pytest

from euca.cluster import CLOUD_VMTYPES, VmTypes
from euca.core.config import Config, load_config
from sim import cli
from sim.replay import Account, BoxPlan, Decision, compare, drive, ec2_client, prepare, read_box, report, simulate
from sim.trace import read_trace
from tests.ec2_server import running_box

POLICIES = ("GREEDY", "ROUNDROBIN", "POWERSAVE", "BESTFIT", "SPREAD", "ALIGNED", "CACHEAWARE")
TYPES = ("m1.small", "m1.small", "c1.medium", "m1.large", "c1.xlarge")
GROUPS = ("default", "web", "db", "batch", "ci")
NODES = 8  # of 8 cores: 64 cores for about 85 offered
BOOT = 20.0
# Each mode with pools small enough to run dry: group networks of 13 hosts and five VLAN tags, 56
# public addresses for up to 64 instances, 40 MAC=IP pairs.
MODES = {
    "SYSTEM": {"VNET_MODE": "SYSTEM"},
    "STATIC": {"VNET_MODE": "STATIC", "VNET_MACMAP": " ".join(f"D0:0D:00:00:00:{k:02X}=10.1.0.{k + 10}"
                                                               for k in range(40))},
    "MANAGED": {"VNET_MODE": "MANAGED", "VNET_SUBNET": "10.128.0.0", "VNET_NETMASK": "255.255.0.0",
                "VNET_ADDRSPERNET": "16", "VNET_VLANMIN": "10", "VNET_VLANMAX": "14",
                "VNET_PUBLICIPS": "198.51.100.1-198.51.100.56"},
    "MANAGED-NOVLAN": {"VNET_MODE": "MANAGED-NOVLAN", "VNET_SUBNET": "10.128.0.0", "VNET_NETMASK": "255.255.0.0",
                       "VNET_ADDRSPERNET": "16", "VNET_PUBLICIPS": "198.51.100.1-198.51.100.56"},
}


def write_trace(path: Path, reservations: int, seed: int) -> Path:
    """Reservations of one to four instances of one type in one group, arriving every 10 s on
    average and living 250 s: more than the cluster holds, so some are cut short or refused."""
    rng = random.Random(seed)
    rows = ["submit_time,vm_type,lifetime,image,group"]
    t = 0.0
    for _ in range(reservations):
        t += rng.expovariate(1 / 10)
        vmtype, group, image = rng.choice(TYPES), rng.choice(GROUPS), f"img{rng.randrange(3)}"
        for _ in range(rng.choice((1, 1, 2, 3, 4))):
            rows.append(f"{t!r},{vmtype},{rng.expovariate(1 / 250)!r},{image},{group}")
    path.write_text("\n".join(rows) + "\n")
    return path


def config(mode: str, policy: str) -> Config:
    # POWERSAVE with sleep out of reach: the box's CC sleeps nodes on the wall clock (see sim.replay)
    return load_config(text="", overrides={**MODES[mode], "SCHEDPOLICY": policy, "POWER_IDLETHRESH": "100000000"})


def replay(tmp_path: Path, mode: str, policy: str, reservations: int, min_count: str = "one") -> None:
    conf = config(mode, policy)
    with running_box(tmp_path, nodes=NODES, cores=8, memory=16384, disk=500, config=conf) as box:
        plan = read_box(box.data_dir, conf)
        demand = read_trace(write_trace(tmp_path / "trace.csv", reservations, seed=len(mode) + 7 * len(policy)),
                            plan.vmtypes)
        ec2 = ec2_client(box.url, *box.keys())
        demand = prepare(ec2, demand, box.image())
        cloud = drive(ec2, box.data_dir, plan, demand, speed=1e9, boot=BOOT, min_count=min_count)
        outcome = compare(cloud, simulate(plan, demand, BOOT, min_count), demand, plan)
        left = ec2.describe_instances(Filters=[{"Name": "instance-state-name", "Values": ["pending", "running"]}])
        ec2.close()
    assert not left["Reservations"], "the replay ends every instance it started"
    first = outcome.first_difference
    assert first is None, (first, outcome.cloud[first], outcome.simulated[first])
    assert outcome.utilisation[0] == outcome.utilisation[1]  # from each side's own starts and terminations
    assert min(outcome.utilisation[0]) > 0 and max(outcome.utilisation[0]) <= 1
    assert 0 < outcome.rejection_rate(outcome.cloud) < 0.8  # the cluster did fill up, and did not stay full
    partial = [d for d, asked in zip(cloud.decisions, outcome.requested, strict=True)
               if d.placed and len(d.placed) < asked]
    refused = {d.error.partition(":")[0] for d in cloud.decisions if d.error}
    assert partial or min_count == "all"
    assert refused <= {"InsufficientInstanceCapacity", "InsufficientAddressCapacity"} and refused


@pytest.mark.parametrize("policy", POLICIES)
def test_every_policy_decides_alike_in_the_cloud_and_the_simulator(tmp_path: Path, policy: str) -> None:
    replay(tmp_path, "MANAGED", policy, 160)


@pytest.mark.parametrize("mode", ["SYSTEM", "STATIC", "MANAGED-NOVLAN"])
@pytest.mark.parametrize("policy", POLICIES)
def test_every_network_mode_decides_alike(tmp_path: Path, mode: str, policy: str) -> None:
    replay(tmp_path, mode, policy, 60)


def test_all_or_none_reservations_decide_alike(tmp_path: Path) -> None:
    replay(tmp_path, "MANAGED-NOVLAN", "GREEDY", 120, min_count="all")


def test_euca_sim_replay_prints_agreement_against_a_default_box(tmp_path: Path,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    with running_box(tmp_path / "box", nodes=4, cores=8, memory=16384, disk=500) as box:
        box.image()
        from euca.cli.up import write_credentials

        access, secret = box.keys()
        write_credentials(box.data_dir, box.url, access, secret, "admin")
        trace = write_trace(tmp_path / "trace.csv", 80, seed=3)
        code = cli.main(["replay", str(trace), "--against", box.url, "--data-dir", str(box.data_dir),
                         "--speed", "1e9"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "agreement: all" in out and "rejection rate: cloud" in out and "node core utilisation" in out


def test_utilisation_is_compared_from_each_sides_own_records(tmp_path: Path) -> None:
    """The same decisions with instances held for different times: the decisions agree, the
    utilisation does not (each side's figure comes from its own starts and terminations)."""
    box = BoxPlan((("node1", 8, 16384, 500), ("node2", 8, 16384, 500)), VmTypes(CLOUD_VMTYPES),
                  load_config(text=""))
    trace = tmp_path / "trace.csv"
    trace.write_text("submit_time,vm_type,lifetime,image\n0,m1.small,50,img0\n100,m1.small,50,img0\n")
    demand = read_trace(trace, box.vmtypes)
    decisions = [Decision(0.0, ((0, "10.0.0.2", ""),)), Decision(100.0, ((1, "10.0.0.3", ""),))]
    cloud = Account(decisions, [(0, 1, 0.0, 70.0), (1, 1, 100.0, math.inf)])
    alike = compare(cloud, Account(list(decisions), [(0, 1, 0.0, 70.0), (1, 1, 100.0, math.inf)]), demand, box)
    assert alike.agree and alike.utilisation[0] == alike.utilisation[1] == [70 / 800, 0.0]
    longer = compare(cloud, Account(list(decisions), [(0, 1, 0.0, 90.0), (1, 1, 100.0, math.inf)]), demand, box)
    assert longer.agree and longer.utilisation[0] != longer.utilisation[1]
    assert longer.utilisation[1] == [90 / 800, 0.0]
    assert any("largest difference on one node 2.50 points" in line for line in report(longer, box))
