"""Instance types as EC2 describes them (DescribeInstanceTypes, DescribeInstanceTypeOfferings), read
from the cluster controller's VM types: what ``euca vmtype`` edits is what clients see and what the
scheduler places."""

from __future__ import annotations

from typing import Any

from euca.cluster import ClusterController, VmType
from euca.core.errors import InvalidInstanceType, InvalidParameterValue
from euca.core.text import quoted
from euca.services.common import Caller, matches, page, wanted

BURSTABLE = ("t1.", "t2.", "t3.")
TYPE_FILTERS = (
    "instance-type", "current-generation", "free-tier-eligible", "burstable-performance-supported",
    "bare-metal", "hypervisor", "instance-storage-supported", "instance-storage-info.total-size",
    "memory-info.size-in-mib", "vcpu-info.default-vcpus", "vcpu-info.default-cores",
    "vcpu-info.default-threads-per-core", "processor-info.supported-architecture",
    "supported-root-device-type", "supported-usage-class", "supported-virtualization-type",
    "network-info.network-performance", "network-info.maximum-network-interfaces",
    "network-info.ipv6-supported", "hibernation-supported", "auto-recovery-supported",
)


def _current(name: str) -> bool:
    return not name.startswith(("m1.", "c1.", "t1.", "cc2."))


def instance_type(t: VmType, hypervisor: str) -> dict[str, Any]:
    burst = t.name.startswith(BURSTABLE)
    return {
        "InstanceType": t.name, "CurrentGeneration": _current(t.name),
        "FreeTierEligible": t.name in ("t1.micro", "t2.micro"),
        "SupportedUsageClasses": ["on-demand"], "SupportedRootDeviceTypes": ["instance-store"],
        "SupportedVirtualizationTypes": ["paravirtual", "hvm"], "BareMetal": False, "Hypervisor": hypervisor,
        "ProcessorInfo": {"SupportedArchitectures": ["i386", "x86_64"]},
        "VCpuInfo": {"DefaultVCpus": t.cores, "DefaultCores": t.cores, "DefaultThreadsPerCore": 1,
                     "ValidCores": [t.cores], "ValidThreadsPerCore": [1]},
        "MemoryInfo": {"SizeInMiB": t.memory},
        "InstanceStorageSupported": True,
        "InstanceStorageInfo": {"TotalSizeInGB": t.disk, "Disks": [{"SizeInGB": t.disk, "Count": 1, "Type": "hdd"}],
                                "NvmeSupport": "unsupported"},
        "EbsInfo": {"EbsOptimizedSupport": "unsupported", "EncryptionSupport": "unsupported",
                    "NvmeSupport": "unsupported"},
        "NetworkInfo": {"NetworkPerformance": "Moderate", "MaximumNetworkInterfaces": 1,
                        "MaximumNetworkCards": 1, "DefaultNetworkCardIndex": 0,
                        "NetworkCards": [{"NetworkCardIndex": 0, "NetworkPerformance": "Moderate",
                                          "MaximumNetworkInterfaces": 1}],
                        "Ipv4AddressesPerInterface": 1, "Ipv6AddressesPerInterface": 0, "Ipv6Supported": False,
                        "EnaSupport": "unsupported", "EfaSupported": False, "EncryptionInTransitSupported": False},
        "PlacementGroupInfo": {"SupportedStrategies": []},
        "HibernationSupported": False, "BurstablePerformanceSupported": burst, "DedicatedHostsSupported": False,
        "AutoRecoverySupported": False, "SupportedBootModes": ["legacy-bios"],
    }


