"""Test-session settings."""

import torch


def pytest_configure(config):
    # The paper's networks are tiny: intra-op threads only contend with dask's threads and
    # with the other processes some tests start, on machines with few cores.
    torch.set_num_threads(1)
