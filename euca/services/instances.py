"""Instances and reservations: RunInstances asks the cluster controller to place and address them,
records them, hands each to its node controller (ncRunInstance), and answers
(``euca.services.instance_launch``). Their state after that is what the node controllers report
(``euca.fleet.box``); Terminate, Reboot and GetConsoleOutput go to the node, and an instance its
node ended on its own, or stopped reporting for good, is terminated by the periodic
:meth:`Instances.reconcile`.

An instance of an EBS-backed image gets a root volume restored from the image's snapshot before
it is placed (``Instances.roots``, the volume service, as ``euca.services.ebs_roots`` asks it).
Such an instance can be stopped: its node ends it and the cluster controller takes back its
capacity and addresses, while the record and the root volume stay (``stopping``, then
``stopped``); StartInstances places it again as RunInstances does, under its own id
(``euca.services.instance_power``). Termination deletes the root volume, or detaches it when its
DeleteOnTermination is false. CreateImage of one is ``euca.services.create_image``.

The record itself is ``euca.services.instance_record``; how DescribeInstances shows it,
``euca.services.instance_view``, and what its filters compare with, ``euca.services.instance_filters``.
"""

from __future__ import annotations

import base64
import binascii
import logging
from typing import Any

from drivers.protocol import InstanceSpec, NcState, NodeError
from euca.cluster import ClusterController
from euca.core.errors import (
    ApiError,
    IncorrectInstanceState,
    InvalidInstanceIDMalformed,
    InvalidInstanceIDNotFound,
    InvalidParameterCombination,
    InvalidParameterValue,
    OperationNotPermitted,
)
from euca.fleet.box import STATE_CODES, BoxNodes
from euca.services.accounts import Accounts
from euca.services.addresses import Addresses
from euca.services.common import Caller, Ids, matches, page, wanted, well_formed
from euca.services.create_image import RootSnapshots, create_image
from euca.services.ebs_roots import RootVolumes
from euca.services.groups import Groups
from euca.services.images import Image, Images
from euca.services.instance_filters import FILTERS, filter_values
from euca.services.instance_launch import MAX_PER_REQUEST, InstanceLauncher
from euca.services.instance_power import InstancePower
from euca.services.instance_record import MAX_USER_DATA, Instance, metadata_options
from euca.services.instance_view import InstanceView, block_devices, metadata_options_of
from euca.services.keypairs import KeyPairs
from euca.services.tags import Tags
from euca.store import Store

# the record and its limits are imported from here by the services and the metadata API
__all__ = ["FILTERS", "MAX_PER_REQUEST", "MAX_USER_DATA", "Instance", "Instances", "metadata_options"]

log = logging.getLogger("euca.services.instances")


