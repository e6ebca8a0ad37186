"""`coreos-cloudinit -validate`'s findings, each with the line it names (config/validate/rules.go).

Every test gives a document and the exact lines the report prints: ``line N: error|warning: message``.
"""

from __future__ import annotations

import base64
import gzip
import textwrap

import pytest

from flotilla.cloudinit import CloudConfigError, check, parse, validate


def lines(text: str) -> list[str]:
    return validate(textwrap.dedent(text).lstrip("\n")).lines()


# --- the header -----------------------------------------------------------------------------------------


def test_empty_user_data_is_valid_and_configures_nothing() -> None:
    assert lines("") == []
    assert parse("").units == ()


@pytest.mark.parametrize("header", ["#cloud-config", "#cloud-config   ", "#cloud-config\t\r"])
def test_header_allows_trailing_whitespace(header: str) -> None:
    assert validate(header + "\nhostname: a\n").entries == ()


@pytest.mark.parametrize("text", ["hostname: a\n", "# cloud-config\nhostname: a\n", " #cloud-config\n"])
def test_missing_header_is_an_error_on_line_1(text: str) -> None:
    assert validate(text).lines() == ['line 1: error: must be "#cloud-config" or begin with "#!"']


def test_a_script_is_reported_unsupported() -> None:
    (entry,) = validate("#!/bin/bash\necho hi\n").entries
    assert (entry.line, entry.kind) == (1, "error")
    assert "scripts (#!) are not supported" in entry.message


def test_header_only_is_an_empty_config() -> None:
    config, report = check("#cloud-config\n")
    assert report.entries == () and config is not None and config.hostname is None


# --- YAML -----------------------------------------------------------------------------------------------


def test_yaml_error_names_its_line() -> None:
    found = lines(
        """
        #cloud-config
        hostname: a
        coreos:
          units:
            - name: a.service
             command: start
        """
    )
    assert len(found) == 1 and found[0].startswith("line 6: error: ")


def test_unclosed_quote_is_a_yaml_error() -> None:
    (entry,) = validate('#cloud-config\nhostname: "abc\n').entries
    assert entry.kind == "error" and entry.line in (2, 3)


def test_document_that_is_not_a_mapping() -> None:
    assert lines("#cloud-config\n- a\n") == [
        "line 2: error: the document must be a mapping of keys (hostname, coreos, users, ...)"
    ]


# --- structure: unknown keys, types, deprecated keys ------------------------------------------------------


def test_unrecognized_keys_are_warnings_at_their_line() -> None:
    assert lines(
        """
        #cloud-config
        hostnam: a
        coreos:
          etcd2:
            nme: x
          units:
            - name: a.service
              comand: start
        """
    ) == [
        'line 2: warning: unrecognized key "hostnam"',
        'line 5: warning: unrecognized key "nme"',
        'line 8: warning: unrecognized key "comand"',
    ]


def test_dash_and_underscore_are_the_same_key() -> None:
    config = parse(
        "#cloud-config\nssh-authorized-keys: [k1]\ncoreos:\n  etcd2:\n    listen_client-urls: http://a:1\n"
    )
    assert config.ssh_authorized_keys == ("k1",)
    assert config.etcd2 == (("listen-client-urls", "http://a:1"),)


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("hostname: [a]", 'line 2: error: incorrect type for "hostname" (want string)'),
        ("users: a", 'line 2: error: incorrect type for "users" (want []struct)'),
        ("users: [a]", 'line 2: error: incorrect type for "users[0]" (want struct)'),
        (
            "ssh_authorized_keys: [[a]]",
            'line 2: error: incorrect type for "ssh_authorized_keys[0]" (want string)',
        ),
        ("coreos: 3", 'line 2: error: incorrect type for "coreos" (want struct)'),
        (
            "coreos:\n  etcd2:\n    heartbeat-interval: fast",
            'line 4: error: incorrect type for "heartbeat-interval" (want int)',
        ),
        (
            "coreos:\n  fleet:\n    verify_units: 1",
            'line 4: error: incorrect type for "verify_units" (want bool)',
        ),
        (
            "coreos:\n  units:\n    - name: a.service\n      enable: 'yes'",
            'line 5: error: incorrect type for "enable" (want bool)',
        ),
        (
            "coreos:\n  units:\n    - name: a.service\n      drop-ins: x",
            'line 5: error: incorrect type for "drop-ins" (want []struct)',
        ),
    ],
)
def test_incorrect_types(body: str, expected: str) -> None:
    assert validate("#cloud-config\n" + body + "\n").lines() == [expected]


def test_scalars_are_accepted_where_a_string_is_wanted() -> None:
    # Go's isCompatible: a string field takes ints, floats and booleans, as written.
    config = parse("#cloud-config\nhostname: 1234\ncoreos:\n  fleet:\n    metadata: yes\n")
    assert config.hostname == "1234" and config.fleet == (("metadata", "yes"),)


