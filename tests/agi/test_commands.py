import pytest

from callcenter.agi.commands import (
    AgiCommandError,
    GetData,
    SayDigits,
    SetVariable,
    StreamFile,
    parse_reply,
    quote,
)


def test_quote_escapes_and_refuses_line_breaks() -> None:
    assert quote('say "hi" \\ now') == '"say \\"hi\\" \\\\ now"'
    for bad in ("a\nHANGUP", "a\rb", "a\x00"):
        with pytest.raises(AgiCommandError):
            quote(bad)


def test_caller_text_cannot_become_a_second_command() -> None:
    with pytest.raises(AgiCommandError):
        SetVariable("CC_NOTE", "x\nEXEC System rm").render()
    with pytest.raises(AgiCommandError):
        SetVariable("A B", "x").render()
    assert SetVariable("CC_NOTE", 'x" EXEC').render() == 'SET VARIABLE CC_NOTE "x\\" EXEC"'


def test_rendering() -> None:
    assert GetData("/s/greeting", 5000, 1).render() == 'GET DATA "/s/greeting" 5000 1'
    assert StreamFile("/s/p", "12#").render() == 'STREAM FILE "/s/p" "12#"'
    assert SayDigits("20261").render() == 'SAY DIGITS 20261 ""'
    with pytest.raises(AgiCommandError):
        SayDigits("12a").render()
    with pytest.raises(AgiCommandError):
        StreamFile("/s/p", "1 2").render()
    with pytest.raises(AgiCommandError):
        GetData("/s/p", 0, 1).render()


@pytest.mark.parametrize(
    ("line", "code", "result", "data"),
    [
        ("200 result=1", 200, "1", ""),
        ("200 result= (timeout)", 200, "", "timeout"),
        ("200 result=49 endpos=1234", 200, "49", ""),
        ("200 result=1 (1732370000.12)", 200, "1", "1732370000.12"),
        ("200 result=-1", 200, "-1", ""),
        ("510 Invalid or unknown command", 510, "", ""),
    ],
)
def test_parse_reply(line: str, code: int, result: str, data: str) -> None:
    reply = parse_reply(line)
    assert (reply.code, reply.result, reply.data) == (code, result, data)


def test_digit_of_stream_file_reply() -> None:
    assert parse_reply("200 result=49 endpos=10").digit == "1"
    assert parse_reply("200 result=0 endpos=10").digit == ""
    with pytest.raises(ValueError, match="unparseable"):
        parse_reply("garbage")
