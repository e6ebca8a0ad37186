"""Unit names as fleet's api/units.go ValidateName (systemd's unit_name_is_valid) and templates."""

import pytest

from flotilla.units import UnitName, UnitNameError, escape_name, parse_unit_name, unescape_name


@pytest.mark.parametrize(
    ("name", "prefix", "instance", "suffix"),
    [
        ("hello.service", "hello", None, "service"),
        ("foo@.service", "foo", "", "service"),
        ("foo@bar.service", "foo", "bar", "service"),
        ("foo@bar.baz.timer", "foo", "bar.baz", "timer"),  # the instance runs to the last '.'
        ("a:b_c-d\\x2de.mount", "a:b_c-d\\x2de", None, "mount"),
        ("multi-user.target", "multi-user", None, "target"),
        ("x" * 248 + ".service", "x" * 248, None, "service"),
    ],
)
def test_valid_names_split(name: str, prefix: str, instance: str | None, suffix: str) -> None:
    parsed = parse_unit_name(name)
    assert (parsed.prefix, parsed.instance, parsed.suffix) == (prefix, instance, suffix)
    assert parsed.name == name


@pytest.mark.parametrize(
    ("name", "fragment"),
    [
        ("", "empty"),
        ("x" * 250 + ".service", "maximum length"),
        ("hello", 'must contain "."'),
        ("hello.", "invalid unit type ''"),
        ("hello.network", "invalid unit type 'network'"),
        ("hel lo.service", "invalid character ' '"),
        ("héllo.service", "invalid character 'é'"),
        ("@foo.service", 'cannot start with "@"'),
        ("foo@bar.device", "invalid unit type for template"),
        ("foo@.swap", "invalid unit type for template"),
        ("a@b@c.service", 'more than one "@"'),
        (".service", "nothing before"),
    ],
)
def test_invalid_names_say_what_is_wrong(name: str, fragment: str) -> None:
    with pytest.raises(UnitNameError, match=fragment.replace("(", r"\(").replace(")", r"\)")):
        parse_unit_name(name)


def test_templates_and_instances() -> None:
    template = parse_unit_name("web@.service")
    assert template.is_template and not template.is_instance and template.template is None
    instance = template.with_instance("8080")
    assert instance == UnitName("web", "8080", "service")
    assert instance.name == "web@8080.service"
    assert instance.is_instance and not instance.is_template
    assert instance.template == "web@.service"
    assert instance.with_instance("9").name == "web@9.service"
    assert instance.name_without_suffix == "web@8080"
    with pytest.raises(UnitNameError, match="not a template"):
        parse_unit_name("web.service").with_instance("1")
    with pytest.raises(UnitNameError):
        template.with_instance("a b")


@pytest.mark.parametrize(
    ("escaped", "plain"),
    [
        ("foo", "foo"),
        ("dev-sda", "dev/sda"),  # '-' is '/'
        ("a\\x2db", "a-b"),
        ("caf\\xc3\\xa9", "café"),
        ("", ""),
    ],
)
def test_unescape_as_systemd(escaped: str, plain: str) -> None:
    assert unescape_name(escaped) == plain


@pytest.mark.parametrize("bad", ["\\y00", "\\x", "\\x4", "\\xzz", "\\xff"])
def test_unescape_rejects_bad_escapes(bad: str) -> None:
    with pytest.raises(UnitNameError):
        unescape_name(bad)


def test_escape_is_the_inverse_of_unescape() -> None:
    for text in ["dev/sda-1", "hello world", ".hidden", "café"]:
        assert unescape_name(escape_name(text)) == text
    assert escape_name("dev/sda-1") == "dev-sda\\x2d1"
