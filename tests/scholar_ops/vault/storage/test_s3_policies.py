"""The example IAM policies of docs/s3-policies.md, enforced by a moto S3 server.

moto checks signatures and IAM policies in server mode once it has served
``INITIAL_NO_AUTH_ACTION_COUNT`` requests (moto/core/authorization.py: every request,
IAM or S3, counts while under the limit; after it, each request's access key must
belong to an IAM user and its policies must allow the action on the resource,
moto/iam/access_control.py). The server below lets exactly the setup calls through
unchecked (the bucket, two users, their policies and access keys) and checks every
later request; the test proves that with an unknown key being refused.
"""

from __future__ import annotations

import io
import json
import re
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from scholar_ops.sources.process import running_server
from scholar_ops.vault.archiver import backup_stream
from scholar_ops.vault.checker import check
from scholar_ops.vault.crypto.keys import MasterKey
from scholar_ops.vault.errors import DeleteDenied
from scholar_ops.vault.prune import forget_and_prune
from scholar_ops.vault.repository import Repository
from scholar_ops.vault.restorer import restore_stream

pytestmark = pytest.mark.services

DOC = Path(__file__).resolve().parents[4] / "docs" / "s3-policies.md"
REGION = "us-east-1"
BUCKET = f"policies-{uuid.uuid4().hex[:12]}"
FOLDER = "aischolar"
#: create_bucket, then per user: create_user, put_user_policy, create_access_key
SETUP_CALLS = 1 + 2 * 3


def doc_policies() -> dict[str, dict[str, Any]]:
    """The JSON policies of docs/s3-policies.md by section ("writer", "maintainer")."""
    text = DOC.read_text()
    found: dict[str, dict[str, Any]] = {}
    for section, body in re.findall(r"^## (.+?)\n(.*?)(?=^## |\Z)", text, re.M | re.S):
        blocks = re.findall(r"```json\n(.*?)```", body, re.S)
        if blocks:
            key = "writer" if "writer" in section.lower() else section.strip().lower()
            found[key] = json.loads(blocks[0])
    return found


@dataclass
class Keys:
    access_key: str
    secret_key: str


@dataclass
class IamS3:
    endpoint_url: str
    writer: Keys
    maintainer: Keys

    def client(self, keys: Keys) -> Any:
        import boto3

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint_url,
            aws_access_key_id=keys.access_key,
            aws_secret_access_key=keys.secret_key,
            region_name=REGION,
        )

    def storage(self, keys: Keys) -> Any:
        """The store's storage for the repository, through a prefect-aws S3Bucket block."""
        from prefect_aws import AwsClientParameters, AwsCredentials, S3Bucket
        from pydantic import SecretStr

        from blocks.storage import storage_from_s3_bucket

        block = S3Bucket(
            bucket_name=BUCKET,
            bucket_folder=FOLDER,
            credentials=AwsCredentials(
                aws_access_key_id=keys.access_key,
                aws_secret_access_key=SecretStr(keys.secret_key),
                region_name=REGION,
                aws_client_parameters=AwsClientParameters(endpoint_url=self.endpoint_url),
            ),
        )
        return storage_from_s3_bucket(block)


