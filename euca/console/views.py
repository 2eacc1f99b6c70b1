"""The console's pages: a user's dashboard and the actions on it, and the administrator's view.

Each action is the EC2 request the API would have got (``Console.calls``): the same parsing, the same
authorization, the same handler. What the caller may not see is not found, as the API answers it.
"""

from __future__ import annotations

import base64
import re
from typing import TYPE_CHECKING, Any

from starlette.responses import RedirectResponse, Response

from euca.console.charts import usage_plot, zone_bars
from euca.console.credentials import credentials_zip
from euca.core.errors import ApiError, InvalidParameterValue
from euca.services.accounts import MAX_KEYS, AccessKey
from euca.services.common import Caller

if TYPE_CHECKING:
    from euca.console.app import Console, Visit

PREFIX = "/console"
_FILENAME = re.compile(r"[^A-Za-z0-9._-]+")


def _call(console: Console, visit: Visit, action: str, **params: str) -> dict[str, Any]:
    return console.calls(visit.who, action, params, visit.source)


def _maybe(console: Console, visit: Visit, action: str, key: str, **params: str) -> list[dict[str, Any]] | None:
    """A describe's list, or None where this cloud has no such action yet or the caller may not use it."""
    if not console.calls.has(action):
        return None
    try:
        found: list[dict[str, Any]] = _call(console, visit, action, **params).get(key) or []
    except ApiError:
        return None
    return found


def _instances(console: Console, visit: Visit) -> list[dict[str, Any]]:
    result = _call(console, visit, "DescribeInstances")
    rows = [i for r in result.get("Reservations") or [] for i in r.get("Instances") or []]
    return sorted(rows, key=lambda i: (-float(i.get("LaunchTime") or 0), i["InstanceId"]))


def _images(console: Console, visit: Visit) -> list[dict[str, Any]]:
    images: list[dict[str, Any]] = _call(console, visit, "DescribeImages").get("Images") or []
    return sorted(images, key=lambda i: (i.get("ImageType") != "machine", i["ImageId"]))


def _buckets(console: Console, visit: Visit) -> list[Any] | None:
    if console.walrus is None:
        return None
    if not console.calls.allowed(visit.who, "s3:ListAllMyBuckets", "*", visit.source):
        return None
    return console.walrus.catalog.buckets(None if visit.who.admin else visit.who.account_id)


# --- the dashboard -------------------------------------------------------------------------------------

async def home(console: Console, visit: Visit) -> Response:
    target = "/dashboard" if visit.caller is not None else "/signin"
    return console.finish(visit, RedirectResponse(PREFIX + target, 303))


async def dashboard(console: Console, visit: Visit) -> Response:
    instances = _instances(console, visit)
    groups = _call(console, visit, "DescribeSecurityGroups").get("SecurityGroups") or []
    return console.render(
        visit, "dashboard.html",
        instances=instances,
        busy=any(i["State"]["Name"] in ("pending", "shutting-down") for i in instances),
        images=_images(console, visit),
        keypairs=_call(console, visit, "DescribeKeyPairs").get("KeyPairs") or [],
        groups=sorted(groups, key=lambda g: g["GroupName"]),
        addresses=_call(console, visit, "DescribeAddresses").get("Addresses") or [],
        live=[i for i in instances if i["State"]["Name"] in ("pending", "running")],
        volumes=_maybe(console, visit, "DescribeVolumes", "Volumes") if hasattr(console.cloud, "volumes") else None,
        snapshots=_maybe(console, visit, "DescribeSnapshots", "Snapshots")
        if hasattr(console.cloud, "snapshots") or hasattr(console.cloud, "volumes") else None,
        buckets=_buckets(console, visit),
        keys=console.cloud.accounts.user_keys(visit.who.account, visit.who.user),
    )


# --- instances -----------------------------------------------------------------------------------------

async def launch_page(console: Console, visit: Visit) -> Response:
    images = [i for i in _images(console, visit) if i.get("ImageType", "machine") == "machine"]
    return console.render(
        visit, "launch.html", images=images, chosen=visit.request.query_params.get("image", ""),
        types=list(console.cloud.cc.vmtypes),
        keypairs=_call(console, visit, "DescribeKeyPairs").get("KeyPairs") or [],
        groups=_call(console, visit, "DescribeSecurityGroups").get("SecurityGroups") or [])