def test_ints_are_accepted_where_a_float_is_wanted() -> None:
    config = parse("#cloud-config\ncoreos:\n  fleet:\n    engine_reconcile_interval: 2\n")
    assert config.fleet == (("engine-reconcile-interval", "2"),)


def test_a_key_without_value_is_a_warning_and_ignored() -> None:
    config, report = check("#cloud-config\nhostname:\n")
    assert report.lines() == ['line 2: warning: incorrect type for "hostname" (want string)']
    assert config is not None and config.hostname is None


def test_deprecated_keys() -> None:
    assert lines(
        """
        #cloud-config
        users:
          - name: core
            coreos-ssh-import-github: someone
        coreos:
          etcd:
            initial-cluster: a=http://a:1
        """
    ) == [
        'line 4: warning: deprecated key "coreos-ssh-import-github" (trying to fetch from a remote endpoint'
        " introduces too many intermittent errors)",
        'line 7: warning: deprecated key "initial-cluster" (etcd2 options no longer work for etcd)',
    ]


def test_etcd_etcd2_and_fleet_sections_are_not_deprecated_in_flotilla() -> None:
    text = "#cloud-config\ncoreos:\n  etcd: {name: a}\n  etcd2: {name: a}\n  fleet: {metadata: a=b}\n"
    assert validate(text).entries == ()


# --- values -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "line", "start"),
    [
        ("write_files:\n  - path: /etc/a\n    permissions: 0800", 4, 'invalid value 0800 for "permissions"'),
        ("write_files:\n  - path: /etc/a\n    permissions: '12345'", 4, "invalid value 12345"),
        ("write_files:\n  - path: /etc/a\n    encoding: base32", 4, 'invalid value base32 for "encoding"'),
        ("manage_etc_hosts: 127.0.0.1", 2, 'invalid value 127.0.0.1 for "manage_etc_hosts"'),
        (
            "coreos:\n  update:\n    reboot-strategy: sometimes",
            4,
            'invalid value sometimes for "reboot-strategy"',
        ),
        (
            "coreos:\n  units:\n    - name: a.service\n      command: begin",
            5,
            'invalid value begin for "command"',
        ),
        ("coreos:\n  etcd2:\n    proxy: maybe", 4, 'invalid value maybe for "proxy"'),
        ("coreos:\n  locksmith:\n    window-start: 25:00", 4, "invalid value 25:00"),
        ("coreos:\n  locksmith:\n    window-length: 1 hour", 4, "invalid value 1 hour"),
    ],
)
def test_invalid_values_are_errors(body: str, line: int, start: str) -> None:
    (entry,) = validate("#cloud-config\n" + body + "\n").entries
    assert (entry.line, entry.kind) == (line, "error")
    assert entry.message.startswith(start)


@pytest.mark.parametrize("value", ["0644", "644", "'0644'", "0755", "01777", "'2755'"])
def test_valid_permissions(value: str) -> None:
    config = parse(f"#cloud-config\nwrite_files:\n  - path: /etc/a\n    permissions: {value}\n")
    assert config.write_files[0].permissions == int(value.strip("'"), 8)


@pytest.mark.parametrize("strategy", ["etcd-lock", "reboot", "off", "best-effort"])
def test_reboot_strategies(strategy: str) -> None:
    assert (
        parse(f"#cloud-config\ncoreos:\n  update:\n    reboot-strategy: {strategy}\n").update.reboot_strategy
        == strategy
    )


@pytest.mark.parametrize("window", ["14:00", "Thu 23:00", "sun 0:05"])
def test_valid_reboot_windows(window: str) -> None:
    assert validate(f"#cloud-config\ncoreos:\n  locksmith:\n    window-start: {window}\n").entries == ()


def test_content_that_cannot_be_decoded() -> None:
    assert lines(
        """
        #cloud-config
        write_files:
          - path: /etc/a
            encoding: base64
            content: "not base64!"
          - path: /etc/b
            encoding: gzip+base64
            content: aGVsbG8=
        """
    ) == [
        'line 5: error: content cannot be decoded as "base64"',
        'line 8: error: content cannot be decoded as "gzip+base64"',
    ]


def test_encodings_decode() -> None:
    packed = base64.b64encode(gzip.compress(b"hello\n")).decode()
    config = parse(
        "#cloud-config\nwrite_files:\n"
        "  - {path: /a, encoding: b64, content: aGVsbG8K}\n"
        f"  - {{path: /b, encoding: gz+b64, content: '{packed}'}}\n"
        "  - {path: /c, content: plain}\n"
    )
    assert [f.content for f in config.write_files] == [b"hello\n", b"hello\n", b"plain"]


