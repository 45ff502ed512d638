"""How the motion follows strangers' speech as people record and send it: codecs, clipping, music, hum, a second
talker, noise, a big room. Model space, as scripts/voice_probe.py: the predicted inner-lip gap (gated, as generation
makes it) against the real speaker's mouth opening, per clip, for each condition of the same 8 s of speech.

    python scripts/audio_conditions.py [MODEL.safetensors] [--work cache/unseen/videos] [--out FILE.md]

Reads the clips that `lipgen evaluate-videos` prepared (audio.npy, clip.landmarks.npy: run scripts/evaluate_unseen.sh
first). Codecs go through files and lipgen.media.read_audio, the path a user's file takes. Deterministic for a thread
count (the committed table: OMP_NUM_THREADS=1). Prints, per condition: the mean correlation with the real opening, the
mean correlation with the clean speech's prediction, the predicted gap in speech as a share of the clean one's, and
the share of frames whose silence gate differs from the clean speech's. Where the gate hears no speech at all the
mouth rests, and both correlations count as 0. Training's augmentation (lipgen.voice.augment) has rooms, band limits,
noise, babble, mu-law, 8 kHz and gain; the codecs, clipping, music, hum and DC offset here are not in it.
"""

import argparse
import tempfile
from pathlib import Path

import av
import numpy as np
import torch

from lipgen import media
from lipgen.checkpoint import load_system
from lipgen.evaluation.wild import mouth_opening
from lipgen.inference import predicted_motion, silence_gain
from lipgen.voice import room_response

RATE = media.SAMPLE_RATE


def _codec(x: np.ndarray, fmt: str, codec: str, rate: int, bit_rate: int) -> np.ndarray:
    """x through an encoder and back, via a file read by lipgen.media.read_audio."""
    from scipy.signal import resample_poly

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"speech.{fmt}"
        resampled = resample_poly(x, rate, RATE) if rate != RATE else x  # band-limited first, as a phone is
        pcm = np.clip(resampled * 32767, -32768, 32767).astype(np.int16)[None]
        with av.open(str(path), "w") as out:
            stream = out.add_stream(codec, rate=rate, layout="mono")
            stream.bit_rate = bit_rate
            frame = av.AudioFrame.from_ndarray(pcm, format="s16", layout="mono")
            frame.sample_rate = rate
            for packet in stream.encode(frame):
                out.mux(packet)
            for packet in stream.encode(None):
                out.mux(packet)
        y = media.read_audio(path)
    return np.pad(y, (0, max(0, len(x) - len(y))))[:len(x)]


def _at_snr(x: np.ndarray, noise: np.ndarray, snr_db: float) -> np.ndarray:
    level = np.sqrt(np.mean(x ** 2)) / (np.sqrt(np.mean(noise ** 2)) + 1e-12)
    return x + noise * level * 10 ** (-snr_db / 20)


