"""The v2 differential cases, as data: each is a name and a list of steps (``v2diff_runner``'s ``Req``,
``Await``, ``Sleep``, ``Repeat``) run in order under the case's own key prefix ``/d/<name>``.

Paths are relative to that prefix unless they start with ``/``. Parameters of PUT and POST go in the form
body unless a case is about the query string; DELETE and GET parameters go in the query (Go parses a
form body only for PUT, POST and PATCH). Keys with a short TTL are only written by cases that wait for
their expiry: an expiry during a later case would shift that case's indexes.

Covered (etcd 3.4 v2, reference/etcd.md): every action (get, set, create, update, compareAndSwap,
delete, compareAndDelete, expire, POST create), every parameter and its bad values, every error code a
single member can produce (100 101 102 104 105 107 108 200 201 202 203 209 210 211 212 401), stats,
members, machines, version, health, CORS, 301, 404, 405, HEAD, watches and streams.
"""

from __future__ import annotations

from dataclasses import dataclass

from v2diff_runner import Await, Repeat, Req, Sleep


@dataclass(frozen=True)
class Case:
    name: str
    steps: tuple
    slow: bool = False


CASES: list[Case] = []


def case(name: str, *steps, slow: bool = False) -> None:
    assert name not in {c.name for c in CASES}, name
    CASES.append(Case(name, tuple(steps), slow))


def get(path: str = "", **query) -> Req:
    return Req("GET", path, query=query or None)


def head(path: str = "", **query) -> Req:
    return Req("HEAD", path, query=query or None)


def put(path: str = "", **form) -> Req:
    return Req("PUT", path, form=form or None)


def putq(path: str = "", **query) -> Req:
    return Req("PUT", path, query=query or None)


def post(path: str = "", **form) -> Req:
    return Req("POST", path, form=form or None)


def delete(path: str = "", **query) -> Req:
    return Req("DELETE", path, query=query or None)


def raw(method: str, path: str, form: str | None = None, query: str | None = None, **headers) -> Req:
    header_fields = {k.replace("_", "-"): v for k, v in headers.items()}
    return Req(method, path, query=query, form=form, headers=header_fields)


def watch(path: str = "", bg: str | None = None, events: int = 0, **query) -> Req:
    return Req("GET", path, query={"wait": "true", **query}, bg=bg, events=events)


def stats(which: str) -> Req:
    return Req("GET", "/v2/stats/store", stats=which)


# The table below is aligned by hand, one case per statement.
# fmt: off
# --- GET ---------------------------------------------------------------------------------------------
case("get_missing_key", get("k"))
case("get_value", put("k", value="v"), get("k"))
case("get_missing_in_missing_dir", get("nodir/k"))
case("get_dir_listing", put("d/a", value="1"), put("d/e/f", value="2"), get("d"))
case("get_dir_recursive", put("d/a", value="1"), put("d/e/f", value="2"), get("d", recursive="true"))
case("get_dir_sorted", put("d/c", value="3"), put("d/a", value="1"), put("d/b", value="2"),
     get("d", sorted="true"))
case("get_dir_recursive_sorted", put("d/z/2", value="a"), put("d/z/1", value="b"), put("d/y", value="c"),
     get("d", recursive="true", sorted="true"))
case("get_empty_dir", put("d", dir="true"), get("d"), get("d", recursive="true"))
case("get_hidden_omitted", put("d/_h", value="hidden"), put("d/v", value="seen"), get("d"),
     get("d", recursive="true"), get("d/_h"))
case("get_hidden_dir", put("d/_hd/x", value="1"), put("d/y", value="2"), get("d", recursive="true"),
     get("d/_hd", recursive="true"))
case("get_root", Req("GET", "/v2/keys/", only_prefix=True))
case("get_root_no_slash", Req("GET", "/v2/keys", only_prefix=True))
case("get_sibling_prefix_missing", put("x", value="1"), get("/v2/keys{P}-nothing"))
case("get_quorum", put("k", value="v"), get("k", quorum="true"))
case("get_quorum_missing", get("k", quorum="true"))
case("get_quorum_dir_recursive", put("d/a", value="1"), get("d", quorum="true", recursive="true"))
case("get_quorum_false", put("k", value="v"), get("k", quorum="false"))
case("get_bad_recursive", put("k", value="v"), get("k", recursive="maybe"))
case("get_bad_sorted", put("k", value="v"), get("k", sorted="yes"))
case("get_bad_quorum", put("k", value="v"), get("k", quorum="2"))
case("get_bool_spellings", put("d/a", value="1"), get("d", recursive="1"), get("d", recursive="T"),
     get("d", recursive="TRUE"), get("d", recursive="True"), get("d", recursive="0"),
     get("d", recursive="F"))
