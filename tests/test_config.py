"""config.toml loading: defaults, the shipped file, and that every class of mistake is refused with
the file, the dotted key and the reason."""
from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import replace
from pathlib import Path

import pytest

from softswitch.config import (
    Config, ConfigError, Extension, ListenAddress, LogConfig, SecurityConfig, TlsConfig, load_config, parse_config,
)

ROOT = Path(__file__).resolve().parent.parent

MINIMAL = """\
[sip]
listen = ["udp:127.0.0.1:5060", "tcp:127.0.0.1:5060"]   # transport:host:port
domain = "callcenter.local"
[store]
path = "var/softswitch.db"          # relative paths are relative to the config file
[[extensions]]
number = "1001"
password = "change-me-1001"
name = "Front desk"
"""


def write(tmp_path: Path, text: str, name: str = "config.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def refused(tmp_path: Path, text: str) -> ConfigError:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    e = info.value
    assert e.file == str(path)
    assert str(e) == (f"{e.file}: {e.key}: {e.reason}" if e.key else f"{e.file}: {e.reason}")
    return e


def with_sip(extra: str) -> str:
    """MINIMAL with lines added to [sip]."""
    return MINIMAL.replace('domain = "callcenter.local"\n', f'domain = "callcenter.local"\n{extra}\n')


def base() -> dict:
    return {
        "sip": {"listen": ["udp:127.0.0.1:5060"], "domain": "callcenter.local"},
        "store": {"path": "var/softswitch.db"},
        "extensions": [{"number": "1001", "password": "secret-1"}],
    }


def parse_error(data: dict) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        parse_config(data, "test.toml")
    assert info.value.file == "test.toml"
    return info.value


# ------------------------------------------------------------------------------------ loads


def test_minimal_config_loads_with_defaults(tmp_path):
    cfg = load_config(write(tmp_path, MINIMAL))
    assert isinstance(cfg, Config)
    assert cfg.source == tmp_path / "config.toml"
    sip = cfg.sip
    assert sip.listen == [ListenAddress("udp", "127.0.0.1", 5060), ListenAddress("tcp", "127.0.0.1", 5060)]
    assert sip.domain == sip.realm == "callcenter.local"
    assert sip.user_agent == "softswitch/0.1"
    assert sip.advertised_address is None
    assert (sip.min_expires, sip.default_expires, sip.max_expires) == (60, 600, 3600)
    assert sip.nonce_lifetime == 300
    assert sip.auth_algorithms == ["MD5"]
    assert sip.tls == TlsConfig(None, None)
    assert (sip.t1_ms, sip.t2_ms, sip.t4_ms) == (500, 4000, 5000)
    assert sip.ring_timeout == 60
    assert sip.max_message_size == 65535
    assert sip.nat == "auto"
    assert cfg.extensions == [Extension("1001", "change-me-1001", "Front desk", max_contacts=5, record=False,
                                        enabled=True)]
    assert cfg.security == SecurityConfig(10, 60, 900, [], [])
    assert cfg.log == LogConfig("INFO")


def test_relative_store_path_is_resolved_against_the_config_directory(tmp_path, monkeypatch):
    sub = tmp_path / "etc"
    sub.mkdir()
    write(sub, MINIMAL)
    monkeypatch.chdir(tmp_path)  # not the config's directory
    cfg = load_config(Path("etc") / "config.toml")
    assert cfg.store.path == sub / "var" / "softswitch.db"
    assert cfg.store.path.is_absolute()
    assert not (sub / "var").exists()  # created at runtime, not by loading the config
    absolute = load_config(write(tmp_path, MINIMAL.replace("var/softswitch.db", "/srv/ss/db.sqlite")))
    assert absolute.store.path == Path("/srv/ss/db.sqlite")


def test_shipped_config_loads():
    cfg = load_config(ROOT / "config.toml")
    assert [str(a) for a in cfg.sip.listen] == ["udp:127.0.0.1:5060", "tcp:127.0.0.1:5060"]
    assert cfg.sip.domain == "callcenter.local"
    assert cfg.store.path == ROOT / "var" / "softswitch.db"
    assert [e.number for e in cfg.extensions] == ["1001", "1002", "1003", "1004"]
    assert cfg.extension("1001").name == "Front desk"


def test_shipped_config_documents_the_real_defaults(tmp_path):
    """Uncommenting every '#key = value' line of the shipped file (except the examples that are not
    defaults) must give the same config: the comments cannot drift from the code."""
    text = (ROOT / "config.toml").read_text()
    skip = ("#[sip.tls]", "#certificate", "#key", "#advertised_address", "#hold_music")
    lines = [line[1:] if re.match(r"#(\[\w+\]|\w+ = )", line) and not line.startswith(skip) else line
             for line in text.splitlines()]
    assert sum(a != b for a, b in zip(lines, text.splitlines())) >= 20  # it really uncommented the settings
    shipped = load_config(ROOT / "config.toml")
    (tmp_path / "prompts").symlink_to(ROOT / "prompts", target_is_directory=True)  # the IVR's prompt texts
    everything = load_config(write(tmp_path, "\n".join(lines)))
    # paths resolve against each file's directory: compare them relative to it
    assert everything.media.recordings_dir == tmp_path / "var" / "recordings"
    assert shipped.media.recordings_dir == ROOT / "var" / "recordings"
    # (the call-centre sections have no commented defaults; their paths differ by directory only)
    assert replace(everything, source=shipped.source, store=shipped.store, acd=shipped.acd, ivr=shipped.ivr,
                   media=replace(everything.media, recordings_dir=shipped.media.recordings_dir)) == shipped


def test_everything_set(tmp_path):
    (tmp_path / "tls").mkdir()
    cert, key = tmp_path / "tls" / "c.pem", tmp_path / "tls" / "k.pem"
    if shutil.which("openssl") is None:
        pytest.skip("openssl not installed")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(cert),
                    "-days", "1", "-subj", "/CN=callcenter.local"], check=True, capture_output=True)
    text = """
[sip]
listen = ["udp:0.0.0.0:5060", "tcp:[::1]:5070", "TLS:[::1]:5061", "udp:pbx.example.com"]
domain = "callcenter.local"
realm = "Call Centre"
user_agent = "ACME switch"
advertised_address = "[2001:db8::1]"
nat = "Force"
min_expires = 30
max_expires = 7200
default_expires = 30
nonce_lifetime = 60
auth_algorithms = ["md5"]
t1_ms = 1000
t2_ms = 1000
t4_ms = 2000
ring_timeout = 20
max_message_size = 4096
[sip.tls]
certificate = "tls/c.pem"
key = "tls/k.pem"
[store]
path = "db.sqlite"
[[extensions]]
number = "+4930123456"
password = "pass"
max_contacts = 1
record = true
enabled = false
busy_limit = 0
[[extensions]]
number = "20"
password = "pass"
[security]
max_auth_failures = 3
failure_window = 10
ban_time = 3600
ban_exempt = ["192.168.1.0/24", "10.0.0.5", "::1", "fd00::/8", "192.168.2.7/24"]
blacklist = ["1900*", "+1555*", "666"]
[log]
level = "debug"
"""
    cfg = load_config(write(tmp_path, text))
    sip = cfg.sip
    assert sip.listen == [ListenAddress("udp", "0.0.0.0", 5060), ListenAddress("tcp", "::1", 5070),
                          ListenAddress("tls", "::1", 5061), ListenAddress("udp", "pbx.example.com", 5060)]
    assert str(sip.listen[1]) == "tcp:[::1]:5070"
    assert sip.realm == "Call Centre" and sip.user_agent == "ACME switch"
    assert sip.advertised_address == "2001:db8::1"  # bare, like a listen host; brackets are added in headers
    assert sip.nat == "force" and sip.auth_algorithms == ["MD5"]
    assert (sip.min_expires, sip.default_expires, sip.max_expires) == (30, 30, 7200)
    assert sip.tls == TlsConfig(cert, key)
    assert cfg.store.path == tmp_path / "db.sqlite"
    e = cfg.extension("+4930123456")
    assert e is not None and (e.max_contacts, e.record, e.enabled, e.busy_limit) == (1, True, False, 0)
    assert cfg.extension("20").name == "" and cfg.extension("21") is None
    assert cfg.security.ban_exempt[-1] == "192.168.2.7/24"
    assert cfg.security.blacklist == ["1900*", "+1555*", "666"]
    assert cfg.log.level == "DEBUG"


