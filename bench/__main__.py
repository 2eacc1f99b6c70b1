"""``python -m bench``: every kernel against its plain-Python twin, then the policies' packing quality."""

from __future__ import annotations

import argparse
import importlib
import sys
import time

from bench.table import Row, format_rows

# Each module's rows(quick) measures a kernel and its twin side by side in one run.
KERNEL_BENCHES = ("bench.placement", "bench.netalloc", "bench.ledger", "bench.imagecache", "bench.digest", "bench.sim",
                  "bench.node", "bench.policy")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small sizes and few repeats (seconds, not minutes)")
    parser.add_argument("--only", action="append", default=[],
                        help="run only these parts: placement, netalloc, ledger, imagecache, digest, node, sim, "
                             "policy, packing, api; s3, ebs, ebs-guest, bundle, metadata, net, fuzz and soak run "
                             "only when named")
    parser.add_argument("--requests", type=int, help="fuzz: requests to send (100,000; --quick 3,000)")
    parser.add_argument("--seconds", type=float, help="soak: seconds to run (600; --quick 30)")
    args = parser.parse_args(argv)
    wanted = set(args.only)

    rows: list[Row] = []
    for module_name in KERNEL_BENCHES:
        part = module_name.split(".")[1]
        if wanted and part not in wanted:
            continue
        started = time.perf_counter()
        print(f"measuring {part} ...", file=sys.stderr, flush=True)
        module = importlib.import_module(module_name)
        rows += module.rows(quick=args.quick)
        print(f"  {part} done in {time.perf_counter() - started:.1f} s", file=sys.stderr, flush=True)
    if rows:
        print("Cython kernels against their plain-Python twins (medians over repeats)")
        print(format_rows(rows))
        print()

    if not wanted or "packing" in wanted:
        from bench.packing import format_quality, quality_table

        print("measuring packing quality ...", file=sys.stderr, flush=True)
        quality = quality_table(n_nodes=50, n_vms=6_000) if args.quick else quality_table()
        print("Packing quality: the same Azure-shaped requests for every policy (32-core, 64 GB nodes)")
        print(format_quality(quality))
    if "api" in wanted or (not wanted and not args.quick):
        # Starts two servers; left out of --quick unless asked for with --only api.
        from bench.api import format_table, measure

        print("measuring the EC2 API against moto ...", file=sys.stderr, flush=True)
        print()
        print("EC2 API: euca beside moto's server, one worker each, same workloads (127.0.0.1)")
        measured = measure(args.quick)
        print(format_table(measured))
        from bench.api_limit import bare_rate, breakdown, format_breakdown

        limit = bare_rate(2_000 if args.quick else 10_000)
        print()
        print(f"The floor: bare uvicorn + uvloop + httptools answering a fixed RunInstances reply, {limit:,.0f} req/s")
        for workload, mode, ours, _ in measured:
            if mode == "raw HTTP" and not workload.startswith("Terminate"):
                print(f"  {workload}: euca {ours.rate:,.0f} req/s = 1/{limit / ours.rate:.1f} of the floor")
        print()
        print("Where a RunInstances request spends its time (the pipeline in-process, medians)")
        print(format_breakdown(breakdown(2_000 if args.quick else 10_000)))
    if "s3" in wanted:
        from bench import s3

        print("measuring S3 (Walrus) against moto ...", file=sys.stderr, flush=True)
        print()
        print("S3: euca (Walrus) beside moto's server, one worker each, same workloads (127.0.0.1)")
        print(s3.format_table(*s3.measure(args.quick)))
    if "ebs" in wanted:
        from bench import ebs

        print("measuring EBS volumes and snapshots ...", file=sys.stderr, flush=True)
        print("EBS: euca up's Storage Controller and Walrus beside cp and dd of the same 1 GiB file (medians)")
        print(ebs.format_report(ebs.measure(args.quick)))
    if "ebs-guest" in wanted:
        from bench import ebs_guest

        print("measuring reads in a real guest over iSCSI and from a local file ...", file=sys.stderr, flush=True)
        print("EBS in a guest: one QEMU (TCG) guest reading the same file over iSCSI and as a local disk "
              "(medians of 3)")
        try:
            print(ebs_guest.format_report(ebs_guest.measure(args.quick)))
        except ebs_guest.Unavailable as exc:
            print(f"  skipped: {exc}")
    if "fuzz" in wanted:
        from bench import fuzz

        requests = args.requests or (3_000 if args.quick else 100_000)
        print(f"fuzzing the EC2 API with {requests} requests ...", file=sys.stderr, flush=True)
        print("Fuzz: requests generated from botocore's EC2 model, mutated and broken on the wire (euca up)")
        print(fuzz.format_report(fuzz.measure(requests)))
    if "soak" in wanted:
        from bench import soak

        seconds = args.seconds or (30.0 if args.quick else 600.0)
        print(f"soaking the EC2 API for {seconds:.0f} s ...", file=sys.stderr, flush=True)
        print(f"Soak: {soak.CLIENTS} concurrent clients, mixed workload, one euca up worker")
        print(soak.format_report(soak.measure(seconds)))
    if "bundle" in wanted:
        from bench import bundle

        print("measuring image bundles ...", file=sys.stderr, flush=True)
        print(f"Image bundles: bundle-image and unbundle of a {'64 MiB' if args.quick else '1 GiB'} image, "
              "MB/s per stage (medians of 3)")
        print(bundle.format_report(bundle.measure(args.quick)))
    if "metadata" in wanted:
        from bench import metadata

        print("measuring the metadata service ...", file=sys.stderr, flush=True)
        print("Metadata service: one euca up worker, 8 instances asking over kept-alive connections (127.0.0.x)")
        print(metadata.format_report(metadata.measure(args.quick)))
    if "net" in wanted:
        from bench import net

        print("measuring the network agent's install ...", file=sys.stderr, flush=True)
        print("Network agent: the whole ruleset installed at once beside one iptables call per rule (as root)")
        print(net.format_report(net.measure(args.quick)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