@pytest.fixture(scope="module")
def iam_s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[IamS3]:
    import os

    import boto3

    workdir = tmp_path_factory.mktemp("moto-iam")
    env = dict(os.environ, INITIAL_NO_AUTH_ACTION_COUNT=str(SETUP_CALLS))
    with running_server(
        "moto server (IAM enforced)",
        lambda port: [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        cwd=workdir,
        log_path=workdir / "moto.log",
        timeout=60,
        stop_timeout=10,
        env=env,
    ) as server:
        url = f"http://127.0.0.1:{server.port}"
        setup = {"endpoint_url": url, "region_name": REGION}
        setup |= {"aws_access_key_id": "setup", "aws_secret_access_key": "setup"}
        boto3.client("s3", **setup).create_bucket(Bucket=BUCKET)
        iam = boto3.client("iam", **setup)
        policies = doc_policies()
        keys: dict[str, Keys] = {}
        for role in ("writer", "maintainer"):
            document = json.dumps(policies[role]).replace("scholar-backups", BUCKET)
            user = f"scholar-ops-{role}"
            iam.create_user(UserName=user)
            iam.put_user_policy(UserName=user, PolicyName=role, PolicyDocument=document)
            key = iam.create_access_key(UserName=user)["AccessKey"]
            keys[role] = Keys(key["AccessKeyId"], key["SecretAccessKey"])
        yield IamS3(url, keys["writer"], keys["maintainer"])


def test_the_doc_holds_both_policies():
    policies = doc_policies()
    assert set(policies) == {"writer", "maintainer"}
    writer = json.dumps(policies["writer"])
    deletes = [
        s for s in policies["writer"]["Statement"] if "s3:DeleteObject" in json.dumps(s["Action"])
    ]
    assert [s["Resource"] for s in deletes] == [[f"arn:aws:s3:::scholar-backups/{FOLDER}/locks/*"]]
    assert "DeleteObjectVersion" not in writer and "*" not in json.dumps(
        [s["Action"] for s in policies["writer"]["Statement"]]
    )


def test_a_writer_backs_up_and_restores_but_cannot_prune(iam_s3: IamS3):
    from botocore.exceptions import ClientError

    # Authentication is on: an unknown key is refused, the writer may not delete outside locks/.
    with pytest.raises(ClientError, match="InvalidAccessKeyId"):
        iam_s3.client(Keys("AKIAUNKNOWN", "nope")).list_objects_v2(Bucket=BUCKET)
    writer_s3 = iam_s3.client(iam_s3.writer)
    writer_s3.put_object(Bucket=BUCKET, Key=f"{FOLDER}/probe", Body=b"x")
    with pytest.raises(ClientError, match="AccessDenied"):
        writer_s3.delete_object(Bucket=BUCKET, Key=f"{FOLDER}/probe")
    iam_s3.client(iam_s3.maintainer).delete_object(Bucket=BUCKET, Key=f"{FOLDER}/probe")

    master = MasterKey.from_string("policy-test-master-key-0123456789")
    writer = Repository.init(iam_s3.storage(iam_s3.writer), master, pack_size=1 << 20)
    first = backup_stream(writer, io.BytesIO(b"first " * 300_000), component="c", target="t")
    second = backup_stream(writer, io.BytesIO(b"second " * 300_000), component="c", target="t")
    out = io.BytesIO()
    restore_stream(writer, writer.load_snapshot(first.backup_id), out)
    assert out.getvalue() == b"first " * 300_000
    assert not list(writer.storage.list("locks/")), "every lock was removed"
    before = sorted((o.name, o.size) for o in writer.storage.list() if o.name[:6] != "audit/")

    with pytest.raises(DeleteDenied) as denied:
        forget_and_prune(writer, [first.backup_id])
    message = str(denied.value)
    assert "\n" not in message
    assert f"cannot delete 'snapshots/{first.backup_id}'" in message
    assert "the credentials may not delete objects here" in message
    assert "maintainer" in message

    maintainer = Repository.open(iam_s3.storage(iam_s3.maintainer), master)
    after = sorted((o.name, o.size) for o in maintainer.storage.list() if o.name[:6] != "audit/")
    # The only change: one more tombstone object, written back empty of the refused ids.
    assert [n for n, _ in after if not n.startswith("forgotten/")] == [
        n for n, _ in before if not n.startswith("forgotten/")
    ]
    assert set(maintainer.snapshot_ids()) == {first.backup_id, second.backup_id}
    assert not list(maintainer.storage.list("locks/"))
    report = check(maintainer, read_data=1.0)
    assert report.ok, report.problems
    assert not report.notices, report.notices

    pruned = forget_and_prune(maintainer, [first.backup_id])
    assert pruned.snapshots_forgotten == [first.backup_id]
    assert pruned.packs_deleted >= 1
    assert maintainer.snapshot_ids() == [second.backup_id]
    assert check(maintainer, read_data=1.0).ok
    writer = Repository.open(iam_s3.storage(iam_s3.writer), master)
    out = io.BytesIO()
    restore_stream(writer, writer.load_snapshot(second.backup_id), out)
    assert out.getvalue() == b"second " * 300_000
