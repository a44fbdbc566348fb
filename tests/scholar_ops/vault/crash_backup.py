"""Run by test_crash.py in a child process: back up a large generated stream slowly
enough to be killed mid-way. Argument: JSON {kind, root | endpoint+bucket+prefix, size, seed}."""

from __future__ import annotations

import json
import sys

import boto3

from scholar_ops.testbed.datagen import GeneratedStream
from scholar_ops.vault.archiver import backup_stream
from scholar_ops.vault.crypto.keys import MasterKey
from scholar_ops.vault.repository import Repository
from scholar_ops.vault.storage import LocalStorage, S3Storage, Storage


def main() -> None:
    spec = json.loads(sys.argv[1])
    storage: Storage
    if spec["kind"] == "local":
        storage = LocalStorage(spec["root"])
    else:
        client = boto3.client(
            "s3",
            endpoint_url=spec["endpoint"],
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
            region_name="us-east-1",
        )
        storage = S3Storage(client, spec["bucket"], spec["prefix"])
    repo = Repository.open(storage, MasterKey.from_string(spec["master"]))
    print("started", flush=True)
    backup_stream(repo, GeneratedStream(spec["size"], seed=spec["seed"]), component="c", target="t")
    print("finished", flush=True)


if __name__ == "__main__":
    main()
