"""Guidance formulas: closed-form Gaussian targets (Eq. 3, 6, 7) and properties on toy networks."""
import pytest
import torch

from nag_model.controlnet import AudioControlNet
from nag_model.flow_matching import euler, time_grid
from nag_model.guidance import (ClassifierFreeGuidance, ConditionSet, NegativeAudioGuidance,
                                NegativePromptGuidance)
from nag_model.velocity import GuidedVelocity


def gaussian_velocity(mu: torch.Tensor, s: float):
    """Marginal velocity of x_t = (1 - t) x0 + t x1 with x0 ~ N(0, I), x1 ~ N(mu, s^2 I)."""
    def u(t, x):
        t = float(t)
        var = (1 - t) ** 2 + t ** 2 * s ** 2
        return mu + (t * s ** 2 - (1 - t)) / var * (x - t * mu)
    return u


@pytest.mark.parametrize("alpha,beta", [(4.5, 0.0), (4.5, 1.5), (2.0, 1.0), (1.0, 3.0)])
def test_nag_ode_reaches_the_closed_form_target(alpha, beta):
    """With Gaussian conditionals of equal variance, the Eq. (6) target p0^(1-a) pc^(a+b) ppsi^(-b) is the
    Gaussian N(mu0 + a (muc - mu0) + b (muc - mupsi), s^2), and the flow maps x0 to mu + s x0."""
    torch.manual_seed(0)
    s = 0.5
    mu0, muc, mupsi = torch.randn(3, 1, 4, 3, dtype=torch.float64).unbind(0)
    nag = NegativeAudioGuidance(alpha, beta)
    u0, uc, upsi = (gaussian_velocity(m, s) for m in (mu0, muc, mupsi))
    v = lambda t, x: nag.combine({"empty": u0(t, x), "full": uc(t, x), "reference": upsi(t, x)})  # noqa: E731
    x0 = torch.randn(512, 4, 3, dtype=torch.float64)
    x1 = euler(v, x0, time_grid(400).double())
    target = mu0 + alpha * (muc - mu0) + beta * (muc - mupsi)
    assert torch.allclose(x1, target + s * x0, atol=2e-2), (x1 - target - s * x0).abs().max()
    assert torch.allclose(x1.mean(0), target[0], atol=0.1)
    assert abs(x1.std(0).mean().item() - s) < 0.05


def test_cfg_ode_reaches_the_closed_form_target():
    torch.manual_seed(1)
    s, w = 0.3, 4.5
    mu0, muc = torch.randn(2, 1, 5, 2, dtype=torch.float64).unbind(0)
    cfg = ClassifierFreeGuidance(w)
    v = lambda t, x: cfg.combine({"empty": gaussian_velocity(mu0, s)(t, x), "full": gaussian_velocity(muc, s)(t, x)})  # noqa: E731
    x0 = torch.randn(64, 5, 2, dtype=torch.float64)
    x1 = euler(v, x0, time_grid(400).double())
    assert torch.allclose(x1, mu0 + w * (muc - mu0) + s * x0, atol=2e-2)


def test_euler_is_exact_for_a_constant_field():
    x0 = torch.zeros(1, 3, 2)
    x1 = euler(lambda t, x: torch.full_like(x, 2.0), x0, time_grid(25))
    assert torch.allclose(x1, torch.full_like(x0, 2.0), atol=1e-6)


def _condition_set(base, controlnet, with_reference=True, with_negative=False):
    seq, c = base.seq, base.config
    torch.manual_seed(3)
    clip, sync = torch.randn(1, seq.clip, c.clip_dim), torch.randn(1, seq.sync, c.sync_dim)
    text = torch.randn(1, c.text_seq_len, c.text_dim)
    full = base.preprocess_conditions(clip, sync, text)
    video_only = base.preprocess_conditions(clip, sync, base.empty_string_feat[None])
    ref = controlnet.preprocess_reference(torch.randn(1, seq.latent, c.latent_dim)) if with_reference else None
    negative = base.get_empty_conditions(1, negative_text_features=torch.randn(1, c.text_seq_len, c.text_dim)) \
        if with_negative else None
    return ConditionSet(full=full, empty=base.get_empty_conditions(1), video_only=video_only, negative=negative,
                        reference=ref)


@torch.no_grad()
def test_nag_beta_zero_equals_cfg_bit_for_bit(tiny_base):
    controlnet = AudioControlNet.from_base(tiny_base)
    cs = _condition_set(tiny_base, controlnet)
    x, t = torch.randn(1, tiny_base.seq.latent, tiny_base.config.latent_dim), torch.tensor(0.3)
    nag = GuidedVelocity(tiny_base, NegativeAudioGuidance(4.5, 0.0), cs, controlnet=controlnet)
    cfg = GuidedVelocity(tiny_base, ClassifierFreeGuidance(4.5), cs)
    assert len(nag.branches) == 2
    assert torch.equal(nag(t, x), cfg(t, x))


