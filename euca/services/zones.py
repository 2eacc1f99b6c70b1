"""Availability zones (one per cluster) and the region, with the administrator's ``verbose`` view:
the cluster controller's ``free / max  cpu  ram  disk`` table as extra zone entries. The region's and
the zone's names are the operator's (``euca up --region us-east-1 --zone us-east-1a``); zones have
EC2's ids (``use1-az1``) and need no opt-in. DescribeAccountAttributes says what clients must know
of the platform: EC2-Classic, no default VPC."""

from __future__ import annotations

from typing import Any

from euca.cluster import ClusterController
from euca.core.errors import InvalidParameterValue
from euca.core.text import quoted
from euca.services.common import Caller, matches, wanted

REGION = "eucalyptus"
ZONE_FILTERS = ("zone-name", "zone-id", "state", "region-name", "group-name", "opt-in-status", "zone-type",
                "message", "parent-zone-name", "parent-zone-id")
ACCOUNT_ATTRIBUTES = ("supported-platforms", "default-vpc", "max-instances", "max-elastic-ips",
                      "vpc-max-elastic-ips", "vpc-max-security-groups-per-interface")


class Zones:
    def __init__(self, cc: ClusterController, host: str = "127.0.0.1", endpoint: str = "",
                 region: str = REGION, max_instances: int = 20, max_addresses: int = 5) -> None:
        self._cc, self.host, self.endpoint, self.region = cc, host, endpoint, region
        self.max_instances, self.max_addresses = max_instances, max_addresses

    @property
    def zone_id(self) -> str:
        from euca.services.instancetypes import zone_id

        return zone_id(self.region, 1)

    def describe(self, caller: Caller, names: list[str] | None, filters: Any, ids: list[str] | None = None,
                 all_zones: bool = False) -> list[dict[str, Any]]:
        chosen = wanted(filters, ZONE_FILTERS, tags=False)
        if names and "verbose" in names and caller.admin:
            return self._verbose()
        zone = {"ZoneName": self._cc.name, "ZoneId": self.zone_id, "State": "available", "RegionName": self.region,
                "Messages": [], "OptInStatus": "opt-in-not-required", "GroupName": self.region,
                "NetworkBorderGroup": self.region, "ZoneType": "availability-zone"}
        for name in names or ():
            if name not in (self._cc.name, "verbose"):
                raise InvalidParameterValue(f"Invalid availability zone: [{quoted(name)}]")
        for id_ in ids or ():
            if id_ != self.zone_id:
                raise InvalidParameterValue(f"Invalid availability zone: [{quoted(id_)}]")
        fields = {"zone-name": [self._cc.name], "zone-id": [self.zone_id], "state": ["available"],
                  "region-name": [self.region], "group-name": [self.region], "opt-in-status": ["opt-in-not-required"],
                  "zone-type": ["availability-zone"]}
        return [zone] if matches(chosen, lambda n: fields.get(n, [])) else []

    def _verbose(self) -> list[dict[str, Any]]:
        # Eucalyptus puts each table line in a zone entry: the name column in zoneName, the rest in zoneState.
        lines = self._cc.describe_lines()
        out = [{"ZoneName": lines[0], "State": self.host, "RegionName": self.region}]
        for line in lines[1:]:
            out.append({"ZoneName": line[:16].rstrip(), "State": line[16:].strip(), "RegionName": self.region})
        return out

    def regions(self, names: list[str] | None, filters: Any = None, all_regions: bool = False) -> list[dict[str, Any]]:
        chosen = wanted(filters, ("endpoint", "region-name", "opt-in-status"), tags=False)
        for name in names or ():
            if name != self.region:
                raise InvalidParameterValue(f"Invalid region: {quoted(name)}")
        fields = {"endpoint": [self.endpoint], "region-name": [self.region], "opt-in-status": ["opt-in-not-required"]}
        region = {"RegionName": self.region, "Endpoint": self.endpoint, "OptInStatus": "opt-in-not-required"}
        return [region] if matches(chosen, lambda n: fields.get(n, [])) else []

    def account_attributes(self, caller: Caller, names: list[str] | None) -> list[dict[str, Any]]:
        for name in names or ():
            if name not in ACCOUNT_ATTRIBUTES:
                raise InvalidParameterValue(f"Value ({quoted(name)}) for parameter attributeName is invalid.")
        values = {"supported-platforms": ["EC2"], "default-vpc": ["none"], "max-instances": [str(self.max_instances)],
                  "max-elastic-ips": [str(self.max_addresses)], "vpc-max-elastic-ips": ["0"],
                  "vpc-max-security-groups-per-interface": ["0"]}
        return [{"AttributeName": n, "AttributeValues": [{"AttributeValue": v} for v in values[n]]}
                for n in (names or ACCOUNT_ATTRIBUTES)]
