"""SIP transaction layer (RFC 3261 §17, with the RFC 6026 "Accepted" states), sans-IO.

Nothing here touches a socket, a clock or an event loop. Every entry point takes ``now`` (seconds,
any monotonic origin) and returns a list of *actions*: ``Send`` for the edge to put on the wire and
events for the transaction user (TU). The edge sleeps until ``next_deadline()`` and then calls
``on_timer(now)``. This keeps every retransmission and timeout path testable with a fake clock.

Timers live in one binary heap with lazy cancellation: cancelling a timer only forgets its sequence
number on the transaction; the stale heap entry is skipped when it surfaces (and the heap is
compacted when stale entries dominate). Every timer operation is O(log n), so tens of thousands of
live transactions cost nothing noticeable.

Deviations from the letter of RFC 3261, all deliberate:

* The INVITE server transaction does not send 100 Trying on its own after 200 ms: the TU (B2BUA)
  always answers an INVITE with 100 at once.
* While a 2xx to an INVITE waits for its ACK, the *layer* retransmits it (RFC 3261 §13.3.1.4 puts
  that in the TU core); the ACK stops it and is passed up with ``tx=None``. No ACK within 64*T1
  → ``AckTimeout`` so the TU can send BYE.
* When the TU sends a CANCEL for an INVITE client transaction, that INVITE gets a 64*T1 guard: if
  no final response arrives by then it times out (RFC 3261 §9.1 asks the UAC core for that),
  so a peer that never answers a CANCEL cannot leak a transaction.
"""
from __future__ import annotations

import heapq
import itertools
import secrets
from dataclasses import dataclass, field
from enum import Enum
from typing import Union

from .message import Request, Response

MAGIC_COOKIE = "z9hG4bK"


def new_branch() -> str:
    """A fresh RFC 3261 branch: the magic cookie plus 16 random url-safe characters (96 bits)."""
    return MAGIC_COOKIE + secrets.token_urlsafe(12)


@dataclass(frozen=True)
class Peer:
    """Where a message came from or goes to. Hashable, so it can key connection tables."""

    transport: str  # "udp" | "tcp" | "tls" (lower case)
    host: str
    port: int
    conn_id: int | None = None  # stream connection a message arrived on (responses must go back on it)

    @property
    def reliable(self) -> bool:
        """Stream transports never lose messages: no retransmissions, zero-length wait timers."""
        return self.transport != "udp"


@dataclass(frozen=True)
class Timers:
    """RFC 3261 timer base values in seconds (Table 4). Frozen so a shared default is safe."""

    t1: float = 0.5
    t2: float = 4.0
    t4: float = 5.0
    timer_d: float = 32.0  # INVITE client Completed wait on unreliable transports (">= 32 s")

    @property
    def t64(self) -> float:
        """64*T1: Timers B, F, H, J, L, M and the ACK wait."""
        return 64 * self.t1


class State(str, Enum):
    CALLING = "calling"
    TRYING = "trying"
    PROCEEDING = "proceeding"
    ACCEPTED = "accepted"
    COMPLETED = "completed"
    CONFIRMED = "confirmed"
    TERMINATED = "terminated"


# A transaction's matching key: (branch, sent-by, method) or the RFC 2543 tuple, see _server_key;
# (branch, method) for client transactions.
TxKey = tuple[object, ...]


@dataclass(eq=False)
class Transaction:
    """State shared by both kinds. Identity-hashed; the TU may hang its own attributes on it."""

    request: Request
    peer: Peer
    key: TxKey
    state: State
    created: float
    _timers: dict[str, int] = field(default_factory=dict, repr=False)  # timer name -> live heap seq
    _interval: float = field(default=0.0, repr=False)  # current retransmission interval
    _method: str = field(default="", repr=False)

    def __post_init__(self) -> None:
        self._method = self.request.method

    @property
    def method(self) -> str:
        return self._method

    @property
    def is_invite(self) -> bool:
        return self._method == "INVITE"

    @property
    def branch(self) -> str | None:
        return self.request.top_via.branch

    @property
    def terminated(self) -> bool:
        return self.state is State.TERMINATED


@dataclass(eq=False)
class ServerTransaction(Transaction):
    """Created by an incoming request; responses go back to ``peer`` (the source address/connection)."""

    last_response: Response | None = None
    awaiting_ack: bool = False  # a 2xx was sent (INVITE) and no ACK has matched it yet
    _last_data: bytes | None = field(default=None, repr=False)
    _ack_key: tuple[str, int] | None = field(default=None, repr=False)


