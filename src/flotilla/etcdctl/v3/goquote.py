"""Reading Go-quoted text as etcdctl does: ``argify`` (how a txn or interactive watch line becomes words)
and Go's string-literal unquoting (``fmt.Sscanf("%q")``)."""

from __future__ import annotations

import re

from flotilla.etcdctl.v3.errors import EXIT_BAD_CONNECTION, EXIT_INVALID_INPUT, CtlExit, fail

_WORDS = re.compile(r"\"(?:[^\"\\]|\\.)*\"|'[^']*'|[^'\"\s]\S*[^'\"\s]?")
_SIMPLE = {"a": "\a", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\v", "\\": "\\", '"': '"'}


def argify(line: str) -> list[str]:
    """ctlv3's argify: double-quoted words are unquoted; single-quoted ones are cut as etcdctl 3.4 cuts
    them, ``word[1:len(words)-1]`` (a bug kept for compatibility: it uses the number of words)."""
    words = _WORDS.findall(line)
    for i, word in enumerate(words):
        if word.startswith("'"):
            end = len(words) - 1
            if end < 1 or end > len(word):
                import sys

                sys.stderr.write(f"panic: runtime error: slice bounds out of range [1:{end}]\n\n")
                raise CtlExit(EXIT_BAD_CONNECTION)
            words[i] = word[1:end]
        elif word.startswith('"'):
            try:
                words[i] = go_unquote(word)
            except ValueError as e:
                fail(EXIT_INVALID_INPUT, str(e))
    return words


def go_unquote(text: str) -> str:
    """strconv.Unquote for ``"..."`` and ```...```; raises ValueError("invalid syntax")."""
    if len(text) >= 2 and text[0] == text[-1] == "`":
        return text[1:-1]
    if len(text) < 2 or text[0] != '"' or text[-1] != '"':
        raise ValueError("invalid syntax")
    body, out, i = text[1:-1], [], 0
    while i < len(body):
        ch = body[i]
        if ch == '"' or ch == "\n":
            raise ValueError("invalid syntax")
        if ch != "\\":
            out.append(ch)
            i += 1
            continue
        if i + 1 >= len(body):
            raise ValueError("invalid syntax")
        esc = body[i + 1]
        if esc in _SIMPLE:
            out.append(_SIMPLE[esc])
            i += 2
        elif esc in "xuU":
            width = {"x": 2, "u": 4, "U": 8}[esc]
            digits = body[i + 2 : i + 2 + width]
            if len(digits) != width or not all(c in "0123456789abcdefABCDEF" for c in digits):
                raise ValueError("invalid syntax")
            value = int(digits, 16)
            # \x is a byte: keep one that is not ASCII as a surrogate so it encodes back to itself.
            out.append(chr(0xDC00 + value) if esc == "x" and value >= 0x80 else chr(value))
            i += 2 + width
        elif esc in "01234567":
            digits = body[i + 1 : i + 4]
            if len(digits) != 3 or not all(c in "01234567" for c in digits) or int(digits, 8) > 255:
                raise ValueError("invalid syntax")
            value = int(digits, 8)
            out.append(chr(0xDC00 + value) if value >= 0x80 else chr(value))
            i += 4
        else:
            raise ValueError("invalid syntax")
    return "".join(out)