case("get_empty_bool", put("d/a", value="1"), get("d", recursive=""))
case("get_trailing_slash_file", put("k", value="v"), get("k/"))
case("get_trailing_slash_dir", put("d/a", value="1"), get("d/"))
case("get_under_file", put("k", value="v"), get("k/sub"))
case("get_value_ignored_params", put("k", value="v"), get("k", value="other", ttl="5", prevValue="x"))
case("get_unknown_param", put("k", value="v"), get("k", bogus="1"))
case("get_dir_nested_nodes_shape", put("d/a/b/c", value="deep"), get("d"), get("d/a"),
     get("d", recursive="true"))
case("head_key", put("k", value="v"), head("k"))
case("head_missing", head("k"))
case("head_dir", put("d/a", value="1"), head("d", recursive="true"))
case("head_bad_param", head("k", recursive="nope"))

# --- PUT: set -----------------------------------------------------------------------------------------
case("set_new", put("k", value="v"))
case("set_existing", put("k", value="v1"), put("k", value="v2"), get("k"))
case("set_same_value", put("k", value="v"), put("k", value="v"))
case("set_empty_value", put("k", value=""), get("k"))
case("set_no_value", put("k"), get("k"))
case("set_only_other_params", put("k", bogus="1"), get("k"))
case("set_query_string", putq("k", value="fromquery"), get("k"))
case("set_form_beats_query", Req("PUT", "k", query={"value": "q"}, form={"value": "f"}), get("k"))
case("set_query_ttl_form_value", Req("PUT", "k", query={"ttl": "600"}, form={"value": "f"}), get("k"))
case("set_repeated_value", raw("PUT", "k", "value=first&value=second"), get("k"))
case("set_json_body_ignored", raw("PUT", "k", '{"value":"json"}', Content_Type="application/json"), get("k"))
case("set_text_body_ignored", raw("PUT", "k", "value=plain", Content_Type="text/plain"), get("k"))
case("set_unicode_value", put("k", value="héllo wörld ✓ 日本"), get("k"))
case("set_unicode_key", put("ключ", value="v"), get("ключ"), get("", recursive="true"))
case("set_encoded_key_chars", put("a%20b", value="space"), put("c%2Bd", value="plus"),
     put("e%3Ff", value="question"), get("", recursive="true", sorted="true"))
case("set_value_odd_chars", put("k", value="a&b=c;d%e+f g\nh\t'\"<>"), get("k"))
case("set_long_value", put("k", value="x" * 5000), get("k"))
case("set_key_dots", put("a.b/c.d", value="1"), get("a.b", recursive="true"))
case("set_creates_parents", put("a/b/c/d", value="1"), get("a", recursive="true"), get("a/b"))
case("set_under_file", put("k", value="v"), put("k/sub", value="x"), get("k"))
case("set_over_dir", put("d/a", value="1"), put("d", value="x"), get("d", recursive="true"))
case("set_over_empty_dir", put("d", dir="true"), put("d", value="x"), get("d"))
case("set_root", Req("PUT", "/v2/keys/", form={"value": "x"}))
case("set_root_no_slash", Req("PUT", "/v2/keys", form={"value": "x"}))
case("set_hidden", put("_h", value="v"), get("_h"), get(""))
case("set_resets_created_index", put("k", value="1"), put("k", value="2"), put("k", value="3"), get("k"))
case("set_trailing_slash", put("k/", value="v"), get("k"))
case("set_dir", put("d", dir="true"), get("d"))
case("set_dir_existing_dir", put("d", dir="true"), put("d", dir="true"))
case("set_dir_over_nonempty_dir", put("d/a", value="1"), put("d", dir="true"), get("d"))
case("set_dir_over_file", put("k", value="v"), put("k", dir="true"), get("k"))
case("set_dir_with_value", put("d", dir="true", value="x"), get("d"))
case("set_dir_false", put("k", dir="false", value="v"), get("k"))
case("set_dir_bad_bool", put("k", dir="yes", value="v"), get("k"))
case("set_dir_with_ttl", put("d", dir="true", ttl="600"), get("d"))
case("set_dir_in_file", put("k", value="v"), put("k/d", dir="true"))

