"""Media worker processes (issue 18): the media tick off the signalling process.

``[media] workers = N`` (N ≥ 1) starts N processes, each owning a slice of ``rtp_ports`` and running its own
``MediaEngine`` + ``MediaEdge`` (sockets, the 20 ms tick, recordings). The signalling process keeps SDP:
``pool.WorkerMedia`` is the facade call control talks to (the ``MediaEngine`` methods the B2BUA uses), with a
sans-I/O *shadow* engine per worker that allocates the worker's ports and does offer/answer synchronously;
what changes a leg's media goes to the worker as a command (``messages``) over a local channel (``channel``:
length-prefixed frames on a Unix socket pair), and the worker's events come back keyed by leg id.

A worker that dies (EOF on its channel) loses its legs: each gets a ``MediaLost`` event, which call control
handles like an RTP time-out (BYE both phones, call record); the shadow frees their ports, and a new worker
is started with back-off. ``workers = 0`` keeps the engine in the switch's process.
"""
