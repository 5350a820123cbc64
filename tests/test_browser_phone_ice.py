"""The browser phone's ICE configuration ([browser_phone]): the schema's refusals (file, key, reason), the TURN
REST credential against a known answer computed by openssl, what the page is given (ephemeral credentials,
never the secret) and what the switch's own aiortc end uses (parsed by aiortc itself, and gathering real
server-reflexive and relayed candidates from tests/ice_server.py, which checks the TURN login as coturn does)."""
from __future__ import annotations

import asyncio
import base64
import json
import shutil
import subprocess
import time
import tomllib
from pathlib import Path

import pytest

from softswitch.browserphone.config import BrowserPhoneConfig
from softswitch.browserphone.ice import page_ice, server_choice, server_ice_servers, turn_rest_credential
from softswitch.config import ConfigError, parse_config

from .conftest import wait_for

ROOT = Path(__file__).resolve().parent.parent
SECRET = "north-cc-turn-secret"


def cfg(section: dict) -> BrowserPhoneConfig:
    data = tomllib.loads((ROOT / "config.toml").read_text())
    data["browser_phone"] = section
    return parse_config(data, "config.toml", ROOT).browser_phone


def refused(section: dict) -> ConfigError:
    with pytest.raises(ConfigError) as e:
        cfg(section)
    assert e.value.file == "config.toml"
    return e.value


# ----------------------------------------------------------------------------------- the TURN REST credential

def test_turn_rest_credential_known_answer():
    # computed independently: printf '1765152000:2001' | openssl dgst -sha1 -hmac north-cc-turn-secret -binary | base64
    assert turn_rest_credential(SECRET, "2001", 1765065600.7, 86400) == ("1765152000:2001", "laZoIT0E8gMjY6kBee1x9Nm6L1U=")


@pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl not installed")
def test_turn_rest_credential_matches_openssl():
    for secret, user, now, ttl in (("s", "a", 0, 60), ("åäö secret", "agent-7", 1800000000, 3600)):
        name, cred = turn_rest_credential(secret, user, now, ttl)
        assert name == f"{now + ttl}:{user}"
        digest = subprocess.run(["openssl", "dgst", "-sha1", "-hmac", secret, "-binary"], input=name.encode(),
                                capture_output=True, check=True).stdout
        assert cred == base64.b64encode(digest).decode()


# ----------------------------------------------------------------------------------------------- the schema

def test_no_section_means_host_candidates_only():
    c = cfg({})
    assert c.ice_servers == [] and c.turn_secret == "" and c.turn_ttl == 86400
    assert page_ice(c, "2001", 0) == {"type": "phone.ice", "iceServers": [], "iceTransportPolicy": "all",
                                      "expires_in": None}
    pytest.importorskip("aiortc")
    from aiortc.rtcicetransport import connection_kwargs
    # aiortc's own default would be Google's public STUN server: the switch passes an empty list instead
    assert server_ice_servers(c, "2001", 0) == [] and connection_kwargs([]) == {}


def test_the_shipped_config_and_the_documented_example_are_valid():
    data = tomllib.loads((ROOT / "config.toml").read_text())
    parse_config(data, "config.toml", ROOT)
    doc = (ROOT / "docs" / "browser-phone.md").read_text()
    example = doc.split("```toml\n", 1)[1].split("```", 1)[0]
    c = cfg(tomllib.loads(example)["browser_phone"])
    assert c.turn_secret and any(s.is_turn for s in c.ice_servers)


