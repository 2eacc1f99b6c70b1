"""Plain-Python twin of ``pyx.placement``: the cluster controller's scheduler, written the obvious way.

A *node* is a node controller in the cluster's ``NODES`` list, with its maximum and free cores, memory
(MB) and disk (GB), its power state and how many instances it runs. A *VM type* (``m1.small``,
``c1.medium``, ...) is a row of (cores, memory, disk) a request asks for. Every decision here is a
straight scan over the nodes in ``NODES`` order; the property tests hold the Cython kernel to exactly
these answers, and ``bench/placement.py`` measures the kernel against this code.
"""

from __future__ import annotations

import operator
from collections.abc import Sequence
from typing import Protocol

import numpy as np
import numpy.typing as npt

from pyx.errors import InsufficientCapacity

UP = 0
DOWN = 1
ASLEEP = 2
WAKING = 3
STATES = (UP, DOWN, ASLEEP, WAKING)
POLICIES = ("GREEDY", "ROUNDROBIN", "POWERSAVE", "BESTFIT", "SPREAD", "ALIGNED", "CACHEAWARE")

# Amounts are kept well inside int64 so that free + need can never overflow in the kernel.
MAX_RESOURCE = 1 << 62
# ALIGNED's weights: stranded cores, then the cores/memory imbalance left, the residue's L2 norm a tie-break.
ALIGNED_STRANDED_WEIGHT = 2.0
ALIGNED_RESIDUAL_WEIGHT = 1e-3

Triple = tuple[int, int, int]


class Presence(Protocol):
    """Which nodes' image caches hold which images (``pyx.presence.PresenceMap`` is one)."""

    def has(self, node: int, image: int) -> bool: ...


def _amount(value: int, what: str) -> int:
    value = operator.index(value)
    if value < 0:
        raise ValueError(f"{what} must be >= 0, got {value}")
    if value >= MAX_RESOURCE:
        raise ValueError(f"{what} must be < 2**62, got {value}")
    return value


def _vmtypes(vmtypes: Sequence[Sequence[int]]) -> list[Triple]:
    out: list[Triple] = []
    for t, row in enumerate(vmtypes):
        if len(row) != 3:
            raise ValueError(f"VM type {t} must be (cores, memory, disk), got {len(row)} values")
        c, m, d = (_amount(v, f"VM type {t} {name}") for v, name in zip(row, ("cores", "memory", "disk"), strict=True))
        if c == 0 and m == 0 and d == 0:
            raise ValueError(f"VM type {t} needs no cores, memory or disk")
        out.append((c, m, d))
    if not out:
        raise ValueError("at least one VM type is required")
    return out


def _policy(policy: str, fallback: str) -> None:
    if policy not in POLICIES:
        raise ValueError(f"unknown placement policy {policy!r}; expected one of {', '.join(POLICIES)}")
    if fallback not in POLICIES or fallback == "CACHEAWARE":
        raise ValueError(f"unknown fallback policy {fallback!r}; CACHEAWARE needs a cache-blind fallback")


def _state(state: int) -> int:
    state = operator.index(state)
    if state not in STATES:
        raise ValueError(f"node state must be UP, DOWN, ASLEEP or WAKING (0-3), got {state}")
    return state


