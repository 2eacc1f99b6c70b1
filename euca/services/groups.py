"""Security groups: named firewall rule sets per account; in MANAGED mode each gets its own network.

A rule lets traffic in from (ingress) or out to (egress) a CIDR block or the members of another
group, for a protocol and a port range (ICMP: type and code), with an optional description. Every
rule has an id (``sgr-`` and 17 hex digits) that stays with it for good. A rule is its direction,
protocol, ports and peer: adding one twice is InvalidPermission.Duplicate, revoking one that is not
there InvalidPermission.NotFound, whatever the descriptions say.

Egress: EC2-Classic, which Eucalyptus copied, had ingress rules only and refused
AuthorizeSecurityGroupEgress. Clients today (Terraform, the aws CLI, SDK helpers) create a group and
then read or set its egress rules as a VPC group has them, so groups here have them too: a new
group allows all traffic out (``-1`` to ``0.0.0.0/0``), as every VPC group starts, and the egress
actions add, revoke, describe and modify egress rules like ingress ones. They are the cloud's record
of what the owner asked; the network layer enforces ingress rules, as Eucalyptus's managed modes
did, and reads egress rules from here once it filters outgoing traffic.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from euca.core.errors import (
    InvalidGroupDuplicate,
    InvalidGroupIdMalformed,
    InvalidGroupInUse,
    InvalidGroupNotFound,
    InvalidGroupReserved,
    InvalidParameterCombination,
    InvalidParameterValue,
    InvalidPermissionDuplicate,
    InvalidPermissionMalformed,
    InvalidPermissionNotFound,
    InvalidSecurityGroupRuleIdMalformed,
    InvalidSecurityGroupRuleIdNotFound,
    InvalidVpcIDNotFound,
    MissingParameter,
    RulesPerSecurityGroupLimitExceeded,
    SecurityGroupLimitExceeded,
)
from euca.core.text import quoted
from euca.services.accounts import Accounts
from euca.services.common import Caller, Ids, matches, page, tag_fields, tag_list, wanted, well_formed
from euca.services.tags import Tags
from euca.store import Store, Tx

MAX_RULES = 100  # per group and direction
MAX_GROUPS = 500
DEFAULT = "default"
ANYWHERE = "0.0.0.0/0"
_PROTOCOLS = {"tcp": "tcp", "6": "tcp", "udp": "udp", "17": "udp", "icmp": "icmp", "1": "icmp", "-1": "-1", "all": "-1"}
_NUMBERS = {"tcp": "6", "udp": "17", "icmp": "1", "-1": "-1"}
# AWS's character set for rule descriptions
_DESCRIPTION_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789. _-:/()#,@[]+=&;{}!$*")
BAD_DESCRIPTION = ("Invalid rule description. Valid descriptions are strings less than 256 characters from the "
                   "following set:  a-zA-Z0-9. _-:/()#,@[]+=&;{}!$*")
_PERMISSION_FILTERS = ("cidr", "from-port", "group-id", "group-name", "ipv6-cidr", "prefix-list-id", "protocol",
                       "to-port", "user-id")
FILTERS = ("description", "group-id", "group-name", "owner-id", "tag-key", "tag-value", "vpc-id",
           *(f"ip-permission.{f}" for f in _PERMISSION_FILTERS),
           *(f"egress.ip-permission.{f}" for f in _PERMISSION_FILTERS))
RULE_FILTERS = ("group-id", "security-group-rule-id")


@dataclass(frozen=True)
class Rule:
    rule_id: str
    egress: bool
    protocol: str  # "tcp" | "udp" | "icmp" | "-1"
    low: int  # first port, or ICMP type; -1 for all
    high: int  # last port, or ICMP code; -1 for all
    kind: str  # "cidr" | "group"
    peer: str  # a CIDR, or "<account>/<group name>"
    description: str = ""

    @property
    def what(self) -> tuple[bool, str, int, int, str, str]:
        """What the rule lets through: two rules with the same ``what`` are one permission."""
        return self.egress, self.protocol, self.low, self.high, self.kind, self.peer

    def body(self) -> dict[str, Any]:
        return {"id": self.rule_id, "egress": self.egress, "protocol": self.protocol, "from": self.low,
                "to": self.high, "kind": self.kind, "peer": self.peer, "description": self.description}

    @classmethod
    def load(cls, b: dict[str, Any]) -> Rule:
        return cls(b["id"], b["egress"], b["protocol"], b["from"], b["to"], b["kind"], b["peer"], b["description"])


@dataclass
class Group:
    group_id: str
    account: str
    name: str
    description: str
    rules: list[Rule] = field(default_factory=list)

    def body(self) -> dict[str, Any]:
        return {"group_id": self.group_id, "name": self.name, "description": self.description,
                "rules": [r.body() for r in self.rules]}


def _check_description(text: str) -> str:
    if len(text) > 255 or not set(text) <= _DESCRIPTION_CHARS:
        raise InvalidParameterValue(BAD_DESCRIPTION)
    return text


class Groups:
    def __init__(self, store: Store, ids: Ids, accounts: Accounts, tags: Tags) -> None:
        self._store, self._ids, self._accounts, self._tags = store, ids, accounts, tags
        self._groups: dict[tuple[str, str], Group] = {}
        self._by_id: dict[str, Group] = {}
        self._rule_group: dict[str, Group] = {}  # rule id -> its group
        self.in_use: Callable[[str, str], bool] = lambda account, name: False
        legacy: list[tuple[str, dict[str, Any]]] = []
        for _, account, b in store.load("group"):
            if any(not isinstance(r, dict) for r in b["rules"]):
                legacy.append((account, b))
                continue
            self._remember(Group(b["group_id"], account, b["name"], b["description"],
                                 [Rule.load(r) for r in b["rules"]]))
        if legacy:
            self._give_rule_ids(legacy)
        tags.add_resolver(self._resolve)

    def _give_rule_ids(self, legacy: list[tuple[str, dict[str, Any]]]) -> None:
        """Groups stored before rules had ids (and egress rules) get ids for their rules and the
        default egress rule, once."""
        with self._store.transaction() as tx:
            loaded = []
            for account, b in legacy:
                rules = [Rule(self._ids.new_long("sgr", tx), False, *r) for r in b["rules"]]
                group = Group(b["group_id"], account, b["name"], b["description"],
                              [*rules, self._everywhere_out(tx)])
                tx.put("group", group.group_id, account, group.body())
                loaded.append(group)
        for group in loaded:
            self._remember(group)

    def _remember(self, group: Group) -> None:
        self._groups[(group.account, group.name)] = group
        self._by_id[group.group_id] = group
        for r in group.rules:
            self._rule_group[r.rule_id] = group

    def _resolve(self, caller: Caller, resource: str) -> tuple[str, str] | None:
        g = self._by_id.get(resource)
        if g is not None and caller.sees(g.account):
            return g.account, "security-group"
        g = self._rule_group.get(resource)
        if g is not None and caller.sees(g.account):
            return g.account, "security-group-rule"
        return None

    def _everywhere_out(self, tx: Tx) -> Rule:
        return Rule(self._ids.new_long("sgr", tx), True, "-1", -1, -1, "cidr", ANYWHERE)

    def _write(self, tx: Tx, group: Group, rules: list[Rule]) -> None:
        """Inside ``tx``: ``group`` with ``rules``; memory follows the commit, and tags of rules
        that are gone go with them."""
        kept = {r.rule_id for r in rules}
        gone = [r for r in group.rules if r.rule_id not in kept]
        tx.put("group", group.group_id, group.account, replace(group, rules=rules).body())
        for r in gone:
            self._tags.drop_in(tx, r.rule_id)

        def applied() -> None:
            for r in gone:
                self._rule_group.pop(r.rule_id, None)
            group.rules = rules
            for r in rules:
                self._rule_group[r.rule_id] = group
        tx.on_commit(applied)

    def ensure_default(self, account: str) -> None:
        if (account, DEFAULT) not in self._groups:
            self._create(account, DEFAULT, "default group", [])

    def _create(self, account: str, name: str, description: str, tags: list[tuple[str, str]]) -> Group:
        with self._store.transaction() as tx:
            group = Group(self._ids.new("sg", tx), account, name, description)
            group.rules = [self._everywhere_out(tx)]
            tx.put("group", group.group_id, account, group.body())
            if tags:
                self._tags.write(tx, [(group.group_id, account)], tags)
            tx.on_commit(lambda: self._remember(group))
        return group

    def get(self, account: str, name: str) -> Group | None:
        return self._groups.get((account, name))

    def find(self, caller: Caller, name: str | None = None, group_id: str | None = None) -> Group:
        if group_id:
            if not well_formed(group_id, "sg"):
                raise InvalidGroupIdMalformed(f"Invalid id: \"{quoted(group_id)}\" (expecting \"sg-...\")")
            g = self._by_id.get(group_id)
            if g is None or not caller.sees(g.account):
                raise InvalidGroupNotFound(f"The security group '{group_id}' does not exist")
            return g
        if not name:
            raise MissingParameter("The request must contain the parameter GroupName or GroupId")
        g = self._groups.get((caller.account, name))
        if g is None:
            raise InvalidGroupNotFound(f"The security group '{quoted(name, 255)}' does not exist")
        return g

    def create(self, caller: Caller, name: str, description: str, vpc_id: str | None = None,
               tag_specs: list[dict[str, Any]] | None = None) -> dict[str, Any]:
        if not 1 <= len(name) <= 255 or not name.isascii() or not name.isprintable() or name.startswith("sg-"):
            raise InvalidParameterValue("group names are 1-255 printable ASCII characters, not starting with sg-")
        if not 1 <= len(description) <= 255 or not description.isprintable():
            raise InvalidParameterValue("group descriptions are 1-255 printable characters")
        if vpc_id:
            raise InvalidVpcIDNotFound(f"The vpc ID '{quoted(vpc_id)}' does not exist")
        tags = Tags.specified(tag_specs, "security-group")
        if (caller.account, name) in self._groups:
            raise InvalidGroupDuplicate(f"The security group '{name}' already exists")
        if sum(1 for a, _ in self._groups if a == caller.account) >= MAX_GROUPS:
            raise SecurityGroupLimitExceeded(f"at most {MAX_GROUPS} security groups per account")
        group = self._create(caller.account, name, description, tags)
        return {"GroupId": group.group_id, "Tags": tag_list(dict(tags))}

    def delete(self, caller: Caller, name: str | None, group_id: str | None) -> dict[str, Any]:
        g = self.find(caller, name, group_id)
        if g.name == DEFAULT:
            raise InvalidGroupReserved("The default security group cannot be deleted")
        if self.in_use(g.account, g.name):
            raise InvalidGroupInUse(f"There are active instances using security group '{g.name}'")
        source = f"{g.account}/{g.name}"
        for other in self._groups.values():
            if other is not g and any(r.kind == "group" and r.peer == source for r in other.rules):
                # another account's group is not named to this caller
                users = other.group_id if other.account == g.account else "a group of another account"
                raise InvalidGroupInUse(f"Group {g.group_id} is used by groups: {users}")
        with self._store.transaction() as tx:
            tx.delete("group", g.group_id)
            self._tags.drop_in(tx, g.group_id)
            for r in g.rules:
                self._tags.drop_in(tx, r.rule_id)

            def gone() -> None:
                del self._groups[(g.account, g.name)]
                del self._by_id[g.group_id]
                for r in g.rules:
                    self._rule_group.pop(r.rule_id, None)
            tx.on_commit(gone)
        return {"Return": True, "GroupId": g.group_id}

    # --- rules ----------------------------------------------------------------------------------------

    def _asked(self, caller: Caller, params: dict[str, Any], egress: bool) -> list[Rule]:
        """The rules a request's IpPermissions (or the single-rule parameters) name, without ids."""
        permissions = params.get("IpPermissions")
        legacy = permissions is None
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
            rules += self._permission(caller, p, legacy, egress)
        if not rules:
            raise MissingParameter("No permission given: IpPermissions, or IpProtocol with CidrIp or a source group")
        return rules

    def _permission(self, caller: Caller, p: Mapping[str, Any], legacy: bool, egress: bool) -> list[Rule]:
        raw = str(p.get("IpProtocol") or ("-1" if p.get("UserIdGroupPairs") else "")).lower()
        if not raw:
            raise MissingParameter("The request must contain the parameter IpProtocol")
        proto = _PROTOCOLS.get(raw)
        if proto is None:
            raise InvalidPermissionMalformed(f"Invalid IP protocol: {quoted(raw, 32)}")
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
        if p.get("Ipv6Ranges") or p.get("PrefixListIds"):
            raise InvalidParameterValue("IPv6 ranges and prefix lists are not supported here")
        sources: list[tuple[str, str, str]] = []
        for r in p.get("IpRanges") or []:
            cidr = r.get("CidrIp") or ""
            try:
                net = ipaddress.IPv4Network(cidr, strict=False)
            except ValueError:
                raise InvalidPermissionMalformed(f"Invalid CIDR: {quoted(cidr)}") from None
            if "/" not in cidr:
                raise InvalidPermissionMalformed(f"Invalid CIDR: {quoted(cidr)} (give a prefix length)")
            sources.append(("cidr", str(net), _check_description(r.get("Description") or "")))
        for pair in p.get("UserIdGroupPairs") or []:
            g = self._source(caller, pair)
            sources.append(("group", f"{g.account}/{g.name}", _check_description(pair.get("Description") or "")))
        if not sources and legacy:
            sources.append(("cidr", ANYWHERE, ""))
        return [Rule("", egress, proto, int(low), int(high), kind, peer, text) for kind, peer, text in sources]

    def _source(self, caller: Caller, pair: Mapping[str, Any]) -> Group:
        owner = caller.account
        if pair.get("UserId") and pair["UserId"] != caller.account_id:
            other = self._accounts.by_id(pair["UserId"]) or self._accounts.get(pair["UserId"])
            if other is None:
                raise InvalidGroupNotFound(f"No account {quoted(pair['UserId'], 32)}")
            owner = other.name
        if pair.get("GroupId"):
            # another account's group by id only with its owner named (UserId), as EC2-Classic had it;
            # otherwise an id alone would tell its owner and name to whoever guessed it
            g = self._by_id.get(pair["GroupId"])
            if g is None or g.account != owner:
                raise InvalidGroupNotFound(f"The security group '{quoted(pair['GroupId'])}' does not exist")
            return g
        g = self._groups.get((owner, pair.get("GroupName") or ""))
        if g is None:
            raise InvalidGroupNotFound(f"The security group '{quoted(str(pair.get('GroupName')), 255)}' does not exist")
        return g

    def _group_of(self, caller: Caller, params: dict[str, Any]) -> Group:
        return self.find(caller, params.get("GroupName"), params.get("GroupId"))

    def authorize(self, caller: Caller, params: dict[str, Any], egress: bool = False) -> dict[str, Any]:
        g = self._group_of(caller, params)
        asked = self._asked(caller, params, egress)
        tags = Tags.specified(params.get("TagSpecifications"), "security-group-rule")
        have = {r.what for r in g.rules}
        for i, rule in enumerate(asked):
            if rule.what in have or any(rule.what == other.what for other in asked[:i]):
                raise InvalidPermissionDuplicate(
                    f"the specified rule \"peer: {self._peer(caller, rule)}, {rule.protocol.upper()}, from port: "
                    f"{rule.low}, to port: {rule.high}, ALLOW\" already exists")
        if sum(1 for r in g.rules if r.egress == egress) + len(asked) > MAX_RULES:
            raise RulesPerSecurityGroupLimitExceeded(f"The maximum number of rules per security group ({MAX_RULES}) "
                                                     "has been reached.")
        with self._store.transaction() as tx:
            added = [replace(r, rule_id=self._ids.new_long("sgr", tx)) for r in asked]
            self._write(tx, g, g.rules + added)
            if tags:
                self._tags.write(tx, [(r.rule_id, g.account) for r in added], tags)
        return {"Return": True, "SecurityGroupRules": [self._rule_out(g, r) for r in added]}

    def revoke(self, caller: Caller, params: dict[str, Any], egress: bool = False) -> dict[str, Any]:
        g = self._group_of(caller, params)
        rule_ids = params.get("SecurityGroupRuleIds") or []
        if rule_ids:
            if params.get("IpPermissions") or params.get("IpProtocol") or params.get("CidrIp"):
                raise InvalidParameterCombination("Give either SecurityGroupRuleIds or the rules themselves")
            doomed = [self._rule_in(g, rule_id, egress) for rule_id in rule_ids]
        else:
            by_what = {r.what: r for r in g.rules}
            doomed = []
            for rule in self._asked(caller, params, egress):
                if rule.what not in by_what:
                    raise InvalidPermissionNotFound("The specified rule does not exist in this security group.")
                doomed.append(by_what[rule.what])
        gone = {r.rule_id for r in doomed}
        with self._store.transaction() as tx:
            self._write(tx, g, [r for r in g.rules if r.rule_id not in gone])
        return {"Return": True, "RevokedSecurityGroupRules": self._revoked(g, doomed)}

    def _revoked(self, g: Group, rules: Iterable[Rule]) -> list[dict[str, Any]]:
        return [{"SecurityGroupRuleId": r.rule_id, "GroupId": g.group_id, "IsEgress": r.egress,
                 "IpProtocol": r.protocol, "FromPort": r.low, "ToPort": r.high,
                 "CidrIpv4": r.peer if r.kind == "cidr" else None, "ReferencedGroupId": self._peer_group_id(r),
                 "Description": r.description or None} for r in rules]

    def _rule_in(self, g: Group, rule_id: Any, egress: bool) -> Rule:
        """The rule of ``g`` in that direction with that id; one the group has not got is not found,
        whether it exists elsewhere or not."""
        if not isinstance(rule_id, str) or not well_formed(rule_id, "sgr"):
            raise InvalidSecurityGroupRuleIdMalformed(
                f"Invalid id: \"{quoted(str(rule_id))}\" (expecting \"sgr-...\")")
        for r in g.rules:
            if r.rule_id == rule_id and r.egress == egress:
                return r
        raise InvalidSecurityGroupRuleIdNotFound(f"The security group rule ID '{rule_id}' does not exist")

    def update_descriptions(self, caller: Caller, params: dict[str, Any], egress: bool) -> dict[str, Any]:
        g = self._group_of(caller, params)
        described = params.get("SecurityGroupRuleDescriptions")
        changed: dict[str, str] = {}
        if described:
            if params.get("IpPermissions"):
                raise InvalidParameterCombination("Give either SecurityGroupRuleDescriptions or IpPermissions")
            for d in described:
                rule_id = d.get("SecurityGroupRuleId")
                if not rule_id:
                    raise MissingParameter("The request must contain the parameter SecurityGroupRuleId")
                changed[self._rule_in(g, rule_id, egress).rule_id] = _check_description(d.get("Description") or "")
        else:
            if not params.get("IpPermissions"):
                raise MissingParameter("The request must contain the parameter IpPermissions or "
                                       "SecurityGroupRuleDescriptions")
            by_what = {r.what: r for r in g.rules}
            for rule in self._asked(caller, params, egress):
                if rule.what not in by_what:
                    raise InvalidPermissionNotFound("The specified rule does not exist in this security group.")
                changed[by_what[rule.what].rule_id] = rule.description
        with self._store.transaction() as tx:
            self._write(tx, g, [replace(r, description=changed.get(r.rule_id, r.description)) for r in g.rules])
        return {"Return": True}

    def modify(self, caller: Caller, params: dict[str, Any]) -> dict[str, Any]:
        """ModifySecurityGroupRules: each named rule becomes the rule given, keeping its id and direction."""
        g = self.find(caller, group_id=params.get("GroupId") or "")
        new: dict[str, Rule] = {}
        for item in params.get("SecurityGroupRules") or []:
            rule_id = item.get("SecurityGroupRuleId")
            if not rule_id:
                raise MissingParameter("The request must contain the parameter SecurityGroupRuleId")
            old = next((r for r in g.rules if r.rule_id == rule_id), None)
            if old is None:
                self._rule_in(g, rule_id, False)  # malformed or not found, as EC2 tells them apart
                raise InvalidSecurityGroupRuleIdNotFound(f"The security group rule ID '{rule_id}' does not exist")
            spec = item.get("SecurityGroupRule") or {}
            if spec.get("CidrIpv6") or spec.get("PrefixListId"):
                raise InvalidParameterValue("IPv6 ranges and prefix lists are not supported here")
            if bool(spec.get("CidrIpv4")) == bool(spec.get("ReferencedGroupId")):
                raise InvalidParameterCombination("A rule has exactly one of CidrIpv4 and ReferencedGroupId")
            permission: dict[str, Any] = {"IpProtocol": spec.get("IpProtocol"), "FromPort": spec.get("FromPort"),
                                          "ToPort": spec.get("ToPort")}
            if spec.get("CidrIpv4"):
                permission["IpRanges"] = [{"CidrIp": spec["CidrIpv4"], "Description": spec.get("Description")}]
            else:
                permission["UserIdGroupPairs"] = [{"GroupId": spec["ReferencedGroupId"],
                                                   "Description": spec.get("Description")}]
            (rule,) = self._permission(caller, permission, False, old.egress)
            new[old.rule_id] = replace(rule, rule_id=old.rule_id)
        if not new:
            raise MissingParameter("The request must contain the parameter SecurityGroupRules")
        rules = [new.get(r.rule_id, r) for r in g.rules]
        whats = [r.what for r in rules]
        for r in new.values():
            if whats.count(r.what) > 1:
                raise InvalidPermissionDuplicate(f"the specified rule \"peer: {self._peer(caller, r)}, "
                                                 f"{r.protocol.upper()}, from port: {r.low}, to port: {r.high}, "
                                                 "ALLOW\" already exists")
        with self._store.transaction() as tx:
            self._write(tx, g, rules)
        return {"Return": True}

    # --- describe -------------------------------------------------------------------------------------

    def describe(self, caller: Caller, names: list[str] | None, ids: list[str] | None, filters: Any,
                 max_results: int | None = None, token: str | None = None) -> dict[str, Any]:
        chosen = wanted(filters, FILTERS)
        visible = [g for g in self._groups.values() if caller.sees(g.account)]
        if names:
            for name in names:
                if not any(g.name == name and g.account == caller.account for g in visible):
                    raise InvalidGroupNotFound(f"The security group '{quoted(name, 255)}' does not exist")
            visible = [g for g in visible if g.name in names and (g.account == caller.account or not caller.admin)]
        if ids:
            for id_ in ids:
                if not any(g.group_id == id_ for g in visible):
                    raise InvalidGroupNotFound(f"The security group '{quoted(id_)}' does not exist")
            visible = [g for g in visible if g.group_id in ids]
        chosen_groups = []
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
                if name.startswith(("ip-permission.", "egress.ip-permission.")):
                    egress, _, what = name.partition("ip-permission.")
                    return self._rule_fields([r for r in g.rules if r.egress == bool(egress)], what)
                return tag_fields(tags, name)  # vpc-id among them: never matches
            if matches(chosen, fields):
                chosen_groups.append((g, owner, tags))
        shown, following = page(chosen_groups, max_results, token)
        return {"SecurityGroups": [{"GroupId": g.group_id, "GroupName": g.name, "Description": g.description,
                                    "OwnerId": owner, "IpPermissions": self._permissions(g, False),
                                    "IpPermissionsEgress": self._permissions(g, True), "Tags": tag_list(tags)}
                                   for g, owner, tags in shown],
                "NextToken": following}

    def _rule_fields(self, rules: list[Rule], what: str) -> list[str]:
        if what == "protocol":
            return [v for r in rules for v in (r.protocol, _NUMBERS[r.protocol])]
        if what == "from-port":
            return [str(r.low) for r in rules]
        if what == "to-port":
            return [str(r.high) for r in rules]
        if what == "cidr":
            return [r.peer for r in rules if r.kind == "cidr"]
        peers = [r.peer.split("/", 1) for r in rules if r.kind == "group"]
        if what == "group-name":
            return [name for _, name in peers]
        if what == "user-id":
            return [self._owner_id(account) for account, _ in peers]
        if what == "group-id":
            return [g.group_id for account, name in peers if (g := self._groups.get((account, name)))]
        return []  # ipv6-cidr, prefix-list-id: no rule has one

    def describe_rules(self, caller: Caller, rule_ids: list[str] | None, filters: Any,
                       max_results: int | None = None, token: str | None = None) -> dict[str, Any]:
        chosen = wanted(filters, RULE_FILTERS)
        visible = [g for g in sorted(self._groups.values(), key=lambda g: (g.account, g.name))
                   if caller.sees(g.account)]
        rules = [(g, r) for g in visible for r in g.rules]
        if rule_ids:
            for rule_id in rule_ids:
                if not any(r.rule_id == rule_id for _, r in rules):
                    if not well_formed(rule_id, "sgr"):
                        raise InvalidSecurityGroupRuleIdMalformed(
                            f"Invalid id: \"{quoted(rule_id)}\" (expecting \"sgr-...\")")
                    raise InvalidSecurityGroupRuleIdNotFound(f"The security group rule ID '{rule_id}' does not exist")
            rules = [(g, r) for g, r in rules if r.rule_id in rule_ids]

        def fields(g: Group, r: Rule) -> Callable[[str], list[str]]:
            return lambda name: ([g.group_id] if name == "group-id" else [r.rule_id]
                                 if name == "security-group-rule-id" else tag_fields(self._tags.of(r.rule_id), name))
        found = [(g, r) for g, r in rules if matches(chosen, fields(g, r))]
        shown, following = page(found, max_results, token)
        return {"SecurityGroupRules": [self._rule_out(g, r) for g, r in shown], "NextToken": following}

    def _rule_out(self, g: Group, r: Rule) -> dict[str, Any]:
        referenced = None
        if r.kind == "group":
            account, _ = r.peer.split("/", 1)
            referenced = {"GroupId": self._peer_group_id(r), "UserId": self._owner_id(account)}
        return {"SecurityGroupRuleId": r.rule_id, "GroupId": g.group_id, "GroupOwnerId": self._owner_id(g.account),
                "IsEgress": r.egress, "IpProtocol": r.protocol, "FromPort": r.low, "ToPort": r.high,
                "CidrIpv4": r.peer if r.kind == "cidr" else None, "ReferencedGroupInfo": referenced,
                "Description": r.description or None, "Tags": tag_list(self._tags.of(r.rule_id))}

    def _peer_group_id(self, r: Rule) -> str | None:
        if r.kind != "group":
            return None
        account, name = r.peer.split("/", 1)
        source = self._groups.get((account, name))
        return source.group_id if source else None

    def _owner_id(self, account: str) -> str:
        a = self._accounts.get(account)
        return a.account_id if a else account

    def _peer(self, caller: Caller, rule: Rule) -> str:
        """A rule's peer as the caller may see it: a CIDR, or a group by the owner's account id."""
        if rule.kind != "group":
            return rule.peer
        account, name = rule.peer.split("/", 1)
        return name if account == caller.account else f"{self._owner_id(account)}/{name}"

    def _permissions(self, g: Group, egress: bool) -> list[dict[str, Any]]:
        """The rules of one direction as EC2 lists them: one IpPermission per protocol and ports."""
        merged: dict[tuple[str, int, int], dict[str, Any]] = {}
        for r in g.rules:
            if r.egress != egress:
                continue
            p = merged.get((r.protocol, r.low, r.high))
            if p is None:
                p = merged[(r.protocol, r.low, r.high)] = {
                    "IpProtocol": r.protocol, "IpRanges": [], "Ipv6Ranges": [], "PrefixListIds": [],
                    "UserIdGroupPairs": []}
                if r.protocol != "-1":  # EC2 shows no ports for all traffic
                    p["FromPort"], p["ToPort"] = r.low, r.high
            if r.kind == "cidr":
                p["IpRanges"].append({"CidrIp": r.peer, "Description": r.description or None})
            else:
                account, name = r.peer.split("/", 1)
                p["UserIdGroupPairs"].append({"UserId": self._owner_id(account), "GroupName": name,
                                              "GroupId": self._peer_group_id(r),
                                              "Description": r.description or None})
        return list(merged.values())
