#!/usr/bin/env python3
"""A real SIP phone (pjsua2) in its own process, driven by JSON lines on stdin/stdout.

Run as ``python tests/phones/pjphone.py [--transport udp|tcp] [--log FILE] [--name NAME]``.

Every command is one JSON object per line on stdin and gets exactly one JSON reply line::

    -> {"cmd": "call", "id": 2, "to": "sip:1002@callcenter.local"}
    <- {"id": 2, "ok": true, "call": 0}
    <- {"id": 3, "ok": false, "error": "..."}

Asynchronous things are reported as ``{"event": "<name>", ...}`` lines.  The first line the
process prints is ``{"event": "ready", "port": <local SIP port>, ...}``.

All pjsua2 calls happen on the main thread: the endpoint runs with ``threadCnt = 0`` and
``mainThreadOnly = True`` and the main loop polls ``ep.libHandleEvents(10)``.  A reader thread
only moves stdin lines into a queue.  pjsip's own output never reaches stdout: the protocol is
written to a private duplicate of the original stdout and fd 1 is pointed at stderr.

Commands (fields in [] are optional):

    info                                    -> port, transport, address, pid, account, calls
    account  user [domain] [password] [proxy]             account without registration
    register user password domain registrar [expires=300] [proxy] [auth_user] [retry_s=0] [srtp]
                                            -> reply at once; then event reg_state
                                            proxy defaults to registrar + ";lr" ("" = none);
                                            re-register replaces the one account (modify)
                                            with --transport tcp, registrar/proxy (and direct
                                            call targets) get ";transport=tcp" appended
    unregister                              -> event reg_state (active false)
    call     to [headers={name: value}]     -> {"call": idx}
    answer   call [code=200]
    hangup   call [code]
    hold     call
    unhold   call
    dtmf_info call digits                   DTMF via SIP INFO ({"skipped": ..} if unsupported)
    dtmf     call digits [method=rfc2833|info]
    transfer call to                        blind transfer (REFER)
    auto_answer [code=200] [delay_ms=0] [ring=true]   code 0 disables
    play     call wav [loop=false]          wav file -> call audio
    stop_play call
    record   call wav                       call audio -> wav file
    stop_record call                        -> {"finalised": bool}; wav complete on reply
    quit                                    hang up everything, libDestroy, exit 0

Events:

    ready        port transport address pid name
    reg_state    code reason active expires
    incoming     call from to call_id request
    call_state   call state code reason remote call_id role
                 state is one of CALLING INCOMING EARLY CONNECTING CONFIRMED DISCONNECTED
    media_state  call status (list of: active, local_hold, remote_hold, none, error) active
    dtmf         call digit method
    transfer_request  call to
    transfer_status   call code reason final
    error        where error [traceback]
"""
from __future__ import annotations

import argparse
import json
import os
import queue
import sys
import threading
import time
import traceback

import pjsua2 as pj

# ---------------------------------------------------------------------------------------------
# output: a private duplicate of the original stdout; fd 1 now goes to stderr so that nothing
# printed by pjsip (or a stray print) can corrupt the protocol.
# ---------------------------------------------------------------------------------------------
_OUT_FD = os.dup(1)
os.dup2(2, 1)
sys.stdout = sys.stderr
_out_lock = threading.Lock()


def emit(obj: dict) -> None:
    data = (json.dumps(obj, default=str) + "\n").encode()
    with _out_lock:
        while data:
            n = os.write(_OUT_FD, data)
            data = data[n:]


def event(_event: str, **fields) -> None:
    emit({"event": _event, **fields})


def fmt_exc(exc: BaseException) -> str:
    """pjsua2.Error carries its text in .info()/.reason; plain exceptions use str()."""
    if isinstance(exc, CommandError):
        return str(exc)
    info = getattr(exc, "info", None)
    if callable(info):
        try:
            return str(info())
        except Exception:  # noqa: BLE001
            pass
    reason = getattr(exc, "reason", None)
    if reason:
        return f"{getattr(exc, 'title', '')}: {reason}".strip(": ")
    return f"{type(exc).__name__}: {exc}"


def guarded(fn):
    """Never let an exception escape a pjsua2 callback (a SWIG director would abort)."""

    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except BaseException as exc:  # noqa: BLE001
            try:
                event("error", where=fn.__name__, error=fmt_exc(exc),
                      traceback=traceback.format_exc())
            except BaseException:  # noqa: BLE001
                pass
            return None

    wrapper.__name__ = fn.__name__
    return wrapper


