"""The metadata service's HTTP face, served by the API process beside EC2.

A node's DNAT sends an instance's ``169.254.169.254:80`` to this process's port with the source
address untouched, so the request's peer address names the instance. ``/latest/...`` and
``/<date>/...`` come here (``euca.metadata.is_metadata_path``); EC2 owns ``/`` and
``/services/Eucalyptus``, so the path is enough to tell the two apart. Behind a load balancer the
balancer must keep the peer address (PROXY protocol or direct routing): this app trusts no header
for it, since any instance could send one.
"""

from __future__ import annotations

from pathlib import Path

from starlette.types import Receive, Scope, Send

from euca.metadata import InstanceFacts, MetadataService
from euca.metadata.identity import signer_for
from euca.services.cloud import Cloud
from euca.services.instances import Instance

_TEXT = (b"content-type", b"text/plain")


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
                 inst.private_ip)
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
            self.cloud.cc.config.vnet_domainname)
        self._facts[inst.instance_id] = (shape, facts)
        return facts


class MetadataApp:
    """ASGI: one metadata request in, one plain-text answer out."""

    def __init__(self, service: MetadataService) -> None:
        self.service = service

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
        await send({"type": "http.response.start", "status": reply.status,
                    "headers": [_TEXT, (b"content-length", str(len(reply.body)).encode()), *reply.headers]})
        await send({"type": "http.response.body", "body": reply.body})


def create_metadata_app(cloud: Cloud, data_dir: Path | None) -> MetadataApp:
    """``data_dir`` holds the cloud's key: it signs identity documents and keys IMDSv2 tokens, so
    every worker accepts every worker's tokens. Without it documents go unsigned and tokens are
    good in this process only."""
    if data_dir is None:
        return MetadataApp(MetadataService(CloudDirectory(cloud)))
    signer = signer_for(data_dir)
    return MetadataApp(MetadataService(CloudDirectory(cloud), signer, signer.secret()))
