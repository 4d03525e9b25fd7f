"""Captions in the paper's 'Noun + Verb + Adverb' style (Fig. A2) and VGGSound-style clip labels.

Each kind has several noun+verb paraphrases; the adverb says how loud the source is
(loud / moderate / soft, from its gain), so "The ball bounces loudly." is a loud ball.
"""
from __future__ import annotations

import numpy as np

# Kind -> noun+verb paraphrases. No paraphrase is a prefix of another kind's (see caption_kind).
PHRASES: dict[str, tuple[str, ...]] = {
    "ball": ("The ball bounces", "A rubber ball thumps", "The ball hits the floor"),
    "lamp": ("The lamp beeps", "An electronic tone beeps", "The beeper sounds"),
    "fan": ("The fan hums", "An electric fan whirs", "The fan motor drones"),
    "bird": ("The bird chirps", "A small bird tweets", "The bird sings"),
    "walker": ("Footsteps tap", "A person walks", "Shoes clack on the ground"),
    "door": ("Someone knocks on the door", "Knuckles rap on wood", "The door knocks"),
    "hammer": ("The hammer clanks", "Metal clangs", "A hammer strikes metal"),
    "car": ("The car engine roars", "An engine rumbles", "The car drives by"),
    "drip": ("Water drips", "Drops plink into water", "The faucet drips"),
    "wind": ("Wind blows", "The wind howls", "Wind rustles the grass"),
    "rain": ("Rain falls", "Rain patters", "Raindrops pour down"),
    "crowd": ("A crowd murmurs", "People chatter", "The crowd talks"),
}

ADVERBS: dict[str, tuple[str, ...]] = {
    "loud": ("loudly", "strongly", "sharply"),
    "moderate": ("steadily", "clearly", "moderately"),
    "soft": ("softly", "quietly", "faintly", "gently"),
}

# VGGSound-style single clip labels (one per kind).
LABELS: dict[str, str] = {
    "ball": "ball bouncing",
    "lamp": "electronic beeping",
    "fan": "electric fan humming",
    "bird": "bird chirping, tweeting",
    "walker": "people walking",
    "door": "knocking on door",
    "hammer": "hammering metal",
    "car": "car engine running",
    "drip": "water dripping",
    "wind": "wind noise",
    "rain": "raining",
    "crowd": "people crowd",
}

LOUD_DB, SOFT_DB = -6.0, -13.0  # gain thresholds of the loudness classes


def loudness_class(gain_db: float) -> str:
    """'loud' at or above -6 dB gain, 'soft' below -13 dB, 'moderate' in between."""
    if gain_db >= LOUD_DB:
        return "loud"
    return "moderate" if gain_db >= SOFT_DB else "soft"


def make_caption(rng: np.random.Generator, kind: str, loudness: str) -> str:
    """One caption such as 'The fan hums softly.' (one paraphrase and one adverb drawn from rng)."""
    phrase = PHRASES[kind][int(rng.integers(len(PHRASES[kind])))]
    adverb = ADVERBS[loudness][int(rng.integers(len(ADVERBS[loudness])))]
    return f"{phrase} {adverb}."


def parse_caption(caption: str) -> tuple[str, str]:
    """(kind, loudness) of a caption made by make_caption; ValueError if it is not one."""
    body = caption.rstrip(".")
    for kind, phrases in PHRASES.items():
        for phrase in phrases:
            if body.startswith(phrase + " "):
                adverb = body[len(phrase) + 1:]
                for loudness, words in ADVERBS.items():
                    if adverb in words:
                        return kind, loudness
    raise ValueError(f"not a SynthFoley caption: {caption!r}")