@pytest.mark.parametrize("section, key, reason", [
    ({"ice_servers": [{"urls": "http://stun.example.com"}]}, "browser_phone.ice_servers[0].urls",
     'the scheme must be stun:, stuns:, turn: or turns:, got "http:"'),
    ({"ice_servers": [{"urls": ["stun:a.example", "stun:b.example?transport=udp"]}]},
     "browser_phone.ice_servers[0].urls[1]", "a STUN URL takes no ?transport="),
    ({"ice_servers": [{"urls": "turn:t.example?transport=sctp", "username": "u", "credential": "p"}]},
     "browser_phone.ice_servers[0].urls", "?transport= must be udp or tcp"),
    ({"ice_servers": [{"urls": "turn:t.example:99999", "username": "u", "credential": "p"}]},
     "browser_phone.ice_servers[0].urls", "the port must be between 1 and 65535"),
    ({"ice_servers": [{"urls": "stun:bad_host!"}]}, "browser_phone.ice_servers[0].urls",
     '"stun:bad_host!": not a valid host name'),
    ({"ice_servers": [{"urls": "stun:[2001:db8::zz]"}]}, "browser_phone.ice_servers[0].urls", "not a STUN/TURN URL"),
    ({"ice_servers": [{"urls": "stun:[2001:db8:::1]"}]}, "browser_phone.ice_servers[0].urls",
     "not a valid host name or IP address"),
    ({"ice_servers": [{"urls": []}]}, "browser_phone.ice_servers[0].urls", "must not be empty"),
    ({"ice_servers": [{"urls": 3478}]}, "browser_phone.ice_servers[0].urls",
     "expected string or array of strings, got integer"),
    ({"ice_servers": [{"url": "stun:s.example"}]}, "browser_phone.ice_servers[0].url", 'unknown key (did you mean "urls"?)'),
    ({"ice_servers": [{"urls": "turn:t.example"}]}, "browser_phone.ice_servers[0].username",
     "needs username and credential, or [browser_phone] turn_secret"),
    ({"ice_servers": [{"urls": "turn:t.example", "username": "u"}]}, "browser_phone.ice_servers[0].credential",
     "credential is missing"),
    ({"ice_servers": [{"urls": "stun:s.example", "username": "u", "credential": "p"}]},
     "browser_phone.ice_servers[0].username", "a STUN server takes no username/credential"),
    ({"ice_servers": [{"urls": "stun:s.example"}], "turn_secret": "x"}, "browser_phone.turn_secret",
     "no turn:/turns: entry"),
    ({"ice_servers": [{"urls": "turn:t.example"}], "turn_secret": " "}, "browser_phone.turn_secret",
     "non-empty printable"),
    ({"ice_servers": [{"urls": "turn:t.example"}], "turn_secret": "x", "turn_ttl": 10}, "browser_phone.turn_ttl",
     "must be between 600 and 604800"),
    ({"ice_servers": [{"urls": "stun:s.example"}], "ice_transport_policy": "relay"},
     "browser_phone.ice_transport_policy", '"relay" needs a turn: or turns: server'),
    ({"ice_transport_policy": "public"}, "browser_phone.ice_transport_policy", "must be one of all, relay"),
])
def test_bad_sections_are_refused_with_key_and_reason(section, key, reason):
    e = refused(section)
    assert e.key == key and reason in e.reason, str(e)


def test_secrets_stay_out_of_reprs():
    c = cfg({"ice_servers": [{"urls": "turn:t.example", "username": "static-user", "credential": "static-pass"},
                             {"urls": "turns:t.example:443?transport=tcp"}], "turn_secret": SECRET})
    assert "static-pass" not in repr(c) and SECRET not in repr(c)


# -------------------------------------------------------------------------------------------- the page's end

def test_the_page_gets_ephemeral_credentials_and_never_the_secret():
    c = cfg({"ice_servers": [{"urls": "stun:stun.example.com:3478"},
                             {"urls": ["turn:turn.example.com:3478?transport=udp", "turns:turn.example.com:443"]}],
             "turn_secret": SECRET, "turn_ttl": 3600, "ice_transport_policy": "relay"})
    now = 1765065600.0
    msg = page_ice(c, "2001", now)
    assert msg["iceTransportPolicy"] == "relay" and msg["expires_in"] == 3600
    stun, turn = msg["iceServers"]
    assert stun == {"urls": ["stun:stun.example.com:3478"]}
    assert turn["urls"] == ["turn:turn.example.com:3478?transport=udp", "turns:turn.example.com:443"]
    assert turn["username"] == "1765069200:2001"             # expires turn_ttl after now, names the agent
    assert turn["credential"] == turn_rest_credential(SECRET, "2001", now, 3600)[1]
    assert SECRET not in json.dumps(msg)
    # a later start gets a later expiry (and so another credential)
    assert page_ice(c, "2001", now + 60)["iceServers"][1]["credential"] != turn["credential"]


