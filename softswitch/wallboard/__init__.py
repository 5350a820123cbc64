"""The supervisor's floor: live figures per queue and per agent, thresholds and alarms (``model``), their
``[wallboard]`` settings (``config``). The API pushes them to the /wallboard page (``softswitch.api.floor``)."""
from .config import WALLBOARD, WallboardConfig
from .model import Alarm, Floor, TodaySeed

__all__ = ["WALLBOARD", "Alarm", "Floor", "TodaySeed", "WallboardConfig"]
