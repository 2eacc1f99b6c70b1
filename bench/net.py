"""The network agent's install path: the whole ruleset for 1,000 instances in 100 security groups with
5 ingress rules each, rendered and installed with one iptables-restore, one ipset restore and one
``nft -f`` for the bridge table (its port/MAC/address pairs are set elements), by an agent that
holds the state it installed before (an empty cloud); then one changed rule (only that group's chain
is replaced; the change rendered untimed, as on the per-call side); then a restarted agent, which
reads the host's tables first and replaces all of it. Beside each, the way of one ``iptables``
command per rule: for the whole ruleset one ``iptables -A`` per rule (measured over a sample of
rules, scaled to the ruleset); for the changed rule the same change made in place, each changed
rule's ``iptables -D`` and ``iptables -I`` at its position, so both sides of that ratio make the
same change.

Runs as root in a network namespace it makes and deletes; the host's own tables are not touched.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
from dataclasses import replace

from euca.net.host import Host, Run, run_command
from euca.net.render import Desired, HostConfig, render
from euca.net.view import NetView, parse_view

GROUPS, PER_GROUP, RULES = 100, 10, 5
SAMPLE = 200  # rules installed one iptables call at a time


def view(groups: int = GROUPS, per_group: int = PER_GROUP, port_shift: int = 0) -> NetView:
    gs = []
    for g in range(groups):
        # port_shift moves the first group's first rule: the one changed rule
        ports = [1000 + r + (port_shift if g == r == 0 else 0) for r in range(RULES - 1)]
        rules: list[dict[str, object]] = [{"protocol": "tcp", "from": ports[r], "to": ports[r],
                                           "cidr": f"10.{g}.{r}.0/24"} for r in range(RULES - 1)]
        rules.append({"protocol": "tcp", "from": 22, "to": 22, "group": f"sg-{(g + 1) % groups:08x}"})
        gs.append({"id": f"sg-{g:08x}", "rules": rules})
    instances = [{"id": f"i-{k:08x}", "mac": f"d0:0d:00:00:{k // 256:02x}:{k % 256:02x}",
                  "private_ip": f"172.19.{k // 250}.{k % 250 + 2}", "public_ip": f"198.51.{k // 250}.{k % 250 + 2}",
                  "groups": [f"sg-{k % groups:08x}"]} for k in range(groups * per_group)]
    return parse_view({"version": 1, "mode": "EDGE", "network": {"subnet": "172.19.0.0", "netmask": "255.255.0.0",
                                                                 "metadata": "10.0.0.5:8773"},
                       "groups": gs, "instances": instances})


def _ns() -> str:
    name = f"eubench{os.getpid()}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    return name


def per_call_change(run: Run, have: Desired, want: Desired) -> int:
    """Make the rules that differ between ``have`` and ``want`` (installed: ``have``) match one
    ``iptables`` call at a time: each changed rule deleted and its new form inserted where it was.
    The number of calls made."""
    calls = 0
    for table in ("filter", "nat", "mangle"):
        old, new = getattr(have, table), getattr(want, table)
        for chain, rules in new.items():
            for position, (before, after) in enumerate(zip(old.get(chain, []), rules, strict=False), start=1):
                if before == after:
                    continue
                run(["iptables", "-w", "-t", table, "-D", chain, *before.split()[2:]], "")
                run(["iptables", "-w", "-t", table, "-I", chain, str(position), *after.split()[2:]], "")
                calls += 2
    return calls


def measure(quick: bool = False) -> dict[str, float]:
    if os.geteuid() != 0:
        raise SystemExit("bench net needs root (it works in a network namespace it makes)")
    repeats = 3 if quick else 5
    full_view, changed_view, empty_view = view(), view(port_shift=100), view(groups=0, per_group=0)
    config = HostConfig()
    ns = _ns()
    try:
        run = run_command(["ip", "netns", "exec", ns])
        host = Host(run)
        host.apply(render(full_view, config))  # the bridge and jumps exist before timing
        fulls, incrementals, renders, restarts, in_place = [], [], [], [], []
        calls = 0
        for _ in range(repeats):
            host.apply(replace(render(empty_view, config), bridge_addresses={}))
            started = time.perf_counter()
            desired = render(full_view, config)
            renders.append(time.perf_counter() - started)
            host.apply(replace(desired, bridge_addresses={}))
            fulls.append(time.perf_counter() - started)
            # the change rendered before the clock starts, as the per-call side's is: both sides
            # time installing the one changed rule, not computing it
            changed = replace(render(changed_view, config), bridge_addresses={})
            started = time.perf_counter()
            host.apply(changed)
            incrementals.append(time.perf_counter() - started)
            host.apply(replace(render(full_view, config), bridge_addresses={}))
            host.applied = None  # as after a restart: read the host, replace everything
            started = time.perf_counter()
            host.apply(replace(render(full_view, config), bridge_addresses={}))
            restarts.append(time.perf_counter() - started)
            # the changed rules, in place, one call each; then back, untimed
            full, changed = render(full_view, config), render(changed_view, config)
            started = time.perf_counter()
            calls = per_call_change(run, full, changed)
            in_place.append(time.perf_counter() - started)
            per_call_change(run, changed, full)
        rules = sum(len(c) for table in (desired.filter, desired.nat, desired.mangle) for c in table.values())
        run(["iptables", "-N", "PERCALL"], "")
        started = time.perf_counter()
        for k in range(SAMPLE):
            run(["iptables", "-w", "-A", "PERCALL", "-s", f"10.9.{k // 250}.{k % 250}", "-p", "tcp", "-m", "tcp",
                 "--dport", "80", "-j", "ACCEPT"], "")
        per_call = (time.perf_counter() - started) / SAMPLE
    finally:
        subprocess.run(["ip", "netns", "del", ns], check=False)
    return {"rules": rules, "render": statistics.median(renders), "full": statistics.median(fulls),
            "incremental": statistics.median(incrementals), "restart": statistics.median(restarts),
            "per_call_each": per_call, "per_call_total": per_call * rules,
            "per_call_change": statistics.median(in_place), "change_calls": calls}


def format_report(m: dict[str, float]) -> str:
    return "\n".join([
        f"ruleset: {GROUPS * PER_GROUP:,} instances, {GROUPS} groups x {RULES} rules = {int(m['rules']):,} "
        "iptables rules (filter + nat + mangle), 101 ipsets, a bridge table of 5 rules and 2 x 1,000 set elements",
        f"render only                           {m['render'] * 1e3:8.1f} ms",
        f"full apply (render + install all)      {m['full'] * 1e3:8.1f} ms   (target < 200 ms)",
        f"one changed rule (one chain, install)  {m['incremental'] * 1e3:8.1f} ms   (target < 50 ms; "
        "rendering the change untimed, as on the per-call side)",
        f"restarted agent (reads the host first) {m['restart'] * 1e3:8.1f} ms",
        f"one iptables call per rule             {m['per_call_total'] * 1e3:8.1f} ms   "
        f"({m['per_call_each'] * 1e3:.2f} ms a call x {int(m['rules'])}, sampled over {SAMPLE})",
        f"the same change in place, per call     {m['per_call_change'] * 1e3:8.1f} ms   "
        f"({int(m['change_calls'])} calls: the rule's -D and -I)",
        f"ratio: full apply {m['per_call_total'] / m['full']:,.0f}x faster than one call per rule (target >= 50x); "
        f"one changed rule, install only on both sides: in place per call / one restore = "
        f"{m['per_call_change'] / m['incremental']:,.1f}x",
    ])


if __name__ == "__main__":
    print(format_report(measure("--quick" in sys.argv)))
