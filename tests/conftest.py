"""Shared fixtures. GPU tests skip without CUDA; ray/slow tests run everywhere (CI included)."""

from __future__ import annotations

import numpy as np
import pytest
import torch


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs CUDA (torch.cuda.is_available() is False)")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(1234)


@pytest.fixture(scope="session")
def photo() -> np.ndarray:
    """A real non-square photograph (300×451×3 uint8)."""
    from blindsr.data.corpus import image

    return image("chelsea")
