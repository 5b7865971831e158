"""Reading images completely: a truncated PNG or JPEG is an error, never a half-grey frame.

OpenCV decodes a truncated JPEG without an error (libjpeg only warns, and fills the missing rows
with grey) and a truncated PNG sometimes; :func:`read_image` checks that the file ends as its
format requires (PNG: the IEND chunk; JPEG: the end-of-image marker, after optional zero
padding) before decoding it, and raises :class:`InputDataError` naming the file otherwise.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from workflow_scripts.util.errors import InputDataError

__all__ = ["read_image", "check_complete"]

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
PNG_END = b"\x00\x00\x00\x00IEND\xaeB`\x82"
JPEG_START, JPEG_END = b"\xff\xd8", b"\xff\xd9"


def check_complete(path: Path, data: bytes, fix: str) -> None:
    """Raise if ``data`` (the bytes of ``path``) is a PNG or JPEG that was cut short."""
    if data.startswith(PNG_SIGNATURE) and not data.rstrip(b"\x00").endswith(PNG_END):
        raise InputDataError(
            path, f"PNG file is truncated ({len(data)} bytes, no IEND chunk at the end)", fix
        )
    if data.startswith(JPEG_START) and not data.rstrip(b"\x00").endswith(JPEG_END):
        raise InputDataError(path, f"JPEG file is truncated ({len(data)} bytes, no end-of-image marker)", fix)


def read_image(
    path: str | Path,
    flags: int = cv2.IMREAD_COLOR,
    *,
    fix: str = "replace the file (re-extract or re-convert it)",
) -> np.ndarray:
    """Decode an image file completely (``cv2.imdecode`` with ``flags``; BGR for colour).

    Raises:
        InputDataError: the file is missing, empty, truncated (PNG, JPEG) or not an image.
    """
    path = Path(path)
    if not path.is_file():
        raise InputDataError(path, "image not found", fix)
    data = path.read_bytes()
    if not data:
        raise InputDataError(path, "image file is empty (0 bytes)", fix)
    check_complete(path, data, fix)
    image = cv2.imdecode(np.frombuffer(data, np.uint8), flags)
    if image is None:
        raise InputDataError(path, "cannot be decoded as an image", fix)
    return image
