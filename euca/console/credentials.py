"""The credentials zip, as Eucalyptus's console handed it out: ``eucarc`` (the EC2, S3 and IAM
URLs, the user's access key, and the certificates' paths beside it), the cloud's certificate, the
account's certificate and key signed by the cloud (what bundles are signed with), and an aws CLI
profile."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

from euca.auth.certs import cloud_credentials, user_credentials
from euca.services.accounts import AccessKey


def credentials_zip(data_dir: Path | None, url: str, region: str, account: str, account_id: str, user: str,
                    key: AccessKey) -> bytes:
    prefix = f"euca2-{account}-{user}"
    cert_name, pk_name = f"{prefix}-cert.pem", f"{prefix}-pk.pem"
    files: dict[str, bytes] = {}
    lines = [
        "EUCA_KEY_DIR=$(cd \"$(dirname \"${BASH_SOURCE:-$0}\")\" && pwd -P)",
        f"export EC2_URL={url}/services/Eucalyptus",
        f"export S3_URL={url}/services/Walrus",
        f"export EUARE_URL={url}/services/Euare",
        f"export AWS_IAM_URL={url}/services/Euare",
        f"export EC2_ACCESS_KEY={key.access_key}",
        f"export EC2_SECRET_KEY={key.secret_key}",
        f"export EC2_ACCOUNT_ID={account_id}",
        f"export EC2_USER_ID={account_id}",
        f"export AWS_ACCESS_KEY_ID={key.access_key}",
        f"export AWS_SECRET_ACCESS_KEY={key.secret_key}",
        f"export AWS_DEFAULT_REGION={region}",
    ]
    if data_dir is not None:
        cloud = cloud_credentials(data_dir)
        mine = user_credentials(data_dir, account, account_id)
        files["cloud-cert.pem"] = cloud.cert.read_bytes()
        files[cert_name] = mine.cert.read_bytes()
        files[pk_name] = mine.key.read_bytes()
        lines += ["export EUCALYPTUS_CERT=${EUCA_KEY_DIR}/cloud-cert.pem",
                  f"export EC2_CERT=${{EUCA_KEY_DIR}}/{cert_name}",
                  f"export EC2_PRIVATE_KEY=${{EUCA_KEY_DIR}}/{pk_name}"]
    files["eucarc"] = ("\n".join(lines) + "\n").encode()
    files["aws-profile"] = (
        f"# append to ~/.aws/credentials and use: aws --profile euca --endpoint-url {url} ec2 ...\n"
        f"[euca]\naws_access_key_id = {key.access_key}\naws_secret_access_key = {key.secret_key}\n"
        f"region = {region}\n").encode()
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in files.items():
            info = zipfile.ZipInfo(name, date_time=(2000, 1, 1, 0, 0, 0))
            info.external_attr = (0o600 if name.endswith("pk.pem") or name in ("eucarc", "aws-profile")
                                  else 0o644) << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, data)
    return out.getvalue()
