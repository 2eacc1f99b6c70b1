"""The user's guide walkthrough, driven by the real aws CLI against a real server."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from tests.ec2_server import running_box


def test_users_guide_walkthrough(tmp_path: Path) -> None:
    with running_box(tmp_path / "box") as box:
        emi = box.image()
        access, secret = box.keys("walker")
        env = dict(os.environ, AWS_ACCESS_KEY_ID=access, AWS_SECRET_ACCESS_KEY=secret,
                   AWS_DEFAULT_REGION="eucalyptus", AWS_CONFIG_FILE=str(tmp_path / "none"),
                   AWS_SHARED_CREDENTIALS_FILE=str(tmp_path / "none"))

        def aws(*args: str) -> Any:
            done = subprocess.run([sys.executable, "-m", "awscli", "--endpoint-url", box.url + "/services/Eucalyptus",
                                   "--output", "json", "ec2", *args], env=env, capture_output=True, text=True,
                                  timeout=60, check=False)
            assert done.returncode == 0, done.stderr
            return json.loads(done.stdout) if done.stdout.strip() else None

        zones = aws("describe-availability-zones")["AvailabilityZones"]
        assert zones[0]["ZoneName"] == "cluster01"
        key = aws("create-key-pair", "--key-name", "mykey")
        assert key["KeyMaterial"].startswith("-----BEGIN RSA PRIVATE KEY-----")
        (tmp_path / "mykey.private").write_text(key["KeyMaterial"])
        run = aws("run-instances", "--image-id", emi, "--key-name", "mykey", "--count", "2")
        ids = [i["InstanceId"] for i in run["Instances"]]
        assert len(ids) == 2
        time.sleep(0.4)
        described = aws("describe-instances", "--instance-ids", *ids)
        states = {i["InstanceId"]: i["State"]["Name"] for r in described["Reservations"] for i in r["Instances"]}
        assert states == {i: "running" for i in ids}
        aws("authorize-security-group-ingress", "--group-name", "default", "--protocol", "tcp", "--port", "22",
            "--cidr", "0.0.0.0/0")
        ip = aws("allocate-address")["PublicIp"]
        aws("associate-address", "--public-ip", ip, "--instance-id", ids[0])
        described = aws("describe-instances", "--instance-ids", ids[0])
        assert described["Reservations"][0]["Instances"][0]["PublicIpAddress"] == ip
        console = aws("get-console-output", "--instance-id", ids[0])
        assert "login:" in console["Output"]
        out = aws("terminate-instances", "--instance-ids", *ids)
        assert {t["CurrentState"]["Name"] for t in out["TerminatingInstances"]} == {"shutting-down"}
