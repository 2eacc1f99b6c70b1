"""Tags on instances, images and security groups: key/value pairs the owner sets and filters on.

Tags are written in the transaction of the action that makes or ends their resource (RunInstances
with TagSpecifications, burying an instance, deleting a group or an image): ``write`` and
``drop_in`` take that transaction, and the in-memory view follows only once it commits.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from euca.core.errors import (
    InvalidAMIIDNotFound,
    InvalidGroupNotFound,
    InvalidIDMalformed,
    InvalidInstanceIDNotFound,
    InvalidParameterValue,
    InvalidSnapshotNotFound,
    InvalidVolumeNotFound,
    TagLimitExceeded,
)
from euca.core.text import check_tag, quoted
from euca.services.common import Caller, matches, tag_fields, wanted, well_formed
from euca.store import Store, Tx

MAX_TAGS = 50
# resource id -> (owning account, EC2 resource type) when the caller may tag it, else None
Resolver = Callable[[Caller, str], tuple[str, str] | None]

_EMPTY: Mapping[str, str] = {}


class Tags:
    def __init__(self, store: Store) -> None:
        self._store = store
        self._tags: dict[str, dict[str, str]] = {}
        self._owner: dict[str, str] = {}
        self._resolvers: list[Resolver] = []
        # a resource that is gone for its owner though its record is still kept (a buried instance)
        self.hidden: Callable[[str], bool] = lambda resource: False
        self.reload()

    def reload(self) -> None:
        tags: dict[str, dict[str, str]] = {}
        owner: dict[str, str] = {}
        for resource, key, value, account in self._store.tags():
            tags.setdefault(resource, {})[key] = value
            owner[resource] = account
        self._tags, self._owner = tags, owner

    def add_resolver(self, resolver: Resolver) -> None:
        self._resolvers.append(resolver)

    def of(self, resource: str) -> Mapping[str, str]:
        return self._tags.get(resource, _EMPTY)

    def _resolve(self, caller: Caller, resource: str) -> tuple[str, str]:
        for resolver in self._resolvers:
            found = resolver(caller, resource)
            if found is not None:
                return found
        # a well-formed id the caller cannot see is NotFound of its own kind, as EC2 answers it; the
        # same answer whether it exists in another account or nowhere
        if well_formed(resource, "i"):
            raise InvalidInstanceIDNotFound(f"The instance ID '{resource}' does not exist")
        if well_formed(resource, "sg"):
            raise InvalidGroupNotFound(f"The security group '{resource}' does not exist")
        if well_formed(resource, "emi", "eki", "eri", "ami", "aki", "ari"):
            raise InvalidAMIIDNotFound(f"The image id '[{resource}]' does not exist")
        if well_formed(resource, "vol"):
            raise InvalidVolumeNotFound(f"The volume '{resource}' does not exist.")
        if well_formed(resource, "snap"):
            raise InvalidSnapshotNotFound(f"The snapshot '{resource}' does not exist.")
        raise InvalidIDMalformed(f"The ID '{quoted(resource)}' is not valid")

    @staticmethod
    def pairs(tags: list[dict[str, Any]], field: str = "Tag") -> list[tuple[str, str]]:
        """Validated (key, value) pairs; a bad one is InvalidParameterValue naming ``Tag.N.Key``."""
        out: dict[str, str] = {}
        for n, tag in enumerate(tags, 1):
            key, value = tag.get("Key"), tag.get("Value") or ""
            if not isinstance(key, str) or not isinstance(value, str):
                raise InvalidParameterValue(f"{field}.{n}.Key and {field}.{n}.Value must be text")
            check_tag(key, value, f"{field}.{n}")
            out[key] = value
        return list(out.items())

    @classmethod
    def specified(cls, specs: list[dict[str, Any]] | None, resource_type: str) -> list[tuple[str, str]]:
        """The validated (key, value) pairs of a request's ``TagSpecifications`` for the one
        ``resource_type`` the action makes (``instance``, ``key-pair``); any other type is refused."""
        pairs: list[tuple[str, str]] = []
        for n, spec in enumerate(specs or [], 1):
            if spec.get("ResourceType") not in (None, resource_type):
                raise InvalidParameterValue(f"'{quoted(str(spec.get('ResourceType')))}' is not a valid taggable "
                                            "resource type for this operation.")
            pairs += cls.pairs(spec.get("Tags") or [], f"TagSpecification.{n}.Tag")
        return pairs

    def create(self, caller: Caller, resources: list[str], tags: list[dict[str, Any]]) -> None:
        owners = [self._resolve(caller, r) for r in dict.fromkeys(resources)]
        pairs = self.pairs(tags)
        with self._store.transaction() as tx:
            self.write(tx, [(r, account) for r, (account, _) in zip(dict.fromkeys(resources), owners, strict=True)],
                       pairs)

    def write(self, tx: Tx, resources: list[tuple[str, str]], pairs: list[tuple[str, str]]) -> None:
        """Inside ``tx``: set ``pairs`` on each (resource, owning account); memory follows the commit."""
        for resource, _ in resources:
            merged = dict(self.of(resource)) | dict(pairs)
            if len(merged) > MAX_TAGS:
                raise TagLimitExceeded(f"{resource} would have more than {MAX_TAGS} tags")
        for resource, account in resources:
            for key, value in pairs:
                tx.tag(resource, key, value, account)

        def applied() -> None:
            for resource, account in resources:
                self._tags.setdefault(resource, {}).update(pairs)
                self._owner[resource] = account
        tx.on_commit(applied)

    def delete(self, caller: Caller, resources: list[str], tags: list[dict[str, Any]] | None) -> None:
        for resource in resources:
            self._resolve(caller, resource)
        doomed: list[tuple[str, str]] = []
        for resource in dict.fromkeys(resources):  # a resource named twice is untagged once
            have = self.of(resource)
            for key in list(have):
                chosen = not tags or any(t.get("Key") == key and ("Value" not in t or t["Value"] == have[key])
                                         for t in tags)
                if chosen:
                    doomed.append((resource, key))
        self._forget(doomed)

    def drop_in(self, tx: Tx, resource: str) -> None:
        """Inside the transaction that ends ``resource``: its tags go with it."""
        self._untag(tx, [(resource, key) for key in self.of(resource)])

    def _forget(self, doomed: list[tuple[str, str]]) -> None:
        if not doomed:
            return
        with self._store.transaction() as tx:
            self._untag(tx, doomed)

    def _untag(self, tx: Tx, doomed: list[tuple[str, str]]) -> None:
        for resource, key in doomed:
            tx.untag(resource, key)

        def applied() -> None:
            for resource, key in doomed:
                tags = self._tags.get(resource)
                if tags is None:
                    continue
                tags.pop(key, None)
                if not tags:
                    del self._tags[resource]
                    self._owner.pop(resource, None)
        tx.on_commit(applied)

    def describe(self, caller: Caller, filters: list[dict[str, Any]] | None,
                 type_of: Callable[[str], str]) -> list[dict[str, str]]:
        """Every tag the caller sees; ``tag:KEY`` keeps the tags of resources that have KEY with one of
        the values given."""
        chosen = wanted(filters, ("key", "value", "resource-id", "resource-type"))
        out = []
        for resource, tags in self._tags.items():
            if not caller.sees(self._owner.get(resource, "")) or self.hidden(resource):
                continue
            kind = type_of(resource)
            for key, value in tags.items():
                fields = {"key": [key], "value": [value], "resource-id": [resource], "resource-type": [kind]}
                if matches(chosen, lambda name, f=fields, t=tags: f.get(name) or tag_fields(t, name)):  # type: ignore[misc]
                    out.append({"ResourceId": resource, "ResourceType": kind, "Key": key, "Value": value})
        return out
