"""The mix of one tick: every leg's output as a sparse gain matrix times the stacked sources.

Sources are the decoded frames of all legs (``legs × 160``) stacked with the frames of all players
(prompts, music channels). A ``Plan`` is that sparse matrix in coordinate form, compiled from the
call topology only when the topology changes (a bridge, a hold, a prompt starting or ending). The
tick then does one gather, one multiply and one segmented sum (``np.add.reduceat``) — no Python loop
over legs or samples. Conferences above a few members sum their speakers once into a bus and give
each member ``bus - own voice`` (two matrix stages), so a 50-party conference costs 100 edges, not 2,450.

Topology terms: a member of a ``Bridge`` is ``full`` (talks and hears), ``listen`` (a supervisor who
hears everyone and is heard by nobody), ``whisper`` (heard only by the legs in ``whisper_to``, the
agent) — ``barge`` is just ``full``. A leg that is *holding* (its phone sent sendonly/inactive) or
*held* (the switch holds it) is out of the mix; a held leg hears hold music, and so does a leg left
with nobody to hear because the others are holding.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .rtp import FRAME

MODES = ("full", "listen", "whisper")
BUS_THRESHOLD = 5          # conferences with at least this many talkers use a bus


@dataclass(eq=False)
class Member:
    mode: str = "full"
    whisper_to: frozenset[int] = frozenset()    # rows that hear a whispering member


@dataclass(eq=False)
class Bridge:
    id: int
    members: dict[int, Member] = field(default_factory=dict)   # leg row -> membership


@dataclass
class Route:
    """What the compiler needs to know about one leg."""
    row: int
    bridge: Bridge | None = None
    prompt: int | None = None          # player row of a prompt to this leg
    prompt_mix: bool = False           # mixed over the call instead of replacing it
    music: int | None = None           # player row of music this leg listens to (queue, IVR)
    hold_music: int | None = None      # player row to use when the leg must hear hold music
    holding: bool = False
    held: bool = False


class _Coo:
    """One sparse stage: out[dst] = Σ gain · src_rows[src], edges sorted by dst."""

    __slots__ = ("src", "gain", "dst", "starts", "unit", "single", "n_out")

    def __init__(self, edges: list[tuple[int, int, float]], n_out: int):
        edges.sort(key=lambda e: e[0])
        self.n_out = n_out
        self.src = np.array([e[1] for e in edges], dtype=np.int64)
        self.gain = np.array([e[2] for e in edges], dtype=np.float32)
        dst = np.array([e[0] for e in edges], dtype=np.int64)
        self.dst, self.starts = (np.unique(dst, return_index=True) if len(dst) else
                                 (np.zeros(0, np.int64), np.zeros(0, np.int64)))
        self.unit = bool(np.all(self.gain == 1.0))
        self.single = len(self.dst) == len(self.src)

    def apply(self, rows: np.ndarray) -> np.ndarray:
        out = np.zeros((self.n_out, rows.shape[1]), dtype=np.float32)
        if len(self.src) == 0:
            return out
        c = rows[self.src]
        if not self.unit:
            c *= self.gain[:, None]
        out[self.dst] = c if self.single else np.add.reduceat(c, self.starts, axis=0)
        return out


class Plan:
    """A compiled topology: the bus stage, the output stage, and legs served pre-encoded bytes."""

    def __init__(self, n_legs: int, n_players: int, bus_edges: list[tuple[int, int, float]], n_bus: int,
                 out_edges: list[tuple[int, int, float]], direct: dict[int, int]):
        self.n_legs, self.n_players, self.n_bus = n_legs, n_players, n_bus
        self.bus = _Coo(bus_edges, n_bus) if n_bus else None
        self.out = _Coo(out_edges, n_legs)
        self.direct_rows = np.array(sorted(direct), dtype=np.int64)
        self.direct_players = np.array([direct[r] for r in sorted(direct)], dtype=np.int64)
        self.edges = len(out_edges) + len(bus_edges)

    def mix(self, legs: np.ndarray, players: np.ndarray) -> np.ndarray:
        """``legs`` (n_legs × 160) and ``players`` (n_players × 160) → each leg's output (n_legs × 160)."""
        src = np.concatenate([legs, players]) if len(players) else legs
        if self.bus is not None:
            src = np.concatenate([src, self.bus.apply(src)])
        return self.out.apply(src)


def compile_plan(routes: list[Route], n_legs: int, n_players: int, bus_threshold: int = BUS_THRESHOLD) -> Plan:
    """Turn the topology into sparse edges. Python loops here run on topology changes, not per tick."""
    P0 = n_legs                     # first player source index
    B0 = n_legs + n_players         # first bus source index
    by_row = {r.row: r for r in routes}
    out: list[tuple[int, int, float]] = []
    bus_edges: list[tuple[int, int, float]] = []
    buses: dict[int, int] = {}      # bridge id -> bus index
    direct: dict[int, int] = {}

    def absent(row: int) -> bool:
        r = by_row.get(row)
        return r is None or r.holding or r.held

    for r in routes:
        src: list[tuple[int, float]] = []
        if r.prompt is not None and not r.prompt_mix:
            src = [(P0 + r.prompt, 1.0)]
        elif r.held:
            if r.hold_music is not None:
                src = [(P0 + r.hold_music, 1.0)]
        elif r.music is not None:
            src = [(P0 + r.music, 1.0)]
        elif r.bridge is not None and not r.holding:
            b = r.bridge
            talkers = [row for row, m in b.members.items() if m.mode == "full" and not absent(row)]
            use_bus = len(talkers) >= bus_threshold
            if use_bus and b.id not in buses:
                buses[b.id] = len(buses)
                bus_edges += [(buses[b.id], t, 1.0) for t in talkers]
            me = b.members.get(r.row)
            heard = False
            for row, m in b.members.items():
                if row == r.row or absent(row):
                    continue
                if m.mode == "full" and not use_bus:
                    src.append((row, 1.0))
                    heard = True
                elif m.mode == "whisper" and r.row in m.whisper_to:
                    src.append((row, 1.0))
                    heard = True
                elif m.mode == "full":
                    heard = True
            if use_bus and heard:
                src.append((B0 + buses[b.id], 1.0))
                if me is not None and me.mode == "full":
                    src.append((r.row, -1.0))                   # N-1 mix: the bus minus my own voice
            if not heard and r.hold_music is not None and any(
                    by_row.get(row) is not None and by_row[row].holding for row in b.members if row != r.row):
                src = [(P0 + r.hold_music, 1.0)]
        if r.prompt is not None and r.prompt_mix:
            src.append((P0 + r.prompt, 1.0))
        if len(src) == 1 and src[0][1] == 1.0 and P0 <= src[0][0] < B0:
            direct[r.row] = src[0][0] - P0             # served the player's pre-encoded bytes
            continue
        out += [(r.row, s, g) for s, g in src]
    return Plan(n_legs, n_players, bus_edges, len(buses), out, direct)


def empty_plan(n_legs: int, n_players: int) -> Plan:
    return Plan(n_legs, n_players, [], 0, [], {})


def frames_zero(n: int) -> np.ndarray:
    return np.zeros((n, FRAME), dtype=np.float32)
