"""The one QR renderer: 崇军码 images and device setup codes are drawn the same way."""

from __future__ import annotations

import io
from typing import Literal

import qrcode
import qrcode.constants
from qrcode.image.pil import PilImage
from qrcode.image.svg import SvgPathImage

__all__ = ("QrFormat", "render_qr")

QrFormat = Literal["png", "svg"]


def render_qr(text: str, fmt: QrFormat = "png") -> bytes:
    """`text` as a QR code in byte mode (UTF-8), error correction M, as PNG or SVG bytes.

    M survives a scratched or glare-lit phone screen at the gate without making the code so dense
    that a cheap scanner misreads it (identity.md §b); byte mode keeps the text exactly as given.
    """
    factory = PilImage if fmt == "png" else SvgPathImage
    code = qrcode.QRCode(error_correction=qrcode.constants.ERROR_CORRECT_M, box_size=8, border=4, image_factory=factory)
    code.add_data(text.encode("utf-8"), optimize=0)
    code.make(fit=True)
    buffer = io.BytesIO()
    image = code.make_image()
    if fmt == "png":
        image.save(buffer, format="PNG")
    else:
        image.save(buffer)
    return buffer.getvalue()
