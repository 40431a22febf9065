"""Fixtures of the kind e2e suite. Without a cluster every e2e test skips with one line
naming what is missing (also under CI=true, where no cluster is expected); under
`make e2e` (E2E_REQUIRED=1) a missing cluster fails instead, so it cannot pass by skipping.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.e2e.cluster import Cluster, connect
from tests.e2e.settings import E2ESettings


@pytest.fixture(scope="session")
def e2e_settings() -> E2ESettings:
    return E2ESettings.from_env()


@pytest.fixture(scope="session")
def cluster(e2e_settings: E2ESettings) -> Cluster:
    api, problem = connect(e2e_settings)
    if problem is not None:
        if e2e_settings.required:
            pytest.fail(f"e2e needs its kind cluster: {problem}", pytrace=False)
        pytest.skip(f"no kind cluster for the e2e suite: {problem}")
    return Cluster(e2e_settings, api)


@pytest.fixture(scope="session")
def artifacts(e2e_settings: E2ESettings) -> Path:
    e2e_settings.artifacts.mkdir(parents=True, exist_ok=True)
    return e2e_settings.artifacts
