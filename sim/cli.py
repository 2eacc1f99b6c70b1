"""``euca sim``: plan capacity by simulating the cluster controller.

``euca sim run [SCENARIO]`` simulates one scenario (a JSON or TOML file, or the default scenario:
100 nodes of 32 cores, MANAGED networking, 20,000 Azure-shaped requests at 85 % offered load, in
well under a minute) and writes result.json, summary.csv, series.csv, PNG plots and index.html to
``--out`` (./sim-report by default).

``euca sim sweep [SCENARIO]`` runs policies x cluster sizes x loads x replications on a local
process pool (or a Dask cluster with ``--scheduler tcp://host:8786``) and answers: the fewest nodes
that keep rejections under ``--target`` at each load, per policy, with 95 % confidence.

``euca sim replay TRACE --against URL`` drives a running ``euca up`` with a trace and prints where
its decisions and the simulator's differ (``sim.replay``).
"""

from __future__ import annotations

import argparse
import atexit
import gc
import sys
from dataclasses import replace
from pathlib import Path

from sim.progress import bar
from sim.run import RunResult, run_scenario
from sim.scenario import Scenario, ScenarioError, load_scenario
from sim.trace import TraceError


def _scenario(args: argparse.Namespace) -> Scenario:
    scenario = load_scenario(args.scenario) if args.scenario else Scenario()
    w = scenario.workload
    if args.policy:
        scenario = replace(scenario, policy=args.policy.upper())
    if args.nodes:
        scenario = scenario.with_nodes(args.nodes)
    if args.seed is not None:
        scenario = replace(scenario, seed=args.seed)
    if args.requests:
        w = replace(w, requests=args.requests)
    if args.load:
        w = replace(w, load=args.load)
    if args.trace:
        w = replace(w, kind="trace", trace=args.trace)
    if args.mtbf_hours is not None:
        scenario = replace(scenario, failures=replace(scenario.failures, mtbf_hours=args.mtbf_hours))
    conf = dict(scenario.eucalyptus_conf)
    for item in args.set or []:
        name, sep, value = item.partition("=")
        if not sep:
            raise ScenarioError(f"--set {item!r}: expected VARIABLE=value")
        conf[name.strip()] = value
    return replace(scenario, workload=w, eucalyptus_conf=conf).validate()


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("scenario", nargs="?", help="scenario file (.json or .toml); default: the built-in scenario")
    parser.add_argument("--policy", help="SCHEDPOLICY (GREEDY, ROUNDROBIN, POWERSAVE, BESTFIT, ...)")
    parser.add_argument("--nodes", type=int, help="cluster size (node classes keep their shares)")
    parser.add_argument("--load", type=float, help="offered core demand as a fraction of the cluster's cores")
    parser.add_argument("--requests", type=int, help="number of VM requests to simulate")
    parser.add_argument("--seed", type=int, help="random seed (same seed, same result)")
    parser.add_argument("--trace", help="replay this CSV trace instead of the synthetic workload")
    parser.add_argument("--mtbf-hours", type=float, help="mean time between node failures (0: none)")
    parser.add_argument("--set", action="append", metavar="VAR=VALUE",
                        help="an eucalyptus.conf variable, e.g. --set VNET_PUBLICIPS=100.64.0.0/24")


def _run(args: argparse.Namespace) -> int:
    scenario = _scenario(args)
    w = scenario.workload
    what = f"the trace {w.trace}" if w.kind == "trace" else f"{w.requests:,} {w.kind} requests"
    print(f"simulating {what} on {scenario.n_nodes} nodes with {scenario.policy}", file=sys.stderr)
    result = run_scenario(scenario, args.replication, on_progress=_progress)
    # The model is garbage now, millions of objects in reference cycles, and the process ends after
    # the report: keep them out of the collector's sight while it is written, and at exit, where
    # the interpreter's last collection would walk and free them (seconds on 1M requests); the OS
    # takes the memory back. A caller in the same process gets its collector back as it was.
    gc.freeze()
    atexit.register(gc.freeze)
    try:
        _report(args, scenario, result)
    finally:
        gc.unfreeze()
    return 0


def _report(args: argparse.Namespace, scenario: Scenario, result: RunResult) -> None:
    from sim.report import write_run_report

    written = write_run_report(Path(args.out), result, scenario.to_dict())
    s = result.summary
    print(f"{s['accepted']:,} of {s['requests']:,} VMs started, {s['rejected']:,} rejected "
          f"({100 * s['rejection_rate']:.2f} %); ran out first: {s['ran_out_first'] or 'nothing'}")
    for reason, count in s["rejected_by_reason"].items():
        print(f"  {count:>8,}  {reason}")
    lat = s["boot_latency_s"]
    power = s["power"]
    print(f"energy {power['energy_kwh']:,.3f} kWh, {power['node_hours_awake']:,.1f} node-hours awake "
          f"({power['mean_powered_nodes']:.1f} nodes on average), rejection rate {100 * s['rejection_rate']:.2f} %")
    print(f"mean core utilisation {100 * s['utilisation']['cores']:.1f} % of {s['schedulable_capacity']['cores']:,} "
          "schedulable cores (MAX_CORES applied)")
    print(f"boot latency p95: cache hit {lat['hit'].get('p95', float('nan')):.1f} s, "
          f"miss {lat['miss'].get('p95', float('nan')):.1f} s; instances lost: {s['failures']['instances_lost']}")
    print(f"simulated {s['simulated_hours']:.1f} h in {result.wall_seconds:.1f} s; report: {written[-1]}")


