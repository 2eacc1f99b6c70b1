"""One account never sees nor touches another's resources, over the real EC2 API.

Alice (an ordinary account) holds one of everything: a key pair, security groups with a CIDR rule
and a rule whose source is another group, tagged instances run with her key and group, an elastic
address on one of them, and a private machine image. Bob (another ordinary account) then tries
every action on them, by id and by name. Each attempt fails with the error EC2 gives for a
resource that does not exist, word for word the answer for an id never issued, or shows nothing;
nothing Bob hears, error messages included, names anything of Alice's that his request did not;
and Alice's own Describe* answers are the same bytes afterwards.
"""

from __future__ import annotations

import re
import secrets
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import botocore.exceptions
import pytest

from tests.ec2_server import Box, running_box

Params = dict[str, Any]

INSTANCE_NOT_FOUND = ("InvalidInstanceID.NotFound",)
GROUP_NOT_FOUND = ("InvalidGroup.NotFound",)
KEY_NOT_FOUND = ("InvalidKeyPair.NotFound",)
ADDRESS_NOT_FOUND = ("InvalidAddress.NotFound",)
IMAGE_NOT_FOUND = ("InvalidAMIID.NotFound",)
# CreateTags/DeleteTags on a resource that is not there: EC2 names the resource's own NotFound, or InvalidID
NOT_TAGGABLE = {"i": ("InvalidInstanceID.NotFound", "InvalidID"), "sg": ("InvalidGroup.NotFound", "InvalidID"),
                "emi": ("InvalidAMIID.NotFound", "InvalidID")}
MISSING_IP = "192.0.2.77"  # TEST-NET-1: never in the public pool


def names(text: str, value: str) -> bool:
    """Does ``text`` hold ``value`` whole (an address, not the start of a longer one)?"""
    return re.search(rf"(?<![\w.-]){re.escape(value)}(?![\w.-])", text) is not None


class Heard:
    """A client whose every raw answer (the XML, error messages included) is kept as it arrived."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self.last = ""
        client.meta.events.register("after-call.ec2", self._heard)

    def _heard(self, http_response: Any, **_: Any) -> None:
        self.last = http_response.content.decode()


class Outsider(Heard):
    """Bob: checks that nothing he is told names what Alice has, beyond what he named himself."""

    def __init__(self, client: Any, alices: dict[str, str], issued: Callable[[str], bool]) -> None:
        super().__init__(client)
        self.alices = alices  # every identifier and name of Alice's -> what it is
        self.issued = issued

    def no_leak(self, text: str, asked: Params) -> None:
        named = repr(asked)
        leaked = {what: value for value, what in self.alices.items() if names(text, value) and not names(named, value)}
        assert not leaked, f"Bob was told Alice's {leaked} in {text}"

    def shown(self, action: str, **params: Any) -> Any:
        out = getattr(self.client, action)(**params)
        self.no_leak(self.last, params)
        return out

    def refused(self, codes: tuple[str, ...], action: str, **params: Any) -> tuple[str, str]:
        with pytest.raises(botocore.exceptions.ClientError) as exc:
            getattr(self.client, action)(**params)
        error = exc.value.response["Error"]
        assert error["Code"] in codes, f"{action}{params}: {error}"
        self.no_leak(self.last, params)
        return str(error["Code"]), str(error["Message"])

    def fresh(self, prefix: str) -> str:
        """An identifier the cloud never issued."""
        while True:
            candidate = f"{prefix}-{secrets.randbits(32):08X}"
            if not self.issued(candidate):
                return candidate

    def as_if_missing(self, codes: tuple[str, ...], action: str, alices: str, missing: str,
                      params: Callable[[str], Params]) -> None:
        """Naming Alice's resource gets the very answer that naming one never issued gets."""
        code, message = self.refused(codes, action, **params(alices))
        code_missing, message_missing = self.refused(codes, action, **params(missing))
        assert (code, message.replace(alices, "<id>")) == (code_missing, message_missing.replace(missing, "<id>"))


