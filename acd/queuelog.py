"""queue_log lines in Asterisk's format, so existing call-centre reporting tools (QueueMetrics,
Wazo stats, asternic) read our log unchanged: ``epoch|callid|queuename|agent|event|data1|data2|...``.

Field order per event follows Asterisk's documentation (docs.asterisk.org, Operation > Logging >
Queue Logs); times are whole seconds except RINGNOANSWER/RINGCANCELED, which Asterisk logs in
milliseconds. Agent-only events (login, pause) use ``NONE`` for the call id and queue.
"""
from __future__ import annotations

__all__ = ["NONE", "agent_field", "line"]

NONE = "NONE"


def agent_field(agent_id: str | None) -> str:
    return f"Agent/{agent_id}" if agent_id else NONE


def _clean(value: object) -> str:
    return str(value).replace("|", "_").replace("\n", " ").replace("\r", " ")


def line(when: float, call_id: str | None, queue: str | None, agent_id: str | None, event: str,
         *data: object) -> str:
    """One queue_log line stamped ``when``, Unix time (wall clock; ``Acd`` passes its monotonic ``now`` plus
    ``wall_offset``). Data fields are ``|``-joined; a ``|`` inside a value would shift every later field,
    so it is replaced."""
    fields = [str(int(when)), _clean(call_id or NONE), _clean(queue or NONE), agent_field(agent_id), event]
    fields += [_clean(d) for d in data]
    return "|".join(fields)


# data fields, documented here once (the engine passes them positionally):
#   ENTERQUEUE      url|callerid
#   CONNECT         holdtime|bridgedchanneluniqueid|ringtime
#   COMPLETEAGENT   holdtime|calltime|origposition
#   COMPLETECALLER  holdtime|calltime|origposition
#   TRANSFER        extension|context|holdtime|calltime|origposition
#   ABANDON         position|origposition|waittime
#   EXITWITHTIMEOUT position|origposition|waittime
#   EXITEMPTY       position|origposition|waittime
#   RINGNOANSWER    ringtime (ms)
#   RINGCANCELED    ringtime (ms)
#   AGENTLOGIN      channel
#   AGENTLOGOFF     channel|logintime
#   PAUSE / UNPAUSE reason
