"""What travels between a cluster controller and a node controller: JSON forms of the driver protocol's records."""

from __future__ import annotations

import base64
from dataclasses import asdict, fields
from typing import Any

from drivers.protocol import InstanceSpec, InstanceStatus, NcState, NodeResources, VolumeAttachment


def spec_to_json(spec: InstanceSpec) -> dict[str, Any]:
    out = spec._asdict()
    out["user_data"] = base64.b64encode(spec.user_data).decode()
    out["groups"] = list(spec.groups)
    out["root_volume"] = asdict(spec.root_volume) if spec.root_volume is not None else None
    return out


def volume_from_json(body: Any) -> VolumeAttachment:
    """Raises ValueError (naming the field) on anything but a well-formed attachment."""
    if not isinstance(body, dict):
        raise ValueError("a volume must be a JSON object")
    known = {f.name: f for f in fields(VolumeAttachment)}
    unknown = set(body) - set(known)
    if unknown:
        raise ValueError(f"unknown volume fields: {', '.join(sorted(unknown))}")
    for name in ("volume_id", "device"):
        if not isinstance(body.get(name), str) or not body[name]:
            raise ValueError(f"a volume needs {name}")
    for name, value in body.items():
        wanted = int if name in ("port", "lun") else str
        if not isinstance(value, wanted) or isinstance(value, bool):
            raise ValueError(f"volume {name} must be {'an integer' if wanted is int else 'text'}")
    return VolumeAttachment(**body)


def spec_from_json(body: Any) -> InstanceSpec:
    """Raises ValueError (naming the field) on anything but a well-formed spec."""
    if not isinstance(body, dict):
        raise ValueError("the instance must be a JSON object")
    known = set(InstanceSpec._fields)
    unknown = set(body) - known
    if unknown:
        raise ValueError(f"unknown fields: {', '.join(sorted(unknown))}")
    fields: dict[str, Any] = {}
    for name in InstanceSpec._fields:
        if name not in body:
            if name in InstanceSpec._field_defaults:
                continue
            raise ValueError(f"missing field {name}")
        value = body[name]
        default = InstanceSpec._field_defaults.get(name, "" if name not in ("cores", "memory", "disk") else 0)
        if name == "user_data":
            if not isinstance(value, str):
                raise ValueError("user_data must be base64 text")
            value = base64.b64decode(value, validate=True)
        elif name == "root_volume":
            if value is None:
                continue
            value = volume_from_json(value)
        elif name == "groups":
            if not isinstance(value, list) or not all(isinstance(g, str) for g in value):
                raise ValueError("groups must be a list of names")
            value = tuple(value)
        elif isinstance(default, int) and not isinstance(default, bool):
            if not isinstance(value, int) or isinstance(value, bool):
                raise ValueError(f"{name} must be an integer")
        elif not isinstance(value, str):
            raise ValueError(f"{name} must be text")
        fields[name] = value
    spec = InstanceSpec(**fields)
    if min(spec.cores, spec.memory, spec.disk) < 1:
        raise ValueError("cores, memory and disk must be positive")
    return spec


def resources_to_json(r: NodeResources) -> dict[str, int]:
    return {"max_cores": r.max_cores, "max_memory": r.max_memory, "max_disk": r.max_disk,
            "free_cores": r.free_cores, "free_memory": r.free_memory, "free_disk": r.free_disk,
            "instances": r.instances}


def resources_from_json(body: Any) -> NodeResources:
    return NodeResources(**{k: int(body[k]) for k in resources_to_json(NodeResources(0, 0, 0, 0, 0, 0))})


def statuses_to_json(statuses: list[InstanceStatus]) -> list[dict[str, Any]]:
    return [{"instance_id": s.instance_id, "state": s.state.value, "launched_at": s.launched_at} for s in statuses]


def statuses_from_json(body: Any) -> list[InstanceStatus]:
    return [InstanceStatus(str(s["instance_id"]), NcState(s["state"]), float(s["launched_at"])) for s in body]
