"""An S3-compatible server on loopback (moto) that the real minio SDK talks to, one per session."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest


@dataclass(frozen=True)
class S3Server:
    endpoint: str  # host:port, as MINIO_ENDPOINT takes it
    access_key: str = "test-access-key"
    secret_key: str = "test-secret-key"

    def env(self, bucket: str) -> dict[str, str]:
        """The MINIO_* variables that point the object store at this server."""
        return {"MINIO_ENDPOINT": self.endpoint, "MINIO_ACCESS_KEY": self.access_key,
                "MINIO_SECRET_KEY": self.secret_key, "MINIO_BUCKET": bucket,
                "MINIO_SECURE": "false"}

    def client(self) -> Any:
        """An independent client, to check what the store wrote without going through it."""
        from minio import Minio

        return Minio(self.endpoint, access_key=self.access_key, secret_key=self.secret_key,
                     secure=False, region="us-east-1")


def new_bucket() -> str:
    """A fresh bucket name, so tests sharing the server never see each other's objects."""
    return f"test-{uuid.uuid4().hex[:16]}"


@pytest.fixture(scope="session")
def s3_server() -> Iterator[S3Server]:
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one access-log line per request
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield S3Server(endpoint=f"{host}:{port}")
    finally:
        server.stop()