def test_a_static_turn_login_is_passed_through():
    c = cfg({"ice_servers": [{"urls": "turn:t.example", "username": "centre", "credential": "pw"}]})
    assert page_ice(c, "2001", 0)["iceServers"] == [{"urls": ["turn:t.example"], "username": "centre",
                                                    "credential": "pw"}]
    assert page_ice(c, "2001", 0)["expires_in"] is None


# ------------------------------------------------------------------------------------------ the switch's end

def test_the_switch_uses_what_aiortc_supports():
    pytest.importorskip("aiortc")
    from aiortc.rtcicetransport import connection_kwargs
    c = cfg({"ice_servers": [{"urls": ["stuns:s.example", "stun:[2001:db8::1]:3478", "stun:s.example:3479"]},
                             {"urls": ["turns:t.example:443?transport=udp", "turns:t.example:443"]},
                             {"urls": "turn:t2.example?transport=tcp", "username": "u", "credential": "p"}],
             "turn_secret": SECRET})
    choice = server_choice(c)
    assert choice.stun is not None and choice.stun.text == "stun:s.example:3479"
    assert choice.turn is not None and choice.turn.text == "turns:t.example:443"
    skipped = dict(choice.skipped)
    assert "no STUN over TLS" in skipped["stuns:s.example"]
    assert "IPv6 literal" in skipped["stun:[2001:db8::1]:3478"]
    assert "only over TCP" in skipped["turns:t.example:443?transport=udp"]
    assert "one TURN server" in skipped["turn:t2.example?transport=tcp"]
    assert SECRET not in choice.describe()
    kw = connection_kwargs(server_ice_servers(c, "2001", 1765065600))   # aiortc's own reading of our list
    assert kw["stun_server"] == ("s.example", 3479)
    assert kw["turn_server"] == ("t.example", 443) and kw["turn_ssl"] and kw["turn_transport"] == "tcp"
    assert kw["turn_username"] == "1765152000:switch.2001"
    assert kw["turn_password"] == turn_rest_credential(SECRET, "switch.2001", 1765065600, 86400)[1]


def test_aiortc_gathers_reflexive_and_relayed_candidates_with_the_switchs_login():
    pytest.importorskip("aiortc")
    from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription
    from aiortc.mediastreams import AudioStreamTrack

    from .ice_server import PUBLIC, IceServer

    with IceServer(SECRET) as srv:
        c = cfg({"ice_servers": [{"urls": f"stun:127.0.0.1:{srv.port}"},
                                 {"urls": f"turn:127.0.0.1:{srv.port}?transport=udp"}],
                 "turn_secret": SECRET, "turn_ttl": 600})

        async def answer() -> str:
            page = RTCPeerConnection(RTCConfiguration(iceServers=[]))
            page.addTransceiver("audio", direction="sendrecv")
            await page.setLocalDescription(await page.createOffer())
            pc = RTCPeerConnection(RTCConfiguration(iceServers=server_ice_servers(c, "2001", time.time())))
            await pc.setRemoteDescription(RTCSessionDescription(page.localDescription.sdp, "offer"))
            pc.addTrack(AudioStreamTrack())
            await pc.setLocalDescription(await pc.createAnswer())
            sdp = pc.localDescription.sdp
            await pc.close()
            await page.close()
            return sdp

        sdp = asyncio.run(asyncio.wait_for(answer(), 30))
        assert f" {PUBLIC} " in sdp and " typ srflx " in sdp and " typ relay " in sdp
        assert srv.bindings >= 1 and srv.refused == []
        (login,) = srv.allocations
        expiry, user = login.split(":", 1)
        assert user == "switch.2001" and 590 <= int(expiry) - time.time() <= 601


def test_a_static_turn_password_is_warned_about():
    from softswitch.config import config_warnings
    data = tomllib.loads((ROOT / "config.toml").read_text())
    data["browser_phone"] = {"ice_servers": [{"urls": "stun:s.example"},
                                             {"urls": "turn:t.example", "username": "u", "credential": "pw"}]}
    (w,) = [w for w in config_warnings(parse_config(data, "config.toml", ROOT)) if "browser_phone" in w]
    assert w.startswith("browser_phone.ice_servers[1]: this static TURN password") and "pw" not in w
    assert not [w for w in config_warnings(parse_config(tomllib.loads((ROOT / "config.toml").read_text()),
                                                        "config.toml", ROOT)) if "browser_phone" in w]