STATE_NAMES = {
    pj.PJSIP_INV_STATE_NULL: "NULL",
    pj.PJSIP_INV_STATE_CALLING: "CALLING",
    pj.PJSIP_INV_STATE_INCOMING: "INCOMING",
    pj.PJSIP_INV_STATE_EARLY: "EARLY",
    pj.PJSIP_INV_STATE_CONNECTING: "CONNECTING",
    pj.PJSIP_INV_STATE_CONFIRMED: "CONFIRMED",
    pj.PJSIP_INV_STATE_DISCONNECTED: "DISCONNECTED",
}

MEDIA_STATUS = {
    pj.PJSUA_CALL_MEDIA_NONE: "none",
    pj.PJSUA_CALL_MEDIA_ACTIVE: "active",
    pj.PJSUA_CALL_MEDIA_LOCAL_HOLD: "local_hold",
    pj.PJSUA_CALL_MEDIA_REMOTE_HOLD: "remote_hold",
    pj.PJSUA_CALL_MEDIA_ERROR: "error",
}


class CommandError(Exception):
    pass


def _wav_finalised(path: str) -> bool:
    """The wav writer leaves the RIFF length at 0 until the file is closed."""
    try:
        with open(path, "rb") as f:
            head = f.read(8)
            size = os.fstat(f.fileno()).st_size
    except OSError:
        return False
    if len(head) < 8 or head[:4] != b"RIFF":
        return False
    return int.from_bytes(head[4:8], "little") == size - 8


# ---------------------------------------------------------------------------------------------
# pjsua2 subclasses
# ---------------------------------------------------------------------------------------------
class PhoneAccount(pj.Account):
    def __init__(self, phone: "Phone"):
        super().__init__()
        self.phone = phone

    @guarded
    def onRegState(self, prm):
        active = False
        try:
            active = bool(self.getInfo().regIsActive)
        except Exception:  # noqa: BLE001
            pass
        self.phone.reg_events += 1
        event("reg_state", code=int(prm.code), reason=str(prm.reason), active=active,
              expires=int(prm.expiration))

    @guarded
    def onIncomingCall(self, prm):
        self.phone.incoming_call(self, prm)


class PhoneCall(pj.Call):
    def __init__(self, phone: "Phone", acc, idx: int, call_id: int = pj.PJSUA_INVALID_ID):
        super().__init__(acc, call_id)
        self.phone = phone
        self.idx = idx
        self.state = "NULL"
        self.sip_call_id = ""
        self.remote = ""
        self.role = "caller" if call_id == pj.PJSUA_INVALID_ID else "callee"

    @guarded
    def onCallState(self, prm):
        code, reason, state = 0, "", None
        try:
            ci = self.getInfo()
            state = STATE_NAMES.get(ci.state, str(ci.state))
            code, reason = int(ci.lastStatusCode), str(ci.lastReason)
            self.sip_call_id = ci.callIdString or self.sip_call_id
            self.remote = ci.remoteUri or self.remote
        except Exception:  # noqa: BLE001  (pjsua2 resets the call id on DISCONNECTED)
            state = "DISCONNECTED"
            try:
                msg = prm.e.body.tsxState.src.rdata.wholeMsg  # best effort for the final code
                first = msg.split("\r\n", 1)[0].split(" ", 2)
                if first[0].startswith("SIP/2.0") and len(first) >= 2:
                    code = int(first[1])
                    reason = first[2] if len(first) > 2 else ""
            except Exception:  # noqa: BLE001
                pass
        self.state = state
        event("call_state", call=self.idx, state=state, code=code, reason=reason,
              remote=self.remote, call_id=self.sip_call_id, role=self.role)
        if state == "DISCONNECTED":
            self.phone.call_ended(self)

    @guarded
    def onCallMediaState(self, prm):
        ci = self.getInfo()
        status = []
        for mi in ci.media:
            if mi.type == pj.PJMEDIA_TYPE_AUDIO:
                status.append(MEDIA_STATUS.get(mi.status, str(mi.status)))
        # Null sound device: connect nothing; play/record are explicit commands.
        event("media_state", call=self.idx, status=status, active="active" in status)

    @guarded
    def onDtmfDigit(self, prm):
        method = {getattr(pj, "PJSUA_DTMF_METHOD_RFC2833", 0): "rfc2833",
                  getattr(pj, "PJSUA_DTMF_METHOD_SIP_INFO", 1): "info"}.get(
            getattr(prm, "method", 0), str(getattr(prm, "method", "")))
        event("dtmf", call=self.idx, digit=str(prm.digit), method=method)

    @guarded
    def onCallTransferRequest(self, prm):
        event("transfer_request", call=self.idx, to=str(prm.dstUri))

    @guarded
    def onCallTransferStatus(self, prm):
        event("transfer_status", call=self.idx, code=int(prm.statusCode),
              reason=str(prm.reason), final=bool(prm.finalNotify))


