"""Files of a clip: an MP4 (H.264 yuv420p + AAC mix), WAVs (mix and stems, PCM_16) and a JSON sidecar.

For clip id `sf-00000042` in `folder`:
    sf-00000042.mp4                 video at 25 fps with the mix as a mono 16 kHz AAC track
    sf-00000042.json                Clip.meta() plus the names of the files written
    sf-00000042.mix.wav             the mix (only with wavs=True)
    sf-00000042.stem0-ball.wav ...  one per source, in the order of meta["sources"] (wavs=True)
Encoding is single-threaded and bit-exact, so the same clip gives the same bytes with the same
PyAV/FFmpeg build.
"""
from __future__ import annotations

import json
from pathlib import Path

import av
import numpy as np
import soundfile as sf

from .world import Clip, SourceInfo

CRF = 20  # x264 quality (lower is better); 64x64 8 s clips come out near 100-200 kB
AAC_BITRATE = 48_000
AAC_FRAME = 1024  # samples per AAC frame


def write_clip(clip: Clip, folder: str | Path, *, wavs: bool = True) -> dict[str, Path]:
    """Write the clip's MP4, JSON sidecar and (with wavs) its WAVs; returns {role: path}."""
    if clip.frames is None:
        raise ValueError(f"clip {clip.id} was rendered without frames; use make_clip(..., with_frames=True)")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = {"video": folder / f"{clip.id}.mp4"}
    write_mp4(paths["video"], clip.frames, clip.mix, clip.fps, clip.sr)
    if wavs:
        paths["mix"] = folder / f"{clip.id}.mix.wav"
        sf.write(paths["mix"], clip.mix, clip.sr, subtype="PCM_16")
        for k, (stem, info) in enumerate(zip(clip.stems, clip.sources)):
            paths[f"stem{k}"] = folder / f"{clip.id}.stem{k}-{info.kind}.wav"
            sf.write(paths[f"stem{k}"], stem, clip.sr, subtype="PCM_16")
    meta = clip.meta() | {"files": {role: p.name for role, p in paths.items()}}
    paths["meta"] = folder / f"{clip.id}.json"
    paths["meta"].write_text(json.dumps(meta, indent=1) + "\n")
    return paths


def write_mp4(path: str | Path, frames: np.ndarray, audio: np.ndarray, fps: int, sr: int) -> None:
    """Encode (T, H, W, 3) uint8 frames (libx264, yuv420p) and (N,) float audio (AAC, mono) to MP4."""
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise ValueError(f"frames must be (T, H, W, 3) uint8, got {frames.shape} {frames.dtype}")
    if audio.ndim != 1:
        raise ValueError(f"audio must be (N,) mono, got {audio.shape}")
    audio = np.ascontiguousarray(audio, np.float32)
    with av.open(str(path), "w", format="mp4", options={"fflags": "+bitexact"}) as out:
        # One x264 thread, so the bytes do not depend on the core count; no macroblock-tree rate control,
        # which made about one 64x64 encode in five differ from the others (uninitialised reads, it seems).
        vs = out.add_stream("libx264", rate=fps, options={"crf": str(CRF), "preset": "medium", "g": str(fps),
                                                          "threads": "1", "x264-params": "mbtree=0"})
        vs.width, vs.height, vs.pix_fmt = frames.shape[2], frames.shape[1], "yuv420p"
        vs.codec_context.flags |= av.codec.context.Flags.bitexact
        aus = out.add_stream("aac", rate=sr, layout="mono")
        aus.bit_rate = AAC_BITRATE
        aus.codec_context.flags |= av.codec.context.Flags.bitexact
        sent = 0
        for i, img in enumerate(frames):
            # Convert to yuv420p here: letting the encoder convert rgb24 gave different bytes run to run.
            vf = av.VideoFrame.from_ndarray(img, format="rgb24").reformat(format="yuv420p")
            vf.pts = i
            out.mux(vs.encode(vf))
            while sent < len(audio) and sent < (i + 1) * sr / fps:  # interleave audio up to this frame
                chunk = audio[sent:sent + AAC_FRAME]
                af = av.AudioFrame.from_ndarray(chunk[None, :], format="fltp", layout="mono")
                af.sample_rate, af.pts = sr, sent
                out.mux(aus.encode(af))
                sent += len(chunk)
        out.mux(vs.encode())
        out.mux(aus.encode())


def read_video(path: str | Path) -> tuple[np.ndarray, np.ndarray, float, int]:
    """Decode an MP4 with PyAV: frames (T, H, W, 3) uint8, audio (N,) float32 (first channel), fps, sr."""
    with av.open(str(path)) as c:
        vs, aus = c.streams.video[0], c.streams.audio[0]
        frames = np.stack([f.to_ndarray(format="rgb24") for f in c.decode(vs)])
        c.seek(0)
        audio = np.concatenate([f.to_ndarray()[0] for f in c.decode(aus)]).astype(np.float32)
        return frames, audio, float(vs.average_rate), int(aus.rate)


def read_clip(meta_path: str | Path) -> Clip:
    """Load a clip written with wavs=True: frames decoded from the MP4 (lossy), stems and mix from the WAVs."""
    meta_path = Path(meta_path)
    meta = json.loads(meta_path.read_text())
    files = {role: meta_path.parent / name for role, name in meta["files"].items()}
    if "mix" not in files:
        raise FileNotFoundError(f"{meta_path} lists no WAVs (written with wavs=False)")
    frames, _, _, _ = read_video(files["video"])
    mix, _ = sf.read(files["mix"], dtype="float32")
    stems = np.stack([sf.read(files[f"stem{k}"], dtype="float32")[0] for k in range(len(meta["sources"]))])
    sources = tuple(SourceInfo(**(s | {"event_times": tuple(s["event_times"]),
                                       "event_frames": tuple(s["event_frames"])})) for s in meta["sources"])
    return Clip(meta["id"], meta["seed"], meta["duration"], frames, stems, mix, sources, meta["label"],
                meta["label_index"], tuple(meta["captions"]), meta["fps"], meta["sr"])