async def launch(console: Console, visit: Visit) -> Response:
    count = visit.field("count", "1") or "1"
    if not count.isdigit() or not 1 <= int(count) <= 20:
        raise InvalidParameterValue("Launch 1 to 20 instances at a time")
    params = {"ImageId": visit.field("image"), "InstanceType": visit.field("type") or "m1.small",
              "MinCount": count, "MaxCount": count}
    if visit.field("key"):
        params["KeyName"] = visit.field("key")
    if visit.field("group"):
        params["SecurityGroup.1"] = visit.field("group")
    result = _call(console, visit, "RunInstances", **params)
    ids = ", ".join(i["InstanceId"] for i in result.get("Instances") or [])
    return console.back(visit, "ok", f"Launched {ids}.", PREFIX + "/dashboard")


async def terminate(console: Console, visit: Visit) -> Response:
    instance_id = visit.request.path_params["instance_id"]
    _call(console, visit, "TerminateInstances", **{"InstanceId.1": instance_id})
    return console.back(visit, "ok", f"Terminating {instance_id}.")


async def reboot(console: Console, visit: Visit) -> Response:
    instance_id = visit.request.path_params["instance_id"]
    _call(console, visit, "RebootInstances", **{"InstanceId.1": instance_id})
    return console.back(visit, "ok", f"Rebooting {instance_id}.")


async def console_output(console: Console, visit: Visit) -> Response:
    instance_id = visit.request.path_params["instance_id"]
    result = _call(console, visit, "GetConsoleOutput", InstanceId=instance_id)
    text = base64.b64decode(result.get("Output") or "").decode("utf-8", "replace")
    return console.render(visit, "output.html", instance_id=instance_id, output=text, when=result.get("Timestamp"))


# --- key pairs -----------------------------------------------------------------------------------------

async def create_keypair(console: Console, visit: Visit) -> Response:
    """The private key goes to the browser once, as a file, and is kept nowhere."""
    name = visit.field("name")
    result = _call(console, visit, "CreateKeyPair", KeyName=name)
    filename = (_FILENAME.sub("_", name) or "key") + ".pem"
    response = Response(result["KeyMaterial"], media_type="application/x-pem-file",
                        headers={"content-disposition": f'attachment; filename="{filename}"'})
    return console.finish(visit, response)


async def delete_keypair(console: Console, visit: Visit) -> Response:
    name = visit.request.path_params["name"]
    _call(console, visit, "DeleteKeyPair", KeyName=name)
    return console.back(visit, "ok", f"Deleted key pair {name}.")


# --- security groups -----------------------------------------------------------------------------------

async def create_group(console: Console, visit: Visit) -> Response:
    name = visit.field("name")
    result = _call(console, visit, "CreateSecurityGroup", GroupName=name,
                   Description=visit.field("description") or name)
    return console.back(visit, "ok", f"Created security group {name}.", f"{PREFIX}/groups/{result['GroupId']}")


async def group_page(console: Console, visit: Visit) -> Response:
    group_id = visit.request.path_params["group_id"]
    group = _call(console, visit, "DescribeSecurityGroups", **{"GroupId.1": group_id})["SecurityGroups"][0]
    rules = _call(console, visit, "DescribeSecurityGroupRules", **{
        "Filter.1.Name": "group-id", "Filter.1.Value.1": group_id}).get("SecurityGroupRules") or []
    return console.render(visit, "group.html", group=group,
                          rules=sorted(rules, key=lambda r: (r["IsEgress"], r["IpProtocol"], r.get("FromPort") or 0)))


async def delete_group(console: Console, visit: Visit) -> Response:
    group_id = visit.request.path_params["group_id"]
    _call(console, visit, "DeleteSecurityGroup", GroupId=group_id)
    return console.back(visit, "ok", f"Deleted security group {group_id}.", PREFIX + "/dashboard")


async def add_rule(console: Console, visit: Visit) -> Response:
    group_id = visit.request.path_params["group_id"]
    protocol = visit.field("protocol") or "tcp"
    params = {"GroupId": group_id, "IpPermissions.1.IpProtocol": protocol}
    if protocol != "-1":
        params["IpPermissions.1.FromPort"] = visit.field("from")
        params["IpPermissions.1.ToPort"] = visit.field("to") or visit.field("from")
    source = visit.field("source") or "0.0.0.0/0"
    if source.startswith("sg-"):
        params["IpPermissions.1.Groups.1.GroupId"] = source
    else:
        params["IpPermissions.1.IpRanges.1.CidrIp"] = source
    _call(console, visit, "AuthorizeSecurityGroupIngress", **params)
    return console.back(visit, "ok", "Rule added.", f"{PREFIX}/groups/{group_id}")


