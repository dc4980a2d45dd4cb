"""Charts, bars and transcripts: a local folder by default (TRADING_STORE_DIR), MinIO when set.

MinIO (or any S3 API) is used when MINIO_ENDPOINT is set, through the minio SDK: one client per
resource instance, the bucket created on first use. Every key is checked before any I/O, and
reads only ever touch this store's folder or bucket: the UI gets bytes from `get_bytes` or a
presigned URL for a key, never by fetching a URL it was handed (the system this replaces had an
image proxy that fetched arbitrary URLs).
"""

from __future__ import annotations

import io
import json
import os
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import dagster as dg
from pydantic import PrivateAttr

from trading_assets.core.config import StorageSettings, plain
from trading_assets.core.errors import OutageError
from trading_assets.core.keys import InvalidKeyError, bars_info_key, bars_key_of, check_key
from trading_assets.core.symbols import InvalidSymbolError, validate_symbol

if TYPE_CHECKING:  # pandas loads with the first frame, not when the definitions load
    import pandas as pd

# Folders whose next segment (or file name, as in portfolio/TSLA.json) is a symbol.
SYMBOL_PREFIXES = frozenset(
    {"bars", "indicators", "charts", "transcripts", "portfolio", "outcomes", "replay"}
)
# S3 caps presigned URLs at seven days.
MAX_PRESIGN = timedelta(days=7)
_S3_MISSING = frozenset({"NoSuchKey", "NoSuchObject", "ResourceNotFound"})
_S3_DENIED = frozenset({"AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch",
                        "InvalidToken", "ExpiredToken"})
_CLIENT_LOCK = threading.Lock()


class ObjectNotFoundError(FileNotFoundError):
    """A key the store does not hold (usually: the upstream asset has not run for the symbol)."""


# Objects a run keeps in memory (bars, daily and weekly indicators, about 0.1 MB each, and the
# bars info: four per symbol); a 200-symbol run fits, a bigger one reads its oldest again.
MAX_RUN_FRAMES = 1000


class ObjectStoreError(RuntimeError):
    """MinIO refused a request (credentials, bucket policy) in a way a retry will not fix."""


class ObjectStoreUnavailableError(ObjectStoreError, OutageError):
    """MinIO could not be reached, did not answer in time, or does not speak S3 there."""


def checked_key(key: str) -> str:
    """check_key, and under a per-symbol folder the symbol segment must be a valid ticker."""
    check_key(key)
    folder, _, rest = key.partition("/")
    if folder in SYMBOL_PREFIXES:
        segment, more, _ = rest.partition("/")
        candidate = segment if more else segment.rsplit(".", 1)[0]
        try:
            valid = validate_symbol(candidate) == candidate
        except InvalidSymbolError:
            valid = False
        if not valid:
            raise InvalidKeyError(
                f"Refusing object-store key {key!r}: {candidate!r} is not a valid symbol."
            )
    return key


def split_endpoint(endpoint: str, secure: bool) -> tuple[str, bool]:
    """host:port and TLS flag from "host:port" or "http(s)://host:port" (the scheme wins)."""
    endpoint = endpoint.strip()
    if "://" not in endpoint:
        return endpoint.rstrip("/"), secure
    parts = urlsplit(endpoint)
    if parts.path.strip("/"):
        raise ObjectStoreError(
            f"MINIO_ENDPOINT={endpoint!r} has a path; use host:port such as minio:9000."
        )
    return parts.netloc, parts.scheme == "https"


_DEFAULTS = StorageSettings()  # written once, in core/config.py


