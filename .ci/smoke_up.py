"""The README's first command on a fresh virtual environment, proved end to end.

Reads the first shell line of the README (``pip install -e . && euca up``), runs the part before
``euca up`` as written, then starts ``euca up`` in a temporary directory on a free port, waits for
its ready line, and with the keys and default image it printed sends signed requests (botocore's
SigV4 signer, a run-time dependency): DescribeImages shows the default image, RunInstances starts
it, and DescribeInstances reports it running. Exits non-zero, with the server's output, otherwise.
"""

from __future__ import annotations

import queue
import re
import shlex
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def first_command() -> list[str]:
    text = (ROOT / "README.md").read_text()
    block = re.search(r"```sh\n(.*?)```", text, re.S)
    if block is None:
        sys.exit("README.md has no sh block")
    line = block.group(1).splitlines()[0]
    parts = [p.strip() for p in line.split("&&")]
    if parts[-1] != "euca up":
        sys.exit(f"the README's first command does not end in 'euca up': {line!r}")
    return parts[:-1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def call(url: str, access: str, secret: str, params: dict[str, str]) -> str:
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    body = urllib.parse.urlencode({"Version": "2016-11-15", **params})
    request = AWSRequest("POST", url, data=body,
                         headers={"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"})
    SigV4Auth(Credentials(access, secret), "ec2", "eucalyptus").add_auth(request)
    prepared = urllib.request.Request(url, data=body.encode(), headers=dict(request.headers.items()), method="POST")
    try:
        with urllib.request.urlopen(prepared, timeout=30) as answer:
            return str(answer.read().decode())
    except urllib.error.HTTPError as exc:
        sys.exit(f"{params['Action']} failed: HTTP {exc.code}: {exc.read().decode()[:500]}")


def main() -> int:
    for command in first_command():
        print(f"$ {command}", flush=True)
        subprocess.run(command, shell=True, check=True, cwd=ROOT)
    work = Path(tempfile.mkdtemp(prefix="euca-smoke-"))
    port = free_port()
    argv = ["euca", "up", "--port", str(port)]
    print(f"$ (cd {work} && {shlex.join(argv)})", flush=True)
    server = subprocess.Popen(argv, cwd=work, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert server.stdout is not None
    # Read the server's output on a thread for as long as it runs: the wait for the ready line has
    # a deadline even if the server goes quiet, and a chatty server never blocks on a full pipe.
    lines: queue.Queue[str | None] = queue.Queue()

    def pump() -> None:
        for line in server.stdout or ():
            lines.put(line)
        lines.put(None)

    threading.Thread(target=pump, daemon=True).start()
    seen: list[str] = []
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                line = lines.get(timeout=max(0.1, deadline - time.monotonic()))
            except queue.Empty:
                sys.exit("euca up was not ready within 120 s:\n" + "".join(seen))
            if line is None:
                sys.exit("euca up stopped before it was ready:\n" + "".join(seen))
            seen.append(line)
            if line.startswith("EC2 API on"):
                break
        out = "".join(seen)
        print(out, end="", flush=True)
        access = re.search(r"access key (\S+)", out)
        secret = re.search(r"secret key (\S+)", out)
        image = re.search(r"default image (emi-\w+)", out)
        if not (access and secret and image):
            sys.exit("euca up did not print the admin keys and the default image")
        url = f"http://127.0.0.1:{port}/services/Eucalyptus"
        keys = (access.group(1), secret.group(1))
        images = call(url, *keys, {"Action": "DescribeImages"})
        if image.group(1) not in images:
            sys.exit(f"DescribeImages does not list {image.group(1)}:\n{images}")
        run = call(url, *keys, {"Action": "RunInstances", "ImageId": image.group(1), "MinCount": "1",
                                "MaxCount": "1", "InstanceType": "m1.small"})
        instance = re.search(r"<instanceId>(i-\w+)</instanceId>", run)
        if instance is None:
            sys.exit(f"RunInstances gave no instance:\n{run}")
        deadline = time.monotonic() + 90
        while True:
            described = call(url, *keys, {"Action": "DescribeInstances", "InstanceId.1": instance.group(1)})
            state = re.search(r"<instanceState><code>\d+</code><name>([a-z-]+)</name>", described)
            if state and state.group(1) == "running":
                break
            if time.monotonic() > deadline:
                sys.exit(f"{instance.group(1)} did not reach running:\n{described}")
            time.sleep(1)
        print(f"smoke: {image.group(1)} ran as {instance.group(1)}, running", flush=True)
    finally:
        server.terminate()
        try:
            server.wait(20)
        except subprocess.TimeoutExpired:
            server.kill()
    if server.returncode not in (0, -15):
        sys.exit(f"euca up exited with {server.returncode}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
