"""Two processes (gloo, CPU): after a training step every rank holds the same averaged gradients, the same
BatchNorm running statistics and the same weights, though each saw different data."""

import os
import socket

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from lipgen.models.glance import PRESETS, Glance
from lipgen.train import average_batchnorm_statistics, make_update


def _flat(tensors) -> torch.Tensor:
    return torch.cat([t.detach().flatten().float() for t in tensors])


def _worker(rank: int, world: int, port: int, out: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        system = Glance(PRESETS["tiny"])  # same weights on every rank (seeded by the config)
        system.opts = system.optimizers()
        cfg = system.config
        g = torch.Generator().manual_seed(rank)  # each rank its own batch
        T, S = cfg.n_frames, cfg.image_size
        batch = {"mel": torch.randn(2, 1, 4 * T, cfg.n_mels, generator=g),
                 "mel_wrong": torch.randn(2, 1, 4 * T, cfg.n_mels, generator=g),
                 "identity": torch.rand(2, 3, S, S, generator=g) * 2 - 1,
                 "mouth": torch.rand(2, 3, T, S, S, generator=g) * 2 - 1}
        system.train()
        logs = system.training_step(batch, 1, make_update(system, world, torch.device("cpu")))
        average_batchnorm_statistics(system, world)
        bn = [b for n, b in system.named_buffers() if "running" in n]
        mine = {"grad": _flat(p.grad for p in system.parameters() if p.grad is not None),
                "bn": _flat(bn), "weights": _flat(system.parameters()), "loss": torch.tensor([logs["g/loss"]])}
        gathered = {}
        for k, v in mine.items():
            parts = [torch.zeros_like(v) for _ in range(world)]
            dist.all_gather(parts, v)
            gathered[k] = parts
        if rank == 0:
            torch.save(gathered, out)
    finally:
        dist.destroy_process_group()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_processes_end_a_step_with_equal_gradients_batchnorm_statistics_and_weights(tmp_path):
    out = tmp_path / "ranks.pt"
    mp.spawn(_worker, args=(2, _free_port(), str(out)), nprocs=2, join=True)
    got = torch.load(out)
    assert got["loss"][0] != got["loss"][1]  # the ranks saw different data ...
    for k in ("grad", "bn", "weights"):  # ... and still agree on everything the step changed
        assert torch.equal(got[k][0], got[k][1]), k
    assert got["bn"][0].abs().sum() > 0 and got["grad"][0].abs().sum() > 0