# --- PUT: TTL -----------------------------------------------------------------------------------------
case("ttl_set", put("k", value="v", ttl="600"), get("k"))
case("ttl_set_query", putq("k", value="v", ttl="600"), get("k"))
case("ttl_replaced_by_set", put("k", value="v", ttl="600"), put("k", value="w"), get("k"))
case("ttl_update_changes", put("k", value="v", ttl="600"), put("k", value="v", ttl="900", prevExist="true"),
     get("k"))
case("ttl_update_empty_removes", put("k", value="v", ttl="600"),
     put("k", value="v", ttl="", prevExist="true"), get("k"))
case("ttl_set_empty", put("k", value="v", ttl=""), get("k"))
case("ttl_not_a_number", put("k", value="v", ttl="abc"), get("k"))
case("ttl_negative", put("k", value="v", ttl="-1"), get("k"))
case("ttl_fraction", put("k", value="v", ttl="1.5"), get("k"))
case("ttl_spaces", put("k", value="v", ttl=" 5"), get("k"))
case("ttl_huge", put("k", value="v", ttl="99999999999999999999999"), get("k"))
case("ttl_large", put("k", value="v", ttl="315360000"), get("k"))
case("ttl_bad_on_existing", put("k", value="v"), put("k", value="w", ttl="x"), get("k"))
case("ttl_zero_expires", put("k", value="v", ttl="0"), Sleep(1.3), get("k"), slow=True)
case("ttl_dir_listing_shows_ttl", put("d/a", value="1", ttl="600"), put("d/b", value="2"), get("d"),
     get("d", recursive="true"))
case("ttl_expire_watch", put("k", value="v", ttl="1"), watch("k", bg="w"), Await("w", 4.0), get("k"),
     slow=True)
case("ttl_expire_dir_recursive", put("d", dir="true", ttl="1"), put("d/a", value="1"),
     watch("d", bg="w", recursive="true"), Await("w", 4.0), get("d"), slow=True)

# --- PUT: refresh -------------------------------------------------------------------------------------
case("refresh_set", put("k", value="v", ttl="600"), put("k", refresh="true", ttl="900"), get("k"))
case("refresh_update", put("k", value="v", ttl="600"), put("k", refresh="true", ttl="900", prevExist="true"),
     get("k"))
case("refresh_with_value", put("k", value="v", ttl="600"), put("k", refresh="true", ttl="900", value="w"),
     get("k"))
case("refresh_without_ttl", put("k", value="v", ttl="600"), put("k", refresh="true"), get("k"))
case("refresh_empty_ttl", put("k", value="v", ttl="600"), put("k", refresh="true", ttl=""), get("k"))
case("refresh_missing_key", put("k", refresh="true", ttl="600"), get("k"))
case("refresh_no_ttl_before", put("k", value="v"), put("k", refresh="true", ttl="600"), get("k"))
case("refresh_prev_value", put("k", value="v", ttl="600"),
     put("k", refresh="true", ttl="900", prevValue="v"), put("k", refresh="true", ttl="900", prevValue="no"),
     get("k"))
case("refresh_prev_index", put("k", value="v", ttl="600"),
     put("k", refresh="true", ttl="900", prevIndex="{mod}"), get("k"))
case("refresh_bad_bool", put("k", value="v", ttl="600"), put("k", refresh="maybe", ttl="900"), get("k"))
case("refresh_false", put("k", value="v", ttl="600"), put("k", refresh="false", ttl="900", value="w"),
     get("k"))
case("refresh_dir", put("d", dir="true", ttl="600"), put("d", refresh="true", ttl="900", prevExist="true"),
     get("d"))
case("refresh_bad_ttl", put("k", value="v", ttl="600"), put("k", refresh="true", ttl="soon"), get("k"))
case("refresh_query", put("k", value="v", ttl="600"), putq("k", refresh="true", ttl="900"), get("k"))
case("refresh_watch_no_event", put("k", value="v", ttl="600"), watch("k", bg="w"),
     put("k", refresh="true", ttl="900"), put("k", value="after"), Await("w"))

