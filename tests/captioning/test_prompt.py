"""The answer rules, on recorded answers (good ones, and the broken ones servers and models really give)."""
from __future__ import annotations

import json
import re

import pytest

from captioning.prompt import (CAPTION_PATTERN, MalformedAnswer, caption_schema, describe_prompt, parse_answer,
                               reformat_prompt)
from captioning.two_step import CaptionerAnswerError, two_step_captions

FRAME = __import__("numpy").zeros((28, 28, 3), "uint8")


def test_a_clean_answer_is_kept_in_order():
    answer = '{"captions": ["Ocean waves crash loudly.", "Sail flaps rhythmically.", "Wind whistles sharply."]}'
    assert parse_answer(answer) == (["Ocean waves crash loudly.", "Sail flaps rhythmically.",
                                     "Wind whistles sharply."], [])


def test_numbering_repeats_and_the_cap():
    answer = json.dumps({"captions": ["#1 The dog barks loudly.", "#2 the dog barks loudly", "3. Rain falls.",
                                      "Birds chirp.", "Cars pass by.", "Wind blows.", "Doors slam shut."]})
    kept, dropped = parse_answer(answer)
    assert kept == ["The dog barks loudly.", "Rain falls.", "Birds chirp.", "Cars pass by.", "Wind blows."]
    assert any("a repeat" in d for d in dropped) and any("over the cap of 5" in d for d in dropped)


def test_long_or_odd_captions_are_dropped_with_a_reason():
    answer = json.dumps({"captions": ["Wind " + "blows " * 20, "Beep", "A dog barks! Then a cat.", 7, "Rain falls."]})
    kept, dropped = parse_answer(answer, max_chars=80)
    assert kept == ["Rain falls."] and len(dropped) == 4
    assert "characters, over 80" in dropped[0] and "not a string" in dropped[3]


@pytest.mark.parametrize("answer, reason", [
    ("", "empty"), ("   \n", "empty"), (None, "empty"),
    ('{"captions": ["Rain falls."', "not JSON"),  # cut off at max_tokens
    ("#1 The dog barks loudly.\n#2 The river flows gently.", "not JSON"),  # a step-1 style answer
    ('["Rain falls."]', 'not a JSON object with a "captions" list'),
    ('{"caption": "Rain falls."}', 'not a JSON object with a "captions" list'),
    ('{"captions": []}', "no usable caption"),
    ('{"captions": ["", "   ", "x"]}', "no usable caption"),
])
def test_broken_answers_are_malformed(answer, reason):
    with pytest.raises(MalformedAnswer, match=reason):
        parse_answer(answer)


def test_a_fenced_answer_from_a_server_without_structured_output_is_read():
    assert parse_answer('```json\n{"captions": ["Rain falls."]}\n```')[0] == ["Rain falls."]


def test_the_schema_and_the_pattern_agree_with_the_paper_examples():
    schema = caption_schema()
    assert schema["properties"]["captions"]["maxItems"] == 5 and schema["required"] == ["captions"]
    for caption in ("Ocean waves crash loudly.", "Grass rustles gently underfoot.", "Bicycles click softly as they move.",
                    "Birds chirp in the distance.", "The dog barks loudly."):
        assert re.fullmatch(CAPTION_PATTERN, caption), caption
    prompt = describe_prompt()
    assert "#1 The dog barks loudly." in prompt and "'Noun + Verb + Adverbs'" in prompt and "at most 5" in prompt
    assert "Rain falls." in reformat_prompt("#1 Rain falls.") and "could not be used (x)" in reformat_prompt("a", retry_reason="x")


class Recorded:
    """A chat backend that replays recorded answers and keeps the requests."""

    model = "recorded"

    def __init__(self, *answers):
        self.answers, self.requests = list(answers), []

    def __call__(self, messages, *, json_schema=None, max_tokens=512):
        self.requests.append((messages, json_schema))
        return self.answers.pop(0)


def test_two_steps_send_frames_first_then_the_schema():
    chat = Recorded("#1 Waves crash loudly.\n#2 Gulls cry.", '{"captions": ["Waves crash loudly.", "Gulls cry."]}')
    trace = two_step_captions(chat, [FRAME, FRAME], backend="endpoint")
    assert trace.captions == ("Waves crash loudly.", "Gulls cry.") and trace.attempts == 2 and trace.error is None
    (first, no_schema), (second, schema) = chat.requests
    assert no_schema is None and [p["type"] for p in first[0]["content"]] == ["image_url", "image_url", "text"]
    assert first[0]["content"][0]["image_url"]["url"].startswith("data:image/jpeg;base64,")
    assert schema == caption_schema() and "#2 Gulls cry." in second[0]["content"]


def test_a_malformed_reformat_is_retried_once_then_fails_with_the_trace():
    ok = two_step_captions(Recorded("#1 Rain falls.", "{not json", '{"captions": ["Rain falls."]}'), [FRAME],
                           backend="local")
    assert ok.captions == ("Rain falls.",) and ok.attempts == 3
    chat = Recorded("#1 Rain falls.", "{not json", '{"captions": []}')
    with pytest.raises(CaptionerAnswerError, match="unusable twice: the answer lists no usable caption") as info:
        two_step_captions(chat, [FRAME], backend="local")
    assert "could not be used (the answer is not JSON" in chat.requests[2][0][0]["content"]
    trace = info.value.trace
    assert trace.raw_answer == "#1 Rain falls." and trace.structured_answer == '{"captions": []}'
    assert trace.attempts == 3 and trace.captions == () and "no usable caption" in trace.error


def test_an_empty_description_is_asked_again_once():
    assert two_step_captions(Recorded("", "#1 Rain falls.", '{"captions": ["Rain falls."]}'), [FRAME],
                             backend="local").attempts == 3
    with pytest.raises(CaptionerAnswerError, match="empty twice"):
        two_step_captions(Recorded("", " "), [FRAME], backend="local")


def test_the_error_keeps_its_trace_through_pickling():
    import pickle

    err = CaptionerAnswerError("x", two_step_captions(Recorded("#1 A b.", '{"captions": ["Rain falls."]}'), [FRAME],
                                                      backend="local"))
    assert pickle.loads(pickle.dumps(err)).trace == err.trace