@dataclass
class World:
    box: Box
    alice: Heard
    bob: Outsider
    emi: str  # a public image of the administrator's
    alice_id: str  # her account id
    instances: list[str]
    reservation: str
    groups: dict[str, str]  # name -> id
    image: str
    address: str
    key: str
    bob_instance: str
    bob_address: str
    snapshot: dict[str, str] = field(default_factory=dict)

    def alices_answers(self) -> dict[str, str]:
        """Alice's own view of everything she has, as the bytes the server sent (less the request id)."""
        a = self.alice.client
        calls: dict[str, Callable[[], Any]] = {
            "instances": a.describe_instances, "groups": a.describe_security_groups,
            "keys": a.describe_key_pairs, "addresses": a.describe_addresses,
            "images": lambda: a.describe_images(Owners=["self"]), "tags": a.describe_tags,
            "launch": lambda: a.describe_image_attribute(ImageId=self.image, Attribute="launchPermission"),
            "description": lambda: a.describe_image_attribute(ImageId=self.image, Attribute="description"),
        }
        out = {}
        for what, call in calls.items():
            call()
            out[what] = re.sub(r"<requestId>[^<]*</requestId>", "", self.alice.last)
        return out

    def alice_unchanged(self) -> None:
        assert self.alices_answers() == self.snapshot