async def remove_rule(console: Console, visit: Visit) -> Response:
    group_id, rule_id = visit.request.path_params["group_id"], visit.request.path_params["rule_id"]
    action = "RevokeSecurityGroupEgress" if visit.field("egress") == "1" else "RevokeSecurityGroupIngress"
    _call(console, visit, action, GroupId=group_id, **{"SecurityGroupRuleId.1": rule_id})
    return console.back(visit, "ok", f"Rule {rule_id} removed.", f"{PREFIX}/groups/{group_id}")


# --- addresses -----------------------------------------------------------------------------------------

async def allocate_address(console: Console, visit: Visit) -> Response:
    result = _call(console, visit, "AllocateAddress")
    return console.back(visit, "ok", f"Allocated {result.get('PublicIp')}.")


async def associate_address(console: Console, visit: Visit) -> Response:
    ip = visit.request.path_params["ip"]
    _call(console, visit, "AssociateAddress", PublicIp=ip, InstanceId=visit.field("instance"))
    return console.back(visit, "ok", f"Associated {ip} with {visit.field('instance')}.")


async def disassociate_address(console: Console, visit: Visit) -> Response:
    ip = visit.request.path_params["ip"]
    _call(console, visit, "DisassociateAddress", PublicIp=ip)
    return console.back(visit, "ok", f"Disassociated {ip}.")


async def release_address(console: Console, visit: Visit) -> Response:
    ip = visit.request.path_params["ip"]
    _call(console, visit, "ReleaseAddress", PublicIp=ip)
    return console.back(visit, "ok", f"Released {ip}.")


# --- credentials ---------------------------------------------------------------------------------------

def _access_key(console: Console, visit: Visit) -> AccessKey:
    """The user's first active access key; a new one if the user has none (IAM's CreateAccessKey, with
    IAM's authorization and its two-key limit)."""
    who: Caller = visit.who
    accounts = console.cloud.accounts
    keys = accounts.user_keys(who.account, who.user)
    for key in keys:
        if key.active:
            return key
    if len(keys) >= MAX_KEYS:
        raise InvalidParameterValue(f"You have {MAX_KEYS} access keys and none is active: activate or delete one "
                                    "(IAM's UpdateAccessKey or DeleteAccessKey) first")
    user = accounts.user(who.account, who.user)
    console.calls.require(who, "iam:CreateAccessKey", user.arn(who.account_id), visit.source)
    return accounts.create_user_key(who.account, who.user)


async def credentials(console: Console, visit: Visit) -> Response:
    who = visit.who
    key = _access_key(console, visit)
    url = console.cloud.zones.endpoint or str(visit.request.base_url).rstrip("/")
    data = credentials_zip(console.data_dir, url, console.cloud.zones.region, who.account, who.account_id, who.user,
                           key)
    filename = _FILENAME.sub("_", f"euca2-{who.account}-{who.user}-x509.zip")
    response = Response(data, media_type="application/zip",
                        headers={"content-disposition": f'attachment; filename="{filename}"'})
    return console.finish(visit, response)


# --- the administrator ---------------------------------------------------------------------------------

async def admin(console: Console, visit: Visit) -> Response:
    cloud = console.cloud
    cc = cloud.cc
    placement = cc.placement
    nodes = []
    for node in cc.nodes:
        free, most = placement.free(node.index), placement.max(node.index)
        nodes.append({"name": node.name, "state": cc.nodes.state(node.name), "enabled": node.enabled,
                      "free": free, "max": most, "instances": placement.instances(node.index),
                      "last_seen": node.last_seen})
    zones = [(cc.name, zone_bars(cc.name, [(a.name, a.free, a.max) for a in cc.availability()]))]
    if not console.usage.samples:
        console.usage.sample()
    accounts = [{"account": a, "users": [{"user": u, "keys": len(cloud.accounts.user_keys(a.name, u.name))}
                                         for u in cloud.accounts.users(a.name)]}
                for a in cloud.accounts.all()]
    return console.render(visit, "admin.html", signups=console.signups.pending(), accounts=accounts, nodes=nodes,
                          zones=zones, vmtypes=list(cc.vmtypes), usage=usage_plot(list(console.usage.samples)),
                          now=console.usage.now())


async def approve(console: Console, visit: Visit) -> Response:
    account = console.signups.approve(visit.request.path_params["request_id"])
    return console.back(visit, "ok", f"Approved: account {account} created.", PREFIX + "/admin")


async def reject(console: Console, visit: Visit) -> Response:
    account = console.signups.reject(visit.request.path_params["request_id"])
    return console.back(visit, "ok", f"Rejected the request for account {account}.", PREFIX + "/admin")
