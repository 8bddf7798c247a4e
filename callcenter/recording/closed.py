"""Knowing when a call's recording is complete.

MixMonitor sends no event when it closes its files at hang-up; the channel's ``Hangup`` event,
carrying the ``CC_RECORDING`` variable the dialplan set (manager.conf ``channelvars``), is the
moment the files are final. Pure: turns an AMI event into a :class:`RecordingClosed`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

# The dialplan names recordings only from safe identifiers; anything else is not ours.
_SAFE_PATH = re.compile(r"^/[A-Za-z0-9_./-]+$")


@dataclass(frozen=True)
class RecordingClosed:
    system_name: str
    linkedid: str
    uniqueid: str
    base: Path
    caller_number: str = ""

    @property
    def mixed(self) -> Path:
        return self.base.with_name(self.base.name + ".wav")

    @property
    def caller_leg(self) -> Path:
        return self.base.with_name(self.base.name + "-caller.wav")

    @property
    def agent_leg(self) -> Path:
        return self.base.with_name(self.base.name + "-agent.wav")


def channel_variables(message: Mapping[str, object]) -> dict[str, str]:
    raw = message.get("ChanVariable")
    values = raw if isinstance(raw, list) else [raw] if isinstance(raw, str) else []
    out: dict[str, str] = {}
    for item in values:
        name, sep, value = str(item).partition("=")
        if sep:
            out[name] = value
    return out


def recording_closed(system_name: str, message: Mapping[str, object]) -> RecordingClosed | None:
    """The recording this Hangup event closes, if the channel was the recorded one."""
    base = channel_variables(message).get("CC_RECORDING", "")
    if not base or not _SAFE_PATH.match(base) or ".." in base:
        return None
    # The dialplan names the files after the recorded channel's Uniqueid ('.' and '-' become
    # '_'); any other channel of the call that happens to carry the variable is not the recorder.
    uniqueid = str(message.get("Uniqueid", ""))
    if not base.endswith("/" + uniqueid.replace(".", "_").replace("-", "_")):
        return None
    return RecordingClosed(
        system_name=system_name,
        linkedid=str(message.get("Linkedid", "")),
        uniqueid=uniqueid,
        base=Path(base),
        caller_number=str(message.get("CallerIDNum", ""))[:40],
    )
