"""The metadata service's HTTP face, served by the API process beside EC2.

A node's DNAT sends an instance's ``169.254.169.254:80`` to this process's port with the source
address untouched, so the request's peer address names the instance. ``/latest/...`` and
``/<date>/...`` come here (``euca.metadata.is_metadata_path``); EC2 owns ``/`` and
``/services/Eucalyptus``, so the path is enough to tell the two apart. Behind a load balancer the
balancer must keep the peer address (PROXY protocol or direct routing): this app trusts no header
for it, since any instance could send one.
"""

from __future__ import annotations

import logging
import os
import socket
from collections import OrderedDict
from pathlib import Path

from starlette.types import Receive, Scope, Send

from euca.metadata import InstanceFacts, MetadataService
from euca.metadata.identity import signer_for
from euca.services.cloud import Cloud
from euca.services.instances import Instance

log = logging.getLogger("euca.api.metadata")

_TEXT = (b"content-type", b"text/plain")
TCP_SAVED_SYN = 28  # Linux: read (once) the SYN a connection began with


class CloudDirectory:
    """The cloud's live instances by address: public first, then private (``VmMetadata.resolveVm``)."""

    def __init__(self, cloud: Cloud) -> None:
        self.cloud = cloud
        self._by_address: dict[str, str] = {}
        self._records = -1  # how many instance records the index was built from
        self._facts: dict[str, tuple[tuple[object, ...], InstanceFacts]] = {}

    def _reindex(self) -> None:
        self._records = self.cloud.instances.record_count()
        network = self.cloud.cc.network
        live = self.cloud.instances.live_instances()
        index = {i.private_ip: i.instance_id for i in live}
        for inst in live:
            public = network.public_of(inst.instance_id)
            if public:
                index[public] = inst.instance_id
        self._by_address = index

    def find(self, address: str) -> InstanceFacts | None:
        found = self._lookup(address)
        if found is None and (self._records != self.cloud.instances.record_count() or self._held_public(address)):
            # New instances (or ended ones) since the index, or a public address associated since:
            # read it again. A stranger's address costs a dictionary lookup, never a re-read.
            self._reindex()
            found = self._lookup(address)
        return found

    def _held_public(self, address: str) -> bool:
        try:
            return self.cloud.cc.network.holds_public(address)
        except ValueError:
            return False  # not an IPv4 address

    def _lookup(self, address: str) -> InstanceFacts | None:
        instance_id = self._by_address.get(address)
        if instance_id is None:
            return None
        inst = self.cloud.instances.live(instance_id)
        if inst is None:
            self._records = -1  # it ended: its address may be someone else's now
            return None
        network = self.cloud.cc.network
        # STATIC has no NAT: an instance's public address is its private one
        public = network.public_of(instance_id) or (inst.private_ip if network.mode == "STATIC" else "")
        if address != public and address != inst.private_ip:
            self._records = -1  # moved since the index was built
            return None
        return self._facts_of(inst, public)

    def _facts_of(self, inst: Instance, public: str) -> InstanceFacts:
        key = self.cloud.keypairs.get(inst.account, inst.key_name) if inst.key_name else None
        shape = (id(inst), public, inst.http_tokens, inst.http_endpoint, tuple(inst.groups), id(key),
                 inst.private_ip, inst.hop_limit)
        held = self._facts.get(inst.instance_id)
        if held is not None and held[0] == shape:
            return held[1]
        account = self.cloud.accounts.get(inst.account)
        image = next((i for i in self.cloud.images.all() if i.image_id == inst.image_id), None)
        group_ids = []
        for name in inst.groups:
            group = self.cloud.groups.get(inst.account, name)
            if group is not None:
                group_ids.append(group.group_id)
        facts = InstanceFacts(
            inst.instance_id, inst.reservation_id, account.account_id if account else inst.account, inst.image_id,
            image.location if image else "", inst.launch_index, inst.vmtype, inst.private_ip, public, inst.mac,
            inst.zone, self.cloud.zones.region, tuple(inst.groups), tuple(group_ids), inst.kernel_id,
            inst.ramdisk_id, inst.key_name if key else "", key.public_key if key else "",
            self.cloud.instances.user_data(inst), inst.launched, inst.http_tokens, inst.http_endpoint,
            self.cloud.cc.config.vnet_domainname, inst.hop_limit)
        self._facts[inst.instance_id] = (shape, facts)
        return facts


