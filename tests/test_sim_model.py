"""The planner's model against known answers, and against the cluster controller it drives."""

from __future__ import annotations

import json
import math
from dataclasses import replace
from typing import Any

import simpy

from euca.cluster import ClusterController, Launch, ResourceReport, RunRequest
from pyx.placement import Placement
from sim.cloud import Cloud, image_sizes
from sim.run import make_demand, run_scenario, streams
from sim.scenario import Failures, Images, NodeClass, Scenario, Workload

SMALL = Scenario(
    name="small", seed=5, nodes=(NodeClass(count=20, cores=16, memory_mb=65536),),
    images=Images(count=6, size_mb_min=500, size_mb_max=2000),
    workload=Workload(requests=3000, load=0.9, lifetime_scale=0.05, groups=20),
)


def erlang_b(servers: int, erlangs: float) -> float:
    b = 1.0
    for k in range(1, servers + 1):
        b = erlangs * b / (k + erlangs * b)
    return b


def test_one_slot_nodes_block_as_erlang_b_says() -> None:
    # M/M/c/c: Poisson arrivals, exponential lifetimes, c identical nodes that hold one VM each,
    # no staging or boot time, so a node is busy exactly for an instance's lifetime.
    c, load = 20, 0.8
    scenario = Scenario(
        seed=11, policy="GREEDY", eucalyptus_conf={"VNET_MODE": "SYSTEM"}, public_ip_per_instance=False,
        nodes=(NodeClass(count=c, cores=1, memory_mb=256, disk_gb=5, boot_s=0.0),),
        images=Images(count=1, prestaged=1),
        workload=Workload(kind="exponential", requests=40_000, load=load, vm_types="eucalyptus", lifetime_mean_s=600.0),
    )
    s = run_scenario(scenario).summary
    expected = erlang_b(c, c * load)
    assert abs(s["rejection_rate"] - expected) < 0.012, (s["rejection_rate"], expected)
    assert set(s["rejected_by_reason"]) == {"Not enough resources available: vm instances"}
    # Carried load: the mean busy servers are a (1 - B).
    assert math.isclose(s["utilisation"]["cores"], load * (1 - expected), abs_tol=0.03)


def test_a_workload_that_fits_exactly_is_all_accepted_and_fills_the_cluster(tmp_path: Any) -> None:
    trace = tmp_path / "fit.csv"
    rows = ["submit_time,vm_type,lifetime,image"]
    for t in (0, 100, 200):
        rows += [f"{t},m1.small,100,emi-00000001"] * 8
    trace.write_text("\n".join(rows) + "\n")
    scenario = Scenario(
        nodes=(NodeClass(count=4, cores=2, memory_mb=512, disk_gb=10, boot_s=0.0),),
        images=Images(count=1, prestaged=1),
        workload=Workload(kind="trace", trace=str(trace), vm_types="eucalyptus"),
    )
    s = run_scenario(scenario).summary
    assert (s["requests"], s["accepted"], s["rejected"]) == (24, 24, 0)
    assert s["utilisation"] == {"cores": 1.0, "memory": 1.0, "disk": 1.0}
    assert s["network"]["peak_in_use"]["public addresses"] == 8


def test_a_cache_that_always_hits_boots_in_the_boot_time() -> None:
    scenario = replace(SMALL, nodes=(replace(SMALL.nodes[0], boot_s=17.0),), images=replace(SMALL.images, prestaged=6))
    s = run_scenario(scenario).summary
    assert s["boot_latency_s"]["miss"] == {"count": 0}
    hit = s["boot_latency_s"]["hit"]
    assert hit["count"] == s["accepted"] > 0
    assert hit["p50"] == hit["p99"] == hit["mean"] == 17.0
    assert s["images"]["fetches"] == 0


def test_misses_wait_for_walrus_and_hits_do_not() -> None:
    s = run_scenario(SMALL).summary
    lat = s["boot_latency_s"]
    assert lat["miss"]["count"] > 0 and lat["hit"]["count"] > 0
    assert lat["miss"]["p50"] > lat["hit"]["p50"] == 20.0
    assert s["images"]["fetches"] > 0


