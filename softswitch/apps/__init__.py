"""Call applications: each serves the calls the router gives it, one module per application.

An application owns its own per-call state (keyed by call id), hears the leg events of its calls
and acts on them through the B2BUA's commands. ``base.Application`` says what every application
implements; ``softswitch.router`` decides which one serves a number.
"""