def wait_running(client: Any, ids: list[str], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        found = client.describe_instances(InstanceIds=ids)["Reservations"]
        states = {i["InstanceId"]: i["State"]["Name"] for r in found for i in r["Instances"]}
        if set(states.values()) == {"running"}:
            return
        assert time.monotonic() < deadline, f"not all running: {states}"
        time.sleep(0.05)


def account_id(box: Box, name: str) -> str:
    account = box.cloud.accounts.get(name)
    assert account is not None
    return account.account_id


def account_id_of(who: Heard) -> str:
    return str(who.client.describe_security_groups(GroupNames=["default"])["SecurityGroups"][0]["OwnerId"])


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    with running_box(tmp_path_factory.mktemp("box")) as box:
        emi = box.image()
        a = box.client("alice")
        fingerprint = a.create_key_pair(KeyName="a-key")["KeyFingerprint"]
        web = a.create_security_group(GroupName="a-web", Description="alice's web servers")["GroupId"]
        db = a.create_security_group(GroupName="a-db", Description="alice's databases")["GroupId"]
        a.authorize_security_group_ingress(GroupName="a-web", IpProtocol="tcp", FromPort=80, ToPort=80,
                                           CidrIp="0.0.0.0/0")
        a.authorize_security_group_ingress(GroupId=db, IpPermissions=[
            {"IpProtocol": "tcp", "FromPort": 5432, "ToPort": 5432, "UserIdGroupPairs": [{"GroupName": "a-web"}]}])
        image = box.registered(a, box.upload_bundle("alice", "alice-bucket/a-app.manifest.xml"), "a-app",
                               Description="alice's private app")
        run = a.run_instances(ImageId=image, MinCount=2, MaxCount=2, KeyName="a-key", SecurityGroups=["a-web"],
                              ClientToken="a-token", TagSpecifications=[
                                  {"ResourceType": "instance", "Tags": [{"Key": "a-role", "Value": "a-frontend"}]}])
        instances = [i["InstanceId"] for i in run["Instances"]]
        a.create_tags(Resources=[web, db, image], Tags=[{"Key": "a-team", "Value": "a-payments"}])
        address = a.allocate_address()["PublicIp"]
        a.associate_address(PublicIp=address, InstanceId=instances[0])
        wait_running(a, instances)
        described = [i for r in a.describe_instances()["Reservations"] for i in r["Instances"]]
        default = a.describe_security_groups(GroupNames=["default"])["SecurityGroups"][0]["GroupId"]

        alice_id = account_id(box, "alice")
        alices = {alice_id: "account id", "alice": "account name", "a-key": "key name", fingerprint: "fingerprint",
                  web: "group id", db: "group id", default: "default group id", "a-web": "group name",
                  "a-db": "group name", image: "image id", "a-app": "image name",
                  "alice-bucket/a-app.manifest.xml": "image location", run["ReservationId"]: "reservation id",
                  "a-token": "client token", address: "elastic address", "a-role": "tag key",
                  "a-frontend": "tag value", "a-team": "tag key", "a-payments": "tag value"}
        for i in described:
            alices[i["InstanceId"]] = "instance id"
            alices[i["PrivateIpAddress"]] = "private address"
            if i.get("PublicIpAddress"):
                alices[i["PublicIpAddress"]] = "public address"

        b = box.client("bob")
        bob = Outsider(b, alices, box.cloud.store.is_issued)
        bob_instance = b.run_instances(ImageId=emi, MinCount=1, MaxCount=1)["Instances"][0]["InstanceId"]
        bob_address = b.allocate_address()["PublicIp"]
        b.create_security_group(GroupName="b-web", Description="bob's web servers")
        wait_running(b, [bob_instance])

        w = World(box, Heard(a), bob, emi, alice_id, instances, run["ReservationId"],
                  {"a-web": web, "a-db": db, "default": default}, image, address, "a-key", bob_instance, bob_address)
        w.snapshot = w.alices_answers()
        assert all(names(w.snapshot["instances"], i) for i in instances) and address in w.snapshot["addresses"]
        yield w
        a.close()
        b.close()


# --- instances ------------------------------------------------------------------------------------

def test_another_accounts_instances_are_not_there(world: World) -> None:
    bob, theirs = world.bob, world.instances[0]
    missing = bob.fresh("i")
    for action, params in [
        ("describe_instances", lambda x: {"InstanceIds": [x]}),
        ("terminate_instances", lambda x: {"InstanceIds": [x]}),
        ("reboot_instances", lambda x: {"InstanceIds": [x]}),
        ("get_console_output", lambda x: {"InstanceId": x}),
        ("associate_address", lambda x: {"PublicIp": world.bob_address, "InstanceId": x}),
    ]:
        bob.as_if_missing(INSTANCE_NOT_FOUND, action, theirs, missing, params)
    # one of his own beside one of hers: refused as a whole, his own untouched
    for action in ("terminate_instances", "reboot_instances"):
        bob.refused(INSTANCE_NOT_FOUND, action, InstanceIds=[world.bob_instance, theirs])
    wait_running(bob.client, [world.bob_instance])
    assert bob.shown("describe_addresses", PublicIps=[world.bob_address])["Addresses"][0].get("InstanceId") is None

    addresses = [v for v, what in bob.alices.items() if what.endswith("address")]
    for name, values in [("instance-id", world.instances), ("reservation-id", [world.reservation]),
                         ("private-ip-address", addresses), ("ip-address", addresses),
                         ("key-name", [world.key]), ("group-name", ["a-web"]), ("tag:a-role", ["*"]),
                         ("owner-id", [world.alice_id]), ("client-token", ["a-token"])]:
        assert bob.shown("describe_instances", Filters=[{"Name": name, "Values": values}])["Reservations"] == []
    world.alice_unchanged()


# --- security groups ------------------------------------------------------------------------------

def test_another_accounts_security_groups_are_not_there(world: World) -> None:
    bob, web = world.bob, world.groups["a-web"]
    missing = bob.fresh("sg")
    rule: Params = {"IpProtocol": "tcp", "FromPort": 80, "ToPort": 80, "CidrIp": "0.0.0.0/0"}  # one she has
    new_rule: Params = {"IpProtocol": "tcp", "FromPort": 443, "ToPort": 443, "CidrIp": "0.0.0.0/0"}
    for action, params in [
        ("describe_security_groups", lambda x: {"GroupIds": [x]}),
        ("delete_security_group", lambda x: {"GroupId": x}),
        ("authorize_security_group_ingress", lambda x: {"GroupId": x, **new_rule}),
        ("authorize_security_group_ingress", lambda x: {"GroupId": x, "IpPermissions": [
            {"IpProtocol": "tcp", "FromPort": 22, "ToPort": 22, "IpRanges": [{"CidrIp": "10.0.0.0/8"}]}]}),
        ("revoke_security_group_ingress", lambda x: {"GroupId": x, **rule}),
        ("run_instances", lambda x: {"ImageId": world.emi, "MinCount": 1, "MaxCount": 1, "SecurityGroupIds": [x]}),
    ]:
        bob.as_if_missing(GROUP_NOT_FOUND, action, web, missing, params)
    for name in ("a-web", "a-db"):
        for action, params in [
            ("describe_security_groups", lambda x: {"GroupNames": [x]}),
            ("delete_security_group", lambda x: {"GroupName": x}),
            ("authorize_security_group_ingress", lambda x: {"GroupName": x, **new_rule}),
            ("revoke_security_group_ingress", lambda x: {"GroupName": x, **rule}),
            ("run_instances", lambda x: {"ImageId": world.emi, "MinCount": 1, "MaxCount": 1,
                                         "SecurityGroups": [x]}),
        ]:
            bob.as_if_missing(GROUP_NOT_FOUND, action, name, "no-such-group", params)
    # her default group by id (by name, "default" is his own)
    bob.refused(GROUP_NOT_FOUND, "describe_security_groups", GroupIds=[world.groups["default"]])
    bob.refused(GROUP_NOT_FOUND, "delete_security_group", GroupId=world.groups["default"])

    for name, values in [("group-id", list(world.groups.values())), ("group-name", ["a-web", "a-db"]),
                         ("owner-id", [world.alice_id]), ("tag:a-team", ["*"]),
                         ("ip-permission.group-name", ["a-web"])]:
        assert bob.shown("describe_security_groups", Filters=[{"Name": name, "Values": values}])[
            "SecurityGroups"] == []
    world.alice_unchanged()


# --- key pairs ------------------------------------------------------------------------------------

def test_another_accounts_key_pair_is_not_there(world: World) -> None:
    bob = world.bob
    bob.as_if_missing(KEY_NOT_FOUND, "describe_key_pairs", world.key, "no-such-key", lambda x: {"KeyNames": [x]})
    bob.as_if_missing(KEY_NOT_FOUND, "run_instances", world.key, "no-such-key",
                      lambda x: {"ImageId": world.emi, "MinCount": 1, "MaxCount": 1, "KeyName": x})
    fingerprint = next(k for k, v in bob.alices.items() if v == "fingerprint")
    for name, value in [("key-name", world.key), ("fingerprint", fingerprint)]:
        assert bob.shown("describe_key_pairs", Filters=[{"Name": name, "Values": [value]}])["KeyPairs"] == []
    # EC2 answers success for a key name that is not there; hers stays
    assert bob.shown("delete_key_pair", KeyName=world.key)["Return"] is True
    assert [k["KeyName"] for k in world.alice.client.describe_key_pairs()["KeyPairs"]] == [world.key]
    world.alice_unchanged()


# --- addresses ------------------------------------------------------------------------------------

def test_another_accounts_address_is_not_there(world: World) -> None:
    bob, theirs = world.bob, world.address
    for action, params in [
        ("describe_addresses", lambda x: {"PublicIps": [x]}),
        ("associate_address", lambda x: {"PublicIp": x, "InstanceId": world.bob_instance}),
        ("disassociate_address", lambda x: {"PublicIp": x}),
        ("release_address", lambda x: {"PublicIp": x}),
    ]:
        bob.as_if_missing(ADDRESS_NOT_FOUND, action, theirs, MISSING_IP, params)
    addresses = [v for v, what in bob.alices.items() if what.endswith("address")]
    for name, values in [("public-ip", [theirs]), ("instance-id", world.instances),
                         ("private-ip-address", addresses)]:
        assert bob.shown("describe_addresses", Filters=[{"Name": name, "Values": values}])["Addresses"] == []
    world.alice_unchanged()


# --- images ---------------------------------------------------------------------------------------

def test_another_accounts_private_image_is_not_there(world: World) -> None:
    bob, theirs = world.bob, world.image
    missing = bob.fresh("emi")
    bob_id = account_id(world.box, "bob")
    for action, params in [
        ("describe_images", lambda x: {"ImageIds": [x]}),
        ("describe_image_attribute", lambda x: {"ImageId": x, "Attribute": "launchPermission"}),
        ("describe_image_attribute", lambda x: {"ImageId": x, "Attribute": "description"}),
        ("describe_image_attribute", lambda x: {"ImageId": x, "Attribute": "kernel"}),
        ("modify_image_attribute", lambda x: {"ImageId": x, "LaunchPermission": {"Add": [{"UserId": bob_id}]}}),
        ("modify_image_attribute", lambda x: {"ImageId": x, "LaunchPermission": {"Add": [{"Group": "all"}]}}),
        ("modify_image_attribute", lambda x: {"ImageId": x, "Description": {"Value": "bob's now"}}),
        ("reset_image_attribute", lambda x: {"ImageId": x, "Attribute": "launchPermission"}),
        ("deregister_image", lambda x: {"ImageId": x}),
        ("run_instances", lambda x: {"ImageId": x, "MinCount": 1, "MaxCount": 1}),
    ]:
        bob.as_if_missing(IMAGE_NOT_FOUND, action, theirs, missing, params)
    searches: list[Params] = [
        {"Owners": [world.alice_id]}, {"Owners": ["alice"]}, {"ExecutableUsers": [world.alice_id]},
        {"Filters": [{"Name": "image-id", "Values": [theirs]}]}, {"Filters": [{"Name": "name", "Values": ["a-app"]}]},
        {"Filters": [{"Name": "tag:a-team", "Values": ["*"]}]}]
    for kw in searches:
        assert bob.shown("describe_images", **kw)["Images"] == []
    world.alice_unchanged()


# --- tags -----------------------------------------------------------------------------------------

def test_describe_tags_shows_none_of_another_accounts_tags(world: World) -> None:
    bob = world.bob
    assert world.alice.client.describe_tags()["Tags"]  # she has some
    ids = [*world.instances, world.groups["a-web"], world.groups["a-db"], world.image]
    for filters in [None, [{"Name": "resource-id", "Values": ids}], [{"Name": "key", "Values": ["a-role", "a-team"]}],
                    [{"Name": "value", "Values": ["a-*"]}],
                    [{"Name": "resource-type", "Values": ["instance", "security-group", "image"]}]]:
        assert bob.shown("describe_tags", **({"Filters": filters} if filters else {}))["Tags"] == []
    for resource in ids:
        one = [{"Name": "resource-id", "Values": [resource]}]
        assert bob.shown("describe_tags", Filters=one)["Tags"] == []
    world.alice_unchanged()


def test_another_accounts_resources_cannot_be_tagged_or_untagged(world: World) -> None:
    bob = world.bob
    for theirs in [*world.instances, world.groups["a-web"], world.image]:
        prefix = theirs.split("-", 1)[0]
        missing = bob.fresh(prefix)
        codes = NOT_TAGGABLE[prefix]
        for action, params in [
            ("create_tags", lambda x: {"Resources": [x], "Tags": [{"Key": "b-owned", "Value": "yes"}]}),
            ("create_tags", lambda x: {"Resources": [x], "Tags": [{"Key": "a-team", "Value": "bob"}]}),
            ("delete_tags", lambda x: {"Resources": [x]}),
            ("delete_tags", lambda x: {"Resources": [x], "Tags": [{"Key": "a-team"}]}),
            ("delete_tags", lambda x: {"Resources": [x], "Tags": [{"Key": "a-role", "Value": "a-frontend"}]}),
        ]:
            bob.as_if_missing(codes, action, theirs, missing, params)
    # his own beside hers: refused as a whole, nothing tagged
    bob.refused(NOT_TAGGABLE["i"], "create_tags", Resources=[world.bob_instance, world.instances[0]],
                Tags=[{"Key": "b-owned", "Value": "yes"}])
    assert bob.shown("describe_tags")["Tags"] == []
    world.alice_unchanged()


# --- listings -------------------------------------------------------------------------------------

def test_listings_show_nothing_of_another_account(world: World) -> None:
    bob = world.bob
    reservations = bob.shown("describe_instances")["Reservations"]
    assert [i["InstanceId"] for r in reservations for i in r["Instances"]] == [world.bob_instance]
    assert {g["GroupName"] for g in bob.shown("describe_security_groups")["SecurityGroups"]} == {"default", "b-web"}
    assert bob.shown("describe_key_pairs")["KeyPairs"] == []
    assert [a["PublicIp"] for a in bob.shown("describe_addresses")["Addresses"]] == [world.bob_address]
    images = bob.shown("describe_images")["Images"]
    assert world.image not in {i["ImageId"] for i in images} and {i["Public"] for i in images} == {True}
    assert bob.shown("describe_images", Owners=[world.alice_id])["Images"] == []
    assert bob.shown("describe_tags")["Tags"] == []
    world.alice_unchanged()


# --- names and client tokens are per account -----------------------------------------------------

def test_names_and_client_tokens_are_per_account(world: World) -> None:
    """Bob may use the names Alice uses: his own key, group and image, which never touch hers.
    (After the listings: his instance here stays listed, terminated, with her key's name.)"""
    b, bob = world.bob.client, world.bob
    b.create_key_pair(KeyName="a-key")
    b.create_security_group(GroupName="a-web", Description="bob's own")
    b.authorize_security_group_ingress(GroupName="a-web", IpProtocol="tcp", FromPort=80, ToPort=80,
                                       CidrIp="0.0.0.0/0")
    own_image = b.register_image(ImageLocation=world.box.upload_bundle("bob", "bob-bucket/a-app.manifest.xml"),
                                 Name="a-app")["ImageId"]
    run = b.run_instances(ImageId=world.emi, MinCount=1, MaxCount=1, KeyName="a-key", SecurityGroups=["a-web"],
                          ClientToken="a-token")
    mine = run["Instances"][0]
    assert run["ReservationId"] != world.reservation and mine["InstanceId"] not in world.instances
    assert run["OwnerId"] == account_id(world.box, "bob")
    assert [g["GroupId"] for g in mine["SecurityGroups"]] != [world.groups["a-web"]]
    b.terminate_instances(InstanceIds=[mine["InstanceId"]])
    b.revoke_security_group_ingress(GroupName="a-web", IpProtocol="tcp", FromPort=80, ToPort=80,
                                    CidrIp="0.0.0.0/0")
    b.deregister_image(ImageId=own_image)
    b.delete_key_pair(KeyName="a-key")
    deadline = time.monotonic() + 10
    while True:  # the group is in use until its instance has gone
        try:
            b.delete_security_group(GroupName="a-web")
            break
        except botocore.exceptions.ClientError as exc:
            assert exc.response["Error"]["Code"] == "InvalidGroup.InUse" and time.monotonic() < deadline
            time.sleep(0.1)
    bob.refused(KEY_NOT_FOUND, "describe_key_pairs", KeyNames=["a-key"])
    world.alice_unchanged()


# --- EC2-Classic: a group may admit another account's group -----------------------------------------

def test_a_group_may_admit_another_accounts_group_by_owner_and_name(world: World) -> None:
    b = world.bob.client
    b.authorize_security_group_ingress(GroupName="b-web", IpProtocol="tcp", FromPort=8080, ToPort=8080,
                                       SourceSecurityGroupOwnerId=world.alice_id, SourceSecurityGroupName="a-web")
    b.authorize_security_group_ingress(GroupName="b-web", IpPermissions=[
        {"IpProtocol": "udp", "FromPort": 53, "ToPort": 53,
         "UserIdGroupPairs": [{"UserId": world.alice_id, "GroupName": "a-db"}]}])
    group = b.describe_security_groups(GroupNames=["b-web"])["SecurityGroups"][0]
    pairs = {(p["IpProtocol"], p["FromPort"]): p["UserIdGroupPairs"] for p in group["IpPermissions"]}
    assert [(x["UserId"], x["GroupName"]) for x in pairs[("tcp", 8080)]] == [(world.alice_id, "a-web")]
    assert [(x["UserId"], x["GroupName"]) for x in pairs[("udp", 53)]] == [(world.alice_id, "a-db")]
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        b.authorize_security_group_ingress(GroupName="b-web", IpProtocol="tcp", FromPort=8080, ToPort=8080,
                                           SourceSecurityGroupOwnerId=world.alice_id, SourceSecurityGroupName="a-web")
    assert exc.value.response["Error"]["Code"] == "InvalidPermission.Duplicate"
    # a name she does not have is not found, exactly as one of his own would not be
    world.bob.refused(GROUP_NOT_FOUND, "authorize_security_group_ingress", GroupName="b-web", IpProtocol="tcp",
                      FromPort=1, ToPort=1, SourceSecurityGroupOwnerId=world.alice_id,
                      SourceSecurityGroupName="no-such-group")
    b.revoke_security_group_ingress(GroupName="b-web", IpProtocol="tcp", FromPort=8080, ToPort=8080,
                                    SourceSecurityGroupOwnerId=world.alice_id, SourceSecurityGroupName="a-web")
    b.revoke_security_group_ingress(GroupName="b-web", IpPermissions=[
        {"IpProtocol": "udp", "FromPort": 53, "ToPort": 53,
         "UserIdGroupPairs": [{"UserId": world.alice_id, "GroupName": "a-db"}]}])
    assert b.describe_security_groups(GroupNames=["b-web"])["SecurityGroups"][0]["IpPermissions"] == []
    world.alice_unchanged()


# --- known gaps: fresh accounts, so that Alice's world stays as it was ----------------------------

@pytest.fixture(scope="module")
def pair(world: World) -> tuple[Outsider, Heard, str]:
    """Carol (with a group) and Dave, an outsider to her; returns Dave, Carol and her group's id."""
    carol = Heard(world.box.client("carol"))
    group = carol.client.create_security_group(GroupName="c-web", Description="carol's")["GroupId"]
    carol_id = account_id(world.box, "carol")
    dave = Outsider(world.box.client("dave"), {group: "group id", "c-web": "group name", carol_id: "account id",
                                               "carol": "account name"}, world.box.cloud.store.is_issued)
    dave.client.create_security_group(GroupName="d-web", Description="dave's")
    return dave, carol, group


# Naming a source group by id: looked up in the caller's account unless the pair names its owner
# (EC2-Classic names another account's group by owner and name; see the test above).
@pytest.mark.parametrize("own_account", [False, True], ids=["id-alone", "id-with-callers-account"])
def test_another_accounts_group_cannot_be_a_source_by_id(pair: tuple[Outsider, Heard, str], own_account: bool) -> None:
    dave, _, carols = pair
    port = 22 if own_account else 23
    source = {"UserId": account_id_of(dave)} if own_account else {}
    dave.as_if_missing(GROUP_NOT_FOUND, "authorize_security_group_ingress", carols, dave.fresh("sg"),
                       lambda x: {"GroupName": "d-web", "IpPermissions": [
                           {"IpProtocol": "tcp", "FromPort": port, "ToPort": port,
                            "UserIdGroupPairs": [{"GroupId": x, **source}]}]})
    assert dave.shown("describe_security_groups", GroupNames=["d-web"])["SecurityGroups"][0]["IpPermissions"] == []


def test_a_group_in_use_by_another_account_is_not_named_to_its_owner(pair: tuple[Outsider, Heard, str]) -> None:
    dave, carol, _ = pair
    carol.client.authorize_security_group_ingress(GroupName="c-web", IpProtocol="tcp", FromPort=443, ToPort=443,
                                                  SourceSecurityGroupOwnerId=account_id_of(dave),
                                                  SourceSecurityGroupName="d-web")
    dave.refused(("InvalidGroup.InUse",), "delete_security_group", GroupName="d-web")
    carol.client.revoke_security_group_ingress(GroupName="c-web", IpProtocol="tcp", FromPort=443, ToPort=443,
                                               SourceSecurityGroupOwnerId=account_id_of(dave),
                                               SourceSecurityGroupName="d-web")
