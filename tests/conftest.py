from pathlib import Path

import pytest

FIXTURES = Path(__file__).parent / "fixtures"
GRID = FIXTURES / "grid"
HELDOUT = FIXTURES / "heldout"  # GRID clips in the test split of every shipped model
SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"

def needs_shared(test):
    """Mark a test that reads ../shared/data (developer machines only): marked `shared`, skipped without it."""
    skip = pytest.mark.skipif(not SHARED.is_dir(), reason="../shared/data is not here (only on developer machines)")
    return pytest.mark.shared(skip(test))


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


@pytest.fixture(scope="session")
def heldout_cache(tmp_path_factory):
    """A preprocessing cache of three held-out (test split) s1 clips, for the shipped models' accuracy."""
    from lipgen.data.preprocess import preprocess

    cache = tmp_path_factory.mktemp("heldout")
    preprocess(HELDOUT, cache, workers=1, progress=False)
    return cache


def trainer(model):
    """A plain `update(loss, name)` for a system's training_step: backward and that optimizer's step."""
    opts = model.optimizers()

    def update(loss, name):
        opt = opts[name]
        opt.zero_grad()
        loss.backward()
        opt.step()

    return update


def _tiny(model, grid_cache, tmp_path_factory):
    from lipgen.train import TrainConfig, train

    out = tmp_path_factory.mktemp(f"tiny_{model}")
    return train(TrainConfig(model=model, preset="tiny", cache=str(grid_cache), out=str(out), steps=1,
                             batch_size=2, workers=0, val_every=1000, sample_every=1000))


@pytest.fixture(scope="session")
def tiny_glance(grid_cache, tmp_path_factory):
    """A one-step Glance model (tiny preset) on the fixture cache."""
    return _tiny("glance", grid_cache, tmp_path_factory)


@pytest.fixture(scope="session")
def tiny_davs(grid_cache, tmp_path_factory):
    """A one-step DAVS model (tiny preset) on the fixture cache."""
    return _tiny("davs", grid_cache, tmp_path_factory)


@pytest.fixture(scope="session")
def tiny_crgan(grid_cache, tmp_path_factory):
    """A one-step CRGAN model (tiny preset) on the fixture cache."""
    return _tiny("crgan", grid_cache, tmp_path_factory)
