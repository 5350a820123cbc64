"""SRTP with SDES keying (RFC 3711, RFC 4568) for phone legs: the ``a=crypto`` attribute and one leg's contexts.

The cipher work is libsrtp's, through ``pylibsrtp`` (the binding aiortc uses, shipping libsrtp in its
wheel): AES-CM, HMAC-SHA1, the key derivation, the rollover counter and the replay window are what every
SRTP phone interoperates with, in C, about 2 µs a packet here; hand-written Python would be slower, and a
new implementation of a security protocol is a liability. This module only parses and writes the SDP
attribute and holds one leg's two sessions (what we send, keyed by our key; what the phone sends, keyed by
the phone's).

Policies (per extension, ``[[extensions]] srtp``): ``off`` (plain RTP; an offer of RTP/SAVP only is
refused), ``optional`` (SRTP when the phone offers or accepts it: our offers are RTP/AVP with crypto
attributes, which phones without SRTP ignore), ``required`` (our offers are RTP/SAVP; an offer or answer
without a usable crypto attribute is refused: 488).
"""
from __future__ import annotations

import base64
import os
import re
from dataclasses import dataclass

POLICIES = ("off", "optional", "required")
KEY_LEN = 30                      # AES-128 master key (16) + master salt (14)
SUITES = ("AES_CM_128_HMAC_SHA1_80", "AES_CM_128_HMAC_SHA1_32")   # our order of preference
_CRYPTO = re.compile(r"(\d{1,9})\s+(\S+)\s+inline:([A-Za-z0-9+/=]+)((?:\|[^\s|]*)*)(?:\s+.*)?$")


class SrtpError(ValueError):
    """A packet that fails authentication, or a replay: dropped."""


@dataclass(frozen=True)
class Crypto:
    """One ``a=crypto`` attribute: ``tag suite inline:key||salt[|lifetime][|MKI:length]``."""
    tag: int
    suite: str
    key: bytes                    # master key || master salt (30 bytes)

    def attribute(self) -> str:
        return f"crypto:{self.tag} {self.suite} inline:{base64.b64encode(self.key).decode()}"


def parse_crypto(value: str) -> Crypto | None:
    """The attribute's value after ``crypto:`` (as kept in ``MediaDescription.other``, with the
    ``crypto:`` prefix or without); None for a suite we do not do, an MKI (not supported), a bad key,
    or session parameters (e.g. UNENCRYPTED_SRTP) we will not honour."""
    if value.startswith("crypto:"):
        value = value[7:]
    m = _CRYPTO.match(value.strip())
    if not m or m[2] not in SUITES:
        return None
    if any(":" in p for p in m[4].split("|")[1:]):     # |MKI:length
        return None
    if value.strip()[m.end(4):].strip():                # session parameters: none accepted
        return None
    try:
        key = base64.b64decode(m[3], validate=True)
    except ValueError:
        return None
    if len(key) != KEY_LEN:
        return None
    return Crypto(int(m[1]), m[2], key)


def crypto_lines(other: list[str]) -> list[Crypto]:
    """The usable ``a=crypto`` attributes of a media description, in the offerer's order."""
    out = []
    for v in other:
        if v.startswith("crypto:"):
            c = parse_crypto(v)
            if c is not None:
                out.append(c)
    return out


def new_key() -> bytes:
    return os.urandom(KEY_LEN)


@dataclass(frozen=True)
class Keys:
    """What offer/answer agreed for a leg: the suite, our master key (we send with it), the phone's."""
    suite: str
    local: bytes
    remote: bytes


class SrtpContext:
    """One leg's SRTP: ``protect`` what we send, ``unprotect`` what the phone sends (RTP and RTCP)."""

    def __init__(self, keys: Keys):
        from pylibsrtp import Policy, Session

        profile = (Policy.SRTP_PROFILE_AES128_CM_SHA1_80 if keys.suite == "AES_CM_128_HMAC_SHA1_80"
                   else Policy.SRTP_PROFILE_AES128_CM_SHA1_32)
        self.keys = keys
        self._tx = Session(Policy(key=keys.local, ssrc_type=Policy.SSRC_ANY_OUTBOUND, srtp_profile=profile))
        self._rx = Session(Policy(key=keys.remote, ssrc_type=Policy.SSRC_ANY_INBOUND, srtp_profile=profile))
        self.rx_errors = 0

    def protect(self, rtp: bytes) -> bytes:
        return self._tx.protect(rtp)

    def protect_rtcp(self, rtcp: bytes) -> bytes:
        return self._tx.protect_rtcp(rtcp)

    def unprotect(self, srtp: bytes) -> bytes | None:
        """The plain RTP packet, or None (not authentic, a replay, garbage): counted in ``rx_errors``."""
        try:
            return self._rx.unprotect(srtp)
        except Exception:  # pylibsrtp.Error and ValueError for short input
            self.rx_errors += 1
            return None

    def unprotect_rtcp(self, srtcp: bytes) -> bytes | None:
        try:
            return self._rx.unprotect_rtcp(srtcp)
        except Exception:  # as unprotect
            self.rx_errors += 1
            return None
