"""Reading one encoded image: cheap header checks shared by every backend, PIL decoding, and
an RGB JPEG's decode straight into a tensor (torchvision.io: the same libjpeg-turbo, the same
pixels, none of PIL's copies)."""

from __future__ import annotations

import contextlib
import functools
import io
import warnings
from collections.abc import Callable, Iterator

import torch
from PIL import Image

from cwn_bench.errors import UserError, one_line

_JPEG_SOI, _JPEG_EOI = b"\xff\xd8\xff", b"\xff\xd9"
_PNG_SIG, _PNG_IEND = b"\x89PNG\r\n\x1a\n", b"IEND"
MAX_PIXELS = Image.MAX_IMAGE_PIXELS or 89_478_485  # PIL's decompression-bomb limit (~ 9459 x 9459)


class CorruptImageError(UserError):
    """An image file that cannot be decoded; the message names the file."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"{path}: unreadable image ({reason}); fix or remove the file, "
                         "or set data.skip_corrupt=true (`bench data --skip-corrupt`) to skip and count such files")
        self.path, self.reason = path, reason


def check_encoded(data: bytes, path: str) -> None:
    """Raise :class:`CorruptImageError` unless ``data`` looks like a complete JPEG or PNG:
    the right magic bytes and an end marker (a truncated file lacks it). Costs O(1)."""
    if data.startswith(_JPEG_SOI):
        if _JPEG_EOI not in data[-64:]:  # EOI, possibly followed by a few padding bytes
            raise CorruptImageError(path, "truncated JPEG: no end-of-image marker")
    elif data.startswith(_PNG_SIG):
        if _PNG_IEND not in data[-16:]:
            raise CorruptImageError(path, "truncated PNG: no IEND chunk")
    else:
        raise CorruptImageError(path, "not a JPEG or PNG file")


def read_encoded(path: str) -> bytes:
    """The checked bytes of the image file at ``path``: complete (:func:`check_encoded`)
    and declaring at most MAX_PIXELS pixels in its header, so that a small file claiming
    a huge size (a decompression bomb) is an unreadable image for every backend (PIL and
    DALI alike) before any decoder allocates for it."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as err:
        raise CorruptImageError(path, err.strerror or str(err)) from None
    check_encoded(data, path)
    width, height = encoded_size(data, path)
    if not 0 < width * height <= MAX_PIXELS:
        raise CorruptImageError(path, f"its header declares {width}x{height} pixels; expected 1 to {MAX_PIXELS} "
                                      "(a decompression bomb?)")
    return data


# What PIL raises for a file it cannot decode: bad streams, and (with bombs_refused) decompression bombs
PIL_ERRORS = (OSError, ValueError, SyntaxError, Image.DecompressionBombError, Image.DecompressionBombWarning)


@contextlib.contextmanager
def bombs_refused() -> Iterator[None]:
    """PIL's DecompressionBombWarning (an image between 1 and 2 x MAX_PIXELS, which PIL
    would decode) raised as an error in the block, as its DecompressionBombError above."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        yield


def decode(data: bytes, path: str, grayscale: bool, scale: int = 1) -> Image.Image:
    """Decoded ``L`` (grayscale) or ``RGB`` image; a JPEG with ``scale`` 2, 4 or 8 at that
    fraction of its size (libjpeg's DCT-domain scaling, ``Image.draft``: ``ceil(W / scale)``
    x ``ceil(H / scale)`` pixels, several times cheaper than a full decode). Other formats
    are decoded whole: check the size of what comes back."""
    mode = "L" if grayscale else "RGB"
    try:
        with bombs_refused(), Image.open(io.BytesIO(data)) as img:
            if scale > 1 and img.format == "JPEG":
                img.draft(mode, (img.width // scale, img.height // scale))  # PIL picks the scale that fits
            img.load()
            # convert() to the mode the image already has would copy it
            return img if img.mode == mode else img.convert(mode)
    except PIL_ERRORS as err:
        raise CorruptImageError(path, one_line(err, 200) or type(err).__name__) from None


def _tensor_decoder() -> Callable[[torch.Tensor], torch.Tensor] | None:
    """torchvision's JPEG decoder to RGB, or None where it is missing (deprecated since
    torchvision 0.29 for TorchCodec's) or its image library does not load (a build without
    libjpeg: it would raise on every file, which must not read as every file being corrupt).
    One decode of an 8x8 JPEG tells."""
    try:
        from torchvision.io import ImageReadMode, decode_jpeg

        probe = io.BytesIO()
        Image.new("RGB", (8, 8)).save(probe, "JPEG")
        decode_jpeg(torch.frombuffer(bytearray(probe.getvalue()), dtype=torch.uint8), mode=ImageReadMode.RGB)
    except (ImportError, RuntimeError):
        return None
    return functools.partial(decode_jpeg, mode=ImageReadMode.RGB)


_DECODE_JPEG = _tensor_decoder()


def tensor_decodable(data: bytes, grayscale: bool, scale: int) -> bool:
    """Whether ``decode(data, path, grayscale, scale)`` is better done by :func:`decode_rgb_jpeg`:
    an RGB decode at full scale of a JPEG, with torchvision's decoder working here."""
    return scale == 1 and not grayscale and _DECODE_JPEG is not None and data.startswith(_JPEG_SOI)


def decode_rgb_jpeg(data: bytes, path: str) -> torch.Tensor:
    """uint8 ``[3, H, W]`` of a checked JPEG (:func:`read_encoded`, :func:`tensor_decodable`), decoded by libjpeg-turbo
    straight into the tensor (``torchvision.io.decode_jpeg``). Its pixels equal
    ``decode(data, path, False)``'s, PIL's (the same library and IDCT; checked on RGB, grey
    and CMYK files in tests/test_data.py), and it costs less: the decode of a 500x375 file,
    its crop and resize took 1.5-1.7 ms against 2.0-2.4 through PIL, whose image must be copied
    out of its 4-byte-per-pixel storage into an array first."""
    try:
        return _DECODE_JPEG(torch.frombuffer(bytearray(data), dtype=torch.uint8))
    except RuntimeError as err:  # "decode_jpeg, <source file>:<line>, <libjpeg's message>"
        raise CorruptImageError(path, one_line(str(err).rsplit(", ", 1)[-1], 200) or type(err).__name__) from None


def read_sized(path: str) -> tuple[bytes, int, int]:
    """``(checked bytes, width, height)`` of the image file at ``path``, the size from its header."""
    data = read_encoded(path)
    width, height = encoded_size(data, path)
    return data, width, height


_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}  # frame headers
_NO_LENGTH = {0x01, *range(0xD0, 0xD9)}  # markers without a length field (TEM, RSTn, SOI, EOI)


def encoded_size(data: bytes, path: str) -> tuple[int, int]:
    """(width, height) of a checked JPEG or PNG from its header alone: the JPEG's frame
    header (SOFn) or the PNG's IHDR; walks the JPEG markers (a few per file), ~100x cheaper
    than opening the file with PIL."""
    if data.startswith(_PNG_SIG):
        return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    i = 2
    while i + 9 <= len(data):
        if data[i] != 0xFF:
            break
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
        elif marker in _SOF:
            return int.from_bytes(data[i + 7:i + 9], "big"), int.from_bytes(data[i + 5:i + 7], "big")
        else:
            i += 2 if marker in _NO_LENGTH else 2 + int.from_bytes(data[i + 2:i + 4], "big")
    raise CorruptImageError(path, "no JPEG frame header before the image data")