def test_zero_extensions_is_allowed():
    data = base()
    del data["extensions"]
    assert parse_config(data).extensions == []
    data["extensions"] = []
    assert parse_config(data).extension("1001") is None


def test_parse_config_does_not_modify_its_input():
    data = base()
    before = repr(data)
    parse_config(data)
    assert repr(data) == before


# ------------------------------------------------------------------------- file-level errors


def test_toml_syntax_error_names_file_line_and_column(tmp_path):
    e = refused(tmp_path, MINIMAL + "\n[security\nban_time = 5\n")
    assert e.key is None
    assert "TOML syntax error" in e.reason and "line 11" in e.reason and "column" in e.reason


def test_missing_and_unreadable_files(tmp_path):
    with pytest.raises(ConfigError) as info:
        load_config(tmp_path / "nope.toml")
    assert str(info.value) == f"{tmp_path / 'nope.toml'}: file not found"
    with pytest.raises(ConfigError, match="is a directory"):
        load_config(tmp_path)
    (tmp_path / "latin1.toml").write_bytes(MINIMAL.encode().replace(b"Front desk", b"R\xe9ception"))
    with pytest.raises(ConfigError, match="not UTF-8"):
        load_config(tmp_path / "latin1.toml")


# ------------------------------------------------------------------------------ key errors


