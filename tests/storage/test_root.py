"""Storage roots: URLs, credentials, and atomic content-hashed writes on every back end."""

from __future__ import annotations

import hashlib
import io
import os
import uuid
from pathlib import Path

import pytest

import storage.root as root_module
from storage.root import Root, StorageConfigError, open_root, s3_options

# --- URLs and configuration (no server needed) -------------------------------------------


def test_plain_and_file_urls_are_local(tmp_path, monkeypatch) -> None:
    assert open_root(str(tmp_path)).url == f"file://{tmp_path}"
    assert open_root(f"file://{tmp_path}").base == str(tmp_path)
    monkeypatch.chdir(tmp_path)
    assert open_root("rel/dir").base == str(tmp_path / "rel" / "dir")
    assert open_root("rel/dir").protocol == "file"


def test_memory_and_s3_urls() -> None:
    assert open_root("memory://abc/").base == "/abc"
    s3 = open_root("s3://my-bucket/pre/fix/", {"key": "k", "secret": "s"})
    assert (s3.protocol, s3.base, s3.url) == ("s3", "my-bucket/pre/fix", "s3://my-bucket/pre/fix")
    assert s3.uri("a/b.flac") == "s3://my-bucket/pre/fix/a/b.flac"


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("gs://bucket/x", "unsupported storage URL scheme 'gs'"),
        ("http://host/x", "unsupported storage URL scheme 'http'"),
        ("memory://", "memory:// roots need a name"),
        ("s3://", "not a valid bucket name"),
        ("s3://Bad_Bucket/x", "not a valid bucket name"),
    ],
)
def test_bad_urls_say_what_is_wrong(url: str, message: str) -> None:
    with pytest.raises(StorageConfigError, match=message):
        open_root(url, {"key": "k", "secret": "s"})


@pytest.fixture
def no_aws_env(monkeypatch) -> None:
    for var in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE",
                "FOLEY_S3_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL"):
        monkeypatch.delenv(var, raising=False)


def test_missing_s3_credentials_say_how_to_fix(no_aws_env) -> None:
    with pytest.raises(StorageConfigError, match="AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"):
        open_root("s3://bucket/x")
    with pytest.raises(StorageConfigError, match=r"secret \(AWS_SECRET_ACCESS_KEY\) is missing"):
        open_root("s3://bucket/x", {"key": "only-the-key"})


def test_s3_options_come_from_env_and_explicit_options_win(no_aws_env, monkeypatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "env-key")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "env-secret")
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://generic:1")
    monkeypatch.setenv("FOLEY_S3_ENDPOINT_URL", "http://foley:2")
    options = s3_options({})
    assert (options["key"], options["secret"], options["endpoint_url"]) == ("env-key", "env-secret", "http://foley:2")
    assert options["use_listings_cache"] is False and "client_kwargs" not in options
    options = s3_options({"key": "block-key", "secret": "block-secret", "endpoint_url": "http://block:3"})
    assert (options["key"], options["secret"], options["endpoint_url"]) == ("block-key", "block-secret", "http://block:3")


def test_s3_session_tokens_profiles_and_anonymous_access(no_aws_env, monkeypatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "k")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "s")
    monkeypatch.setenv("AWS_SESSION_TOKEN", "session")
    assert s3_options({})["token"] == "session"
    assert s3_options({"token": "explicit"})["token"] == "explicit"
    for var in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(var)
    monkeypatch.setenv("AWS_PROFILE", "studio")
    assert s3_options({})["profile"] == "studio" and "key" not in s3_options({})  # a profile alone is enough
    monkeypatch.delenv("AWS_PROFILE")
    assert s3_options({"anon": True})["anon"] is True  # so is anonymous access
    assert "endpoint_url" not in s3_options({"anon": True}) and "region_name" not in s3_options({"anon": True})