@torch.no_grad()
def test_zero_initialised_controlnet_leaves_the_base_unchanged(tiny_base):
    controlnet = AudioControlNet.from_base(tiny_base)  # out projections are zero
    cs = _condition_set(tiny_base, controlnet)
    x, t = torch.randn(2, tiny_base.seq.latent, tiny_base.config.latent_dim), torch.tensor([0.2, 0.7])
    video_only = cs.video_only.expand(2)
    ref = controlnet.preprocess_reference(torch.randn(2, 5, tiny_base.config.latent_dim))  # any reference length
    assert torch.equal(controlnet.predict_flow(tiny_base, x, t, video_only, ref), tiny_base.predict_flow(x, t, video_only))
    # ... and a non-zero ControlNet does change it (so the test above can fail).
    torch.nn.init.normal_(controlnet.blocks[0].out_proj.weight, std=0.1)
    assert not torch.allclose(controlnet.predict_flow(tiny_base, x, t, video_only, ref), tiny_base.predict_flow(x, t, video_only))


@torch.no_grad()
@pytest.mark.parametrize("guidance", [ClassifierFreeGuidance(4.5), NegativeAudioGuidance(4.5, 1.5),
                                      NegativePromptGuidance(4.5, "paper"), NegativePromptGuidance(3.0, "mmaudio")])
def test_batched_and_unbatched_guidance_agree(tiny_base, randomize, guidance):
    controlnet = randomize(AudioControlNet.from_base(tiny_base), seed=5)
    cs = _condition_set(tiny_base, controlnet, with_negative=True)
    x, t = torch.randn(1, tiny_base.seq.latent, tiny_base.config.latent_dim), torch.tensor(0.6)
    batched = GuidedVelocity(tiny_base, guidance, cs, controlnet=controlnet, batched=True)(t, x)
    exact = GuidedVelocity(tiny_base, guidance, cs, controlnet=controlnet, batched=False)
    single = exact(t, x)
    # One forward of all branches rounds its fp32 matrix products differently from one forward per
    # branch (MKL picks its kernels by row count): each branch velocity (|v| ~ 4 here) agrees to
    # ~3e-6, within the per-branch tolerance 1e-5. The guidance formula is linear in the branches,
    # so that rounding is amplified at most by the sum of the absolute weights of the branches
    # (2 alpha - 1 for CFG, 2 (alpha + beta) - 1 for NAG): the tolerance scales with it.
    names = exact.names
    weights = sum(abs(float(guidance.combine({n: torch.tensor(float(n == m)) for n in names}))) for m in names)
    assert weights >= 1
    assert torch.allclose(batched, single, atol=1e-5 * weights, rtol=1e-5)


@torch.no_grad()
def test_nag_matches_eq7_from_separate_evaluations(tiny_base, randomize):
    controlnet = randomize(AudioControlNet.from_base(tiny_base), seed=6)
    cs = _condition_set(tiny_base, controlnet)
    x, t = torch.randn(1, tiny_base.seq.latent, tiny_base.config.latent_dim), torch.tensor(0.45)
    u0 = tiny_base.predict_flow(x, t, cs.empty)
    uc = tiny_base.predict_flow(x, t, cs.full)
    upsi = controlnet.predict_flow(tiny_base, x, t, cs.video_only, cs.reference)
    assert not torch.allclose(upsi, tiny_base.predict_flow(x, t, cs.video_only))
    expected = u0 + 4.5 * (uc - u0) + 1.5 * (uc - upsi)
    got = GuidedVelocity(tiny_base, NegativeAudioGuidance(4.5, 1.5), cs, controlnet=controlnet)(t, x)
    # One batched forward against three separate ones: each branch agrees to ~1e-5 (fp32, other kernels at
    # other row counts and thread counts), amplified by the formula's absolute weights 3.5 + 6 + 1.5 = 11.
    assert torch.allclose(got, expected, atol=1e-5 * 11, rtol=1e-5)


def test_nag_without_controlnet_is_a_clear_error(tiny_base):
    controlnet = AudioControlNet.from_base(tiny_base)
    cs = _condition_set(tiny_base, controlnet)
    with pytest.raises(ValueError, match=r"^NegativeAudioGuidance needs an AudioControlNet for its reference branch$"):
        GuidedVelocity(tiny_base, NegativeAudioGuidance(), cs)
    two = ConditionSet(full=cs.full, empty=tiny_base.get_empty_conditions(2))
    with pytest.raises(ValueError, match=r"^all branches must share the batch size 1, got \[1, 2\]$"):
        GuidedVelocity(tiny_base, ClassifierFreeGuidance(), two)


