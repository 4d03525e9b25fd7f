"""The two prompts of the captioner and the rules its answer must follow (appendix C, Fig. A2 of the NAG paper).

Step 1 asks a vision-language model for the distinct sound events a video is likely to hold, foreground and
background, as short numbered sentences. Step 2 asks it to rewrite that answer as a JSON object that lists only
the captions, and the answer is constrained by :func:`caption_schema` (structured output). The prompts are our
own wording of the paper's; the format rule ("Noun + Verb + Adverbs"), the two examples and the cap of five
captions are the paper's.

:func:`parse_answer` checks a step-2 answer whatever produced it: JSON of the right shape, each caption a short
sentence of words (:data:`CAPTION_PATTERN`) within the length limit, duplicates dropped (case and punctuation
ignored), at most ``max_captions`` kept in the order given.
"""
from __future__ import annotations

import json
import re

MAX_CAPTIONS = 5  # the paper's Multi-Caps count
MAX_CAPTION_CHARS = 80  # "a simple sentence of a few words"; the pipeline's own limit applies on top
# 2 to 10 words of letters (apostrophes and hyphens inside words), one space between words, an optional full stop.
CAPTION_PATTERN = r"^[A-Za-z][A-Za-z'-]*( [A-Za-z][A-Za-z'-]*){1,9}\.?$"

DESCRIBE_PROMPT = """\
Task:
You create sound effects for films. From what the video frames show, list several sounds that its soundtrack \
could plausibly contain. Each description names exactly one distinct sound event. It can be a foreground \
sound, something the picture shows making a noise (for example a dog barking, footsteps), or an ambient \
background sound that the setting suggests without showing its source (for example distant wind, the soft \
hum of a city).

Examples:
#1 The dog barks loudly.
#2 The river flows gently.

Instructions:
1. Write each description as 'Noun + Verb + Adverbs' (the adverbs may be left out): one short, simple sentence \
of a few words.
2. Each description is about one distinct sound event.
3. Start each description with '#N', where N is its number.
4. Do not repeat a sound; give at most {max_captions} descriptions."""

REFORMAT_PROMPT = """\
Below are sound descriptions written for a video. Rewrite them as a JSON object of the form \
{{"captions": ["...", "..."]}} that lists only the descriptions themselves: drop the '#N' numbers and any other \
text, keep each as a short sentence of the form 'Noun + Verb + Adverbs' with a full stop, keep their order, \
leave out repeats, and give at most {max_captions}.

Descriptions:
{answer}"""

RETRY_NOTE = ("\n\nYour previous answer could not be used ({reason}). Answer with the JSON object only, with at "
              "least one caption.")


class MalformedAnswer(ValueError):
    """A step-2 answer that gives no usable caption (the message says why)."""


def describe_prompt(max_captions: int = MAX_CAPTIONS) -> str:
    """The step-1 prompt (sent with the video's frames)."""
    return DESCRIBE_PROMPT.format(max_captions=max_captions)


def reformat_prompt(answer: str, max_captions: int = MAX_CAPTIONS, retry_reason: str | None = None) -> str:
    """The step-2 prompt for a step-1 ``answer``; ``retry_reason`` says why a first step-2 answer failed."""
    text = REFORMAT_PROMPT.format(max_captions=max_captions, answer=answer.strip())
    return text + (RETRY_NOTE.format(reason=retry_reason) if retry_reason else "")


def caption_schema(max_captions: int = MAX_CAPTIONS, max_chars: int = MAX_CAPTION_CHARS) -> dict:
    """The JSON schema of a step-2 answer: ``{"captions": [1..max_captions short sentences]}``."""
    return {
        "type": "object",
        "properties": {
            "captions": {
                "type": "array",
                "minItems": 1,
                "maxItems": max_captions,
                "items": {"type": "string", "minLength": 3, "maxLength": max_chars, "pattern": CAPTION_PATTERN},
            },
        },
        "required": ["captions"],
        "additionalProperties": False,
    }


_NUMBERING = re.compile(r"^\s*(#\s*\d+[.:)]?|\d+[.)]|[-*])\s*")


def _dedup_key(caption: str) -> str:
    return " ".join(re.sub(r"[^a-z0-9 ]+", " ", caption.lower()).split())


def parse_answer(text: str | None, *, max_captions: int = MAX_CAPTIONS,
                 max_chars: int = MAX_CAPTION_CHARS) -> tuple[list[str], list[str]]:
    """The captions of a step-2 answer, and what was dropped and why.

    Captions are stripped of a leading ``#N`` and surrounding space; one that does not match
    :data:`CAPTION_PATTERN` or is longer than ``max_chars`` is dropped, as are repeats; the first
    ``max_captions`` are kept.

    Raises:
        MalformedAnswer: empty text, not JSON, not ``{"captions": [strings]}``, or no caption left.
    """
    if text is None or not text.strip():
        raise MalformedAnswer("the answer is empty")
    body = text.strip()
    if body.startswith("```"):  # a fenced block from a server without structured output
        body = re.sub(r"^```[a-zA-Z]*\s*|\s*```$", "", body)
    try:
        data = json.loads(body)
    except json.JSONDecodeError as exc:
        raise MalformedAnswer(f"the answer is not JSON ({exc.msg} at character {exc.pos})") from None
    if not isinstance(data, dict) or not isinstance(data.get("captions"), list):
        raise MalformedAnswer('the answer is not a JSON object with a "captions" list')
    kept, dropped, seen = [], [], set()
    for item in data["captions"]:
        if not isinstance(item, str):
            dropped.append(f"{item!r}: not a string")
            continue
        caption = _NUMBERING.sub("", item).strip()
        if len(caption) > max_chars:
            dropped.append(f"{caption[:40]!r}...: {len(caption)} characters, over {max_chars}")
        elif not re.fullmatch(CAPTION_PATTERN, caption):
            dropped.append(f"{caption!r}: not a short sentence of 2 to 10 words")
        elif _dedup_key(caption) in seen:
            dropped.append(f"{caption!r}: a repeat")
        elif len(kept) >= max_captions:
            dropped.append(f"{caption!r}: over the cap of {max_captions}")
        else:
            seen.add(_dedup_key(caption))
            kept.append(caption)
    if not kept:
        why = f" (dropped: {'; '.join(dropped)[:300]})" if dropped else ""
        raise MalformedAnswer(f"the answer lists no usable caption{why}")
    return kept, dropped


def answer_json(captions: list[str]) -> str:
    """A step-2 answer holding ``captions`` (what a well-behaved model returns)."""
    return json.dumps({"captions": captions})
