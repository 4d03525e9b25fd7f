"""Videos of 2, 8, 8.5, 20 and 95 s through the whole pipeline with the demo model's 8-s window: every stem,
the mix and the muxed audio are as long as the picture, to the sample (issue 11: a 20-s video used to get
8 s of audio and 12 s of silence). Few sampler steps: the point is length, not quality. The seams are tested
against the windows they join in tests/nag_model/test_long_form.py (the demo model included)."""
from __future__ import annotations

import io
from fractions import Fraction

import av
import pytest

from storage.root import open_root
from pipeline.objects import key_of, read_audio

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("prefect_api")]
LENGTHS = {"two": 2.0, "eight": 8.0, "eight-and-a-half": 8.5, "twenty": 20.0, "ninety-five": 95.0}
FPS = 10  # a low-rate picture keeps the files small; frames are picked by time


def _muxed_audio_length(data: bytes) -> tuple[int, int, int]:
    """The muxed audio stream's length in samples as the container states it (what players play: the AAC
    priming is cut by the edit list and the last frame's padding by its packet duration), the samples the
    decoder hands out (whole 1024-sample AAC frames), and the rate."""
    with av.open(io.BytesIO(data)) as c:
        stream = c.streams.audio[0]
        rate = stream.codec_context.sample_rate
        assert stream.time_base == Fraction(1, rate)
        return stream.duration, sum(f.samples for f in c.decode(stream)), rate


def test_soundtracks_are_as_long_as_their_videos(h, tmp_path, check_run_storage, capsys):
    from flows.catalog import catalog_run
    from pipeline.models import load_model

    lines = ["id,video_uri,captions"]
    for name, seconds in LENGTHS.items():
        h.write_video(tmp_path / f"{name}.mp4", seconds, fps=FPS, size=32)
        captions = "A fan hums. | A ball bounces." if name == "twenty" else "A fan hums."  # NAG across windows too
        lines.append(f"{name},{tmp_path / name}.mp4,{captions}")
    (tmp_path / "m.csv").write_text("\n".join(lines) + "\n")
    storage = f"file://{tmp_path / 'out'}"
    result = catalog_run(str(tmp_path / "m.csv"), storage_url=storage, run_id="long", model="demo", steps=2)
    assert (result["n_ok"], result["n_failed"]) == (5, 0)
    root = open_root(storage)
    con = check_run_storage(root, "long")
    rate = load_model("demo", 8.0).sample_rate
    for name, seconds in LENGTHS.items():
        frames = round(seconds * FPS)
        picture = frames / FPS  # the picture's length: its last frame ends there
        uris = [u for (u,) in con.sql("SELECT uri FROM tracks WHERE video_id = $v", params={"v": name}).fetchall()]
        (mix_uri, muxed_uri), = con.sql("SELECT uri, muxed_uri FROM mixes WHERE video_id = $v",
                                        params={"v": name}).fetchall()
        for uri in uris + [mix_uri]:
            wav, sr = read_audio(root, uri)
            assert sr == rate and wav.shape[-1] == round(picture * rate), (name, uri)
        stated, decoded, sr = _muxed_audio_length(root.read_bytes(key_of(root, muxed_uri)))
        assert stated == round(picture * sr), (name, stated, picture * sr)
        assert stated <= decoded < stated + 1024  # only the last AAC frame's padding, cut on playback
    per_minute = con.sql("SELECT 60 * sum(m.value) / 95 FROM metrics m WHERE m.metric = 'generation_s' "
                         "AND m.video_id = 'ninety-five'").fetchall()[0][0]
    with capsys.disabled():
        print(f"\nlong videos: 95 s, 1 track, 2 steps: {per_minute:.1f} s of generation per minute of video")
