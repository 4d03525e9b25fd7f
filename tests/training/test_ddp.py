"""DDP: two gloo processes under torchrun on a tiny run end with identical weights and one loss history."""
import os
import signal
import socket
import subprocess
import sys

import torch

from training.ddp_check import tiny_base


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_gloo_processes_stay_in_sync(tmp_path):
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--master-addr", "127.0.0.1", "--master-port", str(_free_port()),
           "-m", "training.ddp_check", "--out", str(tmp_path)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:  # never leave the workers running
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert proc.returncode == 0, err[-3000:]
    r0, r1 = (torch.load(tmp_path / f"rank{r}.pt") for r in (0, 1))
    assert r0["world"] == 2 and r0["losses"] == r1["losses"] and len(r0["losses"]) == 6
    start = tiny_base().state_dict()
    moved = False
    for k, v in r0["online"].items():
        assert torch.allclose(v, r1["online"][k], atol=1e-6, equal_nan=True), k
        moved |= v.is_floating_point() and not v.isnan().any() and not torch.equal(v, start[k])
    assert moved
    assert (tmp_path / "ckpt" / "last.pt").exists()
