"""Generation speed of `lipgen generate` on this machine: real-time factor for a 10 s clip.

    python benchmarks/generate_speed.py [--checkpoint runs/glance/model.safetensors] [--seconds 10]

Prints, for the bundled sample speech cut to --seconds and the bundled 512x512 face photo:
- model alone: the model making every frame's crop from the log-mel (windows, cross-fade); for the motion
  model, predicting the motion and warping every full frame (no encoding);
- whole pipeline: reading audio, log-mel, face tracking, the model, paste-back, H.264+AAC encoding; for the
  speech given as a 16 kHz array (muxed as 16 kHz mono) and as a 48 kHz stereo WAV file (its own sound muxed at
  48 kHz in stereo, as a phone or camera records it);
as real-time factor = seconds of video made per second of wall time (higher is faster).
"""

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from lipgen import media
from lipgen.generate import SAMPLE_AUDIO, SAMPLE_FACE, FaceSource, generate, motion_frames
from lipgen.inference import load_model, model_crops


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", help="model name (default: lipgen generate's default, motion)")
    parser.add_argument("--checkpoint", help="model file (default: the shipped model)")
    parser.add_argument("--seconds", type=float, default=10.0, help="length of the test clip (default 10)")
    parser.add_argument("--repeats", type=int, default=3, help="timed repeats; the best is reported")
    args = parser.parse_args()

    audio = media.read_audio(SAMPLE_AUDIO)[: int(args.seconds * media.SAMPLE_RATE)]
    seconds = audio.size / media.SAMPLE_RATE
    print(f"torch threads: {torch.get_num_threads()}, clip: {seconds:.1f} s of {SAMPLE_AUDIO.name} onto {SAMPLE_FACE.name}")
    system = load_model(args.model, args.checkpoint)
    source = FaceSource(SAMPLE_FACE)
    mel = media.log_mel(audio)

    best = np.inf
    for _ in range(args.repeats):
        start = time.perf_counter()
        if system.crop == "motion":  # motion predicted, the photo warped frame by frame
            crops = motion_frames(system, audio, len(mel) // media.MELS_PER_FRAME, source)
        else:
            _, crops = model_crops(system, mel, source.identity_mouth, source.identity_face)
        n = sum(1 for _ in crops)
        best = min(best, time.perf_counter() - start)
    print(f"model alone:    {n} frames in {best:6.2f} s  real-time factor {seconds / best:6.1f}x")

    with tempfile.TemporaryDirectory() as tmp:
        wav = Path(tmp) / "speech48k.wav"
        media.write_wav(wav, np.stack([audio, audio]).repeat(3, axis=1), 48000)  # held samples: the length is what counts
        for speech, name in ((audio, "16 kHz array"), (wav, "48 kHz stereo file")):
            best = np.inf
            for _ in range(args.repeats):
                start = time.perf_counter()
                out = generate(speech, SAMPLE_FACE, Path(tmp) / "bench.mp4", model=args.model,
                               checkpoint=args.checkpoint, progress=False)
                best = min(best, time.perf_counter() - start)
            frames = len(media.read_video(out))
            print(f"whole pipeline, {name}: {frames} frames in {best:6.2f} s  real-time factor {seconds / best:6.1f}x")


if __name__ == "__main__":
    main()
