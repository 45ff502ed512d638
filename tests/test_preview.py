"""lipgen preview: a picture of the crops and landmarks, read a frame at a time, never over an input."""

import numpy as np
import pytest
from PIL import Image

from lipgen import face, media
from lipgen.cli import main
from lipgen.errors import FaceNotFoundError
from lipgen.preview import FRAMES_SHOWN, preview

from .conftest import GRID

CLIP = GRID / "s1" / "video" / "bbaf2n.mp4"
TILE = 2 * face.FACE_SIZE  # a face crop and its mouth crop side by side


def test_a_clip_a_photo_and_a_faceless_video(tmp_path, caplog):
    photo = tmp_path / "me.png"
    Image.fromarray(media.read_video(CLIP)[30]).save(photo)
    media.write_mp4(tmp_path / "wall.mp4", np.full((10, 96, 128, 3), 120, np.uint8))
    with caplog.at_level("WARNING", logger="lipgen.preview"):
        out = preview([CLIP, tmp_path / "wall.mp4", photo], tmp_path / "p.png")
    picture = np.asarray(Image.open(out))
    assert picture.shape == (2 * face.FACE_SIZE, FRAMES_SHOWN * TILE, 3)  # two rows: the faceless video left out
    assert "wall.mp4: left out of the preview" in caplog.text
    mouth_tile = picture[:, face.FACE_SIZE:TILE].astype(int)
    red = (mouth_tile[..., 0] > 200) & (mouth_tile[..., 1] < 100)
    green = (mouth_tile[..., 1] > 200) & (mouth_tile[..., 0] < 100)
    assert red.sum() > 50 and green.sum() == 0  # the mouth's points are drawn as mouth points
    assert not list(tmp_path.glob(".p.*"))


def test_nothing_to_show_and_an_input_as_output_are_refused(tmp_path, capsys):
    media.write_mp4(tmp_path / "wall.mp4", np.full((10, 96, 128, 3), 120, np.uint8))
    with pytest.raises(FaceNotFoundError, match="no face found in any of the 1 inputs"):
        preview([tmp_path / "wall.mp4"], tmp_path / "p.png")
    video = tmp_path / "v.png"
    Image.fromarray(media.read_video(CLIP)[0]).save(video)
    before = video.read_bytes()
    assert main(["preview", str(video), "-o", str(video)]) != 0
    assert "the output is the VIDEO input file" in capsys.readouterr().err
    assert video.read_bytes() == before and not (tmp_path / "p.png").exists()
