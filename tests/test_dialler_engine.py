"""The dialler core on a fake clock: pacing, retries by result code, callbacks, do-not-call, restart."""
from __future__ import annotations

import asyncio
import datetime as dt
import random
from collections import Counter

import pytest

from base.schema import Context, Walker
from dialler.config import OUTBOUND, OutboundConfig
from dialler.engine import ContactState, Dialler
from dialler.events import (
    AttemptEnded, AttemptRow, CallbackRequested, CampaignStopped, ContactRow, ContactsAdded, Dial, DncChanged,
    FiguresChanged, NewContact, QueueCallbackStarted, ResultCode, Save, Tick,
)
from dialler.rules import Result, zone

SH = zone("Asia/Shanghai")
T0 = dt.datetime(2026, 12, 7, 9, 0, tzinfo=SH).timestamp()   # Monday 09:00 in Shanghai


def config(**outbound) -> OutboundConfig:
    raw = {"timezone": "Asia/Shanghai", "calling_hours": ["daily 09:00-20:00"],
           "campaigns": [{"name": "followup", "queue": "service"}]}
    raw.update(outbound)
    return Walker(Context("test", __import__("pathlib").Path("."))).table(OUTBOUND, raw, "outbound")


def dials(actions) -> list[Dial]:
    return [a for a in actions if isinstance(a, Dial)]


def contacts(n: int, prefix: str = "1380000") -> ContactsAdded:
    return ContactsAdded("followup", tuple(NewContact(f"{prefix}{i:04d}", key=f"k{i}") for i in range(n)))


def local(t: float) -> str:
    return dt.datetime.fromtimestamp(t, SH).strftime("%a %H:%M")


def test_progressive_places_one_call_per_free_agent_and_saves_before_it_dials():
    d = Dialler(config())
    d.handle(contacts(10), T0)
    out = d.handle(Tick({"service": 3}), T0)
    placed = dials(out)
    assert [p.number for p in placed] == ["13800000000", "13800000001", "13800000002"]
    assert all(p.mode == "progressive" and p.queue == "service" for p in placed)
    # the Save naming the attempts comes before the dials (the switch commits it first)
    assert isinstance(out[0], Save) and {a.id for a in out[0].attempts} == {p.attempt for p in placed}
    assert dials(d.handle(Tick({"service": 0}), T0 + 1)) == []
    assert dials(d.handle(Tick({"other": 5}), T0 + 1)) == []
    assert d.campaign_figures("followup")["dialling"] == 3


def test_busy_contact_is_retried_at_13_17_and_next_day_9_never_sooner():
    d = Dialler(config())
    d.handle(contacts(1), T0)
    seen = []
    t = T0
    while len(seen) < 4:
        placed = dials(d.handle(Tick({"service": 1}), t))
        if placed:
            seen.append(local(t))
            d.handle(AttemptEnded(placed[0].attempt, Result.BUSY), t + 30)
        t += 60
    assert seen == ["Mon 09:00", "Mon 13:00", "Mon 17:00", "Tue 09:00"]


def test_campaign_of_200_runs_to_completion_with_exactly_the_expected_attempts():
    """20 % always busy, 30 % never answer, the rest answer at the first try; 6 attempts at most. With
    the default rule each failing contact is tried 3 times a day for 2 days: 6 attempts."""
    d = Dialler(config())
    d.handle(contacts(200), T0)
    rnd = random.Random(3)
    numbers = [f"1380000{i:04d}" for i in range(200)]
    rnd.shuffle(numbers)
    busy, silent = set(numbers[:40]), set(numbers[40:100])
    attempts: Counter[str] = Counter()
    t, agents = T0, 5
    for _ in range(4 * 24 * 60):                     # four days, a tick a minute
        for p in dials(d.handle(Tick({"service": agents}), t)):
            assert d.calling_hours_open(p.contact, t)
            attempts[p.number] += 1
            r = Result.BUSY if p.number in busy else Result.NO_ANSWER if p.number in silent else Result.COMPLETED
            d.handle(AttemptEnded(p.attempt, r), t + 20)
        t += 60
    f = d.campaign_figures("followup")
    assert f["remaining"] == 0 and f["done"] == 200
    assert sum(attempts.values()) == 100 * 6 + 100 == f["attempts"]
    assert all(attempts[n] == 6 for n in busy | silent)
    assert f["reached"] == 100 and f["contact_rate"] == round(100 / 700, 4)
    assert Counter(c.last_result for c in d.contacts.values()) == {"exhausted": 100, "completed": 100}


