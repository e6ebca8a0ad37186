"""fleetctl's output as Go's tabwriter lays it out (minwidth 0, tabwidth 8, padding 1, padchar '\\t'),
its columns, legends and the name rules — no store needed."""

from __future__ import annotations

import pytest

from flotilla.fleetctl import MachineInfo, UnitInfo, UnitStateInfo, tabwrite
from flotilla.fleetctl.names import (
    maybe_append_default_unit_type,
    template_of,
    unit_name_mangle,
    validate_name,
)
from flotilla.fleetctl.output import (
    MACHINE_FIELDS,
    UNIT_FILE_FIELDS,
    UNIT_STATE_FIELDS,
    format_metadata,
    machine_full_legend,
    render_table,
)
from flotilla.units import parse_unit_text_fleet

MACHINE = MachineInfo("113f16a7b8e14a4c9e3d2b1a0f9e8d7c", "172.17.8.103", {"region": "us", "disk": "ssd"})


def test_tabwriter_pads_each_column_with_tabs_to_a_multiple_of_eight_past_its_widest_cell():
    # Column 0: widest 13 + 1 padding -> 16: "UNIT" needs 2 tabs, "hello.service" 1. Column 1: 24 + 1 -> 32.
    text = "UNIT\tMACHINE\tACTIVE\tSUB\nhello.service\t113f16a7.../172.17.8.103\tactive\trunning\n"
    assert tabwrite(text) == (
        "UNIT\t\tMACHINE\t\t\t\tACTIVE\tSUB\nhello.service\t113f16a7.../172.17.8.103\tactive\trunning\n"
    )


def test_tabwriter_a_cell_exactly_a_tab_stop_wide_still_gets_one_tab_of_padding():
    assert tabwrite("1234567\tx\n12345678\ty\n") == "1234567\t\tx\n12345678\ty\n"


def test_tabwriter_a_line_without_tabs_ends_the_column_block():
    text = "a\tb\nlonger-line-without-tabs\nabcdefghijk\tc\n"
    assert tabwrite(text) == "a\tb\nlonger-line-without-tabs\nabcdefghijk\tc\n"


def test_tabwriter_matches_etcdctls_implementation_of_the_same_go_settings():
    from flotilla.etcdctl.v3.textfmt import tabwrite as etcdctl_tabwrite

    text = "UNIT\tHASH\tDSTATE\tSTATE\tTARGET\nx.service\te55c0ae\tlaunched\tlaunched\tm/1.2.3.4\n" * 3
    assert tabwrite(text) == etcdctl_tabwrite(text)


def test_render_table_uppercases_field_names_and_no_legend_drops_them():
    assert (
        render_table(["unit", "sub"], [["a.service", "running"]], False)
        == "UNIT\t\tSUB\na.service\trunning\n"
    )
    assert render_table(["unit", "sub"], [["a.service", "running"]], True) == "a.service\trunning\n"


def test_machine_legend_is_8_characters_and_dots_then_the_ip_unless_full():
    assert machine_full_legend(MACHINE, False) == "113f16a7.../172.17.8.103"
    assert machine_full_legend(MACHINE, True) == f"{MACHINE.id}/172.17.8.103"
    assert machine_full_legend(MachineInfo("abcdef0123456789"), False) == "abcdef01..."


def test_machine_fields_dash_for_empty_and_metadata_sorted_by_key():
    lookup = {}.get
    assert format_metadata({"z": "1", "a": "2"}) == "a=2,z=1"
    assert [MACHINE_FIELDS[f](MACHINE, lookup, False) for f in ("machine", "ip", "metadata")] == [
        "113f16a7...", "172.17.8.103", "disk=ssd,region=us",
    ]  # fmt: skip
    bare = MachineInfo("0123456789abcdef")
    assert [MACHINE_FIELDS[f](bare, lookup, True) for f in ("machine", "ip", "metadata")] == [
        "0123456789abcdef", "-", "-",
    ]  # fmt: skip


def _unit(text: str, **kwargs) -> UnitInfo:
    return UnitInfo("hello.service", tuple(parse_unit_text_fleet(text).options), **kwargs)


