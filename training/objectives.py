"""Objectives (loss modules for `training.loop.train`) and the batch sources of the demo data.

The objectives are scale-independent: `BaseObjective` and `ControlNetObjective` only call
`nag_model.losses.base_loss` / `controlnet_loss` on whatever tensors a batch source yields, so
the ControlNet stage runs unchanged on real MMAudio features. The batch sources below read the
demo's `FoleyData`.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from nag_model.controlnet import AudioControlNet
from nag_model.demo.evaluators import AudioTagger, VideoTagger
from nag_model.network import MMAudio
from nag_model.losses import base_loss, controlnet_loss, freeze, onset_weights
from training.data import HALF_CLIP, HALF_LATENTS, FoleyData


class BaseObjective(nn.Module):
    """MMAudio's flow-matching loss with condition dropout (p) on normalised latents.

    onset_weight > 0 weights each latent frame by the target's onset strength (`nag_model.losses.onset_weights`):
    event onsets, whose times only the video's sync features tell, count more than steady frames (issue 12).
    0 (the default) is MMAudio's uniform loss, that of the committed weights."""

    def __init__(self, net: MMAudio, p_drop: float = 0.1, onset_weight: float = 0.0):
        super().__init__()
        if onset_weight < 0:
            raise ValueError(f"onset_weight must be >= 0, got {onset_weight}")
        self.net, self.p_drop, self.onset_weight = net, p_drop, onset_weight

    @property
    def trainable(self) -> nn.Module:
        return self.net

    def forward(self, batch: dict, generator: torch.Generator) -> torch.Tensor:
        weight = onset_weights(batch["x1"], self.onset_weight) if self.onset_weight else None
        return base_loss(self.net, self.net.normalize(batch["x1"]), batch["clip_f"], batch["sync_f"], batch["text_f"],
                         video_exist=batch["video_exist"], p_drop=self.p_drop, generator=generator, frame_weight=weight)


class ControlNetObjective(nn.Module):
    """Section 4.2: u_psi(x_t, t, V, empty, x_ref) with the base frozen (its sequence lengths set to the
    target segment's duration by the caller)."""

    def __init__(self, base: MMAudio, controlnet: AudioControlNet):
        super().__init__()
        self.base, self.controlnet = freeze(base), controlnet

    @property
    def trainable(self) -> nn.Module:
        return self.controlnet

    def train(self, mode: bool = True):
        super().train(mode)
        self.base.eval()  # the frozen base never leaves eval mode
        return self

    def forward(self, batch: dict, generator: torch.Generator) -> torch.Tensor:
        b = self.base
        return controlnet_loss(b, self.controlnet, b.normalize(batch["x1"]), b.normalize(batch["reference"]),
                               batch["clip_f"], batch["sync_f"], video_exist=batch["video_exist"], generator=generator)


class TaggerObjective(nn.Module):
    """Audio tagger + text tower: multi-label BCE on audio and on captions through the shared head,
    plus a symmetric InfoNCE between stems and their captions (the CLAP-like space)."""

    def __init__(self, tagger: AudioTagger):
        super().__init__()
        self.tagger = tagger

    @property
    def trainable(self) -> nn.Module:
        return self.tagger

    def forward(self, batch: dict, generator: torch.Generator) -> torch.Tensor:
        t = self.tagger
        audio = t.embed_log_mel(batch["audio"])  # (B, E)
        text = t.embed_text_features(batch["text_f"])  # (B, E)
        loss = F.binary_cross_entropy_with_logits(t.head(audio), batch["audio_kinds"])
        loss = loss + F.binary_cross_entropy_with_logits(t.head(text), batch["text_kinds"])
        pair = batch["paired"]  # rows whose audio is exactly its caption's stem
        if pair.sum() > 1:
            a, c = F.normalize(audio[pair], dim=-1), F.normalize(text[pair], dim=-1)
            logits = t.logit_scale.exp().clamp(max=100) * a @ c.T
            # several rows may share a kind: every same-kind caption counts as a positive
            same = batch["text_kinds"][pair] @ batch["text_kinds"][pair].T > 0
            target = same.float() / same.float().sum(1, keepdim=True)
            loss = loss + 0.5 * (torch.sum(-target * logits.log_softmax(1), 1).mean()
                                 + torch.sum(-target.T * logits.log_softmax(0), 0).mean())
        return loss