@pytest.mark.parametrize("options, message", [
    ({}, "s3://bucket/x: no S3 credentials. Set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or AWS_PROFILE), "
         "and FOLEY_S3_ENDPOINT_URL for a non-AWS server (e.g. the one scripts/start-s3.sh starts), "
         "or pass storage_options={'key': ..., 'secret': ..., 'endpoint_url': ...}; anon=True for a public bucket"),
    ({"key": "k"}, "s3://bucket/x: S3 credentials are incomplete, the secret (AWS_SECRET_ACCESS_KEY) is missing"),
    ({"secret": "s"}, "s3://bucket/x: S3 credentials are incomplete, the key (AWS_ACCESS_KEY_ID) is missing"),
    ({"secret": "s", "profile": "p"}, "the key (AWS_ACCESS_KEY_ID) is missing"),  # half a key pair is an error
])
def test_s3_credential_errors_say_exactly_what_to_set(no_aws_env, options, message) -> None:
    with pytest.raises(StorageConfigError) as raised:
        s3_options(options, "s3://bucket/x")
    assert message in str(raised.value)
    with pytest.raises(StorageConfigError, match=r"^s3://…: "):  # the default names no bucket
        s3_options({})


def test_secrets_never_appear_in_reprs(no_aws_env) -> None:
    secret = "TOP-SECRET-VALUE-123"
    root = open_root("s3://bucket/x", {"key": "AKIAEXAMPLE", "secret": secret})
    assert secret not in repr(root) and secret not in str(root)
    assert "AKIAEXAMPLE" not in repr(root)


# --- Atomic writes, on every back end ------------------------------------------------------


def test_put_atomic_bytes_round_trip(root: Root) -> None:
    data = b"RIFF fake wav \x00\x01\x02" * 100
    digest = root.put_atomic("runs/r/a.wav", data)
    assert digest == hashlib.sha256(data).hexdigest()
    assert root.read_bytes("runs/r/a.wav") == data
    with root.open("runs/r/a.wav") as f:
        assert f.read() == data
    assert root.exists("runs/r/a.wav") and not root.exists("runs/r/b.wav") and not root.exists("runs/r")
    assert root.list() == ["runs/r/a.wav"]
    assert root.uri("runs/r/a.wav") == f"{root.url}/runs/r/a.wav"


def test_put_atomic_file_object_round_trip_and_replace(root: Root) -> None:
    data = os.urandom(3 * 2**20 + 17)
    assert root.put_atomic("x/big.bin", io.BytesIO(data)) == hashlib.sha256(data).hexdigest()
    assert root.read_bytes("x/big.bin") == data
    assert root.put_atomic("x/big.bin", b"small") == hashlib.sha256(b"small").hexdigest()
    assert root.read_bytes("x/big.bin") == b"small"
    assert root.list("x") == ["x/big.bin"]


def test_a_stream_is_copied_in_bounded_chunks(root: Root) -> None:
    """A large source (a video, a long track) is never read whole into memory."""
    asked = []

    class Recording(io.BytesIO):
        def read(self, size=-1):
            asked.append(size)
            return super().read(size)

    data = os.urandom(2 * 2**20 + 5)
    assert root.put_atomic("x/streamed.bin", Recording(data)) == hashlib.sha256(data).hexdigest()
    assert root.read_bytes("x/streamed.bin") == data
    assert asked and all(size is not None and 0 < size <= 2**20 for size in asked)


def test_list_delete_and_missing(root: Root) -> None:
    for key in ("b/2", "a/1", "a/sub/3"):
        root.put_atomic(key, key.encode())
    assert root.list() == ["a/1", "a/sub/3", "b/2"]
    assert root.list("a") == ["a/1", "a/sub/3"]
    assert root.list("nothing/here") == []
    root.delete("a/1")
    root.delete("a/1")  # deleting a missing key is fine
    assert root.list() == ["a/sub/3", "b/2"]
    with pytest.raises(FileNotFoundError):
        root.read_bytes("a/1")


@pytest.mark.parametrize("key", ["../escape", "/abs", "a/../../b", "a\\b", ".hidden"])
def test_unsafe_keys_are_refused_before_any_io(root: Root, key: str) -> None:
    with pytest.raises(ValueError, match="object key"):
        root.put_atomic(key, b"x")
    assert root.list() == []


