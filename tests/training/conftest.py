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


@pytest.fixture
def tiny_foley_data():
    """A factory of small random FoleyData (m clips, k stems) with the demo preset's latent shapes."""
    from training.data import FoleyData

    def make(m: int = 6, k: int = 14) -> FoleyData:
        g = torch.Generator().manual_seed(0)
        r = lambda *s: torch.randn(*s, generator=g)  # noqa: E731
        return FoleyData(seeds=torch.arange(m), mix=r(m, 250, 20), clip_f=r(m, 64, 8), sync_f=r(m, 192, 8),
                         sync_half=r(m, 2, 88, 8), label_text=torch.zeros(m, dtype=torch.long),
                         sounding=torch.zeros(m, 12), visible=torch.zeros(m, 12), gain_db=torch.zeros(m, 12),
                         stems=r(k, 250, 20), stem_clip=torch.arange(k) % m, stem_text=torch.arange(k) % 3,
                         stem_kind=torch.arange(k) % 12, text=r(3, 16, 8), captions=["", "a", "b"])
    return make