def test_each_guidance_needs_names_and_combines_its_branches_by_its_formula():
    """Eq. (3), section 5.1's negative prompt (both forms) and Eq. (7) on stand-in conditions and velocities."""
    full, empty, video_only, negative, reference = "full", "empty", "video_only", "negative", "reference"
    c = ConditionSet(full=full, empty=empty, video_only=video_only, negative=negative, reference=reference)
    step1 = ConditionSet(full=full, empty=empty)  # no earlier track: no negative, no reference
    v = {"empty": torch.tensor(1.0), "full": torch.tensor(3.0), "negative": torch.tensor(-2.0),
         "reference": torch.tensor(-2.0)}

    def named(branches):
        return [(name, b.conditions, b.reference) for name, b in branches.items()]

    def only(*names):
        return {n: v[n] for n in names}

    cfg = ClassifierFreeGuidance(2.0)
    assert cfg.needs(True) == cfg.needs(False) == {"full", "empty"}
    assert named(cfg.branches(c)) == [("empty", empty, None), ("full", full, None)]
    assert cfg.combine(only("empty", "full")) == 1 + 2 * (3 - 1)
    paper, mmaudio = NegativePromptGuidance(2.0, "paper"), NegativePromptGuidance(2.0, "mmaudio")
    assert paper.needs(True) == {"full", "empty", "negative"} and paper.needs(False) == {"full", "empty"}
    assert named(paper.branches(c)) == [("empty", empty, None), ("full", full, None), ("negative", negative, None)]
    assert paper.combine(only("empty", "full", "negative")) == 1 + 2 * (3 + 2)  # u(0,0) + w (u(V,C) - u(0,C_neg))
    assert named(mmaudio.branches(c)) == [("negative", negative, None), ("full", full, None)]
    assert mmaudio.combine(only("negative", "full")) == -2 + 2 * (3 + 2)  # u(0,C_neg) + w (u(V,C) - u(0,C_neg))
    for npg in (paper, mmaudio, NegativePromptGuidance(3.0)):
        assert named(npg.branches(step1)) == [("empty", empty, None), ("full", full, None)]
    assert NegativePromptGuidance(3.0).combine(only("empty", "full")) == 1 + 3 * (3 - 1)  # step 1: CFG, its strength
    nag = NegativeAudioGuidance(2.0, 0.5)
    assert nag.needs(True) == {"full", "empty", "video_only", "reference"} and nag.needs(False) == {"full", "empty"}
    assert NegativeAudioGuidance(2.0, 0.0).needs(True) == {"full", "empty"}
    assert named(nag.branches(c)) == [("empty", empty, None), ("full", full, None), ("reference", video_only, reference)]
    assert nag.combine(only("empty", "full", "reference")) == 1 + 2 * (3 - 1) + 0.5 * (3 + 2)
    assert named(nag.branches(step1)) == [("empty", empty, None), ("full", full, None)]
    assert nag.combine(only("empty", "full")) == 1 + 2 * (3 - 1)
    assert named(NegativeAudioGuidance(2.0, 0.0).branches(c)) == [("empty", empty, None), ("full", full, None)]
    with pytest.raises(ValueError, match=r"^NAG needs the video-only conditions u\(V, empty\) for its ControlNet branch$"):
        nag.branches(ConditionSet(full=full, empty=empty, reference=reference))


@torch.no_grad()
def test_a_reference_branch_that_is_not_last_gets_its_residuals_on_its_own_rows(tiny_base, randomize):
    """GuidedVelocity adds the ControlNet's residuals to the tail rows only when the reference branch is last;
    a component that lists it first must get them on its own rows (the general path)."""
    from nag_model.guidance import EMPTY, FULL, REFERENCE, Branch

    class ReferenceFirst(NegativeAudioGuidance):
        def branches(self, c):
            return {REFERENCE: Branch(c.video_only, c.reference), EMPTY: Branch(c.empty), FULL: Branch(c.full)}

    controlnet = randomize(AudioControlNet.from_base(tiny_base), seed=6)
    cs = _condition_set(tiny_base, controlnet)
    x, t = torch.randn(1, tiny_base.seq.latent, tiny_base.config.latent_dim), torch.tensor(0.45)
    guidance = ReferenceFirst(4.5, 1.5)
    batched = GuidedVelocity(tiny_base, guidance, cs, controlnet=controlnet)(t, x)
    single = GuidedVelocity(tiny_base, guidance, cs, controlnet=controlnet, batched=False)(t, x)
    last = GuidedVelocity(tiny_base, NegativeAudioGuidance(4.5, 1.5), cs, controlnet=controlnet)(t, x)
    assert torch.allclose(batched, single, atol=1e-5 * 11, rtol=1e-5)
    assert torch.allclose(batched, last, atol=1e-5 * 11, rtol=1e-5)


def test_a_latent_batch_that_is_not_the_conditions_batch_is_refused(tiny_base):
    cs = _condition_set(tiny_base, AudioControlNet.from_base(tiny_base), with_reference=False)
    velocity = GuidedVelocity(tiny_base, ClassifierFreeGuidance(4.5), cs)
    x = torch.zeros(2, tiny_base.seq.latent, tiny_base.config.latent_dim)
    with pytest.raises(ValueError, match=r"^latent batch 2 != conditions batch 1$"):
        velocity(torch.tensor(0.5), x)
