"""The web console over plain HTTP against a real server: sign-up and approval, sign-in and its
lock-out, CSRF, other accounts' ids, the same authorization as the API, the credentials zip."""

from __future__ import annotations

import io
import json
import re
import time
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import boto3
import pytest
import requests

from euca.console.charts import Sample, usage_plot, zone_bars
from euca.console.lockout import Lockout
from euca.console.sessions import Session, Signer
from euca.iam import hash_password
from euca.services.common import ADMIN
from tests.ec2_server import Box, running_box

ADMIN_PASSWORD = "the admin's secret"
PASSWORD = "correct horse battery"


@contextmanager
def console_box(data_dir: Path) -> Iterator[Box]:
    """``running_box`` with the console served, as ``euca up`` serves it, and a password for the
    system administrator."""
    with running_box(data_dir) as b:
        b.cloud.accounts.set_login(ADMIN, ADMIN, hash_password(ADMIN_PASSWORD), reset=False, create=True)
        yield b


@pytest.fixture(scope="module")
def box(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Box]:
    with console_box(tmp_path_factory.mktemp("console")) as b:
        yield b


class Visitor:
    """A browser without a browser: a cookie jar and the CSRF token of the last page."""

    def __init__(self, box: Box) -> None:
        self.url = box.url + "/console"
        self.http = requests.Session()
        self.csrf = ""

    def get(self, path: str, status: int = 200) -> str:
        r = self.http.get(self.url + path, allow_redirects=True, timeout=10)
        assert r.status_code == status, (path, r.status_code, r.text[:500])
        found = re.search(r'name="csrf" value="([^"]+)"', r.text)
        if found:
            self.csrf = found.group(1)
        return r.text

    def post(self, path: str, form: dict[str, str] | None = None, status: int = 200, csrf: str | None = None,
             follow: bool = True) -> requests.Response:
        data = {"csrf": self.csrf if csrf is None else csrf, **(form or {})}
        r = self.http.post(self.url + path, data=data, allow_redirects=follow, timeout=10)
        assert r.status_code == status, (path, r.status_code, r.text[:500])
        found = re.search(r'name="csrf" value="([^"]+)"', r.text)
        if found:
            self.csrf = found.group(1)
        return r

    def sign_in(self, account: str, password: str, user: str = ADMIN, status: int = 200) -> str:
        self.get("/signin")
        return self.post("/signin", {"account": account, "user": user, "password": password}, status).text


def signed_up(box: Box, account: str) -> Visitor:
    """An account made the 1.x way: asked for on the sign-up page, approved by the administrator."""
    visitor = Visitor(box)
    visitor.get("/signup")
    text = visitor.post("/signup", {"name": "Ada Lovelace", "email": f"ada@{account}.example", "account": account,
                                    "password": PASSWORD, "password2": PASSWORD}).text
    assert "waits for the administrator" in text
    assert box.cloud.accounts.get(account) is None
    admin = Visitor(box)
    admin.sign_in("admin", ADMIN_PASSWORD)
    page = admin.get("/admin")
    request_id = re.search(rf'signups/([0-9a-f]+)/approve" class="inline">\s*<input type="hidden" name="csrf" '
                           rf'value="[^"]+">\s*<button type="submit" id="approve-{account}"', page)
    assert request_id, page
    assert "Approved" in admin.post(f"/admin/signups/{request_id.group(1)}/approve").text
    assert box.cloud.accounts.get(account) is not None
    return visitor


def launched(box: Box, visitor: Visitor) -> str:
    machine = next(i.image_id for i in box.cloud.images.all() if i.image_id.startswith("emi-"))
    visitor.get("/launch")
    text = visitor.post("/launch", {"image": machine, "type": "m1.small", "group": "default", "count": "1"}).text
    found = re.search(r"Launched (i-[0-9A-F]{8})", text)
    assert found, text[:2000]
    return found.group(1)


def test_sign_up_approve_sign_in_launch_and_terminate(box: Box) -> None:
    visitor = signed_up(box, "acme")
    account = box.cloud.accounts.get("acme")
    assert account is not None
    text = visitor.sign_in(account.account_id, PASSWORD)
    assert "Dashboard" in text and "admin @ acme" in text
    instance_id = launched(box, visitor)
    deadline = time.monotonic() + 10
    while 'data-state="running"' not in (page := visitor.get("/dashboard")):
        assert time.monotonic() < deadline, page
        time.sleep(0.2)
    assert instance_id in page
    assert f"Terminating {instance_id}" in visitor.post(f"/instances/{instance_id}/terminate").text
    ec2 = box.client("acme")
    state = ec2.describe_instances(InstanceIds=[instance_id])["Reservations"][0]["Instances"][0]["State"]["Name"]
    assert state in ("shutting-down", "terminated")


