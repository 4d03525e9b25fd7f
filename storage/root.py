"""The storage root: one fsspec file system plus a base path, named by a URL.

Supported URLs (the code above this module is the same for all of them):

* ``file:///abs/path`` or a plain path (the default; relative paths are made absolute),
* ``memory://name`` (fsspec's process-wide in-memory store; tests),
* ``s3://bucket/prefix`` via s3fs. Credentials and endpoint come from ``storage_options``
  (``key``, ``secret``, ``token``, ``endpoint_url``, ``profile``, ``anon``, or any other s3fs
  argument) and otherwise from the environment: ``AWS_ACCESS_KEY_ID``,
  ``AWS_SECRET_ACCESS_KEY``, ``AWS_SESSION_TOKEN``, ``AWS_PROFILE`` and the first of
  ``FOLEY_S3_ENDPOINT_URL``, ``AWS_ENDPOINT_URL_S3``, ``AWS_ENDPOINT_URL``. Secrets are never
  logged and never appear in a ``Root``'s repr (but the wrapped ``fs`` object holds them).
  Every S3 call has bounded timeouts and retries (:data:`S3_TIMEOUTS`; botocore's own defaults
  wait 60 s per connection attempt): ``FOLEY_S3_CONNECT_TIMEOUT``, ``FOLEY_S3_READ_TIMEOUT`` and
  ``FOLEY_S3_MAX_ATTEMPTS`` change them. :meth:`Root.check` tells an unreachable endpoint
  (:class:`StorageUnreachable`, one clear line) before any work starts.

Keys are relative, ``/``-separated and checked by :func:`storage.keys.validate_key`.

Atomic writes (:meth:`Root.put_atomic`): the content never appears half-written under its
final key, and its SHA-256 is returned.

* Local files: written and fsynced under a hidden temporary name in the same folder
  (``.<name>.<random>.tmp``), then renamed over the final name (``os.replace``, atomic on
  POSIX). On any error the temporary file is removed; after a hard kill it can stay behind,
  but :meth:`Root.list` and the tables never show hidden names.
* ``s3://`` and ``memory://``: an object store publishes an object only when its single PUT
  (or its whole multipart upload) completes, so the content goes straight to the final key;
  a temporary key plus server-side copy would double the I/O and could be left behind. A
  streamed source is first spooled to a local temporary file (hashed on the way), so a source
  that fails midway leaves nothing in the store. s3fs aborts a failed multipart upload; the
  parts of one cut off by a hard kill stay invisible until :meth:`Root.delete_prefix` aborts
  it (or an AbortIncompleteMultipartUpload lifecycle rule on the bucket reclaims them).
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import IO, Any, BinaryIO, Literal

import fsspec

from storage.keys import validate_key

Protocol = Literal["file", "memory", "s3"]
Content = bytes | bytearray | memoryview | BinaryIO

S3_ENDPOINT_ENV = ("FOLEY_S3_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL")
# botocore settings of every S3 call: (environment variable, botocore name, default). Standard-mode
# retries back off exponentially and retry throttling (503 SlowDown), 5xx, resets and timeouts.
S3_TIMEOUTS = (("FOLEY_S3_CONNECT_TIMEOUT", "connect_timeout", 5.0),
               ("FOLEY_S3_READ_TIMEOUT", "read_timeout", 30.0),
               ("FOLEY_S3_MAX_ATTEMPTS", "max_attempts", 5))
CHECK_ATTEMPTS = 2  # Root.check: attempts of its one probe call
_CHUNK = 1 << 20
_BUCKET = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")


class StorageConfigError(ValueError):
    """The storage URL or its options are wrong; the message says how to fix them."""


class StorageUnreachable(ConnectionError):
    """The storage cannot be reached or refuses us (endpoint down, wrong credentials, no such bucket);
    the message is one line that says which and where."""


@dataclass(frozen=True)
class Root:
    """A storage root: ``fs`` plus the base path that keys are relative to.

    Build it with :func:`open_root`. ``url`` is the normalised URL (no secrets).
    """

    url: str
    protocol: Protocol
    base: str
    fs: fsspec.AbstractFileSystem = field(repr=False, compare=False)

    def path(self, key: str) -> str:
        """The ``fs`` path of ``key``."""
        return f"{self.base}/{validate_key(key)}"

    def uri(self, key: str) -> str:
        """The full URL of ``key`` (``file:///…``, ``memory://…``, ``s3://…``): what tables store."""
        return f"{self.url}/{validate_key(key)}"

    def ensure_exists(self) -> None:
        """Create the root if it is missing: the local folder, or the S3 bucket.

        Buckets are created without a region: s3fs would send it as a LocationConstraint,
        which non-AWS servers reject ("The specified location-constraint is not valid").
        """
        if self.protocol == "s3":
            bucket = self.base.split("/", 1)[0]
            if not self.fs.exists(bucket):
                self.fs.mkdir(bucket)
        elif self.protocol == "file":
            os.makedirs(self.base, exist_ok=True)

    def check(self, must_exist: bool = True) -> None:
        """Make sure the root can be reached, within the S3 timeouts (seconds, not minutes).

        Args:
            must_exist: a missing bucket is an error (reading); False lets it pass (a run creates it).

        Raises:
            StorageUnreachable: the endpoint does not answer, refuses the credentials, or the bucket
                is missing when it must exist.
        """
        if self.protocol != "s3":
            return
        bucket = self.base.split("/", 1)[0]
        options = dict(self.fs.storage_options)
        config = dict(options.get("config_kwargs") or {})
        config["retries"] = {"max_attempts": CHECK_ATTEMPTS, "mode": "standard"}  # a probe: fail fast
        probe = type(self.fs)(**{**options, "config_kwargs": config, "skip_instance_cache": True})
        try:
            probe.call_s3("head_bucket", Bucket=bucket)
        except Exception as exc:  # noqa: BLE001 - classified below, re-raised when not a storage problem
            problem = unreachable_reason(exc)
            if problem is None or (problem == "no such bucket" and not must_exist):
                if problem is None:
                    raise
                return
            raise StorageUnreachable(f"{self.url}: {problem}") from exc

    def open(self, key: str) -> IO[bytes]:
        """Open ``key`` for reading (binary). Raises ``FileNotFoundError`` if it is missing."""
        return self.fs.open(self.path(key), "rb")

    def read_bytes(self, key: str) -> bytes:
        """The whole content of ``key``. Raises ``FileNotFoundError`` if it is missing."""
        return self.fs.cat_file(self.path(key))

    def exists(self, key: str) -> bool:
        """True if an object (not a folder) is stored under ``key``."""
        return self.fs.isfile(self.path(key))

    def list(self, prefix: str = "") -> list[str]:
        """Keys of all objects under the folder ``prefix`` (recursive, sorted).

        Hidden names (temporary files of interrupted writes) are left out. A prefix with
        nothing under it gives ``[]``; other I/O errors propagate.
        """
        prefix = prefix.strip("/")
        top = self.path(prefix) if prefix else self.base
        keys = []
        for found in self.fs.find(top):
            if not found.startswith(self.base + "/"):
                raise RuntimeError(f"listing {top!r} returned {found!r}, outside the root {self.url}")
            key = found[len(self.base) + 1 :]
            if not any(part.startswith(".") for part in key.split("/")):
                keys.append(key)
        return sorted(keys)

    def delete(self, key: str) -> None:
        """Delete ``key``. Deleting a missing key is not an error (as on S3)."""
        try:
            self.fs.rm_file(self.path(key))
        except FileNotFoundError:
            pass

    def delete_prefix(self, prefix: str, keep: Iterable[str] = ()) -> list[str]:
        """Delete every object under the folder ``prefix`` except the keys in ``keep``, leaving nothing
        behind that an interrupted write made there: hidden temporary files of local writes are deleted
        too, and on S3 the multipart uploads still open under the prefix (the invisible parts of an
        upload cut off by a hard kill) are aborted.

        Returns:
            The ``fs`` paths of the files deleted (sorted).
        """
        top = self.path(prefix.strip("/"))
        kept = {self.path(k) for k in keep}
        doomed = sorted(p for p in self.fs.find(top) if p not in kept)
        if doomed:
            self.fs.rm(doomed)
        if self.protocol == "s3":
            bucket, _, inside = top.partition("/")
            listing = self.fs.call_s3("list_multipart_uploads", Bucket=bucket, Prefix=f"{inside}/")
            for upload in listing.get("Uploads", []):
                self.fs.abort_mpu(bucket, upload["Key"], upload["UploadId"])
        return doomed

    def put_atomic(self, key: str, data: Content) -> str:
        """Store ``data`` (bytes or a binary file object) under ``key`` atomically.

        Readers see the old object or the new one, never a partial one (see the module
        docstring for how, per back end). An existing object is replaced.

        Returns:
            The SHA-256 hex digest of the stored content.
        """
        final = self.path(key)
        if self.protocol == "file":
            return _put_local(final, data)
        if isinstance(data, (bytes, bytearray, memoryview)):
            content = bytes(data)
            self.fs.pipe_file(final, content)
            return hashlib.sha256(content).hexdigest()
        with tempfile.NamedTemporaryFile(prefix="foley-put-") as spool:
            digest = _copy_hashing(data, spool)
            spool.flush()
            if self.protocol == "s3":  # one PUT, or a multipart upload for big files
                self.fs.put_file(spool.name, final)
            else:  # memory: one dict assignment
                spool.seek(0)
                self.fs.pipe_file(final, spool.read())
        return digest


def _copy_hashing(data: Content, out: IO[bytes]) -> str:
    """Write ``data`` to ``out``; return its SHA-256 hex digest."""
    digest = hashlib.sha256()
    if isinstance(data, (bytes, bytearray, memoryview)):
        digest.update(data)
        out.write(data)
        return digest.hexdigest()
    while chunk := data.read(_CHUNK):
        digest.update(chunk)
        out.write(chunk)
    return digest.hexdigest()


def _rename(src: str, dst: str) -> None:
    """Atomically move ``src`` over ``dst`` (a seam for crash tests)."""
    os.replace(src, dst)


def _put_local(final: str, data: Content) -> str:
    folder, name = os.path.split(final)
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as out:
            digest = _copy_hashing(data, out)
            out.flush()
            os.fsync(out.fileno())
        _rename(tmp, final)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    return digest


def open_root(url: str | os.PathLike[str], storage_options: Mapping[str, Any] | None = None) -> Root:
    """Open the storage root named by ``url``.

    Args:
        url: ``file:///abs/path`` or a plain path, ``memory://name``, or ``s3://bucket[/prefix]``.
        storage_options: extra file-system arguments; for S3 they override the environment
            (e.g. ``{"key": …, "secret": …, "endpoint_url": …}`` from a Prefect block).

    Raises:
        StorageConfigError: unsupported scheme, malformed URL, or S3 without credentials.
    """
    url = os.fspath(url)
    options = dict(storage_options or {})
    scheme, sep, rest = url.partition("://")
    if not sep:
        scheme, rest = "file", url
    rest = rest.strip("/") if scheme not in ("file", "local") else rest
    if scheme in ("file", "local"):
        base = os.path.abspath(rest or ".").rstrip("/") or "/"
        fs = fsspec.filesystem("file", **options)
        return Root(url=f"file://{base}", protocol="file", base=base, fs=fs)
    if scheme == "memory":
        if not rest:
            raise StorageConfigError("memory:// roots need a name, e.g. memory://test-123")
        return Root(url=f"memory://{rest}", protocol="memory", base=f"/{rest}", fs=fsspec.filesystem("memory"))
    if scheme in ("s3", "s3a"):
        bucket = rest.split("/", 1)[0]
        if not _BUCKET.fullmatch(bucket):
            raise StorageConfigError(
                f"{url!r}: {bucket!r} is not a valid bucket name (3-63 of a-z 0-9 . -); "
                "use s3://bucket/optional/prefix"
            )
        import s3fs  # imported here: it is slow to import and only S3 roots need it

        fs = s3fs.S3FileSystem(**s3_options(options, url))
        return Root(url=f"s3://{rest}", protocol="s3", base=rest, fs=fs)
    raise StorageConfigError(
        f"unsupported storage URL scheme {scheme!r} in {url!r}: use file:///path (or a plain path), "
        "memory://name or s3://bucket/prefix"
    )


def unreachable_reason(exc: BaseException) -> str | None:
    """One line saying why S3 could not be used, when ``exc`` (or an exception it was raised from) is a
    connection failure, a timeout, refused credentials or a missing bucket; None for anything else."""
    from botocore.exceptions import ClientError, ConnectTimeoutError, EndpointConnectionError, ReadTimeoutError

    seen: BaseException | None = exc
    for _ in range(10):
        if seen is None:
            return None
        if isinstance(seen, EndpointConnectionError):
            return (f"cannot connect to the S3 endpoint {seen.kwargs.get('endpoint_url', '')}: is the server up, "
                    "and is FOLEY_S3_ENDPOINT_URL right?")
        if isinstance(seen, (ConnectTimeoutError, ReadTimeoutError)):
            return f"the S3 endpoint did not answer in time ({type(seen).__name__}: {seen})"
        if isinstance(seen, ClientError):
            code = str(seen.response.get("Error", {}).get("Code", ""))
            if code in ("403", "InvalidAccessKeyId", "SignatureDoesNotMatch", "AccessDenied"):
                return f"the S3 server refused the credentials ({code}); check AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"
            if code in ("404", "NoSuchBucket"):
                return "no such bucket"
        if isinstance(seen, PermissionError):
            return f"the S3 server refused the credentials ({seen})"
        seen = seen.__cause__ or seen.__context__
    return None


def _bounded(options: dict[str, Any]) -> dict[str, Any]:
    """``options`` with botocore timeouts and retries from :data:`S3_TIMEOUTS` where they do not say."""
    config = dict(options.get("config_kwargs") or {})
    env = os.environ
    for var, name, default in S3_TIMEOUTS:
        raw = env.get(var)
        try:
            value = type(default)(raw) if raw else default
        except ValueError:
            raise StorageConfigError(f"{var}={raw!r} is not a number") from None
        if name == "max_attempts":
            config.setdefault("retries", {"max_attempts": value, "mode": "standard"})
        else:
            config.setdefault(name, value)
    return {**options, "config_kwargs": config}


def s3_options(storage_options: Mapping[str, Any], url: str = "s3://…") -> dict[str, Any]:
    """s3fs arguments: ``storage_options`` first, then the environment (see module docstring).

    Listings are never cached (``use_listings_cache=False``) so that files written by other
    processes show up. ``region_name`` is never added (see :meth:`Root.ensure_exists`). Timeouts and
    retries are bounded (:data:`S3_TIMEOUTS`) unless ``config_kwargs`` sets them.

    Raises:
        StorageConfigError: no usable credentials; the message names what to set.
    """
    options = dict(storage_options)
    env = os.environ
    from_env = {
        "key": "AWS_ACCESS_KEY_ID",
        "secret": "AWS_SECRET_ACCESS_KEY",
        "token": "AWS_SESSION_TOKEN",
        "profile": "AWS_PROFILE",
    }
    for option, var in from_env.items():
        if options.get(option) is None and env.get(var):
            options[option] = env[var]
    if options.get("endpoint_url") is None:
        endpoint = next((env[var] for var in S3_ENDPOINT_ENV if env.get(var)), None)
        if endpoint:
            options["endpoint_url"] = endpoint
    options.setdefault("use_listings_cache", False)
    options = _bounded(options)
    has_keys = bool(options.get("key")) and bool(options.get("secret"))
    if bool(options.get("key")) != bool(options.get("secret")):
        missing = "secret (AWS_SECRET_ACCESS_KEY)" if options.get("key") else "key (AWS_ACCESS_KEY_ID)"
        raise StorageConfigError(f"{url}: S3 credentials are incomplete, the {missing} is missing")
    if not (has_keys or options.get("profile") or options.get("anon")):
        raise StorageConfigError(
            f"{url}: no S3 credentials. Set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or AWS_PROFILE), "
            "and FOLEY_S3_ENDPOINT_URL for a non-AWS server (e.g. the one scripts/start-s3.sh starts), "
            "or pass storage_options={'key': ..., 'secret': ..., 'endpoint_url': ...}; "
            "anon=True for a public bucket"
        )
    return options


def input_options(uri: str) -> dict:
    """fsspec options for reading an input (manifest, video) at ``uri``: S3 credentials and endpoint as
    for storage roots (:func:`s3_options`), none for other protocols."""
    return s3_options({}, uri) if uri.split("://", 1)[0] in ("s3", "s3a") else {}
