"""Fixtures shared across the test suite."""

from __future__ import annotations

from pathlib import Path

import pytest

from palm.pretrain import PretrainSettings, pretrain

REPO = Path(__file__).resolve().parents[1]
MODEL_CACHE = REPO / ".cache" / "models"
"""Where the bundled model is cached between test runs (gitignored)."""


@pytest.fixture(scope="session")
def support_model() -> Path:
    """The folder of the bundled `support` model with default settings.

    Pre-trained once (about two minutes on one core) and cached under
    .cache/models, so later sessions find it at once. Tests that use it are slow.
    """
    # One thread: on a busy two-core machine, two spinning threads slow each
    # other far more than they help.
    return pretrain("support", MODEL_CACHE, PretrainSettings(), threads=1)
