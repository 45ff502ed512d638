from pathlib import Path

import pytest

FIXTURES = Path(__file__).parent / "fixtures"
GRID = FIXTURES / "grid"
SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"

needs_shared = pytest.mark.skipif(not SHARED.is_dir(), reason="../shared/data is not here (only on developer machines)")


@pytest.fixture(scope="session")
def clip():
    return GRID / "s1" / "video" / "bbaf2n.mp4"


@pytest.fixture(scope="session")
def grid_cache(tmp_path_factory):
    """A preprocessing cache of every fixture clip (the damaged one fails, as it should)."""
    from lipgen.data.preprocess import preprocess

    cache = tmp_path_factory.mktemp("cache")
    preprocess(GRID, cache, workers=1, progress=False)
    return cache
