"""The agent's loop: fetch the cluster's view, render it, make the host match.

It polls the cloud every ``poll`` seconds with the view's ETag, so an unchanged view costs one 304;
all the changes that land between two polls are applied together, and two applies are at least
``min_interval`` apart however fast views change (a burst of AuthorizeSecurityGroupIngress calls
becomes one ruleset). A view that fails its checks, or an install that fails, is logged and
retried at the next poll; nothing is left half-applied, because each table and set is replaced
whole.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from urllib.parse import urlsplit

from euca.auth.shared_key import sign
from euca.net.dhcp import Dhcp
from euca.net.host import CommandError, Host
from euca.net.render import HostConfig, render
from euca.net.view import NetView, ViewError, parse_view

log = logging.getLogger("euca.net")
VIEW_PATH = "/services/NetworkInfo"
NODE_HEADER = "X-Euca-Node"


class HttpView:
    """The view from the cloud's API port, signed with this node's key (``euca.auth.shared_key``)."""

    def __init__(self, url: str, node: str, key: str, timeout: float = 5.0) -> None:
        self.url, self.node, self.key, self.timeout = url.rstrip("/") + VIEW_PATH, node, key, timeout
        self.etag = ""

    def __call__(self) -> NetView | None:
        """The view if it changed since the last call, else None."""
        headers = {NODE_HEADER: self.node, **sign(self.key, "GET", urlsplit(self.url).path, b"")}
        if self.etag:
            headers["If-None-Match"] = self.etag
        request = urllib.request.Request(self.url, headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as resp:
                body = resp.read()
                etag = resp.headers.get("ETag", "")
        except urllib.error.HTTPError as exc:
            if exc.code == 304:
                return None
            raise
        view = parse_view(body)
        self.etag = etag
        return view


class Agent:
    def __init__(self, fetch: Callable[[], NetView | None], host: Host, config: HostConfig,
                 dhcp: Dhcp | None = None, poll: float = 0.5, min_interval: float = 0.25,
                 mode: str = "") -> None:
        """``mode``: EDGE to enforce on this node over a MANAGED-NOVLAN cluster's addresses (the
        cluster's own VNET_MODE otherwise)."""
        self.fetch, self.host, self.config, self.dhcp, self.mode = fetch, host, config, dhcp, mode
        self.poll, self.min_interval = poll, min_interval
        self.host.segment_settings = (config.priv_interface, config.vxlan_local, config.vxlan_remotes)
        self.applied_at = float("-inf")
        self.applies = 0

    def step(self) -> bool:
        """One poll; True if a new view was applied."""
        view = self.fetch()
        if view is None:
            return False
        self.apply(view)
        return True

    def apply(self, view: NetView) -> None:
        wait = self.applied_at + self.min_interval - time.monotonic()
        if wait > 0:
            time.sleep(wait)
        desired = render(dataclasses.replace(view, mode=self.mode) if self.mode else view, self.config)
        self.host.apply(desired)
        if self.dhcp is not None:
            self.dhcp.apply(desired)
        self.applied_at = time.monotonic()
        self.applies += 1
        log.info("network view applied (%s): %d commands", desired.mode, self.host.commands)

    def run(self, stop: threading.Event) -> None:
        while not stop.is_set():
            try:
                self.step()
            except (OSError, ViewError, CommandError) as exc:
                log.warning("network view not applied: %s", exc)
            stop.wait(self.poll)
        if self.dhcp is not None:
            self.dhcp.stop()
