"""Spectrogram PNGs: valid files of the requested size, and a log-mel that puts a tone where it belongs."""
from __future__ import annotations

import io
import struct

import numpy as np
import pytest
from PIL import Image

from media.spectrogram import log_mel, mel_filterbank, spectrogram_grid_png, spectrogram_png

SR = 16_000
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def tone(freq: float, seconds: float, amplitude: float = 0.5) -> np.ndarray:
    return (amplitude * np.sin(2 * np.pi * freq * np.arange(round(seconds * SR)) / SR)).astype(np.float32)


def png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == PNG_SIGNATURE and data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


def test_log_mel_puts_a_tone_in_its_band_at_its_level():
    db, times, centres = log_mel(tone(1000.0, 2.0), SR)
    assert db.shape == (80, len(times)) and np.isfinite(db).all()
    assert times[-1] == pytest.approx(2.0, abs=0.05)
    band = int(np.argmax(db[:, len(times) // 2]))
    assert centres[band] == pytest.approx(1000.0, rel=0.08)
    assert db[band, len(times) // 2] == pytest.approx(20 * np.log10(0.5), abs=3.0)  # about the sine's power


def test_mel_filterbank_covers_the_spectrum():
    weights, centres = mel_filterbank(SR, 1024, 80)
    assert weights.shape == (80, 513) and np.all(np.diff(centres) > 0)
    assert np.all(weights.max(axis=1) > 0.5)  # no empty filter
    assert weights[:, 1:-1].sum(axis=0).min() > 0  # every bin inside (0, Nyquist) is seen by some filter


@pytest.mark.filterwarnings("error")
def test_single_track_png_decodes_at_the_requested_size():
    data = spectrogram_png(tone(440.0, 3.0), SR, title="a dog barks", size_px=(640, 240))
    assert png_size(data) == (640, 240)
    image = Image.open(io.BytesIO(data))
    image.load()
    assert image.size == (640, 240) and image.format == "PNG"
    assert len(set(np.asarray(image.convert("L")).ravel().tolist())) > 20  # actually drew something


@pytest.mark.filterwarnings("error")
def test_silence_and_tiny_clips_draw_without_warnings():
    assert png_size(spectrogram_png(np.zeros(SR, np.float32), SR, title="silence")) == (800, 300)
    assert png_size(spectrogram_png(np.zeros(10, np.float32), SR, title="ten samples")) == (800, 300)


@pytest.mark.filterwarnings("error")
def test_grid_has_one_row_per_track_plus_mix():
    tracks = [("a dog barks " * 20, tone(440, 8.0)), ("rain", tone(3000, 3.0, 0.05)), ("silence", np.zeros(SR))]
    data = spectrogram_grid_png(tracks, SR, mix=tone(440, 8.0), title="video 0001", width_px=900, row_px=150)
    assert png_size(data) == (900, 4 * 150)
    no_mix = spectrogram_grid_png(tracks[:1], SR, width_px=500, row_px=200)
    assert png_size(no_mix) == (500, 200)
    with pytest.raises(ValueError, match="nothing to draw"):
        spectrogram_grid_png([], SR)


def test_grid_has_a_colour_bar_of_the_colour_map_on_the_right():
    data = spectrogram_grid_png([("tone", tone(1000, 2.0))], SR, width_px=600, row_px=200)
    rgb = np.asarray(Image.open(io.BytesIO(data)).convert("RGB")).astype(int)
    column = rgb[18:182, 600 - 52 + 6 + 4]  # the middle of the bar (inside its outline), top to bottom
    brightness = column.sum(axis=1)
    assert brightness[0] > 650 and brightness[-1] < 50  # magma: light at the top (loud), dark at the bottom
    assert np.all(np.diff(brightness) <= 12)  # falls steadily down the bar