class _BrokenSource(io.RawIOBase):
    """A stream that fails after the first chunk, like a dying upstream download."""

    def __init__(self) -> None:
        self.sent = False

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        if self.sent:
            raise ConnectionResetError("upstream went away")
        self.sent = True
        return b"partial content"


def test_a_source_failing_midway_leaves_nothing(root: Root) -> None:
    root.put_atomic("v/track.flac", b"old version")
    with pytest.raises(ConnectionResetError):
        root.put_atomic("v/track.flac", _BrokenSource())
    with pytest.raises(ConnectionResetError):
        root.put_atomic("v/new.flac", _BrokenSource())
    assert root.read_bytes("v/track.flac") == b"old version"
    assert root.list() == ["v/track.flac"]


def test_crash_between_temp_write_and_rename_leaves_no_object(tmp_path, monkeypatch) -> None:
    root = open_root(str(tmp_path))
    seen = {}

    def crash(src: str, dst: str) -> None:
        seen["temp_content"] = Path(src).read_bytes()
        raise KeyboardInterrupt("killed between write and rename")

    monkeypatch.setattr(root_module, "_rename", crash)
    with pytest.raises(KeyboardInterrupt):
        root.put_atomic("runs/r/mix.flac", b"complete content")
    assert seen["temp_content"] == b"complete content"  # the temp file was fully written
    assert not root.exists("runs/r/mix.flac")
    assert os.listdir(tmp_path / "runs" / "r") == []  # and cleaned up
    monkeypatch.undo()
    assert root.put_atomic("runs/r/mix.flac", b"complete content") == hashlib.sha256(b"complete content").hexdigest()


def test_temp_files_left_by_a_hard_kill_are_hidden(tmp_path) -> None:
    root = open_root(str(tmp_path))
    root.put_atomic("runs/r/a.flac", b"a")
    (tmp_path / "runs" / "r" / ".b.flac.x1y2.tmp").write_bytes(b"half")
    assert root.list() == ["runs/r/a.flac"]


def test_ensure_exists_creates_the_local_folder(tmp_path) -> None:
    root = open_root(str(tmp_path / "new" / "store"))
    root.ensure_exists()
    assert (tmp_path / "new" / "store").is_dir()


@pytest.mark.s3
def test_s3_bucket_creation_without_region_is_idempotent(s3_server: None) -> None:
    bucket = f"foley-new-{uuid.uuid4().hex[:12]}"
    root = open_root(f"s3://{bucket}/some/prefix")
    try:
        root.ensure_exists()
        root.ensure_exists()
        data = os.urandom(6 * 2**20)
        assert root.put_atomic("a/six-mb.bin", io.BytesIO(data)) == hashlib.sha256(data).hexdigest()
        assert root.fs.info(f"{bucket}/some/prefix/a/six-mb.bin")["size"] == len(data)
    finally:
        root.fs.rm(bucket, recursive=True)
    assert not root.fs.exists(bucket)


def test_delete_prefix_removes_everything_under_it_but_what_is_kept(root: Root) -> None:
    for key in ("v/a/track.flac", "v/a/mix.flac", "v/b/x.png", "w/other.flac"):
        root.put_atomic(key, b"x")
    deleted = root.delete_prefix("v", keep=["v/a/mix.flac"])
    assert sorted(deleted) == [root.path("v/a/track.flac"), root.path("v/b/x.png")]
    assert root.list() == ["v/a/mix.flac", "w/other.flac"]
    assert root.delete_prefix("nothing/here") == []
    root.put_atomic("v/c.flac", b"x")
    assert root.delete_prefix("/v/", keep=["v/a/mix.flac"]) == [root.path("v/c.flac")]  # outer slashes ignored


def test_delete_prefix_removes_the_temporaries_of_a_killed_write(tmp_path) -> None:
    root = open_root(str(tmp_path))
    root.put_atomic("runs/r/a.flac", b"a")
    (tmp_path / "runs" / "r" / ".b.flac.x1y2.tmp").write_bytes(b"half")
    assert root.delete_prefix("runs/r", keep=["runs/r/a.flac"]) == [str(tmp_path / "runs" / "r" / ".b.flac.x1y2.tmp")]
    assert sorted(p.name for p in (tmp_path / "runs" / "r").iterdir()) == ["a.flac"]


