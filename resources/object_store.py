"""Charts, bars and transcripts: a local folder by default (TRADING_STORE_DIR), MinIO when set."""

from __future__ import annotations

import io
import json
import os
import tempfile
from pathlib import Path

import dagster as dg
import pandas as pd

from trading_assets.core.keys import check_key


class ObjectNotFoundError(FileNotFoundError):
    """A key the store does not hold (usually: the upstream asset has not run for the symbol)."""


class ObjectStore(dg.ConfigurableResource):
    """Bytes under validated keys: a local directory unless an S3 endpoint is configured."""

    root: str = "data/store"
    endpoint: str = ""
    access_key: str = ""
    secret_key: str = ""
    bucket: str = "trading"
    secure: bool = False

    @property
    def is_local(self) -> bool:
        return not self.endpoint

    def _path(self, key: str) -> Path:
        return Path(self.root).resolve() / check_key(key)

    def put_bytes(self, key: str, data: bytes, content_type: str = "application/octet-stream") -> str:
        """Write atomically: a failed write (full disk) leaves the previous object intact."""
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return key

    def get_bytes(self, key: str) -> bytes:
        path = self._path(key)
        if not path.exists():
            raise ObjectNotFoundError(f"No object {key!r} in {self.location(key)}.")
        return path.read_bytes()

    def exists(self, key: str) -> bool:
        return self._path(key).exists()

    def location(self, key: str) -> str:
        """Where a person finds the object: a file path locally, s3://bucket/key on MinIO."""
        return str(self._path(key))

    def write_frame(self, key: str, frame: pd.DataFrame) -> str:
        buffer = io.BytesIO()
        frame.to_parquet(buffer, index=False)
        return self.put_bytes(key, buffer.getvalue(), "application/vnd.apache.parquet")

    def read_frame(self, key: str) -> pd.DataFrame:
        return pd.read_parquet(io.BytesIO(self.get_bytes(key)))

    def write_json(self, key: str, payload: object) -> str:
        data = json.dumps(payload, indent=2, default=str).encode()
        return self.put_bytes(key, data, "application/json")

    def read_json(self, key: str) -> object:
        return json.loads(self.get_bytes(key))