@pytest.mark.parametrize("text, key, reason", [
    # unknown keys, with a suggestion when one is close
    (with_sip("min_expire = 30"), "sip.min_expire", 'unknown key (did you mean "min_expires"?)'),
    (MINIMAL + "[security]\nban_tme = 10\n", "security.ban_tme", 'unknown key (did you mean "ban_time"?)'),
    (MINIMAL + "[[extension]]\nnumber = \"1002\"\n", "extension", 'unknown table (did you mean "extensions"?)'),
    (MINIMAL + "[queues]\nsales = 1\n", "queues", "unknown table"),
    (MINIMAL.replace('name = "Front desk"', 'nmae = "x"'), "extensions[0].nmae",
     'unknown key (did you mean "name"?)'),
    (with_sip("[sip.tsl]\ncertificate = \"c.pem\""), "sip.tsl", 'unknown table (did you mean "tls"?)'),
    # wrong types
    (with_sip('min_expires = "60"'), "sip.min_expires", 'expected integer, got string ("60")'),
    (with_sip("ring_timeout = 1.5"), "sip.ring_timeout", "expected integer, got float (1.5)"),
    (with_sip("min_expires = true"), "sip.min_expires", "expected integer, got boolean"),
    (MINIMAL + "[security]\nban_time = false\n", "security.ban_time", "expected integer, got boolean"),
    (MINIMAL + "record = 1\n", "extensions[0].record", "expected boolean, got integer (1)"),
    (MINIMAL.replace('number = "1001"', "number = 1001"), "extensions[0].number",
     "expected string, got integer (1001)"),
    (MINIMAL.replace('["udp:127.0.0.1:5060", "tcp:127.0.0.1:5060"]', '"udp:127.0.0.1:5060"'), "sip.listen",
     'expected array of strings, got string ("udp:127.0.0.1:5060"): put it in brackets, ["udp:127.0.0.1:5060"]'),
    (MINIMAL.replace("[[extensions]]", "[extensions]"), "extensions",
     "expected array of tables, got table: write each entry as [[extensions]]"),
    ('sip = "x"\n[store]' + MINIMAL.split("[store]")[1], "sip", 'expected table, got string ("x")'),
    # required keys
    (MINIMAL.replace('domain = "callcenter.local"\n', ""), "sip.domain", "required key is missing"),
    (MINIMAL.split("[store]")[0], "store", "required table [store] is missing"),
    (MINIMAL.replace('password = "change-me-1001"\n', ""), "extensions[0].password",
     "give password, or ha1_md5 and/or ha1_sha256"),
    # listen addresses
    (MINIMAL.replace("tcp:127.0.0.1:5060", "tcp:127.0.0.1:70000"), "sip.listen[1]",
     'port must be between 1 and 65535, got 70000 in "tcp:127.0.0.1:70000"'),
    (MINIMAL.replace("tcp:127.0.0.1:5060", "tcp:127.0.0.1:0"), "sip.listen[1]",
     'port must be between 1 and 65535, got 0 in "tcp:127.0.0.1:0"'),
    (MINIMAL.replace("tcp:127.0.0.1:5060", "tcp:127.0.0.1:sip"), "sip.listen[1]",
     'port must be a number, got "sip" in "tcp:127.0.0.1:sip"'),
    (MINIMAL.replace("tcp:127.0.0.1:5060", "sctp:127.0.0.1:5060"), "sip.listen[1]",
     'transport must be one of udp, tcp, tls, got "sctp" in "sctp:127.0.0.1:5060"'),
    (MINIMAL.replace("tcp:127.0.0.1:5060", "upd:127.0.0.1:5060"), "sip.listen[1]",
     'transport must be one of udp, tcp, tls, got "upd" (did you mean "udp"?) in "upd:127.0.0.1:5060"'),
    (MINIMAL.replace("tcp:127.0.0.1:5060", "127.0.0.1"), "sip.listen[1]",
     'expected "transport:host:port" (e.g. "udp:0.0.0.0:5060"), got "127.0.0.1"'),
    (MINIMAL.replace("tcp:127.0.0.1:5060", "udp:::1:5060"), "sip.listen[1]",
     'IPv6 addresses go in brackets, e.g. "udp:[::1]:5060", got "udp:::1:5060"'),
    (MINIMAL.replace("tcp:127.0.0.1:5060", "udp:[::g]:5060"), "sip.listen[1]",
     'not an IPv6 address in brackets: "::g" in "udp:[::g]:5060"'),
    (MINIMAL.replace("tcp:127.0.0.1:5060", "udp:127.0.0.1:5060"), "sip.listen[1]",
     'duplicate listen address "udp:127.0.0.1:5060" (also sip.listen[0])'),
    (MINIMAL.replace('"tcp:127.0.0.1:5060"', '"tcp:127.0.0.1:5060", "tls:127.0.0.1:5060"'), "sip.listen[2]",
     '"tls:127.0.0.1:5060" needs the same TCP port as "tcp:127.0.0.1:5060" (sip.listen[1])'),
    (MINIMAL.replace('["udp:127.0.0.1:5060", "tcp:127.0.0.1:5060"]', "[]"), "sip.listen", "must not be empty"),
    # sip values
    (MINIMAL.replace('"callcenter.local"', '"call center"'), "sip.domain",
     'not a valid host name or IP address: "call center"'),
    (MINIMAL.replace('"callcenter.local"', '""'), "sip.domain", "must not be empty"),
    (with_sip("min_expires = 4000"), "sip.min_expires", "must not be greater than max_expires (3600), got 4000"),
    (with_sip("min_expires = 120\nmax_expires = 100\ndefault_expires = 110"), "sip.min_expires",
     "must not be greater than max_expires (100), got 120"),
    (with_sip("default_expires = 30"), "sip.default_expires",
     "must be between min_expires (60) and max_expires (3600), got 30"),
    (with_sip("min_expires = 0"), "sip.min_expires", "must be between 1 and 86400, got 0"),
    (with_sip("t1_ms = 5000"), "sip.t1_ms", "must not be greater than t2_ms (4000), got 5000"),
    (with_sip("max_message_size = 100"), "sip.max_message_size", "must be between 1500 and 1048576, got 100"),
    (with_sip("auth_algorithms = []"), "sip.auth_algorithms", "must not be empty"),
    (with_sip('auth_algorithms = ["SHA-256", "SHA-512"]'), "sip.auth_algorithms[1]",
     'must be one of SHA-256, MD5, got "SHA-512" (did you mean "SHA-256"?)'),
    (with_sip('auth_algorithms = ["MD5", "md5"]'), "sip.auth_algorithms[1]", 'duplicate "MD5" (also at [0])'),
    (with_sip('nat = "yes"'), "sip.nat", 'must be one of auto, force, never, got "yes"'),
    (with_sip('user_agent = "a\\r\\nX-Injected: 1"'), "sip.user_agent",
     "must not contain control characters (newline, tab, ...)"),
    (with_sip('realm = "say \\"hi\\""'), "sip.realm", "must not contain '\"' (it is sent inside a quoted string)"),
    # tls
    (MINIMAL.replace('"tcp:127.0.0.1:5060"', '"tls:127.0.0.1:5061"'), "sip.tls.certificate",
     'required by the tls listener "tls:127.0.0.1:5061" (sip.listen[1]): set [sip.tls] certificate and key'),
    # extensions
    (MINIMAL + '[[extensions]]\nnumber = "1002"\npassword = "pw-2"\n[[extensions]]\nnumber = "1001"\n'
               'password = "pw-3"\n', "extensions[2].number", 'duplicate extension number "1001" (also extensions[0])'),
    (MINIMAL.replace('"1001"', '"10a1"'), "extensions[0].number",
     "must be 2-15 digits, optionally after a '+', got \"10a1\""),
    (MINIMAL.replace('"1001"', '"1"'), "extensions[0].number",
     "must be 2-15 digits, optionally after a '+', got \"1\""),
    (MINIMAL.replace('"1001"', '"1234567890123456"'), "extensions[0].number",
     "must be 2-15 digits, optionally after a '+', got \"1234567890123456\""),
    (MINIMAL.replace('"1001"', '" 1001"'), "extensions[0].number",
     "must be 2-15 digits, optionally after a '+', got \" 1001\""),
    (MINIMAL.replace('"change-me-1001"', '"abc"'), "extensions[0].password", "must be at least 4 characters"),
    (MINIMAL.replace('"change-me-1001"', '""'), "extensions[0].password", "give password, or ha1_md5 and/or ha1_sha256"),
    (MINIMAL.replace('password = "change-me-1001"', 'ha1_md5 = "abc"'), "extensions[0].ha1_md5",
     "must be 32 hex digits (H(number:realm:password)), got 3 characters"),
    (MINIMAL + "max_contacts = 0\n", "extensions[0].max_contacts", "must be between 1 and 100, got 0"),
    # security
    (MINIMAL + '[security]\nban_exempt = ["10.0.0.0/33"]\n', "security.ban_exempt[0]",
     "not an IP address or CIDR network ('10.0.0.0/33' does not appear to be an IPv4 or IPv6 network)"),
    (MINIMAL + '[security]\nban_exempt = ["127.0.0.1", "lan"]\n', "security.ban_exempt[1]",
     "not an IP address or CIDR network ('lan' does not appear to be an IPv4 or IPv6 network)"),
    (MINIMAL + "[security]\nmax_auth_failures = 0\n", "security.max_auth_failures",
     "must be between 1 and 10000, got 0"),
    (MINIMAL + '[security]\nblacklist = ["19*00"]\n', "security.blacklist[0]",
     "must be a number (digits, optional leading '+') or a prefix ending in '*', got \"19*00\""),
    (MINIMAL + '[security]\nblacklist = ["*"]\n', "security.blacklist[0]",
     "must be a number (digits, optional leading '+') or a prefix ending in '*', got \"*\""),
    # log
    (MINIMAL + '[log]\nlevel = "WARN"\n', "log.level",
     'must be one of DEBUG, INFO, WARNING, ERROR, got "WARN" (did you mean "WARNING"?)'),
])
def test_errors_name_file_key_and_reason(tmp_path, text, key, reason):
    e = refused(tmp_path, text)
    assert (e.key, e.reason) == (key, reason)
    assert str(e) == f"{tmp_path / 'config.toml'}: {key}: {reason}"


