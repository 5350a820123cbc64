"""SIP trunks: the call centre reachable from the telephone network, and able to call out.

A trunk is one more endpoint behind the router. This package holds its sans-IO pieces, one concept a
module:

- ``config``: the ``[[trunks]]``, ``[[dial_rules]]`` and ``[numbering]`` tables of config.toml;
- ``numbers``: one form for every external number (E.164 with the configured country code);
- ``identify``: which trunk an inbound request comes from (source address/CIDR, optional header), the
  caller's number (P-Asserted-Identity from trusted trunks, From, anonymous) and the DID it called;
- ``dialrules``: which trunks an outbound number goes to, in failover order, and with which digits;
  the permission classes of extensions (internal, local, national, international; emergency always);
- ``registration``: the client state machine that registers us to a carrier (digest, back-off);
- ``keepalive``: OPTIONS pings and the trunk's up/down state;
- ``runtime``: the trunks' live state (registrations, keep-alives, channels), driven by the core;
- ``dialer``: outbound calls through the dial rules with failover, for any application;
- ``locate``: RFC 3263 as data: SRV order (RFC 2782), NAPTR order, the TTL cache, a trunk's targets;
- ``resolver``: the edge that looks trunk host names up (dnspython, asyncio) for ``locate``.

The application for calls to external numbers (an extension dialling out) is ``softswitch.apps.external``.
"""
