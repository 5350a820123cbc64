// The desk's browser phone (docs/browser-phone.md): a WebRTC connection to the switch, signalled over the
// desk's WebSocket ("phone.*" messages), made once when the agent starts it; calls ring, are answered, held,
// transferred and conferenced with the buttons of #phone-panel. The switch does the SIP; this page is the
// headset. Used by desk.js: DeskPhone.create(send) -> {start(), stop(), handle(msg), reconnected()}.
"use strict";
window.DeskPhone = (function () {
  const $ = (id) => document.getElementById(id);
  function text(id, v) { $(id).textContent = v == null ? "" : String(v); }

  function create(send) {
    let pc = null, stream = null, wanted = false, ready = null, muted = false, sender = null, sending = null;
    const calls = new Map();          // id -> {id, number, state}
    let current = null, consultFrom = null;

    function status(s) { text("phone-status", s); $("phone-status").className = "status " + s.split(" ")[0]; }
    function error(e) { text("phone-error", e || ""); }

    function iceDone(conn, ms) {
      if (conn.iceGatheringState === "complete") return Promise.resolve();
      return new Promise((resolve) => {
        const t = setTimeout(resolve, ms);
        conn.addEventListener("icegatheringstatechange", () => {
          if (conn.iceGatheringState === "complete") { clearTimeout(t); resolve(); }
        });
      });
    }

    async function start() {
      wanted = true;
      $("phone-panel").hidden = false;
      error("");
      status("starting");
      if (!ringCtx) makeRinger();
      if (!stream) stream = await navigator.mediaDevices.getUserMedia({ audio: { echoCancellation: true, noiseSuppression: true } });
      // the switch's STUN/TURN servers, with TURN credentials minted for this start ([browser_phone])
      const ice = await iceConfig();
      if (pc) pc.close();
      pc = new RTCPeerConnection({ iceServers: ice.iceServers || [], iceTransportPolicy: ice.iceTransportPolicy || "all" });
      scheduleRenew(ice.expires_in);
      for (const t of stream.getAudioTracks()) { t.enabled = !muted; sender = pc.addTrack(t, stream); }
      sending = null;
      pc.ontrack = (e) => { $("phone-audio").srcObject = (e.streams && e.streams[0]) || new MediaStream([e.track]); };
      pc.onconnectionstatechange = () => {
        if (pc.connectionState === "connected") status("ready" + (ready ? " (" + ready + ")" : ""));
        else if (pc.connectionState === "failed") status("failed");
      };
      // candidates gathered after the offer went (a TURN allocation slower than 3 s) follow it: trickle ICE
      let offered = null, trickle = false;
      const conn = pc;
      pc.onicecandidate = (e) => {
        if (offered === null || conn !== pc) return;        // (still in the offer; or an old connection)
        if (e.candidate && e.candidate.candidate && !offered.includes(e.candidate.candidate)) {
          trickle = true;
          send({ type: "phone.candidate", candidate: e.candidate.candidate, sdpMid: e.candidate.sdpMid,
                 sdpMLineIndex: e.candidate.sdpMLineIndex });
        } else if (!e.candidate && trickle) {
          send({ type: "phone.candidate", candidate: null });   // end of candidates
        }
      };
      await pc.setLocalDescription(await pc.createOffer());
      await iceDone(pc, 3000);
      return new Promise((resolve, reject) => {
        pending = { resolve, reject };
        offered = pc.localDescription.sdp;
        trickle = pc.iceGatheringState !== "complete";
        send({ type: "phone.start", sdp: offered });
      });
    }
    let pending = null;

    let iceWait = null, renewTimer = null;
    function iceConfig() {
      return new Promise((resolve, reject) => {
        const t = setTimeout(() => { iceWait = null; reject(new Error("the switch sent no ICE configuration")); }, 10000);
        iceWait = { resolve: (m) => { clearTimeout(t); resolve(m); }, reject: (e) => { clearTimeout(t); reject(e); } };
        send({ type: "phone.ice" });
      });
    }
    // ephemeral TURN credentials expire (turn_ttl): an allocation made with them lives on (coturn refreshes
    // it), but a new one (a network change, ICE failing over) needs a valid login. So the phone is started
    // again, with fresh ones, at the first moment without a call after half their time (checked every 30 s)
    function scheduleRenew(secs) {
      if (renewTimer) clearTimeout(renewTimer);
      renewTimer = null;
      if (!secs) return;
      renewTimer = setTimeout(renew, Math.min(secs / 2 * 1000, 2147483647));
    }
    function renew() {
      renewTimer = null;
      if (!wanted) return;
      if (calls.size) { renewTimer = setTimeout(renew, 30000); return; }
      start().catch((e) => error(e.message));
    }

    function stop() {
      wanted = false;
      scheduleRenew(null);
      send({ type: "phone.stop" });
      if (pc) pc.close();
      pc = null; calls.clear(); current = null; render();
      if (ringCtx) { ringCtx.close(); ringCtx = null; }
      status("off");
    }

    async function handle(msg) {
      switch (msg.type) {
        case "phone.ice":
          if (iceWait) { iceWait.resolve(msg); iceWait = null; }
          return;
        case "phone.ready":
          ready = msg.extension;
          await pc.setRemoteDescription({ type: "answer", sdp: msg.sdp });
          status("connecting (" + ready + ")");
          if (pending) { pending.resolve(msg.extension); pending = null; }
          break;
        case "phone.incoming":
          calls.set(msg.call, { id: msg.call, number: msg.from || "anonymous", state: "ringing" });
          break;
        case "phone.dialing":
          calls.set(msg.call, { id: msg.call, number: msg.number, state: "dialing" });
          current = msg.call;
          break;
        case "phone.progress":
          if (calls.has(msg.call)) calls.get(msg.call).state = "ringing out";
          break;
        case "phone.state":
          if (calls.has(msg.call)) {
            calls.get(msg.call).state = msg.state;
            if (msg.state === "talking") current = msg.call;
          }
          break;
        case "phone.ended":
          calls.delete(msg.call);
          for (const c of calls.values()) c.conference = false;
          if (consultFrom === msg.call) consultFrom = null;
          if (current === msg.call) current = [...calls.values()].find((c) => c.state !== "ringing")?.id || null;
          break;
        case "phone.conference":
          for (const id of msg.calls) if (calls.has(id)) calls.get(id).conference = true;
          break;
        case "phone.transferred":
          error("");
          break;
        case "phone.muted":
          break;
        case "phone.stopped":
          if (msg.reason) {                // started in another window: this page's phone is off
            wanted = false; scheduleRenew(null); if (pc) pc.close(); pc = null; calls.clear(); current = null;
            status("off"); error(msg.reason);
          }
          break;
        case "phone.error":
          error(msg.error);
          if (iceWait && !msg.call) { iceWait.reject(new Error(msg.error)); iceWait = null; status("off"); }
          if (pending) { pending.reject(new Error(msg.error)); pending = null; status("off"); }
          break;
      }
      render();
    }

    function reconnected() { if (wanted) start().catch((e) => error(e.message)); }

    function ringing() { return [...calls.values()].find((c) => c.state === "ringing"); }
    function cur() { return current && calls.get(current); }

    // the microphone goes out only while a call needs it: an idle phone sends (and costs the switch) nothing
    function updateMic() {
      const want = [...calls.values()].some((c) => c.state === "talking" || c.state === "dialing" || c.state === "ringing out");
      if (!sender || !stream || want === sending) return;
      sending = want;
      sender.replaceTrack(want ? stream.getAudioTracks()[0] : null).catch((e) => error(e.message));
    }

    // the ring: 440 + 480 Hz, 2 s on and 4 s off, while a call rings in the page (WebAudio; the context is
    // made on the click that starts the phone, so browsers allow it to sound)
    let ringCtx = null, ringGain = null, ringTimer = null;
    function ringer(on) {
      if (!ringCtx) return;
      if (on && !ringTimer) {
        let t = 0;
        const step = () => { ringGain.gain.value = (t++ % 3 === 0) ? 0.15 : 0; };
        step();
        ringTimer = setInterval(step, 2000);
      } else if (!on && ringTimer) {
        clearInterval(ringTimer); ringTimer = null; ringGain.gain.value = 0;
      }
    }
    function makeRinger() {
      try {
        ringCtx = new AudioContext();
        ringGain = ringCtx.createGain(); ringGain.gain.value = 0; ringGain.connect(ringCtx.destination);
        for (const f of [440, 480]) { const o = ringCtx.createOscillator(); o.frequency.value = f; o.connect(ringGain); o.start(); }
      } catch (e) { ringCtx = null; }
    }

    function render() {
      updateMic();
      ringer(!!ringing());
      const ul = $("phone-calls");
      ul.replaceChildren();
      for (const c of calls.values()) {
        const li = document.createElement("li");
        li.dataset.call = c.id;
        li.dataset.state = c.state;
        li.dataset.conference = c.conference ? "yes" : "no";
        li.textContent = c.number + " — " + c.state + (c.conference ? " (conference)" : c.id === current ? " (current)" : "");
        ul.appendChild(li);
      }
      const r = ringing(), c = cur();
      const connected = c && (c.state === "talking" || c.state === "held");
      $("ph-answer").disabled = !r;
      $("ph-decline").disabled = !r;
      $("ph-hangup").disabled = !c && !r;
      $("ph-hold").disabled = !connected;
      $("ph-hold").textContent = c && c.state === "held" ? "Resume" : "Hold";
      $("ph-mute").disabled = !connected;
      $("ph-mute").textContent = muted ? "Unmute" : "Mute";
      $("ph-dtmf").disabled = !connected;
      $("ph-xfer").disabled = !connected;
      $("ph-consult").disabled = !connected;
      const pair = consultPair();
      $("ph-complete").disabled = !pair;
      $("ph-conference").disabled = !pair || !!(calls.get(pair[0]).conference);
    }

    // the consultation: the call the agent consulted from and the other connected call
    function consultPair() {
      const first = consultFrom && calls.get(consultFrom);
      const live = (c) => c.state === "talking" || c.state === "held";
      if (!first || !live(first)) return null;
      const second = [...calls.values()].find((c) => c.id !== consultFrom && live(c));
      return second ? [first.id, second.id] : null;
    }

    function number() {
      const n = $("ph-number").value.trim();
      if (!/^\+?[0-9*#]{1,32}$/.test(n)) { error("enter an extension, queue or number"); return null; }
      return n;
    }

    $("ph-answer").addEventListener("click", () => { const r = ringing(); if (r) send({ type: "phone.answer", call: r.id }); });
    $("ph-decline").addEventListener("click", () => { const r = ringing(); if (r) send({ type: "phone.decline", call: r.id }); });
    $("ph-hangup").addEventListener("click", () => {
      const c = cur() || ringing();
      if (c) send({ type: "phone.hangup", call: c.id });
    });
    $("ph-hold").addEventListener("click", () => { const c = cur(); if (c) send({ type: "phone.hold", call: c.id, on: c.state !== "held" }); });
    $("ph-mute").addEventListener("click", () => {
      muted = !muted;
      if (stream) for (const t of stream.getAudioTracks()) t.enabled = !muted;
      send({ type: "phone.mute", on: muted });
      render();
    });
    $("ph-dial").addEventListener("click", () => { const n = number(); if (n) { error(""); send({ type: "phone.dial", number: n }); } });
    $("ph-xfer").addEventListener("click", () => {
      const c = cur(), n = number();
      if (c && n) send({ type: "phone.transfer", call: c.id, target: n });
    });
    $("ph-consult").addEventListener("click", () => {
      const c = cur(), n = number();
      if (c && n) { consultFrom = c.id; send({ type: "phone.dial", number: n }); }
    });
    $("ph-complete").addEventListener("click", () => {
      const p = consultPair();
      if (p) send({ type: "phone.attended", call: p[0], other: p[1] });
    });
    $("ph-conference").addEventListener("click", () => {
      const p = consultPair();
      if (p) send({ type: "phone.conference", call: p[0], other: p[1] });
    });
    $("ph-dtmf").addEventListener("click", () => {
      const c = cur(), d = $("ph-digits").value.trim();
      if (c && d) { send({ type: "phone.dtmf", call: c.id, digits: d }); $("ph-digits").value = ""; }
    });

    return { start, stop, handle, reconnected, calls };
  }
  return { create };
})();
