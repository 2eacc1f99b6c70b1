"""``euca node-controller`` as a process: what it leaves behind when it is stopped."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.guest.procs import Process, free_port
from tests.netns import net_tools, sh

__all__ = ["net_tools"]

# accepts connections and never answers: an image download that hangs
HANGING = ("import socket,sys,time\ns=socket.socket()\ns.bind(('127.0.0.1',int(sys.argv[1])))\ns.listen()\n"
           "held=[]\nwhile True: held.append(s.accept())\n")
RUN = ("import asyncio,sys\nfrom drivers.protocol import InstanceSpec\nfrom euca.fleet.client import NodeClient\n"
       "from euca.node.images import ImageLocation\n"
       "spec=InstanceSpec('i-0A0B0C0D','r-0A0B0C0D','alice','m1.small',1,256,1,'emi-0A0B0C0D')\n"
       "asyncio.run(NodeClient(sys.argv[1],sys.argv[2]).run(spec,{'emi-0A0B0C0D':ImageLocation(sys.argv[3],4096,'0'*64)}))\n")


def alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def listening(ns: str, port: int) -> bool:
    return f":{port} " in sh("ip", "netns", "exec", ns, "ss", "-ltnH")


def test_a_node_controller_that_fails_to_close_still_stops_its_network_agent(net_tools: None,
                                                                            tmp_path: Path) -> None:
    """A second Ctrl-C while the node controller waits for an instance's staging to end (a
    download that hangs) interrupts its close: its network agent is stopped all the same."""
    ns = f"eunc{os.getpid()}"[:15]
    sh("ip", "netns", "add", ns)
    hanging: subprocess.Popen[bytes] | None = None
    nc: Process | None = None
    agent = 0
    try:
        sh("ip", "-n", ns, "link", "set", "lo", "up")
        image_port, nc_port, key = free_port(), free_port(), "close-key"
        hanging = subprocess.Popen(["ip", "netns", "exec", ns, sys.executable, "-c", HANGING, str(image_port)])
        conf = tmp_path / "nc.conf"
        conf.write_text(f'VNET_MODE="MANAGED-NOVLAN"\nVNET_BRIDGE="eucabr"\nINSTANCE_PATH="{tmp_path / "inst"}"\n')
        nc = Process("euca node-controller", [
            "-c", "import os,sys; os.execvp(sys.argv[1], sys.argv[1:])",
            "ip", "netns", "exec", ns, sys.executable, "-m", "euca.cli", "node-controller", "--sim",
            "--config", str(conf), "--host", "127.0.0.1", "--port", str(nc_port), "--key", key,
            "--network-agent", "http://127.0.0.1:9", "--node-name", "nc1",
            "--network-agent-args", "--poll 0.2 --state-dir " + str(tmp_path / "agent")], tmp_path / "nc.log")
        nc.wait_for("node controller on")
        agent = int(re.findall(r"network agent started \(pid (\d+)\)", nc.output())[0])
        sh("ip", "netns", "exec", ns, sys.executable, "-c", RUN, f"http://127.0.0.1:{nc_port}", key,
           f"http://127.0.0.1:{image_port}/emi-0A0B0C0D")
        nc.proc.send_signal(signal.SIGINT)  # the first: the service stops, then close waits on the staging
        deadline = time.monotonic() + 20
        while listening(ns, nc_port):
            assert time.monotonic() < deadline, nc.output()
            time.sleep(0.1)
        time.sleep(1.0)
        assert nc.proc.poll() is None and alive(agent)  # closing: the staging holds it
        nc.proc.send_signal(signal.SIGINT)  # the second interrupts the close
        deadline = time.monotonic() + 20
        while alive(agent) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not alive(agent), nc.output()
    finally:
        if hanging is not None:
            hanging.kill()  # the download ends, so does the staging, and the node controller can leave
            hanging.wait(10)
        if agent and alive(agent):
            os.kill(agent, signal.SIGKILL)
        if nc is not None:
            nc.stop(timeout=10)
        sh("ip", "netns", "del", ns, check=False)