@pytest.mark.s3
def test_delete_prefix_aborts_the_multipart_uploads_left_open_under_it(s3_server: None, s3_bucket: str) -> None:
    root = open_root(f"s3://{s3_bucket}/mpu-{uuid.uuid4().hex[:8]}")
    inside, outside = f"{root.base}/v/big.mp4", f"{root.base}-other/big.mp4"
    for path in (inside, outside):  # an upload cut off by a hard kill: started, never completed
        bucket, key = path.split("/", 1)
        root.fs.call_s3("create_multipart_upload", Bucket=bucket, Key=key)

    def open_uploads() -> set[str]:
        listing = root.fs.call_s3("list_multipart_uploads", Bucket=s3_bucket)
        return {f"{s3_bucket}/{u['Key']}" for u in listing.get("Uploads", [])}

    assert {inside, outside} <= open_uploads()
    root.delete_prefix("v")
    assert inside not in open_uploads() and outside in open_uploads()
    root.fs.clear_multipart_uploads(s3_bucket)


# --- URL forms, options and messages (mutation testing: docs/testing.md) -------------------


def test_url_forms_and_their_edge_cases(tmp_path, monkeypatch) -> None:
    assert open_root(f"local://{tmp_path}").protocol == "file"  # "local" is another name of "file"
    assert open_root(f"local://{tmp_path}").base == str(tmp_path)
    monkeypatch.chdir(tmp_path)
    assert open_root("file://").base == str(tmp_path)  # no path: the working folder
    assert open_root("/").base == "/" and open_root("file:///").url == "file:///"
    assert open_root(str(tmp_path / "boX")).base == str(tmp_path / "boX")  # only slashes are stripped
    assert open_root(str(tmp_path / "trailing ")).base == str(tmp_path / "trailing ")
    assert open_root("memory://a://b").base == "/a://b"  # the first "://" ends the scheme
    assert open_root(str(tmp_path), {"auto_mkdir": True}).fs.auto_mkdir is True  # options reach the file system
    memory = open_root("memory://boX/")
    assert (memory.protocol, memory.base, memory.url) == ("memory", "/boX", "memory://boX")


def test_s3a_urls_open_s3_roots(no_aws_env) -> None:
    import s3fs

    root = open_root("s3a://bucket/x/", {"key": "k", "secret": "s"})
    assert (root.protocol, root.base, root.url) == ("s3", "bucket/x", "s3://bucket/x")
    assert isinstance(root.fs, s3fs.S3FileSystem) and root.fs.key == "k"


@pytest.mark.parametrize(("url", "message"), [
    ("gs://bucket/x", "unsupported storage URL scheme 'gs' in 'gs://bucket/x': use file:///path (or a plain path), "
                      "memory://name or s3://bucket/prefix"),
    ("memory://", "memory:// roots need a name, e.g. memory://test-123"),
    ("s3://Bad_Bucket/x", "'s3://Bad_Bucket/x': 'Bad_Bucket' is not a valid bucket name (3-63 of a-z 0-9 . -); "
                          "use s3://bucket/optional/prefix"),
])
def test_bad_url_messages_in_full(url: str, message: str) -> None:
    with pytest.raises(StorageConfigError) as raised:
        open_root(url, {"key": "k", "secret": "s"})
    assert str(raised.value) == message


def test_missing_s3_credentials_name_the_url(no_aws_env) -> None:
    with pytest.raises(StorageConfigError, match=r"^s3://bucket/x: no S3 credentials\."):
        open_root("s3://bucket/x")


