from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def datasets_root() -> Path:
    """Where the real evaluation images live (never copied into the repo)."""
    return Path(os.environ.get("INP_EDGE_DATASETS", REPO.parent / "shared" / "datasets"))


@pytest.fixture(scope="session")
def datasets() -> Path:
    root = datasets_root()
    if not (root / "mvtec_ad" / "bottle").is_dir():
        pytest.skip(f"real images not found at {root} (set INP_EDGE_DATASETS to the MVTec-layout folder)")
    return root


@pytest.fixture(scope="module")
def tlsimu() -> Path:
    """TLSimu.cti, the GenTL producer with a software trigger (installed on first use, else the test skips)."""
    from tests.genicam_support import tlsimu_cti

    return tlsimu_cti()