def test_coturn_accepts_both_ends_ephemeral_logins_and_refuses_a_wrong_or_expired_one(tmp_path):
    """Real coturn (use-auth-secret): the page's login (as phone.ice gives it) and the switch's get relay
    allocations; a credential made with another secret and one whose time has passed are refused."""
    pytest.importorskip("aiortc")
    from aiortc import RTCConfiguration, RTCIceServer, RTCPeerConnection

    from . import coturn
    if not coturn.available():
        pytest.skip("coturn not installed (bin/setup --test installs Debian's coturn)")

    async def relay_candidates(servers: list) -> list[str]:
        pc = RTCPeerConnection(RTCConfiguration(iceServers=servers))
        pc.addTransceiver("audio", direction="sendrecv")
        await pc.setLocalDescription(await pc.createOffer())
        await pc.close()
        return [line for line in pc.localDescription.sdp.splitlines() if " typ relay " in line]

    with coturn.Coturn(tmp_path, SECRET) as turn:
        c = cfg({"ice_servers": [{"urls": f"turn:127.0.0.1:{turn.port}?transport=udp"}], "turn_secret": SECRET,
                 "turn_ttl": 600})
        now = time.time()
        page = page_ice(c, "2001", now)["iceServers"][0]
        wrong = turn_rest_credential("another secret", "2002", now, 600)
        expired = turn_rest_credential(SECRET, "2003", now - 3600, 600)
        url = f"turn:127.0.0.1:{turn.port}?transport=udp"

        tcp = cfg({"ice_servers": [{"urls": f"turn:127.0.0.1:{turn.port}?transport=tcp"}], "turn_secret": SECRET})

        async def run() -> list[list[str]]:
            return [await relay_candidates(s) for s in (
                [RTCIceServer(url, page["username"], page["credential"])], server_ice_servers(c, "2001", now),
                server_ice_servers(tcp, "2004", now),           # TURN over TCP (firewalls that drop UDP)
                [RTCIceServer(url, *wrong)], [RTCIceServer(url, *expired)])]

        got = asyncio.run(asyncio.wait_for(run(), 60))
        assert [len(g) for g in got] == [1, 1, 1, 0, 0], got
        assert " 127.0.0.1 " in got[0][0]
        assert sorted(u.split(":")[1] for u in turn.allocated()) == ["2001", "switch.2001", "switch.2004"]
        assert wait_for(lambda: sorted(u.split(":")[1] for u in turn.refused()) == ["2002", "2003"])



def test_coturn_keeps_refreshing_an_allocation_whose_login_has_expired(tmp_path):
    """What the renewal design relies on (docs/browser-phone.md): a call relayed through coturn is not cut
    when the ephemeral login expires during it: coturn 4.6 refreshes an allocation made while the login was
    valid. (Only new allocations need a valid one: hence the page's renewal when idle.)"""
    from aioice import stun
    from aioice.turn import create_turn_endpoint

    from . import coturn
    if not coturn.available():
        pytest.skip("coturn not installed (bin/setup --test installs Debian's coturn)")

    with coturn.Coturn(tmp_path, SECRET) as turn:
        async def run() -> tuple[int, int]:
            login = turn_rest_credential(SECRET, "2001", time.time(), 2)
            transport, _ = await create_turn_endpoint(asyncio.DatagramProtocol, ("127.0.0.1", turn.port), *login)
            client = transport._TurnTransport__inner_protocol       # type: ignore[attr-defined]
            await asyncio.sleep(max(0.0, int(login[0].split(":")[0]) + 1.1 - time.time()))   # the login expires
            refresh = stun.Message(message_method=stun.Method.REFRESH, message_class=stun.Class.REQUEST)
            refresh.attributes["LIFETIME"] = 600
            response, _ = await client.request_with_retry(refresh)
            again = await relay_after(login)
            transport.close()
            return response.attributes["LIFETIME"], again

        async def relay_after(login: tuple[str, str]) -> int:
            try:
                transport, _ = await create_turn_endpoint(asyncio.DatagramProtocol, ("127.0.0.1", turn.port), *login)
            except Exception:
                return 0
            transport.close()
            return 1

        lifetime, new_allocation = asyncio.run(asyncio.wait_for(run(), 30))
        assert lifetime == 600                 # refreshed, though the login expired
        assert new_allocation == 0             # but a new allocation with it is refused
