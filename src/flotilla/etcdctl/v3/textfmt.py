"""Go libraries' text formatting as etcdctl 3.4 prints it: go-humanize byte sizes, olekukonko/tablewriter
tables and text/tabwriter columns (the help text). Go's own ``%q`` and durations are in flotilla.gotext."""

from __future__ import annotations

import math
import unicodedata

_SIZES = ["B", "kB", "MB", "GB", "TB", "PB", "EB"]


def humanize_bytes(size: int) -> str:
    """go-humanize's Bytes (SI units): ``25 kB``, ``2.1 MB``, ``7 B``."""
    if size < 10:
        return f"{size} B"
    exponent = math.floor(math.log(size) / math.log(1000))
    value = math.floor(size / 1000**exponent * 10 + 0.5) / 10
    return (f"{value:.0f}" if value >= 10 else f"{value:.1f}") + f" {_SIZES[exponent]}"


def render_table(header: list[str], rows: list[list[str]]) -> str:
    """olekukonko/tablewriter as etcdctl uses it: borders, upper-case centred header, cells right-aligned."""
    titles = [_title(h) for h in header]
    widths = [len(t) for t in titles]
    for row in rows:
        for i, cell in enumerate(row):
            widths[i] = max(widths[i], _width(cell))
    line = "+" + "+".join("-" * (w + 2) for w in widths) + "+\n"
    out = [
        line,
        "|" + "|".join(f" {_center(t, w)} " for t, w in zip(titles, widths, strict=True)) + "|\n",
        line,
    ]
    for row in rows:
        cells = [" " * (w - _width(c)) + c for c, w in zip(row, widths, strict=True)]
        out.append("|" + "|".join(f" {c} " for c in cells) + "|\n")
    out.append(line)
    return "".join(out)


def _title(name: str) -> str:
    return name.replace("_", " ").strip().upper() or (" " if name else "")


def _center(text: str, width: int) -> str:
    gap = width - _width(text)
    left = gap // 2
    return " " * left + text + " " * (gap - left)


def _width(text: str) -> int:
    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in text)


def tabwrite(text: str, tab_width: int = 8, padding: int = 1) -> str:
    """Go's text/tabwriter with tab padding (minwidth 0): tab-terminated cells of consecutive lines form
    columns, each padded with tabs to the smallest multiple of ``tab_width`` above its widest cell."""
    lines = [line.split("\t") for line in text.split("\n")]
    out: list[str] = []
    _format(lines, 0, len(lines), [], out, tab_width, padding)
    return "\n".join(out)


def _format(lines, line0, line1, widths, out, tab_width, padding) -> None:
    column = len(widths)
    this = line0
    while this < line1:
        if column >= len(lines[this]) - 1:
            this += 1
            continue
        _write_lines(lines, line0, this, widths, out, tab_width)
        line0 = this
        width = 0
        while this < line1 and column < len(lines[this]) - 1:
            width = max(width, len(lines[this][column]) + padding)
            this += 1
        _format(lines, line0, this, [*widths, width], out, tab_width, padding)
        line0 = this
    _write_lines(lines, line0, line1, widths, out, tab_width)


def _write_lines(lines, line0, line1, widths, out, tab_width) -> None:
    for cells in lines[line0:line1]:
        text = []
        for j, cell in enumerate(cells):
            text.append(cell)
            if j < len(widths) and j < len(cells) - 1:
                cell_width = (widths[j] + tab_width - 1) // tab_width * tab_width
                text.append("\t" * ((cell_width - len(cell) + tab_width - 1) // tab_width))
            elif j < len(cells) - 1:
                text.append("\t")
        out.append("".join(text))