def test_unit_file_fields_hash_is_fleets_seven_or_forty_digits_and_target_shows_the_machine():
    unit = _unit("[Unit]\nDescription=Hi\n[Service]\nExecStart=/bin/true\n", desired_state="launched",
                 current_state="launched", machine_id=MACHINE.id)  # fmt: skip
    lookup = {MACHINE.id: MACHINE}.get
    cells = {f: UNIT_FILE_FIELDS[f](unit, lookup, False) for f in UNIT_FILE_FIELDS}
    assert len(unit.hash) == 40 and cells["hash"] == unit.hash[:7]
    assert UNIT_FILE_FIELDS["hash"](unit, lookup, True) == unit.hash
    assert cells == {
        "unit": "hello.service", "global": "false", "dstate": "launched",
        "target": "113f16a7.../172.17.8.103", "tmachine": "113f16a7.../172.17.8.103",
        "state": "launched", "hash": unit.hash[:7], "desc": "Hi",
    }  # fmt: skip


def test_unit_file_fields_of_a_global_unit_say_global_and_no_state():
    unit = _unit("[Service]\nExecStart=/bin/true\n[X-Fleet]\nGlobal=true\n", desired_state="launched")
    cells = {f: UNIT_FILE_FIELDS[f](unit, {}.get, False) for f in ("target", "state", "global", "desc")}
    assert cells == {"target": "global", "state": "-", "global": "true", "desc": "-"}


def test_unit_file_fields_of_an_unscheduled_unit_are_dashes():
    unit = _unit("[Service]\nExecStart=/bin/true\n")
    assert UNIT_FILE_FIELDS["target"](unit, {}.get, False) == "-"
    assert UNIT_FILE_FIELDS["state"](unit, {}.get, False) == "-"
    assert UNIT_FILE_FIELDS["dstate"](unit, {}.get, False) == "-"


def test_unit_state_fields_machine_without_a_known_machine_shows_its_short_id():
    state = UnitStateInfo("a.service", "e55c0ae1" * 5, "fedcba9876543210", "loaded", "active", "running")
    cells = {f: UNIT_STATE_FIELDS[f](state, {}.get, False) for f in UNIT_STATE_FIELDS}
    assert cells == {"unit": "a.service", "load": "loaded", "active": "active", "sub": "running",
                     "machine": "fedcba98...", "hash": "e55c0ae"}  # fmt: skip
    assert UNIT_STATE_FIELDS["hash"](UnitStateInfo("a.service"), {}.get, False) == "-"


@pytest.mark.parametrize(
    ("arg", "name"),
    [("hello", "hello.service"), ("units/hello.service", "hello.service"), ("x.socket", "x.socket"),
     ("foo@1", "foo@1.service"), ("dir/sub/", "sub.service"), ("a.target", "a.target")],
)  # fmt: skip
def test_unit_name_mangle_takes_the_last_path_element_and_defaults_to_service(arg, name):
    assert unit_name_mangle(arg) == name


def test_default_unit_type_keeps_the_path():
    assert maybe_append_default_unit_type("units/hello") == "units/hello.service"


def test_template_of_an_instance_and_nothing_else():
    assert template_of("foo@1.service") == "foo@.service"
    assert template_of("foo@.service") is None
    assert template_of("foo.service") is None


@pytest.mark.parametrize(
    ("name", "problem"),
    [("", "unit name cannot be empty"), ("foo", 'unit name must contain "."'),
     ("foo.", 'unit name cannot end in "."'), ("foo.bar", 'invalid unit type: "bar"'),
     ("a@1.mount", 'invalid unit type for template: "mount"'),
     ("a b.service", "invalid character ' ' in unit name"), ("@a.service", 'unit name cannot start in "@"'),
     ("x" * 250 + ".service", "unit name exceeds maximum length (256)"),
     ("ok@1.service", None)],
)  # fmt: skip
def test_validate_name_gives_fleets_reasons(name, problem):
    assert validate_name(name) == problem
