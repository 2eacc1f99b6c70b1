"""Node controller rates on libvirt's test driver: our driver against raw libvirt-python, and the image cache.

- "start/terminate": one instance started and terminated per cycle through ``drivers.libvirt``
  (domain XML, createXML, state lookups, destroy), beside the same createXML + destroy made
  directly with libvirt-python on a pre-built XML: what our bookkeeping costs per cycle.
- "start from image": a node controller's ncRunInstance + terminate with its image already in the
  cache (digest check, disk clone) against a cache that is off (NC_CACHE_SIZE=0: fetch every time).

No rows where libvirt-python is not importable.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from bench.table import Row

NODE = """<node><cpu><mhz>2400</mhz><model>x86_64</model><active>64</active><nodes>1</nodes>
<sockets>1</sockets><cores>64</cores><threads>1</threads></cpu><memory>268435456</memory></node>"""


def _rate(cycle: Callable[[], None], seconds: float) -> float:
    n, start = 0, time.perf_counter()
    while True:
        cycle()
        n += 1
        elapsed = time.perf_counter() - start
        if elapsed >= seconds:
            return n / elapsed


def rows(quick: bool = False) -> list[Row]:
    try:
        import libvirt
    except ImportError:
        return []
    from drivers.libvirt import DomainLayout, LibvirtDriver
    from drivers.protocol import InstanceFiles, InstanceSpec
    from drivers.sim import NodeShape, SimNode
    from euca.node import LocalFiles, NodeController, NodeStorage

    seconds = 0.3 if quick else 2.0
    out: list[Row] = []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "node.xml").write_text(NODE)
        uri = f"test://{root / 'node.xml'}"
        spec = InstanceSpec("i-3A4B5C6D", "r-00000001", "alice", "m1.small", 1, 256, 5, "emi-00000001",
                            "eki-00000001", "eri-00000001")
        for hypervisor in ("kvm", "xen"):
            layout = DomainLayout(hypervisor)
            driver = LibvirtDriver(uri, layout=layout, instance_path=root / "instances", events=False)

            def ours(d: LibvirtDriver = driver) -> None:
                d.start(spec)
                d.instances()
                d.terminate(spec.instance_id)

            raw_conn = libvirt.open(uri)
            xml = layout.xml(spec, InstanceFiles.of(root / "instances", "alice", spec.instance_id))

            def raw(c: libvirt.virConnect = raw_conn, x: str = xml) -> None:
                dom = c.createXML(x, 0)
                dom.state(0)
                dom.destroy()

            out.append(Row(kernel=f"node start/terminate ({hypervisor})", size="1 instance",
                           cython=_rate(ours, seconds), python=_rate(raw, seconds),
                           unit="ops/s (ours vs raw libvirt)"))
            driver.close()
            raw_conn.close()

        image = root / "root.img"
        image.write_bytes(b"\xa5" * ((4 if quick else 64) << 20))
        locations = {"emi-00000001": str(image)}
        plain = spec._replace(kernel_id="", ramdisk_id="")
        rates = []
        for cache_mb in (1024, 0):
            storage = NodeStorage(root / f"inst{cache_mb}", LocalFiles(), cache_size_mb=cache_mb)
            nc = NodeController(SimNode("node01", NodeShape()), storage, name="node01")

            counter = iter(range(1 << 31))

            def start(n: NodeController = nc, ids: Iterator[int] = counter) -> None:
                one = plain._replace(instance_id=f"i-{next(ids):08X}")
                n.run(one, locations, wait=True)
                n.terminate(one.instance_id)

            start()  # the hit path starts from a warm cache
            rates.append(_rate(start, seconds))
            nc.close()
        out.append(Row(kernel="node start from image", size=f"{image.stat().st_size >> 20} MiB emi",
                       cython=rates[0], python=rates[1], unit="starts/s (hit vs miss)"))
    return out
