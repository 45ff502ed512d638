"""How well a motion model hears strangers, without rendering: the correlation of its predicted inner-lip
gap with the real speaker's mouth opening (dlib, over the inter-ocular distance), per clip, at lag 0.

    python scripts/voice_probe.py MODEL.safetensors [...] [--work cache/unseen/videos]

Reads the clips that `lipgen evaluate-videos` prepared in its work folder (audio.npy: the first 8 s at
16 kHz; clip.landmarks.npy: the real frames' landmarks), so run scripts/evaluate_unseen.sh first. This is
the "model space" number of docs/eval/unseen/README.md: the rendered "voice only" row adds the warp and
a second landmark detection on top of it. Both with and without the silence gate (lipgen.vad) that
generation applies.

It also prints, for the portraits' speech (lipgen.evaluation.portraits: the bundled GRID sentences with
their word timings), the predicted inner-lip gap in speech and in silence and their ratio: the model-space
side of the portraits' "speech / silence opening".

With --grid CACHE it also prints the same correlation on GRID's held-out (test split) clips of a
preprocessed cache, from their clean Whisper features: what the model does on the speech it was made for.

With --stream it also scores the motion as `lipgen stream` makes it (the speech arriving in 20 ms chunks, its causal
silence gate): the live path's side of the same number.

With --bands it also splits both openings into frequency bands (0-1 Hz: speech against pauses and slow
expressions; 2.5-6 Hz: syllables) and prints, per band, the share of the real opening's variance, the share of
the prediction's, and their correlation: where the strangers' correlation is lost.
"""

import argparse
from pathlib import Path

import numpy as np
import torch

from lipgen.checkpoint import load_system
from lipgen.inference import predicted_motion, silence_gain
from lipgen.evaluation.portraits import DEFAULT_SPEECH, prepare_speech
from lipgen.evaluation.wild import mouth_opening


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("models", nargs="+", help="motion model files")
    parser.add_argument("--work", default="cache/unseen/videos", help="evaluate-videos work folder")
    parser.add_argument("--lags", type=int, default=0, help="also print the gated mean r with the prediction "
                        "shifted by -LAGS..LAGS frames (positive: the prediction of a later frame is compared)")
    parser.add_argument("--grid", metavar="CACHE", help="also score GRID's held-out clips of this cache (model space)")
    parser.add_argument("--stream", action="store_true", help="also score the motion as `lipgen stream` makes it "
                        "(lipgen.stream.StreamingMotion: 20 ms chunks, its causal silence gate, default look-ahead)")
    parser.add_argument("--bands", action="store_true", help="also print variance shares and correlation per "
                        "frequency band (with --grid: GRID's too)")
    args = parser.parse_args()
    clips = sorted(p.parent for p in Path(args.work).glob("*/clip.landmarks.npy"))
    if not clips:
        raise SystemExit(f"{args.work}: no prepared clips; run scripts/evaluate_unseen.sh first")
    portrait_audio, silent = prepare_speech(DEFAULT_SPEECH)
    for path in args.models:
        system = load_system(path, strict=False)[0]

        def gaps(audio, n):  # the predicted inner-lip gap as generation makes it (expressiveness 1): gated, ungated
            raw = system.gap(torch.from_numpy(predicted_motion(system, audio, n, 1.0, rest_in_silence=False)[None]))
            raw = raw[0].numpy()  # the gap is linear in the motion, so the gate multiplies it too
            return raw * silence_gain(audio, n), raw

        for rest, g in zip((True, False), gaps(portrait_audio, len(silent))):
            print(f"  portraits' speech{'' if rest else ' (no silence gate)'}: gap {g[~silent].mean():.2f} px in "
                  f"speech, {g[silent].mean():.2f} in silence, ratio {g[~silent].mean() / max(g[silent].mean(), 1e-6):.2f}")
        rs, lagged, banded, streamed = [], [], [], []
        for clip in clips:
            audio, landmarks = np.load(clip / "audio.npy"), np.load(clip / "clip.landmarks.npy")
            real = mouth_opening(landmarks)
            ok = np.isfinite(real)
            gated, ungated = gaps(audio, len(landmarks))
            rs.append([np.corrcoef(g[ok], real[ok])[0, 1] for g in (gated, ungated)])
            lagged.append([_lagged_r(gated, real, lag) for lag in range(-args.lags, args.lags + 1)])
            if args.bands:
                banded.append(_bands(gated, np.where(ok, real, np.nanmean(real))))
            if args.stream:
                g = system.gap(torch.from_numpy(_streamed(system, audio)[None]))[0].numpy()[:len(real)]
                streamed.append(np.corrcoef(g[ok], real[ok])[0, 1] if g.std() > 0 else 0.0)
            print(f"  {clip.name:40s} r = {rs[-1][0]:+.3f} ({rs[-1][1]:+.3f} without the silence gate)"
                  + (f", streamed {streamed[-1]:+.3f}" if args.stream else ""))
        r = np.mean(rs, axis=0)
        print(f"{path}: {system.config.speech} front end, mean r = {r[0]:.3f} ({r[1]:.3f} without the silence gate) "
              f"over {len(rs)} clips")
        if args.stream:
            print(f"  streamed as `lipgen stream` makes it: mean r = {np.mean(streamed):.3f}")
        if args.bands:
            _print_bands("validation clips", banded)
        if args.grid:
            r, grid_banded = _grid_r(system, args.grid)
            print(f"  GRID held-out: mean r = {r:.3f}")
            if args.bands:
                _print_bands("GRID held-out", grid_banded)
        if args.lags:
            print("  gated mean r at lag " + " ".join(f"{lag:+d}: {v:.3f}" for lag, v in
                                                      zip(range(-args.lags, args.lags + 1), np.mean(lagged, 0))))