def _progress(simulated: float, horizon: float) -> None:
    bar("simulating", simulated, horizon, f"{simulated / 3600:,.1f} of {horizon / 3600:,.1f} h")


def _numbers(text: str) -> list[float]:
    try:
        return [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise ScenarioError(f"{text!r}: expected comma-separated numbers") from None


def _sweep(args: argparse.Namespace) -> int:
    from sim.report import write_sweep_report
    from sim.sweep import cells, progress, run_sweep, smallest_clusters, summarise_cells

    base = _scenario(args)
    policies = [p.strip().upper() for p in args.policies.split(",") if p.strip()]
    n = base.n_nodes
    sizes = [int(v) for v in _numbers(args.sizes)] if args.sizes else sorted(
        {max(1, round(n * f)) for f in (0.8, 0.9, 1.0, 1.1, 1.2)})
    loads = _numbers(args.loads) if args.loads else [base.workload.load]
    todo = cells(policies, sizes, loads, args.replications)
    where = args.scheduler or "a local process pool"
    print(f"{len(todo)} runs ({len(policies)} policies x {len(sizes)} sizes x {len(loads)} loads x "
          f"{args.replications} replications) on {where}", file=sys.stderr)
    rows = run_sweep(base, todo, scheduler=args.scheduler, workers=args.workers, on_progress=progress)
    table = summarise_cells(rows)
    answers = smallest_clusters(table, args.target)
    question = (f"The fewest nodes that keep rejections under {100 * args.target:g} % (95 % confidence, "
                f"{args.replications} replications), per policy and offered load "
                f"(a fraction of {base.workload.reference_cores or base.total_cores} cores)")
    written = write_sweep_report(Path(args.out), rows, table, answers, question)
    print("per policy and size (means, +/- 95 % intervals; utilisation of the schedulable cores):")
    for r in table:
        print(f"  {r['policy']:<11} {r['nodes']:>6} nodes load {r['load']:<5g} rejections "
              f"{100 * r['rejection_rate']:.2f} % +/- {100 * r['rejection_rate_ci95']:.2f}, "
              f"{r['energy_kwh']:,.3f} kWh +/- {r['energy_kwh_ci95']:,.3f}, "
              f"{r['node_hours_awake']:,.1f} node-hours awake +/- {r['node_hours_awake_ci95']:,.1f}, "
              f"cores {100 * r['schedulable_core_utilisation']:.1f} %")
    print(question + ":")
    for a in answers:
        ci = a["rejection_rate_ci95"]
        print(f"  {a['policy']:<11} load {a['load']:<5g} -> {a['smallest_nodes']} nodes "
              f"(rejections {100 * a['rejection_rate']:.2f} % +/- {100 * ci:.2f})")
    print(f"report: {written[-1]}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="euca sim", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    run = commands.add_parser("run", help="simulate one scenario and write its report")
    _common(run)
    run.add_argument("--replication", type=int, default=0, help="which replication stream of the seed to use")
    run.add_argument("--out", default="sim-report", help="report directory (default ./sim-report)")
    sweep = commands.add_parser("sweep", help="policies x sizes x loads x replications, with capacity answers")
    _common(sweep)
    sweep.add_argument("--policies", default="GREEDY,ROUNDROBIN,POWERSAVE", help="comma-separated SCHEDPOLICYs")
    sweep.add_argument("--sizes", help="comma-separated node counts (default: 80 to 120 %% of the scenario's)")
    sweep.add_argument("--loads", help="comma-separated offered loads (default: the scenario's)")
    sweep.add_argument("--replications", type=int, default=3)
    sweep.add_argument("--target", type=float, default=0.01, help="rejection rate to stay under (default 0.01)")
    sweep.add_argument("--scheduler", help="Dask scheduler address, e.g. tcp://host:8786 (default: local pool)")
    sweep.add_argument("--workers", type=int, default=0, help="local pool size (default: one per CPU)")
    sweep.add_argument("--out", default="sim-sweep", help="report directory (default ./sim-sweep)")
    from sim import replay

    replay.add_arguments(commands.add_parser("replay", help="drive a running euca up with a trace and compare "
                                             "its decisions with the simulator's"))
    args = parser.parse_args(argv)
    try:
        if args.action == "replay":
            return replay.command(args)
        return _run(args) if args.action == "run" else _sweep(args)
    except (ScenarioError, TraceError, replay.ReplayError) as exc:
        print(f"euca sim: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