@dataclass(eq=False)
class ClientTransaction(Transaction):
    """Created by ``send_request``; matched by (top Via branch, CSeq method)."""

    final_response: Response | None = None
    _data: bytes = field(default=b"", repr=False)
    _ack_data: bytes | None = field(default=None, repr=False)  # our ACK to a non-2xx final


_COMPLETED_PLACEHOLDER: dict[str, Request] = {}


def _placeholder(method: str) -> Request:
    """A shared, header-less stand-in for the request of a completed non-INVITE transaction."""
    req = Request(method=method, uri="sip:completed.invalid")
    if len(_COMPLETED_PLACEHOLDER) < 64:
        _COMPLETED_PLACEHOLDER[method] = req
    return req


# ------------------------------------------------------------------------------------- actions

@dataclass
class Send:
    """Put these bytes on the wire towards ``peer`` (for streams: on ``peer.conn_id`` if still open)."""

    data: bytes
    peer: Peer


@dataclass
class RequestReceived:
    """A new request for the TU. ``tx`` is None for an ACK to a 2xx (the dialog's business)."""

    request: Request
    peer: Peer
    tx: ServerTransaction | None


@dataclass
class ResponseReceived:
    """A response for the TU, including 2xx retransmissions in INVITE Accepted (to re-send ACK)."""

    response: Response
    tx: ClientTransaction


@dataclass
class StrayResponse:
    """A response that matched no transaction: the TU may re-ACK a stray 2xx, otherwise drop it."""

    response: Response
    peer: Peer


@dataclass
class TransactionTimeout:
    """Timer B/F (or a transport error): the TU treats it like a 408."""

    tx: ClientTransaction


@dataclass
class AckTimeout:
    """A 2xx to an INVITE was not ACKed within 64*T1: the TU should BYE the dialog."""

    tx: ServerTransaction


@dataclass
class TransactionTerminated:
    """The transaction is gone from the layer (bookkeeping; the TU may ignore it)."""

    tx: Transaction


Action = Union[Send, RequestReceived, ResponseReceived, StrayResponse, TransactionTimeout, AckTimeout,
               TransactionTerminated]

# Timer names (RFC 3261 §17 letters; "2xx" = 2xx retransmission, "cancel" = the §9.1 guard).
_A, _B, _D, _E, _F, _G, _H, _I, _J, _K, _L, _M = "ABDEFGHIJKLM"
_RTX_2XX = "2xx"
_CANCEL_GUARD = "cancel"

_S = State
_COMPACT_MIN = 1024


def _server_key(req: Request, method: str | None = None) -> TxKey:
    """RFC 3261 §17.2.3 matching key; ACK maps to INVITE, CANCEL stays its own method.

    With the magic cookie: (branch, sent-by, method). Without (RFC 2543 peers): Request-URI, From tag,
    Call-ID, CSeq number, top Via sent-by and method. Raises ValueError on unusable headers."""
    via = req.top_via
    m = method or req.method
    if m == "ACK":
        m = "INVITE"
    sent_by = (via.host.lower(), via.port)
    branch = via.branch
    if branch and branch.startswith(MAGIC_COOKIE):
        return (branch, sent_by, m)
    return ("rfc2543", req.uri, req.from_.tag, req.call_id, req.cseq.number, sent_by, m)


def _ack_key(req: Request) -> tuple[str, int]:
    return (req.call_id, req.cseq.number)


def build_ack(invite: Request, resp: Response) -> Request:
    """The ACK for a non-2xx final response (RFC 3261 §17.1.1.3): same Request-URI, Call-ID, From and
    CSeq number, To from the response (with its tag), only the INVITE's top Via, its Route set."""
    ack = Request(method="ACK", uri=invite.uri)
    h = ack.headers
    vias = invite.headers.get_all("Via")
    if vias:
        h.add("Via", vias[0])
    h.add("Max-Forwards", "70")
    for route in invite.headers.get_lines("Route"):
        h.add("Route", route)
    h.add("From", invite.headers.get("From") or "")
    h.add("To", resp.headers.get("To") or invite.headers.get("To") or "")
    h.add("Call-ID", invite.call_id)
    h.add("CSeq", f"{invite.cseq.number} ACK")
    return ack


