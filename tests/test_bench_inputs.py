"""What the benchmarks feed and print: an enlarged photo is the same photo to the decoder (its EXIF
orientation kept), and a part given no runs is skipped, not a crash."""

import io

import numpy as np
import pytest
from PIL import Image

from bench import try_it_phases
from bench.classify import upscaled_jpeg
from models.intake import decode_image
from tests.visit_helpers import FACES

ORIENTATION = 0x0112


def test_an_enlarged_photo_keeps_its_exif_orientation():
    photo = FACES / "obama_exif_rotated.jpg"
    with Image.open(photo) as source:
        assert source.getexif()[ORIENTATION] == 6  # stored on its side, shown upright
    enlarged = upscaled_jpeg(photo, 2)
    with Image.open(io.BytesIO(enlarged)) as image:
        assert image.getexif()[ORIENTATION] == 6
    original, decoded = decode_image(photo.read_bytes()), decode_image(enlarged)
    assert decoded.shape[:2] == (original.shape[0] * 2, original.shape[1] * 2)
    shrunk = np.asarray(Image.fromarray(decoded).resize((original.shape[1], original.shape[0])))
    assert np.abs(shrunk.astype(int) - original).mean() < 4  # the same picture, upright, not just the same size


def test_try_it_phases_with_no_warm_runs_prints_the_cold_starts_only(capsys):
    cold = {"launch -> health check answers": 2.0, "-> page HTML": 0.1}
    steps = {"upload -> photo shown": [], "upload -> Analyze enabled": []}
    try_it_phases.print_steps([cold, {**cold, "-> page HTML": 0.3}], steps, runs=0)
    printed = capsys.readouterr().out
    assert "warm runs not timed (--runs 0)" in printed
    assert "cold start (2 starts)" in printed and "-> page HTML" in printed and "0.200" in printed
    assert "upload ->" not in printed


@pytest.mark.parametrize("argv, said", [(["--runs", "0", "--cold", "0"], "leave nothing to time"),
                                        (["--runs", "-1"], "0 or more")])
def test_try_it_phases_refuses_counts_that_time_nothing(argv, said, capsys):
    with pytest.raises(SystemExit) as exited:
        try_it_phases.main(argv)
    assert exited.value.code == 2 and said in capsys.readouterr().err
