"""Where an EC2 request's time goes, and the floor under it.

``bare_server`` runs uvicorn (uvloop, httptools, one worker, as ``euca up`` does) with an ASGI app
that reads the request body and answers every POST with the same fixed RunInstances reply: what
the HTTP stack alone costs, the limit no EC2 server on it can beat. ``breakdown`` runs the cloud's
request pipeline in this process, stage by stage, for RunInstances: form parsing, signature
check, query parsing against the model, the cluster controller's placement, the store's commit,
the rest of the service, and rendering the reply.
"""

from __future__ import annotations

import re
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from bench.api import RawClient, Target, _free_port, _process

REPLY = (b'<?xml version="1.0" encoding="UTF-8"?>\n<RunInstancesResponse xmlns="http://ec2.amazonaws.com/doc/'
         b'2016-11-15/"><requestId>00000000-0000-4000-8000-000000000000</requestId><reservationId>r-00000000'
         b"</reservationId><instancesSet><item><instanceId>i-00000000</instanceId></item></instancesSet>"
         b"</RunInstancesResponse>")

BARE_APP = f'''
REPLY = {REPLY!r}
HEAD = [(b"content-type", b"text/xml;charset=UTF-8"), (b"content-length", str(len(REPLY)).encode())]

async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    more = True
    while more:
        message = await receive()
        more = message.get("more_body", False)
    await send({{"type": "http.response.start", "status": 200, "headers": HEAD}})
    await send({{"type": "http.response.body", "body": REPLY}})
'''


@contextmanager
def bare_server() -> Iterator[Target]:
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "bare_ec2.py").write_text(BARE_APP)
        port = _free_port()
        cmd = [sys.executable, "-m", "uvicorn", "--app-dir", tmp, "bare_ec2:app", "--host", "127.0.0.1", "--port",
               str(port), "--loop", "uvloop", "--http", "httptools", "--log-level", "warning", "--no-access-log"]
        with _process(cmd, port):
            yield Target("bare", "127.0.0.1", port, "eucalyptus", "AKIDBARE", "bare-secret", "emi-00000000")


def bare_rate(n: int) -> float:
    """RunInstances requests per second the bare stack answers, raw HTTP on one connection."""
    with bare_server() as target:
        raw = RawClient(target)
        params = {"Action": "RunInstances", "ImageId": target.image, "MinCount": "1", "MaxCount": "1"}
        for _ in range(50):
            raw.call(params)
        started = time.perf_counter()
        for _ in range(n):
            raw.call(params)
        rate = n / (time.perf_counter() - started)
        raw.close()
    return rate


class _Stopwatch:
    def __init__(self) -> None:
        self.spent: dict[str, list[float]] = {}

    def wrap(self, stage: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        spent = self.spent.setdefault(stage, [])

        def timed(*args: Any, **kwargs: Any) -> Any:
            t = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                spent.append(time.perf_counter() - t)
        return timed


def breakdown(n: int) -> list[tuple[str, float]]:
    """Median microseconds per RunInstances in each stage of the pipeline, in this process."""
    from euca.api import app as api_app
    from euca.api import query, xml
    from euca.api.actions import ACTIONS
    from euca.api.images import images_in_walrus
    from euca.fleet.box import Timings
    from euca.services.cloud import Cloud
    from euca.services.common import ADMIN
    from euca.services.seed import first_start
    from euca.store import Store

    with tempfile.TemporaryDirectory() as tmp:
        store = Store(str(Path(tmp) / "euca.db"))
        image = first_start(store, images_in_walrus(store, Path(tmp)), 8, 256, 262144, 10000)
        assert image is not None
        cloud = Cloud.open(store, None, Timings(0, 0, 3600), endpoint="http://127.0.0.1:8773")
        try:
            key = cloud.accounts.keys_of(ADMIN)[0]
            account = cloud.accounts.get(ADMIN)
            assert account is not None
            admin = account.caller
            pipeline = api_app.Ec2Api(cloud)
            watch = _Stopwatch()
            pipeline._params = watch.wrap("form parsing", pipeline._params)  # type: ignore[method-assign]
            api_app.verify = watch.wrap("signature", api_app.verify)  # type: ignore[attr-defined]
            api_app.query.parse = watch.wrap("query parsing", query.parse)  # type: ignore[attr-defined]
            cloud.cc.run = watch.wrap("cluster controller", cloud.cc.run)  # type: ignore[method-assign]
            api_app.xml.response = watch.wrap("rendering", xml.response)  # type: ignore[attr-defined]
            commit = store._conn.commit
            store._conn.commit = watch.wrap("store commit", commit)  # type: ignore[method-assign]
            handler = ACTIONS["RunInstances"]
            ACTIONS["RunInstances"] = watch.wrap("service (all)", handler)
            target = Target("in-process", "127.0.0.1", 8773, "eucalyptus", key.access_key, key.secret_key)
            signer = RawClient.__new__(RawClient)
            signer.target, signer.host, signer._day, signer._key = target, "127.0.0.1:8773", "", b""
            from urllib.parse import urlencode

            body = urlencode({"Version": "2016-11-15", "Action": "RunInstances", "ImageId": image.machine,
                              "MinCount": "1", "MaxCount": "1", "InstanceType": "t1.micro"}).encode()
            total: list[float] = []
            for k in range(n):
                headers = {name.lower(): value for name, value in signer.headers(body).items()}
                t = time.perf_counter()
                status, reply = pipeline.handle("POST", "/", "", headers, body, f"req-{k}")
                total.append(time.perf_counter() - t)
                assert status == 200, reply[:300]
                # end it at once (untimed), so that capacity and public addresses never run out
                started = re.search(rb"<instanceId>(i-[0-9A-F]+)</instanceId>", reply)
                assert started is not None
                cloud.instances.terminate(admin, [started.group(1).decode()])
                if k % 500 == 499:
                    cloud.tick()
        finally:
            ACTIONS["RunInstances"] = handler
            cloud.close()
            store.close()
    med = {stage: statistics.median(v) * 1e6 for stage, v in watch.spent.items() if v}
    service = med.pop("service (all)")
    placed = med.get("cluster controller", 0.0) + med.get("store commit", 0.0)
    rows = [(stage, med[stage]) for stage in ("form parsing", "signature", "query parsing")]
    rows += [("cluster controller", med.get("cluster controller", 0.0)), ("store commit", med.get("store commit", 0.0)),
             ("rest of the service", max(0.0, service - placed)), ("rendering", med["rendering"]),
             ("whole pipeline", statistics.median(total) * 1e6)]
    return rows


def format_breakdown(rows: list[tuple[str, float]]) -> str:
    width = max(len(s) for s, _ in rows)
    whole = rows[-1][1]
    lines = [f"{'stage'.ljust(width)}  median us  share", f"{'-' * width}  ---------  -----"]
    for stage, us in rows:
        lines.append(f"{stage.ljust(width)}  {us:9.1f}  {us / whole * 100:4.0f}%")
    return "\n".join(lines)