class MetadataApp:
    """ASGI: one metadata request in, one plain-text answer out."""

    def __init__(self, service: MetadataService) -> None:
        self.service = service
        # routers between here and the caller, by connection (client address and port), for a
        # second token asked on a connection whose SYN was read by the first
        self._routers: OrderedDict[tuple[str, int], int] = OrderedDict()
        self._unreachable_told = False  # that replies go out with no hop limit: said once

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        client = scope.get("client")
        raw = scope["headers"]

        def header(name: str) -> str | None:
            wanted = name.encode()
            for key, value in raw:
                if key.lower() == wanted:
                    return str(value.decode("latin-1"))
            return None

        reply = self.service.answer(scope["method"], scope["path"], client[0] if client else "", header)
        if reply.hop_limit and client:
            self.limit_hops(send, (client[0], client[1]), reply.hop_limit)
        await send({"type": "http.response.start", "status": reply.status,
                    "headers": [_TEXT, (b"content-length", str(len(reply.body)).encode()), *reply.headers]})
        await send({"type": "http.response.body", "body": reply.body})


    def limit_hops(self, send: Send, client: tuple[str, int], hop_limit: int) -> int | None:
        """Make the packets of this connection's replies die ``hop_limit`` routers past the instance,
        as EC2's HttpPutResponseHopLimit does; returns the IP TTL set, None when the connection's
        socket is out of reach (a server other than uvicorn's).

        The service is not on the instance's link but routers away (the node's at least), so the
        TTL is the limit plus those routers. Their number is what the caller's SYN lost of the TTL
        it started with (64, 128 or 255, the usual initial values), which the kernel keeps when the
        server listens with TCP_SAVE_SYN (``euca.core.serving``). The node's network agent sets that
        TTL to 64 as requests to 169.254.169.254 enter it from the instances, so a container behind
        an instance, one router further away, counts as the instance and its token falls short.
        Without a saved SYN the instance is taken to be next door."""
        # uvicorn's send is a bound method of its protocol object, which holds the asyncio transport
        transport = getattr(getattr(send, "__self__", None), "transport", None)
        sock = transport.get_extra_info("socket") if transport is not None else None
        if sock is None:
            if not self._unreachable_told:
                self._unreachable_told = True
                log.warning("the server's connection sockets are out of reach (not uvicorn's protocol "
                            "objects?): IMDSv2 token replies go out with no HttpPutResponseHopLimit")
            return None
        with socket.socket(fileno=os.dup(sock.fileno())) as conn:
            if conn.family != socket.AF_INET:
                return None
            try:
                syn = conn.getsockopt(socket.IPPROTO_TCP, TCP_SAVED_SYN, 256)  # once per connection
            except OSError:
                syn = b""
            if len(syn) >= 20 and syn[0] >> 4 == 4:
                arrived = syn[8]
                routers = next(start for start in (64, 128, 255) if arrived <= start) - arrived
                self._routers[client] = routers
                if len(self._routers) > 4096:
                    self._routers.popitem(last=False)
            else:
                routers = self._routers.get(client, 0)
            ttl = max(1, min(255, hop_limit + routers))
            conn.setsockopt(socket.IPPROTO_IP, socket.IP_TTL, ttl)
        return ttl


def create_metadata_app(cloud: Cloud, data_dir: Path | None) -> MetadataApp:
    """``data_dir`` holds the cloud's key: it signs identity documents and keys IMDSv2 tokens, so
    every worker accepts every worker's tokens. Without it documents go unsigned and tokens are
    good in this process only."""
    if data_dir is None:
        return MetadataApp(MetadataService(CloudDirectory(cloud)))
    signer = signer_for(data_dir)
    return MetadataApp(MetadataService(CloudDirectory(cloud), signer, signer.secret()))
