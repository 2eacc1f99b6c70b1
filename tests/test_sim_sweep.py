"""Sweeps: a local process pool and a Dask cluster give the same tables; capacity answers."""

from __future__ import annotations

import math

import pytest

from sim.scenario import Images, NodeClass, Scenario, Workload
from sim.sweep import Cell, cells, mean_ci, run_sweep, smallest_clusters, summarise_cells

BASE = Scenario(
    name="sweep", seed=3, nodes=(NodeClass(count=10, cores=16, memory_mb=65536),),
    images=Images(count=4, size_mb_min=500, size_mb_max=1000),
    workload=Workload(requests=600, load=0.9, lifetime_scale=0.05, groups=10),
)
TODO = cells(("GREEDY", "POWERSAVE"), (8, 12), (0.9,), 2)


def test_a_local_pool_and_a_dask_cluster_give_identical_tables() -> None:
    local = run_sweep(BASE, TODO, workers=2)
    assert [(r["policy"], r["nodes"], r["replication"]) for r in local] == [
        (c.policy, c.nodes, c.replication) for c in sorted(TODO, key=lambda c: (c.policy, c.nodes, c.replication))]
    try:
        from distributed import LocalCluster
    except ImportError:
        pytest.skip("dask.distributed is not installed (pip install 'euca[dask]')")
    with LocalCluster(n_workers=1, threads_per_worker=2, processes=False, dashboard_address=None) as cluster:
        remote = run_sweep(BASE, TODO, scheduler=cluster.scheduler_address)
    assert remote == local
    assert summarise_cells(remote) == summarise_cells(local)


def test_policies_see_the_same_requests() -> None:
    rows = run_sweep(BASE, cells(("GREEDY", "ROUNDROBIN"), (10,), (0.9,), 1), workers=1)
    assert rows[0]["requests"] == rows[1]["requests"]


def test_the_smallest_cluster_under_the_target_with_confidence() -> None:
    rows = [
        {"policy": "GREEDY", "nodes": n, "load": 0.9, "replication": r, "rejection_rate": rate,
         "schedulable_core_utilisation": 0.5, "energy_kwh": 1.0, "node_hours_awake": 2.0 * n,
         "mean_powered_nodes": n, "boot_p95_miss_s": 1.0,
         "instances_lost": 0, "ran_out_first": ""}
        for n, rates in ((8, (0.05, 0.06, 0.055)), (10, (0.004, 0.02, 0.012)), (12, (0.001, 0.002, 0.0015)))
        for r, rate in enumerate(rates)
    ]
    answers = smallest_clusters(summarise_cells(rows), 0.01)
    # 10 nodes average 1.2 % with a wide interval; 12 nodes are under 1 % with confidence.
    assert [(a["policy"], a["smallest_nodes"]) for a in answers] == [("GREEDY", 12)]
    assert smallest_clusters(summarise_cells(rows), 0.0001)[0]["smallest_nodes"] == "more than 12"


def test_confidence_intervals() -> None:
    mean, half = mean_ci([1.0, 2.0, 3.0])
    assert mean == 2.0 and math.isclose(half, 4.303 * 1.0 / math.sqrt(3))
    assert math.isnan(mean_ci([1.0])[1])
    assert Cell("GREEDY", 8, 0.9, 0) in TODO
