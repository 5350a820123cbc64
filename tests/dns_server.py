"""A tiny authoritative DNS server for tests: a thread answering real DNS packets on 127.0.0.1 (UDP, a
free port), built with dnspython's message API. Records are plain text (``"10 60 5071 a.example."`` for
SRV) and may be changed while it runs (TTL expiry tests); ``queries`` counts what was asked."""
from __future__ import annotations

import socket
import threading
from collections import Counter

import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.rrset


class DnsServer:
    def __init__(self, ttl: int = 60):
        self.ttl = ttl
        self.records: dict[tuple[str, str], list[str]] = {}
        self.ttls: dict[tuple[str, str], int] = {}
        self.queries: Counter[tuple[str, str]] = Counter()
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="test-dns", daemon=True)
        self._lock = threading.Lock()

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def add(self, name: str, rtype: str, *rdata: str, ttl: int | None = None) -> None:
        key = (name.lower().rstrip("."), rtype.upper())
        with self._lock:
            self.records.setdefault(key, []).extend(rdata)
            if ttl is not None:
                self.ttls[key] = ttl

    def set(self, name: str, rtype: str, *rdata: str, ttl: int | None = None) -> None:
        key = (name.lower().rstrip("."), rtype.upper())
        with self._lock:
            self.records[key] = list(rdata)
            if ttl is not None:
                self.ttls[key] = ttl

    def start(self) -> "DnsServer":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(2)
        self.sock.close()

    def __enter__(self) -> "DnsServer":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                data, addr = self.sock.recvfrom(4096)
            except (socket.timeout, OSError):
                continue
            try:
                query = dns.message.from_wire(data)
            except Exception:
                continue
            self.sock.sendto(self._answer(query).to_wire(), addr)

    def _answer(self, query: dns.message.Message) -> dns.message.Message:
        resp = dns.message.make_response(query)
        resp.flags |= dns.flags.AA
        q = query.question[0]
        name = q.name.to_text().rstrip(".").lower()
        rtype = dns.rdatatype.to_text(q.rdtype)
        with self._lock:
            self.queries[(name, rtype)] += 1
            rdata = list(self.records.get((name, rtype), []))
            ttl = self.ttls.get((name, rtype), self.ttl)
            known = any(n == name for n, _ in self.records)
        if rdata:
            rrset = dns.rrset.from_text_list(q.name, ttl, dns.rdataclass.IN, q.rdtype, rdata)
            resp.answer.append(rrset)
        elif not known:
            resp.set_rcode(dns.rcode.NXDOMAIN)
        return resp
