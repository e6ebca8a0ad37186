"""fleetctl's tables: Go's text/tabwriter as fleetctl configures it (minwidth 0, tabwidth 8, padding 1,
padchar '\\t'), the columns each list command knows, and fleet's machine legends."""

from __future__ import annotations

from collections.abc import Callable, Mapping

from flotilla.fleetctl.model import MachineInfo, UnitInfo, UnitStateInfo

__all__ = [
    "MACHINE_FIELDS",
    "UNIT_FILE_FIELDS",
    "UNIT_STATE_FIELDS",
    "format_metadata",
    "machine_full_legend",
    "machine_id_legend",
    "render_table",
    "tabwrite",
]

_TAB_WIDTH = 8
_PADDING = 1


def tabwrite(text: str) -> str:
    """``text`` through Go's tabwriter with fleetctl's settings: a tab ends a cell, consecutive lines
    with a cell in the same column form a block, and each cell is padded with tabs to the block's widest
    cell plus one, rounded up to a multiple of 8."""
    lines = [line.split("\t") for line in text.split("\n")]
    out: list[str] = []
    _format(lines, 0, len(lines), [], out)
    return "\n".join(out)


def _format(lines: list[list[str]], line0: int, line1: int, widths: list[int], out: list[str]) -> None:
    column = len(widths)
    this = line0
    while this < line1:
        if column >= len(lines[this]) - 1:
            this += 1
            continue
        # A block of lines that all have a cell in this column starts here.
        _write_lines(lines, line0, this, widths, out)
        line0 = this
        width = 0
        while this < line1 and column < len(lines[this]) - 1:
            width = max(width, len(lines[this][column]) + _PADDING)
            this += 1
        _format(lines, line0, this, [*widths, width], out)
        line0 = this
    _write_lines(lines, line0, line1, widths, out)


def _write_lines(lines: list[list[str]], line0: int, line1: int, widths: list[int], out: list[str]) -> None:
    for cells in lines[line0:line1]:
        text: list[str] = []
        for j, cell in enumerate(cells):
            text.append(cell)
            if j < len(widths):
                cell_width = (widths[j] + _TAB_WIDTH - 1) // _TAB_WIDTH * _TAB_WIDTH
                text.append("\t" * ((cell_width - len(cell) + _TAB_WIDTH - 1) // _TAB_WIDTH))
        out.append("".join(text))


def render_table(columns: list[str], rows: list[list[str]], no_legend: bool) -> str:
    """A list command's output: the uppercased field names (unless ``no_legend``), then one line a row."""
    lines = [] if no_legend else ["\t".join(columns).upper()]
    lines += ["\t".join(row) for row in rows]
    return tabwrite("".join(line + "\n" for line in lines))


# ---- legends and cells --------------------------------------------------------------------------


def machine_id_legend(machine: MachineInfo, full: bool) -> str:
    return machine.id if full else f"{machine.short_id}..."


def machine_full_legend(machine: MachineInfo, full: bool) -> str:
    legend = machine_id_legend(machine, full)
    return f"{legend}/{machine.public_ip}" if machine.public_ip else legend


def format_metadata(metadata: Mapping[str, str]) -> str:
    return ",".join(f"{key}={metadata[key]}" for key in sorted(metadata))


MachineLookup = Callable[[str], MachineInfo | None]


def _machine_cell(machine_id: str, machines: MachineLookup, full: bool) -> str:
    if not machine_id:
        return "-"
    return machine_full_legend(machines(machine_id) or MachineInfo(machine_id), full)


def _dash(value: str) -> str:
    return value or "-"


# Each field maps (object, machine lookup, full) to a cell, as fleetctl's field tables do.
MACHINE_FIELDS: dict[str, Callable[[MachineInfo, MachineLookup, bool], str]] = {
    "machine": lambda m, _, full: machine_id_legend(m, full),
    "ip": lambda m, _, full: _dash(m.public_ip),
    "metadata": lambda m, _, full: format_metadata(m.metadata) if m.metadata else "-",
}

UNIT_STATE_FIELDS: dict[str, Callable[[UnitStateInfo, MachineLookup, bool], str]] = {
    "unit": lambda s, _, full: s.name,
    "load": lambda s, _, full: s.load_state,
    "active": lambda s, _, full: s.active_state,
    "sub": lambda s, _, full: s.sub_state,
    "machine": lambda s, machines, full: _machine_cell(s.machine_id, machines, full),
    "hash": lambda s, _, full: (s.hash if full else s.hash[:7]) or "-",
}


def _target(unit: UnitInfo, machines: MachineLookup, full: bool) -> str:
    return "global" if unit.is_global else _machine_cell(unit.machine_id, machines, full)


UNIT_FILE_FIELDS: dict[str, Callable[[UnitInfo, MachineLookup, bool], str]] = {
    "unit": lambda u, _, full: u.name,
    "global": lambda u, _, full: "true" if u.is_global else "false",
    "dstate": lambda u, _, full: _dash(u.desired_state),
    "target": _target,
    "tmachine": _target,
    "state": lambda u, _, full: "-" if u.is_global else _dash(u.current_state),
    "hash": lambda u, _, full: u.hash if full else u.hash[:7],
    "desc": lambda u, _, full: _dash(u.description),
}
