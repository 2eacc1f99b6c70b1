"""Security groups: named firewall rule sets per account; in MANAGED mode each gets its own network.

A rule lets traffic in from a CIDR block or from the members of another group, for a protocol and
a port range (ICMP: type and code). Every (protocol, ports, source) is one permission: adding it
twice is InvalidPermission.Duplicate, revoking one that is not there InvalidPermission.NotFound.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from euca.core.errors import (
    InvalidGroupDuplicate,
    InvalidGroupIdMalformed,
    InvalidGroupInUse,
    InvalidGroupNotFound,
    InvalidGroupReserved,
    InvalidParameterValue,
    InvalidPermissionDuplicate,
    InvalidPermissionMalformed,
    InvalidPermissionNotFound,
    MissingParameter,
    RulesPerSecurityGroupLimitExceeded,
    SecurityGroupLimitExceeded,
)
from euca.services.accounts import Accounts
from euca.services.common import Caller, Ids, matches, tag_fields, tag_list, wanted, well_formed
from euca.services.tags import Tags
from euca.store import Store

MAX_RULES = 100
MAX_GROUPS = 500
DEFAULT = "default"
_PROTOCOLS = {"tcp": "tcp", "6": "tcp", "udp": "udp", "17": "udp", "icmp": "icmp", "1": "icmp", "-1": "-1", "all": "-1"}

# (protocol, from port, to port, "cidr" | "group", CIDR or "<account>/<group name>")
Rule = tuple[str, int, int, str, str]


@dataclass
class Group:
    group_id: str
    account: str
    name: str
    description: str
    rules: list[Rule] = field(default_factory=list)

    def body(self) -> dict[str, Any]:
        return {"group_id": self.group_id, "name": self.name, "description": self.description,
                "rules": [list(r) for r in self.rules]}


class Groups:
    def __init__(self, store: Store, ids: Ids, accounts: Accounts, tags: Tags) -> None:
        self._store, self._ids, self._accounts, self._tags = store, ids, accounts, tags
        self._groups: dict[tuple[str, str], Group] = {}
        self._by_id: dict[str, Group] = {}
        self.in_use: Callable[[str, str], bool] = lambda account, name: False
        for _, account, b in store.load("group"):
            g = Group(b["group_id"], account, b["name"], b["description"], [tuple(r) for r in b["rules"]])
            self._groups[(account, g.name)] = g
            self._by_id[g.group_id] = g
        tags.add_resolver(self._resolve)

    def _resolve(self, caller: Caller, resource: str) -> tuple[str, str] | None:
        g = self._by_id.get(resource)
        return (g.account, "security-group") if g is not None and caller.sees(g.account) else None

    def _write(self, group: Group) -> None:
        with self._store.transaction() as tx:
            tx.put("group", group.group_id, group.account, group.body())

    def ensure_default(self, account: str) -> None:
        if (account, DEFAULT) not in self._groups:
            self._create(account, DEFAULT, "default group")

    def _create(self, account: str, name: str, description: str) -> Group:
        with self._store.transaction() as tx:
            group = Group(self._ids.new("sg", tx), account, name, description)
            tx.put("group", group.group_id, account, group.body())
        self._groups[(account, name)] = group
        self._by_id[group.group_id] = group
        return group

    def get(self, account: str, name: str) -> Group | None:
        return self._groups.get((account, name))

    def find(self, caller: Caller, name: str | None = None, group_id: str | None = None) -> Group:
        if group_id:
            if not well_formed(group_id, "sg"):
                raise InvalidGroupIdMalformed(f"Invalid id: \"{group_id[:64]}\" (expecting \"sg-...\")")
            g = self._by_id.get(group_id)
            if g is None or not caller.sees(g.account):
                raise InvalidGroupNotFound(f"The security group '{group_id}' does not exist")
            return g
        if not name:
            raise MissingParameter("The request must contain the parameter GroupName or GroupId")
        g = self._groups.get((caller.account, name))
        if g is None:
            raise InvalidGroupNotFound(f"The security group '{name[:255]}' does not exist")
        return g

    def create(self, caller: Caller, name: str, description: str) -> dict[str, Any]:
        if not 1 <= len(name) <= 255 or not name.isascii() or not name.isprintable() or name.startswith("sg-"):
            raise InvalidParameterValue("group names are 1-255 printable ASCII characters, not starting with sg-")
        if not 1 <= len(description) <= 255 or not description.isprintable():
            raise InvalidParameterValue("group descriptions are 1-255 printable characters")
        if (caller.account, name) in self._groups:
            raise InvalidGroupDuplicate(f"The security group '{name}' already exists")
        if sum(1 for a, _ in self._groups if a == caller.account) >= MAX_GROUPS:
            raise SecurityGroupLimitExceeded(f"at most {MAX_GROUPS} security groups per account")
        return {"GroupId": self._create(caller.account, name, description).group_id}

    def delete(self, caller: Caller, name: str | None, group_id: str | None) -> None:
        g = self.find(caller, name, group_id)
        if g.name == DEFAULT:
            raise InvalidGroupReserved("The default security group cannot be deleted")
        if self.in_use(g.account, g.name):
            raise InvalidGroupInUse(f"There are active instances using security group '{g.name}'")
        source = f"{g.account}/{g.name}"
        for other in self._groups.values():
            if other is not g and any(r[3] == "group" and r[4] == source for r in other.rules):
                # another account's group is not named to this caller
                users = other.group_id if other.account == g.account else "a group of another account"
                raise InvalidGroupInUse(f"Group {g.group_id} is used by groups: {users}")
        with self._store.transaction() as tx:
            tx.delete("group", g.group_id)
            self._tags.drop_in(tx, g.group_id)
        del self._groups[(g.account, g.name)]
        del self._by_id[g.group_id]

    # --- rules ----------------------------------------------------------------------------------------

    def _rules(self, caller: Caller, params: dict[str, Any]) -> list[Rule]:
        permissions = params.get("IpPermissions")
        legacy = bool(permissions is None)
        if permissions is None:
            p: dict[str, Any] = {"IpProtocol": params.get("IpProtocol"), "FromPort": params.get("FromPort"),
                                 "ToPort": params.get("ToPort")}
            if params.get("CidrIp"):
                p["IpRanges"] = [{"CidrIp": params["CidrIp"]}]
            if params.get("SourceSecurityGroupName"):
                p["UserIdGroupPairs"] = [{"GroupName": params["SourceSecurityGroupName"],
                                          "UserId": params.get("SourceSecurityGroupOwnerId")}]
            permissions = [p]
        rules: list[Rule] = []
        for p in permissions:
            rules += self._permission(caller, p, legacy)
        if not rules:
            raise MissingParameter("No permission given: IpPermissions, or IpProtocol with CidrIp or a source group")
        return rules

    def _permission(self, caller: Caller, p: dict[str, Any], legacy: bool) -> list[Rule]:
        raw = str(p.get("IpProtocol") or ("-1" if p.get("UserIdGroupPairs") else "")).lower()
        if not raw:
            raise MissingParameter("The request must contain the parameter IpProtocol")
        proto = _PROTOCOLS.get(raw)
        if proto is None:
            raise InvalidPermissionMalformed(f"Invalid IP protocol: {raw[:32]}")
        low, high = p.get("FromPort"), p.get("ToPort")
        if proto == "-1":
            low, high = -1, -1
        elif proto == "icmp":
            low = -1 if low is None else low
            high = -1 if high is None else high
            if not (-1 <= low <= 255 and -1 <= high <= 255):
                raise InvalidPermissionMalformed("ICMP type and code are -1..255")
        else:
            if low is None or high is None:
                raise MissingParameter("FromPort and ToPort are needed for tcp and udp")
            if not (0 <= low <= high <= 65535):
                raise InvalidPermissionMalformed(f"Invalid port range {low}-{high} (0-65535, from <= to)")
        sources: list[tuple[str, str]] = []
        for r in p.get("IpRanges") or []:
            cidr = r.get("CidrIp", "")
            try:
                net = ipaddress.IPv4Network(cidr, strict=False)
            except ValueError:
                raise InvalidPermissionMalformed(f"Invalid CIDR: {cidr[:64]}") from None
            if "/" not in cidr:
                raise InvalidPermissionMalformed(f"Invalid CIDR: {cidr[:64]} (give a prefix length)")
            sources.append(("cidr", str(net)))
        for pair in p.get("UserIdGroupPairs") or []:
            owner = caller.account
            if pair.get("UserId") and pair["UserId"] != caller.account_id:
                other = self._accounts.by_id(pair["UserId"]) or self._accounts.get(pair["UserId"])
                if other is None:
                    raise InvalidGroupNotFound(f"No account {pair['UserId'][:32]}")
                owner = other.name
            if pair.get("GroupId"):
                # another account's group by id only with its owner named (UserId), as EC2-Classic had it;
                # otherwise an id alone would tell its owner and name to whoever guessed it
                g = self._by_id.get(pair["GroupId"])
                if g is None or g.account != owner:
                    raise InvalidGroupNotFound(f"The security group '{pair['GroupId'][:64]}' does not exist")
            else:
                g = self._groups.get((owner, pair.get("GroupName") or ""))
                if g is None:
                    missing = str(pair.get("GroupName"))[:255]
                    raise InvalidGroupNotFound(f"The security group '{missing}' does not exist")
            sources.append(("group", f"{g.account}/{g.name}"))
        if not sources and legacy:
            sources.append(("cidr", "0.0.0.0/0"))
        return [(proto, int(low), int(high), kind, src) for kind, src in sources]

    def authorize(self, caller: Caller, params: dict[str, Any]) -> None:
        g = self.find(caller, params.get("GroupName"), params.get("GroupId"))
        rules = self._rules(caller, params)
        for rule in rules:
            if rule in g.rules or rules.count(rule) > 1:
                raise InvalidPermissionDuplicate(
                    f"the specified rule \"peer: {self._peer(caller, rule)}, {rule[0]}, from port: {rule[1]}, "
                    f"to port: {rule[2]}\" already exists")
        if len(g.rules) + len(rules) > MAX_RULES:
            raise RulesPerSecurityGroupLimitExceeded(f"at most {MAX_RULES} rules per group")
        g2 = Group(g.group_id, g.account, g.name, g.description, g.rules + rules)
        self._write(g2)
        g.rules = g2.rules

    def revoke(self, caller: Caller, params: dict[str, Any]) -> None:
        g = self.find(caller, params.get("GroupName"), params.get("GroupId"))
        rules = self._rules(caller, params)
        for rule in rules:
            if rule not in g.rules:
                raise InvalidPermissionNotFound("The specified rule does not exist in this security group.")
        kept = [r for r in g.rules if r not in rules]
        self._write(Group(g.group_id, g.account, g.name, g.description, kept))
        g.rules = kept

    # --- describe -------------------------------------------------------------------------------------

    def describe(self, caller: Caller, names: list[str] | None, ids: list[str] | None,
                 filters: Any) -> list[dict[str, Any]]:
        chosen = wanted(filters, ("group-name", "group-id", "description", "owner-id", "ip-permission.protocol",
                                  "ip-permission.cidr", "ip-permission.from-port", "ip-permission.to-port",
                                  "ip-permission.group-name"))
        visible = [g for g in self._groups.values() if caller.sees(g.account)]
        if names:
            for name in names:
                if not any(g.name == name and g.account == caller.account for g in visible):
                    raise InvalidGroupNotFound(f"The security group '{name[:255]}' does not exist")
            visible = [g for g in visible if g.name in names and (g.account == caller.account or not caller.admin)]
        if ids:
            for id_ in ids:
                if not any(g.group_id == id_ for g in visible):
                    raise InvalidGroupNotFound(f"The security group '{id_[:64]}' does not exist")
            visible = [g for g in visible if g.group_id in ids]
        out = []
        for g in sorted(visible, key=lambda g: (g.account, g.name)):
            owner = self._owner_id(g.account)
            tags = self._tags.of(g.group_id)

            def fields(name: str, g: Group = g, owner: str = owner, tags: Any = tags) -> list[str]:
                if name == "group-name":
                    return [g.name]
                if name == "group-id":
                    return [g.group_id]
                if name == "description":
                    return [g.description]
                if name == "owner-id":
                    return [owner]
                if name.startswith("ip-permission."):
                    i = {"protocol": 0, "from-port": 1, "to-port": 2}.get(name[14:])
                    if i is not None:
                        return [str(r[i]) for r in g.rules]
                    kind = "cidr" if name.endswith("cidr") else "group"
                    return [r[4].split("/")[-1] if kind == "group" else r[4] for r in g.rules if r[3] == kind]
                return tag_fields(tags, name)
            if matches(chosen, fields):
                out.append({"GroupId": g.group_id, "GroupName": g.name, "Description": g.description,
                            "OwnerId": owner, "IpPermissions": self._permissions(g), "Tags": tag_list(tags)})
        return out

    def _owner_id(self, account: str) -> str:
        a = self._accounts.get(account)
        return a.account_id if a else account

    def _peer(self, caller: Caller, rule: Rule) -> str:
        """A rule's source as the caller may see it: a CIDR, or a group by the owner's account id."""
        if rule[3] != "group":
            return rule[4]
        account, name = rule[4].split("/", 1)
        return name if account == caller.account else f"{self._owner_id(account)}/{name}"

    def _permissions(self, g: Group) -> list[dict[str, Any]]:
        merged: dict[tuple[str, int, int], dict[str, Any]] = {}
        for proto, low, high, kind, src in g.rules:
            p = merged.setdefault((proto, low, high), {"IpProtocol": proto, "FromPort": low, "ToPort": high,
                                                      "IpRanges": [], "UserIdGroupPairs": []})
            if kind == "cidr":
                p["IpRanges"].append({"CidrIp": src})
            else:
                account, name = src.split("/", 1)
                source = self._groups.get((account, name))
                p["UserIdGroupPairs"].append({"UserId": self._owner_id(account), "GroupName": name,
                                              "GroupId": source.group_id if source else None})
        return list(merged.values())
