"""Tags on instances, images and security groups: key/value pairs the owner sets and filters on."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from euca.core.errors import InvalidIDMalformed, InvalidParameterValue, TagLimitExceeded
from euca.services.common import Caller, matches, wanted
from euca.store import Store

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
        raise InvalidIDMalformed(f"The ID '{resource[:64]}' is not valid")

    def create(self, caller: Caller, resources: list[str], tags: list[dict[str, Any]]) -> None:
        owners = [self._resolve(caller, r) for r in resources]
        pairs: list[tuple[str, str]] = []
        for tag in tags:
            key, value = tag.get("Key"), tag.get("Value", "")
            if not key or len(key) > 128 or len(value) > 256 or key.startswith("aws:"):
                raise InvalidParameterValue("tag keys are 1-128 characters not starting with aws:, values up to 256")
            pairs.append((key, value))
        for resource in resources:
            merged = dict(self.of(resource)) | dict(pairs)
            if len(merged) > MAX_TAGS:
                raise TagLimitExceeded(f"{resource} would have more than {MAX_TAGS} tags")
        with self._store.transaction() as tx:
            for resource, (account, _) in zip(resources, owners, strict=True):
                for key, value in pairs:
                    tx.tag(resource, key, value, account)
        for resource, (account, _) in zip(resources, owners, strict=True):
            self._tags.setdefault(resource, {}).update(pairs)
            self._owner[resource] = account

    def delete(self, caller: Caller, resources: list[str], tags: list[dict[str, Any]] | None) -> None:
        for resource in resources:
            self._resolve(caller, resource)
        doomed: list[tuple[str, str]] = []
        for resource in resources:
            have = self.of(resource)
            for key in list(have):
                chosen = not tags or any(t.get("Key") == key and ("Value" not in t or t["Value"] == have[key])
                                         for t in tags)
                if chosen:
                    doomed.append((resource, key))
        self._forget(doomed)

    def drop(self, resource: str) -> None:
        """The resource is gone: its tags go with it."""
        self._forget([(resource, key) for key in self.of(resource)])

    def _forget(self, doomed: list[tuple[str, str]]) -> None:
        if not doomed:
            return
        with self._store.transaction() as tx:
            for resource, key in doomed:
                tx.untag(resource, key)
        for resource, key in doomed:
            self._tags[resource].pop(key, None)
            if not self._tags[resource]:
                del self._tags[resource]
                self._owner.pop(resource, None)

    def describe(self, caller: Caller, filters: list[dict[str, Any]] | None,
                 type_of: Callable[[str], str]) -> list[dict[str, str]]:
        chosen = wanted(filters, ("key", "value", "resource-id", "resource-type"))
        out = []
        for resource, tags in self._tags.items():
            if not caller.sees(self._owner.get(resource, "")):
                continue
            kind = type_of(resource)
            for key, value in tags.items():
                fields = {"key": [key], "value": [value], "resource-id": [resource], "resource-type": [kind]}
                if matches(chosen, lambda name, f=fields: f.get(name, [])):  # type: ignore[misc]
                    out.append({"ResourceId": resource, "ResourceType": kind, "Key": key, "Value": value})
        return out
