"""The capacity planner's speed: the full model against a bare SimPy model of the same requests.

Both sides replay the same reservations (arrival times and lifetimes) on the same number of nodes
in the same run. The full model is ``sim.cloud.Cloud``: the real cluster controller placing every
reservation with GREEDY, MANAGED networking (a VLAN and a private address per instance), the
image cache index, Walrus downloads and boot times. The bare model is what one would write in
plain SimPy with trivial placement: one process per VM holding its cores for its lifetime, admitted
while the cluster's free cores (one counter, no nodes) cover it.

Rates are requests (VMs asked for) per second of wall-clock time spent in ``env.run``, medians over
interleaved repeats; the target is a ratio of at least 0.67 (the full model within 1.5x of the
bare one), with Python's default collector on both sides, as either model runs when written
plainly, and again with the collector settings ``euca sim run`` uses (``sim.gctuning``) on both.
The bare model keeps a process, a generator and a timeout alive per running VM, which the
collector walks again and again under its default settings; the full model keeps no object per
running instance that the collector tracks (an instance's end is an entry in a C array,
``pyx.endqueue``, only the earliest on SimPy's queue), so it is the bare model that gains more from the tuned
settings. Each run starts after a full collection, so neither model pays for the other's garbage.
``sim_1m`` runs a million requests on 10,000 nodes in a child process and reports its rate and
peak resident memory; ``sim_1m_cli`` runs the same scenario as a user does, ``euca sim run FILE``
(set-up, the run, the report and the process's exit), and reports its wall-clock time: the
target is under 15 s.
"""

from __future__ import annotations

import gc
import json
import multiprocessing
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Generator
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import numpy as np
import simpy

from bench.table import Row
from bench.timing import rate
from pyx.endqueue import EndQueue
from pyx.twins import endqueue as twin_endqueue
from sim.cloud import Cloud, image_sizes
from sim.gctuning import quiet_gc
from sim.processes import Reservation, users
from sim.run import make_demand, reservations, streams
from sim.scenario import NodeClass, Scenario, Workload

UNIT = "req/s (full vs bare SimPy)"


def scenario(n_nodes: int, n_requests: int) -> Scenario:
    """MANAGED networking and image caching on, auto-assigned public addresses off (see the report), and a
    warm start: the cluster begins at its steady state, so instances end as fast as new ones arrive."""
    return Scenario(
        name="bench", seed=2, policy="GREEDY", nodes=(NodeClass(count=n_nodes),), public_ip_per_instance=False,
        workload=Workload(kind="synthetic", requests=n_requests, load=0.9, lifetime_scale=0.02, daily=0.0,
                          weekly=0.0, groups=2000, group_skew=0.0),
    )


def full_model(s: Scenario, tuned_gc: bool = False) -> tuple[int, float]:
    """(requests, seconds in env.run) of the full model; ``tuned_gc`` runs it as ``euca sim run`` does."""
    workload_rng, image_rng, _ = streams(s.seed, 0)
    demand = make_demand(s, workload_rng)
    env = simpy.Environment()
    cloud = Cloud(env, s, demand, image_sizes(image_rng, s.images.count, s.images.size_mb_min, s.images.size_mb_max))
    plan = reservations(demand)
    cloud.meter.sample_every = max(plan[-1][0] / 400, 1.0)
    done = env.process(users(env, cloud, plan))
    gc.collect()
    with quiet_gc() if tuned_gc else nullcontext():
        started = time.perf_counter()
        env.run(until=done)
        return len(demand.requests), time.perf_counter() - started


def bare_model(s: Scenario, tuned_gc: bool = False) -> tuple[int, float]:
    """(requests, seconds in env.run) of plain SimPy with trivial placement, on the same requests."""
    workload_rng, _, _ = streams(s.seed, 0)
    demand = make_demand(s, workload_rng)
    cores = [t.cores for t in demand.vmtypes]
    plan = reservations(demand)
    free = [s.nodes[0].cores * s.n_nodes]  # the cluster's free cores: placement is a subtraction
    env = simpy.Environment()

    def vm(env: simpy.Environment, need: int, lifetime: float) -> Generator[simpy.Event, Any, None]:
        yield env.timeout(lifetime)
        free[0] += need

    def arrivals(env: simpy.Environment, plan: list[Reservation]) -> Generator[simpy.Event, Any, None]:
        for when, vmtype, _, _, lifetimes, _ in plan:
            if when > env.now:
                yield env.timeout(when - env.now)
            need = cores[vmtype]
            for lifetime in lifetimes:
                if free[0] >= need:
                    free[0] -= need
                    env.process(vm(env, need, lifetime))

    done = env.process(arrivals(env, plan))
    gc.collect()
    with quiet_gc() if tuned_gc else nullcontext():
        started = time.perf_counter()
        env.run(until=done)
        return len(demand.requests), time.perf_counter() - started


