"""systemd's ``extract_first_word`` with EXTRACT_UNQUOTE|EXTRACT_CUNESCAPE, shared by Exec lines and
``Environment=``: blanks separate words, ``'`` and ``"`` quote anywhere in a word, C escapes decode both
inside and outside quotes. With ``relax`` (EXTRACT_CUNESCAPE_RELAX, used for Exec arguments) an unknown
escape stays as written instead of being an error."""

from __future__ import annotations

BLANKS = " \t\n\r"
_SIMPLE_ESCAPES = {
    "a": "\a",
    "b": "\b",
    "f": "\f",
    "n": "\n",
    "r": "\r",
    "t": "\t",
    "v": "\v",
    "\\": "\\",
    '"': '"',
    "'": "'",
    "s": " ",
}
_HEX = "0123456789abcdefABCDEF"


class WordSyntaxError(ValueError):
    """A value systemd's word splitter refuses; callers add file:line."""


def _unescape_one(text: str, pos: int) -> tuple[str, int] | None:
    """Decode the escape whose letter is at ``pos``: (text, length after the backslash) or None."""
    ch = text[pos]
    if ch in _SIMPLE_ESCAPES:
        return _SIMPLE_ESCAPES[ch], 1
    if ch == "x":
        digits = text[pos + 1 : pos + 3]
        if len(digits) == 2 and all(d in _HEX for d in digits) and int(digits, 16) != 0:
            byte = int(digits, 16)
            # A high byte is kept as its surrogateescape stand-in so UTF-8 sequences can be rejoined.
            return (chr(byte) if byte < 0x80 else chr(0xDC00 + byte)), 3
        return None
    if ch in "uU":
        width = 4 if ch == "u" else 8
        digits = text[pos + 1 : pos + 1 + width]
        if len(digits) == width and all(d in _HEX for d in digits):
            code = int(digits, 16)
            if 0 < code <= 0x10FFFF and not 0xD800 <= code <= 0xDFFF:
                return chr(code), 1 + width
        return None
    if ch in "0123":
        digits = text[pos : pos + 3]
        if len(digits) == 3 and all(d in "01234567" for d in digits) and int(digits, 8) != 0:
            byte = int(digits, 8)
            return (chr(byte) if byte < 0x80 else chr(0xDC00 + byte)), 3
    return None


def _rejoin_bytes(word: str) -> str:
    # \xc3\xa9 was decoded as two escaped bytes; turn valid UTF-8 runs back into characters.
    try:
        return word.encode("utf-8", "surrogateescape").decode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        return word  # the input itself held lone surrogates; leave it as it came


def skip_blanks(text: str, pos: int) -> int:
    while pos < len(text) and text[pos] in BLANKS:
        pos += 1
    return pos


def extract_word(text: str, pos: int, relax: bool = False) -> tuple[str, int] | None:
    """The next word from ``pos`` and the position after it, or None at the end of ``text``."""
    pos = skip_blanks(text, pos)
    if pos >= len(text):
        return None
    out: list[str] = []
    quote: str | None = None
    while pos < len(text):
        ch = text[pos]
        if quote is None and ch in BLANKS:
            break
        if ch == "\\":
            if pos + 1 >= len(text):
                if relax and quote is None:
                    out.append("\\")
                    pos += 1
                    break
                raise WordSyntaxError("a backslash at the end escapes nothing")
            decoded = _unescape_one(text, pos + 1)
            if decoded is None:
                if not relax:
                    raise WordSyntaxError(f"invalid escape \\{text[pos + 1]} (write \\\\ for a backslash)")
                out.append(text[pos : pos + 2])
                pos += 2
            else:
                out.append(decoded[0])
                pos += 1 + decoded[1]
            continue
        if quote is None and ch in "'\"":
            quote = ch
        elif ch == quote:
            quote = None
        else:
            out.append(ch)
        pos += 1
    if quote is not None:
        raise WordSyntaxError(f"unterminated {quote} quote")
    return _rejoin_bytes("".join(out)), pos