def test_the_alias_signs_in_and_a_rejected_request_is_gone(box: Box) -> None:
    signed_up(box, "aliased")
    box.cloud.accounts.set_alias("aliased", "aliased-co")
    assert "admin @ aliased" in Visitor(box).sign_in("aliased-co", PASSWORD)
    visitor = Visitor(box)
    visitor.get("/signup")
    visitor.post("/signup", {"name": "Mallory", "email": "m@example.com", "account": "unwanted",
                             "password": PASSWORD, "password2": PASSWORD})
    admin = Visitor(box)
    admin.sign_in("admin", ADMIN_PASSWORD)
    request_id = next(s.request_id for s in _pending(box) if s.account == "unwanted")
    admin.get("/admin")
    assert "Rejected" in admin.post(f"/admin/signups/{request_id}/reject").text
    assert box.cloud.accounts.get("unwanted") is None
    assert all(s.account != "unwanted" for s in _pending(box))
    Visitor(box).sign_in("unwanted", PASSWORD, status=401)


def _pending(box: Box) -> list[Any]:
    from euca.console.signups import Signups

    return Signups(box.cloud.store, box.cloud.accounts).pending()


def test_sign_up_refuses_taken_names_and_weak_passwords(box: Box) -> None:
    visitor = Visitor(box)
    visitor.get("/signup")
    for form, why in (({"account": "admin"}, "is taken"), ({"password": "short", "password2": "short"}, "at least 8"),
                      ({"account": "Bad Name"}, "lower-case"), ({"password2": "something else"}, "differ")):
        data = {"name": "N", "email": "n@example.com", "account": "fresh", "password": PASSWORD,
                "password2": PASSWORD, **form}
        assert why in visitor.post("/signup", data, 400).text
    assert all(s.account != "fresh" for s in _pending(box))


def test_wrong_passwords_lock_the_user_out(box: Box) -> None:
    signed_up(box, "locked")
    visitor = Visitor(box)
    for _ in range(4):
        assert "not right" in visitor.sign_in("locked", "wrong password", status=401)
    visitor.sign_in("locked", "wrong password", status=401)
    # the fifth failure locks the user out: the right password is refused too, for a while
    assert "Too many failed sign-ins" in visitor.sign_in("locked", PASSWORD, status=429)
    console = _console(box)
    console.lockout.clock = lambda: time.time() + 16 * 60
    try:
        assert "admin @ locked" in Visitor(box).sign_in("locked", PASSWORD)
    finally:
        console.lockout.clock = time.time


def _console(box: Box) -> Any:
    import gc

    from euca.console import Console

    return next(o for o in gc.get_objects() if isinstance(o, Console) and o.cloud is box.cloud)


def test_an_address_with_many_failures_is_locked_out() -> None:
    now = [1000.0]
    lockout = Lockout(lambda: now[0])
    address = lockout.address_key("192.0.2.7")
    for n in range(19):
        lockout.failed(lockout.user_key("a", f"user{n}"), address)
    assert lockout.locked(lockout.user_key("a", "someone"), address) == 0
    lockout.failed(lockout.user_key("a", "user19"), address)
    assert lockout.locked(lockout.user_key("a", "someone"), address) == pytest.approx(900)
    now[0] += 901
    assert lockout.locked(lockout.user_key("a", "someone"), address) == 0


def test_a_good_sign_in_clears_the_users_failures_not_the_addresss() -> None:
    lockout = Lockout(lambda: 0.0, address_failures=3)
    user, address = lockout.user_key("a", "u"), lockout.address_key("192.0.2.8")
    lockout.failed(user, address)
    lockout.failed(user, address)
    lockout.succeeded(user)
    lockout.failed(user, address)
    assert lockout.locked(user) == 0 and lockout.locked(address) > 0


def test_forged_or_missing_csrf_tokens_are_refused(box: Box) -> None:
    visitor = signed_up(box, "csrf")
    visitor.sign_in("csrf", PASSWORD)
    machine = next(i.image_id for i in box.cloud.images.all() if i.image_id.startswith("emi-"))
    before = len(box.client("csrf").describe_instances()["Reservations"])
    form = {"image": machine, "type": "m1.small", "count": "1"}
    assert "security token" in visitor.post("/launch", form, 403, csrf="forged-token").text
    assert "security token" in visitor.post("/launch", form, 403, csrf="").text
    stranger = Visitor(box)  # a page elsewhere posting into the console has no session cookie
    stranger.http.post(stranger.url + "/signin", data={}, timeout=10)
    assert stranger.post("/keypairs", {"name": "evil"}, 403, csrf=visitor.csrf).status_code == 403
    assert len(box.client("csrf").describe_instances()["Reservations"]) == before
    assert box.cloud.keypairs.get("csrf", "evil") is None


