"""`flotilla etcd`'s configuration reads etcd 3.4's flags as etcd does.

Error texts in quotes are etcd 3.4.23's own (checked against /usr/bin/etcd); ours add what to do.
"""

import dataclasses
import logging
import os

import pytest

from flotilla.etcd.config import _FLAGS as FLAGS  # the table is the source of truth this test checks
from flotilla.etcd.config import (
    ConfigError,
    EtcdConfig,
    HelpRequested,
    env_var,
    parse_args,
    usage,
    version_text,
)


@pytest.fixture(autouse=True)
def _in_empty_directory(tmp_path, monkeypatch):
    # The default data dir is ./<name>.etcd: keep it away from any real one.
    monkeypatch.chdir(tmp_path)


def parse(*argv: str, **environ: str) -> EtcdConfig:
    return parse_args(list(argv), environ)


def error(*argv: str, **environ: str) -> str:
    with pytest.raises(ConfigError) as e:
        parse(*argv, **environ)
    return str(e.value)


# -- the flag table --------------------------------------------------------------------------------------


def test_every_flag_sets_a_field_and_every_field_has_its_flag():
    fields = {f.name for f in dataclasses.fields(EtcdConfig)}
    assert sorted(flag.field for flag in FLAGS) == sorted(fields)


@pytest.mark.parametrize("flag", FLAGS, ids=lambda f: f.name)
def test_the_field_default_is_etcds_default(flag):
    assert flag.parse(flag.default) == getattr(EtcdConfig(), flag.field)


def test_the_defaults_are_etcd_3_4s():
    c = parse()
    assert (c.name, c.data_dir, c.snapshot_count) == ("default", "default.etcd", 100000)
    assert (c.heartbeat_interval_ms, c.election_timeout_ms, c.election_ticks) == (100, 1000, 10)
    assert c.listen_client_urls == c.advertise_client_urls == ("http://localhost:2379",)
    assert c.listen_peer_urls == c.initial_advertise_peer_urls == ("http://localhost:2380",)
    assert (c.initial_cluster, c.initial_cluster_state) == ("default=http://localhost:2380", "new")
    assert c.initial_cluster_token == "etcd-cluster"
    assert (c.max_txn_ops, c.max_request_bytes, c.max_snapshots, c.max_wals) == (128, 1572864, 5, 5)
    assert c.enable_v2 is False and c.strict_reconfig_check is True and c.pre_vote is False
    assert (c.quota_backend_bytes, c.backend_quota_bytes) == (0, 2 * 1024**3)
    assert c.grpc_keepalive_interval_s == 7200.0 and c.experimental_warning_apply_duration_s == 0.1


# -- Go's flag syntax ------------------------------------------------------------------------------------


@pytest.mark.parametrize("argv", [["-name", "x"], ["--name", "x"], ["-name=x"], ["--name=x"]])
def test_one_or_two_dashes_with_or_without_equals(argv):
    assert parse(*argv).name == "x"


@pytest.mark.parametrize("argv", [["--enable-v2"], ["-enable-v2"], ["--enable-v2=true"], ["-enable-v2=1"]])
def test_a_boolean_alone_means_true(argv):
    assert parse(*argv).enable_v2 is True


@pytest.mark.parametrize("text", ["1", "t", "T", "TRUE", "true", "True"])
def test_booleans_read_as_gos_parse_bool_true(text):
    assert parse(f"--pre-vote={text}").pre_vote is True


@pytest.mark.parametrize("text", ["0", "f", "F", "FALSE", "false", "False"])
def test_booleans_read_as_gos_parse_bool_false(text):
    assert parse(f"--strict-reconfig-check={text}").strict_reconfig_check is False


def test_a_bad_boolean_names_the_flag():
    assert error("--enable-v2=maybe").startswith('invalid value "maybe" for flag -enable-v2: parse error')
    assert error("--enable-v2=").startswith('invalid value "" for flag -enable-v2')


def test_a_boolean_takes_no_separate_value():
    message = error("-enable-v2", "false")
    assert message.startswith("error verifying flags, 'false' is not a valid flag")
    assert "--flag=false" in message


