"""Shared test settings: hermetic Prefect home, no telemetry, deterministic torch."""
import os
import tempfile

os.environ.setdefault("DO_NOT_TRACK", "1")
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("PREFECT_SERVER_UI_ENABLED", "false")
os.environ.setdefault("PREFECT_HOME", tempfile.mkdtemp(prefix="prefect-home-"))

import torch  # noqa: E402

torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))


import pytest  # noqa: E402


@pytest.fixture(scope="session")
def prefect_api():
    """One Prefect test server for the whole session, shared by every folder that runs flows (their
    conftests use it autouse); flow heartbeats off (they cost ~1 s per flow)."""
    from prefect.concurrency.services import ConcurrencySlotAcquisitionWithLeaseService
    from prefect.settings import PREFECT_FLOWS_HEARTBEAT_FREQUENCY, temporary_settings
    from prefect.testing.utilities import prefect_test_harness

    from pipeline import gpu_slot as gpu

    with prefect_test_harness(server_startup_timeout=120):
        with temporary_settings(updates={PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None}):
            yield
        for holder in list(gpu._holders.values()):  # release lingering GPU slots while the server is up
            holder.close()
        ConcurrencySlotAcquisitionWithLeaseService.drain_all(timeout=10)
