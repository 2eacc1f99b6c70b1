"""A cluster controller and three node controller services on loopback: polling, a node killed mid-run, auth."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path

import orjson
import pytest
import requests
import uvicorn

from drivers.protocol import InstanceSpec, NcState, NodeError
from drivers.sim import NodeShape, SimNode
from euca.cluster import ClusterController, RunRequest
from euca.fleet.box import BoxNodes, NodeSpec, Timings
from euca.fleet.client import NodeClient, NodeUnreachable
from euca.node import LocalFiles, NodeController, NodeStorage, wire
from euca.node.service import create_app
from tests.ec2_server import free_port

KEY = "s3cret-shared-at-registration"


@contextmanager
def nc_service(tmp_path: Path, name: str) -> Iterator[tuple[str, uvicorn.Server]]:
    storage = NodeStorage(tmp_path / name, LocalFiles(), cache_size_mb=100)
    nc = NodeController(SimNode(name, NodeShape(cores=4, memory=4096, disk=100, boot_time=0.2)), storage, name=name)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(nc, KEY), host="127.0.0.1", port=port, log_level="warning",
                                           loop="asyncio", lifespan="off"))
    thread = threading.Thread(target=server.run, name=f"nc-{name}", daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "the NC service did not start"
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}", server
    finally:
        server.should_exit = True
        thread.join(10)
        nc.close()


def until(check: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def test_a_node_killed_mid_run_goes_down_and_its_instances_age_out(tmp_path: Path) -> None:
    image = tmp_path / "root.img"
    image.write_bytes(b"x" * 8192)
    locations = {"emi-00000001": str(image)}
    with nc_service(tmp_path, "node01") as (url1, _), nc_service(tmp_path, "node02") as (url2, victim), \
            nc_service(tmp_path, "node03") as (url3, _):
        cc = ClusterController()
        box = BoxNodes(Timings(boot=0.2, shutdown=0.1, bury=60, shut_down_time=1.0), instance_timeout=1.0,
                       polling=0.2)
        box.register(cc, [NodeSpec(f"node0{i}", url=u, key=KEY) for i, u in enumerate((url1, url2, url3), 1)])
        box.start()
        try:
            until(lambda: (box.fleet.apply(cc), all(cc.nodes.state(n) == "UP" for n in cc.nodes._nodes))[1])
            ids = [f"i-000000{n:02X}" for n in range(6)]
            launches = cc.run(RunRequest(ids, "m1.small", 6, image_id="emi-00000001"))
            assert {launch.node for launch in launches} == {"node01", "node02", "node03"}
            for launch in launches:
                spec = InstanceSpec(launch.instance_id, "r-00000001", "alice", "m1.small", 1, 256, 5, "emi-00000001",
                                    mac=launch.net.mac, private_ip=launch.net.private_ip)
                box.fleet.launch(launch.node, spec, locations)
            until(lambda: (box.fleet.apply(cc), all(box.state(i, 0, None) == "running" for i in ids))[1])
            on_victim = [launch.instance_id for launch in launches if launch.node == "node02"]

            victim.should_exit = True  # node02's controller dies
            until(lambda: (box.fleet.apply(cc), cc.nodes.state("node02") == "DOWN")[1])
            # its instances are still reported as last seen while the CC keeps them (INSTANCE_TIMEOUT) ...
            assert all(box.state(i, 0, None) == "running" for i in on_victim)
            assert not any(box.ended(i) for i in on_victim)
            # ... and no placement lands on the DOWN node
            more = cc.run(RunRequest([f"i-000001{n:02X}" for n in range(4)], "m1.small", 1))
            assert "node02" not in {launch.node for launch in more}
            # unseen past INSTANCE_TIMEOUT + SHUT_DOWN_TIME: the cloud ends them; the live nodes' are fine
            until(lambda: (box.fleet.apply(cc), all(box.ended(i) for i in on_victim))[1], timeout=10)
            assert not any(box.ended(i) for i in ids if i not in on_victim)
            assert box.state(on_victim[0], 0, None) == "running"  # last known, until the cloud terminates it
        finally:
            box.close()


def test_requests_without_the_shared_key_are_refused(tmp_path: Path) -> None:
    with nc_service(tmp_path, "node01") as (url, _):
        assert requests.post(f"{url}/nc/describe-resource", json={}, timeout=5).status_code == 403
        assert requests.get(f"{url}/", timeout=5).status_code == 403
        forged = NodeClient(url, "not-the-key")
        with pytest.raises(NodeError, match="403 refused: wrong signature"):
            asyncio.run(forged.describe_resources())
        good = NodeClient(url, KEY)
        report = asyncio.run(good.describe_resources())
        assert (report.max_cores, report.free_cores) == (4, 4)
        with pytest.raises(NodeError, match="409 i-DEADBEEF: no such running instance"):
            asyncio.run(good.terminate("i-DEADBEEF"))
        with pytest.raises(NodeError, match="400 bad request"):
            asyncio.run(good.call("run", {"instance": {"instance_id": "i-00000001"}}))
        spec = InstanceSpec("i-00000001", "r-00000001", "alice", "m1.small", 1, 256, 5, "emi-00000001")
        asyncio.run(good.run(spec, {"emi-00000001": str(tmp_path / "missing.img")}))
        until(lambda: [s.state for s in asyncio.run(good.describe_instances())] == [NcState.TEARDOWN])
    with pytest.raises(NodeUnreachable):
        asyncio.run(NodeClient(url, KEY, timeout=2).describe_resources())


def test_stale_requests_are_refused() -> None:
    from euca.auth import shared_key as auth

    headers = auth.sign(KEY, "POST", "/nc/run", b"{}", now=1000.0)
    assert auth.verify(KEY, "POST", "/nc/run", b"{}", headers[auth.DATE], headers[auth.SIGNATURE], now=1100.0) is None
    assert auth.verify(KEY, "POST", "/nc/run", b"{}", headers[auth.DATE], headers[auth.SIGNATURE],
                       now=1400.0) == "stale request"
    assert auth.verify(KEY, "POST", "/nc/run", b"{ }", headers[auth.DATE], headers[auth.SIGNATURE],
                       now=1000.0) == "wrong signature"


def test_an_ebs_backed_run_and_volumes_are_checked_on_the_wire(tmp_path: Path) -> None:
    from drivers.protocol import VolumeAttachment

    kernel = tmp_path / "vmlinuz"
    kernel.write_bytes(b"k" * 4096)
    root = VolumeAttachment("vol-0A0B0C0D", "vda", "iqn.2009-06.com.eucalyptus.cluster01:vol-0a0b0c0d", "192.0.2.7")
    spec = InstanceSpec("i-00000001", "r-00000001", "alice", "m1.small", 1, 256, 5, "emi-0E0B5000", "eki-00000001",
                        root_volume=root)
    with nc_service(tmp_path, "node01") as (url, _):
        client = NodeClient(url, KEY)
        body = {"instance": {**wire.spec_to_json(spec), "root_volume": {**asdict(root), "port": "3260"}},
                "locations": {"eki-00000001": str(kernel)}}
        with pytest.raises(NodeError, match="400 bad request: volume port must be an integer"):
            asyncio.run(client.call("run", body))
        assert asyncio.run(client.describe_instances()) == []  # nothing was started
        # the EBS image itself has no bytes: the kernel's location is all the node needs
        asyncio.run(client.run(spec, {"eki-00000001": str(kernel)}))
        until(lambda: [s.state for s in asyncio.run(client.describe_instances())] == [NcState.RUNNING])
        record = tmp_path / "node01" / "alice" / spec.instance_id / "instance.json"
        assert wire.spec_from_json(orjson.loads(record.read_bytes())).root_volume == root
        with pytest.raises(NodeError, match="400 bad request: unknown volume fields: size"):
            asyncio.run(client.call("attach-volume", {"instance_id": spec.instance_id,
                                                      "volume": {"volume_id": "vol-01020304", "device": "vdb",
                                                                 "size": 1}}))