class TransactionLayer:
    """All client and server transactions of one switch, with their timers."""

    def __init__(self, timers: Timers = Timers()):
        self.timers = timers
        self._server: dict[TxKey, ServerTransaction] = {}
        self._client: dict[TxKey, ClientTransaction] = {}
        self._acks: dict[tuple[str, int], list[ServerTransaction]] = {}  # 2xx sent, ACK pending
        self._heap: list[tuple[float, int, Transaction, str]] = []
        self._seq = itertools.count()
        self._stale = 0  # heap entries whose timer was cancelled or replaced
        # counters for metrics (plain integers, read at scrape time)
        self.server_transactions = 0     # server transactions created
        self.client_transactions = 0     # client transactions created
        self.retransmissions_sent = 0    # requests and responses re-sent by timers A, E, G and the 2xx timer
        self.retransmissions_received = 0  # a request or final response seen again (absorbed or re-answered)

    def __len__(self) -> int:
        return len(self._server) + len(self._client)

    # --------------------------------------------------------------------------------- timers
    def _arm(self, tx: Transaction, name: str, deadline: float) -> None:
        seq = next(self._seq)
        if tx._timers.get(name) is not None:
            self._stale += 1
        tx._timers[name] = seq
        heapq.heappush(self._heap, (deadline, seq, tx, name))

    def _disarm(self, tx: Transaction, *names: str) -> None:
        for name in names:
            if tx._timers.pop(name, None) is not None:
                self._stale += 1
        self._maybe_compact()

    def _maybe_compact(self) -> None:
        """Drop cancelled entries once they are the majority, so the heap stays O(live timers)."""
        if self._stale > _COMPACT_MIN and self._stale * 2 > len(self._heap):
            # in place: on_timer may be iterating over this very list
            self._heap[:] = [e for e in self._heap if e[2]._timers.get(e[3]) == e[1]]
            heapq.heapify(self._heap)
            self._stale = 0

    def next_deadline(self) -> float | None:
        """Earliest pending timer, for the edge to sleep until (None: nothing pending)."""
        heap = self._heap
        while heap:
            deadline, seq, tx, name = heap[0]
            if tx._timers.get(name) == seq:
                return deadline
            heapq.heappop(heap)
            self._stale -= 1
        return None

    def on_timer(self, now: float) -> list[Action]:
        """Fire every timer due at ``now``; retransmission intervals restart from ``now``."""
        actions: list[Action] = []
        heap = self._heap
        while heap and heap[0][0] <= now:
            _, seq, tx, name = heapq.heappop(heap)
            if tx._timers.get(name) != seq:
                self._stale -= 1
                continue
            del tx._timers[name]
            self._fire(tx, name, now, actions)
        return actions

    def _fire(self, tx: Transaction, name: str, now: float, actions: list[Action]) -> None:
        t = self.timers
        st = tx.state
        if isinstance(tx, ClientTransaction):
            if name == _A and st is _S.CALLING:
                self.retransmissions_sent += 1
                actions.append(Send(tx._data, tx.peer))
                tx._interval *= 2  # Timer A doubles without a cap
                self._arm(tx, _A, now + tx._interval)
            elif name == _E and st in (_S.TRYING, _S.PROCEEDING):
                self.retransmissions_sent += 1
                actions.append(Send(tx._data, tx.peer))
                tx._interval = t.t2 if st is _S.PROCEEDING else min(2 * tx._interval, t.t2)
                self._arm(tx, _E, now + tx._interval)
            elif name in (_B, _F, _CANCEL_GUARD) and st in (_S.CALLING, _S.TRYING, _S.PROCEEDING):
                actions.append(TransactionTimeout(tx))
                self._terminate(tx, actions)
            elif name in (_D, _K, _M):
                self._terminate(tx, actions)
        elif isinstance(tx, ServerTransaction):
            if name == _G and st is _S.COMPLETED and tx._last_data is not None:
                self.retransmissions_sent += 1
                actions.append(Send(tx._last_data, tx.peer))
                tx._interval = min(2 * tx._interval, t.t2)
                self._arm(tx, _G, now + tx._interval)
            elif name == _RTX_2XX and st is _S.ACCEPTED and tx.awaiting_ack and tx._last_data is not None:
                self.retransmissions_sent += 1
                actions.append(Send(tx._last_data, tx.peer))
                tx._interval = min(2 * tx._interval, t.t2)
                self._arm(tx, _RTX_2XX, now + tx._interval)
            elif name == _L:
                if tx.awaiting_ack:
                    actions.append(AckTimeout(tx))
                self._terminate(tx, actions)
            elif name in (_H, _I, _J):
                self._terminate(tx, actions)

    def _terminate(self, tx: Transaction, actions: list[Action]) -> None:
        if tx.state is _S.TERMINATED:
            return
        tx.state = _S.TERMINATED
        if tx._timers:
            self._stale += len(tx._timers)
            tx._timers.clear()
            self._maybe_compact()
        if isinstance(tx, ServerTransaction):
            if self._server.get(tx.key) is tx:
                del self._server[tx.key]
            self._forget_ack(tx)
        elif self._client.get(tx.key) is tx:
            del self._client[tx.key]
        actions.append(TransactionTerminated(tx))

    def _forget_ack(self, tx: ServerTransaction) -> None:
        tx.awaiting_ack = False
        key = tx._ack_key
        if key is None:
            return
        tx._ack_key = None
        waiting = self._acks.get(key)
        if waiting is not None:
            if tx in waiting:
                waiting.remove(tx)
            if not waiting:
                del self._acks[key]

    # ---------------------------------------------------------------------------------- input
    def receive(self, msg: Request | Response, peer: Peer, now: float) -> list[Action]:
        """A parsed message from the network. Never raises on odd input: what fits nowhere is dropped."""
        if isinstance(msg, Request):
            return self._receive_request(msg, peer, now)
        if isinstance(msg, Response):
            return self._receive_response(msg, peer, now)
        return []

    def _receive_request(self, req: Request, peer: Peer, now: float) -> list[Action]:
        try:
            key = _server_key(req)
        except ValueError:
            return []
        if req.method == "ACK":
            return self._receive_ack(req, key, peer, now)
        tx = self._server.get(key)
        if tx is not None:
            # retransmission: answer with the last response, if the state calls for it
            self.retransmissions_received += 1
            if tx._last_data is not None and tx.state in (_S.PROCEEDING, _S.COMPLETED):
                return [Send(tx._last_data, tx.peer)]
            return []  # Trying (nothing to resend yet), Accepted, Confirmed: absorbed
        state = _S.PROCEEDING if req.method == "INVITE" else _S.TRYING
        tx = ServerTransaction(request=req, peer=peer, key=key, state=state, created=now)
        self._server[key] = tx
        self.server_transactions += 1
        return [RequestReceived(req, peer, tx)]

    def _receive_ack(self, ack: Request, key: TxKey, peer: Peer, now: float) -> list[Action]:
        tx = self._server.get(key)
        if tx is not None and tx.state is not _S.ACCEPTED:
            actions: list[Action] = []
            if tx.state is _S.COMPLETED:  # ACK to our non-2xx final: absorbed
                tx.state = _S.CONFIRMED
                self._disarm(tx, _G, _H)
                if tx.peer.reliable:
                    self._terminate(tx, actions)  # Timer I = 0
                else:
                    self._arm(tx, _I, now + self.timers.t4)
            return actions  # Confirmed: absorbed; Proceeding: an ACK before any final, dropped
        # An ACK to a 2xx (normally its own branch; the INVITE's when the peer reuses it or is RFC 2543).
        try:
            waiting = self._acks.get(_ack_key(ack))
        except ValueError:
            waiting = None
        if waiting:
            match = tx if tx is not None and tx in waiting else None
            if match is None:
                from_tag = _from_tag(ack)
                match = next((w for w in waiting if _from_tag(w.request) == from_tag), waiting[0])
            self._forget_ack(match)
            self._disarm(match, _RTX_2XX)  # Timer L keeps absorbing INVITE retransmissions
        return [RequestReceived(ack, peer, None)]

    def _receive_response(self, resp: Response, peer: Peer, now: float) -> list[Action]:
        try:
            branch = resp.top_via.branch
            method = resp.cseq.method
        except ValueError:
            return []
        tx = self._client.get((branch, method)) if branch else None
        if tx is None:
            return [StrayResponse(resp, peer)]
        status = resp.status
        st = tx.state
        actions: list[Action] = []
        if tx.is_invite:
            if st in (_S.CALLING, _S.PROCEEDING):
                if status < 200:
                    if st is _S.CALLING:
                        tx.state = _S.PROCEEDING
                        self._disarm(tx, _A, _B)
                    return [ResponseReceived(resp, tx)]
                self._disarm(tx, _A, _B, _CANCEL_GUARD)
                tx.final_response = resp
                if status < 300:
                    tx.state = _S.ACCEPTED
                    self._arm(tx, _M, now + self.timers.t64)
                    return [ResponseReceived(resp, tx)]
                tx.state = _S.COMPLETED
                try:
                    tx._ack_data = build_ack(tx.request, resp).serialize()
                    actions.append(Send(tx._ack_data, tx.peer))
                except ValueError:
                    pass
                actions.append(ResponseReceived(resp, tx))
                if tx.peer.reliable:
                    self._terminate(tx, actions)  # Timer D = 0
                else:
                    self._arm(tx, _D, now + self.timers.timer_d)
                return actions
            if st is _S.ACCEPTED and 200 <= status < 300:
                return [ResponseReceived(resp, tx)]  # RFC 6026: each 2xx (incl. forks) goes up
            if st is _S.COMPLETED and status >= 300 and tx._ack_data is not None:
                self.retransmissions_received += 1
                return [Send(tx._ack_data, tx.peer)]  # retransmitted final: re-ACK, not passed up
            return []
        if st in (_S.TRYING, _S.PROCEEDING):
            if status < 200:
                tx.state = _S.PROCEEDING
                return [ResponseReceived(resp, tx)]
            tx.state = _S.COMPLETED
            tx.final_response = resp
            self._disarm(tx, _E, _F)
            actions.append(ResponseReceived(resp, tx))
            if tx.peer.reliable:
                self._terminate(tx, actions)  # Timer K = 0
            else:
                self._arm(tx, _K, now + self.timers.t4)
            return actions
        if status >= 200:
            self.retransmissions_received += 1
        return []  # Completed: retransmissions absorbed

    # --------------------------------------------------------------------------------- output
    def send_request(self, req: Request, peer: Peer, now: float) -> tuple[ClientTransaction, list[Action]]:
        """Start a client transaction. ``req`` must carry its top Via with a branch. ACK to a 2xx is not
        a transaction: use ``send_stateless``. Re-sending the branch+method of a live transaction
        returns that transaction and sends nothing (its own timers retransmit)."""
        method = req.method
        if method == "ACK":
            raise ValueError("ACK is not sent through a client transaction; use send_stateless")
        branch = req.top_via.branch
        if not branch:
            raise ValueError("the request's top Via has no branch")
        key = (branch, method)
        existing = self._client.get(key)
        if existing is not None:
            return existing, []
        data = req.serialize()
        invite = method == "INVITE"
        tx = ClientTransaction(request=req, peer=peer, key=key, state=_S.CALLING if invite else _S.TRYING,
                               created=now, _data=data)
        self._client[key] = tx
        self.client_transactions += 1
        t = self.timers
        if not peer.reliable:
            tx._interval = t.t1
            self._arm(tx, _A if invite else _E, now + t.t1)
        self._arm(tx, _B if invite else _F, now + t.t64)
        if method == "CANCEL":
            inv = self._client.get((branch, "INVITE"))
            if inv is not None and inv.state in (_S.CALLING, _S.PROCEEDING) and _CANCEL_GUARD not in inv._timers:
                self._arm(inv, _CANCEL_GUARD, now + t.t64)
        return tx, [Send(data, peer)]

    def send_stateless(self, msg: Request | Response, peer: Peer) -> list[Action]:
        """Send outside any transaction (ACK to a 2xx, stateless replies)."""
        return [Send(msg.serialize(), peer)]

    def respond(self, tx: ServerTransaction, resp: Response, now: float) -> list[Action]:
        """Send a response through ``tx``. Responses a state does not allow (e.g. after the final
        response) are ignored; a further 2xx in Accepted is sent and becomes the one retransmitted."""
        if not isinstance(tx, ServerTransaction) or tx.state is _S.TERMINATED:
            return []
        status = resp.status
        st = tx.state
        t = self.timers
        reliable = tx.peer.reliable
        if tx.is_invite:
            if st is _S.ACCEPTED and 200 <= status < 300:
                tx.last_response, tx._last_data = resp, resp.serialize()
                return [Send(tx._last_data, tx.peer)]
            if st is not _S.PROCEEDING:
                return []
            data = resp.serialize()
            tx.last_response, tx._last_data = resp, data
            actions: list[Action] = [Send(data, tx.peer)]
            if status < 200:
                return actions
            if status < 300:  # RFC 6026 Accepted
                tx.state = _S.ACCEPTED
                tx.awaiting_ack = True
                try:
                    tx._ack_key = _ack_key(tx.request)
                    self._acks.setdefault(tx._ack_key, []).append(tx)
                except ValueError:
                    pass
                if not reliable:
                    tx._interval = t.t1
                    self._arm(tx, _RTX_2XX, now + t.t1)
                self._arm(tx, _L, now + t.t64)
            else:
                tx.state = _S.COMPLETED
                if not reliable:
                    tx._interval = t.t1
                    self._arm(tx, _G, now + t.t1)
                self._arm(tx, _H, now + t.t64)
            return actions
        if st not in (_S.TRYING, _S.PROCEEDING):
            return []
        data = resp.serialize()
        tx.last_response, tx._last_data = resp, data
        actions = [Send(data, tx.peer)]
        if status < 200:
            tx.state = _S.PROCEEDING
            return actions
        tx.state = _S.COMPLETED
        if reliable:
            self._terminate(tx, actions)  # Timer J = 0
        else:
            self._arm(tx, _J, now + t.t64)
            # For its 32 s in Completed the transaction only re-sends ``_last_data``: drop the parsed
            # request and response (about 6 kB; at 2,000 requests/s that is 64,000 transactions).
            tx.last_response = None
            tx.request = _COMPLETED_PLACEHOLDER.get(tx._method) or _placeholder(tx._method)
        return actions

    def respond_statelessly(self, tx: ServerTransaction, resp: Response, now: float) -> list[Action]:
        """Send a final response and forget ``tx`` at once (RFC 3261 §16.11 stateless behaviour), as
        Kamailio and OpenSIPS answer digest challenges: nothing is retransmitted or kept for 32 s,
        a retransmitted request simply gets a fresh answer, and the ACK to a stateless non-2xx
        matches nothing and is dropped."""
        if not isinstance(tx, ServerTransaction) or tx.state is _S.TERMINATED:
            return []
        actions: list[Action] = [Send(resp.serialize(), tx.peer)]
        self._terminate(tx, actions)
        return actions

    def transport_error(self, tx: Transaction, now: float) -> list[Action]:
        """The transport could not deliver for ``tx`` (e.g. TCP connect failed): a client transaction
        still waiting for its final response times out; any transaction is terminated."""
        if tx.state is _S.TERMINATED:
            return []
        actions: list[Action] = []
        if isinstance(tx, ClientTransaction) and tx.state in (_S.CALLING, _S.TRYING, _S.PROCEEDING):
            actions.append(TransactionTimeout(tx))
        self._terminate(tx, actions)
        return actions

    # -------------------------------------------------------------------------------- lookups
    def find_invite_server_tx(self, cancel: Request) -> ServerTransaction | None:
        """The INVITE server transaction a CANCEL refers to (RFC 3261 §9.2), if still alive."""
        try:
            key = _server_key(cancel, "INVITE")
        except ValueError:
            return None
        return self._server.get(key)

    def find_client_tx(self, branch: str, method: str) -> ClientTransaction | None:
        return self._client.get((branch, method))

    def answer_to_retransmission(self, branch: str, sent_by: tuple[str, int | None], method: str) -> bytes | None:
        """What a retransmission of the request with this RFC 3261 branch, top Via sent-by (host lower-cased,
        port or None) and method gets from its server transaction: the last response, when the state calls
        for re-sending it (as ``receive`` would); None when there is no such transaction or nothing to send.
        Lets an edge answer a retransmission without parsing it (``softswitch.overload``)."""
        if not branch.startswith(MAGIC_COOKIE):
            return None
        tx = self._server.get((branch, sent_by, "INVITE" if method == "ACK" else method))
        if tx is None or tx._last_data is None or tx.state not in (_S.PROCEEDING, _S.COMPLETED) or method == "ACK":
            return None
        self.retransmissions_received += 1
        return tx._last_data


def _from_tag(req: Request) -> str | None:
    try:
        return req.from_.tag
    except ValueError:
        return None


__all__ = [
    "AckTimeout", "Action", "ClientTransaction", "MAGIC_COOKIE", "Peer", "RequestReceived", "ResponseReceived",
    "Send", "ServerTransaction", "State", "StrayResponse", "Timers", "Transaction", "TransactionLayer",
    "TransactionTerminated", "TransactionTimeout", "build_ack", "new_branch",
]