def test_a_flag_given_twice_keeps_the_last_value():
    assert parse("--name", "x", "-name=y").name == "y"
    assert parse("--enable-v2", "--enable-v2=false").enable_v2 is False


def test_a_flag_that_needs_a_value_takes_the_next_argument_whatever_it_is():
    # Go's flag package: `-name --data-dir` names the member "--data-dir".
    assert parse("-name", "--data-dir").name == "--data-dir"


def test_a_missing_value_is_an_error():
    assert error("--name").startswith("flag needs an argument: -name")


def test_double_dash_ends_the_flags_and_what_follows_is_an_error():
    assert "'--enable-v2' is not a valid flag" in error("--", "--enable-v2")
    assert parse("--name=x", "--").name == "x"


@pytest.mark.parametrize("arg", ["positional", "-"])
def test_positional_arguments_are_refused_as_etcd_does(arg):
    assert error("--name=x", arg).startswith(f"error verifying flags, '{arg}' is not a valid flag")


@pytest.mark.parametrize("arg", ["---name", "-=x", "--=x"])
def test_bad_flag_syntax(arg):
    assert error(arg).startswith(f"bad flag syntax: {arg}")


def test_an_unknown_flag_is_named_with_a_suggestion():
    assert error("--bogus").startswith("flag provided but not defined: -bogus")
    assert "did you mean --listen-client-urls?" in error("--listen-client-url=http://127.0.0.1:1")


@pytest.mark.parametrize("arg", ["-h", "--help", "-help", "--h"])
def test_help_is_requested(arg):
    with pytest.raises(HelpRequested):
        parse("--name=x", arg)


def test_errors_come_in_argument_order_as_go_reports_the_first():
    assert error("--snapshot-count=abc", "--bogus").startswith('invalid value "abc" for flag -snapshot-count')
    assert error("--bogus", "-h").startswith("flag provided but not defined: -bogus")


def test_flags_etcd_no_longer_supports_are_ignored_with_a_warning(caplog):
    with caplog.at_level(logging.WARNING):
        c = parse("-v", "--snapshot=x", "-peer-heartbeat-interval")
    assert c == parse()
    assert 'flag "-v" is no longer supported - ignoring.' in caplog.text


def test_version_returns_at_once_without_reading_the_environment_or_checking():
    c = parse("--version", "--listen-client-urls=http://127.0.0.1:1", ETCD_SNAPSHOT_COUNT="abc")
    assert c.version is True
    assert version_text().startswith("etcd Version: 3.4.")
    assert "API Version: 3.4\n" in version_text()
    assert "Flotilla Version: " in version_text()


# -- values ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "value"),
    [("10", 10), ("0x10", 16), ("0X1f", 31), ("010", 8), ("0o10", 8), ("0b101", 5), ("1_000", 1000)],
)
def test_integers_read_as_go_does_with_base_prefixes(text, value):
    assert parse(f"--snapshot-count={text}").snapshot_count == value


@pytest.mark.parametrize("text", ["abc", "-1", "+1", " 1", "1.5", "1__0", "_1", "", "09"])
def test_unsigned_integers_refuse_what_go_refuses(text):
    assert error(f"--snapshot-count={text}").startswith(
        f'invalid value "{text}" for flag -snapshot-count: parse error'
    )


def test_signed_integers_and_ranges():
    assert parse("--quota-backend-bytes=-1").backend_quota_bytes is None
    assert parse("--quota-backend-bytes=+1024").quota_backend_bytes == 1024
    assert parse("--max-concurrent-streams=10").max_concurrent_streams == 10
    assert "value out of range" in error("--max-concurrent-streams=5000000000")


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("5s", 5.0), ("100ms", 0.1), ("2h", 7200.0), ("1h30m", 5400.0), ("1.5m", 90.0), ("0", 0.0), (".5s", 0.5),
     ("-1s", -1.0), ("10us", 1e-5), ("10µs", 1e-5)],
)  # fmt: skip
def test_durations_read_as_go_does(text, seconds):
    assert parse(f"--grpc-keepalive-timeout={text}").grpc_keepalive_timeout_s == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["5", "", "s", "5x", "1.2.3s", "5 s"])
