"""Shared test set-up: no network anywhere (tests and notebook kernels), Agg plots, a private cache."""
import os
import sys
from pathlib import Path

import matplotlib
import pytest

matplotlib.use("Agg")
NETGUARD = Path(__file__).parent / "netguard"
sys.path.insert(0, str(NETGUARD))
import sitecustomize as netguard  # noqa: E402  (the guard module above, also loaded by kernels)

os.environ["KDLAB_BLOCK_NETWORK"] = "1"
os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(NETGUARD), os.environ.get("PYTHONPATH")]))
os.environ.setdefault("MPLBACKEND", "Agg")
netguard.install()


@pytest.fixture(autouse=True)
def private_cache(tmp_path_factory, monkeypatch):
    """Each test session writes retrained teachers and other cache files under a temporary folder."""
    monkeypatch.setenv("KDLAB_CACHE", str(tmp_path_factory.getbasetemp() / "kdlab-cache"))
