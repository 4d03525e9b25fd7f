"""Numerical parity with the official MMAudio implementation (fixtures in tests/fixtures/mmaudio)."""
from pathlib import Path

import pytest
import torch

from nag_model.config import MMAudioConfig, SeqLengths
from nag_model.guidance import ClassifierFreeGuidance, ConditionSet
from nag_model.network import MMAudio
from nag_model.velocity import GuidedVelocity

FIXTURES = Path(__file__).parent.parent / "fixtures" / "mmaudio"
ATOL = 2e-5


def load_fixture(version: str) -> tuple[dict, MMAudio]:
    fx = torch.load(FIXTURES / f"parity_{version}.pt", weights_only=True)
    c = fx["config"]
    config = MMAudioConfig(name=f"parity_{version}", latent_dim=c["latent_dim"], hidden_dim=c["hidden_dim"],
                           depth=c["depth"], fused_depth=c["fused_depth"], num_heads=c["num_heads"],
                           mlp_ratio=c["mlp_ratio"], clip_dim=c["clip_dim"], sync_dim=c["sync_dim"],
                           text_dim=c["text_dim"], text_seq_len=c["text_seq_len"], v2=c["v2"])
    net = MMAudio(config, SeqLengths(c["latent_seq_len"], c["clip_seq_len"], c["sync_seq_len"]))
    net.load_state_dict(fx["state_dict"], strict=True)
    return fx, net.eval()


def assert_close(actual, expected, what):
    err = (actual - expected).abs().max().item()
    assert err < ATOL * max(1.0, expected.abs().max().item()), f"{what}: max abs error {err:.2e}"


@pytest.fixture(params=["v1", "v2"], scope="module")
def fixture(request):
    return load_fixture(request.param)


@torch.no_grad()
def test_forward_matches_official(fixture):
    fx, net = fixture
    i = fx["inputs"]
    out = net(i["latent"], i["clip_f"], i["sync_f"], i["text_f"], i["t"])
    assert fx["outputs"]["forward"].std() > 0.3  # the fixture is not vacuous
    assert_close(out, fx["outputs"]["forward"], "forward")


@torch.no_grad()
def test_preprocess_and_intermediates_match_official(fixture):
    fx, net = fixture
    i, o = fx["inputs"], fx["outputs"]
    cond = net.preprocess_conditions(i["clip_f"], i["sync_f"], i["text_f"])
    for name, expected in o["preprocess_conditions"].items():
        assert_close(getattr(cond, name), expected, f"preprocess_conditions.{name}")
    assert_close(net.latent_rot, o["latent_rot"], "latent_rot")
    assert_close(net.clip_rot, o["clip_rot"], "clip_rot")
    te = o["t_embed"]
    assert_close(net.t_embed.freqs, te["freqs"], "t_embed.freqs")
    assert_close(net.t_embed(te["t"]), te["mlp_out"], "t_embed")
    t = net.flow_time(i["t"], i["latent"])
    global_c, extended_c = net.condition_vectors(t, cond)
    assert_close(global_c, o["intermediates"]["global_c"], "global_c")
    assert_close(extended_c, o["intermediates"]["extended_c"], "extended_c")
    (q, k, v), _ = net.joint_blocks[0].latent_block.pre_attention(
        net.embed_latent(i["latent"]), extended_c, net.latent_rot)
    for name, x in zip("qkv", (q, k, v)):
        assert_close(x, o["intermediates"][f"joint_blocks.0.latent_block.{name}"], f"joint_blocks.0 {name}")


@torch.no_grad()
def test_empty_conditions_and_cfg_match_official(fixture):
    fx, net = fixture
    i, o = fx["inputs"], fx["outputs"]
    empty = net.get_empty_conditions(2)
    for name, expected in o["empty_conditions"].items():
        assert_close(getattr(empty, name), expected, f"empty_conditions.{name}")
    negative = net.get_empty_conditions(2, negative_text_features=i["negative_text_f"])
    for name, expected in o["empty_conditions_negative_text"].items():
        assert_close(getattr(negative, name), expected, f"negative.{name}")
    cond = net.preprocess_conditions(i["clip_f"], i["sync_f"], i["text_f"])
    t = o["ode_wrapper_t"]
    for batched in (True, False):
        v = GuidedVelocity(net, ClassifierFreeGuidance(4.5), ConditionSet(full=cond, empty=empty), batched=batched)
        assert_close(v(t, i["latent"]), o["ode_wrapper_cfg4.5"], f"cfg 4.5 batched={batched}")
    # MMAudio's negative prompt replaces the unconditional text; our "mmaudio" form is the same formula.
    from nag_model.guidance import NegativePromptGuidance
    v = GuidedVelocity(net, NegativePromptGuidance(4.5, form="mmaudio"), ConditionSet(full=cond, empty=empty, negative=negative))
    assert_close(v(t, i["latent"]), o["ode_wrapper_cfg4.5_negative_text"], "negative prompt")


@torch.no_grad()
@pytest.mark.parametrize("case", ["resized", "resized_44k_8s"])
def test_other_durations_match_official(case):
    for version in ("v1", "v2"):
        fx, net = load_fixture(version)
        r = fx[case]
        c = r["config"]
        net.update_seq_lengths(SeqLengths(c["latent_seq_len"], c["clip_seq_len"], c["sync_seq_len"]))
        i = r["inputs"]
        assert_close(net.latent_rot, r["outputs"]["latent_rot"], f"{case} latent_rot")
        assert_close(net.clip_rot, r["outputs"]["clip_rot"], f"{case} clip_rot")
        cond = net.preprocess_conditions(i["clip_f"], i["sync_f"], i["text_f"])
        for name, expected in r["outputs"]["preprocess_conditions"].items():
            assert_close(getattr(cond, name), expected, f"{case} {version} preprocess.{name}")
        out = net(i["latent"], i["clip_f"], i["sync_f"], i["text_f"], i["t"])
        assert_close(out, r["outputs"]["forward"], f"{case} {version} forward")


@torch.no_grad()
def test_normalize_matches_official(fixture):
    fx, net = fixture
    x = fx["inputs"]["latent"].clone()
    assert_close(net.normalize(x), fx["outputs"]["normalize"], "normalize")
    assert torch.equal(x, fx["inputs"]["latent"]), "normalize must not modify its input"
    assert_close(net.unnormalize(x), fx["outputs"]["unnormalize"], "unnormalize")
