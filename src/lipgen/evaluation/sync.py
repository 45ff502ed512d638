"""LSE-D and LSE-C: lip-sync error measured by a sync expert, following Wav2Lip's use of SyncNet.

Protocol (Chung & Zisserman 2016, "Out of time"; Prajwal et al. 2020, Wav2Lip, whose evaluation runs
SyncNet's syncnet_python): every 5-frame mouth window at frame t is compared with the audio window at
frame t + k for each offset k in [-max_offset, max_offset] (15 frames = 0.6 s by default); the
distances are averaged over the clip per offset, giving a curve d(k) of 2 max_offset + 1 values;

    LSE-D  = min_k d(k)                 (lower is better)
    LSE-C  = median_k d(k) - min_k d(k)  (higher is better: how clearly one offset stands out)
    offset = argmin_k d(k)

Choices made explicit here:
- Sign of the offset: positive = the audio is LATER than the video (the sound matching the mouth at
  frame t is found at frame t + offset). syncnet_python reports the opposite sign
  (offset = vshift - argmin over its padded window).
- Clip edges: windows whose shifted audio would fall outside the clip are SKIPPED, so d(k) averages
  the W - |k| windows that have audio at offset k (W = T - 4 windows). syncnet_python instead pads
  the audio features with zeros. Clips need T >= max_offset + 5 frames.
- Distances are Euclidean between L2-normalised embeddings of lipgen's own expert
  (lipgen.models.syncnet), so they lie in [0, 2]. Their absolute values are on THIS expert's scale, not
  SyncNet's: they cannot be compared with published numbers (Wav2Lip's LSE-D 6.39 / LSE-C 7.79 on
  LRS2), only between models evaluated with the same expert file.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from ..media import MELS_PER_FRAME, SYNC_FRAMES
from .. import ASSETS

EXPERT_PATH = ASSETS / "syncnet.safetensors"
MAX_OFFSET = 15  # frames (0.6 s at 25 fps) either way, as in SyncNet's evaluation (vshift = 15)
CHUNK_FRAMES = 500  # frames embedded at once (20 s): memory stays bounded for long clips


def load_expert(path: str | os.PathLike | None = None, model: str = "syncnet"):
    """A sync expert: the shipped lipgen/assets/<model>.safetensors, or a `lipgen train --model <model>`
    checkpoint. model: "syncnet" (the GRID pixel expert) or "lmsync" (the landmark expert, also
    load_landmark_expert). Returns the system in eval mode (float32, CPU)."""
    from ..checkpoint import load_system, read_header

    path = Path(path) if path is not None else EXPERT_PATH.with_name(f"{model}.safetensors")
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no {model} sync expert here. Train one with `lipgen train --model {model}` "
                                f"and pass its model.safetensors, or restore lipgen/assets/{model}.safetensors.")
    if read_header(path)["model"] != model:
        raise ValueError(f"{path}: a {read_header(path)['model']} checkpoint, not a {model} expert.")
    expert, _ = load_system(path)
    return expert


@torch.no_grad()
def _embed(embed, x: torch.Tensor, rows_per_frame: int) -> torch.Tensor:
    """Embed all windows of one clip in chunks that overlap by 4 frames: (1, C, rows, ...) -> (W, D).

    The expert's time convolutions are unpadded, so chunked and whole-clip embeddings are identical.
    """
    n = x.shape[2] // rows_per_frame
    out = []
    for start in range(0, n - SYNC_FRAMES + 1, CHUNK_FRAMES - SYNC_FRAMES + 1):
        stop = min(start + CHUNK_FRAMES, n)
        out.append(embed(x[:, :, start * rows_per_frame:stop * rows_per_frame])[0])  # (stop - start - 4, D)
    return torch.cat(out)


def sync_distances(expert, mouth: np.ndarray, mel: np.ndarray, max_offset: int = MAX_OFFSET) -> np.ndarray:
    """Mean distance per offset k = -max_offset..max_offset: (2 max_offset + 1,) float64 (see module doc).

    mouth: (T, S, S, 3) uint8 RGB mouth crops (S = the expert's image_size, 64 for lipgen's mouth crop);
    mel: (4T, M) float log-mel from lipgen.media.log_mel, MELS_PER_FRAME rows per video frame.
    """
    cfg = expert.config
    S = cfg.image_size
    if mouth.ndim != 4 or mouth.shape[1:] != (S, S, 3) or mouth.dtype != np.uint8:
        raise ValueError(f"mouth: expected (T, {S}, {S}, 3) uint8 mouth crops (lipgen.face.crop with "
                         f"face.MOUTH_SIZE), got {mouth.shape} {mouth.dtype}.")
    T = mouth.shape[0]
    if mel.ndim != 2 or mel.shape != (T * MELS_PER_FRAME, cfg.n_mels):
        raise ValueError(f"mel: expected ({T * MELS_PER_FRAME}, {cfg.n_mels}) = {MELS_PER_FRAME} log-mel rows per "
                         f"video frame for the {T} mouth frames, got {mel.shape}. "
                         "Compute it with lipgen.media.log_mel(audio, n_frames=T).")
    if max_offset < 0 or T < max_offset + SYNC_FRAMES:
        raise ValueError(f"a clip of {T} frames is too short for offsets up to +-{max_offset}: need at least "
                         f"{max_offset + SYNC_FRAMES} frames, or pass a smaller max_offset.")
    was_training = expert.training
    expert.eval()
    try:
        video = torch.from_numpy(np.ascontiguousarray(mouth)).float().div_(127.5).sub_(1)  # (T, S, S, 3)
        video = video.permute(3, 0, 1, 2)[None]  # (1, 3, T, S, S)
        audio = torch.from_numpy(np.ascontiguousarray(mel, dtype=np.float32))[None, None]  # (1, 1, 4T, M)
        v = _embed(expert.embed_video, video, 1)  # (W, D)
        a = _embed(expert.embed_audio, audio, MELS_PER_FRAME)  # (W, D)
    finally:
        expert.train(was_training)
    return offset_distances(v, a, max_offset)


def offset_distances(v: torch.Tensor, a: torch.Tensor, max_offset: int) -> np.ndarray:
    """Mean distance between video window t and audio window t + k, for k = -max_offset..max_offset, over
    the windows whose shifted audio exists: v, a (W, D) -> (2 max_offset + 1,) float64."""
    W = v.shape[0]
    dists = []
    for k in range(-max_offset, max_offset + 1):
        t = torch.arange(max(0, -k), W - max(0, k))  # windows whose audio window t + k exists
        dists.append((v[t] - a[t + k]).norm(dim=1).double().mean().item())
    return np.array(dists)


def sync_scores(expert, mouth: np.ndarray, mel: np.ndarray, max_offset: int = MAX_OFFSET) -> dict:
    """LSE-D, LSE-C and the AV offset of one clip (see the module doc for the protocol and its scale).

    mouth (T, 64, 64, 3) uint8, mel (4T, 80) float. Returns
        lse_d: float        min over offsets of the mean distance (lower is better)
        lse_c: float        median - min of the mean distances (higher is better)
        offset: int         argmin, in frames; positive = audio later than video
        offsets: (2K+1,)    the offsets -K..K, K = max_offset
        distances: (2K+1,)  mean distance per offset
    """
    return _scores(sync_distances(expert, mouth, mel, max_offset), max_offset)


def _scores(d: np.ndarray, max_offset: int) -> dict:
    best = int(np.argmin(d))
    return {"lse_d": float(d[best]), "lse_c": float(np.median(d) - d[best]), "offset": best - max_offset,
            "offsets": np.arange(-max_offset, max_offset + 1), "distances": d}


# The landmark expert (lipgen.models.lmsync): the judge for faces and voices outside GRID.
LANDMARK_EXPERT_PATH = EXPERT_PATH.with_name("lmsync.safetensors")


def load_landmark_expert(path: str | os.PathLike | None = None):
    """The in-the-wild sync expert: the shipped lipgen/assets/lmsync.safetensors, or a
    `lipgen train --model lmsync` checkpoint (see load_expert)."""
    return load_expert(path, model="lmsync")


def landmark_motion(landmarks: np.ndarray) -> np.ndarray:
    """Lower-face motion of a face track, as the landmark expert and the motion model see it:
    (T, 68, 2) frame pixels -> (T, 31, 2) aligned-face pixels minus the track's rest shape."""
    from ..face import crop_matrices, transform_points
    from ..models.motion import MOTION_POINTS, rest_shape

    face_matrix, _ = crop_matrices(landmarks)
    aligned = transform_points(np.asarray(landmarks, np.float64), face_matrix)
    return aligned[:, MOTION_POINTS] - rest_shape(aligned)


def landmark_sync_scores(expert, landmarks: np.ndarray, audio: np.ndarray, max_offset: int = MAX_OFFSET) -> dict:
    """LSE-D, LSE-C and offset from the landmark expert, same protocol and keys as sync_scores.

    landmarks: (T, 68, 2) dlib points of the face in every frame (lipgen.face.track_landmarks);
    audio: (N,) float32 at 16 kHz, the clip's sound (fitted to T frames).
    """
    from ..models.lmsync import embed_clip
    from ..voice import features

    T = len(landmarks)
    if max_offset < 0 or T < max_offset + SYNC_FRAMES:
        raise ValueError(f"a clip of {T} frames is too short for offsets up to +-{max_offset}: need at least "
                         f"{max_offset + SYNC_FRAMES} frames, or pass a smaller max_offset.")
    v, a = embed_clip(expert, landmark_motion(landmarks), features(audio, T))
    return _scores(offset_distances(v, a, max_offset), max_offset)