class VideoTaggerObjective(nn.Module):
    """Which kinds are heard (BCE) and at what gain (MSE on heard kinds, in 10-dB units), from clip features."""

    def __init__(self, tagger: VideoTagger):
        super().__init__()
        self.tagger = tagger

    @property
    def trainable(self) -> nn.Module:
        return self.tagger

    def forward(self, batch: dict, generator: torch.Generator) -> torch.Tensor:
        logits, gain = self.tagger(batch["clip_f"])
        heard = batch["sounding"]
        mse = ((gain - batch["gain_db"]) / 10).pow(2) * heard
        return F.binary_cross_entropy_with_logits(logits, heard) + mse.sum() / heard.sum().clamp(min=1)


# ---------------------------------------------------------------- batch sources over FoleyData
class BaseBatches:
    """Half the batch audio-visual (mix, the clip's single label, its video), half audio-text (one sounding
    stem, its own caption, null video), as MMAudio mixes VGGSound with audio-text datasets.

    stem_video_fraction > 0 keeps the clip's video for that share of the stem rows: (stem, its caption,
    the clip's video), the conditioning step-by-step generation uses, which the MMAudio mixture never
    shows (issue 12: without it, generated event sounds are not placed at the video's event times).

    caption_mix_fraction > 0 gives that share of the audio-visual rows one sounding source's caption instead
    of the clip's label: (mix, a caption, video), as a real clip's caption names one of the sounds it holds.
    These rows teach the base to make the other sounds the video shows beside the captioned one: the
    leakage NAG removes (issue 12: with stem rows alone, a caption that is not the label never leaks).
    The caption is drawn uniformly over the sounding stems, so a clip with more sounds is drawn more often.

    At 0 and 0 (the defaults here) the batches are MMAudio's mixture alone; the committed demo weights were
    trained with 0.5 and 0.5 (`training.demo.DemoPlan`)."""

    def __init__(self, data: FoleyData, av_fraction: float = 0.5, stem_video_fraction: float = 0.0,
                 caption_mix_fraction: float = 0.0):
        for name, value in (("stem_video_fraction", stem_video_fraction), ("caption_mix_fraction", caption_mix_fraction)):
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {value}")
        self.data, self.av_fraction = data, av_fraction
        self.stem_video_fraction, self.caption_mix_fraction = stem_video_fraction, caption_mix_fraction

    def __call__(self, batch_size: int, generator: torch.Generator) -> dict:
        d = self.data
        n_av = round(batch_size * self.av_fraction)
        n_cm = round(n_av * self.caption_mix_fraction)  # audio-visual rows with a source's caption
        av = torch.randint(len(d), (n_av - n_cm,), generator=generator)
        at = torch.randint(d.stems.shape[0], (batch_size - n_av,), generator=generator)
        cm = torch.randint(d.stems.shape[0], (n_cm,), generator=generator)  # drawn last: the defaults draw as before
        av_clip, av_text = torch.cat([av, d.stem_clip[cm]]), torch.cat([d.label_text[av], d.stem_text[cm]])
        at_clip = d.stem_clip[at]
        n_sv = round((batch_size - n_av) * self.stem_video_fraction)  # stem rows that keep their video
        return {"x1": torch.cat([d.mix[av_clip], d.stems[at]]),
                "clip_f": torch.cat([d.clip_f[av_clip], d.clip_f[at_clip]]),
                "sync_f": torch.cat([d.sync_f[av_clip], d.sync_f[at_clip]]),
                "text_f": torch.cat([d.text[av_text], d.text[d.stem_text[at]]]),
                "video_exist": torch.cat([torch.ones(n_av + n_sv, dtype=torch.bool),
                                          torch.zeros(batch_size - n_av - n_sv, dtype=torch.bool)])}