# --- PUT: create / update (prevExist) -------------------------------------------------------------------
case("create_new", put("k", value="v", prevExist="false"), get("k"))
case("create_existing", put("k", value="v"), put("k", value="w", prevExist="false"), get("k"))
case("create_over_dir", put("d/a", value="1"), put("d", value="w", prevExist="false"))
case("create_dir", put("d", dir="true", prevExist="false"), get("d"))
case("create_dir_existing", put("d", dir="true"), put("d", dir="true", prevExist="false"))
case("create_with_ttl", put("k", value="v", prevExist="false", ttl="600"), get("k"))
case("update_existing", put("k", value="v"), put("k", value="w", prevExist="true"), get("k"))
case("update_missing", put("k", value="w", prevExist="true"), get("k"))
case("update_keeps_created_index", put("k", value="1"), put("k", value="2", prevExist="true"),
     put("k", value="3", prevExist="true"), get("k"))
case("update_dir", put("d", dir="true"), put("d", dir="true", prevExist="true", ttl="600"), get("d"))
case("update_dir_with_value", put("d/a", value="1"), put("d", value="x", prevExist="true"), get("d"))
case("update_file_to_dir", put("k", value="v"), put("k", dir="true", prevExist="true"), get("k"))
case("prev_exist_bad_bool", put("k", value="v", prevExist="perhaps"), get("k"))
case("prev_exist_spellings", put("k", value="1", prevExist="F"), put("k", value="2", prevExist="t"),
     put("k", value="3", prevExist="0"), put("k", value="4", prevExist="1"))
case("prev_exist_empty", put("k", value="v", prevExist=""), get("k"))
case("prev_exist_query", putq("k", value="v", prevExist="false"), putq("k", value="w", prevExist="false"))

# --- PUT: compareAndSwap ------------------------------------------------------------------------------
case("cas_value_ok", put("k", value="one"), put("k", value="two", prevValue="one"), get("k"))
case("cas_value_wrong", put("k", value="three"), put("k", value="two", prevValue="wrong"), get("k"))
case("cas_index_ok", put("k", value="one"), put("k", value="two", prevIndex="{mod}"), get("k"))
case("cas_index_wrong", put("k", value="one"), put("k", value="two", prevIndex="{mod+7}"), get("k"))
case("cas_both_ok", put("k", value="one"), put("k", value="two", prevValue="one", prevIndex="{mod}"))
case("cas_both_wrong", put("k", value="one"), put("k", value="two", prevValue="x", prevIndex="{mod+3}"),
     get("k"))
case("cas_value_ok_index_wrong", put("k", value="one"),
     put("k", value="two", prevValue="one", prevIndex="{mod+3}"), get("k"))
case("cas_value_wrong_index_ok", put("k", value="one"),
     put("k", value="two", prevValue="nope", prevIndex="{mod}"), get("k"))
case("cas_missing_key", put("k", value="two", prevValue="one"), get("k"))
case("cas_missing_key_index", put("k", value="two", prevIndex="5"), get("k"))
case("cas_on_dir", put("d/a", value="1"), put("d", value="x", prevValue="1"))
case("cas_dir_index", put("d", dir="true"), put("d", value="x", prevIndex="{mod}"))
case("cas_prev_exist_true", put("k", value="one"), put("k", value="two", prevValue="one", prevExist="true"))
case("cas_prev_exist_false", put("k", value="one"), put("k", value="two", prevValue="one", prevExist="false"))
case("cas_prev_exist_false_missing", put("k", value="two", prevValue="one", prevExist="false"), get("k"))
case("cas_empty_prev_value", put("k", value=""), put("k", value="two", prevValue=""), get("k"))
case("cas_bad_prev_index", put("k", value="one"), put("k", value="two", prevIndex="abc"), get("k"))
case("cas_negative_prev_index", put("k", value="one"), put("k", value="two", prevIndex="-1"), get("k"))
case("cas_zero_prev_index", put("k", value="one"), put("k", value="two", prevIndex="0"), get("k"))
case("cas_with_ttl", put("k", value="one"), put("k", value="two", prevValue="one", ttl="600"), get("k"))
case("cas_keeps_ttl_off", put("k", value="one", ttl="600"), put("k", value="two", prevValue="one"), get("k"))
case("cas_unicode_compare", put("k", value="ü"), put("k", value="ö", prevValue="u"), put("k", value="ö",
     prevValue="ü"))
case("cas_query_string", put("k", value="one"), putq("k", value="two", prevValue="one"), get("k"))
case("cas_with_dir_param", put("k", value="one"), put("k", dir="true", prevValue="one"), get("k"))
case("cas_hidden_key", put("_h", value="one"), put("_h", value="two", prevIndex="{mod}"), get("_h"))

