"""Flow matching as MMAudio trains and samples it: exact values from seeded generators, worked out here by
hand, and tensors made on the caller's device ("meta" stands in for a GPU) and in the caller's dtype."""
from types import SimpleNamespace

import pytest
import torch

from nag_model.flow_matching import (drop_conditions, euler, flow_matching_loss, interpolate, sample_logit_normal,
                                     target_velocity, time_grid)


def test_the_time_grid_runs_from_noise_to_data_in_equal_steps():
    assert torch.equal(time_grid(4), torch.tensor([0.0, 0.25, 0.5, 0.75, 1.0]))
    assert len(time_grid()) == 26  # 25 steps by default, as MMAudio samples
    assert time_grid(3, device="meta").device.type == "meta"
    with pytest.raises(ValueError, match="num_steps must be >= 1, got 0"):
        time_grid(0)


def test_euler_steps_by_the_grid_and_reports_every_step():
    grid = torch.tensor([0.0, 0.1, 0.5, 1.0])  # unequal steps
    field = lambda t, x: x * x + t  # noqa: E731  (not constant: the step size and the time matter)
    seen = []
    got = euler(field, torch.full((1, 2, 1), 0.5), grid, callback=lambda i, t, x: seen.append((i, t, x)))
    x, expected = torch.full((1, 2, 1), 0.5), []
    for i in range(3):
        x = x + (grid[i + 1] - grid[i]) * field(grid[i], x)
        expected.append((i, grid[i], x))
    assert torch.equal(got, x)
    assert len(seen) == 3
    for (i, t, xi), (j, s, xj) in zip(seen, expected):
        assert i == j and torch.equal(t, s) and torch.equal(xi, xj)


def test_the_interpolant_and_its_velocity():
    g = torch.Generator().manual_seed(0)
    x0, x1 = torch.randn(2, 3, 4, generator=g), torch.randn(2, 3, 4, generator=g)
    xt = interpolate(x0, x1, torch.tensor([0.25, 0.75]))
    assert torch.allclose(xt[0], 0.75 * x0[0] + 0.25 * x1[0]) and torch.allclose(xt[1], 0.25 * x0[1] + 0.75 * x1[1])
    assert torch.equal(target_velocity(x0, x1), x1 - x0)


def test_the_loss_is_the_mean_squared_error_to_the_straight_path_velocity():
    g = torch.Generator().manual_seed(1)
    x0, x1 = torch.randn(3, 5, 2, generator=g), torch.randn(3, 5, 2, generator=g)
    error = torch.randn(3, 5, 2, generator=g)  # of both signs
    loss = flow_matching_loss(x1 - x0 + error, x0, x1)
    assert torch.allclose(loss, error.pow(2).mean(dim=(1, 2)).mean()) and loss.ndim == 0


def test_frame_weights_scale_each_frames_error_before_the_means():
    g = torch.Generator().manual_seed(2)
    x0, x1 = torch.randn(2, 4, 3, generator=g), torch.randn(2, 4, 3, generator=g)
    error = torch.randn(2, 4, 3, generator=g)
    weight = torch.tensor([[0.5, 1.5, 1.0, 1.0], [4.0, 0.0, 0.0, 0.0]])
    loss = flow_matching_loss(x1 - x0 + error, x0, x1, weight)
    per_frame = error.pow(2).mean(dim=2)  # (2, 4)
    assert torch.allclose(loss, ((per_frame * weight).mean(dim=1)).mean())
    # the second sample counts only its first frame's error, four times
    assert torch.allclose(loss, ((per_frame[0] * weight[0]).mean() + per_frame[1, 0]) / 2)
    assert torch.allclose(flow_matching_loss(x1 - x0 + error, x0, x1, torch.ones(2, 4)),
                          flow_matching_loss(x1 - x0 + error, x0, x1))