def test_same_seed_same_result_bit_for_bit() -> None:
    scenario = replace(SMALL, policy="POWERSAVE", failures=Failures(mtbf_hours=20.0, mttr_hours=1.0))
    a = json.dumps(run_scenario(scenario).summary, sort_keys=True)
    b = json.dumps(run_scenario(scenario).summary, sort_keys=True)
    assert a == b
    assert a != json.dumps(run_scenario(scenario, replication=1).summary, sort_keys=True)
    heard: list[tuple[float, float]] = []
    watched = run_scenario(scenario, on_progress=lambda done, total: heard.append((done, total)))
    assert json.dumps(watched.summary, sort_keys=True) == a  # progress reports change nothing
    assert len(heard) == 50 and heard[-1][0] == heard[-1][1] > 0
    assert [d for d, _ in heard] == sorted(d for d, _ in heard)
    s = json.loads(a)
    assert s["failures"]["node_failures"] > 0 and s["failures"]["instances_lost"] > 0
    assert s["power"]["sleeps"] > 0 and s["power"]["wakes"] > 0
    assert s["power"]["mean_powered_nodes"] < 20


def test_the_sim_drives_the_cluster_controller_the_api_uses() -> None:
    calls: list[tuple[str, Any, float]] = []
    seen: list[Cloud] = []

    def observe(cloud: Cloud) -> None:
        seen.append(cloud)
        cc = cloud.cc
        real_run, real_terminate = cc.run, cc.terminate

        def run(request: RunRequest) -> list[Launch]:
            launches = real_run(request)
            calls.append(("run", (request, [launch.node for launch in launches]), cc.clock()))
            return launches

        def terminate(instance_id: str) -> Any:
            calls.append(("terminate", instance_id, cc.clock()))
            return real_terminate(instance_id)

        cc.run = run  # type: ignore[method-assign]
        cc.terminate = terminate  # type: ignore[method-assign]

    scenario = replace(SMALL, policy="ROUNDROBIN", public_ip_per_instance=False)
    run_scenario(scenario, observe=observe)
    cloud = seen[0]
    assert type(cloud.cc) is ClusterController
    assert isinstance(cloud.cc.placement, Placement)
    assert cloud.cc.scheduler.placement is cloud.cc.placement
    assert cloud.cc.placement.policy == "ROUNDROBIN"

    # A cluster controller driven directly with the same requests makes the same decisions.
    now = [0.0]
    direct = ClusterController(scenario.config(), cloud.demand.vmtypes, clock=lambda: now[0])
    for node in cloud.nodes:
        direct.nodes.register(node.name, report=ResourceReport(16, 65536, 2000, 16, 65536, 2000))
    runs = 0
    for kind, what, when in calls:
        now[0] = when
        if kind == "run":
            request, nodes = what
            assert [launch.node for launch in direct.run(request)] == nodes
            runs += 1
        else:
            direct.terminate(what)
    assert runs > 500


def test_the_model_measures_utilisation_against_what_the_cc_may_schedule() -> None:
    """Built directly (as the benchmark and a replay build it), not only through run_scenario: with
    MAX_CORES=4 on 20 nodes of 16 cores, utilisation is of 80 cores, not of the hardware's 320."""
    scenario = replace(SMALL, eucalyptus_conf={**SMALL.eucalyptus_conf, "MAX_CORES": "4"})
    workload_rng, image_rng, _ = streams(scenario.seed, 0)
    demand = make_demand(scenario, workload_rng)
    cloud = Cloud(simpy.Environment(), scenario, demand, image_sizes(image_rng, 6, 500, 2000))
    assert (cloud.meter.total_cores, cloud.meter.total_memory, cloud.meter.total_disk) == (
        20 * 4, 20 * 65536, 20 * SMALL.nodes[0].disk_gb)
    summary = run_scenario(scenario).summary
    assert summary["schedulable_capacity"]["cores"] == 80 and summary["schedulable_capacity"]["hardware_cores"] == 320
    assert 0.5 < summary["utilisation"]["cores"] <= 1.0


def test_ends_run_in_one_go_exactly_as_through_simpys_queue() -> None:
    """Instance ends due before anything else run in one callback: the same results as when each
    end goes through SimPy's queue, with failures, power changes and progress pauses in between."""
    scenario = replace(SMALL, policy="POWERSAVE", failures=Failures(mtbf_hours=20.0, mttr_hours=1.0))

    def one_by_one(cloud: Cloud) -> None:
        cloud._inline = False

    inline = run_scenario(scenario, on_progress=lambda done, total: None)
    queued = run_scenario(scenario, observe=one_by_one, on_progress=lambda done, total: None)
    assert json.dumps(inline.summary, sort_keys=True) == json.dumps(queued.summary, sort_keys=True)
    assert inline.series == queued.series
    assert inline.summary["accepted"] > 0 and inline.summary["failures"]["node_failures"] > 0