def test_bad_durations(text):
    assert error(f"--grpc-keepalive-min-time={text}").startswith(
        f'invalid value "{text}" for flag -grpc-keepalive-min-time: parse error'
    )


def test_url_lists_come_sorted_without_duplicates():
    c = parse(
        "--listen-client-urls=http://127.0.0.1:2,HTTP://127.0.0.1:1,http://127.0.0.1:2",
        "--advertise-client-urls=https://b.example:1, https://a.example:1",
    )
    assert c.listen_client_urls == ("http://127.0.0.1:1", "http://127.0.0.1:2")
    assert c.advertise_client_urls == ("https://a.example:1", "https://b.example:1")


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("foo", "URL scheme must be http, https, unix, or unixs: foo"),
        ("ftp://127.0.0.1:1", "URL scheme must be http, https, unix, or unixs"),
        ("http://127.0.0.1", 'URL address does not have the form "host:port"'),
        ("http://127.0.0.1:1/path", "URL must not contain a path: http://127.0.0.1:1/path"),
        ("http://127.0.0.1:1/", "URL must not contain a path"),
    ],
)
def test_bad_urls_are_refused_with_etcds_reason(url, reason):
    message = error(f"--listen-client-urls={url}", "--advertise-client-urls=http://127.0.0.1:1")
    assert message.startswith(f'invalid value "{url}" for flag -listen-client-urls: {reason}')


def test_listen_urls_must_name_an_ip_or_localhost():
    message = error("--listen-client-urls=http://example.com:1", "--advertise-client-urls=http://a:1")
    assert message.startswith("expected IP in URL for binding (http://example.com:1)")
    assert parse("--listen-client-urls=http://[::1]:1,unix://sock:0", "--advertise-client-urls=http://a:1")


def test_advertised_urls_need_a_host():
    assert 'must be "host:port"' in error("--advertise-client-urls=http://:1")


def test_choices():
    assert parse("--proxy=readonly").proxy == "readonly"
    assert error("--initial-cluster-state=bogus").startswith(
        'invalid value "bogus" for flag -initial-cluster-state: invalid value'
    )


def test_string_lists():
    c = parse("--cipher-suites=B,A", "--host-whitelist=b,a,b", "--log-outputs=stderr", "--cors=http://x:1")
    assert (c.cipher_suites, c.host_whitelist, c.log_outputs, c.cors) == (
        ("B", "A"),
        ("a", "b"),
        ("stderr",),
        ("http://x:1",),
    )


# -- environment -----------------------------------------------------------------------------------------


def test_each_flag_reads_its_etcd_variable():
    assert env_var("initial-cluster-token") == "ETCD_INITIAL_CLUSTER_TOKEN"
    c = parse(ETCD_NAME="envname", ETCD_ENABLE_V2="true", ETCD_SNAPSHOT_COUNT="0x10")
    assert (c.name, c.enable_v2, c.snapshot_count, c.data_dir) == ("envname", True, 16, "envname.etcd")


def test_the_command_line_wins_over_the_environment_with_a_warning(caplog):
    with caplog.at_level(logging.WARNING):
        assert parse("--name=flag", ETCD_NAME="env").name == "flag"
    assert "ETCD_NAME=env is shadowed by the command-line flag --name" in caplog.text


def test_empty_variables_are_ignored():
    assert parse(ETCD_NAME="").name == "default"


def test_unrecognized_etcd_variables_are_reported_not_refused(caplog):
    with caplog.at_level(logging.WARNING):
        parse(ETCD_FOO="bar", ETCDCTL_API="3", OTHER="x")
    assert "unrecognized environment variable ETCD_FOO=bar" in caplog.text
    assert "ETCDCTL_API" not in caplog.text


def test_used_variables_are_logged(caplog):
    with caplog.at_level(logging.INFO):
        parse(ETCD_NAME="x")
    assert "recognized and used environment variable ETCD_NAME=x" in caplog.text