def test_input_options_are_s3_credentials_for_s3_uris_only(no_aws_env, monkeypatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "k")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "s")
    monkeypatch.setenv("FOLEY_S3_ENDPOINT_URL", "http://foley:2")
    for uri in ("s3://bucket/in/clip.mp4", "s3a://bucket/in/clip.mp4", "s3://bucket/in/odd://clip.mp4"):
        options = root_module.input_options(uri)
        assert (options["key"], options["secret"], options["endpoint_url"]) == ("k", "s", "http://foley:2")
    for uri in ("file:///in/clip.mp4", "/in/clip.mp4", "memory://in/clip.mp4", "https://host/s3://x"):
        assert root_module.input_options(uri) == {}
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    with pytest.raises(StorageConfigError, match=r"^s3://bucket/in/clip\.mp4: S3 credentials are incomplete"):
        root_module.input_options("s3://bucket/in/clip.mp4")


def test_s3_timeouts_and_retries_default_come_from_the_environment_and_yield_to_options(monkeypatch) -> None:
    for var, _, _ in root_module.S3_TIMEOUTS:
        monkeypatch.delenv(var, raising=False)
    assert s3_options({"key": "k", "secret": "s"})["config_kwargs"] == {
        "connect_timeout": 5.0, "read_timeout": 30.0, "retries": {"max_attempts": 5, "mode": "standard"}}
    monkeypatch.setenv("FOLEY_S3_CONNECT_TIMEOUT", "1.5")
    monkeypatch.setenv("FOLEY_S3_READ_TIMEOUT", "2.5")
    monkeypatch.setenv("FOLEY_S3_MAX_ATTEMPTS", "9")
    assert s3_options({"key": "k", "secret": "s"})["config_kwargs"] == {
        "connect_timeout": 1.5, "read_timeout": 2.5, "retries": {"max_attempts": 9, "mode": "standard"}}
    mine = {"connect_timeout": 1, "read_timeout": 2, "retries": {"max_attempts": 1}, "tcp_keepalive": True}
    options = s3_options({"key": "k", "secret": "s", "config_kwargs": mine})
    assert options["config_kwargs"] == mine and mine == {  # what the caller says wins, and is not modified
        "connect_timeout": 1, "read_timeout": 2, "retries": {"max_attempts": 1}, "tcp_keepalive": True}
    monkeypatch.setenv("FOLEY_S3_MAX_ATTEMPTS", "many")
    with pytest.raises(StorageConfigError) as raised:
        s3_options({"key": "k", "secret": "s"})
    assert str(raised.value) == "FOLEY_S3_MAX_ATTEMPTS='many' is not a number"


def _client_error(code: str):
    from botocore.exceptions import ClientError

    return ClientError({"Error": {"Code": code, "Message": "m"}}, "HeadBucket")


def test_unreachable_reason_names_each_storage_problem() -> None:
    from botocore.exceptions import ConnectTimeoutError, EndpointConnectionError, ReadTimeoutError

    reason = root_module.unreachable_reason
    assert reason(EndpointConnectionError(endpoint_url="http://127.0.0.1:9")) == (
        "cannot connect to the S3 endpoint http://127.0.0.1:9: is the server up, and is FOLEY_S3_ENDPOINT_URL right?")
    timeout = ConnectTimeoutError(endpoint_url="http://h:1")
    assert reason(timeout) == f"the S3 endpoint did not answer in time (ConnectTimeoutError: {timeout})"
    timeout = ReadTimeoutError(endpoint_url="http://h:1")
    assert reason(timeout) == f"the S3 endpoint did not answer in time (ReadTimeoutError: {timeout})"
    for code in ("403", "InvalidAccessKeyId", "SignatureDoesNotMatch", "AccessDenied"):
        assert reason(_client_error(code)) == (
            f"the S3 server refused the credentials ({code}); check AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY")
    for code in ("404", "NoSuchBucket"):
        assert reason(_client_error(code)) == "no such bucket"
    assert reason(PermissionError("denied")) == "the S3 server refused the credentials (denied)"
    assert reason(_client_error("InternalError")) is None and reason(ValueError("x")) is None
    from botocore.exceptions import ClientError

    assert reason(ClientError({}, "HeadBucket")) is None  # an error response without its Error part


