"""VIP callers from the store: the queue priority of a call comes from the customer's ``vip_level``,
never from what the caller typed alone.

``VipTable`` holds, in memory, the numbers and the customer numbers (the store's customer ids) of the
customers whose ``vip_level`` is above 0; the queue app asks ``table.priority(caller_number,
call.variables)`` when a call enters a queue (``QueueApp.priority_of``). The caller's own number counts,
and so does a customer number typed in the IVR (the ``customer_number`` variable of the shipped flow's
collect node) — but only when the store knows it as a VIP customer's: typed digits by themselves give
nothing. Priority = the customer's ``vip_level`` (1-9; the queue's own ``priority_rules`` and an IVR
node's ``priority`` still apply, the highest wins).

The edge loads the table from the store at start and every minute after (``start``), like the caller
lists; lookups are dictionary hits in the event loop, never a store query.
"""
from __future__ import annotations

import asyncio
import logging
from typing import Any, Callable, Mapping

log = logging.getLogger("softswitch.vip")

__all__ = ["VipTable", "CUSTOMER_NUMBER_VARIABLE"]

CUSTOMER_NUMBER_VARIABLE = "customer_number"  # the IVR variable holding a typed customer number


class VipTable:
    REFRESH = 60.0  # seconds: VIP levels as agents and tools change them

    def __init__(self, normalise: Callable[[str], str] | None = None,
                 variable: str = CUSTOMER_NUMBER_VARIABLE) -> None:
        self.normalise = normalise or (lambda number: number)  # the store's number normalisation
        self.variable = variable
        self.numbers: dict[str, int] = {}     # normalised phone number -> priority
        self.customers: dict[int, int] = {}   # customer number (id) -> priority
        self._task: asyncio.Task | None = None

    # ------------------------------------------------------------------------- lookups
    def priority(self, caller: str, variables: Mapping[str, Any]) -> int:
        """The priority a call gets from the store's VIP customers (0: none)."""
        best = 0
        if caller:
            try:
                best = self.numbers.get(self.normalise(caller), 0)
            except ValueError:  # not a phone number (anonymous, a SIP user name)
                pass
        typed = str(variables.get(self.variable) or "").strip()
        if typed.isdigit() and len(typed) <= 18:
            best = max(best, self.customers.get(int(typed), 0))
        return best

    def set(self, numbers: Mapping[str, int], customers: Mapping[int, int]) -> None:
        self.numbers, self.customers = dict(numbers), dict(customers)

    # ------------------------------------------------------------------------- loading
    async def load(self, centre: Any) -> bool:
        """One load from the store (``store.crm.CallCentre``); on an error the table stays as it was."""
        try:
            numbers, customers = await centre.vip_levels()
        except Exception:
            log.exception("VIP customers not loaded from the store")
            return False
        self.set(numbers, customers)
        log.debug("VIP table: %d number(s) of %d customer(s)", len(numbers), len(customers))
        return True

    async def start(self, centre: Any, every: float | None = None) -> None:
        """Load now, then every ``every`` seconds (``REFRESH``) in the background until ``stop``."""
        await self.load(centre)
        self._task = asyncio.ensure_future(self._refresh(centre, self.REFRESH if every is None else every))

    async def _refresh(self, centre: Any, every: float) -> None:
        while True:
            await asyncio.sleep(every)
            await self.load(centre)

    def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            self._task = None