def _fields(item: dict[str, Any]) -> dict[str, list[str]]:
    def b(v: bool) -> str:
        return "true" if v else "false"
    return {
        "instance-type": [item["InstanceType"]], "current-generation": [b(item["CurrentGeneration"])],
        "free-tier-eligible": [b(item["FreeTierEligible"])],
        "burstable-performance-supported": [b(item["BurstablePerformanceSupported"])],
        "bare-metal": [b(False)], "hypervisor": [item["Hypervisor"]], "instance-storage-supported": [b(True)],
        "instance-storage-info.total-size": [str(item["InstanceStorageInfo"]["TotalSizeInGB"])],
        "memory-info.size-in-mib": [str(item["MemoryInfo"]["SizeInMiB"])],
        "vcpu-info.default-vcpus": [str(item["VCpuInfo"]["DefaultVCpus"])],
        "vcpu-info.default-cores": [str(item["VCpuInfo"]["DefaultCores"])],
        "vcpu-info.default-threads-per-core": ["1"],
        "processor-info.supported-architecture": ["i386", "x86_64"],
        "supported-root-device-type": ["instance-store"], "supported-usage-class": ["on-demand"],
        "supported-virtualization-type": ["paravirtual", "hvm"],
        "network-info.network-performance": ["Moderate"], "network-info.maximum-network-interfaces": ["1"],
        "network-info.ipv6-supported": [b(False)], "hibernation-supported": [b(False)],
        "auto-recovery-supported": [b(False)],
    }


class InstanceTypes:
    def __init__(self, cc: ClusterController, region: str, hypervisor: str = "xen") -> None:
        self._cc, self.region, self.hypervisor = cc, region, hypervisor

    def describe(self, caller: Caller, names: list[str] | None, filters: Any, max_results: int | None,
                 token: str | None) -> tuple[list[dict[str, Any]], str | None]:
        chosen = wanted(filters, TYPE_FILTERS, tags=False)
        types = list(self._cc.vmtypes)
        if names:
            missing = [n for n in names if n not in self._cc.vmtypes]
            if missing:
                raise InvalidInstanceType("The following supplied instance types do not exist: "
                                          f"[{', '.join(quoted(m) for m in missing)}]")
            types = [t for t in types if t.name in names]
        if max_results is not None and not 5 <= max_results <= 100:
            raise InvalidParameterValue("MaxResults must be between 5 and 100")
        items = [instance_type(t, self.hypervisor) for t in types]
        if chosen:
            items = [i for i in items if _matches(chosen, _fields(i))]
        return page(items, max_results, token)

    def offerings(self, caller: Caller, location_type: str | None, filters: Any, max_results: int | None,
                  token: str | None) -> tuple[list[dict[str, Any]], str | None]:
        kind = location_type or "region"
        locations = {"region": self.region, "availability-zone": self._cc.name,
                     "availability-zone-id": zone_id(self.region, 1)}
        if kind not in locations:
            raise InvalidParameterValue(f"Value ({quoted(kind)}) for parameter LocationType is invalid. "
                                        "Valid values are region, availability-zone, availability-zone-id")
        chosen = wanted(filters, ("instance-type", "location"), tags=False)
        if max_results is not None and not 5 <= max_results <= 1000:
            raise InvalidParameterValue("MaxResults must be between 5 and 1000")
        where = locations[kind]
        items = [{"InstanceType": t.name, "LocationType": kind, "Location": where} for t in self._cc.vmtypes]
        items = [i for i in items
                 if _matches(chosen, {"instance-type": [i["InstanceType"]], "location": [i["Location"]]})]
        return page(items, max_results, token)


def _matches(chosen: list[tuple[str, list[str]]], fields: dict[str, list[str]]) -> bool:
    return matches(chosen, lambda name: fields.get(name, []))


_COMPASS = {"north": "n", "south": "s", "east": "e", "west": "w", "central": "c", "northeast": "ne",
            "northwest": "nw", "southeast": "se", "southwest": "sw"}


def zone_id(region: str, n: int) -> str:
    """A zone's id as EC2 names them: the region shortened as AWS shortens it (us-east-1 -> use1,
    ap-southeast-2 -> apse2) and the zone's number; a region of another shape keeps its name."""
    parts = region.split("-")
    if len(parts) == 3 and parts[1] in _COMPASS:
        region = parts[0] + _COMPASS[parts[1]] + parts[2]
    return f"{region}-az{n}"
