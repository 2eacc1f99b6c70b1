"""The network agent as the namespace tests run it: on a thread, against a box's view, in a namespace."""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from euca.net.agent import Agent
from euca.net.dhcp import Dhcp
from euca.net.host import Host, run_command
from euca.net.render import HostConfig
from euca.net.view import NetView, parse_view
from euca.services.netview import network_view, render_view
from tests.ec2_server import Box


def view_of(box: Box) -> NetView:
    """The view the box's cloud would send an agent now, through its wire form."""
    return parse_view(render_view(network_view(box.cloud))[0])


@dataclasses.dataclass
class Running:
    agent: Agent
    stop: threading.Event
    thread: threading.Thread

    def end(self) -> None:
        self.stop.set()
        self.thread.join(10)


def run_agent(view: Callable[[], NetView | None], ns: str, config: HostConfig, state: Path,
              **options: Any) -> Running:
    """An agent for namespace ``ns``, its first apply made before this returns (the bridges and
    segments exist when the test goes on), then polling every 0.2 s on a thread of its own."""
    prefix = ["ip", "netns", "exec", ns]
    agent = Agent(view, Host(run_command(prefix)), config, Dhcp(state, config, prefix), poll=0.2, **options)
    agent.step()
    stop = threading.Event()
    thread = threading.Thread(target=agent.run, args=(stop,), daemon=True)
    thread.start()
    return Running(agent, stop, thread)
