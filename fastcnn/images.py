"""The user's own digit images (PNG, JPEG, ...) in MNIST's format, for ``fastcnn predict``.

MNIST's digits were made this way (LeCun et al.): the ink's bounding box scaled to fit a 20x20 box
keeping its aspect ratio, anti-aliased to grey levels, then placed in a 28x28 field so that the
centre of mass of the pixels lands on the field's centre. ``to_mnist`` repeats that; a network
trained on MNIST sees a digit drawn in Paint as it saw the training set. Measured on the MNIST
training images, the centre of mass averages (14.0, 14.0) in array-index coordinates.
"""

from __future__ import annotations

import os
import warnings
from typing import Any, Union

import numpy as np
from numpy.typing import ArrayLike, DTypeLike, NDArray

from ._files import open_regular

PathLike = Union[str, "os.PathLike[str]"]

SIZE = 28  # the MNIST field
BOX = 20  # the digit's box inside it
CENTRE = 14.0  # where MNIST puts the centre of mass (row, column)
# Contrast (of a 0..1 range) below which an image holds no digit: ~25 of 255 grey levels, more
# than JPEG noise or paper texture, far less than any pen stroke.
MIN_CONTRAST = 0.1
# After normalising background to 0 and the darkest ink to 1, fainter pixels count as background,
# so paper texture and JPEG ringing neither widen the bounding box nor pull the centre of mass.
INK_THRESHOLD = 0.2
# The largest image load_digit decodes by default: 16 megapixels (a 12-megapixel phone photo
# fits); a 9000x9000 PNG of 108 kB would otherwise take gigabytes once decoded.
MAX_PIXELS = 16_000_000


class ImageFileError(ValueError):
    """An image cannot be read, or holds no digit; the message names the file."""


def load_digit(
    path: PathLike, *, dtype: DTypeLike = np.float64, max_pixels: int | None = MAX_PIXELS
) -> NDArray[np.floating]:
    """Read an image file and convert it to an MNIST-style digit with :func:`to_mnist`.

    Any format Pillow reads works (PNG, JPEG, GIF, BMP, ...); colour is converted to grey, the
    first frame of an animation is used, a JPEG's EXIF rotation is applied, and transparent pixels
    are laid over a background opposite to the ink. 16-bit, 32-bit and float images are read by
    their own range (16-bit: 0..65535), not clipped to 8 bits. The image's size is checked
    against ``max_pixels`` before anything is decoded.

    Parameters
    ----------
    path : str or path-like
    dtype : float64 or float32
    max_pixels : int or None, default ``MAX_PIXELS`` (16 million)
        Refuse larger images (width x height) before decoding them; None lifts the limit.

    Returns
    -------
    ndarray of shape (1, 28, 28), values in [0, 1], white digit on black as in MNIST

    Raises
    ------
    ImageFileError
        The file is not an image Pillow can decode, is damaged, is larger than ``max_pixels``,
        or is blank (no digit).
    FileNotFoundError, PermissionError
        The file cannot be opened.
    ImportError
        Pillow is not installed (``pip install fastcnn[cli]``).
    """
    try:
        return to_mnist(_read_grey(path, max_pixels), dtype=dtype)
    except ImageFileError:
        raise
    except ValueError as exc:
        raise ImageFileError(f"{os.fspath(path)}: {exc}") from None


