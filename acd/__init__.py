"""Call-centre ACD: the sans-IO routing brain (events in, actions out), its config section, queue_log
and Erlang C staffing. Nothing here touches sockets, SIP or RTP."""
from .config import AcdConfig, parse_acd_config
from .engine import Acd
from .featurecodes import FeatureCodes, FeatureCommand, parse_feature_code
from .routing import AgentState

__all__ = ["Acd", "AcdConfig", "AgentState", "FeatureCodes", "FeatureCommand", "parse_acd_config",
           "parse_feature_code"]
