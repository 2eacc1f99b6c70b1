"""Availability zones (one per cluster) and the region, with the administrator's ``verbose`` view:
the cluster controller's ``free / max  cpu  ram  disk`` table as extra zone entries."""

from __future__ import annotations

from typing import Any

from euca.cluster import ClusterController
from euca.core.errors import InvalidZoneNotFound
from euca.services.common import Caller, matches, wanted

REGION = "eucalyptus"


class Zones:
    def __init__(self, cc: ClusterController, host: str = "127.0.0.1", endpoint: str = "") -> None:
        self._cc, self.host, self.endpoint = cc, host, endpoint

    def describe(self, caller: Caller, names: list[str] | None, filters: Any) -> list[dict[str, Any]]:
        chosen = wanted(filters, ("zone-name", "state", "region-name"))
        if names and "verbose" in names and caller.admin:
            return self._verbose()
        zone = {"ZoneName": self._cc.name, "State": "available", "RegionName": REGION, "Messages": []}
        if names:
            for name in names:
                if name not in (self._cc.name, "verbose"):
                    raise InvalidZoneNotFound(f"The zone '{name[:64]}' does not exist.")
        fields = {"zone-name": [self._cc.name], "state": ["available"], "region-name": [REGION]}
        return [zone] if matches(chosen, lambda n: fields.get(n, [])) else []

    def _verbose(self) -> list[dict[str, Any]]:
        # Eucalyptus puts each table line in a zone entry: the name column in zoneName, the rest in zoneState.
        lines = self._cc.describe_lines()
        out = [{"ZoneName": lines[0], "State": self.host, "RegionName": REGION}]
        for line in lines[1:]:
            out.append({"ZoneName": line[:16].rstrip(), "State": line[16:].strip(), "RegionName": REGION})
        return out

    def regions(self, names: list[str] | None) -> list[dict[str, Any]]:
        if names and any(n != REGION for n in names):
            raise InvalidZoneNotFound("The region does not exist")
        return [{"RegionName": REGION, "Endpoint": self.endpoint}]