# ---------------------------------------------------------------------------------------------
# the phone
# ---------------------------------------------------------------------------------------------
class Phone:
    def __init__(self, args):
        self.name = args.name
        self.transport = args.transport
        self.ep = pj.Endpoint()
        self.ep.libCreate()
        cfg = pj.EpConfig()
        cfg.uaConfig.threadCnt = 0
        cfg.uaConfig.mainThreadOnly = True
        cfg.uaConfig.userAgent = f"pjphone-{self.name}"
        cfg.logConfig.consoleLevel = 0
        if args.log:
            cfg.logConfig.filename = args.log
            cfg.logConfig.level = 5
            cfg.logConfig.msgLogging = 1
        else:
            cfg.logConfig.level = 1
            cfg.logConfig.msgLogging = 0
        cfg.medConfig.ecTailLen = 0
        cfg.medConfig.noVad = True
        self.ep.libInit(cfg)
        self.ep.audDevManager().setNullDev()

        tcfg = pj.TransportConfig()
        tcfg.port = 0
        tcfg.boundAddress = "127.0.0.1"
        tcfg.publicAddress = "127.0.0.1"
        ttype = {"tcp": pj.PJSIP_TRANSPORT_TCP, "tls": pj.PJSIP_TRANSPORT_TLS}.get(self.transport,
                                                                                  pj.PJSIP_TRANSPORT_UDP)
        if self.transport == "tls":  # test servers use self-signed certificates
            tcfg.tlsConfig.verifyServer = False
            tcfg.tlsConfig.verifyClient = False
        self.tid = self.ep.transportCreate(ttype, tcfg)
        self.ep.libStart()
        local = self.ep.transportGetInfo(self.tid).localName  # "127.0.0.1:port"
        self.address = str(local)
        self.port = int(self.address.rsplit(":", 1)[1])

        self.acc: PhoneAccount | None = None
        self.reg_events = 0
        self.acc_uri = ""
        self.calls: dict[int, PhoneCall] = {}
        self.next_idx = 0
        self.players: dict[int, pj.AudioMediaPlayer] = {}
        self.recorders: dict[int, tuple[pj.AudioMediaRecorder, str]] = {}
        self.auto_answer: dict | None = None
        self.timers: list[tuple[float, object]] = []  # (due monotonic, callable)
        self.running = True

    # -- helpers --------------------------------------------------------------------------
    def _tp_uri(self, uri: str) -> str:
        """For TCP, pin a sip: URI to TCP unless it already names a transport."""
        if self.transport in ("tcp", "tls") and uri.startswith("sip:") and "transport=" not in uri.lower():
            return uri + f";transport={self.transport}"
        return uri

    def _call(self, msg) -> PhoneCall:
        try:
            return self.calls[int(msg["call"])]
        except (KeyError, TypeError, ValueError):
            raise CommandError(f"unknown call {msg.get('call')!r}") from None

    def _new_idx(self) -> int:
        idx = self.next_idx
        self.next_idx += 1
        return idx

    def schedule(self, delay_s: float, fn) -> None:
        self.timers.append((time.monotonic() + max(0.0, delay_s), fn))

    def run_timers(self) -> None:
        if not self.timers:
            return
        now = time.monotonic()
        due = [t for t in self.timers if t[0] <= now]
        self.timers = [t for t in self.timers if t[0] > now]
        for _, fn in sorted(due, key=lambda t: t[0]):
            guarded(fn)()

    # -- callbacks from pjsua2 objects ------------------------------------------------------
    def incoming_call(self, acc, prm) -> None:
        idx = self._new_idx()
        call = PhoneCall(self, acc, idx, prm.callId)
        self.calls[idx] = call
        ci = call.getInfo()
        call.sip_call_id = ci.callIdString
        call.remote = ci.remoteUri
        request = ""
        try:
            request = prm.rdata.wholeMsg
        except Exception:  # noqa: BLE001
            pass
        event("incoming", call=idx, **{"from": ci.remoteUri}, to=ci.localUri,
              call_id=ci.callIdString, request=request)
        aa = self.auto_answer
        if aa:
            code, delay = aa["code"], aa["delay_ms"] / 1000.0
            if code == 200 and delay > 0 and aa["ring"]:
                self.schedule(0, lambda: self._answer_if_alive(call, 180))
            self.schedule(delay, lambda: self._answer_if_alive(call, code))

    def _answer_if_alive(self, call: PhoneCall, code: int) -> None:
        if call.state == "DISCONNECTED" or not call.isActive():
            return
        self._answer(call, code)

    def call_ended(self, call: PhoneCall) -> None:
        # Keep the Call object (a deleted Call would be a dangling director); media ports of
        # the call are gone, players/recorders stay until stop_* or quit.
        pass

    # -- account --------------------------------------------------------------------------
    def _account(self, msg, registrar: str | None) -> dict:
        user = str(msg["user"])
        domain = msg.get("domain") or self.address
        cfg = pj.AccountConfig()
        cfg.idUri = f"sip:{user}@{domain}"
        cfg.sipConfig.transportId = self.tid
        cfg.natConfig.sipOutboundUse = 0
        cfg.natConfig.contactRewriteUse = 0
        cfg.natConfig.viaRewriteUse = 0
        cfg.natConfig.sdpNatRewriteUse = 0
        cfg.mediaConfig.transportConfig.boundAddress = "127.0.0.1"
        cfg.mediaConfig.transportConfig.publicAddress = "127.0.0.1"
        cfg.mediaConfig.transportConfig.port = 0
        srtp = msg.get("srtp")                         # "optional" | "mandatory": SDES SRTP, over plain SIP too
        if srtp:
            cfg.mediaConfig.srtpUse = {"disabled": pj.PJMEDIA_SRTP_DISABLED, "optional": pj.PJMEDIA_SRTP_OPTIONAL,
                                       "mandatory": pj.PJMEDIA_SRTP_MANDATORY}[str(srtp)]
            cfg.mediaConfig.srtpSecureSignaling = 0
        if msg.get("password") is not None:
            cfg.sipConfig.authCreds.append(
                pj.AuthCredInfo("digest", "*", str(msg.get("auth_user") or user), 0,
                                str(msg["password"])))
        proxy = msg.get("proxy")
        if registrar:
            registrar = self._tp_uri(str(registrar))
            cfg.regConfig.registrarUri = registrar
            cfg.regConfig.timeoutSec = int(msg.get("expires", 300))
            cfg.regConfig.retryIntervalSec = int(msg.get("retry_s", 0))
            cfg.regConfig.registerOnAdd = True
            if proxy is None:
                proxy = registrar + ";lr"
        if proxy:
            cfg.sipConfig.proxies.append(self._tp_uri(str(proxy)))
        if self.acc is None:
            acc = PhoneAccount(self)
            acc.create(cfg, True)
            self.acc = acc
        else:
            self.acc.modify(cfg)
        self.acc_uri = cfg.idUri
        self.proxy = proxy
        return {"uri": cfg.idUri, "proxy": proxy or None}

    # -- calls ----------------------------------------------------------------------------
    def _answer(self, call: PhoneCall, code: int) -> None:
        prm = pj.CallOpParam(True)
        prm.statusCode = code
        if code >= 300:
            call.hangup(prm)
        else:
            call.answer(prm)

    def _audio(self, call: PhoneCall):
        try:
            return call.getAudioMedia(-1)
        except Exception as exc:  # noqa: BLE001
            raise CommandError(f"call {call.idx} has no active audio: {fmt_exc(exc)}") from None

    # -- commands -------------------------------------------------------------------------
    def handle(self, msg: dict) -> dict:
        name = msg.get("cmd")
        fn = getattr(self, f"cmd_{name}", None)
        if fn is None:
            raise CommandError(f"unknown command {name!r}")
        return fn(msg) or {}

    def cmd_info(self, msg):
        return {"port": self.port, "transport": self.transport, "address": self.address,
                "pid": os.getpid(), "name": self.name, "account": self.acc_uri or None,
                "calls": {str(i): c.state for i, c in self.calls.items()}}

    def cmd_account(self, msg):
        return self._account(msg, None)

    def cmd_register(self, msg):
        if not msg.get("registrar"):
            raise CommandError("register needs a registrar (use 'account' for none)")
        return self._account(msg, msg["registrar"])

    def cmd_unregister(self, msg):
        if self.acc is None:
            raise CommandError("no account")
        self.acc.setRegistration(False)

    def cmd_call(self, msg):
        if self.acc is None:
            raise CommandError("no account: send 'account' or 'register' first")
        to = str(msg["to"])
        if not getattr(self, "proxy", None):
            to = self._tp_uri(to)
        idx = self._new_idx()
        call = PhoneCall(self, self.acc, idx)
        prm = pj.CallOpParam(True)
        prm.opt.audioCount = 1
        prm.opt.videoCount = 0
        for hname, hval in (msg.get("headers") or {}).items():
            h = pj.SipHeader()
            h.hName, h.hValue = str(hname), str(hval)
            prm.txOption.headers.append(h)
        self.calls[idx] = call
        try:
            call.makeCall(to, prm)
        except Exception:
            del self.calls[idx]
            raise
        return {"call": idx}

    def cmd_answer(self, msg):
        self._answer(self._call(msg), int(msg.get("code", 200)))

    def cmd_hangup(self, msg):
        call = self._call(msg)
        prm = pj.CallOpParam(True)
        if msg.get("code"):
            prm.statusCode = int(msg["code"])
        call.hangup(prm)

    def cmd_hold(self, msg):
        self._call(msg).setHold(pj.CallOpParam(True))

    def cmd_unhold(self, msg):
        prm = pj.CallOpParam(True)
        prm.opt.flag = pj.PJSUA_CALL_UNHOLD
        self._call(msg).reinvite(prm)

    def cmd_dtmf_info(self, msg):
        return self.cmd_dtmf({**msg, "method": "info"})

    def cmd_dtmf(self, msg):
        call = self._call(msg)
        digits = str(msg["digits"])
        method = msg.get("method", "rfc2833")
        if method == "info":
            if not (hasattr(pj, "CallSendDtmfParam") and hasattr(pj, "PJSUA_DTMF_METHOD_SIP_INFO")):
                return {"skipped": "SIP INFO DTMF not supported by this pjsua2"}
            prm = pj.CallSendDtmfParam()
            prm.method = pj.PJSUA_DTMF_METHOD_SIP_INFO
            prm.digits = digits
            prm.duration = int(msg.get("duration", 160))
            call.sendDtmf(prm)
        else:
            call.dialDtmf(digits)

    def cmd_transfer(self, msg):
        self._call(msg).xfer(str(msg["to"]), pj.CallOpParam(True))

    def cmd_transfer_replaces(self, msg):
        """Attended transfer: connect this call's party with ``other``'s (REFER with Replaces)."""
        other = self._call({"call": msg["other"]})
        self._call(msg).xferReplaces(other, pj.CallOpParam(True))

    def cmd_auto_answer(self, msg):
        code = int(msg.get("code", 200))
        if code <= 0:
            self.auto_answer = None
        else:
            self.auto_answer = {"code": code, "delay_ms": int(msg.get("delay_ms", 0)),
                                "ring": bool(msg.get("ring", True))}
        return {"auto_answer": self.auto_answer}

    def cmd_play(self, msg):
        call = self._call(msg)
        aud = self._audio(call)
        self._stop_play(call.idx)
        player = pj.AudioMediaPlayer()
        opts = 0 if msg.get("loop") else pj.PJMEDIA_FILE_NO_LOOP
        player.createPlayer(str(msg["wav"]), opts)
        player.startTransmit(aud)
        self.players[call.idx] = player

    def _stop_play(self, idx):
        player = self.players.pop(idx, None)
        if player is not None:
            del player  # destructor removes the port from the bridge

    def cmd_stop_play(self, msg):
        self._stop_play(int(msg["call"]))

    def cmd_record(self, msg):
        call = self._call(msg)
        aud = self._audio(call)
        self._stop_record(call.idx)
        rec = pj.AudioMediaRecorder()
        rec.createRecorder(str(msg["wav"]))
        aud.startTransmit(rec)
        self.recorders[call.idx] = (rec, str(msg["wav"]))

    def _stop_record(self, idx, wait_s: float = 2.0) -> bool:
        """Destroy the recorder and wait until the wav file is finalised.

        pjmedia 2.15 removes conference ports asynchronously (on the clock thread), so the
        wav header is only completed shortly after the destructor returns; poll for it so
        that the file is complete when the reply goes out.
        """
        item = self.recorders.pop(idx, None)
        if item is None:
            return False
        rec, path = item
        del rec, item  # destructor removes the port; the wav writer finalises on destroy
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline:
            if _wav_finalised(path):
                return True
            self.ep.libHandleEvents(10)
        return _wav_finalised(path)

    def cmd_stop_record(self, msg):
        return {"finalised": self._stop_record(int(msg["call"]))}

    def cmd_quit(self, msg):
        self.running = False

    # -- shutdown -------------------------------------------------------------------------
    def shutdown(self) -> None:
        try:
            self.ep.hangupAllCalls()
        except Exception:  # noqa: BLE001
            pass
        deadline = time.monotonic() + 1.0
        while time.monotonic() < deadline:
            self.ep.libHandleEvents(10)
            if all(c.state in ("DISCONNECTED", "NULL") for c in self.calls.values()):
                break
        # Unregister ourselves (bounded) so that libDestroy need not wait for it: with
        # PJSUA_DESTROY_NO_RX_MSG it skips its fixed ~1 s grace sleep. A running switch answers within
        # milliseconds; a switch the test already stopped never does, and every phone then waited out the
        # whole bound (it was 2 s: measured 0.58 s per close with 0.5 s, no grace sleep after it).
        try:
            if self.acc is not None and self.acc.getInfo().regIsActive:
                seen = self.reg_events
                self.acc.setRegistration(False)
                deadline = time.monotonic() + 0.5
                while time.monotonic() < deadline and self.reg_events == seen:
                    self.ep.libHandleEvents(10)
        except Exception:  # noqa: BLE001
            pass
        for idx in list(self.recorders):
            self._stop_record(idx, wait_s=0.5)
        for idx in list(self.players):
            self._stop_play(idx)
        for _ in range(5):
            self.ep.libHandleEvents(10)
        self.ep.libDestroy(pj.PJSUA_DESTROY_NO_RX_MSG)


