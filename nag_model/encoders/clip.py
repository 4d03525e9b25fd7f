"""MMAudio's CLIP: Apple's DFN5B ViT-H-14 image and text towers, used the way MMAudio's `FeaturesUtils` uses them.

- Video: 8 fps frames resized to 384x384 (bicubic, aspect not kept), in [0, 1], normalised with OpenAI
  CLIP's mean/std. Each frame gives its L2-normalised projected image embedding: `clip_f` (B, T, 1024).
- Text: MMAudio patches open_clip's `encode_text`: the per-token hidden states after `ln_final`, with no
  pooling and no `text_projection`, each token L2-normalised: `text_f` (B, 77, 1024). Padding tokens are
  included.

The module's parameter names and shapes are open_clip's, so open_clip's checkpoint of the model
(`open_clip_pytorch_model.bin` from HF `apple/DFN5B-CLIP-ViT-H-14-384`, since renamed `-378`) loads
strictly. That model's open_clip config says image size 378: the 27x27 patch grid of 14-px patches. MMAudio
feeds 384x384 frames, so the stride-14 patch convolution never sees the last 6 pixel rows and columns. The
config keeps both numbers (`image_size` for the grid, `frame_size` for the input).
"""
from __future__ import annotations

import math
import pickle
import zipfile
from dataclasses import asdict, dataclass
from typing import Mapping, Sequence

import fsspec
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from common.presets import pick_preset
from nag_model.checkpoint import (OFFICIAL_WEIGHTS, ChecksumMismatch, CorruptWeights, WeightsNotFound,
                                  _missing_message, check_state_dict, file_digest)
from nag_model.encoders.clip_tokenizer import CLIPTokenizer

# OpenAI CLIP's normalisation constants; MMAudio uses them with the DFN5B model.
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


@dataclass(frozen=True)
class CLIPConfig:
    """open_clip's `CLIP` hyper-parameters (model_cfg of the checkpoint's open_clip_config.json)."""

    name: str
    embed_dim: int = 1024
    image_size: int = 378  # sets the patch grid: image_size // patch_size per side
    patch_size: int = 14
    vision_width: int = 1280
    vision_layers: int = 32
    vision_head_width: int = 80
    context_length: int = 77
    vocab_size: int = 49408
    text_width: int = 1024
    text_heads: int = 16
    text_layers: int = 24
    mlp_ratio: float = 4.0
    quick_gelu: bool = True
    frame_size: int = 384  # the frame size MMAudio feeds (frames are resized to frame_size x frame_size)

    @property
    def grid_size(self) -> int:
        return self.image_size // self.patch_size

    @property
    def vision_heads(self) -> int:
        return self.vision_width // self.vision_head_width

    def to_dict(self) -> dict:
        return asdict(self)


CLIP_PRESETS: dict[str, CLIPConfig] = {
    # apple/DFN5B-CLIP-ViT-H-14-384 = open_clip 'ViT-H-14-378-quickgelu' (986 714 881 parameters).
    "dfn5b_vit_h_14_384": CLIPConfig("dfn5b_vit_h_14_384"),
    # Tests: the same layout at toy width, keeping the 378-grid / 384-frame quirk (27-px patches, 14x14 grid).
    "tiny": CLIPConfig("tiny", embed_dim=16, image_size=378, patch_size=27, vision_width=32, vision_layers=2,
                       vision_head_width=16, text_width=8, text_heads=2, text_layers=2),
}
DEFAULT_PRESET = "dfn5b_vit_h_14_384"
# Preset -> key of its official file in nag_model.checkpoint.OFFICIAL_WEIGHTS (checked at load time).
OFFICIAL_FILES: dict[str, str] = {"dfn5b_vit_h_14_384": "clip"}


def get_clip_config(preset: str | CLIPConfig) -> CLIPConfig:
    return pick_preset(preset, CLIP_PRESETS, CLIPConfig, "CLIP", KeyError)


class QuickGELU(nn.Module):
    """x * sigmoid(1.702 x), the GELU approximation CLIP was trained with."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.sigmoid(1.702 * x)


class SelfAttention(nn.Module):
    """Multi-head self-attention with nn.MultiheadAttention's parameter layout (q, k, v stacked in blocks)."""

    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.heads = heads
        self.in_proj_weight = nn.Parameter(torch.empty(3 * dim, dim))
        self.in_proj_bias = nn.Parameter(torch.zeros(3 * dim))
        self.out_proj = nn.Linear(dim, dim)
        nn.init.xavier_uniform_(self.in_proj_weight)

    def forward(self, x: torch.Tensor, causal: bool = False) -> torch.Tensor:
        b, n, d = x.shape  # (B, N, D)
        qkv = F.linear(x, self.in_proj_weight, self.in_proj_bias)
        q, k, v = qkv.view(b, n, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)  # each (B, H, N, D/H)
        out = F.scaled_dot_product_attention(q, k, v, is_causal=causal)
        return self.out_proj(out.transpose(1, 2).reshape(b, n, d))