def test_another_accounts_ids_in_the_url_are_refused(box: Box) -> None:
    owner = signed_up(box, "owner")
    owner.sign_in("owner", PASSWORD)
    instance_id = launched(box, owner)
    owner.post("/addresses")
    ip = box.client("owner").describe_addresses()["Addresses"][0]["PublicIp"]
    group_id = box.client("owner").create_security_group(GroupName="web", Description="web")["GroupId"]
    intruder = signed_up(box, "intruder")
    intruder.sign_in("intruder", PASSWORD)
    assert "InvalidInstanceID.NotFound" in intruder.get(f"/instances/{instance_id}/output", 404)
    assert "InvalidGroup.NotFound" in intruder.get(f"/groups/{group_id}", 404)
    assert "NotFound" in intruder.post(f"/instances/{instance_id}/terminate").text
    assert "error" in intruder.post(f"/addresses/{ip}/release").text
    intruder.post(f"/groups/{group_id}/delete")
    intruder.post(f"/addresses/{ip}/associate", {"instance": instance_id})
    ec2 = box.client("owner")
    state = ec2.describe_instances(InstanceIds=[instance_id])["Reservations"][0]["Instances"][0]["State"]["Name"]
    assert state in ("pending", "running")
    assert ec2.describe_addresses()["Addresses"][0]["PublicIp"] == ip
    assert ec2.describe_security_groups(GroupIds=[group_id])["SecurityGroups"]
    assert "administrator may see this page" in intruder.get("/admin", 403)


def test_a_user_denied_run_instances_cannot_launch_from_the_console(box: Box) -> None:
    signed_up(box, "policed")
    accounts = box.cloud.accounts
    accounts.create_user("policed", "bob")
    accounts.set_login("policed", "bob", hash_password(PASSWORD), reset=False, create=True)
    accounts.put_policy("user", "policed", "bob", "ec2", json.dumps({"Statement": [
        {"Effect": "Allow", "Action": "ec2:*", "Resource": "*"},
        {"Effect": "Deny", "Action": "ec2:RunInstances", "Resource": "*"}]}))
    bob = Visitor(box)
    assert "bob @ policed" in bob.sign_in("policed", PASSWORD, user="bob")
    machine = next(i.image_id for i in box.cloud.images.all() if i.image_id.startswith("emi-"))
    text = bob.post("/launch", {"image": machine, "type": "m1.small", "count": "1"}).text
    assert "UnauthorizedOperation" in text
    assert not box.client("policed").describe_instances()["Reservations"]
    assert "Launch" in bob.get("/dashboard")  # what the policy allows still works


def test_key_pairs_and_security_group_rules(box: Box) -> None:
    visitor = signed_up(box, "keys")
    visitor.sign_in("keys", PASSWORD)
    r = visitor.post("/keypairs", {"name": "laptop"})
    assert r.headers["content-type"].startswith("application/x-pem-file")
    assert 'filename="laptop.pem"' in r.headers["content-disposition"]
    assert r.text.startswith("-----BEGIN RSA PRIVATE KEY-----")
    assert "laptop" in visitor.get("/dashboard")
    assert "InvalidKeyPair.Duplicate" in visitor.post("/keypairs", {"name": "laptop"}).text
    r = visitor.post("/groups", {"name": "web", "description": "web servers"})
    group_id = re.search(r"Security group web <span class=\"muted\">(sg-[0-9A-Fa-f]+)", r.text)
    assert group_id, r.text[:1500]
    text = visitor.post(f"/groups/{group_id.group(1)}/rules", {"protocol": "tcp", "from": "22", "to": "22",
                                                               "source": "10.0.0.0/8"}).text
    assert "Rule added" in text and "10.0.0.0/8" in text
    rule = re.search(r"rules/(sgr-[0-9a-f]+)/delete", text)
    assert rule
    text = visitor.post(f"/groups/{group_id.group(1)}/rules/{rule.group(1)}/delete", {"egress": "0"}).text
    assert "removed" in text and "10.0.0.0/8" not in text