def stdin_reader(q: queue.Queue) -> None:
    stream = sys.stdin.buffer
    while True:
        try:
            line = stream.readline()
        except Exception:  # noqa: BLE001
            line = b""
        if not line:
            q.put(None)
            return
        q.put(line)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--transport", choices=("udp", "tcp", "tls"), default="udp")
    ap.add_argument("--log", help="write pjsip logs (level 5, with SIP messages) to this file")
    ap.add_argument("--name", default="phone")
    args = ap.parse_args()

    try:
        phone = Phone(args)
    except Exception as exc:  # noqa: BLE001
        event("error", where="startup", error=fmt_exc(exc), traceback=traceback.format_exc())
        os._exit(2)

    event("ready", port=phone.port, transport=phone.transport, address=phone.address,
          pid=os.getpid(), name=phone.name)

    q: queue.Queue = queue.Queue()
    threading.Thread(target=stdin_reader, args=(q,), daemon=True).start()

    quit_id = None
    while phone.running:
        try:
            phone.ep.libHandleEvents(10)
        except Exception as exc:  # noqa: BLE001
            event("error", where="libHandleEvents", error=fmt_exc(exc))
        phone.run_timers()
        while phone.running:
            try:
                line = q.get_nowait()
            except queue.Empty:
                break
            if line is None:  # stdin closed: quit cleanly
                phone.running = False
                break
            line = line.strip()
            if not line:
                continue
            msg_id = None
            try:
                msg = json.loads(line)
                if not isinstance(msg, dict):
                    raise CommandError("command must be a JSON object")
                msg_id = msg.get("id")
                result = phone.handle(msg)
                if msg.get("cmd") == "quit":
                    quit_id = msg_id
                    continue  # answered after libDestroy
                emit({"id": msg_id, "ok": True, **result})
            except KeyError as exc:
                emit({"id": msg_id, "ok": False, "error": f"missing field {exc}"})
            except BaseException as exc:  # noqa: BLE001
                emit({"id": msg_id, "ok": False, "error": fmt_exc(exc)})

    try:
        phone.shutdown()
    except BaseException as exc:  # noqa: BLE001
        event("error", where="shutdown", error=fmt_exc(exc))
    if quit_id is not None:
        try:
            emit({"id": quit_id, "ok": True})
        except OSError:
            pass
    os._exit(0)


if __name__ == "__main__":
    main()