class MLP(nn.Module):
    def __init__(self, dim: int, hidden: int, quick_gelu: bool):
        super().__init__()
        self.c_fc = nn.Linear(dim, hidden)
        self.act = QuickGELU() if quick_gelu else nn.GELU()
        self.c_proj = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.c_proj(self.act(self.c_fc(x)))


class ResidualBlock(nn.Module):
    """Pre-LayerNorm transformer block: x + attn(ln_1(x)), then x + mlp(ln_2(x))."""

    def __init__(self, dim: int, heads: int, mlp_ratio: float, quick_gelu: bool):
        super().__init__()
        self.ln_1 = nn.LayerNorm(dim)
        self.attn = SelfAttention(dim, heads)
        self.ln_2 = nn.LayerNorm(dim)
        self.mlp = MLP(dim, int(dim * mlp_ratio), quick_gelu)

    def forward(self, x: torch.Tensor, causal: bool = False) -> torch.Tensor:
        x = x + self.attn(self.ln_1(x), causal)
        return x + self.mlp(self.ln_2(x))


class Transformer(nn.Module):
    def __init__(self, dim: int, layers: int, heads: int, mlp_ratio: float, quick_gelu: bool):
        super().__init__()
        self.resblocks = nn.ModuleList(ResidualBlock(dim, heads, mlp_ratio, quick_gelu) for _ in range(layers))

    def forward(self, x: torch.Tensor, causal: bool = False) -> torch.Tensor:
        for block in self.resblocks:
            x = block(x, causal)
        return x


class VisionTower(nn.Module):
    """ViT: 14-px patches + class token + learned positions -> ln_pre -> blocks -> ln_post(class token) @ proj."""

    def __init__(self, c: CLIPConfig):
        super().__init__()
        scale = c.vision_width ** -0.5
        self.class_embedding = nn.Parameter(scale * torch.randn(c.vision_width))
        self.positional_embedding = nn.Parameter(scale * torch.randn(c.grid_size ** 2 + 1, c.vision_width))
        self.proj = nn.Parameter(scale * torch.randn(c.vision_width, c.embed_dim))
        self.conv1 = nn.Conv2d(3, c.vision_width, kernel_size=c.patch_size, stride=c.patch_size, bias=False)
        self.ln_pre = nn.LayerNorm(c.vision_width)
        self.transformer = Transformer(c.vision_width, c.vision_layers, c.vision_heads, c.mlp_ratio, c.quick_gelu)
        self.ln_post = nn.LayerNorm(c.vision_width)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = self.conv1(images).flatten(2).transpose(1, 2)  # (N, grid*grid, W), row-major patches
        cls = self.class_embedding.to(x.dtype).expand(x.shape[0], 1, -1)
        x = torch.cat([cls, x], dim=1) + self.positional_embedding.to(x.dtype)  # (N, 1 + grid*grid, W)
        x = self.transformer(self.ln_pre(x))
        return self.ln_post(x[:, 0]) @ self.proj  # (N, E)


