"""Open any media source with PyAV and translate its failures into the ``media.errors`` hierarchy.

A source is a local path (``str`` or ``os.PathLike``), an fsspec URL (``file://``, ``memory://``,
``s3://``, ...), the file's bytes, or a binary file-like object (read + seek). Only remote URLs go
through fsspec; local paths are handed to FFmpeg directly. ``s3://`` URLs are opened with the same
credentials and endpoint as the pipeline's storage (``storage.root.s3_options``: the environment's
``AWS_*`` keys and ``FOLEY_S3_ENDPOINT_URL``), which never appear in an error message.
"""
from __future__ import annotations

import contextlib
import io
import os
from collections.abc import Iterator
from typing import BinaryIO, Union

import av
import av.error

from media.errors import CorruptMedia, EmptyMedia, MediaError, MediaUnreadable

__all__ = ["MediaSource", "open_media", "describe_source"]

MediaSource = Union[str, os.PathLike, bytes, bytearray, memoryview, BinaryIO]


def describe_source(source: MediaSource) -> str:
    """A short name of the source for error messages."""
    if isinstance(source, (str, os.PathLike)):
        return os.fspath(source)
    if isinstance(source, (bytes, bytearray, memoryview)):
        return f"<{len(source)} bytes>"
    return f"<{type(source).__name__} {getattr(source, 'name', '')}>".replace(" >", ">")


def _local_path(source: str | os.PathLike) -> str | None:
    path = os.fspath(source)
    if "://" not in path:
        return path
    if path.startswith("file://"):
        return path[len("file://"):]
    return None


def _remote_options(url: str) -> dict:
    """fsspec options for a remote URL: S3 credentials and endpoint as for storage roots, else none."""
    from storage.root import input_options

    return input_options(url)


def _is_empty(f: BinaryIO) -> bool:
    """Peek one byte of a seekable file-like object (position kept); False when it cannot seek."""
    try:
        if not f.seekable():
            return False
        pos = f.tell()
        first = f.read(1)
        f.seek(pos)
    except (OSError, ValueError) as exc:
        raise MediaUnreadable(f"cannot read from {describe_source(f)}: {exc}") from exc
    return not first


@contextlib.contextmanager
def _resolve(source: MediaSource) -> Iterator[str | BinaryIO]:
    """Yield what ``av.open`` accepts (a local path or a file-like), after the empty/missing checks."""
    name = describe_source(source)
    if isinstance(source, (bytes, bytearray, memoryview)):
        if len(source) == 0:
            raise EmptyMedia(f"{name}: no data")
        yield io.BytesIO(bytes(source))
        return
    if isinstance(source, (str, os.PathLike)):
        local = _local_path(source)
        if local is not None:
            try:
                st = os.stat(local)
            except OSError as exc:
                raise MediaUnreadable(f"cannot read {name}: {exc.strerror or exc}") from exc
            if os.path.isdir(local):
                raise MediaUnreadable(f"cannot read {name}: is a directory")
            if st.st_size == 0:
                raise EmptyMedia(f"{name}: file is empty (0 bytes)")
            yield local
            return
        import fsspec  # remote URL: only now pay for the import

        try:
            f = fsspec.open(os.fspath(source), "rb", **_remote_options(os.fspath(source))).open()
        except (OSError, ValueError, ImportError) as exc:  # missing object, unknown protocol, backend absent, no keys
            raise MediaUnreadable(f"cannot open {name}: {exc}") from exc
        try:
            if _is_empty(f):
                raise EmptyMedia(f"{name}: file is empty (0 bytes)")
            yield f
        finally:
            f.close()
        return
    if not hasattr(source, "read"):
        raise TypeError(f"unsupported media source type {type(source).__name__}")
    if _is_empty(source):
        raise EmptyMedia(f"{name}: no data")
    yield source


def _translate(exc: BaseException, name: str, stage: str) -> MediaError:
    """Map a PyAV/FFmpeg exception to the media error it means."""
    if isinstance(exc, av.error.PyAVCallbackError):  # the Python file-like object raised while FFmpeg read it
        return MediaUnreadable(f"reading {name} failed during {stage}: {exc}")
    if isinstance(exc, OSError) and not isinstance(exc, av.error.InvalidDataError):
        return MediaUnreadable(f"cannot read {name} ({stage}): {exc}")
    if isinstance(exc, av.error.EOFError):
        return EmptyMedia(f"{name}: ends before any media data ({stage}): {exc}")
    if isinstance(exc, av.error.DecoderNotFoundError):
        return CorruptMedia(f"{name}: no decoder for this codec in the FFmpeg build ({stage}): {exc}")
    return CorruptMedia(f"{name}: not decodable media ({stage}): {exc}")


@contextlib.contextmanager
def open_media(source: MediaSource) -> Iterator[av.container.InputContainer]:
    """Open ``source`` for demuxing; FFmpeg errors inside the ``with`` block become ``MediaError`` subclasses.

    Raises:
        MediaUnreadable: the path/URL does not exist or cannot be read.
        EmptyMedia: zero bytes, or a container without any stream.
        CorruptMedia: FFmpeg cannot parse the container or decode its data.
    """
    name = describe_source(source)
    with _resolve(source) as target:
        try:
            container = av.open(target, "r")
        except av.error.FFmpegError as exc:
            raise _translate(exc, name, "open") from exc
        try:
            if not container.streams:
                raise EmptyMedia(f"{name}: container has no streams")
            yield container
        except av.error.FFmpegError as exc:
            raise _translate(exc, name, "decode") from exc
        finally:
            container.close()