def test_tls_files_must_exist_relative_to_the_config(tmp_path):
    text = with_sip('[sip.tls]\ncertificate = "tls/c.pem"\nkey = "tls/k.pem"')
    e = refused(tmp_path, text)
    assert (e.key, e.reason) == ("sip.tls.certificate", f"file not found: {tmp_path / 'tls' / 'c.pem'}")
    (tmp_path / "tls").mkdir()
    (tmp_path / "tls" / "c.pem").write_text("x")
    e = refused(tmp_path, text)
    assert (e.key, e.reason) == ("sip.tls.key", f"file not found: {tmp_path / 'tls' / 'k.pem'}")
    e = refused(tmp_path, with_sip('[sip.tls]\ncertificate = "tls/c.pem"'))
    assert (e.key, e.reason) == ("sip.tls.key", "required when tls.certificate is set")
    e = refused(tmp_path, with_sip('[sip.tls]\ncertificate = "tls"\nkey = "tls/c.pem"'))
    assert (e.key, e.reason) == ("sip.tls.certificate", f"not a file: {tmp_path / 'tls'}")


def test_tls_certificate_that_cannot_be_loaded_is_refused(tmp_path):
    (tmp_path / "c.pem").write_text("not a certificate\n")
    (tmp_path / "k.pem").write_text("not a key\n")
    text = MINIMAL.replace('"tcp:127.0.0.1:5060"', '"tls:127.0.0.1:5061"').replace(
        'domain = "callcenter.local"\n', 'domain = "callcenter.local"\n[sip.tls]\ncertificate = "c.pem"\nkey = "k.pem"\n')
    e = refused(tmp_path, text)
    assert e.key == "sip.tls.certificate" and e.reason.startswith("cannot load the certificate")


