"""Decoding ``write_files`` content: base64, gzip, or base64 of gzip, as coreos-cloudinit accepts them."""

from __future__ import annotations

import base64
import binascii
import zlib

# A cloud-config is user data of a few KB; the cap keeps a tiny gzip bomb from exhausting memory.
MAX_DECODED_BYTES = 64 * 1024 * 1024


def decode_content(content: str, encoding: str | None) -> bytes:
    """The bytes ``content`` stands for; ValueError if it is not valid in ``encoding``."""
    raw = content.encode("utf-8", "surrogateescape")
    if not encoding:
        return raw
    if encoding in ("b64", "base64"):
        return _base64(raw)
    if encoding in ("gz", "gzip"):
        return _gunzip(raw)
    if encoding in ("gz+base64", "gzip+base64", "gz+b64", "gzip+b64"):
        return _gunzip(_base64(raw))
    raise ValueError(f"unsupported encoding {encoding!r}")


def _base64(raw: bytes) -> bytes:
    # Go's StdEncoding skips line breaks but nothing else, and wants the padding.
    try:
        return base64.b64decode(raw.replace(b"\r", b"").replace(b"\n", b""), validate=True)
    except (binascii.Error, ValueError) as error:
        raise ValueError(f"not base64: {error}") from None


def _gunzip(raw: bytes) -> bytes:
    decompressor = zlib.decompressobj(16 + zlib.MAX_WBITS)  # 16+: expect a gzip header
    try:
        data = decompressor.decompress(raw, MAX_DECODED_BYTES)
    except zlib.error as error:
        raise ValueError(f"not gzip: {error}") from None
    if decompressor.unconsumed_tail:
        raise ValueError(f"gzip content larger than {MAX_DECODED_BYTES} bytes")
    if not decompressor.eof:
        raise ValueError("gzip content is truncated")
    return data
