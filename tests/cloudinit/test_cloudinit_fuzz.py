"""The validator never crashes: any text, any YAML, any shape of a cloud-config gives a Report.

Crashes would stop a machine's boot with a traceback instead of a line number; so every input must end
in entries (or none), and parse() must either return a config or raise CloudConfigError.
"""

from __future__ import annotations

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from flotilla.cloudinit import CloudConfig, CloudConfigError, Report, check, parse, substitute

KEYS = [
    "hostname",
    "users",
    "write_files",
    "write-files",
    "ssh_authorized_keys",
    "coreos",
    "manage_etc_hosts",
    "etcd",
    "etcd2",
    "fleet",
    "locksmith",
    "update",
    "units",
    "name",
    "content",
    "command",
    "drop-ins",
    "path",
    "encoding",
    "permissions",
    "owner",
    "discovery",
    "reboot-strategy",
    "mask",
    "runtime",
    "enable",
    "groups",
    "passwd",
    "oem",
    "id",
    "window-start",
    "proxy",
    "bogus",
]
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=True),
    st.text(max_size=20),
    st.sampled_from(
        ["start", "0644", "base64", "gz+b64", "/usr/x", "[Service]\nX=1\n", "x=", "off", "14:00"]
    ),
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(st.sampled_from(KEYS), inner, max_size=5),
    ),
    max_leaves=25,
)
DOCUMENTS = st.dictionaries(st.sampled_from(KEYS), VALUES, max_size=6)


def _must_not_crash(text: str) -> None:
    config, report = check(text)
    assert isinstance(report, Report)
    assert all(entry.line >= 1 for entry in report.entries)
    assert (config is None) == report.has_errors
    try:
        assert isinstance(parse(text), CloudConfig)
    except CloudConfigError as error:
        assert error.report.has_errors


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(max_size=300))
def test_any_text_after_the_header(body: str) -> None:
    _must_not_crash("#cloud-config\n" + body)


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=200))
def test_any_text_at_all(text: str) -> None:
    _must_not_crash(text)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(DOCUMENTS, st.booleans())
def test_any_shape_of_cloud_config(document: dict, flow: bool) -> None:
    _must_not_crash("#cloud-config\n" + yaml.safe_dump(document, default_flow_style=flow))


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(st.sampled_from(KEYS), VALUES, max_size=4))
def test_any_shape_under_coreos_and_units(section: dict) -> None:
    document = {"coreos": {"units": [section], "etcd2": section, "update": section}, "users": [section]}
    _must_not_crash("#cloud-config\n" + yaml.safe_dump(document))


@given(st.text(max_size=80), st.text(alphabet=st.characters(blacklist_characters="\r\n"), max_size=15))
def test_substitution_keeps_lines_and_escapes(text: str, value: str) -> None:
    result = substitute(text, {"private_ipv4": value})
    assert result.count("\n") == text.count("\n")
    assert substitute("\\$private_ipv4", {"private_ipv4": value}) == "$private_ipv4"


def test_recursive_aliases_and_deep_nesting() -> None:
    _must_not_crash("#cloud-config\nusers: &a\n  - *a\n")
    _must_not_crash("#cloud-config\ncoreos: &c {units: [*c]}\n")
    _must_not_crash("#cloud-config\nhostname: " + "[" * 5000 + "]" * 5000 + "\n")
    _must_not_crash("#cloud-config\n--- a\n--- b\n")
    _must_not_crash("#cloud-config\n? [a, b]\n: c\n")
    _must_not_crash("#cloud-config\nhostname: !custom x\nusers: !!binary aGVsbG8=\n")
