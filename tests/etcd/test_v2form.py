"""The v2 request parser reads parameters as etcd 3.4 does (Go's ParseForm, then parseKeyRequest)."""

from __future__ import annotations

import pytest

from flotilla.etcd.v2form import GoFormError, clean_path, parse_form, parse_key_request
from flotilla.v2store import ErrorCode, V2Error

FORM = "application/x-www-form-urlencoded"


def test_body_values_come_before_query_values():
    form = parse_form("PUT", "value=q&ttl=5", FORM, b"value=b")
    assert form == {"value": ["b", "q"], "ttl": ["5"]}


def test_body_is_ignored_for_delete_and_without_form_content_type():
    assert parse_form("DELETE", "", FORM, b"prevValue=x") == {}
    assert parse_form("PUT", "", "application/json", b'{"value":"x"}') == {}
    assert parse_form("PUT", "", None, b"value=x") == {}


def test_go_unescaping_and_its_errors():
    assert parse_form("GET", "a=b+c%2Fd", None, b"") == {"a": ["b c/d"]}
    with pytest.raises(GoFormError, match=r'invalid URL escape "%zz"'):
        parse_form("GET", "a=%zz", None, b"")
    with pytest.raises(GoFormError, match="invalid semicolon separator in query"):
        parse_form("GET", "a=1;b=2", None, b"")
    with pytest.raises(GoFormError, match="mime: expected slash after first token"):
        parse_form("PUT", "", "garbage", b"value=x")


def test_clean_path_is_go_servemux_cleaning():
    assert clean_path("/v2/keys/a//b") == "/v2/keys/a/b"
    assert clean_path("/v2/keys/a/./b/../c/") == "/v2/keys/a/c/"
    assert clean_path("/v2/keys") == "/v2/keys"


@pytest.mark.parametrize(
    ("form", "code", "cause"),
    [
        ({"prevIndex": ["x"]}, ErrorCode.INDEX_NAN, 'invalid value for "prevIndex"'),
        ({"waitIndex": ["-1"]}, ErrorCode.INDEX_NAN, 'invalid value for "waitIndex"'),
        ({"recursive": ["maybe"]}, ErrorCode.INVALID_FIELD, 'invalid value for "recursive"'),
        ({"prevValue": [""]}, ErrorCode.PREV_VALUE_REQUIRED, '"prevValue" cannot be empty'),
        ({"ttl": ["abc"]}, ErrorCode.TTL_NAN, 'invalid value for "ttl"'),
        ({"prevExist": ["yes"]}, ErrorCode.INVALID_FIELD, "invalid value for prevExist"),
        ({"refresh": ["true"], "value": ["v"], "ttl": ["5"]}, ErrorCode.REFRESH_VALUE,
         "A value was provided on a refresh"),
        ({"refresh": ["true"]}, ErrorCode.REFRESH_TTL_REQUIRED, "No TTL value set"),
    ],
)  # fmt: skip
def test_parameter_errors_are_etcds(form, code, cause):
    with pytest.raises(V2Error) as info:
        parse_key_request("PUT", "/k", form, now_ns=0)
    assert (info.value.code, info.value.cause, info.value.index) == (code, cause, 0)


def test_wait_only_with_get():
    with pytest.raises(V2Error, match="can only be used with GET"):
        parse_key_request("PUT", "/k", {"wait": ["true"]}, now_ns=0)


def test_request_fields():
    parsed = parse_key_request(
        "PUT", "/a//b/", {"value": ["v"], "ttl": ["5"], "prevExist": ["false"], "noValueOnSuccess": ["1"]}, 7
    )
    r = parsed.request
    assert (r.Method, r.Path, r.Val, r.Expiration) == ("PUT", "/a/b", "v", 7 + 5_000_000_000)
    assert r.HasField("PrevExist") and not r.PrevExist and not r.HasField("Refresh")
    assert parsed.no_value_on_success
    # An empty ttl is no TTL (an update with it makes the key permanent).
    assert parse_key_request("PUT", "/k", {"ttl": [""]}, 7).request.Expiration == 0
    assert parse_key_request("GET", "", {}, 7).request.Path == "/"