def test_the_credentials_zip_works_with_boto3(box: Box) -> None:
    visitor = signed_up(box, "creds")
    visitor.sign_in("creds", PASSWORD)
    accounts = box.cloud.accounts
    for key in accounts.user_keys("creds", ADMIN):  # a user without keys gets one made
        accounts.delete_user_key("creds", ADMIN, key.access_key)
    visitor.get("/dashboard")
    r = visitor.post("/credentials")
    assert r.headers["content-type"] == "application/zip"
    archive = zipfile.ZipFile(io.BytesIO(r.content))
    names = set(archive.namelist())
    assert {"eucarc", "aws-profile", "cloud-cert.pem", "euca2-creds-admin-cert.pem",
            "euca2-creds-admin-pk.pem"} <= names
    eucarc = archive.read("eucarc").decode()
    env = dict(re.findall(r"^export (\w+)=(.*)$", eucarc, re.M))
    assert env["EC2_URL"] == box.url + "/services/Eucalyptus"
    assert env["S3_URL"].endswith("/services/Walrus") and env["AWS_IAM_URL"].endswith("/services/Euare")
    (key,) = accounts.user_keys("creds", ADMIN)
    assert env["EC2_ACCESS_KEY"] == key.access_key
    ec2 = boto3.client("ec2", endpoint_url=env["EC2_URL"], aws_access_key_id=env["EC2_ACCESS_KEY"],
                       aws_secret_access_key=env["EC2_SECRET_KEY"], region_name=env["AWS_DEFAULT_REGION"])
    assert ec2.describe_security_groups()["SecurityGroups"][0]["GroupName"] == "default"
    iam = boto3.client("iam", endpoint_url=env["AWS_IAM_URL"], aws_access_key_id=env["EC2_ACCESS_KEY"],
                       aws_secret_access_key=env["EC2_SECRET_KEY"], region_name=env["AWS_DEFAULT_REGION"])
    assert iam.list_users()["Users"]
    # a second download hands out the same key rather than a new one
    visitor.post("/credentials")
    assert len(accounts.user_keys("creds", ADMIN)) == 1
    # two keys, both inactive: none to hand out and none may be added
    accounts.create_user_key("creds", ADMIN)
    for k in accounts.user_keys("creds", ADMIN):
        accounts.set_user_key_active("creds", ADMIN, k.access_key, False)
    assert "none is active" in visitor.post("/credentials").text


def test_sessions_are_signed_http_only_and_strict(box: Box, tmp_path: Path) -> None:
    visitor = Visitor(box)
    r = visitor.http.get(visitor.url + "/signin", timeout=10)
    cookie = r.headers["set-cookie"]
    assert "HttpOnly" in cookie and "samesite=strict" in cookie.lower() and "Path=/console" in cookie
    assert "default-src 'self'" in r.headers["content-security-policy"]
    visitor.sign_in("admin", ADMIN_PASSWORD)
    value = visitor.http.cookies.get("euca_console")
    assert value
    payload, mac = value.split(".")
    forged = payload[:-2] + ("AA" if payload[-2:] != "AA" else "BB") + "." + mac
    stranger = requests.Session()
    stranger.cookies.set("euca_console", forged, path="/console")
    r = stranger.get(visitor.url + "/admin", allow_redirects=False, timeout=10)
    assert r.status_code == 303 and r.headers["location"].endswith("/console/signin")
    signer = Signer(b"k" * 32, lifetime=60)
    session = Session(account="a", user="u", mark="m", issued=1000.0)
    assert signer.load(signer.dump(session), now=1059).signed_in
    assert not signer.load(signer.dump(session), now=1061).signed_in
    assert not Signer(b"j" * 32).load(signer.dump(session), now=1000).signed_in


def test_a_changed_password_ends_the_old_sessions(box: Box) -> None:
    signed_up(box, "rotate")
    first, second = Visitor(box), Visitor(box)
    first.sign_in("rotate", PASSWORD)
    second.sign_in("rotate", PASSWORD)
    first.get("/password")
    text = first.post("/password", {"current": PASSWORD, "password": "a new passphrase",
                                    "password2": "a new passphrase"}).text
    assert "Password changed" in text
    assert "Sign in to your cloud" in second.get("/dashboard")  # sent back to sign in
    assert "admin @ rotate" in first.get("/dashboard")


def test_the_admin_page_draws_zones_nodes_and_use(box: Box) -> None:
    admin = Visitor(box)
    admin.sign_in("admin", ADMIN_PASSWORD)
    page = admin.get("/admin")
    assert page.count("<svg") == 2 and "m1.small" in page and "cluster01" in page
    for node in box.cloud.cc.nodes:
        assert node.name in page


def test_charts_escape_names_and_plot_samples() -> None:
    svg = zone_bars("<zone>", [("m1.small", 3, 8), ("c1.xlarge", 0, 2)])
    assert "&lt;zone&gt;" in svg and "0003 / 0008" in svg and svg.count("bar-free") == 2
    plot = usage_plot([Sample(0.0, 1, 2, 8), Sample(3600.0, 4, 8, 8)])
    assert "polyline" in plot and "peak 4 instances" in plot
    assert "polyline" not in usage_plot([])