class Placement:
    """The scheduler of one cluster controller: node capacities, power states and the policy."""

    def __init__(self, vmtypes: Sequence[Sequence[int]], policy: str = "GREEDY", fallback: str = "BESTFIT") -> None:
        self._types = _vmtypes(vmtypes)
        self._shapes = list(dict.fromkeys(self._types))  # distinct rows: ALIGNED weighs each once
        _policy(policy, fallback)
        self._policy = policy
        self._fallback = fallback
        self._max: list[list[int]] = []
        self._free: list[list[int]] = []
        self._state: list[int] = []
        self._instances: list[int] = []
        self._idle_since: list[float] = []
        self._waking_since: list[float] = []
        self._rr = 0
        self._presence: Presence | None = None

    # -- read-only views ------------------------------------------------------------------------------

    @property
    def policy(self) -> str:
        return self._policy

    @property
    def fallback(self) -> str:
        return self._fallback

    @property
    def n_nodes(self) -> int:
        return len(self._state)

    @property
    def n_types(self) -> int:
        return len(self._types)

    @property
    def rr_position(self) -> int:
        """Where ROUNDROBIN starts its next scan (Eucalyptus's ``schedState``)."""
        return self._rr

    def _node(self, node: int) -> int:
        node = operator.index(node)
        if not 0 <= node < len(self._state):
            raise IndexError(f"node {node} out of range (0..{len(self._state) - 1})")
        return node

    def _type(self, vmtype: int) -> Triple:
        vmtype = operator.index(vmtype)
        if not 0 <= vmtype < len(self._types):
            raise IndexError(f"VM type {vmtype} out of range (0..{len(self._types) - 1})")
        return self._types[vmtype]

    def state(self, node: int) -> int:
        return self._state[self._node(node)]

    def free(self, node: int) -> Triple:
        f = self._free[self._node(node)]
        return (f[0], f[1], f[2])

    def max(self, node: int) -> Triple:
        m = self._max[self._node(node)]
        return (m[0], m[1], m[2])

    def instances(self, node: int) -> int:
        return self._instances[self._node(node)]

    # -- the cluster changing -------------------------------------------------------------------------

    def add_node(self, cores: int, mem: int, disk: int, state: int = UP, now: float = 0.0) -> int:
        caps = [_amount(cores, "cores"), _amount(mem, "memory"), _amount(disk, "disk")]
        state = _state(state)
        self._max.append(caps)
        self._free.append(list(caps))
        self._state.append(state)
        self._instances.append(0)
        self._idle_since.append(float(now))
        self._waking_since.append(float(now))
        return len(self._state) - 1

    def set_max(self, node: int, cores: int, mem: int, disk: int) -> None:
        node = self._node(node)
        caps = [_amount(cores, "cores"), _amount(mem, "memory"), _amount(disk, "disk")]
        old_max, free = self._max[node], self._free[node]
        for d in range(3):
            used = old_max[d] - free[d]
            free[d] = max(caps[d] - used, 0)
        self._max[node] = caps

    def report(self, node: int, free_cores: int, free_mem: int, free_disk: int, instances: int) -> None:
        node = self._node(node)
        reported = [_amount(free_cores, "free cores"), _amount(free_mem, "free memory"),
                    _amount(free_disk, "free disk")]
        count = _amount(instances, "instances")
        self._free[node] = [min(reported[d], self._max[node][d]) for d in range(3)]
        self._instances[node] = count

    def set_state(self, node: int, state: int, now: float = 0.0) -> None:
        node = self._node(node)
        state = _state(state)
        if state == self._state[node]:
            return
        self._state[node] = state
        if state == WAKING:
            self._waking_since[node] = float(now)
        elif state == UP and self._instances[node] == 0:
            self._idle_since[node] = float(now)

    def attach_presence(self, presence: Presence | None) -> None:
        self._presence = presence

    def set_vmtypes(self, vmtypes: Sequence[Sequence[int]]) -> None:
        self._types = _vmtypes(vmtypes)
        self._shapes = list(dict.fromkeys(self._types))

    # -- decisions ------------------------------------------------------------------------------------

    def _fits(self, node: int, need: Triple) -> bool:
        f = self._free[node]
        return f[0] >= need[0] and f[1] >= need[1] and f[2] >= need[2]

    def _awake(self, node: int) -> bool:
        return self._state[node] in (UP, WAKING)

    def _scales(self) -> list[float]:
        return [float(max((m[d] for m in self._max), default=0) or 1) for d in range(3)]

    def _key(self, node: int, scale: list[float]) -> float:
        f = self._free[node]
        return float(f[0]) / scale[0] + float(f[1]) / scale[1] + float(f[2]) / scale[2]

    def _stranded(self, free: Triple, scale: list[float]) -> float:
        """Free cores (scaled) the VM types cannot use, averaged over the distinct types: for each
        type that does not fit, all of them."""
        unfit = sum(1 for need in self._shapes if free[0] < need[0] or free[1] < need[1] or free[2] < need[2])
        return (float(free[0]) / scale[0]) * (float(unfit) / float(len(self._shapes)))

    def _residue(self, node: int, need: Triple, scale: list[float]) -> float:
        """ALIGNED's score, smallest wins: the cores the placement strands, the imbalance between the
        cores and the memory it leaves (what one of them alone cannot use), and the L2 norm of the
        normalised free vector it leaves, weighted down to a tie-break towards the fuller node."""
        f = self._free[node]
        r = (f[0] - need[0], f[1] - need[1], f[2] - need[2])
        x0, x1, x2 = float(r[0]) / scale[0], float(r[1]) / scale[1], float(r[2]) / scale[2]
        return (ALIGNED_STRANDED_WEIGHT * (self._stranded(r, scale) - self._stranded((f[0], f[1], f[2]), scale))
                + (x0 - x1) * (x0 - x1)
                + ALIGNED_RESIDUAL_WEIGHT * (x0 * x0 + x1 * x1 + x2 * x2))

    def _greedy(self, need: Triple) -> int:
        for i in range(self.n_nodes):
            if self._awake(i) and self._fits(i, need):
                return i
        return -1

    def _roundrobin(self, need: Triple) -> int:
        order = list(range(self._rr, self.n_nodes)) + list(range(self._rr))
        for i in order:
            if self._state[i] != DOWN and self._fits(i, need):
                return i
        return -1

    def _powersave(self, need: Triple) -> int:
        i = self._greedy(need)
        if i >= 0:
            return i
        for i in range(self.n_nodes):
            if self._state[i] == ASLEEP and self._fits(i, need):
                return i
        return -1

    def _best(self, need: Triple, policy: str) -> int:
        scale = self._scales()
        best, best_score = -1, 0.0
        for i in range(self.n_nodes):
            if not (self._awake(i) and self._fits(i, need)):
                continue
            if policy == "BESTFIT":
                score = -self._key(i, scale)
            elif policy == "SPREAD":
                score = self._key(i, scale)
            else:
                score = -self._residue(i, need, scale)
            if best < 0 or score > best_score:
                best, best_score = i, score
        return best

    def _cached(self, need: Triple, image: int) -> int:
        if image < 0 or self._presence is None:
            return -1
        scale = self._scales()
        best, best_key = -1, 0.0
        for i in range(self.n_nodes):
            if self._awake(i) and self._fits(i, need) and self._presence.has(i, image):
                key = self._key(i, scale)
                if best < 0 or key < best_key:
                    best, best_key = i, key
        return best

    def _choose(self, policy: str, need: Triple, image: int) -> tuple[int, bool]:
        """The node the policy picks, and whether ROUNDROBIN's position moves with it."""
        if policy == "GREEDY":
            return self._greedy(need), False
        if policy == "ROUNDROBIN":
            return self._roundrobin(need), True
        if policy == "POWERSAVE":
            return self._powersave(need), False
        if policy == "CACHEAWARE":
            i = self._cached(need, image)
            if i >= 0:
                return i, False
            return self._choose(self._fallback, need, image)
        return self._best(need, policy), False

    def place(self, vmtype: int, image: int = -1, now: float = 0.0) -> int:
        """Run one instance of the VM type: the chosen node, or -1 when no node can take it."""
        need = self._type(vmtype)
        image = operator.index(image)
        node, moves_rr = self._choose(self._policy, need, image)
        if node < 0:
            return -1
        free = self._free[node]
        for d in range(3):
            free[d] -= need[d]
        self._instances[node] += 1
        if self._state[node] == ASLEEP:
            self._state[node] = WAKING
            self._waking_since[node] = float(now)
        if moves_rr:
            self._rr = (node + 1) % self.n_nodes
        return node

    def place_many(self, vmtype: int, min_count: int, max_count: int, image: int = -1,
                   now: float = 0.0) -> list[int]:
        """A reservation: at least ``min_count`` instances or none at all, then up to ``max_count``."""
        min_count, max_count = operator.index(min_count), operator.index(max_count)
        if not 0 <= min_count <= max_count:
            raise ValueError(f"need 0 <= min_count <= max_count, got {min_count} and {max_count}")
        self._type(vmtype)
        undo = (self._rr, [list(f) for f in self._free], list(self._instances), list(self._state),
                list(self._waking_since))
        placed: list[int] = []
        while len(placed) < max_count:
            node = self.place(vmtype, image, now)
            if node < 0:
                break
            placed.append(node)
        if len(placed) < min_count:
            self._rr, self._free, self._instances, self._state, self._waking_since = undo
            raise InsufficientCapacity()
        return placed

    def release(self, node: int, vmtype: int, now: float = 0.0) -> None:
        """An instance of the VM type on the node ended (terminated, or unseen past INSTANCE_TIMEOUT)."""
        node = self._node(node)
        need = self._type(vmtype)
        free, cap = self._free[node], self._max[node]
        for d in range(3):
            free[d] = min(free[d] + need[d], cap[d])
        if self._instances[node] > 0:
            self._instances[node] -= 1
            if self._instances[node] == 0:
                self._idle_since[node] = float(now)

    # -- reports --------------------------------------------------------------------------------------

    @staticmethod
    def _copies(have: list[int], need: Triple) -> int:
        return min(have[d] // need[d] for d in range(3) if need[d] > 0)

    def availability(self) -> npt.NDArray[np.int64]:
        """Per VM type, [free, max] copies summed over the nodes that are not DOWN."""
        out = []
        for need in self._types:
            free = cap = 0
            for i in range(self.n_nodes):
                if self._state[i] != DOWN:
                    free += self._copies(self._free[i], need)
                    cap += self._copies(self._max[i], need)
            out.append([free, cap])
        return np.array(out, dtype=np.int64).reshape(len(self._types), 2)

    def power_tick(self, now: float, idle_thresh: float, wake_thresh: float) -> tuple[list[int], list[int]]:
        """(idle UP nodes to power down past POWER_IDLETHRESH, WAKING nodes silent past POWER_WAKETHRESH)."""
        idle = [i for i in range(self.n_nodes) if self._state[i] == UP and self._instances[i] == 0
                and now - self._idle_since[i] > idle_thresh]
        lost = [i for i in range(self.n_nodes) if self._state[i] == WAKING
                and now - self._waking_since[i] > wake_thresh]
        return idle, lost