class ControlNetBatches:
    """Target and reference are the two non-overlapping 4-s halves of one clip (which is which is random):
    the mix with the target half's video, or a stem with null video; the text is always empty."""

    def __init__(self, data: FoleyData, av_fraction: float = 0.5):
        self.data, self.av_fraction = data, av_fraction

    def __call__(self, batch_size: int, generator: torch.Generator) -> dict:
        d = self.data
        n_av = round(batch_size * self.av_fraction)
        av = torch.randint(len(d), (n_av,), generator=generator)
        at = torch.randint(d.stems.shape[0], (batch_size - n_av,), generator=generator)
        audio = torch.cat([d.mix[av], d.stems[at]])  # (B, 250, C)
        clips = torch.cat([av, d.stem_clip[at]])
        half = torch.randint(2, (batch_size,), generator=generator)  # which half is the target
        idx = torch.arange(batch_size)
        halves = audio.view(batch_size, 2, HALF_LATENTS, -1)
        clip_halves = d.clip_f[clips].view(batch_size, 2, HALF_CLIP, -1)
        return {"x1": halves[idx, half], "reference": halves[idx, 1 - half],
                "clip_f": clip_halves[idx, half], "sync_f": d.sync_half[clips, half],
                "video_exist": torch.cat([torch.ones(n_av, dtype=torch.bool), torch.zeros(batch_size - n_av, dtype=torch.bool)])}


class TaggerBatches:
    """Mixes (all heard kinds), single stems (their kind, paired with their caption) and sums of two
    random stems; captions and labels of the clip for the text tower."""

    def __init__(self, data: FoleyData):
        self.data = data
        self.caption_kind = data.caption_kinds()

    def __call__(self, batch_size: int, generator: torch.Generator) -> dict:
        d, k = self.data, len(self.data.sounding[0])
        n_mix, n_pair = batch_size // 4, batch_size // 4
        n_stem = batch_size - n_mix - n_pair
        mix = torch.randint(len(d), (n_mix,), generator=generator)
        stem = torch.randint(d.stems.shape[0], (n_stem,), generator=generator)
        a, b = torch.randint(d.stems.shape[0], (2, n_pair), generator=generator)
        onehot = F.one_hot(d.stem_kind, k).float()
        pair_audio = torch.log10(10 ** d.stems[a] + 10 ** d.stems[b])  # magnitudes add (approximately)
        audio = torch.cat([d.mix[mix], d.stems[stem], pair_audio])
        audio_kinds = torch.cat([d.sounding[mix], onehot[stem], (onehot[a] + onehot[b]).clamp(max=1)])
        text_idx = torch.cat([d.label_text[mix], d.stem_text[stem], d.stem_text[a]])
        text_kinds = F.one_hot(self.caption_kind[text_idx], k).float()
        paired = torch.cat([torch.zeros(n_mix, dtype=torch.bool), torch.ones(n_stem, dtype=torch.bool),
                            torch.zeros(n_pair, dtype=torch.bool)])
        # random level changes: the tagger must not rely on loudness
        audio = audio + 0.5 * torch.randn(batch_size, 1, 1, generator=generator)
        return {"audio": audio, "audio_kinds": audio_kinds, "text_f": d.text[text_idx], "text_kinds": text_kinds,
                "paired": paired}


class VideoTaggerBatches:
    def __init__(self, data: FoleyData):
        self.data = data

    def __call__(self, batch_size: int, generator: torch.Generator) -> dict:
        d = self.data
        i = torch.randint(len(d), (batch_size,), generator=generator)
        return {"clip_f": d.clip_f[i], "sounding": d.sounding[i], "gain_db": d.gain_db[i]}