class CLIP(nn.Module):
    """open_clip's `CLIP` layout with MMAudio's two entry points.

    The text tower lives at the top level, as in open_clip. `text_projection` and `logit_scale` are part of
    the checkpoint but MMAudio's paths do not use them.
    """

    def __init__(self, config: CLIPConfig, tokenizer: CLIPTokenizer | None = None):
        super().__init__()
        c = self.config = config
        # Registration order gives open_clip's state-dict order.
        self.positional_embedding = nn.Parameter(0.01 * torch.randn(c.context_length, c.text_width))
        self.text_projection = nn.Parameter(c.text_width ** -0.5 * torch.randn(c.text_width, c.embed_dim))
        self.logit_scale = nn.Parameter(torch.tensor(math.log(1 / 0.07)))
        self.visual = VisionTower(c)
        self.transformer = Transformer(c.text_width, c.text_layers, c.text_heads, c.mlp_ratio, c.quick_gelu)
        self.token_embedding = nn.Embedding(c.vocab_size, c.text_width)
        self.ln_final = nn.LayerNorm(c.text_width)
        nn.init.normal_(self.token_embedding.weight, std=0.02)
        self.tokenizer = tokenizer

    @property
    def device(self) -> torch.device:
        return self.token_embedding.weight.device

    @property
    def dtype(self) -> torch.dtype:
        return self.token_embedding.weight.dtype

    def encode_image(self, images: torch.Tensor, normalize: bool = True) -> torch.Tensor:
        """Normalised images (N, 3, H, W) -> projected embeddings (N, E), L2-normalised unless told not to."""
        x = self.visual(images.to(self.device, self.dtype))
        return F.normalize(x, dim=-1) if normalize else x

    @torch.no_grad()
    def encode_video(self, frames: torch.Tensor, batch_size: int | None = None) -> torch.Tensor:
        """MMAudio's `encode_video_with_clip`.

        Args:
            frames: (B, T, 3, frame_size, frame_size) RGB in [0, 1] (see `resize_frames`), 8 fps.
            batch_size: frames per forward pass (all at once by default).
        Returns:
            clip_f: (B, T, embed_dim), each frame's embedding L2-normalised.
        """
        s = self.config.frame_size
        if frames.ndim != 5 or tuple(frames.shape[2:]) != (3, s, s):
            raise ValueError(f"frames must be (B, T, 3, {s}, {s}) in [0, 1], got {tuple(frames.shape)}")
        b, t = frames.shape[:2]
        x = frames.to(self.device, self.dtype)
        mean = torch.tensor(CLIP_MEAN, dtype=x.dtype, device=x.device).view(3, 1, 1)
        std = torch.tensor(CLIP_STD, dtype=x.dtype, device=x.device).view(3, 1, 1)
        x = ((x - mean) / std).flatten(0, 1)  # (B*T, 3, S, S)
        step = batch_size or x.shape[0]
        out = torch.cat([self.encode_image(x[i:i + step]) for i in range(0, x.shape[0], step)])
        return out.view(b, t, -1)

    @torch.no_grad()
    def encode_tokens(self, tokens: torch.Tensor, normalize: bool = True) -> torch.Tensor:
        """MMAudio's patched `encode_text` on token ids (B, 77) -> (B, 77, text_width) after ln_final,
        per-token L2-normalised unless told not to (causal attention; no pooling, no projection)."""
        if tokens.ndim != 2 or tokens.shape[1] != self.config.context_length:
            raise ValueError(f"tokens must be (B, {self.config.context_length}), got {tuple(tokens.shape)}")
        x = self.token_embedding(tokens.to(self.device)) + self.positional_embedding  # (B, L, Wt)
        x = self.ln_final(self.transformer(x, causal=True))
        return F.normalize(x, dim=-1) if normalize else x

    def encode_text(self, captions: Sequence[str]) -> torch.Tensor:
        """MMAudio's `encode_text`: captions -> text_f (B, 77, text_width), per-token L2-normalised."""
        if isinstance(captions, str):
            raise TypeError("encode_text takes a list of captions, not one string")
        if self.tokenizer is None:
            raise RuntimeError("this CLIP has no tokenizer: pass tokenizer= (nag_model.encoders.clip_tokenizer)")
        return self.encode_tokens(self.tokenizer(list(captions)))


def build_clip(preset: str | CLIPConfig = DEFAULT_PRESET, *, tokenizer: CLIPTokenizer | None = None) -> CLIP:
    """CLIP with random weights (tests, benchmarks); build under `torch.device('meta')` for shapes only."""
    return CLIP(get_clip_config(preset), tokenizer).eval().requires_grad_(False)


def resize_frames(frames: np.ndarray | torch.Tensor, size: int = 384) -> torch.Tensor:
    """MMAudio's CLIP frame transform on decoded frames: (T, H, W, 3) uint8 -> (T, 3, size, size) float32 in [0, 1].

    Bicubic with antialiasing, aspect ratio not kept, rounded back to uint8 and scaled by 1/255, as
    torchvision's `v2.Resize((size, size), BICUBIC)` + `v2.ToDtype(float32, scale=True)` do it in
    `mmaudio/eval_utils.py::load_video` (torch only; on CPU the same native uint8 kernel runs).
    """
    x = torch.as_tensor(frames)
    if x.ndim != 4 or x.shape[-1] != 3 or x.dtype != torch.uint8:
        raise ValueError(f"frames must be (T, H, W, 3) uint8, got {tuple(x.shape)} {x.dtype}")
    x = x.permute(0, 3, 1, 2)  # (T, 3, H, W), channels-last memory as in MMAudio
    if tuple(x.shape[-2:]) != (size, size):
        if x.device.type == "cpu":
            x = F.interpolate(x, size=(size, size), mode="bicubic", align_corners=False, antialias=True)
        else:  # no uint8 bicubic kernel off the CPU: torchvision resizes in float32, clamps and rounds
            x = F.interpolate(x.float(), size=(size, size), mode="bicubic", align_corners=False, antialias=True)
            x = x.clamp_(0, 255).round_().to(torch.uint8)
    return x.to(torch.float32).mul_(1.0 / 255)


