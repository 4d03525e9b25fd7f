"""Media I/O for the Foley pipeline: probe and decode videos, write audio, mix, mux and draw spectrograms.

Modules: ``errors`` (exception hierarchy), ``source`` (opening paths, URLs, bytes, file-likes), ``probe``,
``decode`` (frames at 8/25 fps, the video's own audio), ``audio_io`` (WAV/FLAC bytes), ``mix`` (paper's
sum + -20 LUFS, with a true-peak ceiling), ``mux`` (stream-copied video + AAC tracks), ``spectrogram``
(PNG bytes). Audio arrays are ``(samples,)`` or ``(channels, samples)`` float everywhere.
"""
from media.errors import (
    CorruptMedia,
    EmptyMedia,
    MediaError,
    MediaUnreadable,
    MissingStream,
    MuxError,
    NoAudioStream,
    NoVideoStream,
)

__all__ = [
    "MediaError",
    "MediaUnreadable",
    "CorruptMedia",
    "EmptyMedia",
    "MissingStream",
    "NoVideoStream",
    "NoAudioStream",
    "MuxError",
]