# --- POST: in-order keys ------------------------------------------------------------------------------
case("post_create", post("q", value="Job1"), get("q", recursive="true"))
case("post_sorted_listing", post("q", value="a"), post("q", value="b"), post("q", value="c"),
     get("q", sorted="true"), get("q", recursive="true", sorted="true"))
case("post_with_ttl", post("q", value="Job", ttl="600"), get("q", recursive="true"))
case("post_empty_value", post("q", value=""), get("q", recursive="true"))
case("post_no_value", post("q"), get("q", recursive="true"))
case("post_to_file", put("k", value="v"), post("k", value="x"))
case("post_dir", post("q", dir="true"), get("q", recursive="true"))
case("post_query_string", Req("POST", "q", query={"value": "fromquery"}), get("q", recursive="true"))
case("post_bad_ttl", post("q", value="x", ttl="never"), get("q"))
case("post_ignores_prev_exist", post("q", value="x", prevExist="true"), get("q", recursive="true"))
case("post_prev_value", post("q", value="x", prevValue="y"), get("q", recursive="true"))
case("post_hidden_dir", post("_q", value="x"), get("_q", recursive="true"))
case("post_no_value_on_success", post("q", value="x", noValueOnSuccess="true"), get("q", recursive="true"))
case("post_then_delete_item", post("q", value="x"), delete("q/{created}"), get("q", recursive="true"))
case("post_watch_create", watch("q", bg="w", recursive="true"), post("q", value="job"), Await("w"))

# --- noValueOnSuccess ---------------------------------------------------------------------------------
case("novalue_set", put("k", value="v", noValueOnSuccess="true"), get("k"))
case("novalue_update", put("k", value="v"), put("k", value="w", prevExist="true", noValueOnSuccess="true"))
case("novalue_create", put("k", value="v", prevExist="false", noValueOnSuccess="true"))
case("novalue_cas", put("k", value="v"), put("k", value="w", prevValue="v", noValueOnSuccess="true"))
case("novalue_error", put("k", value="v"), put("k", value="w", prevValue="x", noValueOnSuccess="true"))
case("novalue_false", put("k", value="v", noValueOnSuccess="false"))
case("novalue_bad_bool", put("k", value="v", noValueOnSuccess="sure"), get("k"))
case("novalue_delete", put("k", value="v"), delete("k", noValueOnSuccess="true"))
case("novalue_get", put("k", value="v"), get("k", noValueOnSuccess="true"))

# --- DELETE ---------------------------------------------------------------------------------------------
case("delete_key", put("k", value="v"), delete("k"), get("k"))
case("delete_missing", delete("k"))
case("delete_dir_plain", put("d/a", value="1"), delete("d"), get("d", recursive="true"))
case("delete_empty_dir", put("d", dir="true"), delete("d", dir="true"), get("d"))
case("delete_nonempty_dir", put("d/a", value="1"), delete("d", dir="true"), get("d", recursive="true"))
case("delete_recursive", put("d/a", value="1"), put("d/b/c", value="2"), delete("d", recursive="true"),
     get("d"), get("d/b/c"))
case("delete_recursive_file", put("k", value="v"), delete("k", recursive="true"), get("k"))
case("delete_dir_flag_on_file", put("k", value="v"), delete("k", dir="true"), get("k"))
case("delete_recursive_false", put("d/a", value="1"), delete("d", recursive="false", dir="true"))
case("delete_bad_recursive", put("d/a", value="1"), delete("d", recursive="maybe"),
     get("d", recursive="true"))
case("delete_bad_dir", put("d", dir="true"), delete("d", dir="si"), get("d"))
case("delete_form_body_ignored", put("d/a", value="1"), raw("DELETE", "d", "recursive=true"),
     get("d", recursive="true"))
case("delete_root", Req("DELETE", "/v2/keys/"))
case("delete_root_recursive", Req("DELETE", "/v2/keys/", query={"recursive": "true"}))
case("delete_hidden", put("_h", value="v"), delete("_h"), get("_h"))
case("delete_with_ttl_key", put("k", value="v", ttl="600"), delete("k"))
case("delete_twice", put("k", value="v"), delete("k"), delete("k"))
case("delete_then_recreate", put("k", value="v"), delete("k"), put("k", value="w"))
case("delete_under_file", put("k", value="v"), delete("k/x"))
case("delete_trailing_slash", put("k", value="v"), delete("k/"), get("k"))

