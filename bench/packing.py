"""Packing quality of every scheduling policy: rejections and utilisation at offered loads 0.9, 1.0, 1.1.

Each policy sees the same requests (common random numbers): deployments of VMs with the size,
lifetime and batch shape of published VM traces (``sim.workload``), arriving as a Poisson process
on a cluster of identical nodes. A deployment asks for its VMs as one reservation with a minimum
of one; every VM that finds no node is a rejection. Utilisation is the time average of the
cluster's cores in use after a warm-up of a tenth of the requests.

Under each load, a "(one bin)" row runs the same requests on one node holding the whole cluster's
capacity: no policy can strand anything there, so it is the floor for every policy that takes each VM
that fits somewhere (rejections counted in VMs can only go below it by refusing large VMs that fit
to keep room for small ones).
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass

import numpy as np

from pyx.errors import InsufficientCapacity
from pyx.placement import POLICIES, Placement
from pyx.presence import PresenceMap
from sim.workload import AZURE_SIZES, VmRequests, mean_lifetime, poisson_workload

NODE = (32, 65536, 2000)  # cores, MB, GB: 2 GB per core, so cores and memory both bind
LOADS = (0.9, 1.0, 1.1)


@dataclass(frozen=True)
class Quality:
    policy: str
    load: float
    requested: int
    rejected: int
    core_utilisation: float
    memory_utilisation: float

    @property
    def rejection_rate(self) -> float:
        return self.rejected / self.requested if self.requested else 0.0


def vm_types() -> list[tuple[int, int, int]]:
    return [(cores, mem, cores * 20) for cores, mem, _ in AZURE_SIZES]


ONE_BIN = "(one bin)"


def replay(policy: str, requests: VmRequests, n_nodes: int) -> Quality:
    """Run the requests through a fresh cluster with ``policy``; images are cached on first use.
    ``ONE_BIN`` runs them on a single node with the capacity of ``n_nodes``."""
    types = vm_types()
    placement = Placement(types, "GREEDY" if policy == ONE_BIN else policy)
    presence = PresenceMap()
    placement.attach_presence(presence)
    if policy == ONE_BIN:
        placement.add_node(*(n_nodes * amount for amount in NODE))
    else:
        for _ in range(n_nodes):
            placement.add_node(*NODE)
    total_cores, total_mem = NODE[0] * n_nodes, NODE[1] * n_nodes
    ends: list[tuple[float, int, int]] = []  # (end time, node, type)
    warm = float(requests.arrival[requests.prefill + (len(requests) - requests.prefill) // 10])
    last = warm
    used_cores = used_mem = 0
    core_time = mem_time = 0.0
    rejected = counted = 0
    arrival, size, life, deployment, image = (
        requests.arrival, requests.size, requests.lifetime, requests.deployment, requests.image)
    i, n = 0, len(requests)
    while i < n:
        j = i
        while j < n and deployment[j] == deployment[i]:
            j += 1
        now = float(arrival[i])
        while ends and ends[0][0] <= now:
            end, node, t = heapq.heappop(ends)
            if end > last:  # time before the warm-up's end is never counted: last starts there
                core_time += used_cores * (end - last)
                mem_time += used_mem * (end - last)
                last = end
            placement.release(node, t, end)
            used_cores -= types[t][0]
            used_mem -= types[t][1]
        if now > last:
            core_time += used_cores * (now - last)
            mem_time += used_mem * (now - last)
            last = now
        # A deployment of one size class at a time: split mixed deployments by class.
        for t in np.unique(size[i:j]):
            members = [k for k in range(i, j) if size[k] == t]
            img = int(image[members[0]])
            try:
                nodes = placement.place_many(int(t), 1, len(members), img, now)
            except InsufficientCapacity:
                nodes = []
            for k, node in zip(members, nodes, strict=False):
                heapq.heappush(ends, (now + float(life[k]), node, int(t)))
                presence.set(node, img, True)
            used_cores += types[t][0] * len(nodes)
            used_mem += types[t][1] * len(nodes)
            if now > warm:
                counted += len(members)
                rejected += len(members) - len(nodes)
        i = j
    span = max(last - warm, 1e-9)
    return Quality(policy, 0.0, counted, rejected, core_time / span / total_cores, mem_time / span / total_mem)


def quality_table(n_nodes: int = 200, n_vms: int = 40_000, seed: int = 7,
                  policies: tuple[str, ...] = (*POLICIES, ONE_BIN)) -> list[Quality]:
    """Every policy at every load, on the same requests per load, and the one-bin floor."""
    life = mean_lifetime()
    out = []
    for load in LOADS:
        rng = np.random.default_rng([seed, int(load * 100)])
        requests = poisson_workload(rng, n_vms, NODE[0] * n_nodes, load, lifetime_mean=life)
        for policy in policies:
            q = replay(policy, requests, n_nodes)
            out.append(Quality(policy, load, q.requested, q.rejected, q.core_utilisation, q.memory_utilisation))
    return out


def format_quality(rows: list[Quality]) -> str:
    header = (f"{'policy':<11} {'load':>5} {'requests':>9} {'rejected':>9} {'reject %':>9} {'x GREEDY':>9} "
              f"{'cores used':>11} {'memory used':>12}")
    lines = [header, "-" * len(header)]
    greedy = {q.load: q.rejected for q in rows if q.policy == "GREEDY"}
    for q in rows:
        ratio = f"{q.rejected / greedy[q.load]:>9.2f}" if greedy.get(q.load) else f"{'-':>9}"
        lines.append(f"{q.policy:<11} {q.load:>5.1f} {q.requested:>9,} {q.rejected:>9,} "
                     f"{100 * q.rejection_rate:>8.2f}% {ratio} {100 * q.core_utilisation:>10.1f}% "
                     f"{100 * q.memory_utilisation:>11.1f}%")
    return "\n".join(lines)
