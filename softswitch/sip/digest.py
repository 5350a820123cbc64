"""HTTP digest authentication for SIP (RFC 3261 §22, RFC 2617, RFC 7616, RFC 8760).

Server side: ``DigestAuthenticator`` issues challenges and checks ``Authorization`` /
``Proxy-Authorization`` values. Nonces come from ``NonceManager``, which signs them with an HMAC so
the server needs no table of issued nonces (a flood of REGISTERs costs no memory) yet can still tell
an expired nonce (answer ``stale=true`` so the phone retries silently) from a forged one.

Client side: ``authorization_header`` answers a challenge; used by tests and by the B2BUA when it
registers or places calls towards a provider.

Everything here is sans-IO: the current time is passed in as ``now``.
"""
from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import math
import re
import secrets
import struct
from collections import OrderedDict
from dataclasses import dataclass
from typing import Callable

__all__ = [
    "ALGORITHMS",
    "AuthResult",
    "Credentials",
    "DigestAuthenticator",
    "NonceManager",
    "authorization_header",
    "compute_ha1",
    "compute_response",
    "parse_auth_params",
    "same_request_uri",
    "uri_host",
]

# Order of the challenges we offer: RFC 8760 §2.4 wants the preferred algorithm first, one
# WWW-Authenticate header per algorithm; old phones that only know MD5 skip the SHA-256 one.
ALGORITHMS = ("SHA-256", "MD5")

_HASHES: dict[str, Callable[[bytes], "hashlib._Hash"]] = {
    "MD5": hashlib.md5,
    "SHA-256": hashlib.sha256,
}

