"""The cloud controller: every service, built once over one store and one cluster controller."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

from euca.cluster import CLOUD_VMTYPES, ClusterController, VmType, VmTypes
from euca.core.clock import Clock, wall
from euca.core.config import Config
from euca.fleet.box import BoxNodes, NodeSpec, Timings, box_config
from euca.services.accounts import Accounts
from euca.services.addresses import Addresses
from euca.services.common import ADMIN, Caller, Ids
from euca.services.groups import Groups
from euca.services.images import Images
from euca.services.instance_attributes import InstanceAttributes
from euca.services.instances import Instances
from euca.services.instancetypes import InstanceTypes
from euca.services.keypairs import KeyPairs
from euca.services.snapshots import SnapshotObjects, Snapshots
from euca.services.tags import Tags
from euca.services.volumes import Volumes
from euca.services.zones import REGION, Zones
from euca.storage import Overlay, StorageClient, StorageController
from euca.store import Store

log = logging.getLogger("euca.cloud")


def stored_vmtypes(store: Store) -> VmTypes:
    types = VmTypes(CLOUD_VMTYPES)
    for name, _, body in store.load("vmtype"):
        types = types.replaced(VmType(name, body["cores"], body["memory"], body["disk"]))
    return types


def stored_nodes(store: Store) -> list[NodeSpec]:
    return [NodeSpec(name, b["cores"], b["memory"], b["disk"], b.get("url", ""), b.get("key", ""))
            for name, _, b in store.load("node")]


@dataclass
class Cloud:
    store: Store
    cc: ClusterController
    box: BoxNodes
    accounts: Accounts
    tags: Tags
    keypairs: KeyPairs
    groups: Groups
    addresses: Addresses
    images: Images
    instances: Instances
    zones: Zones
    instance_types: InstanceTypes
    attributes: InstanceAttributes
    seen: dict[str, int]  # the store's change counters, less this server's own changes, as it last applied them
    volumes: Volumes = field(init=False)
    snapshots: Snapshots = field(init=False)

    @classmethod
    def open(cls, store: Store, config: Config | None = None, timings: Timings | None = None,
             endpoint: str = "", extra_nodes: list[NodeSpec] | None = None, clock: Clock = wall,
             zone: str = "cluster01", region: str = REGION, storage: StorageClient | None = None) -> Cloud:
        """Load every record, register the nodes (the stored ones, then ``extra_nodes``, e.g. NODES
        from eucalyptus.conf), rebuild the cluster controller from the store, and start polling.
        ``storage`` is the zone's Storage Controller; by default one in this process, its volumes
        sparse files beside the SQLite store."""
        vmtypes = stored_vmtypes(store)
        nodes = stored_nodes(store) + list(extra_nodes or [])
        cc = ClusterController(config or box_config(nodes, vmtypes), vmtypes, clock=clock, name=zone)
        box = BoxNodes(timings or Timings(), clock=clock, instance_timeout=cc.config.instance_timeout,
                       polling=cc.config.nc_polling_frequency)
        box.register(cc, nodes)
        ids = Ids(store)
        accounts = Accounts(store)
        tags = Tags(store)
        keypairs = KeyPairs(store, ids, tags, clock)
        groups = Groups(store, ids, accounts, tags)
        addresses = Addresses(store, cc, ids=ids, region=region)
        images = Images(store, ids, accounts, tags)
        instances = Instances(store, ids, cc, box, accounts, images, keypairs, groups, addresses, tags)
        seen = store.foreign_changes()
        cloud = cls(store, cc, box, accounts, tags, keypairs, groups, addresses, images, instances,
                    Zones(cc, endpoint=endpoint, region=region), InstanceTypes(cc, region),
                    InstanceAttributes(instances), seen)
        for problem in instances.restore():
            log.warning("restore: %s", problem)
        if storage is None:
            root = Path(store.url).parent if not store.is_postgres else Path.cwd()
            sc = StorageController(store, Overlay(root / "volumes"), zone, clock=clock)
            sc.restore()
            storage = sc
        cloud.volumes = Volumes(store, ids, cc, box, storage, instances, tags, clock)
        cloud.snapshots = Snapshots(store, ids, accounts, cloud.volumes, tags, clock, region)
        images.snapshot_size = cloud.snapshots.size_of
        instances.snapshots = cloud.snapshots
        cloud.snapshots.in_use = images.using_snapshot
        cloud.snapshots.finished = images.snapshot_done
        cloud.volumes.restore()
        cloud.snapshots.restore()
        if accounts.get(ADMIN) is None:
            accounts.create(ADMIN, admin=True)
        box.start()
        return cloud

    def close(self) -> None:
        """Stop polling the node controllers (the store is the caller's to close)."""
        self.box.close()
        self.volumes.close()
        self.snapshots.close()

    def keep_snapshots_in(self, objects: SnapshotObjects) -> None:
        """Walrus is opened over the cloud's accounts, after the cloud: snapshots live in it."""
        self.snapshots.objects = objects

    def refresh(self) -> None:
        """Apply what the administrator changed with the CLI, or another server, since the last
        request (accounts and keys, images, nodes, VM types). Costs one small query when nothing
        changed; what this server's own services wrote (and follow already) is not reloaded."""
        if self.store.foreign_change_count() == self.seen.get("", 0):
            return
        now = self.store.foreign_changes()
        # the kinds this view holds; others (Walrus's buckets) are their own service's to revalidate
        changed = {kind for kind in ("account", "image", "vmtype", "node") if self.seen.get(kind) != now.get(kind)}
        self.seen = now
        if "account" in changed:
            self.accounts.reload()
        if "image" in changed:
            self.images.reload()
            self.tags.reload()
        if "vmtype" in changed:
            try:
                self.cc.set_vmtypes(stored_vmtypes(self.store))
            except ValueError as exc:
                log.warning("VM types not applied: %s", exc)
        if "node" in changed:
            self.box.register(self.cc, stored_nodes(self.store))
        if changed:
            log.info("applied the administrator's changes to %s", ", ".join(sorted(changed)))

    def caller(self, access_key: str, service: str = "ec2") -> Caller:
        caller = self.accounts.caller(access_key, service, self.zones.region)
        self.groups.ensure_default(caller.account)
        return caller

    def tick(self) -> None:
        """Periodic work: the nodes' latest reports to the cluster controller, instances their nodes
        ended, burying long-terminated instances, POWERSAVE's idle check, and when access keys were last used."""
        self.box.fleet.apply(self.cc)
        self.instances.reconcile()
        self.volumes.reconcile()
        self.instances.bury()
        self.cc.tick()
        self.accounts.save_use()

    def resource_type(self, resource: str) -> str:
        prefix = resource.split("-", 1)[0]
        return {"i": "instance", "sg": "security-group", "sgr": "security-group-rule", "key": "key-pair",
                "emi": "image", "eki": "image", "eri": "image",
                "vol": "volume", "snap": "snapshot"}.get(prefix, "unknown")