def to_mnist(image: ArrayLike, *, dtype: DTypeLike = np.float64) -> NDArray[np.floating]:
    """Convert a greyscale picture of one digit to MNIST's format.

    Steps: invert when the background (median of the border pixels) is light; stretch so the
    background is 0 and the strongest ink 1; crop to the ink's bounding box; scale it to fit a
    20x20 box keeping the aspect ratio; paste it into a 28x28 field with its centre of mass at
    (14, 14), as far as the field allows.

    Parameters
    ----------
    image : array_like of shape (height, width)
        Brightness: floats in [0, 1], or integers 0..255.
    dtype : float64 or float32

    Returns
    -------
    ndarray of shape (1, 28, 28), values in [0, 1]

    Raises
    ------
    ValueError
        Not a 2-D image, or blank (contrast below ``MIN_CONTRAST``).
    """
    grey = np.asarray(image)
    if grey.ndim != 2 or min(grey.shape) < 1:
        raise ValueError(f"expected a 2-D greyscale image, got an array of shape {grey.shape}")
    if grey.dtype.kind in "iub":
        grey = grey / 255.0
    grey = grey.astype(np.float64)
    border = np.concatenate([grey[0], grey[-1], grey[:, 0], grey[:, -1]])
    background = float(np.median(border))
    if background > 0.5:  # dark ink on light paper; MNIST is light ink on black
        grey, background = 1.0 - grey, 1.0 - background
    contrast = float(grey.max()) - background
    if contrast < MIN_CONTRAST:
        raise ValueError(
            f"blank image: no digit found (the ink differs from the background by "
            f"{max(contrast, 0.0):.0%} of the grey range, less than {MIN_CONTRAST:.0%})"
        )
    ink = np.clip((grey - background) / contrast, 0.0, 1.0)
    ink[ink < INK_THRESHOLD] = 0.0
    rows, cols = np.flatnonzero(ink.any(axis=1)), np.flatnonzero(ink.any(axis=0))
    ink = ink[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]
    digit = _fit_box(ink)
    field = np.zeros((SIZE, SIZE))
    top, left = (_offset(digit, axis) for axis in (0, 1))
    field[top : top + digit.shape[0], left : left + digit.shape[1]] = digit
    return field.reshape(1, SIZE, SIZE).astype(dtype)


def _fit_box(ink: NDArray) -> NDArray:
    """Resize so the longer side is ``BOX`` pixels (aspect kept), anti-aliased, peak back at 1."""
    from PIL import Image

    scale = BOX / max(ink.shape)
    height, width = (max(1, round(n * scale)) for n in ink.shape)
    resized = Image.fromarray(ink.astype(np.float32)).resize(
        (width, height), Image.Resampling.LANCZOS
    )
    # LANCZOS rings slightly outside [0, 1]; thin strokes shrunk a lot turn faint, so restore the
    # peak as MNIST's digits (almost all reach 255) have it.
    digit = np.clip(np.asarray(resized, dtype=np.float64), 0.0, 1.0)
    peak = digit.max()
    return digit / peak if peak > 0 else digit


def _offset(digit: NDArray, axis: int) -> int:
    """Where the digit's first row (axis 0) or column (axis 1) goes in the field so its centre of
    mass lands on ``CENTRE``, clamped so the whole digit stays inside."""
    mass = digit.sum(axis=1 - axis)
    centre = (
        float(np.dot(np.arange(len(mass)), mass) / mass.sum())
        if mass.sum() > 0
        else (len(mass) - 1) / 2
    )
    return int(np.clip(round(CENTRE - centre), 0, SIZE - len(mass)))


def _read_grey(path: PathLike, max_pixels: int | None = None) -> NDArray[np.float64]:
    """The first frame of an image file as brightness in [0, 1], transparency resolved."""
    try:
        from PIL import Image, ImageOps, UnidentifiedImageError
    except ImportError:
        raise ImportError("Reading images needs Pillow: pip install fastcnn[cli]") from None
    name = os.fspath(path)
    # OSError (missing file...) propagates unchanged; a FIFO or device is refused without blocking
    with open_regular(path, ImageFileError, "an image is a file on disk.") as file:
        try:
            with warnings.catch_warnings():
                # our own limit below is far lower than the one Pillow warns about, and damaged
                # metadata (EXIF, TIFF tags) that Pillow skips with a warning is no error here:
                # the image either decodes (and is checked) or fails with one ImageFileError
                warnings.simplefilter("ignore", Image.DecompressionBombWarning)
                warnings.filterwarnings("ignore", category=UserWarning, module=r"PIL\.")
                with Image.open(file) as opened:  # lazy: reads the header, decodes nothing yet
                    width, height = opened.size
                    if max_pixels is not None and width * height > max_pixels:
                        raise ImageFileError(
                            f"{name}: {width}x{height} pixels, more than the limit of "
                            f"{max_pixels:,} (max_pixels); a digit needs far fewer, so scale "
                            f"the image down"
                        )
                    opened.load()  # decode now, so a truncated file fails here and not later
                    image = ImageOps.exif_transpose(opened)  # a phone photo is stored sideways
                    grey, alpha = _grey_and_alpha(image)
        except ImageFileError:
            raise
        except UnidentifiedImageError:
            raise ImageFileError(
                f"{name}: not an image file Pillow can read (PNG, JPEG, GIF, BMP, ...)"
            ) from None
        except Image.DecompressionBombError as exc:
            raise ImageFileError(f"{name}: {exc}") from None
        except (OSError, ValueError, SyntaxError, EOFError, MemoryError) as exc:
            # Pillow reports damaged data as OSError ("image file is truncated"), SyntaxError...
            raise ImageFileError(
                f"{name}: the image data is damaged or truncated ({exc})"
            ) from None
    return grey if alpha is None else _flatten_alpha(grey, alpha)