# --- DELETE: compareAndDelete -------------------------------------------------------------------------
case("cad_value_ok", put("k", value="v"), delete("k", prevValue="v"), get("k"))
case("cad_value_wrong", put("k", value="v"), delete("k", prevValue="x"), get("k"))
case("cad_index_ok", put("k", value="v"), delete("k", prevIndex="{mod}"), get("k"))
case("cad_index_wrong", put("k", value="v"), delete("k", prevIndex="{mod+9}"), get("k"))
case("cad_both_wrong", put("k", value="v"), delete("k", prevValue="x", prevIndex="{mod+2}"), get("k"))
case("cad_missing", delete("k", prevValue="v"))
case("cad_dir", put("d", dir="true"), delete("d", prevValue="v", dir="true"), get("d"))
case("cad_dir_index", put("d", dir="true"), delete("d", prevIndex="{mod}", dir="true"), get("d"))
case("cad_bad_index", put("k", value="v"), delete("k", prevIndex="one"), get("k"))
case("cad_empty_prev_value", put("k", value="v"), delete("k", prevValue=""), get("k"))
case("cad_prev_exist", put("k", value="v"), delete("k", prevExist="true"), get("k"))
case("cad_with_recursive", put("k", value="v"), delete("k", prevValue="v", recursive="true"), get("k"))

# --- bad input: nothing half-applied ------------------------------------------------------------------
case("bad_form_escape", put("k", value="v"), raw("PUT", "k", "value=%zz"), get("k"))
case("bad_query_escape", put("k", value="v"), raw("PUT", "k", None, "value=%zz"), get("k"))
case("bad_form_semicolon", put("k", value="v"), raw("PUT", "k", "value=a;b=c"), get("k"))
case("bad_query_semicolon", put("k", value="v"), raw("GET", "k", None, "recursive=true;sorted=true"))
case("bad_form_then_valid_params", put("k", value="v"), raw("PUT", "k", "value=new&ttl=600&x=%"), get("k"))
case("bad_escape_in_key_path", put("k", value="v"), raw("GET", "k%zz"))
case("bad_multipart_body",
     raw("PUT", "k", "--b\r\nContent-Disposition: form-data; name=value\r\n\r\nx\r\n--b--\r\n",
         Content_Type="multipart/form-data; boundary=b"), get("k"))
case("bad_several_errors_first_wins", put("k", value="v"),
     put("k", value="w", ttl="x", prevIndex="y", prevExist="z"), get("k"))
case("bad_wait_index_on_put", put("k", value="v"), put("k", value="w", waitIndex="x"), get("k"))
case("bad_stream_bool", put("k", value="v"), get("k", wait="true", stream="nah"))
case("write_on_directory_then_intact", put("d/a", value="1"), put("d", value="x", prevExist="true"),
     put("d", value="x", prevValue=""), get("d", recursive="true"))

# --- watches ----------------------------------------------------------------------------------------------
case("watch_past_index", put("k", value="1"), put("k", value="2"), watch("k", waitIndex="{mod-1}"))
case("watch_past_index_skips_other_keys", put("k", value="1"), put("other", value="x"),
     put("k", value="2"), watch("k", waitIndex="{mod-1}"))
case("watch_current_index", put("k", value="1"), watch("k", waitIndex="{mod}"))
case("watch_future", put("k", value="1"), watch("k", bg="w"), put("k", value="2"), Await("w"))
case("watch_future_index", put("k", value="1"), watch("k", bg="w", waitIndex="{mod+2}"), put("k", value="2"),
     put("k", value="3"), Await("w"))
case("watch_missing_then_created", watch("k", bg="w"), put("k", value="new"), Await("w"))
case("watch_delete_event", put("k", value="1"), watch("k", bg="w"), delete("k"), Await("w"))
case("watch_cas_event", put("k", value="1"), watch("k", bg="w"), put("k", value="2", prevValue="1"),
     Await("w"))
case("watch_cad_event", put("k", value="1"), watch("k", bg="w"), delete("k", prevValue="1"), Await("w"))
case("watch_create_event", watch("k", bg="w"), put("k", value="1", prevExist="false"), Await("w"))
case("watch_update_event", put("k", value="1"), watch("k", bg="w"), put("k", value="2", prevExist="true"),
     Await("w"))
case("watch_recursive", put("d/a", value="1"), watch("d", bg="w", recursive="true"), put("d/b/c", value="2"),
     Await("w"))
case("watch_recursive_past", put("d/a", value="1"), put("d/b", value="2"),
     watch("d", recursive="true", waitIndex="{mod-1}"))