def _rate(model: Any, s: Scenario, tuned_gc: bool = False) -> float:
    n, seconds = model(s, tuned_gc)
    return float(n / seconds)


def pair(s: Scenario, tuned_gc: bool = False, repeats: int = 3) -> tuple[float, float]:
    """Median rates of the full and the bare model, measured alternately so that both see the
    same machine load."""
    full, bare = [], []
    for _ in range(repeats):
        full.append(_rate(full_model, s, tuned_gc))
        bare.append(_rate(bare_model, s, tuned_gc))
    return statistics.median(full), statistics.median(bare)


def rows(quick: bool = False) -> list[Row]:
    """Both models under Python's default collector, then both with the simulator's collector
    settings (sim.gctuning, what ``euca sim run`` uses): each pair measured alike."""
    n_nodes, n_requests = (1_000, 5_000) if quick else (10_000, 200_000)
    s = scenario(n_nodes, n_requests)
    size = f"{n_nodes:,} nodes, {n_requests // 1000}k req"
    repeats = 1 if quick else 5
    out = [Row("sim: full model vs bare SimPy", size, *pair(s, False, repeats), UNIT),
           Row("sim: the same, both with sim's gc settings", size, *pair(s, True, repeats), UNIT),
           end_queue_row(10_000 if quick else 100_000, 20_000 if quick else 200_000)]
    if not quick:
        rate, peak_mb = sim_1m()
        out.append(Row("sim: 1M requests (full)", f"10,000 nodes, peak {peak_mb:,.0f} MB RSS", rate, rate,
                       "req/s (full, child process)"))
        wall = sim_1m_cli()
        out.append(Row("sim: 1M requests, euca sim run", f"10,000 nodes, {wall:.1f} s wall", 1e6 / wall, 1e6 / wall,
                       "req/s (whole process)"))
    return out


def end_queue_row(queued: int = 100_000, pairs: int = 200_000) -> Row:
    """``pyx.endqueue`` against its twin: with ``queued`` instance ends waiting, the earliest ends and a
    new one is queued, as in a steady-state run."""
    rng = np.random.default_rng(1)
    initial = rng.exponential(1000.0, queued).tolist()
    lives = rng.exponential(1000.0, pairs).tolist()

    def churn(kind: Any) -> Callable[[], int]:
        queue = kind()
        for k, when in enumerate(initial):
            queue.push(when, k, f"i-{k:08X}")
        seq = [queued]

        def run() -> int:
            push, pop, first = queue.push, queue.pop, queue.first
            for life in lives:
                now = first()[0]
                _, item = pop()
                seq[0] += 1
                push(now + life, seq[0], item)
            return pairs

        return run

    return Row("sim: instance end queue", f"{queued // 1000}k queued", rate(churn(EndQueue), 3),
               rate(churn(twin_endqueue.EndQueue), 3), "end+start/s")


def _child(queue: Any) -> None:
    n, seconds = full_model(scenario(10_000, 1_000_000), tuned_gc=True)
    queue.put((n / seconds, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024))


def sim_1m() -> tuple[float, float]:
    """Requests per second and peak resident memory (MB) of the full model on a million requests,
    measured in a fresh process so the peak is the simulation's own."""
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    child = ctx.Process(target=_child, args=(queue,))
    child.start()
    rate, peak = queue.get()
    child.join()
    return float(rate), float(peak)


def sim_1m_cli() -> float:
    """Seconds of wall-clock time ``euca sim run`` takes on the million-request scenario, from the
    process's start to its exit, report written."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "sim-1m.json"
        path.write_text(json.dumps(scenario(10_000, 1_000_000).to_dict()))
        started = time.perf_counter()
        subprocess.run([sys.executable, "-m", "euca.cli", "sim", "run", str(path), "--out", str(Path(tmp) / "report")],
                       check=True, capture_output=True, cwd=Path(__file__).resolve().parents[1])
        return time.perf_counter() - started


if __name__ == "__main__":
    from bench.table import format_rows

    print(format_rows(rows(quick=True)))
    per_s, peak = sim_1m()
    print(f"1,000,000 requests on 10,000 nodes: {per_s:,.0f} req/s, peak RSS {peak:,.0f} MB")
    print(f"euca sim run on the same scenario: {sim_1m_cli():.1f} s wall clock")
