"""Real SIP phones (pjsua2, one process each) for end-to-end tests.

    from tests.phones import Phone

See client.py for the pytest-side API and pjphone.py for the JSON-lines protocol.
"""
from .client import PJPHONE, Phone, PhoneError, Phones, PhoneTimeout

__all__ = ["PJPHONE", "Phone", "PhoneError", "Phones", "PhoneTimeout"]