class ObjectStore(dg.ConfigurableResource):
    """Bytes under validated keys: a local directory unless an S3 endpoint is configured."""

    root: str = "data/store"
    endpoint: str = ""
    access_key: str = ""
    secret_key: str = ""
    bucket: str = _DEFAULTS.minio_bucket
    secure: bool = False
    region: str = _DEFAULTS.minio_region
    # Where a browser reaches MinIO when that differs from `endpoint` (minio:9000 inside
    # docker-compose, localhost:9000 outside): presigned URLs are signed for this host.
    public_endpoint: str = ""
    # Bounds of one request (MINIO_CONNECT_TIMEOUT_S, MINIO_READ_TIMEOUT_S, MINIO_RETRIES): a
    # store that accepts connections and never answers fails an operation after
    # (1 + retries) x read timeout, 20 s by default, and the step stops at the first such
    # outage instead of paying it for every symbol.
    connect_timeout_s: float = _DEFAULTS.minio_connect_timeout_s
    read_timeout_s: float = _DEFAULTS.minio_read_timeout_s
    retries: int = _DEFAULTS.minio_retries

    _clients: dict[str, Any] = PrivateAttr(default_factory=dict)
    # Frames this run wrote or read, by key (None outside a Dagster run: see setup_for_execution).
    _frames: dict[str, Any] | None = PrivateAttr(default=None)

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        """Keep the run's frames in memory: a symbol's bars and indicators are written by one
        step and read back by four more (checks, indicators, charts, llm_signal), and decoding
        the parquet again was a tenth of a 500-symbol run. Dagster hands each run its own copy
        of the resource, so nothing outlives the run; outside runs (the app, the CLI) every
        read goes to the store."""
        self._frames = {}

    def teardown_after_execution(self, context: dg.InitResourceContext) -> None:
        self._frames = None

    @property
    def is_local(self) -> bool:
        return not self.endpoint

    def check(self) -> None:
        """Prove the endpoint is an S3 API this store can use: the bucket exists (or is
        created) and lists. An HTTP server that answers but is not S3 (a console, a web
        server's 404) is refused here, naming MINIO_ENDPOINT; a local folder needs nothing."""
        if self.is_local:
            return
        with self._translated("list", ""):
            next(iter(self._client().list_objects(self.bucket, prefix="bars/")), None)

    @property
    def label(self) -> str:
        if self.is_local:
            return f"local folder {Path(self.root).resolve()}"
        host, secure = split_endpoint(self.endpoint, self.secure)
        return f"MinIO {'https' if secure else 'http'}://{host} bucket {self.bucket}"

    # --- bytes ---------------------------------------------------------------------------

    def put_bytes(self, key: str, data: bytes,
                  content_type: str = "application/octet-stream") -> str:
        """Write atomically: a failed write (full disk) leaves the previous object intact."""
        if not self.is_local:
            # An S3 PUT replaces the object only once the whole body has arrived.
            checked_key(key)
            with self._translated("write", key):
                self._client().put_object(self.bucket, key, io.BytesIO(data),
                                          length=len(data), content_type=content_type)
            return key
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
        if not self.is_local:
            checked_key(key)
            with self._translated("read", key):
                response = self._client().get_object(self.bucket, key)
                try:
                    return response.read()
                finally:
                    response.close()
                    response.release_conn()
        path = self._path(key)
        if not path.exists():
            raise ObjectNotFoundError(f"No object {key!r} in {self.location(key)}.")
        return path.read_bytes()

    def delete(self, key: str) -> None:
        """Remove the object (nothing happens when there is none)."""
        if not self.is_local:
            checked_key(key)
            with self._translated("delete", key):
                self._client().remove_object(self.bucket, key)
        else:
            self._path(key).unlink(missing_ok=True)
        if self._frames is not None:
            self._frames.pop(key, None)

    def exists(self, key: str) -> bool:
        if not self.is_local:
            checked_key(key)
            try:
                with self._translated("look up", key):
                    self._client().stat_object(self.bucket, key)
                return True
            except ObjectNotFoundError:
                return False
        return self._path(key).exists()

    def location(self, key: str) -> str:
        """Where a person finds the object: a file path locally, s3://bucket/key on MinIO."""
        if not self.is_local:
            return f"s3://{self.bucket}/{checked_key(key)}"
        return str(self._path(key))

    def object_url(self, key: str) -> str | None:
        """The object's http(s) address on MinIO/S3 (opens where the bucket or a browser session
        allows reading it); None locally, where `location` is a path a person can open."""
        if self.is_local:
            return None
        host, secure = split_endpoint(self.public_endpoint or self.endpoint, self.secure)
        return f"{'https' if secure else 'http'}://{host}/{self.bucket}/{checked_key(key)}"

    def presigned_url(self, key: str, expires: timedelta = timedelta(hours=1)) -> str | None:
        """A time-limited link a browser can open (MinIO); None locally, where get_bytes serves.

        Only keys of this store are signed, and only after the object is found to exist.
        """
        if self.is_local:
            checked_key(key)
            return None
        if not timedelta(seconds=1) <= expires <= MAX_PRESIGN:
            raise ValueError(f"expires must be between 1 second and 7 days, not {expires}.")
        if not self.exists(key):
            raise ObjectNotFoundError(f"No object {key!r} in {self.location(key)}.")
        client = self._client(public=bool(self.public_endpoint))
        with self._translated("sign", key):
            return str(client.presigned_get_object(self.bucket, key, expires=expires))

    # --- a symbol's bars ---------------------------------------------------------------

    def bars_key(self, symbol: str, missing_ok: bool = False) -> str | None:
        """The key of the symbol's current bars, as its bars info names them (None when no
        bars were stored and `missing_ok`): the info is written after the bars it names."""
        try:
            return bars_key_of(self.read_json(bars_info_key(symbol)), symbol)
        except FileNotFoundError:
            if missing_ok:
                return None
            raise

    def read_bars(self, symbol: str) -> pd.DataFrame:
        """The symbol's current bars: the version its bars info names."""
        return self.read_frame(str(self.bars_key(symbol)))

    # --- frames and JSON -----------------------------------------------------------------

    def write_frame(self, key: str, frame: pd.DataFrame) -> str:
        buffer = io.BytesIO()
        frame.to_parquet(buffer, index=False)
        location = self.put_bytes(key, buffer.getvalue(), "application/vnd.apache.parquet")
        self._remember(key, frame.reset_index(drop=True))  # only once the write succeeded
        return location

    def read_frame(self, key: str) -> pd.DataFrame:
        """The frame under `key` (a copy: callers may change it freely)."""
        import pandas as pd

        cached = self._frames.get(key) if self._frames is not None else None
        if cached is not None and not isinstance(cached, bytes):
            return cached.copy()
        frame = pd.read_parquet(io.BytesIO(self.get_bytes(key)))
        self._remember(key, frame)
        return frame.copy() if self._frames is not None else frame

    def _remember(self, key: str, value: pd.DataFrame | bytes) -> None:
        """Keep a frame (a copy) or a JSON object's bytes for the rest of the run."""
        if self._frames is None:
            return
        self._frames.pop(key, None)
        self._frames[key] = value if isinstance(value, bytes) else value.copy()
        while len(self._frames) > MAX_RUN_FRAMES:  # oldest first: a run's steps go in order
            del self._frames[next(iter(self._frames))]

    def write_json(self, key: str, payload: object) -> str:
        data = json.dumps(payload, indent=2, default=str).encode()
        location = self.put_bytes(key, data, "application/json")
        self._remember(key, data)  # a run reads its own bars info back in every later step
        return location

    def read_json(self, key: str) -> object:
        cached = self._frames.get(key) if self._frames is not None else None
        if isinstance(cached, bytes):
            return json.loads(cached)
        data = self.get_bytes(key)
        self._remember(key, data)
        return json.loads(data)

    # --- internals -----------------------------------------------------------------------

    def _path(self, key: str) -> Path:
        return Path(self.root).resolve() / checked_key(key)

    def _client(self, public: bool = False) -> Any:
        """This instance's MinIO client (the public one only signs URLs, it never connects)."""
        name = "public" if public else "internal"
        with _CLIENT_LOCK:
            client = self._clients.get(name)
            if client is None:
                try:
                    client = self._new_client(self.public_endpoint if public else self.endpoint)
                    if not public:
                        self._ensure_bucket(client)
                except ValueError as exc:  # minio validates names before any request
                    raise ObjectStoreError(
                        f"MinIO settings rejected: {exc}. Check MINIO_ENDPOINT (host:port) and "
                        "MINIO_BUCKET (3-63 lowercase letters, digits, dots and dashes)."
                    ) from exc
                self._clients[name] = client
            return client

    def _new_client(self, endpoint: str) -> Any:
        import urllib3
        from minio import Minio

        host, secure = split_endpoint(endpoint, self.secure)
        # minio's default client retries a refused connection for seconds with 5-minute
        # timeouts; fail within the configured bounds with an actionable message instead.
        http = urllib3.PoolManager(
            timeout=urllib3.Timeout(connect=self.connect_timeout_s, read=self.read_timeout_s),
            maxsize=16,
            retries=urllib3.Retry(total=self.retries, backoff_factor=0.2,
                                  status_forcelist=[500, 502, 503, 504]),
        )
        access_key, secret_key = plain(self.access_key), plain(self.secret_key)
        return Minio(host, access_key=access_key or None, secret_key=secret_key or None,
                     secure=secure, region=self.region or None, http_client=http)

    def _ensure_bucket(self, client: Any) -> None:
        from minio.error import S3Error

        with self._translated("create the bucket for", ""):
            if client.bucket_exists(self.bucket):
                return
            try:
                client.make_bucket(self.bucket)
            except S3Error as exc:
                # Another process created it between the check and the call.
                if exc.code not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
                    raise

    @contextmanager
    def _translated(self, action: str, key: str) -> Iterator[None]:
        """minio and urllib3 errors as messages that say where and what to check."""
        from minio.error import InvalidResponseError, S3Error, ServerError
        from urllib3.exceptions import HTTPError, MaxRetryError, ReadTimeoutError

        host, _ = split_endpoint(self.endpoint, self.secure)
        where = f"{self.bucket}/{key}" if key else self.bucket
        try:
            yield
        except S3Error as exc:
            if exc.code in _S3_MISSING:
                raise ObjectNotFoundError(f"No object {key!r} in {self.location(key)}.") from exc
            if exc.code == "NoSuchBucket":
                raise ObjectStoreError(
                    f"MinIO at {host} has no bucket {self.bucket!r}. Check MINIO_BUCKET, or let "
                    "the store create it (its user needs s3:CreateBucket)."
                ) from exc
            if exc.code in _S3_DENIED:
                raise ObjectStoreError(
                    f"MinIO at {host} refused to {action} {where} ({exc.code}). Check "
                    "MINIO_ACCESS_KEY / MINIO_SECRET_KEY and the user's policy on bucket "
                    f"{self.bucket!r}."
                ) from exc
            raise ObjectStoreError(
                f"MinIO at {host} could not {action} {where}: {exc.code} {exc.message}"
            ) from exc
        except ServerError as exc:
            raise ObjectStoreUnavailableError(
                f"MinIO at {host} failed to {action} {where} (HTTP {exc.status_code}). "
                "Check the MinIO server's health and logs (MINIO_ENDPOINT)."
            ) from exc
        except InvalidResponseError as exc:
            status, kind = getattr(exc, "_code", "?"), getattr(exc, "_content_type", "") or "?"
            raise ObjectStoreUnavailableError(
                f"MINIO_ENDPOINT={self.endpoint!r} answers HTTP but not as S3 (HTTP {status}, "
                f"{kind}) when asked to {action} {where}. Point MINIO_ENDPOINT at the S3 API "
                "(MinIO's port 9000, not its console), or unset it for the local folder."
            ) from exc
        except HTTPError as exc:
            reason = exc.reason if isinstance(exc, MaxRetryError) and exc.reason else exc
            if isinstance(reason, ReadTimeoutError):
                raise ObjectStoreUnavailableError(
                    f"MinIO at {host} did not answer a request to {action} {where} within "
                    f"{self.read_timeout_s:g} s, {self.retries + 1} tries "
                    "(MINIO_READ_TIMEOUT_S, MINIO_RETRIES). Check the MinIO server's health, "
                    "or MINIO_ENDPOINT."
                ) from exc
            raise ObjectStoreUnavailableError(
                f"MinIO at {host} not reachable ({type(reason).__name__}). Start MinIO or check "
                "MINIO_ENDPOINT (host:port) and MINIO_SECURE (http or https)."
            ) from exc
