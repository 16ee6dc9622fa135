"""Tests for fastcnn.images: user pictures of digits become MNIST-style 28x28 inputs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw
from scipy import ndimage

from fastcnn.datasets import load_mnist
from fastcnn.images import ImageFileError, load_digit, to_mnist

# Integer placement can miss the centre by half a pixel on each axis (MNIST's own digits spread
# with a standard deviation of 0.28 pixel around (14, 14), the same as a uniform half-pixel error).
CENTRE_TOLERANCE = 0.5 + 1e-9


def draw_digit(
    size=(200, 160), box=(30, 20, 110, 140), ink=0, paper=255, width=12, mode="L"
) -> Image.Image:
    """A "4" drawn with thick strokes inside ``box`` = (left, top, right, bottom)."""
    image = Image.new(mode, size, paper)
    draw = ImageDraw.Draw(image)
    left, top, right, bottom = box
    mid_x, mid_y = left + (right - left) * 2 // 3, top + (bottom - top) * 2 // 3
    draw.line([(mid_x, top), (left, mid_y), (right, mid_y)], fill=ink, width=width)
    draw.line([(mid_x, top), (mid_x, bottom)], fill=ink, width=width)
    return image


def check_mnist_like(x: np.ndarray) -> None:
    assert x.shape == (1, 28, 28) and x.dtype == np.float64
    assert x.min() >= 0.0 and x.max() == pytest.approx(1.0)
    row, col = ndimage.center_of_mass(x[0])
    assert abs(row - 14) <= CENTRE_TOLERANCE and abs(col - 14) <= CENTRE_TOLERANCE, (row, col)
    rows, cols = np.flatnonzero(x[0].any(axis=1)), np.flatnonzero(x[0].any(axis=0))
    height, width = rows[-1] - rows[0] + 1, cols[-1] - cols[0] + 1
    # The longer side fills the 20-pixel box; Lanczos may spill a faint pixel past it.
    assert 19 <= max(height, width) <= 21, (height, width)
    # MNIST's corners are background: the digit sits inside the field with a margin.
    assert x[0, :2].max() == 0 and x[0, -2:].max() == 0 and x[0, :, :2].max() == 0


@pytest.mark.parametrize("polarity", ["black-on-white", "white-on-black"])
@pytest.mark.parametrize(
    "size, box",
    [
        ((200, 160), (30, 20, 110, 140)),  # large, left of centre
        ((400, 300), (250, 10, 390, 120)),  # wide canvas, digit in the top-right corner
        ((40, 60), (5, 30, 25, 55)),  # smaller than the 20x20 box: scaled up
    ],
)
def test_load_digit_mnist_format(tmp_path: Path, polarity: str, size, box) -> None:
    # Catches a missing inversion (black ink read as background), no crop or an uncentred paste
    # (an off-centre digit stays off-centre), and a scale that ignores the 20x20 box.
    ink, paper = (0, 255) if polarity == "black-on-white" else (255, 0)
    width = max(2, (box[2] - box[0]) // 8)
    path = tmp_path / "digit.png"
    draw_digit(size, box, ink, paper, width).save(path)
    check_mnist_like(load_digit(path))


def test_polarity_does_not_matter(tmp_path: Path) -> None:
    # Catches an inversion decided per pixel or a background level that depends on polarity.
    draw_digit(ink=0, paper=255).save(tmp_path / "dark.png")
    draw_digit(ink=255, paper=0).save(tmp_path / "light.png")
    np.testing.assert_allclose(
        load_digit(tmp_path / "dark.png"), load_digit(tmp_path / "light.png"), atol=1e-12
    )


def test_aspect_ratio_kept() -> None:
    # Catches scaling each axis to 20 (a "1" would become a filled square).
    image = np.zeros((120, 60))
    image[10:110, 25:35] = 1.0  # a bar 100 tall, 10 wide
    x = to_mnist(image)[0]
    rows, cols = np.flatnonzero(x.any(axis=1)), np.flatnonzero(x.any(axis=0))
    assert rows[-1] - rows[0] + 1 == 20
    assert 2 <= cols[-1] - cols[0] + 1 <= 4  # 10 * 20/100 = 2, plus Lanczos' faint edges


def test_grey_paper_jpeg(tmp_path: Path) -> None:
    # Catches a photo-like image failing: grey paper and grey ink, noise, JPEG ringing. Noise
    # counted as ink would widen the bounding box and pull the centre of mass off.
    image = np.array(draw_digit(ink=70, paper=190), dtype=np.float64)
    image += np.random.default_rng(0).normal(0, 6, image.shape)
    path = tmp_path / "photo.jpg"
    Image.fromarray(np.clip(image, 0, 255).astype(np.uint8)).save(path, quality=70)
    check_mnist_like(load_digit(path))


@pytest.mark.parametrize("ink", [(0, 0, 0, 255), (255, 255, 255, 255), (200, 30, 30, 255)])
def test_transparent_background(tmp_path: Path, ink) -> None:
    # Catches alpha being dropped: the transparent pixels of a drawing app's export are often
    # stored as black, so black strokes on them would vanish into a blank image.
    image = draw_digit(ink=ink, paper=(0, 0, 0, 0), mode="RGBA")
    image.save(tmp_path / "strokes.png")
    draw_digit(ink=255, paper=0).save(tmp_path / "plain.png")
    x = load_digit(tmp_path / "strokes.png")
    check_mnist_like(x)
    np.testing.assert_allclose(x, load_digit(tmp_path / "plain.png"), atol=0.05)


def test_float32(tmp_path: Path) -> None:
    # Catches the dtype option being ignored (a float32 network would then cast every input).
    draw_digit().save(tmp_path / "d.png")
    assert load_digit(tmp_path / "d.png", dtype=np.float32).dtype == np.float32


# ---------------------------------------------------------------------------------------------------
# errors


def test_not_an_image(tmp_path: Path) -> None:
    # Catches Pillow's UnidentifiedImageError escaping (the CLI would show a traceback).
    path = tmp_path / "notes.png"
    path.write_text("this is not a picture\n")
    with pytest.raises(ImageFileError, match=f"^{path}: not an image file Pillow can read"):
        load_digit(path)


def test_truncated_image(tmp_path: Path) -> None:
    # Catches decoding deferred past the check: Pillow opens a truncated PNG lazily and only
    # fails when the pixels are read.
    path = tmp_path / "cut.png"
    draw_digit().save(path)
    path.write_bytes(path.read_bytes()[:300])
    with pytest.raises(ImageFileError, match=f"^{path}: the image data is damaged or truncated"):
        load_digit(path)


@pytest.mark.parametrize("value", [0, 128, 255])
def test_blank_image(tmp_path: Path, value: int) -> None:
    # Catches a blank image "recognised" as a digit: normalising its zero contrast would divide
    # by zero or turn noise into ink.
    path = tmp_path / "blank.png"
    Image.new("L", (50, 50), value).save(path)
    with pytest.raises(ImageFileError, match=f"^{path}: blank image: no digit found"):
        load_digit(path)


def test_faint_image_is_blank() -> None:
    # Catches a threshold so low that a sheet of paper with a faint smudge passes as a digit.
    image = np.full((40, 40), 0.8)
    image[10:20, 10:20] = 0.78
    with pytest.raises(ValueError, match="blank image"):
        to_mnist(image)


def test_missing_file(tmp_path: Path) -> None:
    # Catches a missing file reported as a damaged image.
    with pytest.raises(FileNotFoundError):
        load_digit(tmp_path / "nope.png")


def test_to_mnist_rejects_non_2d() -> None:
    # Catches an RGB array taken as a stack of rows (garbage in, a confident digit out).
    with pytest.raises(
        ValueError,
        match=r"expected a 2-D greyscale image, got an array of shape "
        r"\(10, 10, 3\)",
    ):
        to_mnist(np.zeros((10, 10, 3)))


# ---------------------------------------------------------------------------------------------------
# against real MNIST digits (mnist_dir, from conftest.py, skips without the shared files)


@pytest.mark.mnist
def test_mnist_digit_survives_round_trip(mnist_dir: Path) -> None:
    # Catches a conversion that differs from how MNIST was made (centre convention off by a
    # pixel, a 28 box instead of 20, no anti-aliasing): an MNIST digit blown up 6x and printed
    # black on white must come back as nearly itself.
    _, (test_x, _) = load_mnist(mnist_dir, download=False)
    correlations = []
    for digit in test_x[:50]:
        big = Image.fromarray(255 - digit).resize((168, 168), Image.Resampling.BICUBIC)
        back = to_mnist(np.asarray(big))[0]
        correlations.append(np.corrcoef(back.ravel(), digit.ravel() / 255.0)[0, 1])
    # Measured: median 0.98; the same conversion shifted by one pixel gives about 0.8. A few
    # digits whose MNIST box is not quite 20 pixels come back less alike, hence the median.
    assert np.median(correlations) > 0.95, sorted(correlations)
