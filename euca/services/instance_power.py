"""StopInstances and StartInstances of EBS-backed instances. A stopped instance's node ends its
domain and the cluster controller takes back its capacity and addresses, while its record and root
volume stay (``stopping``, then ``stopped``); StartInstances places it again as RunInstances does,
under its own id, and boots it from its root volume. What this needs of the instances it moves is
:class:`PowerHost` (``euca.services.instances.Instances``)."""

from __future__ import annotations

import logging
from typing import Any, Protocol

from drivers.protocol import InstanceSpec
from euca.cluster import ClusterController, RunRequest
from euca.core.errors import (
    IncorrectInstanceState,
    InsufficientAddressCapacity,
    InsufficientInstanceCapacity,
    OperationNotPermitted,
    UnsupportedOperation,
)
from euca.fleet.box import STATE_CODES, BoxNodes
from euca.services.addresses import Addresses
from euca.services.common import Caller
from euca.services.ebs_roots import RootVolumes
from euca.services.images import Images
from euca.services.instance_record import Instance
from euca.services.instance_view import InstanceView
from euca.storage import StorageError
from euca.store import Store
from pyx.errors import Exhausted, InsufficientCapacity, KernelError

log = logging.getLogger("euca.services.instances")


class PowerHost(Protocol):
    """What stopping and starting needs of the instance service."""

    @property
    def roots(self) -> RootVolumes | None: ...

    def visible(self, caller: Caller, ids: list[str]) -> list[Instance]: ...

    def state_at(self, inst: Instance, now: float | None = None) -> str | None: ...

    def launch_spec(self, inst: Instance) -> InstanceSpec: ...