case("watch_dir_nonrecursive_child", put("d/a", value="1"), watch("d", bg="w"), put("d/b", value="2"),
     Await("w", 1.0))
case("watch_dir_nonrecursive_delete", put("d/a", value="1"), watch("d", bg="w"),
     delete("d", recursive="true"), Await("w"))
case("watch_recursive_delete_dir", put("d/a", value="1"), watch("d", bg="w", recursive="true"),
     delete("d", recursive="true"), Await("w"))
case("watch_parent_delete_seen_by_child", put("d/a", value="1"), watch("d/a", bg="w"),
     delete("d", recursive="true"), Await("w"))
case("watch_hidden_key", put("_h", value="1"), watch("_h", bg="w"), put("_h", value="2"), Await("w"))
case("watch_hidden_recursive", put("d/x", value="0"), watch("d", bg="w", recursive="true"),
     put("d/_h", value="1"), put("d/v", value="2"), Await("w"))
case("watch_past_untouched_key", put("k", value="1"), put("other", value="x"),
     watch("k", bg="w", waitIndex="{mod}"), Await("w", 1.0))
case("watch_bad_wait_index", put("k", value="1"), watch("k", waitIndex="abc"))
case("watch_negative_wait_index", put("k", value="1"), watch("k", waitIndex="-3"))
case("watch_bad_wait", put("k", value="1"), get("k", wait="always"))
case("watch_wait_false", put("k", value="1"), get("k", wait="false"))
case("watch_wait_index_without_wait", put("k", value="1"), get("k", waitIndex="{mod}"))
case("watch_quorum", put("k", value="1"), put("k", value="2"), watch("k", waitIndex="{mod-1}", quorum="true"))
case("watch_head", put("k", value="1"), Req("HEAD", "k", query={"wait": "true", "waitIndex": "{mod}"}))
case("watch_stream", put("d/a", value="0"), watch("d", bg="w", events=2, recursive="true", stream="true"),
     put("d/a", value="1"), put("d/b", value="2"), Await("w"))
case("watch_stream_past", put("k", value="1"), put("k", value="2"),
     watch("k", bg="w", events=3, stream="true", waitIndex="{mod-1}"), put("k", value="3"),
     Await("w", 1.5))
case("watch_stream_false", put("k", value="1"), watch("k", bg="w", stream="false"), put("k", value="2"),
     Await("w"))
case("watch_root_recursive", watch("/v2/keys/", bg="w", recursive="true"), put("k", value="1"), Await("w"))
case("watch_ttl_set_event", watch("k", bg="w"), put("k", value="1", ttl="600"), Await("w"))
case("watch_post_wait_param", put("k", value="1"), Req("POST", "k", query={"wait": "true"}))
case("watch_history_cleared",
     Repeat(post("many", value="x"), 1010), put("k", value="probe"),
     watch("k", waitIndex="{mod-1005}"), watch("many", recursive="true", waitIndex="{mod-990}"),
     slow=True)

# --- stats ----------------------------------------------------------------------------------------------
case("stats_store_shape", stats("shape"))
case("stats_gets", stats("base"), put("k", value="v"), get("k"), get("k"), get("missing"), stats("delta"))
case("stats_sets", stats("base"), put("k", value="v"), put("k", value="w"), put("k/x", value="no"),
     stats("delta"))
case("stats_create_update", stats("base"), put("k", value="v", prevExist="false"),
     put("k", value="v", prevExist="false"), put("k", value="w", prevExist="true"),
     put("m", value="w", prevExist="true"), post("q", value="x"), stats("delta"))
case("stats_cas_cad", stats("base"), put("k", value="v"), put("k", value="w", prevValue="v"),
     put("k", value="w", prevValue="v"), delete("k", prevValue="v"), delete("k", prevValue="w"),
     stats("delta"))
case("stats_deletes", stats("base"), put("k", value="v"), delete("k"), delete("k"), stats("delta"))
case("stats_param_errors_not_counted", stats("base"), put("k", value="v", ttl="x"), get("k", recursive="q"),
     stats("delta"))
case("stats_gets_fail_counts_auth_checks", stats("base"), put("k", value="v"), get("k"), get("missing"),
     put("k", value="w", prevExist="false"), Req("GET", "/v2/stats/store", stats="delta_all"))
case("stats_watchers", stats("base"), watch("k", bg="w"), stats("delta"), put("k", value="v"), Await("w"),
     stats("delta"))