def test_files_under_usr_cannot_be_written() -> None:
    assert lines(
        """
        #cloud-config
        write_files:
          - path: /usr/bin/tool
          - path: /usr/local/share/x
          - path: /usrlocal/x
        """
    ) == [
        "line 3: error: file cannot be written to a read-only filesystem",
        "line 4: error: file cannot be written to a read-only filesystem",
    ]


def test_write_files_under_coreos() -> None:
    assert lines("#cloud-config\ncoreos:\n  write_files:\n    - path: /etc/a\n") == [
        "line 3: warning: write_files doesn't belong under coreos"
    ]


@pytest.mark.parametrize("section", ["etcd", "etcd2"])
def test_discovery_url_is_not_valid(section: str) -> None:
    text = f"#cloud-config\ncoreos:\n  {section}:\n    name: a\n    discovery: not a url\n"
    assert validate(text).lines() == ["line 5: warning: discovery URL is not valid"]


def test_write_files_entry_without_path() -> None:
    assert lines("#cloud-config\nwrite_files:\n  - content: x\n") == [
        'line 3: error: write_files entry without a "path"'
    ]


def test_hostname_with_blanks() -> None:
    (entry,) = validate('#cloud-config\nhostname: "a b"\n').entries
    assert entry.line == 2 and entry.kind == "error"


# --- units and users --------------------------------------------------------------------------------------


def test_unit_without_name() -> None:
    assert lines("#cloud-config\ncoreos:\n  units:\n    - command: start\n") == [
        'line 4: error: unit without a name (add "name: <unit>.service")'
    ]


def test_invalid_unit_name() -> None:
    (entry,) = validate("#cloud-config\ncoreos:\n  units:\n    - name: etcd\n      command: start\n").entries
    assert entry.line == 4 and entry.message.startswith("invalid unit name: ")


def test_broken_unit_content_names_the_cloud_config_line() -> None:
    assert lines(
        """
        #cloud-config
        coreos:
          units:
            - name: hello.service
              command: start
              content: |
                [Unit]
                Description=hello

                [Service]
                ExecStart /bin/echo hello
        """
    ) == [
        "line 11: error: invalid unit \"hello.service\": missing '=' in 'ExecStart /bin/echo hello';"
        " options are written Name=Value"
    ]


def test_broken_drop_in_content_and_names() -> None:
    assert lines(
        """
        #cloud-config
        coreos:
          units:
            - name: etcd2.service
              drop-ins:
                - name: 10-a.conf
                  content: |
                    Environment=A=1
                - name: 20-b
                  content: "[Service]\\nX=1\\n"
                - content: "[Service]\\n"
        """
    ) == [
        'line 8: error: invalid unit "etcd2.service.d/10-a.conf": Environment= appears before any section'
        " header; put it under [Unit], [Service]...",
        'line 9: warning: drop-in "20-b" does not end in ".conf"; systemd ignores it',
        'line 11: error: drop-in of "etcd2.service" needs a "name" without "/" (e.g. 10-override.conf)',
    ]


def test_network_units_are_accepted() -> None:
    config = parse(
        "#cloud-config\ncoreos:\n  units:\n    - name: 10-eth.network\n"
        "      content: |\n        [Match]\n        Name=eth0\n"
    )
    assert config.units[0].is_network


def test_user_without_name_and_bad_fields() -> None:
    assert lines(
        """
        #cloud-config
        users:
          - gecos: nobody
          - name: "a:b"
          - name: bob
            shell: "/bin/sh:x"
        """
    ) == [
        'line 3: error: user without a name (add "name: <login>")',
        'line 4: error: invalid user name "a:b" (want letters, digits, "_", "." or "-")',
        'line 6: error: invalid value for "shell": ":" and line breaks are not allowed',
    ]


def test_parse_raises_with_every_error_and_the_source() -> None:
    with pytest.raises(CloudConfigError) as caught:
        parse("#cloud-config\nhostname: [a]\ncoreos:\n  units:\n    - command: stop\n", source="m1.yaml")
    message = str(caught.value)
    assert 'm1.yaml:2: incorrect type for "hostname" (want string)' in message
    assert "m1.yaml:5: unit without a name" in message
    assert "flotilla cloudinit validate m1.yaml" in message
    assert len(caught.value.report.errors) == 2


def test_warnings_do_not_stop_parse() -> None:
    config, report = check("#cloud-config\nhostname: a\nfoo: 1\n")
    assert config is not None and config.hostname == "a" and len(report.warnings) == 1


def test_control_characters_are_reported_with_their_line() -> None:
    assert validate("#cloud-config\nhostname: a\nfoo: \x01\n").lines() == [
        "line 3: error: character '\\x01' is not allowed in YAML (remove it or quote it with an escape)"
    ]
