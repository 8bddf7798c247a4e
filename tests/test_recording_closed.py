from pathlib import Path

from callcenter.recording.closed import recording_closed


def hangup(uniqueid: str, recording: str) -> dict[str, object]:
    return {
        "Event": "Hangup",
        "Uniqueid": uniqueid,
        "Linkedid": "pbx-1700000000.0",
        "ChanVariable": ["CC_SERVICE=112", f"CC_RECORDING={recording}"],
    }


def test_recorded_channel_hangup_closes_its_recording() -> None:
    closed = recording_closed("pbx", hangup("pbx-1700000000.0", "/r/2026/11/23/pbx_1700000000_0"))
    assert closed is not None
    assert closed.mixed == Path("/r/2026/11/23/pbx_1700000000_0.wav")
    assert closed.caller_leg.name == "pbx_1700000000_0-caller.wav"
    assert closed.agent_leg.name == "pbx_1700000000_0-agent.wav"
    assert closed.linkedid == "pbx-1700000000.0"


def test_other_channels_and_unsafe_values_are_ignored() -> None:
    assert recording_closed("pbx", hangup("pbx-1700000000.1", "/r/2026/11/23/pbx_1700000000_0")) is None
    assert recording_closed("pbx", hangup("pbx-1700000000.0", "")) is None
    assert recording_closed("pbx", hangup("pbx-1700000000.0", "/r/../etc/pbx_1700000000_0")) is None
    assert recording_closed("pbx", hangup("pbx-1700000000.0", "/r/$(x)/pbx_1700000000_0")) is None
    assert recording_closed("pbx", {"Event": "Hangup", "Uniqueid": "1.0"}) is None
