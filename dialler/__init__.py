"""The dialler: outbound campaigns and callback tasks, sans-IO (``dialler.engine.Dialler``).

``rules`` (result codes, retry rules, calling hours in the contact's time zone), ``config`` (the
``[outbound]`` section), ``events`` (what the switch tells it and what it asks), ``engine`` (the
scheduler: a heap of next-due contacts per campaign lane, pacing per mode), ``amd`` (answering-machine detection on the answered leg's audio: Asterisk
app_amd's energy algorithm). The switch's side is
``softswitch.outbound``; the store's is ``store.outbound``.
"""
