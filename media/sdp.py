"""SDP (RFC 4566) parsing/serialising and the offer/answer model (RFC 3264) for one audio stream.

The switch anchors media: whatever a phone offers, the answer names the switch's own address and
port, so both legs of a call send RTP to the switch. Only what a G.711 switch needs is modelled:
PCMU/PCMA, telephone-event (RFC 4733), ptime, the direction attributes used for hold, and SDES keys
for SRTP (``a=crypto``, RFC 4568; ``media.srtp``). Other media lines (video, T.38…) are answered with
port 0, which RFC 3264 defines as "rejected".
"""
from __future__ import annotations

import random
from dataclasses import dataclass, field

from .g711 import ALAW, CODEC_BY_NAME, CODEC_NAMES, STATIC_PT, ULAW
from .srtp import SUITES, Crypto, Keys, crypto_lines, new_key

DIRECTIONS = ("sendrecv", "sendonly", "recvonly", "inactive")
_REVERSE = {"sendrecv": "sendrecv", "sendonly": "recvonly", "recvonly": "sendonly", "inactive": "inactive"}
_STATIC_NAMES = {0: ("PCMU", 8000, 1), 8: ("PCMA", 8000, 1)}


class SdpError(ValueError):
    """Unparseable SDP: the controller answers 400."""


class NegotiationError(ValueError):
    """No acceptable audio stream (no common codec…): the controller answers 488 Not Acceptable Here."""


@dataclass
class MediaDescription:
    media: str                       # "audio", "video"…
    port: int
    proto: str                       # "RTP/AVP"
    fmts: list[str]
    connection: str | None = None    # media-level c= address
    rtpmap: dict[int, tuple[str, int, int]] = field(default_factory=dict)   # pt -> (name, rate, channels)
    fmtp: dict[int, str] = field(default_factory=dict)
    direction: str | None = None     # None when absent (then the session-level one, else sendrecv)
    ptime: int | None = None
    rtcp_port: int | None = None
    other: list[str] = field(default_factory=list)   # other a= lines, kept verbatim

    def codec_of(self, pt: int) -> tuple[str, int, int] | None:
        if pt in self.rtpmap:
            return self.rtpmap[pt]
        return _STATIC_NAMES.get(pt)


@dataclass
class SessionDescription:
    origin_user: str = "-"
    session_id: int = 0
    session_version: int = 0
    origin_addr: str = "0.0.0.0"
    session_name: str = "-"
    connection: str | None = None
    direction: str | None = None     # session-level direction attribute
    media: list[MediaDescription] = field(default_factory=list)
    other: list[str] = field(default_factory=list)

    def audio(self) -> MediaDescription | None:
        for m in self.media:
            if m.media == "audio":
                return m
        return None


def parse(text: str | bytes) -> SessionDescription:
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    sd = SessionDescription()
    cur: MediaDescription | None = None
    seen_v = False
    for raw in text.replace("\r\n", "\n").split("\n"):
        line = raw.strip()
        if not line:
            continue
        if len(line) < 2 or line[1] != "=":
            raise SdpError(f"bad SDP line {line!r}")
        kind, value = line[0], line[2:]
        try:
            if kind == "v":
                seen_v = True
            elif kind == "o":
                p = value.split()
                sd.origin_user, sd.session_id, sd.session_version, sd.origin_addr = p[0], int(p[1]), int(p[2]), p[5]
            elif kind == "s":
                sd.session_name = value
            elif kind == "c":
                p = value.split()
                addr = p[2].split("/")[0]
                if cur is None:
                    sd.connection = addr
                else:
                    cur.connection = addr
            elif kind == "m":
                p = value.split()
                cur = MediaDescription(p[0], int(p[1].split("/")[0]), p[2], p[3:])
                sd.media.append(cur)
            elif kind == "a":
                name, _, arg = value.partition(":")
                if name in DIRECTIONS:
                    if cur is None:
                        sd.direction = name
                    else:
                        cur.direction = name
                elif cur is None:
                    sd.other.append(value)
                elif name == "rtpmap":
                    pt, _, enc = arg.partition(" ")
                    parts = enc.strip().split("/")
                    cur.rtpmap[int(pt)] = (parts[0], int(parts[1]) if len(parts) > 1 else 8000,
                                           int(parts[2]) if len(parts) > 2 else 1)
                elif name == "fmtp":
                    pt, _, params = arg.partition(" ")
                    cur.fmtp[int(pt)] = params.strip()
                elif name == "ptime":
                    cur.ptime = int(float(arg))
                elif name == "rtcp":
                    cur.rtcp_port = int(arg.split()[0])
                else:
                    cur.other.append(value)
        except (IndexError, ValueError) as e:
            raise SdpError(f"bad SDP line {line!r}: {e}") from None
    if not seen_v:
        raise SdpError("no v= line")
    return sd