def test_do_not_call_numbers_are_never_dialled_and_refusal_adds_the_number():
    d = Dialler(config(dnc=["13800000001"]))
    d.handle(contacts(3), T0)
    placed = dials(d.handle(Tick({"service": 10}), T0))
    assert [p.number for p in placed] == ["13800000000", "13800000002"]
    out = d.handle(AttemptEnded(placed[0].attempt, Result.REFUSED), T0 + 5)
    assert ("13800000000", True) in next(a for a in out if isinstance(a, Save)).dnc
    d.handle(DncChanged("13800000002"), T0 + 6)
    d.handle(AttemptEnded(placed[1].attempt, Result.BUSY), T0 + 7)
    assert dials(d.handle(Tick({"service": 10}), T0 + 5 * 3600)) == []
    assert {c.last_result for c in d.contacts.values()} == {"dnc", "refused"}


def test_an_attempt_the_agent_never_answered_is_not_counted_and_the_contact_is_due_again():
    d = Dialler(config())
    d.handle(contacts(1), T0)
    p, = dials(d.handle(Tick({"service": 1}), T0))
    d.handle(AttemptEnded(p.attempt, Result.NO_ANSWER, counted=False), T0 + 20)
    q, = dials(d.handle(Tick({"service": 1}), T0 + 21))
    assert q.contact == p.contact and d.contacts[p.contact].attempts == 1


def test_agent_result_code_overrides_and_callback_later_reschedules():
    d = Dialler(config())
    d.handle(contacts(2), T0)
    a, b = dials(d.handle(Tick({"service": 2}), T0))
    d.handle(AttemptEnded(a.attempt, Result.COMPLETED), T0 + 60)
    d.handle(AttemptEnded(b.attempt, Result.COMPLETED), T0 + 60)
    d.handle(ResultCode(a.contact, Result.WRONG_NUMBER), T0 + 90)
    d.handle(ResultCode(b.contact, Result.CALLBACK, due=T0 + 2 * 3600), T0 + 90)
    assert d.contacts[a.contact].state is ContactState.DONE and d.contacts[a.contact].last_result == "wrong_number"
    assert dials(d.handle(Tick({"service": 2}), T0 + 2 * 3600 - 60)) == []
    again, = dials(d.handle(Tick({"service": 2}), T0 + 2 * 3600))
    assert again.contact == b.contact


def test_callbacks_come_before_campaign_contacts_and_queue_callbacks_are_held_in_place():
    d = Dialler(config())
    d.handle(contacts(2), T0)
    d.handle(CallbackRequested("service", "13900000001", kind="voicemail", audio="/vm/1.wav"), T0)
    d.handle(CallbackRequested("service", "13900000002", kind="queue", position=T0 - 100), T0)
    placed = dials(d.handle(Tick({"service": 1}), T0 + 1))
    assert [(p.number, p.mode, p.audio) for p in placed] == [("13900000001", "callback", "/vm/1.wav")]
    held, = d.held()
    assert held.number == "13900000002" and held.position == T0 - 100
    d.handle(QueueCallbackStarted(held.id, agent="7001"), T0 + 2)
    attempt = d.last_attempt(held.id)
    assert attempt is not None
    d.handle(AttemptEnded(attempt, Result.NO_ANSWER), T0 + 30)
    # its place was used: further attempts go through the queue's callback lane by the retry rule
    assert held.state is ContactState.WAITING and local(held.next_due) == "Mon 13:00"