_SIXTEEN_BIT = ("I;16", "I;16L", "I;16B", "I;16N")


def _grey_and_alpha(image: Any) -> tuple[NDArray[np.float64], NDArray[np.float64] | None]:
    """Brightness in [0, 1] by the mode's real range (Pillow's own conversion to 8-bit grey clips
    16-bit, 32-bit and float images at 255), and opacity in [0, 1] or None when all opaque."""
    mode, transparency = image.mode, image.info.get("transparency")
    if mode in _SIXTEEN_BIT or mode in ("I", "F"):
        values = np.asarray(image).astype(np.float64)
        alpha = None
        if isinstance(transparency, (int, float)) and not isinstance(transparency, bool):
            alpha = (values != transparency).astype(np.float64)
        if mode in _SIXTEEN_BIT:
            return values / 65535.0, alpha
        return _by_range(values, floating=mode == "F"), alpha
    if mode in ("RGBA", "LA", "PA", "RGBa", "La") or transparency is not None:
        # via RGBA: that conversion honours a palette's or grey image's transparent colour
        grey_alpha = np.asarray(image.convert("RGBA").convert("LA"), dtype=np.float64) / 255.0
        return grey_alpha[..., 0], grey_alpha[..., 1]
    return np.asarray(image.convert("L"), dtype=np.float64) / 255.0, None  # 1, L, P, RGB, CMYK...


def _by_range(values: NDArray[np.float64], *, floating: bool) -> NDArray[np.float64]:
    """A 32-bit integer or float image as brightness in [0, 1]: divided by the smallest usual
    full scale that holds it (1 for floats, then 255, 65535, 2**32 - 1), or stretched from its
    minimum to its maximum when it has negative values."""
    if not np.isfinite(values).all():
        raise ValueError("the image holds nan or infinite values")
    low, high = float(values.min()), float(values.max())
    if low >= 0:
        for full in ((1.0,) if floating else ()) + (255.0, 65535.0, 2.0**32 - 1):
            if high <= full:
                return values / full
    if high == low:
        return np.zeros_like(values)
    return (values - low) / (high - low)


def _flatten_alpha(grey: NDArray[np.float64], alpha: NDArray[np.float64]) -> NDArray[np.float64]:
    """Lay a grey image with opacity ``alpha`` over a plain background, black or white.

    Two kinds of file. (1) Strokes whose edges are anti-aliased in the alpha channel (RGBA, LA),
    or of one shade: drawing programs store the transparent pixels' colour arbitrarily (often
    black, like a black pen's). When most pixels are transparent, the opaque ones are the ink and
    the background is the ink's opposite; when most are opaque, they are the paper and the holes
    get the paper's colour. (2) On/off transparency (a palette PNG, a GIF) with many opaque
    shades: the edges were anti-aliased against a matte colour, which the opaque pixels along the
    transparent area fade into, so that colour is the background. (Taking the mean of all opaque
    shades there instead turned a stroke into its outline.)"""
    opaque = alpha >= 0.5
    if not opaque.any():
        return np.zeros_like(grey)  # (almost) fully transparent: blank, which to_mnist reports
    shades = grey[opaque]
    partial = np.count_nonzero((alpha > 0.02) & (alpha < 0.98)) > 0.01 * alpha.size
    edge = opaque & _next_to(~opaque)
    if partial or float(shades.max() - shades.min()) < 0.1 or not edge.any():
        shade_is_light = float(np.median(shades)) >= 0.5
        opaque_is_ink = alpha.mean() < 0.5
        background = float(shade_is_light != opaque_is_ink)
    else:
        background = float(float(grey[edge].mean()) >= 0.5)
    return grey * alpha + background * (1.0 - alpha)


def _next_to(mask: NDArray[np.bool_]) -> NDArray[np.bool_]:
    """Pixels with a 4-neighbour in ``mask``."""
    near = np.zeros_like(mask)
    near[1:] |= mask[:-1]
    near[:-1] |= mask[1:]
    near[:, 1:] |= mask[:, :-1]
    near[:, :-1] |= mask[:, 1:]
    return near