case("stats_quorum_get", stats("base"), put("k", value="v"), get("k", quorum="true"), stats("delta"))
case("stats_self_shape", Req("GET", "/v2/stats/self"))
case("stats_leader_shape", Req("GET", "/v2/stats/leader"))
case("stats_post_405", Req("POST", "/v2/stats/store"), Req("PUT", "/v2/stats/self"),
     Req("DELETE", "/v2/stats/leader"))
case("stats_head", Req("HEAD", "/v2/stats/store"), Req("HEAD", "/v2/stats/self"))
case("stats_unknown", Req("GET", "/v2/stats/other"), Req("GET", "/v2/stats"))

# --- cluster endpoints ----------------------------------------------------------------------------------
case("members_list", Req("GET", "/v2/members"))
case("members_trailing_slash", Req("GET", "/v2/members/"))
case("members_leader", Req("GET", "/v2/members/leader"))
case("members_bad_content_type", raw("POST", "/v2/members", "peerURLs=x"))
case("members_bad_json", raw("POST", "/v2/members", "{not json", Content_Type="application/json"))
case("members_bad_url",
     raw("POST", "/v2/members", '{"peerURLs":["not a url"]}', Content_Type="application/json"))
case("members_delete_unknown", Req("DELETE", "/v2/members/1234"))
case("members_delete_bad_id", Req("DELETE", "/v2/members/zzz"))
case("members_update_unknown", raw("PUT", "/v2/members/1234", '{"peerURLs":["http://127.0.0.1:1"]}',
                                   Content_Type="application/json"))
case("members_405", Req("PATCH", "/v2/members"), Req("POST", "/v2/members/leader"))
case("machines", Req("GET", "/v2/machines"), Req("HEAD", "/v2/machines"), Req("POST", "/v2/machines"))
case("version", Req("GET", "/version"), Req("POST", "/version"), Req("HEAD", "/version"))
case("health", Req("GET", "/health"), Req("PUT", "/health"))
case("unknown_paths", Req("GET", "/v2/unknown"), Req("GET", "/v2/keysx"), Req("GET", "/v2"))

# --- HTTP surface: CORS, 301, 405 -------------------------------------------------------------------------
case("cors_options_key", Req("OPTIONS", "k"))
case("cors_preflight", Req("OPTIONS", "k", headers={"Origin": "http://example.com",
                                                    "Access-Control-Request-Method": "PUT"}))
case("cors_with_origin", put("k", value="v"), Req("GET", "k", headers={"Origin": "http://example.com"}))
case("cors_options_stats", Req("OPTIONS", "/v2/stats/self"), Req("OPTIONS", "/v2/members"))
case("redirect_double_slash", put("a/b", value="v"), Req("GET", "a//b"))
case("redirect_double_slash_put", Req("PUT", "a//b", form={"value": "v"}), get("a/b"))
case("redirect_dot_segments", put("a/b", value="v"), Req("GET", "a/./b"), Req("GET", "a/x/../b"))
case("redirect_keeps_query", put("a/b", value="v"), Req("GET", "a//b", query={"recursive": "true"}))
case("method_not_allowed_key", Req("PATCH", "k"), Req("TRACE", "k"), Req("OPTIONS", "/v2/keys/"))
case("method_not_allowed_then_intact", put("k", value="v"), Req("PATCH", "k", form={"value": "x"}), get("k"))


# --- v2 auth (last: it leaves a root user and a /2/enabled flag behind, which changes etcd's getsFail) ---
_JSON = {"Content-Type": "application/json"}
_ROOT = {**_JSON, "Authorization": "Basic cm9vdDpwdw=="}  # root:pw
_REVOKE_GUEST = '{"role":"guest","revoke":{"kv":{"read":["/*"],"write":["/*"]}}}'
case("auth_v2_enable_110",
     Req("GET", "/v2/auth/enable"), put("k", value="v"),
     Req("PUT", "/v2/auth/users/root", form='{"user":"root","password":"pw"}', headers=_JSON),
     Req("PUT", "/v2/auth/enable"), Req("GET", "/v2/auth/enable"),
     Req("PUT", "/v2/auth/roles/guest", form=_REVOKE_GUEST, headers=_ROOT),
     get("k"), put("k", value="w"), Req("GET", "k", headers={"Authorization": "Basic cm9vdDp3cm9uZw=="}),
     Req("GET", "k", headers=_ROOT),
     Req("DELETE", "/v2/auth/enable", headers=_ROOT), get("k"))
# fmt: on