def test_notification_campaign_fills_its_channels_without_agents():
    d = Dialler(config(campaigns=[{"name": "remind", "mode": "notification", "flow": "reminder",
                                   "max_channels": 4}]))
    d.handle(ContactsAdded("remind", tuple(NewContact(f"1390000{i:04d}") for i in range(10))), T0)
    first = dials(d.handle(Tick({}), T0))
    assert len(first) == 4 and {p.flow for p in first} == {"reminder"}
    assert dials(d.handle(Tick({}), T0 + 1)) == []
    d.handle(AttemptEnded(first[0].attempt, Result.COMPLETED), T0 + 2)
    assert len(dials(d.handle(Tick({}), T0 + 3))) == 1


def test_predictive_dials_ahead_only_while_abandons_stay_under_target():
    d = Dialler(config(campaigns=[{"name": "sales", "mode": "predictive", "queue": "service", "max_channels": 50}]))
    d.handle(ContactsAdded("sales", tuple(NewContact(f"1370000{i:04d}") for i in range(400))), T0)
    t = T0
    for i in range(40):   # half the calls answered, none abandoned
        for p in dials(d.handle(Tick({"service": 1}), t)):
            d.handle(AttemptEnded(p.attempt, Result.COMPLETED if i % 2 else Result.NO_ANSWER), t + 1)
        t += 2
    assert len(dials(d.handle(Tick({"service": 4}), t))) == 8   # 4 agents / 50 % answer rate
    # abandons above 3 %: back to one call per agent
    for p in list(d.attempts.values()):
        d.handle(AttemptEnded(p.id, Result.COMPLETED, abandoned=True), t + 1)
    assert len(dials(d.handle(Tick({"service": 4}), t + 2))) == 4


def test_stopped_campaigns_do_not_dial_and_figures_are_published():
    d = Dialler(config())
    out = d.handle(contacts(5), T0)
    figs = [a for a in out if isinstance(a, FiguresChanged)]
    assert figs and figs[-1].figures["remaining"] == 5 and figs[-1].figures["contacts"] == 5
    d.handle(CampaignStopped("followup"), T0)
    assert dials(d.handle(Tick({"service": 5}), T0)) == []


def test_duplicate_source_keys_are_added_once():
    d = Dialler(config())
    d.handle(contacts(3), T0)
    d.handle(contacts(5), T0)
    assert d.campaign_figures("followup")["contacts"] == 5


def test_restart_after_kill_does_not_redial_inside_the_retry_window(tmp_path):
    """The Saves go to a real SQLite store; the process 'dies' with attempts open (no result written); a
    new dialler loaded from the file places none of them again before the retry rule allows it."""
    from store.db import Store
    from store.outbound import load_outbound, save_outbound

    async def run():
        store = await Store.open(tmp_path / "s.db")

        async def commit(actions):
            for a in actions:
                if isinstance(a, Save):
                    await store.writer.run(lambda c, a=a: save_outbound(c, a.contacts, a.attempts, a.dnc))

        d = Dialler(config())
        await commit(d.handle(contacts(6), T0))
        await commit(d.handle(CallbackRequested("service", "13900000009", kind="queue", position=T0 - 5), T0))
        first = dials(out := d.handle(Tick({"service": 4}), T0))
        await commit(out)
        done = first[0]
        await commit(d.handle(AttemptEnded(done.attempt, Result.COMPLETED), T0 + 30))
        await store.close()   # three attempts never got a result: kill -9 during the calls

        store = await Store.open(tmp_path / "s.db")
        state = await store.read_sync(load_outbound)
        d2 = Dialler(config())
        await commit(d2.load([ContactRow(**r) for r in state["contacts"]],
                             [AttemptRow(a["id"], a["contact"], a["campaign"], a["number"], a["started"])
                              for a in state["open_attempts"]], state["next_attempt"], T0 + 60))
        assert state["next_attempt"] == 5
        again = dials(d2.handle(Tick({"service": 10}), T0 + 120))
        assert {p.number for p in again} == {"13800000004", "13800000005"}   # never tried
        assert [c.number for c in d2.held()] == ["13900000009"]              # keeps its place
        assert not dials(d2.handle(Tick({"service": 10}), T0 + 4 * 3600 - 1))
        retried = dials(d2.handle(Tick({"service": 10}), T0 + 4 * 3600))
        assert {p.number for p in retried} == {p.number for p in first[1:]}
        assert all(p.attempt >= 5 for p in again + retried)                   # no attempt id reused
        assert d2.contacts[done.contact].state is ContactState.DONE
        rows = await store.fetchall("SELECT result FROM outbound_attempts WHERE ended_at IS NOT NULL ORDER BY id")
        assert [r for (r,) in rows] == ["completed", "interrupted", "interrupted", "interrupted"]
        await store.close()

    asyncio.run(run())


