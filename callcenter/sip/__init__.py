"""pjsua2-based SIP phones for tests, demos and agent stations.

Each phone runs pjsua2 in its own worker process (one ``Endpoint`` per
process); see ``docs/SIP.md``.
"""

from callcenter.sip.phone import (
    AgentPhone,
    CitizenPhone,
    Disconnected,
    IncomingCall,
    PhoneError,
    PhoneEvent,
    PhoneTimeout,
    RegistrationState,
    SipPhone,
)

__all__ = [
    "AgentPhone",
    "CitizenPhone",
    "Disconnected",
    "IncomingCall",
    "PhoneError",
    "PhoneEvent",
    "PhoneTimeout",
    "RegistrationState",
    "SipPhone",
]
