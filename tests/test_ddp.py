"""Two processes (gloo, CPU) train the tiny Glance for a few steps, each on its half of every batch:
- after a step every rank holds the same averaged gradients, BatchNorm running statistics and weights;
- their loss curve (mean over ranks) is that of one process at twice the batch on the same data, within
  LOSS_TOLERANCE (relative, every step): BatchNorm normalises each process's half by that half's batch
  statistics, the one thing that differs (measured: 3.4e-4 at most over these steps)."""

import os
import socket

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from lipgen.models.glance import PRESETS, Glance
from lipgen.train import average_batchnorm_statistics, make_update, mean_over_processes

STEPS, HALF = 6, 2  # steps of the curve; items per process (one process alone takes 2 * HALF)
LOSS_KEYS = ("d/loss", "g/loss")
LOSS_TOLERANCE = 1e-3  # relative difference of each step's losses, DDP vs one process at twice the batch


def _batch(step: int, cfg, lo: int, hi: int) -> dict:
    """Items lo..hi-1 of the step's global batch of 2 * HALF (the same data however it is split)."""
    g = torch.Generator().manual_seed(1000 + step)
    T, S, B = cfg.n_frames, cfg.image_size, 2 * HALF
    batch = {"mel": torch.randn(B, 1, 4 * T, cfg.n_mels, generator=g),
             "mel_wrong": torch.randn(B, 1, 4 * T, cfg.n_mels, generator=g),
             "identity": torch.rand(B, 3, S, S, generator=g) * 2 - 1,
             "mouth": torch.rand(B, 3, T, S, S, generator=g) * 2 - 1}
    return {k: v[lo:hi] for k, v in batch.items()}


def _flat(tensors) -> torch.Tensor:
    return torch.cat([t.detach().flatten().float() for t in tensors])


def _gather(v: torch.Tensor, world: int) -> list[torch.Tensor]:
    parts = [torch.zeros_like(v) for _ in range(world)]
    dist.all_gather(parts, v)
    return parts


def _train(world: int, lo: int, hi: int, after_first_step=None) -> torch.Tensor:
    """Loss curve (STEPS, len(LOSS_KEYS)) of the tiny Glance trained on items lo..hi-1 of every batch;
    with world > 1, the mean over the processes."""
    system = Glance(PRESETS["tiny"])  # same weights in every process (seeded by the config)
    system.opts = system.optimizers()
    system.train()
    update = make_update(system, world, torch.device("cpu"))
    curve = []
    for step in range(1, STEPS + 1):
        logs = system.training_step(_batch(step, system.config, lo, hi), step, update)
        if world > 1:
            average_batchnorm_statistics(system, world)
        if step == 1 and after_first_step:
            after_first_step(system, logs)
        if world > 1:  # what training logs
            logs = mean_over_processes(logs, torch.device("cpu"))
        curve.append([logs[k] for k in LOSS_KEYS])
    return torch.tensor(curve, dtype=torch.float64)


def _worker(rank: int, world: int, port: int, out: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        first = {}

        def after_first_step(system, logs):
            bn = [b for n, b in system.named_buffers() if "running" in n]
            mine = {"grad": _flat(p.grad for p in system.parameters() if p.grad is not None),
                    "bn": _flat(bn), "weights": _flat(system.parameters()), "loss": torch.tensor([logs["g/loss"]])}
            first.update({k: _gather(v, world) for k, v in mine.items()})

        curve = _train(world, rank * HALF, (rank + 1) * HALF, after_first_step)
        if rank == 0:
            torch.save({"first": first, "curve": curve}, out)
        dist.barrier()  # neither rank tears gloo down while the other still uses it (a rank once aborted so)
    finally:
        dist.destroy_process_group()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def two_processes(tmp_path_factory):
    out = tmp_path_factory.mktemp("ddp") / "ranks.pt"
    try:
        mp.spawn(_worker, args=(2, _free_port(), str(out)), nprocs=2, join=True)
    except mp.ProcessExitedException as e:
        # gloo's teardown now and then aborts a rank ("terminate called without an active exception") after every
        # collective is done; rank 0 writes its file only once the last one (the curve's all-reduce) has finished
        if e.signal_name != "SIGABRT" or not out.is_file():
            raise
    return torch.load(out)


def test_two_processes_end_a_step_with_equal_gradients_batchnorm_statistics_and_weights(two_processes):
    got = two_processes["first"]
    assert got["loss"][0] != got["loss"][1]  # the ranks saw different data ...
    for k in ("grad", "bn", "weights"):  # ... and still agree on everything the step changed
        assert torch.equal(got[k][0], got[k][1]), k
    assert got["bn"][0].abs().sum() > 0 and got["grad"][0].abs().sum() > 0


def test_two_processes_follow_the_loss_curve_of_one_process_at_twice_the_batch(two_processes):
    torch.set_num_threads(1)
    ddp = two_processes["curve"]
    single = _train(1, 0, 2 * HALF)
    assert ddp.shape == single.shape == (STEPS, len(LOSS_KEYS))
    assert not torch.equal(single[0], single[-1])  # the curve moves ...
    rel = (ddp - single).abs() / single.abs()
    assert rel.max() <= LOSS_TOLERANCE, rel  # ... and two processes follow it
    alone = _train(1, 0, HALF)  # one process on its half without the other's gradients: leaves the curve
    assert ((alone - single).abs() / single.abs()).max() > LOSS_TOLERANCE
