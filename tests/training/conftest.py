"""Training tests run toy-size networks: one intra-op thread is ~30x faster than two on a shared
2-core machine (OpenMP workers wait on each other while other jobs hold the cores)."""
import pytest
import torch


@pytest.fixture(autouse=True)
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