def test_training_times_are_the_sigmoid_of_seeded_normals():
    z = torch.randn(1000, generator=torch.Generator().manual_seed(5))
    torch.manual_seed(99)  # the global generator is not the one to use
    t = sample_logit_normal(1000, mean=0.3, std=1.7, generator=torch.Generator().manual_seed(5))
    assert torch.allclose(t, torch.sigmoid(z * 1.7 + 0.3))
    assert torch.allclose(sample_logit_normal(1000, generator=torch.Generator().manual_seed(5)), torch.sigmoid(z))
    assert sample_logit_normal(4, device="meta").device.type == "meta"


def _null_net(device="cpu"):
    """The learned null tokens drop_conditions reads: clip (1, 4), sync (1, 4), empty string (2, 4)."""
    return SimpleNamespace(empty_clip_feat=torch.full((1, 4), -1.0, device=device),
                           empty_sync_feat=torch.full((1, 4), -2.0, device=device),
                           empty_string_feat=torch.full((2, 4), -3.0, device=device))


def _features(b, g):
    return torch.randn(b, 3, 4, generator=g), torch.randn(b, 5, 4, generator=g), torch.randn(b, 2, 4, generator=g)


def test_condition_dropout_draws_video_then_text_from_the_generator():
    net, b = _null_net(), 64
    clip, sync, text = _features(b, torch.Generator().manual_seed(0))
    video_exist = torch.tensor([True, False] * 32)
    text_exist = torch.tensor([True] * 48 + [False] * 16)
    out = drop_conditions(net, clip, sync, text, p=0.3, video_exist=video_exist, text_exist=text_exist,
                          generator=torch.Generator().manual_seed(1))
    g = torch.Generator().manual_seed(1)
    keep_video = video_exist & (torch.rand(b, generator=g) >= 0.3)
    keep_text = text_exist & (torch.rand(b, generator=g) >= 0.3)
    assert 0 < keep_video.sum() < video_exist.sum() and 0 < keep_text.sum() < text_exist.sum()  # all cases occur
    for i in range(b):
        assert torch.equal(out[0][i], clip[i] if keep_video[i] else net.empty_clip_feat.expand(3, 4))
        assert torch.equal(out[1][i], sync[i] if keep_video[i] else net.empty_sync_feat.expand(5, 4))
        assert torch.equal(out[2][i], text[i] if keep_text[i] else net.empty_string_feat)


def test_condition_dropout_defaults_to_p_0_1_with_every_condition_present():
    net, b = _null_net(), 400
    clip, sync, text = _features(b, torch.Generator().manual_seed(2))
    out = drop_conditions(net, clip, sync, text, generator=torch.Generator().manual_seed(3))
    g = torch.Generator().manual_seed(3)
    keep_video, keep_text = torch.rand(b, generator=g) >= 0.1, torch.rand(b, generator=g) >= 0.1
    assert torch.equal(out[0], torch.where(keep_video[:, None, None], clip, net.empty_clip_feat))
    assert torch.equal(out[2], torch.where(keep_text[:, None, None], text, net.empty_string_feat))
    assert 0.05 < 1 - keep_video.float().mean() < 0.15


def test_condition_dropout_keeps_the_callers_dtype_and_device():
    clip, sync, text = _features(8, torch.Generator().manual_seed(4))
    half = drop_conditions(_null_net(), clip.bfloat16(), sync.bfloat16(), text.bfloat16(), p=0.5,
                           generator=torch.Generator().manual_seed(5))
    assert [x.dtype for x in half] == [torch.bfloat16] * 3
    meta = drop_conditions(_null_net("meta"), clip.to("meta"), sync.to("meta"), text.to("meta"), p=0.5)
    assert [x.device.type for x in meta] == ["meta"] * 3


def test_the_smallest_time_grid_is_one_step_and_zero_steps_are_refused():
    assert time_grid(1).tolist() == [0.0, 1.0]
    with pytest.raises(ValueError) as raised:
        time_grid(0)
    assert str(raised.value) == "num_steps must be >= 1, got 0"