class Instances:
    def __init__(self, store: Store, ids: Ids, cc: ClusterController, box: BoxNodes, accounts: Accounts,
                 images: Images, keypairs: KeyPairs, groups: Groups, addresses: Addresses, tags: Tags) -> None:
        self._store, self._cc, self._box = store, cc, box
        self._accounts, self._images, self._keypairs = accounts, images, keypairs
        self._groups, self._addresses, self._tags = groups, addresses, tags
        self._instances: dict[str, Instance] = {}
        self.roots: RootVolumes | None = None  # the volume service, once the cloud has one
        self.snapshots: RootSnapshots | None = None  # the snapshot service, once the cloud has one
        self._view = InstanceView(cc, accounts, groups, addresses, tags)
        self._power = InstancePower(self, store, cc, box, addresses, images, self._view)
        self._launcher = InstanceLauncher(self, store, ids, cc, box, accounts, images, keypairs, groups, addresses,
                                          tags)
        for _, _, body in store.load("instance"):
            inst = Instance(**body)
            self._instances[inst.instance_id] = inst
        groups.in_use = self._group_in_use
        addresses.live = self._live
        tags.add_resolver(self._resolve)
        tags.hidden = self._buried

    # --- start-up -------------------------------------------------------------------------------------

    def restore(self) -> list[str]:
        """Rebuild the cluster controller's placements and networks from the store. An instance the
        CC cannot take back (its node is gone) is recorded as terminated, so nothing leaks."""
        live = [i.placed() for i in self._instances.values() if i.terminated is None and i.stopped is None]
        problems = self._cc.restore(live, self._addresses.restore_list())
        lost = [i for i in self._instances.values()
                if i.terminated is None and i.stopped is None and self._cc.instance(i.instance_id) is None]
        if lost:
            now = self._box.clock()
            with self._store.transaction() as tx:
                for inst in lost:
                    self._addresses.unbind(tx, inst.instance_id)
                    tx.put("instance", inst.instance_id, inst.account, inst.body() | {"terminated": now})
            for inst in lost:
                inst.terminated = now
                self._addresses.unbound([ip for ip, owner, _ in self._addresses.restore_list()
                                         if owner == inst.instance_id])
        for inst in self._instances.values():
            if inst.terminated is None and inst.stopped is None:
                self._box.resume(inst.node, self._spec(inst), inst.launched)
        return problems

    # --- lookups other services use -----------------------------------------------------------------

    def _group_in_use(self, account: str, name: str) -> bool:
        return any(i.account == account and name in i.groups and i.terminated is None
                   for i in self._instances.values())

    def _live(self, instance_id: str) -> tuple[str, str] | None:
        inst = self._instances.get(instance_id)
        if inst is None or inst.terminated is not None or inst.stopped is not None:
            return None
        return inst.account, inst.private_ip

    def _resolve(self, caller: Caller, resource: str) -> tuple[str, str] | None:
        inst = self._instances.get(resource)
        if inst is None or not caller.sees(inst.account) or self._buried(resource):
            return None
        return inst.account, "instance"

    def _buried(self, instance_id: str) -> bool:
        """Past BURY_TIME: no longer shown, though the next housekeeping pass has yet to remove it."""
        inst = self._instances.get(instance_id)
        return (inst is not None and inst.terminated is not None
                and self.state_at(inst) is None)

    def _visible(self, caller: Caller, ids: list[str]) -> list[Instance]:
        out = []
        for id_ in ids:
            if not well_formed(id_, "i"):
                raise InvalidInstanceIDMalformed(f"Invalid id: \"{id_[:64]}\" (expecting \"i-...\")")
            inst = self._instances.get(id_)
            if (inst is None or not caller.sees(inst.account)
                    or self.state_at(inst) is None):
                raise InvalidInstanceIDNotFound(f"The instance ID '{id_}' does not exist")
            out.append(inst)
        return out

    # --- RunInstances (``euca.services.instance_launch``) ------------------------------------------------

    def run(self, caller: Caller, p: dict[str, Any]) -> dict[str, Any]:
        return self._launcher.run(caller, p)

    def with_token(self, account: str, token: str) -> list[Instance]:
        return sorted((i for i in self._instances.values() if i.account == account and i.client_token == token),
                      key=lambda i: i.launch_index)

    def admit(self, inst: Instance) -> None:
        self._instances[inst.instance_id] = inst

    def create_image(self, caller: Caller, instance_id: str, name: str, description: str) -> str:
        """CreateImage (``euca.services.create_image``)."""
        return create_image(self, self._images, self.snapshots, caller, instance_id, name, description)

    def state_at(self, inst: Instance, now: float | None = None) -> str | None:
        """pending / running / stopping / stopped / shutting-down / terminated, or None once buried."""
        if inst.stopped is not None and inst.terminated is None:
            now = self._box.clock() if now is None else now
            return "stopping" if now < inst.stopped + self._box.timings.shutdown else "stopped"
        return self._box.state(inst.instance_id, inst.launched, inst.terminated, now)

    # --- TerminateInstances / RebootInstances / GetConsoleOutput -------------------------------------------

    def terminate(self, caller: Caller, ids: list[str]) -> list[dict[str, Any]]:
        chosen = self._visible(caller, ids)
        for inst in chosen:
            if inst.api_termination_disabled and inst.terminated is None:
                raise OperationNotPermitted(f"The instance '{inst.instance_id}' may not be terminated. Modify its "
                                            "'disableApiTermination' instance attribute and try again.")
        self._box.fleet.refresh()
        now = self._box.clock()
        before = {i.instance_id: self.state_at(i, now) or "terminated"
                  for i in chosen}
        ending = list({i.instance_id: i for i in chosen if i.terminated is None}.values())
        halted = {i.instance_id for i in ending if i.stopped is not None}
        self.end(ending, now)
        for inst in ending:
            if inst.instance_id not in halted:
                self._box.fleet.terminate(inst.node, inst.instance_id)
        out = []
        for inst in chosen:
            state = self.state_at(inst, now) or "terminated"
            out.append({"InstanceId": inst.instance_id,
                        "CurrentState": {"Code": STATE_CODES[state], "Name": state},
                        "PreviousState": {"Code": STATE_CODES[before[inst.instance_id]],
                                          "Name": before[inst.instance_id]}})
        return out

    def end(self, ending: list[Instance], now: float, failure: str = "") -> None:
        """Record the instances terminated (durably, first), then give back their capacity and
        addresses. ``failure``: why they could not be started."""
        if not ending:
            return
        unbound: list[str] = []
        with self._store.transaction() as tx:
            for inst in ending:
                unbound += self._addresses.unbind(tx, inst.instance_id)
                tx.put("instance", inst.instance_id, inst.account,
                       inst.body() | {"terminated": now, "failure": failure})
        for inst in ending:
            inst.terminated, inst.failure = now, failure
            if inst.stopped is not None:
                continue  # its capacity and addresses went when it stopped
            try:
                self._cc.terminate(inst.instance_id)
            except KeyError:
                log.warning("%s was not placed in %s", inst.instance_id, self._cc.name)
        self._addresses.unbound(unbound)
        for inst in ending:
            if inst.root_volume and self.roots is not None:
                try:
                    self.roots.release_root(inst.root_volume, inst.root_delete)
                except ApiError as exc:
                    log.warning("%s: its root volume %s: %s", inst.instance_id, inst.root_volume, exc)

    # --- StopInstances / StartInstances (EBS-backed instances: ``euca.services.instance_power``) ----------

    def stop(self, caller: Caller, ids: list[str]) -> list[dict[str, Any]]:
        return self._power.stop(caller, ids)

    def start(self, caller: Caller, ids: list[str]) -> list[dict[str, Any]]:
        return self._power.start(caller, ids)

    # --- what ModifyInstanceAttribute and the volume service ask ------------------------------------

    def image_for(self, caller: Caller, image_id: str, kind: str) -> str:
        """A kernel or ramdisk a stopped instance may be given (ModifyInstanceAttribute)."""
        return self._images.launchable(self._images.visible(caller, image_id, kind)).image_id

    def image_of(self, inst: Instance) -> Image | None:
        return self._images.get(inst.image_id)

    def vmtype_known(self, vmtype: str) -> bool:
        return vmtype in self._cc.vmtypes

    def stopped(self, instance_id: str) -> bool:
        inst = self._instances.get(instance_id)
        return inst is not None and inst.terminated is None and inst.stopped is not None

    def is_root(self, instance_id: str, volume_id: str) -> bool:
        """Is the volume the root of this EBS-backed instance, still there?"""
        inst = self._instances.get(instance_id)
        return inst is not None and inst.terminated is None and inst.root_volume == volume_id

    # --- instances their nodes ended, and what a node is handed to start one ------------------------

    def reconcile(self) -> int:
        """Terminate the instances whose node ended them (Teardown without a TerminateInstances) or
        that no node has reported for INSTANCE_TIMEOUT + SHUT_DOWN_TIME. Returns how many."""
        self._box.fleet.refresh()
        now = self._box.clock()
        gone = [i for i in self._instances.values()
                if i.terminated is None and i.stopped is None and self._box.ended(i.instance_id, now)]
        # Those still in the node's report as Teardown are gone there already; the others may come
        # back with their node, which must then stop them.
        unseen = [i for i in gone if self._box.fleet.sighting(i.instance_id) is None]
        # An EBS-backed instance whose guest shut itself down, with InstanceInitiatedShutdownBehavior
        # stop, is stopped rather than terminated.
        halted = [i for i in gone if i.root_device and i.shutdown_behavior == "stop"
                  and (seen := self._box.fleet.sighting(i.instance_id)) is not None and seen.state is NcState.TEARDOWN]
        for inst in halted:
            log.info("%s: it shut itself down; stopped", inst.instance_id)
        self._power.halt(halted, now, tell_node=False)
        gone = [i for i in gone if i.stopped is None]
        for inst in gone:
            log.info("%s: its node no longer runs it; terminated", inst.instance_id)
        self.end(gone, now)
        for inst in unseen:
            self._box.fleet.terminate(inst.node, inst.instance_id)
        return len(gone) + len(halted)

    def launch_spec(self, inst: Instance) -> InstanceSpec:
        """ncRunInstance's arguments; an EBS-backed instance on a remote node also names its root volume."""
        spec = self._spec(inst)
        root = self.roots.root_for(inst.root_volume) if inst.root_volume and self.roots is not None else None
        return spec._replace(root_volume=root) if root is not None else spec

    def _spec(self, inst: Instance) -> InstanceSpec:
        """ncRunInstance's arguments for a recorded instance."""
        vm = self._cc.vmtypes[inst.vmtype]
        key = self._keypairs.get(inst.account, inst.key_name) if inst.key_name else None
        try:
            user_data = base64.b64decode(inst.user_data) if inst.user_data else b""
        except (binascii.Error, ValueError):
            user_data = b""
        return InstanceSpec(inst.instance_id, inst.reservation_id, inst.account, inst.vmtype, vm.cores, vm.memory,
                            vm.disk, inst.image_id, inst.kernel_id, inst.ramdisk_id, inst.mac, inst.private_ip,
                            inst.vlan, inst.key_name, key.public_key if key else "", user_data, inst.launch_index,
                            tuple(inst.groups))

    # --- the metadata service's view, and ModifyInstanceMetadataOptions -----------------------------

    def live(self, instance_id: str) -> Instance | None:
        """The instance, if it is placed on a node (neither ended nor stopped)."""
        inst = self._instances.get(instance_id)
        return inst if inst is not None and inst.terminated is None and inst.stopped is None else None

    def record_count(self) -> int:
        """How many instance records there are, and how often one stopped or started (its addresses
        change then): a new instance changes it, and it is cheap to watch."""
        return len(self._instances) + self._power.moves

    def live_instances(self) -> list[Instance]:
        """The instances placed on nodes: a stopped one holds no address on the network."""
        return [i for i in self._instances.values() if i.terminated is None and i.stopped is None]

    @staticmethod
    def user_data(inst: Instance) -> bytes:
        try:
            return base64.b64decode(inst.user_data) if inst.user_data else b""
        except (binascii.Error, ValueError):
            return b""

    metadata_options_of = staticmethod(metadata_options_of)

    def modify_metadata_options(self, caller: Caller, p: dict[str, Any]) -> dict[str, Any]:
        """What is not given stays as it was; the metadata service applies the change to the next request."""
        inst = self._visible(caller, [p.get("InstanceId") or ""])[0]
        tokens, hops, endpoint = metadata_options(p, (inst.http_tokens, inst.hop_limit, inst.http_endpoint))
        if inst.terminated is None:
            self.update([inst], http_tokens=tokens, hop_limit=hops, http_endpoint=endpoint)
        return {"InstanceId": inst.instance_id, "InstanceMetadataOptions": self.metadata_options_of(inst)}

    def reboot(self, caller: Caller, ids: list[str]) -> None:
        chosen = self._visible(caller, ids)
        for inst in chosen:
            if inst.stopped is not None and inst.terminated is None:
                raise IncorrectInstanceState(f"The instance '{inst.instance_id}' is not in a state from which it "
                                             "can be rebooted.")
        for inst in chosen:
            if inst.terminated is None:
                self._box.fleet.reboot(inst.node, inst.instance_id)

    def console(self, caller: Caller, instance_id: str) -> dict[str, Any]:
        """The node's console log (its newest 64 KiB); empty when the node cannot be asked."""
        inst = self._visible(caller, [instance_id])[0]
        try:
            text = self._box.fleet.console(inst.node, inst.instance_id)
        except NodeError as exc:
            log.warning("%s: console: %s", inst.instance_id, exc)
            text = ""
        return {"InstanceId": inst.instance_id, "Timestamp": self._box.clock(),
                "Output": base64.b64encode(text.encode()).decode()}

    # --- DescribeInstances ------------------------------------------------------------------------------

    def describe(self, caller: Caller, p: dict[str, Any]) -> dict[str, Any]:
        ids = p.get("InstanceIds") or []
        limit, token = p.get("MaxResults"), p.get("NextToken")
        if ids and limit is not None:
            raise InvalidParameterCombination("MaxResults cannot be used with InstanceIds")
        if limit is not None and not 5 <= limit <= 1000:
            raise InvalidParameterValue("MaxResults must be between 5 and 1000")
        chosen = wanted(p.get("Filters"), FILTERS, prefixes=("network-interface.tag:",))
        self._box.fleet.refresh()
        now = self._box.clock()
        candidates = self._visible(caller, ids) if ids else [
            i for i in self._instances.values() if caller.sees(i.account)]
        rows: list[tuple[Instance, str]] = []
        for inst in candidates:
            state = self.state_at(inst, now)
            if state is None:
                continue
            if chosen:
                shown = self._view.instance(inst, state, self.group_ids(inst))
                if not matches(chosen, lambda name, i=inst, r=shown:  # type: ignore[misc]
                               filter_values(i, r, name, self._accounts, self._tags)):
                    continue
            rows.append((inst, state))
        chunk, following = page(rows, limit, token)
        reservations: dict[str, list[tuple[Instance, str]]] = {}
        for inst, state in chunk:
            reservations.setdefault(inst.reservation_id, []).append((inst, state))
        out: dict[str, Any] = {"Reservations": [self._view.reservation(items) for items in reservations.values()]}
        if following:
            out["NextToken"] = following
        return out

    # --- what the attribute, status and monitoring calls use -----------------------------------------

    def visible(self, caller: Caller, ids: list[str]) -> list[Instance]:
        """The caller's instances by id, or EC2's error for the first one that is not there."""
        return self._visible(caller, ids)

    def listed(self, caller: Caller) -> list[tuple[Instance, str]]:
        """Every instance the caller sees, with its state now (buried ones left out)."""
        self._box.fleet.refresh()
        now = self._box.clock()
        out = []
        for inst in self._instances.values():
            if caller.sees(inst.account):
                state = self.state_at(inst, now)
                if state is not None:
                    out.append((inst, state))
        return out

    def state_of(self, inst: Instance) -> str:
        return self.state_at(inst) or "terminated"

    def node_down(self, inst: Instance) -> bool:
        return inst.node in self._cc.nodes and self._cc.nodes.state(inst.node) == "DOWN"

    def update(self, instances: list[Instance], **changes: Any) -> None:
        """Change recorded attributes of instances, durably first and in one transaction."""
        with self._store.transaction() as tx:
            for inst in instances:
                tx.put("instance", inst.instance_id, inst.account, inst.body() | changes)
        for inst in instances:
            for name, value in changes.items():
                setattr(inst, name, value)
            self._view.forget(inst.instance_id)

    def group_ids(self, inst: Instance) -> list[dict[str, Any]]:
        return self._view.group_ids(inst)

    block_devices = staticmethod(block_devices)

    def reservation(self, caller: Caller, instances: list[Instance]) -> dict[str, Any]:
        now = self._box.clock()
        states = [self.state_at(i, now) or "terminated" for i in instances]
        return self._view.reservation(list(zip(instances, states, strict=True)))

    # --- housekeeping ----------------------------------------------------------------------------------

    def bury(self) -> int:
        """Forget instances terminated longer ago than BURY_TIME (their ids stay issued)."""
        now = self._box.clock()
        gone = [i for i in self._instances.values()
                if i.terminated is not None and self.state_at(i, now) is None]
        if not gone:
            return 0
        with self._store.transaction() as tx:
            for inst in gone:
                tx.delete("instance", inst.instance_id)
                self._tags.drop_in(tx, inst.instance_id)
        for inst in gone:
            del self._instances[inst.instance_id]
            self._view.forget(inst.instance_id, inst.reservation_id)
            self._box.forget(inst.instance_id)
        return len(gone)

    def live_count(self) -> int:
        return sum(1 for i in self._instances.values() if i.terminated is None)

