"""Shared pytest fixtures.

Real MRI test data (MIT, from spinalcordtoolbox/sct_testing_data) is read from the folder named by
ROOTLETSEG_TEST_DATA, else from ../shared/data beside the repository; tests needing it are skipped with the reason
when it is absent (a user's clone). It is never copied into the repository.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]


def test_data_root() -> Path | None:
    candidates = [os.environ.get("ROOTLETSEG_TEST_DATA"), REPO_ROOT.parent / "shared" / "data"]
    for candidate in candidates:
        if candidate and (Path(candidate) / "sct_testing_data").is_dir():
            return Path(candidate) / "sct_testing_data"
    return None


@pytest.fixture(scope="session")
def sct_data() -> Path:
    """Folder `sct_testing_data` (with `t2/` and `template/`), or skip."""
    root = test_data_root()
    if root is None:
        pytest.skip("real MRI test data not found: set ROOTLETSEG_TEST_DATA or put shared/data beside the repository")
    return root


@pytest.fixture(autouse=True)
def _isolated_model_cache(tmp_path_factory, monkeypatch):
    """Every test gets its own model cache so nothing reads or writes the user's ~/.cache."""
    monkeypatch.setenv("ROOTLETSEG_HOME", str(tmp_path_factory.mktemp("rootletseg_home")))


@pytest.fixture(scope="module")
def phantom():
    """The phantom of seed 3 (synthetic.phantom), shared by the Slicer-side tests; a test module may define its own."""
    from RootletSegLogic.synthetic.phantom import make_phantom

    return make_phantom(seed=3)


@pytest.fixture()
def core():
    """A fresh real MRML scene with Slicer's logics (slicer-core, no Qt), for the Slicer-side tests."""
    from RootletSegLogic.slicer.volumes import create_core_scene

    return create_core_scene()