def test_a_bad_variable_names_the_variable():
    assert error(ETCD_SNAPSHOT_COUNT="abc").startswith(
        'error verifying flags, invalid value "abc" for ETCD_SNAPSHOT_COUNT: parse error'
    )
    assert "ETCD_VERSION is the boolean --version flag" in error(ETCD_VERSION="3.4.23")
    assert parse(ETCD_VERSION="true").version is False  # as etcd: too late to print the version


def test_listen_urls_from_the_environment_count_as_set_explicitly():
    assert error(ETCD_LISTEN_CLIENT_URLS="http://127.0.0.1:1").startswith(
        "--advertise-client-urls is required when --listen-client-urls is set explicitly"
    )


def test_a_configuration_file_is_refused_clearly():
    assert "does not read configuration files" in error("--config-file=/etc/etcd.yml")
    assert "does not read configuration files" in error(ETCD_CONFIG_FILE="/etc/etcd.yml")


# -- etcd's checks ---------------------------------------------------------------------------------------


def test_explicit_listen_client_urls_need_advertise_client_urls():
    message = error("--listen-client-urls=http://127.0.0.1:1")
    assert message.startswith(
        "--advertise-client-urls is required when --listen-client-urls is set explicitly"
    )
    assert "must advertise accessible url(s)" in message
    # A v2 proxy may run without advertising, as in etcd.
    assert parse("--listen-client-urls=http://127.0.0.1:1", "--proxy=on").advertise_client_urls == ()


def test_the_election_timeout_must_be_five_heartbeats_and_at_most_fifty_seconds():
    assert error("--heartbeat-interval=500").startswith(
        "--election-timeout[1000ms] should be at least as 5 times as --heartbeat-interval[500ms]"
    )
    assert parse("--heartbeat-interval=200").election_ticks == 5
    assert error("--heartbeat-interval=0").startswith("--heartbeat-interval must be >0")
    assert error("--election-timeout=50001").startswith("--election-timeout[50001ms] is too long")


def test_only_one_way_to_bootstrap():
    message = error(
        "--discovery=https://discovery.example/x", "--initial-cluster=default=http://localhost:2380"
    )
    assert message.startswith("multiple discovery or bootstrap flags are set")


def test_discovery_replaces_the_default_initial_cluster():
    c = parse("--discovery=https://discovery.example/abc", "--name=n1")
    assert c.initial_cluster == ""
    assert c.initial_members() == {"n1": ("http://localhost:2380",)}
    assert c.bootstrap_token() == "https://discovery.example/abc"


def test_logging_options():
    assert error("--log-level=bogus").startswith('unknown log level "bogus"')
    assert error("--logger=bogus").startswith('unknown logger option "bogus"')
    assert parse("--logger=zap", "--log-level=debug").log_level == "debug"


def test_auto_compaction():
    assert parse("--auto-compaction-retention=1").auto_compaction_retention_value() == 3600.0
    assert parse("--auto-compaction-retention=30m").auto_compaction_retention_value() == 1800.0
    revision = parse("--auto-compaction-mode=revision", "--auto-compaction-retention=1000")
    assert revision.auto_compaction_retention_value() == 1000
    assert error("--auto-compaction-mode=bogus").startswith('unknown auto-compaction-mode "bogus"')
    assert error("--auto-compaction-retention=soon").startswith(
        'invalid value "soon" for --auto-compaction-retention'
    )


def test_lease_checkpoint_persistence_needs_checkpoints():
    assert error("--experimental-enable-lease-checkpoint-persist").startswith(
        "setting experimental-enable-lease-checkpoint-persist requires experimental-enable-lease-checkpoint"
    )


def test_an_invalid_bcrypt_cost_falls_back_to_the_default_as_etcd_does():
    assert parse("--bcrypt-cost=3").bcrypt_cost == 10
    assert parse("--bcrypt-cost=12").bcrypt_cost == 12


# -- bootstrap -------------------------------------------------------------------------------------------

PEER = "http://127.0.0.1:23801"


def test_the_default_initial_cluster_follows_the_name_and_advertised_peer_urls():
    c = parse("--name=infra0", f"--initial-advertise-peer-urls={PEER}")
    assert c.initial_cluster == f"infra0={PEER}"
    assert c.initial_members() == {"infra0": (PEER,)}
    assert c.bootstrap_token() == "etcd-cluster"


