"""Glance's Table 1 ablation switches, each against the full model with the same weights on the same batch of
real GRID windows (the fixture clips): a switch must change the loss terms it names and leave every other
term exactly as it was (scripts/glance_ablation.sh trains and evaluates the rows)."""

from dataclasses import replace

import pytest
import torch

from lipgen.models.glance import PRESETS, Glance

TINY = PRESETS["tiny"]
G_TERMS = ("g/l1", "g/perc", "g/corr", "g/gan")
D_TERMS = ("d/loss", "d/real", "d/fake", "d/wrong")


@pytest.fixture(scope="module")
def batch(grid_cache):
    from torch.utils.data import DataLoader

    from lipgen.data.dataset import LipDataset

    torch.manual_seed(0)
    return next(iter(DataLoader(LipDataset(grid_cache, None, window=16, stride=16), batch_size=2)))


@pytest.fixture(scope="module")
def full_state():
    return Glance(TINY).state_dict()


def loss_terms(config, state, batch) -> dict[str, float]:
    """Every logged loss term of one training step of `config` with the weights of `state` (where the shapes
    agree), taking no optimiser step: the same weights give the same terms."""
    model = Glance(config)
    own = model.state_dict()
    model.load_state_dict({k: v for k, v in state.items() if k in own and own[k].shape == v.shape}, strict=False)
    with torch.random.fork_rng(devices=[]):
        return model.training_step(batch, 0, lambda loss, name: None)


def same(a: float, b: float) -> bool:
    return a == pytest.approx(b, rel=1e-6, abs=1e-7)


@pytest.mark.parametrize("switch, removed", [("use_corr", "g/corr"), ("use_pix", "g/l1"), ("use_perc", "g/perc")])
def test_loss_switch_removes_its_term_and_only_it(switch, removed, batch, full_state):
    full = loss_terms(TINY, full_state, batch)
    ablated = loss_terms(replace(TINY, **{switch: False}), full_state, batch)
    assert removed in full and removed not in ablated
    for key in G_TERMS + D_TERMS:
        if key != removed:
            assert same(ablated[key], full[key]), (switch, key, ablated[key], full[key])
    weight = {"g/corr": TINY.w_corr, "g/l1": TINY.w_pix, "g/perc": TINY.w_perc}[removed]
    assert same(ablated["g/loss"], full["g/loss"] - weight * full[removed])


@pytest.mark.parametrize("change", [{"three_stream": False}, {"use_frame_diff": False}])
def test_discriminator_switch_changes_only_the_discriminator_terms(change, batch, full_state):
    """Two-stream D, or raw frames in the third stream: what D says changes (its loss, l_gen, and l_perc,
    which is measured on D's features); l_pix and l_corr do not involve D and stay exactly the same."""
    full = loss_terms(TINY, full_state, batch)
    ablated = loss_terms(replace(TINY, **change), full_state, batch)
    assert set(ablated) == set(full)
    for key in ("g/l1", "g/corr"):
        assert same(ablated[key], full[key]), (change, key)
    for key in ("d/loss", "d/fake", "g/gan", "g/perc"):
        assert not same(ablated[key], full[key]), (change, key)


def test_frame_diff_switch_needs_the_third_stream(batch, full_state):
    """use_frame_diff only chooses what the third stream sees: with a two-stream D it changes nothing."""
    two = replace(TINY, three_stream=False)
    a = loss_terms(two, full_state, batch)
    b = loss_terms(replace(two, use_frame_diff=False), full_state, batch)
    assert a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