@pytest.mark.parametrize("raw, key", [
    ({"campaigns": [{"name": "x", "mode": "progressive"}]}, "outbound.campaigns[0].queue"),
    ({"campaigns": [{"name": "x", "mode": "notification"}]}, "outbound.campaigns[0].flow"),
    ({"timezone": "Mars/Olympus"}, "outbound.timezone"),
    ({"calling_hours": ["weekdays 9-5"]}, "outbound.calling_hours[0]"),
    ({"retry": {"bussy": {"interval": 60}}}, "outbound.retry.bussy"),
    ({"retry": {"busy": {"interval": 0}}}, "outbound.retry.busy.interval"),
    ({"campaigns": [{"name": "callbacks", "queue": "q"}]}, "outbound.campaigns[0].name"),
])
def test_config_mistakes_name_their_key(raw, key):
    from base.schema import ConfigError

    with pytest.raises(ConfigError) as e:
        Walker(Context("test", __import__("pathlib").Path("."))).table(OUTBOUND, raw, "outbound")
    assert e.value.key == key


def test_calls_for_a_queue_present_its_number_unless_the_campaign_has_its_own():
    """Precedence: the campaign's caller_id, then the queue's ([[acd.queues]] caller_id), then [outbound]'s."""
    queues = {"service": "+862012345678", "sales": ""}
    cfg = config(caller_id="4008001234", campaigns=[
        {"name": "followup", "queue": "service"},
        {"name": "promo", "queue": "service", "caller_id": "+862099990000"},
        {"name": "upsell", "queue": "sales"}])
    d = Dialler(cfg, queue_caller_id=lambda q: queues.get(q, ""))
    d.handle(contacts(1), T0)
    d.handle(ContactsAdded("promo", (NewContact("13800009998", key="p"),)), T0)
    d.handle(ContactsAdded("upsell", (NewContact("13800009997", key="u"),)), T0)
    d.handle(CallbackRequested("service", "13900000001", kind="web"), T0)
    d.handle(CallbackRequested("sales", "13900000002", kind="web"), T0)
    placed = dials(d.handle(Tick({"service": 5, "sales": 5}), T0 + 1))
    shown = {(p.campaign, p.number): p.caller_id for p in placed}
    assert shown == {("callbacks", "13900000001"): "+862012345678",      # a callback task of the queue
                     ("callbacks", "13900000002"): "4008001234",         # a queue without its own number
                     ("followup", "13800000000"): "+862012345678",       # a campaign for the queue
                     ("promo", "13800009998"): "+862099990000",          # a campaign with its own number
                     ("upsell", "13800009997"): "4008001234"}
    queues["sales"] = "+862055550000"                                      # read at each dial (a reload)
    d.handle(CallbackRequested("sales", "13900000003", kind="web"), T0 + 2)
    [again] = dials(d.handle(Tick({"sales": 5}), T0 + 3))
    assert again.caller_id == "+862055550000"
