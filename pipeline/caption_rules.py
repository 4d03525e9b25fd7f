"""The rules a video's captions must meet, from the manifest or a captioner (library code; the task is
:func:`tasks.captions.resolve_captions`).

Rules (a broken caption list fails that video with a clear error; the catalog goes on):

* none in the manifest (missing or empty field): the captioner proposes up to 5 (the paper's
  Multi-Caps count): the bundle's own (``--captioner demo``, the default; a bundle without one fails
  the video), or a VLM asked with the paper's two-step prompt (``--captioner endpoint|local``,
  :mod:`captioning`, :mod:`pipeline.captioner`), whose prompt, model and raw answers come back in the
  :class:`Captions`' ``trace`` for the ``captions`` table, also when its answer was unusable
  (:class:`captioning.two_step.CaptionerAnswerError` carries them);
* an explicit empty list, or a blank caption, fails the video;
* over-long captions fail the video rather than being cut: a caption longer than
  ``max_caption_chars``, or with more words than the model's text window
  (``base.config.text_seq_len``; words are a lower bound for sub-word tokenizers), would lose its
  tail silently inside the text encoder, and the track would not be what the caption says.
  Failing keeps every stored caption equal to what conditioned its track.
"""
from __future__ import annotations

from nag_model.encoders.demo import tokenize

MAX_CAPTIONS = 5
DEFAULT_MAX_CAPTION_CHARS = 300


class CaptionError(ValueError):
    """A video's captions cannot be used (the message says why)."""


def check_captions(captions: list[str], *, max_chars: int, max_words: int | None) -> list[str]:
    """Stripped captions, or ``CaptionError`` for an empty list, a blank or an over-long caption."""
    if not captions:
        raise CaptionError("the caption list is empty; give at least one caption, or leave the field out to "
                           "use the model's captioner")
    out = []
    for k, caption in enumerate(captions, start=1):
        text = caption.strip() if isinstance(caption, str) else ""
        if not text:
            raise CaptionError(f"caption {k} of {len(captions)} is blank")
        if len(text) > max_chars:
            raise CaptionError(f"caption {k} is {len(text)} characters long; the limit is {max_chars} "
                               f"(over-long captions are rejected, not cut): {text[:60]!r}...")
        words = len(tokenize(text))
        if max_words is not None and words > max_words:
            raise CaptionError(f"caption {k} has {words} words; the model reads at most {max_words} text tokens, "
                               f"so its tail would be dropped silently: {text[:60]!r}...")
        out.append(text)
    return out