def _music(n: int, rng: np.random.Generator) -> np.ndarray:
    """A synthetic song: a chord every half second (three harmonic tones, decaying) and a kick and hi-hat."""
    t = np.arange(n) / RATE
    out = np.zeros(n)
    beat = RATE // 2
    for start in range(0, n, beat):
        root = 110 * 2 ** (rng.integers(0, 12) / 12)
        seg = t[start:start + beat] - t[start]
        env = np.exp(-seg * 3)
        for ratio in (1, 1.26, 1.5):
            for h in range(1, 5):
                out[start:start + beat] += env * np.sin(2 * np.pi * root * ratio * h * seg) / h
        kick = np.sin(2 * np.pi * 60 * seg) * np.exp(-seg * 20)
        out[start:start + beat] += 2 * kick
        hat = out[start + beat // 2:start + beat // 2 + 800]  # a hi-hat on the off-beat (a view: added in place)
        hat += rng.standard_normal(len(hat)) * 0.5 * np.exp(-np.arange(len(hat)) / 150)
    return out


def conditions(x: np.ndarray, other: np.ndarray, rng: np.random.Generator) -> dict:
    from scipy import signal

    n = len(x)
    t = np.arange(n) / RATE
    hum = sum(np.sin(2 * np.pi * 50 * k * t) / k for k in (1, 2, 3, 5))
    return {
        "clean": x,
        "phone call (AMR-NB 12.2 kbit/s, 8 kHz)": _codec(x, "amr", "libopencore_amrnb", 8000, 12200),
        "voice message (Opus 12 kbit/s)": _codec(x, "ogg", "libopus", 16000, 12000),
        "MP3 32 kbit/s": _codec(x, "mp3", "libmp3lame", 16000, 32000),
        "clipped: 6 dB over full scale": np.clip(x / np.abs(x).max() * 2, -1, 1),
        "clipped: 12 dB over full scale": np.clip(x / np.abs(x).max() * 4, -1, 1),
        "quiet (-40 dB)": x * 0.01,
        "DC offset 0.2": x + 0.2,
        "mains hum at 10 dB SNR": _at_snr(x, hum, 10),
        "music bed at 5 dB SNR": _at_snr(x, _music(n, rng), 5),
        "a second talker at 5 dB SNR": _at_snr(x, np.resize(other, n), 5),
        "white noise at 0 dB SNR": _at_snr(x, rng.standard_normal(n), 0),
        "a big room (RT60 1.2 s, wet)": signal.fftconvolve(x, room_response(rng, 1.2) * np.r_[0.3, np.ones(int(1.2 * RATE) - 1)])[:n],
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", nargs="?", default=str(Path(__file__).resolve().parents[1] / "src/lipgen/assets/motion.safetensors"))
    parser.add_argument("--work", default="cache/unseen/videos", help="evaluate-videos work folder")
    parser.add_argument("--out", help="also write the table (markdown) here")
    args = parser.parse_args()
    clips = sorted(p.parent for p in Path(args.work).glob("*/clip.landmarks.npy"))
    if not clips:
        raise SystemExit(f"{args.work}: no prepared clips; run scripts/evaluate_unseen.sh first")
    system = load_system(args.model, strict=False)[0]
    audios = [np.load(c / "audio.npy").astype(np.float64) for c in clips]
    rows = {}
    for i, (clip, audio) in enumerate(zip(clips, audios)):
        real = mouth_opening(np.load(clip / "clip.landmarks.npy"))
        ok = np.isfinite(real)
        n = len(real)
        rng = np.random.default_rng(i)
        clean_gap = clean_gate = None
        for name, x in conditions(audio, audios[(i + 1) % len(audios)], rng).items():
            x = x.astype(np.float32)
            gate = silence_gain(x, n)
            raw = predicted_motion(system, x, n, 1.0, rest_in_silence=False)
            gap = system.gap(torch.from_numpy(raw[None]))[0].numpy() * gate
            if clean_gap is None:
                clean_gap, clean_gate = gap, gate
            speech = clean_gate > 0.5
            moves = gap.std() > 1e-9  # else the gate heard no speech: the mouth rests, which follows nothing (r 0)
            rows.setdefault(name, []).append((
                np.corrcoef(gap[ok], real[ok])[0, 1] if moves else 0.0,
                np.corrcoef(gap, clean_gap)[0, 1] if moves else 0.0,
                gap[speech].mean() / max(clean_gap[speech].mean(), 1e-9),
                np.mean((gate > 0.5) != speech)))
        print(f"  {clip.name}: " + ", ".join(f"{v[-1][0]:+.2f}" for v in rows.values()), flush=True)
    lines = [f"Model: {args.model}; {len(clips)} clips, first 8 s (`python scripts/audio_conditions.py`)", "",
             "| condition | corr. with the real opening | corr. with the clean speech's motion | gap in speech vs clean | gate differs |",
             "|---|---|---|---|---|"]
    for name, v in rows.items():
        m = np.nanmean(np.array(v), 0)
        lines.append(f"| {name} | {m[0]:.3f} | {m[1]:.3f} | {m[2]:.2f} | {m[3]:.1%} |")
    print("\n".join(lines))
    if args.out:
        Path(args.out).write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