# RFC 3261 §25.1 token characters (a superset of the HTTP ones).
_TOKEN_CHARS = frozenset(
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-.!%*_+`'~"
)
_LWS = " \t\r\n"

# Fast path for the well-formed headers phones send: one regex pass over the whole value. Anything it
# does not match whole (odd spacing aside) goes to the exact scanner below, which names the defect.
_TOKEN_RE = r"[A-Za-z0-9\-.!%*_+`'~]+"
_PARAM_RE = rf'({_TOKEN_RE})[ \t\r\n]*=[ \t\r\n]*(?:"((?:[^"\\]|\\.)*)"|([^,"\s]+))'
_AUTH_FAST = re.compile(rf"[ \t\r\n]*({_TOKEN_RE})[ \t\r\n]+({_PARAM_RE}(?:[ \t\r\n]*,[ \t\r\n]*{_PARAM_RE})*)[ \t\r\n]*",
                        re.S)
_AUTH_PARAM = re.compile(_PARAM_RE, re.S)
_UNESCAPE = re.compile(r"\\(.)", re.S)


# --------------------------------------------------------------------------------------------------
# Header parsing
# --------------------------------------------------------------------------------------------------


def _skip_lws(s: str, i: int) -> int:
    while i < len(s) and s[i] in _LWS:
        i += 1
    return i


def parse_auth_params(value: str) -> tuple[str, dict[str, str]]:
    """Parse a WWW-Authenticate/Authorization/Proxy-* header value: returns (scheme, params) with param
    names lower-cased, quoted-string values unquoted (backslash escapes resolved).

    Raises ValueError on malformed input (unterminated quote, missing '=', empty, duplicate parameter:
    a repeated ``realm`` or ``response`` is ambiguous, so we refuse to guess). LWS around '=' and ','
    and empty list elements (``a=b,,c=d``) are tolerated. The scheme is returned as written; callers
    compare it case-insensitively.
    """
    m = _AUTH_FAST.fullmatch(value)
    if m is not None:
        fast: dict[str, str] = {}
        for pm in _AUTH_PARAM.finditer(m.group(2)):
            name = pm.group(1).lower()
            if name in fast:
                raise ValueError(f"duplicate parameter {name!r}")
            quoted = pm.group(2)
            if quoted is None:
                fast[name] = pm.group(3)
            else:
                fast[name] = _UNESCAPE.sub(r"\1", quoted) if "\\" in quoted else quoted
        return m.group(1), fast
    return _parse_auth_params_exact(value)


def _parse_auth_params_exact(value: str) -> tuple[str, dict[str, str]]:
    s = value
    i = _skip_lws(s, 0)
    start = i
    while i < len(s) and s[i] in _TOKEN_CHARS:
        i += 1
    scheme = s[start:i]
    if not scheme:
        raise ValueError("missing authentication scheme")
    if i < len(s) and s[i] not in _LWS:
        raise ValueError(f"bad character {s[i]!r} in authentication scheme")
    params: dict[str, str] = {}
    n = len(s)
    i = _skip_lws(s, i)
    while i < n:
        if s[i] == ",":  # empty list element
            i = _skip_lws(s, i + 1)
            continue
        start = i
        while i < n and s[i] in _TOKEN_CHARS:
            i += 1
        name = s[start:i].lower()
        if not name:
            raise ValueError(f"expected a parameter name at offset {i}")
        i = _skip_lws(s, i)
        if i >= n or s[i] != "=":
            raise ValueError(f"missing '=' after parameter {name!r}")
        i = _skip_lws(s, i + 1)
        if i < n and s[i] == '"':
            i += 1
            out: list[str] = []
            while True:
                if i >= n:
                    raise ValueError(f"unterminated quoted string for parameter {name!r}")
                c = s[i]
                if c == "\\":
                    if i + 1 >= n:
                        raise ValueError(f"unterminated quoted string for parameter {name!r}")
                    out.append(s[i + 1])
                    i += 2
                elif c == '"':
                    i += 1
                    break
                else:
                    out.append(c)
                    i += 1
            val = "".join(out)
        else:
            # Unquoted: a token in the grammar, but some clients send e.g. uri=sip:x@y bare, so accept
            # anything up to the next separator.
            start = i
            while i < n and s[i] != "," and s[i] not in _LWS and s[i] != '"':
                i += 1
            val = s[start:i]
            if not val:
                raise ValueError(f"missing value for parameter {name!r}")
        if name in params:
            raise ValueError(f"duplicate parameter {name!r}")
        params[name] = val
        i = _skip_lws(s, i)
        if i < n:
            if s[i] != ",":
                raise ValueError(f"expected ',' at offset {i}")
            i = _skip_lws(s, i + 1)
    return scheme, params


def _quote(value: str) -> str:
    """Render a quoted-string, escaping what RFC 3261 §25.1 requires."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _canonical_algorithm(algorithm: str) -> str:
    """Map an algorithm name to our spelling; reject what we do not implement (incl. -sess variants)."""
    alg = algorithm.strip().upper()
    if alg not in _HASHES:
        raise ValueError(f"unsupported digest algorithm {algorithm!r}")
    return alg


@dataclass
class Credentials:
    """A parsed Digest ``Authorization`` / ``Proxy-Authorization`` header."""

    username: str
    realm: str
    nonce: str
    uri: str
    response: str
    algorithm: str = "MD5"
    qop: str | None = None
    nc: str | None = None
    cnonce: str | None = None
    opaque: str | None = None

    @classmethod
    def from_header(cls, value: str) -> "Credentials":
        """Raises ValueError if the scheme is not Digest or a required parameter is missing."""
        scheme, p = parse_auth_params(value)
        return cls.from_params(scheme, p)

    @classmethod
    def from_params(cls, scheme: str, p: dict[str, str]) -> "Credentials":
        if scheme.lower() != "digest":
            raise ValueError(f"not a Digest header (scheme {scheme!r})")
        missing = [k for k in ("username", "realm", "nonce", "uri", "response") if k not in p]
        if missing:
            raise ValueError(f"missing digest parameter(s): {', '.join(missing)}")
        return cls(
            username=p["username"],
            realm=p["realm"],
            nonce=p["nonce"],
            uri=p["uri"],
            response=p["response"],
            algorithm=p.get("algorithm", "MD5"),
            qop=p.get("qop"),
            nc=p.get("nc"),
            cnonce=p.get("cnonce"),
            opaque=p.get("opaque"),
        )


# --------------------------------------------------------------------------------------------------
# Hash computations (RFC 2617 §3.2.2, RFC 7616 §3.4)
# --------------------------------------------------------------------------------------------------


def _h(algorithm: str, data: str) -> str:
    return _HASHES[algorithm](data.encode("utf-8")).hexdigest()


def compute_ha1(username: str, realm: str, password: str, algorithm: str) -> str:
    """H(username:realm:password) in lower-case hex. Only MD5 and SHA-256; "-sess" raises ValueError."""
    alg = _canonical_algorithm(algorithm)
    return _h(alg, f"{username}:{realm}:{password}")


def compute_response(
    ha1: str,
    method: str,
    uri: str,
    nonce: str,
    algorithm: str,
    qop: str | None = None,
    nc: str | None = None,
    cnonce: str | None = None,
) -> str:
    """The request-digest. qop=None is the RFC 2069 form; qop="auth" needs nc and cnonce.

    auth-int would need the body hash, which we neither offer nor accept: it raises ValueError.
    """
    alg = _canonical_algorithm(algorithm)
    ha2 = _h(alg, f"{method}:{uri}")
    if qop is None:
        return _h(alg, f"{ha1}:{nonce}:{ha2}")
    if qop.lower() != "auth":
        raise ValueError(f"unsupported qop {qop!r}")
    if nc is None or cnonce is None:
        raise ValueError("qop=auth requires nc and cnonce")
    return _h(alg, f"{ha1}:{nonce}:{nc}:{cnonce}:{qop.lower()}:{ha2}")


# --------------------------------------------------------------------------------------------------
# Nonces
# --------------------------------------------------------------------------------------------------

_TS = struct.Struct(">d")
_RAND_LEN = 9
_MAC_LEN = 16
_RAW_LEN = _TS.size + _RAND_LEN + _MAC_LEN  # 33 bytes -> 44 base64 chars, no padding
_NONCE_RE = re.compile(r"[A-Za-z0-9_-]{44}")
_NC_RE = re.compile(r"[0-9a-fA-F]{8}")
_SPENT = 1 << 32  # above every 8-hex-digit nc: a spent (qop-less) nonce accepts no further answer


class NonceManager:
    """Stateless, HMAC-signed nonces: nonce = base64url(timestamp || random || hmac(secret, timestamp||random||client_ip))
    so the server keeps no per-nonce state (survives 2000 REGISTER/s without a table) yet can tell
    expired (stale) from forged.

    Replay protection with qop=auth: the highest nc seen per nonce is kept in a bounded LRU dict.
    When an entry has to be evicted its issue time raises a floor; an untracked nonce issued at or
    before the floor might have been evicted, so ``check_nc`` refuses it (and ``forgotten`` says why,
    letting the authenticator answer "stale" instead of "failed" so honest phones just re-authenticate).
    """

    def __init__(self, secret: bytes, lifetime: float = 300.0, max_tracked: int = 100_000):
        if not secret:
            raise ValueError("nonce secret must not be empty")
        if max_tracked < 1:
            raise ValueError("max_tracked must be >= 1")
        self._secret = bytes(secret)
        self.lifetime = float(lifetime)
        self.max_tracked = max_tracked
        self._nc: OrderedDict[str, tuple[float, int]] = OrderedDict()  # nonce -> (issued, highest nc)
        self._floor = -math.inf

    def _mac(self, body: bytes, client_ip: str) -> bytes:
        return hmac.new(self._secret, body + b"|" + client_ip.encode("utf-8"), hashlib.sha256).digest()[:_MAC_LEN]

    def opaque(self, realm: str) -> str:
        """A stable opaque value for a realm (we do not rely on it; RFC 2617 only asks it be echoed)."""
        return hmac.new(self._secret, b"opaque|" + realm.encode("utf-8"), hashlib.sha256).hexdigest()[:16]

    def make(self, now: float, client_ip: str) -> str:
        """A fresh nonce bound to the issue time and the client's source address."""
        body = _TS.pack(float(now)) + secrets.token_bytes(_RAND_LEN)
        return base64.urlsafe_b64encode(body + self._mac(body, client_ip)).decode("ascii")

    @staticmethod
    def _decode(nonce: str) -> bytes | None:
        # Strict alphabet and length: a lenient decoder would map many strings to the same bytes,
        # and the nc table is keyed by the string.
        if not _NONCE_RE.fullmatch(nonce):
            return None
        try:
            return base64.urlsafe_b64decode(nonce)
        except (binascii.Error, ValueError):
            return None

    @staticmethod
    def _issued(raw: bytes) -> float:
        issued: float = _TS.unpack_from(raw)[0]
        return issued

    def check(self, nonce: str, now: float, client_ip: str) -> str:
        """Returns "ok", "stale" (genuine but older than lifetime) or "invalid" (forged, tampered, other IP)."""
        raw = self._decode(nonce)
        if raw is None or len(raw) != _RAW_LEN:
            return "invalid"
        body, mac = raw[: -_MAC_LEN], raw[-_MAC_LEN:]
        if not hmac.compare_digest(mac, self._mac(body, client_ip)):
            return "invalid"
        issued = self._issued(raw)
        if not math.isfinite(issued):
            return "invalid"
        if now - issued > self.lifetime:
            return "stale"
        return "ok"

    def forgotten(self, nonce: str) -> bool:
        """True if this nonce is untracked but may have been evicted from the nc table (so nc is unknown)."""
        if nonce in self._nc:
            return False
        raw = self._decode(nonce)
        return raw is None or len(raw) != _RAW_LEN or self._issued(raw) <= self._floor

    def use_once(self, nonce: str) -> bool:
        """Spend a nonce answered without qop (RFC 2069 style): True the first time, False ever after
        (and False for a nonce whose use is unknown because the table forgot it). Such an answer has no
        nonce count, so without this a captured one could be replayed for the nonce's whole lifetime."""
        if nonce in self._nc or self.forgotten(nonce):
            return False
        raw = self._decode(nonce)
        assert raw is not None
        self._remember(nonce, self._issued(raw), _SPENT)
        return True

    def check_nc(self, nonce: str, nc: str) -> bool:
        """nc is 8 hex digits; it must strictly increase per nonce. False on replay/garbage.

        Records the new value on success, so call it only after the response has been verified
        (otherwise anyone who sniffed a nonce could push its nc up and lock the owner out).
        """
        if not isinstance(nc, str) or not _NC_RE.fullmatch(nc):
            return False
        value = int(nc, 16)
        entry = self._nc.get(nonce)
        if entry is None:
            if self.forgotten(nonce):
                return False
            raw = self._decode(nonce)
            assert raw is not None
            issued, highest = self._issued(raw), 0
        else:
            issued, highest = entry
        if value <= highest:
            return False
        self._remember(nonce, issued, value)
        return True

    def _remember(self, nonce: str, issued: float, value: int) -> None:
        self._nc[nonce] = (issued, value)
        self._nc.move_to_end(nonce)
        while len(self._nc) > self.max_tracked:
            _, (old_issued, _) = self._nc.popitem(last=False)
            if old_issued > self._floor:
                self._floor = old_issued


# --------------------------------------------------------------------------------------------------
# Server side
# --------------------------------------------------------------------------------------------------


@dataclass
class AuthResult:
    """Outcome of ``DigestAuthenticator.verify``.

    outcome:

    - "ok": authenticated;
    - "failed": a wrong answer (or another user's credentials) to a valid nonce this server issued to
      this address: the only outcome that counts towards a ban, so a spoofed packet (which cannot
      carry a nonce issued to the address it pretends to come from) bans nobody;
    - "stale": the right password to an expired (or earlier-keyed) nonce: re-challenge with stale=true;
    - "forged": a nonce we did not issue to this address, or credentials too broken to check:
      re-challenge without counting;
    - "replayed": a right answer seen before (nc not increasing, a qop-less nonce used twice):
      re-challenge with stale=true, never accepted, not counted (the owner may have resent it);
    - "refused": the right password but bound to another request (digest ``uri`` is not the
      Request-URI): 403, not counted;
    - "absent": no Digest credentials for our realm: just challenge.

    username is the claimed user when one could be parsed.
    """

    outcome: str
    username: str | None = None


HA1Lookup = Callable[[str, str], "str | None"]


def uri_host(uri: str) -> tuple[str, str] | None:
    """(user, lower-case host without brackets) of a sip:/sips: URI, or None if it is not one."""
    m = _URI_KEY.fullmatch(uri.strip())
    if m is None:
        return None
    return m.group(2) or "", m.group(3).lower().strip("[]")


def same_request_uri(digest_uri: str, request_uri: str) -> bool:
    """Whether a digest ``uri`` names the Request-URI (RFC 3261 §22.4, RFC 7616 §3.4.6 "the server
    MUST assure that the resource designated by the uri parameter is the same as the resource
    specified in the Request-Line"). The same string, or the same scheme, user, host and port with
    parameters ignored (a phone may drop ``;transport=`` from one of them)."""
    a, b = digest_uri.strip(), request_uri.strip()
    if a == b:
        return True

    def key(u: str) -> tuple[str, str, str, str] | None:
        m = _URI_KEY.fullmatch(u)
        if m is None:
            return None
        scheme, user, host, port = m.group(1, 2, 3, 4)
        scheme = scheme.lower()
        default = "5061" if scheme == "sips" else "5060"
        return scheme, user or "", host.lower(), port or default

    ka, kb = key(a), key(b)
    return ka is not None and ka == kb


_URI_KEY = re.compile(r"(sips?):(?:([^@;?]*)@)?(\[[0-9A-Fa-f:.]+\]|[^:;?@]+)(?::([0-9]{1,5}))?(?:[;?].*)?", re.S | re.I)


class DigestAuthenticator:
    """Server side of digest auth for one realm. Lookup of the password is a callable so unknown users and wrong
    passwords take the same path and give the same answer (no extension enumeration, like Asterisk alwaysauthreject).

    ``ha1_for(user, algorithm)``, when given, returns the stored H(user:realm:password) for the algorithm
    instead (extensions configured with ``ha1_md5``/``ha1_sha256``, no plaintext), or None when it has
    none for that algorithm; it takes precedence over ``password_for``."""

    def __init__(
        self,
        realm: str,
        password_for: Callable[[str], str | None],
        nonces: NonceManager,
        algorithms: tuple[str, ...] = ALGORITHMS,
        ha1_for: HA1Lookup | None = None,
    ):
        if not algorithms:
            raise ValueError("at least one algorithm must be offered")
        self.realm = realm
        self.password_for = password_for
        self.ha1_for = ha1_for
        self.nonces = nonces
        self.algorithms = tuple(_canonical_algorithm(a) for a in algorithms)
        self._opaque = nonces.opaque(realm)
        self._dummy_password = secrets.token_hex(16)

    def challenge_headers(self, now: float, client_ip: str, stale: bool = False,
                          algorithms: tuple[str, ...] | None = None) -> list[str]:
        """Values for WWW-Authenticate (or Proxy-Authenticate), one per algorithm, preferred first;
        ``algorithms`` overrides the realm's for one user (a phone known to handle SHA-256)."""
        nonce = self.nonces.make(now, client_ip)
        tail = ", stale=true" if stale else ""
        return [
            f"Digest realm={_quote(self.realm)}, nonce={_quote(nonce)}, opaque={_quote(self._opaque)}, "
            f'algorithm={alg}, qop="auth"{tail}'
            for alg in (algorithms or self.algorithms)
        ]

    def _ha1(self, user: str, alg: str) -> str | None:
        if self.ha1_for is not None:
            ha1 = self.ha1_for(user, alg)
            if ha1 is not None:
                return ha1.lower()
        password = self.password_for(user)
        return compute_ha1(user, self.realm, password, alg) if password is not None else None

    def verify(
        self,
        method: str,
        authorization: str,
        now: float,
        client_ip: str,
        expected_user: str | None = None,
        algorithms: tuple[str, ...] | None = None,
        request_uri: str | None = None,
        uri_allowed: Callable[[str], bool] | None = None,
    ) -> AuthResult:
        """Check one Authorization/Proxy-Authorization value against this realm (and the algorithms
        offered to this user, by default the realm's) and, when given, the Request-URI it must name
        (``uri_allowed`` may accept other digest URIs too: the switch's own address, which SIPp and
        some phones put there).

        Only a wrong answer to a nonce we issued to ``client_ip`` is "failed": anything else cannot
        be told from a forgery by a third party and must not move the address towards a ban. A nonce
        we cannot vouch for (signed with the key of an earlier run, or issued to another address)
        answered with the right password is "stale": the phone proved it knows the password, so it
        gets a fresh challenge. An answer without qop is good for one request only (RFC 2069 has no
        nonce count to stop a replay); with qop the nonce count must increase."""
        if not authorization or not authorization.strip():
            return AuthResult("absent")
        scheme = authorization.strip().split(None, 1)[0]
        if scheme.lower() != "digest":
            return AuthResult("absent")
        try:
            _, params = parse_auth_params(authorization)
        except ValueError:
            return AuthResult("forged")
        if "realm" in params and params["realm"] != self.realm:
            return AuthResult("absent")  # meant for another hop / realm
        try:
            creds = Credentials.from_params(scheme, params)
        except ValueError:
            return AuthResult("forged", params.get("username"))
        user = creds.username
        status = self.nonces.check(creds.nonce, now, client_ip)
        # What a wrong answer is worth: a count towards a ban only to a live nonce of this address.
        wrong = AuthResult("failed" if status == "ok" else "forged", user)

        try:
            alg = _canonical_algorithm(creds.algorithm)
        except ValueError:
            return wrong
        if alg not in (algorithms or self.algorithms):
            return wrong
        qop = creds.qop.lower() if creds.qop is not None else None
        if qop is not None and (qop != "auth" or creds.nc is None or creds.cnonce is None):
            return wrong

        # Unknown users are hashed against a throw-away password so both cases cost the same and end
        # in the same "failed".
        ha1 = self._ha1(user, alg)
        known = ha1 is not None
        if ha1 is None:
            ha1 = compute_ha1(user, self.realm, self._dummy_password, alg)
        expected = compute_response(ha1, method, creds.uri, creds.nonce, alg, qop, creds.nc, creds.cnonce)
        given = creds.response.strip().lower().encode("utf-8", "replace")
        match = hmac.compare_digest(expected.encode("ascii"), given)
        if not (match and known):
            return wrong
        if expected_user is not None and user != expected_user:
            return wrong
        if status in ("stale", "invalid"):
            return AuthResult("stale", user)
        if request_uri is not None and not same_request_uri(creds.uri, request_uri) and not (
                uri_allowed is not None and uri_allowed(creds.uri)):
            return AuthResult("refused", user)
        assert qop is None or creds.nc is not None
        fresh = self.nonces.check_nc(creds.nonce, creds.nc) if qop is not None and creds.nc is not None \
            else self.nonces.use_once(creds.nonce)
        if not fresh:
            # Evicted from the replay table under load: the phone just fetches a new nonce.
            return AuthResult("stale" if self.nonces.forgotten(creds.nonce) else "replayed", user)
        return AuthResult("ok", user)


# --------------------------------------------------------------------------------------------------
# Client side
# --------------------------------------------------------------------------------------------------


def authorization_header(
    challenge_value: str,
    method: str,
    uri: str,
    username: str,
    password: str,
    cnonce: str = "0a4f113b",
    nc: int = 1,
) -> str:
    """Answer one WWW-Authenticate/Proxy-Authenticate value.

    Uses qop=auth when offered, else the RFC 2069 form (no cnonce/nc). Raises ValueError for a
    non-Digest challenge or an algorithm we do not implement.
    """
    scheme, p = parse_auth_params(challenge_value)
    if scheme.lower() != "digest":
        raise ValueError(f"not a Digest challenge (scheme {scheme!r})")
    if "realm" not in p or "nonce" not in p:
        raise ValueError("challenge lacks realm or nonce")
    alg = _canonical_algorithm(p.get("algorithm", "MD5"))
    realm, nonce = p["realm"], p["nonce"]
    offered_qop = {q.strip().lower() for q in p["qop"].split(",")} if "qop" in p else set()
    qop = "auth" if "auth" in offered_qop else None
    if offered_qop and qop is None:
        raise ValueError(f"no supported qop in {p['qop']!r}")
    nc_str = f"{nc:08x}"
    ha1 = compute_ha1(username, realm, password, alg)
    if qop:
        response = compute_response(ha1, method, uri, nonce, alg, qop, nc_str, cnonce)
    else:
        response = compute_response(ha1, method, uri, nonce, alg)
    parts = [
        f"username={_quote(username)}",
        f"realm={_quote(realm)}",
        f"nonce={_quote(nonce)}",
        f"uri={_quote(uri)}",
        f"response={_quote(response)}",
        f"algorithm={alg}",
    ]
    if qop:
        parts += [f"cnonce={_quote(cnonce)}", f"qop={qop}", f"nc={nc_str}"]
    if "opaque" in p:
        parts.append(f"opaque={_quote(p['opaque'])}")
    return "Digest " + ", ".join(parts)
