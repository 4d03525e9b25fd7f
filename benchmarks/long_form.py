"""Long-form generation cost: seconds of compute per minute of video, and memory.

    python -m benchmarks.long_form [--seconds 95] [--tracks 3] [--steps 25] [--model demo]

Writes a synthetic video of the given length (64x64, 25 fps), decodes and encodes it window by window
(``pipeline.models.encode_video``), then generates the tracks with ``nag_model.long_form`` (NAG against the
earlier tracks in every window), and prints wall and CPU seconds (total, and per minute of video) and the
process's peak resident memory. CPU seconds are the honest figure on a shared machine.
"""
from __future__ import annotations

import argparse
import resource
import tempfile
import time
from pathlib import Path

import av
import numpy as np
import torch


def write_video(path: Path, seconds: float, fps: int = 25, size: int = 64) -> Path:
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=fps, options={"preset": "ultrafast"})
        stream.width = stream.height = size
        stream.pix_fmt = "yuv420p"
        for i in range(round(seconds * fps)):
            img = np.zeros((size, size, 3), np.uint8)
            img[..., 0] = (np.arange(size)[None, :] * 4 + i * 8) % 256
            img[..., 2] = 255 * ((i // fps) % 2)  # a cut every second: something for the sync features
            for packet in stream.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=95.0)
    parser.add_argument("--tracks", type=int, default=3)
    parser.add_argument("--steps", type=int, default=25)
    parser.add_argument("--model", default="demo")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    from nag_model.generator import TrackSettings
    from nag_model.long_form import LongFormGenerator
    from pipeline.models import encode_video, load_model

    bundle = load_model(args.model, 8.0)
    captions = ["The fan motor drones strongly.", "A person walks faintly.", "A small bird tweets loudly."]
    with tempfile.TemporaryDirectory() as tmp:
        video = write_video(Path(tmp) / "v.mp4", args.seconds)
        wall, cpu = time.perf_counter(), time.process_time()
        windows, covered = encode_video(bundle, str(video), "0" * 64, 8.0)
        encode_wall, encode_cpu = time.perf_counter() - wall, time.process_time() - cpu
        generator = LongFormGenerator(bundle.generator())
        total = round(covered * bundle.sample_rate)
        wall, cpu = time.perf_counter(), time.process_time()
        tracks = generator.generate(windows, total, (captions * args.tracks)[: args.tracks], list(range(args.tracks)),
                                    TrackSettings(steps=args.steps))
        gen_wall, gen_cpu = time.perf_counter() - wall, time.process_time() - cpu
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    minutes = covered / 60
    print(f"model {args.model}, {covered:.1f} s of video, {len(windows)} windows, {args.tracks} tracks, "
          f"{args.steps} steps, {args.threads} threads; {len(tracks[0].waveform) / bundle.sample_rate:.2f} s generated")
    print(f"decode + encode: {encode_wall:.1f} s wall, {encode_cpu:.1f} s CPU")
    print(f"generation: {gen_wall:.1f} s wall ({gen_wall / minutes:.1f} s per minute of video), "
          f"{gen_cpu:.1f} s CPU ({gen_cpu / minutes:.1f} s per minute; "
          f"{gen_cpu / minutes / args.tracks:.1f} per minute per track)")
    print(f"peak resident memory: {peak_mb:.0f} MB")


if __name__ == "__main__":
    main()