def serialise(sd: SessionDescription) -> str:
    out = ["v=0",
           f"o={sd.origin_user} {sd.session_id} {sd.session_version} IN IP4 {sd.origin_addr}",
           f"s={sd.session_name}"]
    if sd.connection:
        out.append(f"c=IN IP4 {sd.connection}")
    out.append("t=0 0")
    if sd.direction:
        out.append(f"a={sd.direction}")
    out += [f"a={a}" for a in sd.other]
    for m in sd.media:
        out.append(f"m={m.media} {m.port} {m.proto} {' '.join(m.fmts)}")
        if m.connection:
            out.append(f"c=IN IP4 {m.connection}")
        if m.port == 0:
            continue
        for fmt in m.fmts:
            pt = int(fmt) if fmt.isdigit() else None
            if pt is not None and pt in m.rtpmap:
                name, rate, ch = m.rtpmap[pt]
                out.append(f"a=rtpmap:{pt} {name}/{rate}" + (f"/{ch}" if ch != 1 else ""))
            if pt is not None and pt in m.fmtp:
                out.append(f"a=fmtp:{pt} {m.fmtp[pt]}")
        if m.ptime:
            out.append(f"a=ptime:{m.ptime}")
        out += [f"a={a}" for a in m.other]
        if m.direction:
            out.append(f"a={m.direction}")
    return "\r\n".join(out) + "\r\n"


@dataclass(frozen=True)
class StreamParams:
    """What was agreed for one leg's audio stream, from the switch's point of view."""
    remote_addr: str | None          # where the phone wants RTP (None/0.0.0.0: nowhere, old-style hold)
    remote_port: int
    codec: int                       # g711.ULAW / g711.ALAW
    pt: int                          # payload type to send and expect for the codec
    te_pt: int | None                # telephone-event payload type, None when not negotiated
    ptime: int                       # ms of audio per packet the phone wants to receive
    remote_direction: str            # the phone's direction attribute
    local_direction: str             # ours (the answer's, or our offer's)
    keys: Keys | None = None         # SRTP agreed (suite and both master keys), None: plain RTP

    @property
    def send(self) -> bool:
        """May the switch send RTP to the phone?"""
        return (self.remote_direction in ("sendrecv", "recvonly") and self.local_direction in ("sendrecv", "sendonly")
                and bool(self.remote_addr) and self.remote_addr != "0.0.0.0" and self.remote_port > 0)

    @property
    def receive(self) -> bool:
        return self.remote_direction in ("sendrecv", "sendonly") and self.local_direction in ("sendrecv", "recvonly")

    @property
    def on_hold(self) -> bool:
        """The phone has put the call on hold (RFC 3264 §8.4, and the RFC 2543 c=0.0.0.0 form)."""
        return self.remote_direction in ("sendonly", "inactive") or self.remote_addr == "0.0.0.0"


_PROTOS = ("RTP/AVP", "RTP/AVPF", "RTP/SAVP", "RTP/SAVPF")


