"""Stand-ins for the telephony side in web tests (never in end-to-end tests)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from panoramisk.message import Message


class FakeAmi:
    """Records actions; answers like Asterisk, including its "already there" refusals."""

    def __init__(self) -> None:
        self.sent: list[dict[str, str]] = []
        self.members: set[tuple[str, str]] = set()

    async def send_action(self, action: Mapping[str, object], timeout: float = 10.0) -> Any:
        sent = {k: str(v) for k, v in action.items()}
        self.sent.append(sent)
        key = (sent.get("Queue", ""), sent.get("Interface", ""))
        if sent["Action"] == "QueueAdd":
            if key in self.members:
                return _reply("Error", "Unable to add interface: Already there")
            self.members.add(key)
        if sent["Action"] == "QueueRemove":
            if key not in self.members:
                return _reply("Error", "Unable to remove interface: Not there")
            self.members.discard(key)
        if sent["Action"] == "QueuePause" and not any(i == sent["Interface"] for _, i in self.members):
            return _reply("Error", "Interface not found")
        return _reply("Success", "ok")


def _reply(response: str, message: str) -> Message:
    return Message({"Response": response, "Message": message})