def _read_state_dict(fs, p: str, path: str) -> dict[str, torch.Tensor]:
    try:
        with fs.open(p, "rb") as f:
            state = torch.load(f, map_location="cpu", weights_only=True)
    except (RuntimeError, EOFError, pickle.UnpicklingError, zipfile.BadZipFile, ValueError) as err:
        raise CorruptWeights(f"cannot read CLIP weights {path!r} ({fs.size(p)} bytes): the file is truncated "
                             f"or not a torch checkpoint ({type(err).__name__}: {err}). Re-download it.") from err
    if isinstance(state, Mapping) and isinstance(state.get("state_dict"), Mapping):
        state = state["state_dict"]
    if not isinstance(state, Mapping) or not state or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CorruptWeights(f"{path!r} does not hold a state dict of tensors")
    return _as_open_clip_keys(dict(state))


def _as_open_clip_keys(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The two harmless variants open_clip's own loader accepts: a DDP `module.` prefix and a (1,)-shaped
    `logit_scale` (open_clip's CLIP has a scalar one)."""
    if next(iter(state)).startswith("module."):
        state = {k.removeprefix("module."): v for k, v in state.items()}
    if "logit_scale" in state and state["logit_scale"].numel() == 1:
        state["logit_scale"] = state["logit_scale"].reshape(())
    return state


def load_clip(path: str, preset: str | CLIPConfig = DEFAULT_PRESET, *, vocab: str | None = None,
              verify_checksum: bool = True, storage_options: Mapping | None = None) -> CLIP:
    """Load open_clip's checkpoint of MMAudio's CLIP (local path or fsspec URL) strictly, with its tokenizer.

    For the official preset the file's size and sha256 must match the registry (`verify_checksum=False`
    skips both). The tokenizer vocabulary is `vocab`, else `bpe_simple_vocab_16e6.txt.gz` beside the
    weights, else the copy shipped by an installed package (`clip_tokenizer.find_vocab`).

    Returns:
        CLIP in eval mode, frozen, on the CPU in float32, with `.encode_video(frames)` and
        `.encode_text(captions)` equal to MMAudio's `FeaturesUtils.encode_video_with_clip` / `encode_text`.
    """
    config = get_clip_config(preset)
    known = OFFICIAL_WEIGHTS.get(OFFICIAL_FILES.get(config.name, ""))
    opts = dict(storage_options or {})
    fs, p = fsspec.core.url_to_fs(path, **opts)
    if not fs.exists(p):
        raise WeightsNotFound(_missing_message(path, f"CLIP weights for {config.name}", known))
    weights_dir = path.rsplit("/", 1)[0] if "/" in path else "."
    tokenizer = CLIPTokenizer(vocab, weights_dir=weights_dir, context_length=config.context_length,
                              storage_options=opts)
    if verify_checksum and known is not None:
        size = fs.size(p)
        if known.nbytes is not None and size != known.nbytes:
            what = "truncated (an interrupted download?)" if size < known.nbytes else "not that file"
            raise ChecksumMismatch(f"{path!r} has {size} bytes, expected {known.nbytes} for {known.filename} "
                                   f"(sha256 {known.sha256}): it is {what}; re-download it from {known.url}")
        if known.sha256:
            digest = file_digest(path, "sha256", opts)
            if digest != known.sha256:
                raise ChecksumMismatch(f"{path!r} has sha256 {digest}, expected {known.sha256} for "
                                       f"{known.filename} ({config.name}); re-download it from {known.url}")
    state = _read_state_dict(fs, p, path)
    with torch.device("meta"):
        net = CLIP(config, tokenizer)
    check_state_dict(net, state, f"CLIP weights in {path}")
    net.load_state_dict(state, strict=True, assign=True)
    return net.eval().requires_grad_(False)

