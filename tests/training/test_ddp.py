"""DDP: two gloo processes under torchrun on a tiny run end with identical weights and one loss history."""
import torch

from training.ddp_check import tiny_base


def test_two_gloo_processes_stay_in_sync(tmp_path, two_ranks):
    r0, r1 = two_ranks(["-m", "training.ddp_check", "--out", str(tmp_path)], tmp_path, timeout=120)
    assert r0["world"] == 2 and r0["losses"] == r1["losses"] and len(r0["losses"]) == 6
    start = tiny_base().state_dict()
    moved = False
    for k, v in r0["online"].items():
        assert torch.allclose(v, r1["online"][k], atol=1e-6, equal_nan=True), k
        moved |= v.is_floating_point() and not v.isnan().any() and not torch.equal(v, start[k])
    assert moved
    assert (tmp_path / "ckpt" / "last.pt").exists()