def test_parse_config_errors_use_the_given_source_name():
    data = base()
    data["sip"]["listen"] = ["udp:127.0.0.1:5060", True]
    e = parse_error(data)
    assert str(e) == "test.toml: sip.listen[1]: expected string, got boolean"
    data = base()
    data["extensions"].append("1002")
    assert str(parse_error(data)) == 'test.toml: extensions[1]: expected table, got string ("1002")'
    data = base()
    data["extensions"][0]["password"] = ["x"]
    assert str(parse_error(data)) == "test.toml: extensions[0].password: expected string, got array"


def test_config_error_without_key():
    e = ConfigError("a.toml", None, "file not found")
    assert (str(e), e.file, e.key, e.reason) == ("a.toml: file not found", "a.toml", None, "file not found")


def test_media_workers_is_a_count_or_auto():
    d = base()
    assert parse_config(d, "test.toml").media.workers == -1          # the default: "auto", resolved at start
    for given, kept in (("auto", -1), ("AUTO", -1), (0, 0), (2, 2)):
        d["media"] = {"workers": given}
        assert parse_config(d, "test.toml").media.workers == kept
    for bad in ("two", 65, -1, True):
        d["media"] = {"workers": bad}
        e = parse_error(d)
        assert e.key == "media.workers", (bad, e)