def test_unreachable_reason_follows_causes_and_contexts_ten_deep() -> None:
    def chained(depth: int, via: str) -> BaseException:
        exc: BaseException = _client_error("NoSuchBucket")
        for i in range(depth):
            outer = RuntimeError(f"wrapper {i}")
            setattr(outer, via, exc)
            exc = outer
        return exc

    for via in ("__cause__", "__context__"):
        assert root_module.unreachable_reason(chained(9, via)) == "no such bucket"  # the tenth exception
        assert root_module.unreachable_reason(chained(10, via)) is None  # the eleventh is not looked at
    ok = RuntimeError("outer")
    ok.__cause__ = _client_error("InternalError")
    ok.__context__ = _client_error("404")  # the cause is followed first
    assert root_module.unreachable_reason(ok) is None


def _probe_raising(monkeypatch, exc: BaseException | None) -> list:
    """S3FileSystem.call_s3 replaced: records (storage options of the probe, call) and raises ``exc``."""
    import s3fs

    calls = []

    def call_s3(self, method, **kwargs):
        calls.append((self, dict(self.storage_options), method, kwargs))
        if exc is not None:
            raise exc

    monkeypatch.setattr(s3fs.S3FileSystem, "call_s3", call_s3)
    return calls


def test_check_probes_the_bucket_once_with_few_retries(no_aws_env, monkeypatch) -> None:
    root = open_root("s3://bucket/pre/fix", {"key": "k", "secret": "s", "endpoint_url": "http://h:1"})
    calls = _probe_raising(monkeypatch, None)
    root.check()
    [(probe, options, method, kwargs)] = calls
    assert (method, kwargs) == ("head_bucket", {"Bucket": "bucket"})
    assert probe is not root.fs  # a probe of its own (skip_instance_cache): the root's retries stay as they are
    assert options["config_kwargs"] == {"connect_timeout": 5.0, "read_timeout": 30.0,
                                        "retries": {"max_attempts": root_module.CHECK_ATTEMPTS, "mode": "standard"}}
    assert options["endpoint_url"] == "http://h:1" and options["key"] == "k"
    assert root.fs.storage_options["config_kwargs"]["retries"]["max_attempts"] == 5  # the root's own fs unchanged
    for local in (open_root("memory://checked"), open_root("/tmp")):
        local.check()  # nothing to probe
    assert len(calls) == 1


@pytest.mark.parametrize(("exc", "must_exist", "message"), [
    (_client_error("NoSuchBucket"), True, "s3://bucket/x: no such bucket"),
    (_client_error("AccessDenied"), False, "s3://bucket/x: the S3 server refused the credentials (AccessDenied); "
                                           "check AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"),
    (PermissionError("nope"), True, "s3://bucket/x: the S3 server refused the credentials (nope)"),
])
def test_check_raises_one_line_for_a_storage_problem(no_aws_env, monkeypatch, exc, must_exist, message) -> None:
    root = open_root("s3://bucket/x", {"key": "k", "secret": "s"})
    _probe_raising(monkeypatch, exc)
    with pytest.raises(root_module.StorageUnreachable) as raised:
        root.check(must_exist=must_exist)
    assert str(raised.value) == message and raised.value.__cause__ is exc


def test_check_lets_a_missing_bucket_pass_when_it_may_be_created_and_other_errors_through(no_aws_env,
                                                                                          monkeypatch) -> None:
    root = open_root("s3://bucket/x", {"key": "k", "secret": "s"})
    _probe_raising(monkeypatch, _client_error("404"))
    assert root.check(must_exist=False) is None
    with pytest.raises(root_module.StorageUnreachable, match="no such bucket"):
        root.check()  # reading is the default: the bucket must exist
    other = _client_error("InternalError")
    _probe_raising(monkeypatch, other)
    for must_exist in (True, False):
        with pytest.raises(type(other)) as raised:
            root.check(must_exist=must_exist)
        assert raised.value is other


