"""Training tests run toy-size networks: one intra-op thread is ~30x faster than two on a shared
2-core machine (OpenMP workers wait on each other while other jobs hold the cores)."""
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch


@pytest.fixture(autouse=True)
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _two_ranks(target: list[str], out: Path, timeout: float) -> tuple[dict, dict]:
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--master-addr", "127.0.0.1",
           "--master-port", str(_free_port()), *target]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        _, err = proc.communicate(timeout=timeout)
    finally:
        if proc.poll() is None:  # never leave the workers running
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert proc.returncode == 0, err[-3000:]
    r0, r1 = (torch.load(out / f"rank{r}.pt") for r in (0, 1))
    return r0, r1


@pytest.fixture
def two_ranks():
    """two_ranks(target, out, timeout) -> the dicts that ranks 0 and 1 of `torchrun --nproc-per-node 2 <target>`
    (two gloo processes on this machine) saved as out/rank0.pt and out/rank1.pt; the run must exit 0, and
    its workers are killed if they outlive the timeout."""
    return _two_ranks
