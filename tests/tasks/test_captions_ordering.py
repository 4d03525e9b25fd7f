"""Captions (manifest or captioner, with the over-long rule) and the ordering modes."""
from __future__ import annotations

import pytest

from pipeline.handoffs import Captions
from storage.manifest import ManifestEntry
from pipeline.caption_rules import CaptionError, check_captions
from tasks.captions import resolve_captions
from tasks.ordering import order_captions, order_indices
from pipeline.videos import describe_video


@pytest.fixture(scope="module")
def video(h, demo_video):
    return describe_video(demo_video, h.MODEL, h.DURATION)


def entry(captions, video_id="v"):
    return ManifestEntry(1, video_id, "x", None if captions is None else tuple(captions))


def test_manifest_captions_are_stripped_and_kept_in_order(h, video):
    out = resolve_captions.fn(entry([" A dog barks. ", "Rain falls."]), video, h.MODEL, h.DURATION)
    assert out == Captions(("A dog barks.", "Rain falls."), "manifest")


@pytest.mark.parametrize("captions, fragment", [
    ([], "caption list is empty"), (["ok", "  "], "caption 2 of 2 is blank"),
    (["word " * 40], "has 40 words; the model reads at most 8"), (["x" * 301], "301 characters long; the limit is 300"),
])
def test_broken_caption_lists_fail_the_video(h, video, captions, fragment):
    with pytest.raises(CaptionError, match=fragment):
        resolve_captions.fn(entry(captions), video, h.MODEL, h.DURATION)


def test_no_captions_and_no_captioner_is_an_error(h, video):
    with pytest.raises(CaptionError, match="has no captioner"):
        resolve_captions.fn(entry(None), video, h.MODEL, h.DURATION)


def test_the_captioner_fills_in_missing_captions(video, evaluated_model, h):
    out = resolve_captions.fn(entry(None), video, evaluated_model, h.DURATION)
    assert out == Captions(("A motor hums steadily.", "A lamp beeps softly."), "captioner", trace=out.trace)
    assert out.trace.backend == "demo" and out.trace.model.startswith("random-tiny-evaluated@")


def test_check_captions_limits_are_inclusive():
    assert check_captions(["x" * 10], max_chars=10, max_words=1) == ["x" * 10]


CAPS = Captions(("bb", "a", "cccc", "ddd"), "manifest")


@pytest.mark.parametrize("order, expected", [
    ("descending", ["cccc", "ddd", "bb", "a"]), ("ascending", ["a", "bb", "ddd", "cccc"]),
    ("given", ["bb", "a", "cccc", "ddd"]),
])
def test_orders_with_a_scorer(video, evaluated_model, h, order, expected):
    out = order_captions.fn(CAPS, video, evaluated_model, h.DURATION, order, 0, "v")
    assert list(out.captions) == expected and out.order == order and out.requested == order
    if order != "given":
        assert list(out.scores) == [float(len(c)) for c in expected]


def test_without_a_scorer_ranked_orders_fall_back_to_given_and_say_so(video, h):
    out = order_captions.fn(CAPS, video, h.MODEL, h.DURATION, "descending", 0, "v")
    assert out.captions == CAPS.captions and out.order == "given" and out.requested == "descending"
    assert out.scores is None


def test_random_order_is_seeded_by_run_seed_and_video():
    a = order_indices(None, "random", n=8, seed=1, video_id="v")[0]
    assert a == order_indices(None, "random", n=8, seed=1, video_id="v")[0]
    assert sorted(a) == list(range(8))
    others = {tuple(order_indices(None, "random", n=8, seed=s, video_id=v)[0]) for s, v in [(2, "v"), (1, "w")]}
    assert any(o != tuple(a) for o in others)  # another seed or video shuffles differently
    with pytest.raises(ValueError, match="order must be one of"):
        order_indices(None, "loudest", n=2, seed=0, video_id="v")


@pytest.fixture
def imagebind_weights(tmp_path):
    """A tiny ImageBind weight file, loaded through the evaluation registry as the user's file would be."""
    import torch

    from evaluation.registry import EVAL_MODELS, clear_loaded, model_class

    torch.manual_seed(0)
    path = tmp_path / "imagebind.pth"
    torch.save(model_class(EVAL_MODELS["imagebind"])("tiny").state_dict(), path)
    clear_loaded()
    yield [f"imagebind:tiny={path}"]
    clear_loaded()


@pytest.mark.parametrize("order", ["descending", "ascending"])
def test_imagebind_ranks_the_captions_when_configured(video, h, imagebind_weights, order):
    """The paper orders by ImageBind's video-text score: with `imagebind` among the evaluation models it ranks
    even for a model without a scorer, on frames decoded at its rate, and the result names it."""
    from evaluation.registry import load_eval_model, parse_eval_weights
    from pipeline.metrics import frame_request, model_frames

    texts = ["A dog barks.", "Rain falls on a roof.", "A door slams.", "Wind blows."]
    out = order_captions.fn(Captions(tuple(texts), "manifest"), video, h.MODEL, h.DURATION, order, 0, "v",
                            eval_weights=imagebind_weights)
    ib = load_eval_model("imagebind", parse_eval_weights(imagebind_weights)["imagebind"])
    frames = model_frames(video.video_uri, [frame_request(ib, "ib", video.height, video.width)], h.DURATION)[0]
    assert frames.shape[0] == int(h.DURATION * ib.video_fps)  # 0.5 fps; the module resizes and crops
    expected = dict(zip(texts, ib.score_captions(frames, texts)))
    ranked = sorted(texts, key=lambda t: expected[t], reverse=order == "descending")
    assert list(out.captions) == ranked and out.order == order and out.requested == order
    assert out.scores == pytest.approx([expected[t] for t in ranked], abs=1e-6)
    assert out.scorer == ib.name and len(set(out.scores)) == len(texts)


def test_given_and_random_orders_do_not_run_imagebind(video, h, imagebind_weights):
    out = order_captions.fn(CAPS, video, h.MODEL, h.DURATION, "given", 0, "v", eval_weights=imagebind_weights)
    assert out.captions == CAPS.captions and out.scores is None and out.scorer is None