def test_the_default_name_with_other_peer_urls_needs_an_initial_cluster():
    # As etcd: the default initial cluster keeps http://localhost:2380 for the default name.
    assert error(f"--initial-advertise-peer-urls={PEER}").startswith(
        "--initial-cluster has default=http://localhost:2380 but missing from "
        f"--initial-advertise-peer-urls={PEER}"
    )


def test_our_name_must_be_in_the_initial_cluster():
    assert error(f"--initial-cluster=other={PEER}").startswith(
        'couldn\'t find local name "default" in the initial cluster configuration'
    )


def test_the_initial_cluster_must_list_exactly_our_advertised_peer_urls():
    base = ["--name=a", f"--initial-advertise-peer-urls={PEER}"]
    assert error(*base, "--initial-cluster=a=http://127.0.0.1:23802").startswith(
        "--initial-cluster has a=http://127.0.0.1:23802 but missing from "
        f"--initial-advertise-peer-urls={PEER}"
    )
    more = f"--initial-advertise-peer-urls={PEER},http://127.0.0.1:23802"
    assert error("--name=a", more, f"--initial-cluster=a={PEER}").startswith(
        "--initial-advertise-peer-urls has http://127.0.0.1:23802 but missing from --initial-cluster"
    )
    c = parse("--name=a", more, f"--initial-cluster=b=http://10.0.0.2:2380,a=http://127.0.0.1:23802,a={PEER}")
    assert c.initial_members() == {"b": ("http://10.0.0.2:2380",), "a": (PEER, "http://127.0.0.1:23802")}


def test_peer_urls_are_not_shared():
    message = error(
        "--name=a", f"--initial-advertise-peer-urls={PEER}", f"--initial-cluster=a={PEER},b={PEER}"
    )
    assert "has duplicate url" in message


def test_a_malformed_initial_cluster_is_refused():
    assert error("--initial-cluster=garbage").startswith(
        "error setting up initial cluster: URL scheme must be http, https, unix, or unixs"
    )


def test_joining_an_existing_cluster_needs_our_name_but_not_matching_urls():
    c = parse(
        "--name=a", "--initial-cluster-state=existing", f"--initial-cluster=b={PEER},a=http://10.0.0.1:2380"
    )
    assert c.initial_cluster_state == "existing"
    assert "couldn't find local name" in error(
        "--initial-cluster-state=existing", f"--initial-cluster=b={PEER}"
    )


def test_a_member_with_a_wal_skips_the_bootstrap_checks(tmp_path):
    wal = tmp_path / "data" / "member" / "wal"
    wal.mkdir(parents=True)
    argv = ["--data-dir", str(tmp_path / "data"), f"--initial-cluster=other={PEER}"]
    assert "couldn't find local name" in error(*argv)  # an empty WAL directory is no WAL
    (wal / "0000000000000000-0000000000000000.wal").write_bytes(b"")
    c = parse(*argv)
    assert c.is_member_initialized() and c.wal_path == str(wal)
    with pytest.raises(ConfigError):
        c.verify_bootstrap()  # what the member calls if it bootstraps anyway


def test_a_dedicated_wal_dir_decides_too(tmp_path):
    (tmp_path / "wal").mkdir()
    (tmp_path / "wal" / "x.wal").write_bytes(b"")
    c = parse(f"--wal-dir={tmp_path / 'wal'}", f"--initial-cluster=other={PEER}")
    assert c.wal_path == str(tmp_path / "wal") and c.data_dir == "default.etcd"


# -- help ------------------------------------------------------------------------------------------------


def test_usage_lists_every_flag_with_its_default_and_variable():
    text = usage()
    for flag in FLAGS:
        assert f"  --{flag.name} '{flag.default}'  [{env_var(flag.name)}]\n" in text
    assert "flotilla etcd [flags]" in text


def test_the_data_dir_given_is_kept():
    assert parse("--data-dir=/var/lib/etcd").data_dir == "/var/lib/etcd"
    assert os.path.join("/var/lib/etcd", "member", "wal") == parse("--data-dir=/var/lib/etcd").wal_path
