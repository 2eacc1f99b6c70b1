"""Key pairs over the EC2 API as clients use them: ids, types, formats, fingerprints, filters, tags,
deletion by id, and the aws CLI. Each test says which EC2 behaviour it pins."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import botocore.exceptions
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from euca.services.common import Ids
from euca.services.keypairs import KeyPairs
from euca.services.tags import Tags
from euca.store import Store
from tests.ec2_server import Box, running_box

KEY_ID = re.compile(r"^key-[0-9a-f]{17}$")


@pytest.fixture(scope="module")
def box(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Box]:
    with running_box(tmp_path_factory.mktemp("keys"), nodes=1) as b:
        yield b


@pytest.fixture(scope="module")
def ec2(box: Box) -> Iterator[Any]:
    client = box.client("keeper")
    yield client
    client.close()


@pytest.fixture(scope="module")
def other(box: Box) -> Iterator[Any]:
    client = box.client("stranger")
    yield client
    client.close()


def error(exc: pytest.ExceptionInfo[botocore.exceptions.ClientError]) -> tuple[str, str]:
    return str(exc.value.response["Error"]["Code"]), str(exc.value.response["Error"]["Message"])


def _blob(key: Any) -> bytes:
    line = key.public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
    return base64.b64decode(line.split()[1])


def _sha256(key: Any) -> str:
    return base64.b64encode(hashlib.sha256(_blob(key)).digest()).decode()


def _md5_spki(key: Any) -> str:
    der = key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return ":".join(f"{b:02x}" for b in hashlib.md5(der).digest())


def _openssh(key: Any) -> bytes:
    return bytes(key.public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH))


# --- CreateKeyPair ---------------------------------------------------------------------------------

def test_created_rsa_key_as_ec2_hands_it_out(ec2: Any) -> None:
    before = time.time()
    got = ec2.create_key_pair(KeyName="rsa-pem")
    # pem for RSA: the traditional PKCS#1 PEM; fingerprint: SHA-1 of the PKCS#8 DER private key
    assert got["KeyMaterial"].startswith("-----BEGIN RSA PRIVATE KEY-----")
    private = serialization.load_pem_private_key(got["KeyMaterial"].encode(), None)
    assert isinstance(private, rsa.RSAPrivateKey) and private.key_size == 2048
    der = private.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    assert got["KeyFingerprint"] == ":".join(f"{b:02x}" for b in hashlib.sha1(der).digest())
    assert KEY_ID.match(got["KeyPairId"])
    (described,) = ec2.describe_key_pairs(KeyPairIds=[got["KeyPairId"]])["KeyPairs"]
    assert described["KeyName"] == "rsa-pem" and described["KeyType"] == "rsa"
    assert described["KeyFingerprint"] == got["KeyFingerprint"]
    assert before - 1 <= described["CreateTime"].timestamp() <= time.time() + 1
    assert "PublicKey" not in described  # only with IncludePublicKey
    (with_key,) = ec2.describe_key_pairs(KeyNames=["rsa-pem"], IncludePublicKey=True)["KeyPairs"]
    assert with_key["PublicKey"].encode() == _openssh(private.public_key())


def test_created_ed25519_key_is_an_openssh_private_key_with_a_sha256_fingerprint(ec2: Any) -> None:
    got = ec2.create_key_pair(KeyName="ed-pem", KeyType="ed25519")
    # pem for ED25519: the OpenSSH private key format, as EC2 returns it
    assert got["KeyMaterial"].startswith("-----BEGIN OPENSSH PRIVATE KEY-----")
    private = serialization.load_ssh_private_key(got["KeyMaterial"].encode(), None)
    assert isinstance(private, ed25519.Ed25519PrivateKey)
    # base64 SHA-256 of the key blob, padding kept, no "SHA256:" label
    assert got["KeyFingerprint"] == _sha256(private.public_key()) and got["KeyFingerprint"].endswith("=")
    (described,) = ec2.describe_key_pairs(KeyNames=["ed-pem"])["KeyPairs"]
    assert described["KeyType"] == "ed25519" and described["KeyPairId"] == got["KeyPairId"]


@pytest.mark.skipif(shutil.which("ssh-keygen") is None, reason="needs OpenSSH's ssh-keygen")
def test_ed25519_fingerprint_is_what_ssh_keygen_prints(ec2: Any, tmp_path: Path) -> None:
    got = ec2.create_key_pair(KeyName="ed-keygen", KeyType="ed25519")
    path = tmp_path / "ed"
    path.write_text(got["KeyMaterial"] + "\n")
    path.chmod(0o600)
    printed = subprocess.run(["ssh-keygen", "-l", "-E", "sha256", "-f", str(path)], capture_output=True, text=True,
                             check=True).stdout.split()[1]
    assert printed == "SHA256:" + got["KeyFingerprint"].rstrip("=")


@pytest.mark.parametrize("key_type", ["rsa", "ed25519"])
def test_ppk_is_a_putty_key_file_version_3(ec2: Any, key_type: str, tmp_path: Path) -> None:
    got = ec2.create_key_pair(KeyName=f"ppk-{key_type}", KeyType=key_type, KeyFormat="ppk")
    lines = got["KeyMaterial"].splitlines()
    algorithm = {"rsa": "ssh-rsa", "ed25519": "ssh-ed25519"}[key_type]
    assert lines[:3] == [f"PuTTY-User-Key-File-3: {algorithm}", "Encryption: none", f"Comment: ppk-{key_type}"]
    assert lines[-1].startswith("Private-MAC: ")
    (described,) = ec2.describe_key_pairs(KeyNames=[f"ppk-{key_type}"], IncludePublicKey=True)["KeyPairs"]
    assert described["KeyType"] == key_type
    if shutil.which("puttygen") is None:
        pytest.skip("needs PuTTY's puttygen to read the file")
    path = tmp_path / "key.ppk"
    path.write_text(got["KeyMaterial"])
    # puttygen checks the MAC; the private key it reads back is the one whose public key EC2 stored
    subprocess.run(["puttygen", str(path), "-O", "private-openssh-new", "-o", str(tmp_path / "key")], check=True,
                   capture_output=True)
    private = serialization.load_ssh_private_key((tmp_path / "key").read_bytes(), None)
    assert _openssh(private.public_key()) == described["PublicKey"].encode()


def test_key_type_and_format_are_checked(ec2: Any) -> None:
    # botocore does not check enums; the model's KeyType and KeyFormat values are all EC2 takes
    for params in ({"KeyType": "dsa"}, {"KeyFormat": "der"}):
        with pytest.raises(botocore.exceptions.ClientError) as exc:
            ec2.create_key_pair(KeyName="odd", **params)
        assert error(exc)[0] == "InvalidParameterValue"
    assert "odd" not in [k["KeyName"] for k in ec2.describe_key_pairs()["KeyPairs"]]


# --- ImportKeyPair ---------------------------------------------------------------------------------

def test_imported_fingerprints_per_type(ec2: Any) -> None:
    key = rsa.generate_private_key(65537, 3072).public_key()
    got = ec2.import_key_pair(KeyName="imp-rsa", PublicKeyMaterial=_openssh(key) + b" me@laptop")
    # imported RSA: MD5 of the DER SubjectPublicKeyInfo
    assert got["KeyFingerprint"] == _md5_spki(key) and KEY_ID.match(got["KeyPairId"])
    ed = ed25519.Ed25519PrivateKey.generate().public_key()
    got = ec2.import_key_pair(KeyName="imp-ed", PublicKeyMaterial=_openssh(ed))
    assert got["KeyFingerprint"] == _sha256(ed)
    types = {k["KeyName"]: k["KeyType"] for k in ec2.describe_key_pairs(KeyNames=["imp-rsa", "imp-ed"])["KeyPairs"]}
    assert types == {"imp-rsa": "rsa", "imp-ed": "ed25519"}


def test_import_takes_key_text_base64_encoded_once_more(ec2: Any) -> None:
    # EC2's API reference tells API callers to base64 the key; boto3 encodes the blob again
    key = ed25519.Ed25519PrivateKey.generate().public_key()
    got = ec2.import_key_pair(KeyName="twice", PublicKeyMaterial=base64.b64encode(_openssh(key)))
    assert got["KeyFingerprint"] == _sha256(key)
    der = key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    got = ec2.import_key_pair(KeyName="twice-der", PublicKeyMaterial=base64.b64encode(base64.b64encode(der)))
    assert got["KeyFingerprint"] == _sha256(key)


@pytest.mark.parametrize("curve", [ec.SECP256R1(), ec.SECP384R1()], ids=["p256", "p384"])
def test_ecdsa_is_refused_as_ec2_refuses_it(ec2: Any, curve: ec.EllipticCurve) -> None:
    key = ec.generate_private_key(curve).public_key()
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        ec2.import_key_pair(KeyName="ecdsa", PublicKeyMaterial=_openssh(key))
    assert error(exc) == ("InvalidKey.Format", "Key is not in valid OpenSSH public key format")


# --- DescribeKeyPairs ------------------------------------------------------------------------------

def test_filters_every_one_ec2_documents(ec2: Any) -> None:
    made = ec2.create_key_pair(KeyName="filtered", KeyType="ed25519",
                               TagSpecifications=[{"ResourceType": "key-pair",
                                                   "Tags": [{"Key": "team", "Value": "payments"}]}])
    assert made["Tags"] == [{"Key": "team", "Value": "payments"}]

    def names(*filters: tuple[str, list[str]]) -> list[str]:
        found = ec2.describe_key_pairs(Filters=[{"Name": n, "Values": v} for n, v in filters])["KeyPairs"]
        return [k["KeyName"] for k in found]
    assert names(("key-pair-id", [made["KeyPairId"]])) == ["filtered"]
    assert names(("key-name", ["filt*"])) == ["filtered"]
    assert names(("fingerprint", [made["KeyFingerprint"]])) == ["filtered"]
    assert "filtered" in names(("key-type", ["ed25519"])) and "filtered" not in names(("key-type", ["rsa"]))
    assert names(("tag:team", ["pay*"])) == ["filtered"]
    assert names(("tag-key", ["team"])) == ["filtered"]
    assert names(("tag-value", ["payments"])) == ["filtered"]
    assert names(("tag:team", ["other"])) == []
    (described,) = ec2.describe_key_pairs(KeyNames=["filtered"])["KeyPairs"]
    assert described["Tags"] == [{"Key": "team", "Value": "payments"}]
    # EC2 answers an unknown filter name with InvalidParameterValue
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        names(("key-colour", ["blue"]))
    assert error(exc) == ("InvalidParameterValue", "The filter 'key-colour' is invalid")


def test_tags_on_import_and_with_create_tags(ec2: Any) -> None:
    key = rsa.generate_private_key(65537, 2048).public_key()
    got = ec2.import_key_pair(KeyName="tagged", PublicKeyMaterial=_openssh(key),
                              TagSpecifications=[{"ResourceType": "key-pair", "Tags": [{"Key": "a", "Value": "1"}]}])
    assert got["Tags"] == [{"Key": "a", "Value": "1"}]
    ec2.create_tags(Resources=[got["KeyPairId"]], Tags=[{"Key": "b", "Value": "2"}])
    tags = ec2.describe_tags(Filters=[{"Name": "resource-id", "Values": [got["KeyPairId"]]}])["Tags"]
    assert sorted((t["Key"], t["ResourceType"]) for t in tags) == [("a", "key-pair"), ("b", "key-pair")]
    # a TagSpecification for another resource type is refused, and nothing is made
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        ec2.import_key_pair(KeyName="mistagged", PublicKeyMaterial=_openssh(key),
                            TagSpecifications=[{"ResourceType": "instance", "Tags": [{"Key": "a", "Value": "1"}]}])
    assert error(exc)[0] == "InvalidParameterValue"
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        ec2.describe_key_pairs(KeyNames=["mistagged"])
    assert error(exc)[0] == "InvalidKeyPair.NotFound"


# --- DeleteKeyPair ---------------------------------------------------------------------------------

def test_delete_by_id_and_ids_are_never_reused(ec2: Any, box: Box) -> None:
    first = ec2.create_key_pair(KeyName="short-lived",
                                TagSpecifications=[{"ResourceType": "key-pair", "Tags": [{"Key": "k", "Value": "v"}]}])
    got = ec2.delete_key_pair(KeyPairId=first["KeyPairId"])
    assert got["Return"] is True and got["KeyPairId"] == first["KeyPairId"]
    assert ec2.describe_tags(Filters=[{"Name": "resource-id", "Values": [first["KeyPairId"]]}])["Tags"] == []
    second = ec2.create_key_pair(KeyName="short-lived")
    assert second["KeyPairId"] != first["KeyPairId"] and box.cloud.store.is_issued(first["KeyPairId"])
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        ec2.describe_key_pairs(KeyPairIds=[first["KeyPairId"]])
    assert error(exc) == ("InvalidKeyPair.NotFound", f"The key pair '{first['KeyPairId']}' does not exist")
    # by name, EC2 answers true for a key that is not there; an id names one key pair
    assert ec2.delete_key_pair(KeyName="never-was")["Return"] is True
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        ec2.delete_key_pair(KeyPairId=first["KeyPairId"])
    assert error(exc)[0] == "InvalidKeyPair.NotFound"
    ec2.delete_key_pair(KeyName="short-lived")


def test_another_accounts_key_pair_id_is_as_if_never_issued(ec2: Any, other: Any) -> None:
    mine = ec2.create_key_pair(KeyName="private-one")["KeyPairId"]
    never = "key-0123456789abcdef0"
    for call, params in [(other.describe_key_pairs, lambda x: {"KeyPairIds": [x]}),
                         (other.delete_key_pair, lambda x: {"KeyPairId": x})]:
        answers = []
        for id_ in (mine, never):
            with pytest.raises(botocore.exceptions.ClientError) as exc:
                call(**params(id_))
            answers.append((error(exc)[0], error(exc)[1].replace(id_, "<id>")))
        assert answers[0] == answers[1] and answers[0][0] == "InvalidKeyPair.NotFound"
    assert other.describe_key_pairs(Filters=[{"Name": "key-pair-id", "Values": [mine]}])["KeyPairs"] == []
    # his delete by her name deletes nothing of hers, and tells him no id
    assert "KeyPairId" not in other.delete_key_pair(KeyName="private-one")
    assert [k["KeyPairId"] for k in ec2.describe_key_pairs(KeyNames=["private-one"])["KeyPairs"]] == [mine]


# --- the store -------------------------------------------------------------------------------------

def test_ids_types_and_times_survive_a_restart(ec2: Any, box: Box) -> None:
    made = ec2.create_key_pair(KeyName="kept", KeyType="ed25519")
    (before,) = ec2.describe_key_pairs(KeyNames=["kept"], IncludePublicKey=True)["KeyPairs"]
    again = KeyPairs(box.cloud.store, Ids(box.cloud.store), Tags(box.cloud.store))
    key = again.get(box.cloud.accounts.caller(box.keys("keeper")[0]).account, "kept")
    assert key is not None
    assert (key.key_pair_id, key.key_type, key.fingerprint, key.public_key) == (
        made["KeyPairId"], "ed25519", made["KeyFingerprint"], before["PublicKey"])
    assert abs(key.created - before["CreateTime"].timestamp()) < 0.001


def test_key_pairs_stored_before_ids_get_one_once(tmp_path: Path) -> None:
    store = Store(str(tmp_path / "old.db"))
    key = rsa.generate_private_key(65537, 2048).public_key()
    with store.transaction() as tx:
        tx.put("keypair", "alice/old", "alice", {"name": "old", "fingerprint": "aa:bb",
                                                 "public_key": _openssh(key).decode()})
    first = KeyPairs(store, Ids(store), Tags(store)).get("alice", "old")
    assert first is not None and KEY_ID.match(first.key_pair_id) and first.key_type == "rsa"
    second = KeyPairs(store, Ids(store), Tags(store)).get("alice", "old")
    assert second == first
    assert [record_id for record_id, _, _ in store.load("keypair")] == [first.key_pair_id]
    store.close()


# --- the aws CLI -----------------------------------------------------------------------------------

def test_aws_cli_key_pairs(box: Box, tmp_path: Path) -> None:
    access, secret = box.keys("cli-keys")
    env = dict(os.environ, AWS_ACCESS_KEY_ID=access, AWS_SECRET_ACCESS_KEY=secret, AWS_DEFAULT_REGION="eucalyptus",
               AWS_CONFIG_FILE=str(tmp_path / "none"), AWS_SHARED_CREDENTIALS_FILE=str(tmp_path / "none"))

    def aws(*args: str) -> Any:
        done = subprocess.run([sys.executable, "-m", "awscli", "--endpoint-url", box.url, "--output", "json",
                               "ec2", *args], env=env, capture_output=True, text=True, timeout=60, check=False)
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout) if done.stdout.strip() else None

    made = aws("create-key-pair", "--key-name", "cli-ed", "--key-type", "ed25519", "--key-format", "ppk",
               "--tag-specifications", "ResourceType=key-pair,Tags=[{Key=via,Value=cli}]")
    assert made["KeyMaterial"].startswith("PuTTY-User-Key-File-3: ssh-ed25519") and KEY_ID.match(made["KeyPairId"])
    key = rsa.generate_private_key(65537, 2048).public_key()
    (tmp_path / "id_rsa.pub").write_bytes(_openssh(key) + b" me@laptop\n")
    imported = aws("import-key-pair", "--key-name", "cli-rsa", "--public-key-material",
                   f"fileb://{tmp_path / 'id_rsa.pub'}")
    assert imported["KeyFingerprint"] == _md5_spki(key)
    listed = aws("describe-key-pairs", "--filters", "Name=tag:via,Values=cli", "--include-public-key")["KeyPairs"]
    assert [(k["KeyName"], k["KeyType"], k["KeyPairId"]) for k in listed] == [("cli-ed", "ed25519", made["KeyPairId"])]
    assert listed[0]["PublicKey"].startswith("ssh-ed25519 ")
    assert aws("delete-key-pair", "--key-pair-id", made["KeyPairId"])["KeyPairId"] == made["KeyPairId"]
    assert [k["KeyName"] for k in aws("describe-key-pairs")["KeyPairs"]] == ["cli-rsa"]
