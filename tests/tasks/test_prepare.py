"""Probe + hash + decode + features, and the clear errors for unusable videos."""
from __future__ import annotations

import hashlib

import pytest

from media.errors import CorruptMedia, EmptyMedia, MediaUnreadable, NoVideoStream
from pipeline.videos import describe_video, file_sha256
from tasks.prepare import prepare_video


def test_a_demo_video_is_described(h, demo_video):
    info = prepare_video.fn(demo_video, h.MODEL, h.DURATION)
    with open(demo_video, "rb") as f:
        assert info.sha256 == hashlib.sha256(f.read()).hexdigest()
    assert info.width == info.height == 64 and info.fps == 25 and info.has_audio
    assert info.duration_s == pytest.approx(8.0) and info.covered_s == pytest.approx(8.0)  # all of it


def test_a_short_video_covers_only_its_length(h, media):
    info = describe_video(str(media["short"]), h.MODEL, h.DURATION)
    assert info.covered_s == pytest.approx(0.6, abs=0.05) and not info.has_audio


@pytest.mark.parametrize("case, error, fragment", [
    ("corrupt", CorruptMedia, "not decodable"), ("audio_only", NoVideoStream, "no video stream"),
    ("empty", EmptyMedia, "empty"), ("no_frames", EmptyMedia, "no (decodable frames|streams)"),
    ("missing", MediaUnreadable, "No such file"),
])
def test_unusable_videos_raise_media_errors(h, media, case, error, fragment):
    with pytest.raises(error, match=fragment):
        describe_video(str(media[case]), h.MODEL, h.DURATION)


def test_hashing_a_missing_remote_object_is_unreadable():
    with pytest.raises(MediaUnreadable):
        file_sha256("memory://nowhere/x.mp4")