class InstancePower:
    def __init__(self, host: PowerHost, store: Store, cc: ClusterController, box: BoxNodes, addresses: Addresses,
                 images: Images, view: InstanceView) -> None:
        self._host, self._store, self._cc, self._box = host, store, cc, box
        self._addresses, self._images, self._view = addresses, images, view
        self.moves = 0  # instances stopped or started since this process began (Instances.record_count)

    def stop(self, caller: Caller, ids: list[str]) -> list[dict[str, Any]]:
        """The node ends the domain; the cluster controller takes back the capacity and the dynamic
        public address; the record and the root volume stay, ``stopping`` and then ``stopped``."""
        chosen = self._host.visible(caller, ids)
        for inst in chosen:
            if not inst.root_device:
                raise UnsupportedOperation(f"The instance '{inst.instance_id}' does not have an 'ebs' root device "
                                           "type and cannot be stopped.")
            if inst.api_stop_disabled:
                raise OperationNotPermitted(f"The instance '{inst.instance_id}' may not be stopped. Modify its "
                                            "'disableApiStop' instance attribute and try again.")
        self._box.fleet.refresh()
        now = self._box.clock()
        before = {i.instance_id: self._host.state_at(i, now) or "terminated" for i in chosen}
        for inst in chosen:
            if before[inst.instance_id] in ("shutting-down", "terminated"):
                raise IncorrectInstanceState(f"This instance '{inst.instance_id}' is not in a state from which it "
                                             "can be stopped.")
        self.halt(list({i.instance_id: i for i in chosen if i.stopped is None}.values()), now)
        return self._changes(chosen, before, now)

    def halt(self, stopping: list[Instance], now: float, tell_node: bool = True, failure: str = "") -> None:
        """Record the instances stopped (durably, first), give back their capacity and addresses,
        and have their nodes end the domains (unless the guest ended its own, or never had one:
        ``failure`` says why it could not be started)."""
        if not stopping:
            return
        unbound: list[str] = []
        with self._store.transaction() as tx:
            for inst in stopping:
                unbound += self._addresses.unbind(tx, inst.instance_id)
                tx.put("instance", inst.instance_id, inst.account, inst.body() | {"stopped": now, "failure": failure})
        self.moves += len(stopping)
        for inst in stopping:
            inst.stopped, inst.failure = now, failure
            self._view.forget(inst.instance_id)
            try:
                self._cc.terminate(inst.instance_id)
            except KeyError:
                log.warning("%s was not placed in %s", inst.instance_id, self._cc.name)
            if tell_node:
                self._box.fleet.terminate(inst.node, inst.instance_id)
        self._addresses.unbound(unbound)

    def start(self, caller: Caller, ids: list[str]) -> list[dict[str, Any]]:
        """A stopped instance is placed again by the cluster controller (a node, a private address
        and a dynamic public one, as RunInstances has) and started there from its root volume."""
        chosen = self._host.visible(caller, ids)
        for inst in chosen:
            if not inst.root_device:
                raise UnsupportedOperation(f"The instance '{inst.instance_id}' does not have an 'ebs' root device "
                                           "type and cannot be started.")
        self._box.fleet.refresh()
        now = self._box.clock()
        before = {i.instance_id: self._host.state_at(i, now) or "terminated" for i in chosen}
        for inst in chosen:
            if before[inst.instance_id] not in ("stopped", "pending", "running"):
                raise IncorrectInstanceState(f"This instance '{inst.instance_id}' is not in a state from which it "
                                             "can be started.")
        for inst in {i.instance_id: i for i in chosen if before[i.instance_id] == "stopped"}.values():
            self._restart(inst)
        return self._changes(chosen, before, self._box.clock())

    def _restart(self, inst: Instance) -> None:
        try:
            launch = self._cc.run(RunRequest([inst.instance_id], inst.vmtype, 1, inst.account, inst.groups[0],
                                             inst.image_id,
                                             self._addresses.dynamic and not inst.private_addressing))[0]
        except Exhausted as exc:
            raise InsufficientAddressCapacity(str(exc)) from None
        except (InsufficientCapacity, KernelError) as exc:
            raise InsufficientInstanceCapacity(str(exc)) from None
        changes = {"node": launch.node, "mac": launch.net.mac, "private_ip": launch.net.private_ip,
                   "vlan": launch.net.vlan, "netgroup": launch.net.group, "launched": self._box.clock(),
                   "stopped": None, "failure": ""}
        try:
            with self._store.transaction() as tx:
                tx.put("instance", inst.instance_id, inst.account, inst.body() | changes)
                self._addresses.launched(tx, [inst.instance_id])
        except BaseException:
            self._cc.terminate(inst.instance_id)
            raise
        for name, value in changes.items():
            setattr(inst, name, value)
        self._view.forget(inst.instance_id)
        self.moves += 1
        if self._host.roots is not None and inst.root_volume:
            self._host.roots.moved(inst.root_volume, inst.node)
        try:
            spec = self._host.launch_spec(inst)
        except StorageError as exc:
            # no node hears of it: stopped again, with the reason DescribeInstances gives
            self.halt([inst], self._box.clock(), tell_node=False,
                      failure=f"its root volume {inst.root_volume}: {exc}")
            return
        self._box.restarting(inst.instance_id)
        locations = {}
        for image_id in (inst.kernel_id, inst.ramdisk_id):
            img = self._images.get(image_id) if image_id else None
            if img is not None:
                locations[image_id] = self._images.node_location(img)
        self._box.fleet.launch(inst.node, spec, locations)
        if self._host.roots is not None and inst.root_volume:
            self._host.roots.plug_root(inst.root_volume)

    def _changes(self, chosen: list[Instance], before: dict[str, str], now: float) -> list[dict[str, Any]]:
        out = []
        for inst in chosen:
            state = self._host.state_at(inst, now) or "terminated"
            was = before[inst.instance_id]
            out.append({"InstanceId": inst.instance_id, "CurrentState": {"Code": STATE_CODES[state], "Name": state},
                        "PreviousState": {"Code": STATE_CODES[was], "Name": was}})
        return out
