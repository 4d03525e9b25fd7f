"""Where the model runs and in which precision.

`resolve_device("auto" | "cpu" | "cuda" | "cuda:N")` and `resolve_dtype("auto" | "bf16" | "fp32", device)`
turn the CLI's words into torch objects ("auto": the first GPU when there is one, bf16 on CUDA and
fp32 elsewhere). `cast_weights` puts a network's weights in a precision while the tensors the
sampler's arithmetic depends on stay in float32. `GpuSampler` samples the GPU's utilisation for benchmarks.
"""
from __future__ import annotations

import re
import sys
import threading
import time

import torch
from torch import nn

PRECISIONS = {"bf16": torch.bfloat16, "fp32": torch.float32}
# Parameters that stay float32 whatever the weights' precision: the latent statistics
# (normalise/unnormalise the fp32 sampler state). Buffers (rotary tables, timestep frequencies)
# are never cast.
FP32_PARAMETERS = ("latent_mean", "latent_std")


def resolve_device(spec: str | torch.device = "auto") -> torch.device:
    """"auto" -> cuda:0 when CUDA is available, else cpu; "cpu", "cuda", "cuda:N" are checked.

    Raises:
        ValueError: an unknown name, or a CUDA device that is not there (the message says what is).
    """
    if isinstance(spec, torch.device):
        spec = str(spec)
    spec = spec.strip().lower()
    if spec == "auto":
        return torch.device("cuda:0") if torch.cuda.is_available() else torch.device("cpu")
    if spec == "cpu":
        return torch.device("cpu")
    m = re.fullmatch(r"cuda(?::(\d+))?", spec)
    if not m:
        raise ValueError(f"device must be 'auto', 'cpu', 'cuda' or 'cuda:N', got {spec!r}")
    if not torch.cuda.is_available():
        raise ValueError(f"device {spec!r} asked for, but CUDA is not available here (torch {torch.__version__}); "
                         f"use 'cpu' or 'auto'")
    index = int(m.group(1) or 0)
    if index >= torch.cuda.device_count():
        raise ValueError(f"device {spec!r} asked for, but only {torch.cuda.device_count()} CUDA device(s) exist")
    return torch.device("cuda", index)


def resolve_dtype(precision: str | torch.dtype = "auto", device: torch.device | str = "cpu") -> torch.dtype:
    """"bf16" / "fp32" -> the torch dtype; "auto" -> bf16 on CUDA, fp32 elsewhere."""
    if isinstance(precision, torch.dtype):
        if precision not in PRECISIONS.values():
            raise ValueError(f"precision must be bf16 or fp32, got {precision}")
        return precision
    if precision == "auto":
        return torch.bfloat16 if torch.device(device).type == "cuda" else torch.float32
    try:
        return PRECISIONS[precision]
    except KeyError:
        raise ValueError(f"precision must be 'auto', 'bf16' or 'fp32', got {precision!r}") from None


def precision_name(dtype: torch.dtype) -> str:
    return {v: k for k, v in PRECISIONS.items()}[dtype]


def cast_weights(module: nn.Module, dtype: torch.dtype, keep: tuple[str, ...] = FP32_PARAMETERS) -> nn.Module:
    """Cast the floating-point parameters of `module` to `dtype` in place, except those whose last
    name component is in `keep` (which become float32). Buffers are left as they are."""
    for name, p in module.named_parameters():
        target = torch.float32 if name.rsplit(".", 1)[-1] in keep else dtype
        if p.is_floating_point() and p.dtype != target:
            p.data = p.data.to(target)
    return module


def configure_cuda_backends() -> None:
    """Process-wide CUDA switches for inference at fixed shapes: cuDNN picks the fastest convolution
    algorithm per shape once (the sampler's shapes repeat at every step)."""
    torch.backends.cudnn.benchmark = True


def module_dtype(module: nn.Module) -> torch.dtype:
    """The dtype of the module's first floating-point weight that is not kept in float32."""
    for name, p in module.named_parameters():
        if p.is_floating_point() and name.rsplit(".", 1)[-1] not in FP32_PARAMETERS:
            return p.dtype
    return torch.float32


class GpuSampler:
    """Polls NVML's GPU utilisation (% of the last sample period with a kernel running) in a thread, for
    benchmarks: `with GpuSampler("cuda") as s: ...`, then `s.mean(start, end)` over a stretch of time."""

    def __init__(self, device: str, period_s: float = 0.05) -> None:
        self.device, self.period_s = device, period_s
        self.samples: list[tuple[float, float]] = []  # (perf_counter, utilisation %)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)

    def _poll(self) -> None:
        while not self._stop.is_set():
            try:
                self.samples.append((time.perf_counter(), float(torch.cuda.utilization(self.device))))
            except Exception as exc:  # no NVML (pynvml) here: say so once, report nan
                print(f"GPU utilisation not readable: {exc!r}", file=sys.stderr)
                return
            self._stop.wait(self.period_s)

    def __enter__(self) -> "GpuSampler":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    def mean(self, start: float, end: float) -> float:
        """Mean utilisation (%) of the samples taken between ``start`` and ``end`` (perf_counter)."""
        inside = [u for t, u in self.samples if start <= t <= end]
        return sum(inside) / len(inside) if inside else float("nan")
