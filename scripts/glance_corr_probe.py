"""What l_corr does to a Glance generator: per loss term, the size of its weighted gradient on the generator
and its cosine with the l_pix gradient; and whether the correlation nets phi_s, phi_v measure sync at all
(l_corr on real clips with their own audio vs another clip's audio, and on generated clips).

    python scripts/glance_corr_probe.py runs/ablation/seed0/full/model.safetensors [...] --cache cache/grid

Each checkpoint is probed as trained and, for comparison, at its initial weights (a Glance's initial
weights are a function of its config). The windows are the first --windows 16-frame windows of the
held-out split, batches of 8, with the generator in training mode as in training; no weight changes.
"""

import argparse
import dataclasses

import numpy as np
import torch
from torch.utils.data import DataLoader

from lipgen.checkpoint import load_system
from lipgen.data.dataset import LipDataset
from lipgen.models.glance import Glance

TERMS = {"corr": "w_corr", "l1": "w_pix", "perc": "w_perc", "gan": "w_gan"}


def term_gradients(system, batch) -> dict[str, torch.Tensor]:
    """The generator's gradient of each weighted loss term alone, from Glance.training_step with the other
    terms' weights set to 0 (so the terms are exactly the ones training uses)."""
    params = list(system.generator.parameters())
    config, grads = system.config, {}
    for term, weight in TERMS.items():
        if term == "corr" and system.correlation is None:
            continue
        system.config = dataclasses.replace(config, **{w: 0.0 for t, w in TERMS.items() if t != term})

        def update(loss, name):
            if name == "generator":
                g = torch.autograd.grad(loss, params, allow_unused=True)
                grads[term] = torch.cat([(x if x is not None else torch.zeros_like(p)).flatten()
                                         for x, p in zip(g, params)])
        with torch.random.fork_rng(devices=[]):
            system.training_step(batch, 0, update)
    system.config = config
    return grads


def probe(system, batches) -> dict[str, float]:
    out = {}
    norms, cos_pix = {t: [] for t in TERMS}, {t: [] for t in TERMS}
    corr = {"generated": [], "real, own audio": [], "real, other clip's audio": []}
    for batch in batches:
        grads = term_gradients(system, batch)
        for t, g in grads.items():
            norms[t].append(g.norm().item())
            cos_pix[t].append(torch.nn.functional.cosine_similarity(g, grads["l1"], 0).item())
        if system.correlation is not None:
            with torch.no_grad():
                fake = system.generator(batch["mel"], batch["identity"])
                corr["generated"].append(system.correlation.loss(batch["mel"], fake).item())
                corr["real, own audio"].append(system.correlation.loss(batch["mel"], batch["mouth"]).item())
                corr["real, other clip's audio"].append(system.correlation.loss(batch["mel_wrong"], batch["mouth"]).item())
    for t in TERMS:
        if norms[t]:
            out[f"|grad {t}|"] = np.mean(norms[t])
            if t != "l1":
                out[f"cos(grad {t}, grad l1)"] = np.mean(cos_pix[t])
    for k, v in corr.items():
        if v:
            out[f"l_corr {k}"] = np.mean(v)
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoints", nargs="+")
    parser.add_argument("--cache", default="cache/grid")
    parser.add_argument("--split", default="test")
    parser.add_argument("--windows", type=int, default=32)
    args = parser.parse_args()
    torch.manual_seed(0)
    data = LipDataset(args.cache, args.split, window=16, stride=16)
    loader = DataLoader(torch.utils.data.Subset(data, range(min(args.windows, len(data)))), batch_size=8)
    batches = list(loader)
    results = {}
    for path in args.checkpoints:
        system, _ = load_system(path)
        system.train()
        results[f"{path} (initial weights)"] = probe(Glance(system.config).train(), batches)
        results[path] = probe(system, batches)
    keys = list(dict.fromkeys(k for r in results.values() for k in r))
    print(f"{len(batches) * 8} held-out windows of 16 frames ({args.split} split), batches of 8\n")
    print("| checkpoint | " + " | ".join(keys) + " |")
    print("|---|" + "---|" * len(keys))
    for name, r in results.items():
        print(f"| {name} | " + " | ".join(f"{r[k]:.4f}" if k in r else "-" for k in keys) + " |")


if __name__ == "__main__":
    main()