def _direction(sd: SessionDescription, m: MediaDescription) -> str:
    return m.direction or sd.direction or "sendrecv"


def _codecs_in(m: MediaDescription) -> list[tuple[int, int]]:
    """(law, pt) for each G.711 format in the m= line, in the line's order of preference."""
    out = []
    for fmt in m.fmts:
        if not fmt.isdigit():
            continue
        pt = int(fmt)
        info = m.codec_of(pt)
        if info and info[0].upper() in CODEC_BY_NAME and info[1] == 8000 and info[2] == 1:
            out.append((CODEC_BY_NAME[info[0].upper()], pt))
    return out


def _te_pt(m: MediaDescription) -> int | None:
    for fmt in m.fmts:
        if fmt.isdigit():
            info = m.codec_of(int(fmt))
            if info and info[0].lower() == "telephone-event" and info[1] == 8000:
                return int(fmt)
    return None


@dataclass
class LocalSdp:
    """The switch's side of one leg's SDP: keeps o= identity and bumps the version on every change."""
    address: str
    port: int
    codecs: tuple[int, ...] = (ULAW, ALAW)          # what we accept, our preference order in offers
    te_pt: int = 101
    ptime: int = 20
    session_id: int = field(default_factory=lambda: random.randrange(1, 2**31))
    version: int = field(default_factory=lambda: random.randrange(1, 2**20))
    last_body: str | None = None
    srtp: str = "off"                               # "off" | "optional" | "required" (media.srtp)
    suites: tuple[str, ...] = SUITES                # what we offer and accept, in our order
    _keys: dict[str, bytes] = field(default_factory=dict)   # our master key per suite, made once per leg

    def _key(self, suite: str) -> bytes:
        key = self._keys.get(suite)
        if key is None:
            key = self._keys[suite] = new_key()
        return key

    def _offered_cryptos(self) -> list[Crypto]:
        return [Crypto(i, suite, self._key(suite)) for i, suite in enumerate(self.suites, 1)]

    def _stamp(self, sd: SessionDescription) -> str:
        sd.session_id = self.session_id
        sd.session_version = self.version
        body = serialise(sd)
        if self.last_body is not None and body != self.last_body:
            self.version += 1                       # RFC 3264 §8: a changed SDP gets a higher version
            sd.session_version = self.version
            body = serialise(sd)
        self.last_body = body
        return body

    def _base(self) -> SessionDescription:
        return SessionDescription(origin_user="softswitch", origin_addr=self.address, session_name="softswitch",
                                  connection=self.address)

    def offer(self, direction: str = "sendrecv", prefer: int | None = None,
              codecs: tuple[int, ...] | None = None) -> str:
        """Our offer (new call to a phone, or our re-INVITE); ``prefer`` puts one codec first to avoid transcoding."""
        order = list(codecs or self.codecs)
        if prefer in order:
            order.remove(prefer)
            order.insert(0, prefer)
        proto = "RTP/SAVP" if self.srtp == "required" else "RTP/AVP"
        m = MediaDescription("audio", self.port, proto, [str(STATIC_PT[c]) for c in order] + [str(self.te_pt)])
        if self.srtp != "off":                      # optional: RTP/AVP with crypto, ignored by phones without SRTP
            m.other += [c.attribute() for c in self._offered_cryptos()]
        for c in order:
            m.rtpmap[STATIC_PT[c]] = (CODEC_NAMES[c], 8000, 1)
        m.rtpmap[self.te_pt] = ("telephone-event", 8000, 1)
        m.fmtp[self.te_pt] = "0-16"
        m.ptime = self.ptime
        m.direction = direction
        sd = self._base()
        sd.media.append(m)
        return self._stamp(sd)

    def answer(self, offer: SessionDescription, hold: bool = False) -> tuple[str, StreamParams]:
        """Answer a phone's offer; raise NegotiationError when no audio stream can be accepted.

        ``hold`` answers as if we were holding too (direction no more than sendonly).
        """
        sd = self._base()
        chosen: StreamParams | None = None
        refusal = "no common audio codec"
        for m in offer.media:
            proto = m.proto.upper()
            if chosen is not None or m.media != "audio" or m.port == 0 or proto not in _PROTOS:
                sd.media.append(MediaDescription(m.media, 0, m.proto, m.fmts[:1] or ["0"]))   # rejected stream
                continue
            ours = [(law, pt) for law, pt in _codecs_in(m) if law in self.codecs]
            crypto = self._pick_crypto(m, proto)
            if not ours or crypto is False:
                if ours:
                    refusal = ("SRTP required, the offer has no usable a=crypto" if self.srtp == "required"
                               else "RTP/SAVP offered but SRTP is off for this phone" if self.srtp == "off"
                               else "RTP/SAVP offered without a usable a=crypto")
                sd.media.append(MediaDescription(m.media, 0, m.proto, m.fmts[:1] or ["0"]))
                continue
            law, pt = ours[0]                           # the offerer's preference among what we support
            te = _te_pt(m)
            rdir = _direction(offer, m)
            ldir = _REVERSE[rdir]
            if hold:
                ldir = {"sendrecv": "sendonly", "recvonly": "inactive"}.get(ldir, ldir)
            am = MediaDescription("audio", self.port, m.proto, [str(pt)] + ([str(te)] if te is not None else []))
            am.rtpmap[pt] = (CODEC_NAMES[law], 8000, 1)
            if te is not None:
                am.rtpmap[te] = ("telephone-event", 8000, 1)
                am.fmtp[te] = "0-16"
            am.ptime = self.ptime
            keys = None
            if isinstance(crypto, Crypto):
                ours_c = Crypto(crypto.tag, crypto.suite, self._key(crypto.suite))
                am.other.append(ours_c.attribute())
                keys = Keys(crypto.suite, ours_c.key, crypto.key)
            am.direction = ldir
            sd.media.append(am)
            chosen = StreamParams(m.connection or offer.connection, m.port, law, pt, te, m.ptime or 20, rdir, ldir,
                                  keys)
        if chosen is None:
            raise NegotiationError(refusal)
        return self._stamp(sd), chosen

    def _pick_crypto(self, m: MediaDescription, proto: str) -> Crypto | None | bool:
        """The offered crypto attribute we take (our suite order), None for plain RTP, False: refuse."""
        secure = proto in ("RTP/SAVP", "RTP/SAVPF")
        if self.srtp == "off":
            return False if secure else None
        offered = [c for c in crypto_lines(m.other) if c.suite in self.suites]
        if offered:
            return min(offered, key=lambda c: self.suites.index(c.suite))
        return False if secure or self.srtp == "required" else None

    def accept_answer(self, answer: SessionDescription, offered_direction: str = "sendrecv") -> StreamParams:
        """Read the phone's answer to our offer."""
        m = answer.audio()
        if m is None or m.port == 0:
            raise NegotiationError("audio stream rejected")
        ours = [(law, pt) for law, pt in _codecs_in(m) if law in self.codecs]
        if not ours:
            raise NegotiationError("answer names no codec we offered")
        law, pt = ours[0]
        keys = None
        if self.srtp != "off":
            offered = {c.tag: c for c in self._offered_cryptos()}
            for c in crypto_lines(m.other):
                mine = offered.get(c.tag)
                if mine is not None and mine.suite == c.suite:
                    keys = Keys(c.suite, mine.key, c.key)
                    break
            if keys is None and self.srtp == "required":
                raise NegotiationError("SRTP required, the answer has no a=crypto matching our offer")
        return StreamParams(m.connection or answer.connection, m.port, law, pt, _te_pt(m), m.ptime or 20,
                            _direction(answer, m), offered_direction, keys)
