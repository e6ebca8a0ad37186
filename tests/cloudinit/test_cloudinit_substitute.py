"""Substitution of $private_ipv4 & co. (initialize/env.go) and the seeds' Listing 1 end to end."""

from __future__ import annotations

from pathlib import Path

import pytest

from flotilla.cloudinit import parse, substitute, validate

# The seeds' Listing 1 (CoreOS, 2014, etcd 0.4 era), verbatim.
LISTING_1 = (Path(__file__).resolve().parents[2] / "examples/cloud-config/listing1.yml").read_text()


def test_listing_1_validates_without_findings() -> None:
    assert validate(LISTING_1).entries == ()


def test_listing_1_parses_and_substitutes() -> None:
    config = parse(LISTING_1, substitutions={"private_ipv4": "127.0.0.2", "public_ipv4": "203.0.113.9"})
    assert config.etcd == (
        ("discovery", "https://discovery.etcd.io/<token>"),
        ("addr", "127.0.0.2:4001"),
        ("peer-addr", "127.0.0.2:7001"),
    )
    assert [(u.name, u.command) for u in config.units] == [
        ("etcd.service", "start"),
        ("fleet.service", "start"),
    ]
    assert [u.line for u in config.units] == [11, 13]


def test_every_token_is_replaced() -> None:
    values = {
        "private_ipv4": "10.0.0.1",
        "public_ipv4": "1.2.3.4",
        "private_ipv6": "fd00::1",
        "public_ipv6": "2001:db8::1",
    }
    text = "$private_ipv4 $public_ipv4 [$private_ipv6] [$public_ipv6]"
    assert substitute(text, values) == "10.0.0.1 1.2.3.4 [fd00::1] [2001:db8::1]"


def test_escaped_token_stays_a_token() -> None:
    assert (
        substitute(r"a=\$private_ipv4 b=$private_ipv4", {"private_ipv4": "10.0.0.1"})
        == "a=$private_ipv4 b=10.0.0.1"
    )


def test_adjacent_tokens_are_both_replaced() -> None:
    assert substitute("$private_ipv4$private_ipv4", {"private_ipv4": "x"}) == "xx"


def test_keys_may_carry_the_dollar() -> None:
    assert substitute("$public_ipv4", {"$public_ipv4": "1.2.3.4"}) == "1.2.3.4"


def test_a_token_without_value_becomes_empty_as_on_coreos() -> None:
    assert substitute("addr: $public_ipv4:4001", {}) == "addr: :4001"


def test_unknown_names_and_line_breaks_are_refused() -> None:
    with pytest.raises(ValueError, match="unknown substitution"):
        substitute("x", {"hostname": "a"})
    with pytest.raises(ValueError, match="line break"):
        substitute("x", {"private_ipv4": "1.2.3.4\nhostname: evil"})


def test_substitution_reaches_unit_content_and_files() -> None:
    text = (
        "#cloud-config\nwrite_files:\n  - path: /etc/ip\n    content: $private_ipv4\n"
        "coreos:\n  units:\n    - name: a.service\n      content: |\n        [Service]\n"
        "        ExecStart=/bin/echo $public_ipv4 \\$private_ipv4\n"
    )
    config = parse(text, substitutions={"private_ipv4": "10.1.1.1", "public_ipv4": "8.8.4.4"})
    assert config.write_files[0].content == b"10.1.1.1"
    assert config.units[0].content == "[Service]\nExecStart=/bin/echo 8.8.4.4 $private_ipv4\n"
