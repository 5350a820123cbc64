"""The JSON-lines voicemail index: append, list by mailbox and time, torn last line, and the session's
VoicemailLeft stored as it comes."""
from __future__ import annotations

from ivr.actions import VoicemailLeft
from ivr.voicemail_index import INDEX_NAME, add_message, list_messages


def vm(mailbox="hotline", t=100.0, caller="+861"):
    return VoicemailLeft(f"{mailbox}/{t}.wav", mailbox, "13800138000", caller, 12.5, t)


def test_add_and_list(tmp_path):
    assert list_messages(tmp_path) == []
    add_message(tmp_path, vm(t=200.0), fsync=False)
    add_message(tmp_path, vm(t=100.0, caller="张三"), fsync=False)
    add_message(tmp_path, vm("sales", 150.0))
    all_ = list_messages(tmp_path)
    assert [e["time"] for e in all_] == [100.0, 150.0, 200.0]
    assert all_[0]["caller"] == "张三" and all_[0]["heard"] is False and all_[0]["duration"] == 12.5
    assert [e["time"] for e in list_messages(tmp_path, "hotline")] == [100.0, 200.0]
    assert [e["time"] for e in list_messages(tmp_path, since=150.0)] == [150.0, 200.0]


def test_torn_last_line_is_skipped(tmp_path):
    add_message(tmp_path, vm(), fsync=False)
    with open(tmp_path / INDEX_NAME, "a") as f:
        f.write('{"file": "hotline/x.wav", "mail')
    assert len(list_messages(tmp_path)) == 1
