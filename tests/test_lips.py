"""A photo's inner lips read again by MediaPipe's face mesh (lipgen.lips; installed with lipgen[mesh])."""

import cv2
import numpy as np
import pytest

from lipgen import face, media
from lipgen.generate import FaceSource
from lipgen.models.motion import opening

pytest.importorskip("mediapipe")

from lipgen import lips  # noqa: E402

S4 = face.ASSETS / "clips" / "s4_bbilzs.mp4"  # GRID s4, who speaks with his teeth showing


def _read(frame):
    return face.landmarks_in_box(frame, face.detect_faces(frame)[0])


def test_teeth_are_not_taken_for_the_lower_lip():
    """GRID s4 mid-word, his teeth showing: dlib puts the lower inner lip on his teeth, the mesh on the lip below
    them. The opening grows by more than 0.05 eye distances, only the lower inner lip moves, and it moves down."""
    frame = media.read_video(S4)[30]
    dlib = _read(frame)
    read = lips.wider_inner_lips(frame, dlib)
    iod = face.eye_distance(dlib[None].astype(np.float64))[0]
    assert opening(read.astype(np.float64)) - opening(dlib.astype(np.float64)) > 0.05 * iod
    assert (read[[65, 66, 67], 1] - dlib[[65, 66, 67], 1] > 0.04 * iod).all()  # down, onto the lip
    assert np.abs(read[[61, 62, 63], 1] - dlib[[61, 62, 63], 1]).max() < 0.05 * iod  # the upper lip agreed on
    others = np.setdiff1d(np.arange(68), [61, 62, 63, 65, 66, 67])
    assert np.array_equal(read[others], dlib[others])


def test_a_mouth_the_mesh_sees_no_wider_is_left_as_dlib_read_it(monkeypatch):
    frame = media.read_video(face.ASSETS / "clips" / "s1_bbaf2n.mp4")[0]  # lips closed before speech
    dlib = _read(frame)
    assert lips.wider_inner_lips(frame, dlib) is dlib
    monkeypatch.setattr(lips, "_mesh", lambda: None)  # without mediapipe: dlib's reading, whatever the mouth
    assert lips.wider_inner_lips(media.read_video(S4)[30], dlib) is dlib


def test_a_photo_is_read_with_the_mesh(tmp_path):
    """Generation's photo source (lipgen.generate.FaceSource) takes the wider reading."""
    frame = media.read_video(S4)[30]
    photo = tmp_path / "s4.png"
    cv2.imwrite(str(photo), cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    source = FaceSource(photo)
    iod = face.eye_distance(source.landmarks[:1].astype(np.float64))[0]
    assert opening(source.landmarks[0].astype(np.float64)) - opening(_read(frame).astype(np.float64)) > 0.05 * iod