def test_check_of_a_down_endpoint_fails_in_seconds(no_aws_env) -> None:
    import time

    root = open_root("s3://foley-down/x", {"key": "k", "secret": "s", "endpoint_url": "http://127.0.0.1:9"})
    start = time.monotonic()
    with pytest.raises(root_module.StorageUnreachable, match=r"^s3://foley-down/x: cannot connect to the S3 endpoint "
                                                             r"http://127\.0\.0\.1:9/"):
        root.check()
    assert time.monotonic() - start < 20


def test_local_temporaries_are_hidden_files_in_the_target_folder(tmp_path, monkeypatch) -> None:
    root = open_root(str(tmp_path))
    renamed = []
    real_rename = root_module._rename

    def rename(src: str, dst: str) -> None:
        renamed.append((src, dst))
        real_rename(src, dst)

    monkeypatch.setattr(root_module, "_rename", rename)
    root.put_atomic("runs/r/mix.flac", b"x")
    [(src, dst)] = renamed
    assert dst == str(tmp_path / "runs" / "r" / "mix.flac")
    assert os.path.dirname(src) == os.path.dirname(dst)  # same folder: the rename is atomic
    name = os.path.basename(src)
    assert name.startswith(".mix.flac.") and name.endswith(".tmp") and len(name) > len(".mix.flac..tmp")


def test_list_and_delete_prefix_strip_only_slashes(root: Root) -> None:
    for key in ("X/a", "Xb/c", "d/e"):
        root.put_atomic(key, b"x")
    assert root.list("/X/") == ["X/a"] and root.list("X") == ["X/a"]
    assert root.delete_prefix("X") == [root.path("X/a")]
    assert root.list() == ["Xb/c", "d/e"]


def test_a_listing_outside_the_root_is_an_error(tmp_path, monkeypatch) -> None:
    root = open_root(str(tmp_path / "store"))
    monkeypatch.setattr(type(root.fs), "find", lambda self, path, **kw: ["/elsewhere/a"])
    with pytest.raises(RuntimeError) as raised:
        root.list("v")
    assert str(raised.value) == (f"listing {str(tmp_path / 'store' / 'v')!r} returned '/elsewhere/a', "
                                 f"outside the root file://{tmp_path / 'store'}")


def test_ensure_exists_is_idempotent_locally(tmp_path) -> None:
    root = open_root(str(tmp_path / "store"))
    root.ensure_exists()
    root.ensure_exists()  # an existing folder is fine
    assert (tmp_path / "store").is_dir()


def test_ensure_exists_creates_the_bucket_of_an_s3_root_only_when_missing(no_aws_env, monkeypatch) -> None:
    import s3fs

    calls = []
    present = {"bucket": False}
    monkeypatch.setattr(s3fs.S3FileSystem, "exists", lambda self, path, **kw: calls.append(("exists", path))
                        or present["bucket"])
    monkeypatch.setattr(s3fs.S3FileSystem, "mkdir", lambda self, path, **kw: calls.append(("mkdir", path)))
    root = open_root("s3://bucket/with space/and/prefix", {"key": "k", "secret": "s", "skip_instance_cache": True})
    root.ensure_exists()
    assert calls == [("exists", "bucket"), ("mkdir", "bucket")]  # the bucket alone, never a prefix
    calls.clear()
    present["bucket"] = True
    root.ensure_exists()
    assert calls == [("exists", "bucket")]


def test_a_stream_goes_to_s3_as_one_streamed_upload_of_the_spooled_file(no_aws_env, monkeypatch) -> None:
    root = open_root("s3://bucket/x", {"key": "k", "secret": "s"})
    uploads = []

    def put_file(lpath, rpath, **kw):
        uploads.append((Path(lpath).read_bytes(), rpath))

    def pipe_file(path, value, **kw):
        raise AssertionError("a stream must not be read into memory for one PUT")

    # on the instance: fsspec binds its sync methods to each (cached) instance
    monkeypatch.setattr(root.fs, "put_file", put_file)
    monkeypatch.setattr(root.fs, "pipe_file", pipe_file)
    data = os.urandom(2 * 2**20 + 3)
    assert root.put_atomic("a/b.bin", io.BytesIO(data)) == hashlib.sha256(data).hexdigest()
    assert uploads == [(data, "bucket/x/a/b.bin")]
