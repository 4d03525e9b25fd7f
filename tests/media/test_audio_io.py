"""WAV/FLAC round trips through bytes, with and without resampling to 48 kHz."""
from __future__ import annotations

import numpy as np
import pytest
import soundfile

from media.audio_io import DELIVERY_RATE, audio_from_bytes, audio_to_bytes, resample
from media.errors import CorruptMedia, EmptyMedia

SR = 16_000


def tone(freq: float, seconds: float, sr: int = SR, amplitude: float = 0.5) -> np.ndarray:
    return (amplitude * np.sin(2 * np.pi * freq * np.arange(round(seconds * sr)) / sr)).astype(np.float32)


def dominant_hz(x: np.ndarray, sr: int) -> float:
    spectrum = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    return float(np.fft.rfftfreq(len(x), 1 / sr)[np.argmax(spectrum)])


@pytest.mark.parametrize("fmt, magic", [("wav", b"RIFF"), ("flac", b"fLaC")])
@pytest.mark.parametrize("bits", [16, 24])
def test_round_trip_is_exact_to_the_quantisation_step(fmt, magic, bits):
    x = tone(1000.0, 1.0)
    data = audio_to_bytes(x, SR, format=fmt, bit_depth=bits)
    assert data[:4] == magic
    info = soundfile.info(__import__("io").BytesIO(data))
    assert info.subtype == f"PCM_{bits}" and info.samplerate == SR and info.channels == 1
    y, rate = audio_from_bytes(data)
    assert rate == SR and y.shape == x.shape and y.dtype == np.float32
    step = 2.0 ** -(bits - 1)
    assert np.max(np.abs(y - x)) <= step  # rounding to the nearest PCM step
    assert np.max(np.abs(y - x)) > 0 or bits == 24  # 16 bit really quantises (the test can fail)


def test_stereo_layout_is_channels_first():
    x = np.stack([tone(500.0, 0.5), tone(1500.0, 0.5, amplitude=0.25)])  # (2, N)
    y, rate = audio_from_bytes(audio_to_bytes(x, SR, format="flac", bit_depth=24))
    assert y.shape == x.shape
    assert dominant_hz(y[0], SR) == pytest.approx(500, abs=3) and dominant_hz(y[1], SR) == pytest.approx(1500, abs=3)


@pytest.mark.parametrize("fmt", ["wav", "flac"])
def test_resampling_to_48k_keeps_length_and_frequency(fmt):
    x = tone(1234.0, 2.0)
    y, rate = audio_from_bytes(audio_to_bytes(x, SR, format=fmt, bit_depth=24, target_rate=DELIVERY_RATE))
    assert rate == 48_000 and len(y) == 3 * len(x)
    assert dominant_hz(y, rate) == pytest.approx(1234.0, abs=0.5)
    assert np.max(np.abs(y[4800:-4800])) == pytest.approx(0.5, abs=0.01)  # level kept away from the edges


def test_resample_odd_ratio_length():
    x = tone(440.0, 1.0, sr=44_100)
    y = resample(x, 44_100, 16_000)
    assert len(y) == 16_000


def test_out_of_range_samples_clip_instead_of_wrapping():
    x = np.array([0.5, 1.5, -1.5, 3.0], np.float32)
    y, _ = audio_from_bytes(audio_to_bytes(x, SR, bit_depth=16))
    np.testing.assert_allclose(y, [0.5, 32767 / 32768, -1.0, 32767 / 32768], atol=1e-4)


def test_bad_inputs_raise():
    with pytest.raises(ValueError, match="NaN"):
        audio_to_bytes(np.array([0.0, np.nan], np.float32), SR)
    with pytest.raises(ValueError, match="bit_depth"):
        audio_to_bytes(tone(1.0, 0.1), SR, bit_depth=8)
    with pytest.raises(ValueError, match="format"):
        audio_to_bytes(tone(1.0, 0.1), SR, format="mp3")
    with pytest.raises(EmptyMedia):
        audio_from_bytes(b"")
    with pytest.raises(CorruptMedia):
        audio_from_bytes(b"not an audio file at all" * 10)