def _streamed(system, audio: np.ndarray) -> np.ndarray:
    """The motion lipgen.stream makes of audio arriving in 20 ms chunks (expressiveness 1): (T, 31, 2)."""
    from lipgen.stream import StreamingMotion

    stream = StreamingMotion(system, gain=1.0)
    parts = [stream.push(audio[i:i + 320]) for i in range(0, len(audio), 320)]
    return np.concatenate([*parts, stream.push(np.zeros(0, np.float32), final=True)])


def _grid_r(system, cache: str) -> tuple[float, list]:
    """Mean correlation of the predicted with the real inner-lip gap change over a cache's test clips (clean
    speech, no silence gate), and each clip's _bands."""
    from lipgen.data.motion import MotionDataset

    rs, banded = [], []
    for clip in MotionDataset(cache, "test", window=system.config.n_frames, augment=False,
                              speech=system.config.speech).clips:
        if "versions" in clip:  # whisper: the clean version, encoded as training encodes it
            feats, motion, _ = clip["versions"][0]
        else:  # log-mel: made from the clip's speech
            feats, motion = system.features(clip["audio"], len(clip["motion"]))[:], clip["motion"]
        pred = system.gap(torch.from_numpy(system.predict(np.asarray(feats, np.float32))[None]))[0].numpy()
        real = system.gap(torch.from_numpy(motion[None]))[0].numpy()
        rs.append(np.corrcoef(pred, real)[0, 1])
        banded.append(_bands(pred, real))
    return float(np.mean(rs)), banded


BANDS_HZ = ((0, 1), (1, 2.5), (2.5, 4), (4, 6), (6, 12.5))


def _bands(predicted: np.ndarray, real: np.ndarray, fps: float = 25.0) -> np.ndarray:
    """(len(BANDS_HZ), 3): per band, the real opening's variance, the prediction's, and their correlation."""
    freq = np.fft.rfftfreq(len(real), 1 / fps)
    spectra = [np.fft.rfft(x - x.mean()) for x in (predicted, real)]
    out = []
    for lo, hi in BANDS_HZ:
        p, r = (np.fft.irfft(np.where((freq >= lo) & (freq < hi), x, 0), len(real)) for x in spectra)
        out.append((r.var(), p.var(), np.corrcoef(p, r)[0, 1] if min(p.std(), r.std()) > 1e-9 else np.nan))
    return np.array(out)


def _print_bands(name: str, banded: list) -> None:
    b = np.array(banded)  # (clips, bands, 3)
    real_share = (b[:, :, 0] / b[:, :, 0].sum(1, keepdims=True)).mean(0)
    pred_share = (b[:, :, 1] / b[:, :, 1].sum(1, keepdims=True)).mean(0)
    print(f"  {name}, per band: share of the real opening's variance / of the prediction's / correlation")
    for (lo, hi), rs, ps, r in zip(BANDS_HZ, real_share, pred_share, np.nanmean(b[:, :, 2], 0)):
        print(f"    {lo:4.1f}-{hi:4.1f} Hz: {rs:.2f} / {ps:.2f} / {r:+.2f}")


def _lagged_r(predicted: np.ndarray, real: np.ndarray, lag: int) -> float:
    """Correlation of predicted[t + lag] with real[t] over the frames both have."""
    n = len(real)
    a, b = predicted[max(lag, 0):n + min(lag, 0)], real[max(-lag, 0):n + min(-lag, 0)]
    ok = np.isfinite(b)
    return float(np.corrcoef(a[ok], b[ok])[0, 1])


if __name__ == "__main__":
    main()
