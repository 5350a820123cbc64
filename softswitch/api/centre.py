"""The call-centre store configured from config.toml's ``[store]`` numbering and dispatch tables."""
from __future__ import annotations

from typing import Any

from store.crm import CallCentre
from store.numbers import NumberPlan


def centre_for(store: Any, config: Any) -> CallCentre:
    """``CallCentre`` with the country code, the number-prefix → region table and the region → service
    point dispatch of ``[store]`` (a new caller's region shows in the screen pop; work orders go to the
    region's service point)."""
    s = config.store
    return CallCentre(store, plan=NumberPlan(country_code=s.country_code.lstrip("+")), regions=s.regions,
                      service_points=s.service_points, default_service_point=s.default_service_point or None)
