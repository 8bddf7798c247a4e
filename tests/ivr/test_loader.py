"""Flow files: good ones load into typed nodes, every mistake is reported with its file and line."""

from __future__ import annotations

import dataclasses
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml

from callcenter.ivr.flow import (
    KINDS,
    Collect,
    Condition,
    Flow,
    Hangup,
    Language,
    LookupTicket,
    Menu,
    MenuOption,
    SpeechChoice,
    SubFlow,
    Transfer,
)
from callcenter.ivr.loader import FlowError, FlowProblem, load_flow, load_flows

FIXTURES = Path(__file__).parent / "fixtures"
GOOD = ["good_hotline.yaml", "good_status.yaml"]


@pytest.fixture(autouse=True)
def in_fixtures(monkeypatch: pytest.MonkeyPatch) -> None:
    """Messages name files relative to the working directory: run from the fixtures."""
    monkeypatch.chdir(FIXTURES)


def problems_of(*names: str) -> list[str]:
    with pytest.raises(FlowError) as caught:
        if len(names) == 1:
            load_flow(Path(names[0]))
        else:
            load_flows([Path(n) for n in names])
    lines = str(caught.value).splitlines()
    assert lines == [str(p) for p in caught.value.problems]
    return lines


# --- good flows --------------------------------------------------------------------------------


def test_good_flows_load_into_typed_nodes() -> None:
    flows = load_flows([Path(n) for n in GOOD])
    assert list(flows) == ["hotline", "status"]
    hotline = flows["hotline"]
    assert (hotline.name, hotline.start, hotline.language) == ("hotline", "jam", "id")
    assert hotline.description == "Layanan pengaduan masyarakat"
    assert hotline.source == "good_hotline.yaml"
    kategori = hotline.nodes["kategori"]
    assert isinstance(kategori, Menu)
    assert kategori.options["1"] == MenuOption("lokasi", {"category": "JALAN"})
    assert kategori.options["9"] == MenuOption("status_lookup")  # the shorthand
    assert (kategori.default, kategori.timeout, kategori.retries) == ("petugas", 5.0, 2)
    assert kategori.invalid_prompt == {"id": "Pilihan tidak dikenal.", "en": "Unknown choice."}
    jam = hotline.nodes["jam"]
    assert jam == Condition((1, 2, 3, 4, 5), "08:00", "16:00", "welcome", "tutup", True)
    lokasi = hotline.nodes["lokasi"]
    assert isinstance(lokasi, Collect)
    assert (lokasi.field, lokasi.min_digits, lokasi.max_digits, lokasi.pattern) == (
        "district",
        1,
        4,
        "^[0-9]{1,4}$",
    )
    speech = hotline.nodes["pilih_layanan"]
    assert isinstance(speech, SpeechChoice) and speech.grammar["ambulans"] == "3"
    assert hotline.nodes["menu_bahasa"] == Language(
        {"id": "Tekan 1 untuk Bahasa Indonesia.", "en": "Press 2 for English."},
        {"1": "id", "2": "en"},
        "kategori",
        4.0,
    )
    assert hotline.nodes["status_lookup"] == SubFlow("status", "selesai")
    assert hotline.nodes["selesai"] == Hangup()
    status = flows["status"]
    assert status.nodes["petugas"] == Transfer("hotline")  # defaults from the dataclass
    cek = status.nodes["cek"]
    assert isinstance(cek, LookupTicket) and set(cek.status) == {"menunggu", "diproses", "selesai", "ditolak"}
    minta = status.nodes["minta_nomor"]
    assert isinstance(minta, Collect) and (minta.terminator, minta.timeout, minta.retries) == ("#", 6.0, 2)


def test_the_good_fixtures_use_every_kind_and_every_field() -> None:
    """So the loader has read every field type flow.py declares (an unknown one is a TypeError)."""
    used: set[tuple[str, str]] = set()
    for name in GOOD:
        data = yaml.safe_load((FIXTURES / name).read_text(encoding="utf-8"))
        for node in data["nodes"].values():
            used |= {(node["kind"], key) for key in node if key != "kind"}
    wanted = {(kind, f.name) for kind, cls in KINDS.items() for f in dataclasses.fields(cls)}
    assert wanted - used == set()


def test_the_administrators_guide_documents_every_kind_and_field() -> None:
    guide = (Path(__file__).parents[2] / "docs" / "IVR_FLOWS.md").read_text(encoding="utf-8")
    sections = {part.split("`", 1)[0]: part for part in guide.split("\n### `")[1:]}
    assert set(sections) == set(KINDS)
    for kind, cls in KINDS.items():
        for f in dataclasses.fields(cls):
            assert f"| `{f.name}` |" in sections[kind], (kind, f.name)


def test_a_folder_means_its_yaml_files_sorted(tmp_path: Path) -> None:
    for name in reversed(GOOD):
        shutil.copy(FIXTURES / name, tmp_path / name)
    (tmp_path / "README.md").write_text("not a flow")
    (tmp_path / "old.yaml.bak").write_text("not a flow either")
    flows = load_flows([tmp_path, tmp_path / "good_status.yaml"])  # the same file twice is read once
    assert list(flows) == ["hotline", "status"]
    assert flows["hotline"].source == str(tmp_path / "good_hotline.yaml")  # not below the cwd: as given


def test_a_menu_may_loop_back_while_an_exit_stays_reachable(tmp_path: Path) -> None:
    flow = write_and_load(
        tmp_path,
        """
        flow: ulang
        start: menu
        nodes:
          menu:
            kind: menu
            prompt: {id: "Tekan 1 untuk petugas, bintang untuk mengulang"}
            options: {"1": petugas, "*": menu}
            default: lagi
          lagi: {kind: goto, next: menu}
          petugas: {kind: transfer, queue: hotline}
        """,
    )
    assert set(flow.nodes) == {"menu", "lagi", "petugas"}


# --- one problem per fixture -------------------------------------------------------------------

ONE_PROBLEM = {
    "bad_yaml.yaml": "bad_yaml.yaml:6: invalid YAML: while parsing a block mapping: expected <block "
    "end>, but found '}'",
    "not_mapping.yaml": "not_mapping.yaml:1: expected a mapping with flow, start and nodes, got a list",
    "missing_start.yaml": "missing_start.yaml:1: missing key 'start'",
    "unknown_top_key.yaml": "unknown_top_key.yaml:3: unknown key 'langauge' (did you mean 'language'?)",
    "unknown_kind.yaml": "unknown_kind.yaml:5: node 'halo': unknown kind 'say' (one of: play, menu, collect, "
    "speech, set, create_ticket, lookup_ticket, transfer, condition, language, goto, subflow, hangup)",
    "unknown_field.yaml": "unknown_field.yaml:7: play 'halo': unknown field 'nxt' (did you mean 'next'?)",
    "missing_field.yaml": "missing_field.yaml:4: collect 'kode': missing field 'on_fail'",
    "wrong_type.yaml": "wrong_type.yaml:9: menu 'menu': timeout must be a number, got text 'lima'",
    "unknown_node.yaml": "unknown_node.yaml:9: menu 'kategori': option '7' goes to unknown node "
    "'jalan_rusak'",
    "missing_language.yaml": "missing_language.yaml:7: play 'halo': prompt has no 'id' text (the "
    "flow's language)",
    "empty_text.yaml": "empty_text.yaml:6: play 'halo': prompt 'en' text is empty",
    "duplicate_node.yaml": "duplicate_node.yaml:9: duplicate node id 'halo' (first at line 4)",
    "duplicate_key.yaml": "duplicate_key.yaml:10: duplicate key '1' (first at line 8)",
    "bad_start.yaml": "bad_start.yaml:2: start node 'welcom' is not defined under nodes (did you "
    "mean 'welcome'?)",
    "unreachable.yaml": "unreachable.yaml:8: play 'lupa': unreachable: no path from the start node "
    "'halo' leads here",
    "bad_dtmf.yaml": "bad_dtmf.yaml:9: menu 'menu': option '10' is not a phone key (one of 0-9, * or #)",
    "grammar_key.yaml": "grammar_key.yaml:9: speech 'layanan': grammar word 'pemadam' maps to key '2', "
    "which is not one of the options (1)",
}


@pytest.mark.parametrize("name", sorted(ONE_PROBLEM))
def test_each_broken_fixture_gives_its_problem(name: str) -> None:
    assert problems_of(name) == [ONE_PROBLEM[name]]


def test_a_loop_without_exit_is_reported_on_each_of_its_nodes() -> None:
    message = "no way out: every path from here loops without reaching a transfer or hang-up"
    assert problems_of("no_way_out.yaml") == [
        f"no_way_out.yaml:4: play 'a': {message}",
        f"no_way_out.yaml:8: play 'b': {message}",
    ]


def test_every_problem_of_a_file_is_reported_in_line_order() -> None:
    assert problems_of("several.yaml") == [
        "several.yaml:4: unknown key 'colour' (keys: flow, description, language, start, nodes)",
        "several.yaml:8: play 'welcome': prompt has no 'id' text (the flow's language)",
        "several.yaml:14: menu 'kategori': option '1' goes to unknown node 'jalan_rusak'",
        "several.yaml:15: menu 'kategori': option '12' is not a phone key (one of 0-9, * or #)",
        "several.yaml:17: menu 'kategori': retries must be between 0 and 5, got 9",
        "several.yaml:18: transfer 'petugas': queue must be q112 or hotline, got 'polisi'",
        "several.yaml:19: goto 'putar': no way out: every path from here loops without reaching a "
        "transfer or hang-up",
        "several.yaml:22: duplicate node id 'welcome' (first at line 6)",
    ]


# --- across files ------------------------------------------------------------------------------


def test_a_subflow_must_name_a_loaded_flow() -> None:
    load_flow(Path("unknown_subflow.yaml"))  # alone, a file cannot know the other flows
    assert problems_of("unknown_subflow.yaml", "good_status.yaml") == [
        "unknown_subflow.yaml:6: subflow 'cek': flow 'statsu' is not defined in any flow file "
        "(did you mean 'status'?)"
    ]


def test_flow_names_are_unique_across_files() -> None:
    assert problems_of("good_status.yaml", "duplicate_flow.yaml") == [
        "duplicate_flow.yaml:1: flow 'status' is also defined in good_status.yaml:1"
    ]


def test_flows_calling_each_other_in_a_loop() -> None:
    assert problems_of("cycle_a.yaml", "cycle_b.yaml") == [
        "cycle_a.yaml:6: subflow 'ke_b': flows call each other in a loop: siklus_a -> siklus_b -> siklus_a",
        "cycle_b.yaml:6: subflow 'ke_a': flows call each other in a loop: siklus_b -> siklus_a -> siklus_b",
    ]


def test_problems_of_several_files_come_file_by_file() -> None:
    lines = problems_of("unknown_node.yaml", "bad_dtmf.yaml")
    assert lines == [ONE_PROBLEM["unknown_node.yaml"], ONE_PROBLEM["bad_dtmf.yaml"]]


def test_a_file_that_cannot_be_read_has_no_line(tmp_path: Path) -> None:
    assert problems_of("missing.yaml") == ["missing.yaml: cannot read: No such file or directory"]
    assert str(FlowProblem("a.yaml", 3, "x")) == "a.yaml:3: x"


# --- each rule, on a small flow ----------------------------------------------------------------

HEAD = """\
flow: uji
start: a
nodes:
"""
EXIT = "  selesai: {kind: hangup}\n"


def write_and_load(tmp_path: Path, text: str) -> Flow:
    path = tmp_path / "uji.yaml"
    path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
    os.chdir(tmp_path)
    return load_flow(Path("uji.yaml"))


def node_problems(tmp_path: Path, node: str) -> list[str]:
    """Problems of a flow whose node 'a' is ``node`` (YAML at 4 spaces), with an exit 'selesai'."""
    body = HEAD + "  a:\n" + textwrap.indent(textwrap.dedent(node).strip("\n"), "    ") + "\n" + EXIT
    (tmp_path / "uji.yaml").write_text(body, encoding="utf-8")
    os.chdir(tmp_path)
    with pytest.raises(FlowError) as caught:
        load_flow(Path("uji.yaml"))
    return [p.message for p in caught.value.problems]


MENU = 'kind: menu\nprompt: {id: "Tekan 1"}\noptions: {"1": selesai}\ndefault: selesai\n'
COLLECT = 'kind: collect\nprompt: {id: "Kode"}\nfield: kode\nnext: selesai\non_fail: selesai\n'
CONDITION = 'kind: condition\nopen_days: [1, 2]\nopen_from: "08:00"\nopen_until: "16:00"\n'
CONDITION += "if_open: selesai\nif_closed: selesai\n"
LOOKUP = 'kind: lookup_ticket\nfield: nomor\nfound: {id: "Status:"}\n'
LOOKUP += 'not_found: {id: "Tidak ada."}\nnext: selesai\n'

RULES = [
    (MENU + "timeout: 0", "menu 'a': timeout must be more than 0 and at most 60 seconds, got 0"),
    (MENU + "timeout: 61", "menu 'a': timeout must be more than 0 and at most 60 seconds, got 61"),
    (MENU + "timeout: .nan", "menu 'a': timeout must be more than 0 and at most 60 seconds, got .nan"),
    (MENU + "retries: 6", "menu 'a': retries must be between 0 and 5, got 6"),
    (MENU + "retries: 2.5", "menu 'a': retries must be a whole number, got 2.5"),
    (MENU + 'retries: "2"', "menu 'a': retries must be a whole number, got text '2'"),
    (MENU + "retries: true", "menu 'a': retries must be a whole number, got true"),
    (
        MENU + "timeout_prompt: {id: Halo, fr: Bonjour}",
        "menu 'a': timeout_prompt has unknown language 'fr' (expected id or en)",
    ),
    (
        MENU + "invalid_prompt: Salah",
        'menu \'a\': invalid_prompt must map languages to texts, e.g. {id: "...", en: "..."}, got '
        "text 'Salah'",
    ),
    (MENU + "invalid_prompt: {id: }", "menu 'a': invalid_prompt 'id' text is empty"),
    (MENU.replace('{"1": selesai}', "{}"), "menu 'a': options must have at least one key"),
    (
        MENU.replace('{"1": selesai}', "[selesai]"),
        "menu 'a': options must map phone keys to nodes, got a list",
    ),
    (
        MENU.replace('"1": selesai', '"1": {next: selesai, sett: {x: y}}'),
        "menu 'a': option '1': unknown field 'sett' (did you mean 'set'?)",
    ),
    (MENU.replace('"1": selesai', '"1": {set: {x: y}}'), "menu 'a': option '1': missing field 'next'"),
    (
        MENU.replace('"1": selesai', '"1": {next: selesai, set: {Kategori: JALAN}}'),
        "menu 'a': option '1' set: field name 'Kategori' may only have lower-case letters and _",
    ),
    (
        MENU.replace('"1": selesai', '"1": [selesai]'),
        "menu 'a': option '1' must be a node id or {next: ..., set: {...}}, got a list",
    ),
    (
        MENU.replace('"1": selesai', "1: selesai, '01': selesai"),
        "menu 'a': option '01' is not a phone key (one of 0-9, * or #)",
    ),
    (MENU.replace("default: selesai", "default: "), "menu 'a': default is empty"),
    (
        MENU + "next: selesai",
        "menu 'a': unknown field 'next' (fields of menu: prompt, options, default, timeout, "
        "retries, invalid_prompt, timeout_prompt)",
    ),
    (COLLECT + "min_digits: 5\nmax_digits: 4", "collect 'a': min_digits (5) is more than max_digits (4)"),
    (COLLECT + "max_digits: 21", "collect 'a': max_digits must be between 1 and 20, got 21"),
    (COLLECT + "min_digits: 0", "collect 'a': min_digits must be between 1 and 20, got 0"),
    (COLLECT + "terminator: x", 'collect \'a\': terminator must be "#", "*" or "" (none), got \'x\''),
    (
        COLLECT + "pattern: '^[0-9'",
        "collect 'a': pattern is not a valid regular expression: unterminated character set at position 1",
    ),
    (
        COLLECT.replace("field: kode", "field: Kode-Pos"),
        "collect 'a': field name 'Kode-Pos' may only have lower-case letters and _",
    ),
    (
        COLLECT.replace("on_fail: selesai", "on_fail: gagal"),
        "collect 'a': on_fail goes to unknown node 'gagal'",
    ),
    (
        CONDITION.replace('"08:00"', "8:00"),
        "condition 'a': open_from must be a time of day as HH:MM (00:00 to 23:59), got '8:00'",
    ),
    (
        CONDITION.replace('"16:00"', '"07:00"'),
        "condition 'a': open_from (08:00) must be before open_until (07:00)",
    ),
    (
        CONDITION.replace("[1, 2]", "[0, 1]"),
        "condition 'a': open_days: 0 is not a weekday (1 = Monday ... 7 = Sunday)",
    ),
    (CONDITION.replace("[1, 2]", "[1, 1]"), "condition 'a': open_days: day 1 is listed twice"),
    (CONDITION.replace("[1, 2]", "[]"), "condition 'a': open_days must list at least one day"),
    (
        CONDITION.replace("[1, 2]", "senin"),
        "condition 'a': open_days must be a list of ISO weekdays, 1 (Monday) to 7 (Sunday), e.g. "
        "[1, 2, 3, 4, 5], got text 'senin'",
    ),
    (
        CONDITION + "closed_on_holidays: ya",
        "condition 'a': closed_on_holidays must be true or false, got text 'ya'",
    ),
    (
        CONDITION.replace("if_closed: selesai", "if_closed: tutup"),
        "condition 'a': if_closed goes to unknown node 'tutup'",
    ),
    (
        'kind: language\nprompt: {id: "Bahasa"}\noptions: {"1": id, "2": fr}\nnext: selesai',
        "language 'a': option '2' is language 'fr' (expected id or en)",
    ),
    (
        "kind: set\nvalues: {layanan: polisi/ambulans}\nnext: selesai",
        "set 'a': values: value 'polisi/ambulans' may only have letters, digits, spaces, '.', '_' and '-' "
        "(at most 64)",
    ),
    (
        "kind: set\nvalues: {Layanan: polisi}\nnext: selesai",
        "set 'a': values: field name 'Layanan' may only have lower-case letters and _",
    ),
    (
        'kind: create_ticket\nchannel: "113"\nsummary: {id: x}\nreadback: {id: y}\nnext: selesai',
        "create_ticket 'a': channel must be 112 or hotline, got '113'",
    ),
    ("kind: transfer\nqueue: q112\npriority: -1", "transfer 'a': priority must be 0 or more, got -1"),
    (
        "kind: subflow\nflow: Status\nnext: selesai",
        "subflow 'a': flow name 'Status' may only have lower-case letters, digits, - and _",
    ),
    (
        LOOKUP + "status: {menunggu: {id: a}, diproses: {id: b}, selesai: {id: c}}",
        "lookup_ticket 'a': status has no words for 'ditolak'",
    ),
    (
        LOOKUP + "status: {menunggu: {id: a}, diproses: {id: b}, selesai: {id: c}, ditolak: {id: d}, "
        "batal: {id: e}}",
        "lookup_ticket 'a': status 'batal' is not a ticket status (expected menunggu, diproses, "
        "selesai or ditolak)",
    ),
    (
        LOOKUP + "status: {menunggu: {en: a}, diproses: {id: b}, selesai: {id: c}, ditolak: {id: d}}",
        "lookup_ticket 'a': status 'menunggu' has no 'id' text (the flow's language)",
    ),
    ("kind: play\nnext: selesai", "play 'a': missing field 'prompt'"),
    (
        "prompt: {id: Halo}\nnext: selesai",
        "node 'a': missing field 'kind' (one of: play, menu, collect, speech, set, create_ticket, "
        "lookup_ticket, transfer, condition, language, goto, subflow, hangup)",
    ),
    (
        'kind: play\nprompt: {id: "Halo"}\nnext: !!python/object/apply:os.system ["true"]',
        "play 'a': next must be text, got a list",
    ),
    ('kind: play\nprompt: {id: "Halo"}\nnext: [selesai]', "play 'a': next must be text, got a list"),
]


@pytest.mark.parametrize(("node", "message"), RULES, ids=[f"rule{i}" for i in range(len(RULES))])
def test_each_rule(tmp_path: Path, node: str, message: str) -> None:
    assert node_problems(tmp_path, node) == [message]


def test_an_optional_prompt_may_be_left_empty(tmp_path: Path) -> None:
    flow = write_and_load(
        tmp_path, "flow: uji\nstart: a\nnodes:\n  a: {kind: transfer, queue: q112, prompt: }\n"
    )
    assert flow.nodes["a"] == Transfer("q112")


def test_node_ids_flow_names_and_languages(tmp_path: Path) -> None:
    path = tmp_path / "uji.yaml"
    path.write_text(
        "flow: Hot Line\nlanguage: jv\nstart: Awal\nnodes:\n  Awal: {kind: hangup}\n  x: not a node\n",
        encoding="utf-8",
    )
    os.chdir(tmp_path)
    with pytest.raises(FlowError) as caught:
        load_flow(Path("uji.yaml"))
    assert str(caught.value).splitlines() == [
        "uji.yaml:1: flow name 'Hot Line' may only have lower-case letters, digits, - and _",
        "uji.yaml:2: language 'jv' is not supported (expected id or en)",
        "uji.yaml:5: node 'Awal': a node id may only have lower-case letters, digits and _",
        "uji.yaml:6: node 'x': expected a mapping with a kind, got text 'not a node'",
        "uji.yaml:6: node 'x': unreachable: no path from the start node 'Awal' leads here",
    ]


def test_the_flow_language_is_the_one_every_prompt_needs(tmp_path: Path) -> None:
    text = 'flow: en\nlanguage: en\nstart: a\nnodes:\n  a: {kind: hangup, prompt: {id: "Halo"}}\n'
    (tmp_path / "uji.yaml").write_text(text, encoding="utf-8")
    os.chdir(tmp_path)
    with pytest.raises(FlowError) as caught:
        load_flow(Path("uji.yaml"))
    assert str(caught.value) == "uji.yaml:5: hangup 'a': prompt has no 'en' text (the flow's language)"


def test_a_loop_is_reported_not_the_nodes_leading_into_it(tmp_path: Path) -> None:
    text = HEAD + "  a: {kind: goto, next: b}\n  b: {kind: goto, next: c}\n  c: {kind: goto, next: b}\n"
    (tmp_path / "uji.yaml").write_text(text, encoding="utf-8")
    os.chdir(tmp_path)
    with pytest.raises(FlowError) as caught:
        load_flow(Path("uji.yaml"))
    assert [(p.line, p.message.split(":")[0]) for p in caught.value.problems] == [
        (5, "goto 'b'"),
        (6, "goto 'c'"),
    ]


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"", "uji.yaml:1: the file is empty (expected a mapping with flow, start and nodes)"),
        (
            b"flow: x\nstart: a\nnodes:\n\ta: {kind: hangup}\n",
            "uji.yaml:4: invalid YAML: while scanning for the next token: found character '\\t' "
            "that cannot start any token (indent with spaces, not tabs)",
        ),
        (
            b"flow: x\nstart a\nnodes: {}\n",
            "uji.yaml:2: invalid YAML: while scanning a simple key: could not find expected ':'",
        ),
        (
            b"flow: x\n---\nflow: y\n",
            "uji.yaml:2: invalid YAML: expected a single document in the stream: but found another document",
        ),
        (b"flow: x\ndescription: caf\xe9\n", "uji.yaml:2: the file is not UTF-8 text"),
        (b"flow: x\ndescription: \x07\n", "uji.yaml:2: character U+0007 is not allowed in a YAML file"),
        (
            b"flow: x\nstart: a\nnodes: []\n",
            "uji.yaml:3: nodes must be a mapping of node id to node, got a list",
        ),
        (b"flow: x\nstart: a\nnodes: {}\n", "uji.yaml:3: nodes is empty"),
        (
            b"flow: x\nflow: y\nstart: a\nnodes: {a: {kind: hangup}}\n",
            "uji.yaml:2: duplicate key 'flow' (first at line 1)",
        ),
        (
            b"? [a, b]\n: c\nflow: x\nstart: a\nnodes: {a: {kind: hangup}}\n",
            "uji.yaml:1: a key must be plain text, got a list",
        ),
    ],
    ids=[
        "empty",
        "tab",
        "no-colon",
        "two-documents",
        "not-utf8",
        "control-char",
        "nodes-list",
        "nodes-empty",
        "dup-top",
        "list-key",
    ],
)
def test_file_level_problems(tmp_path: Path, data: bytes, expected: str) -> None:
    (tmp_path / "uji.yaml").write_bytes(data)
    os.chdir(tmp_path)
    with pytest.raises(FlowError) as caught:
        load_flow(Path("uji.yaml"))
    assert str(caught.value).splitlines()[0] == expected


def test_an_anchor_bomb_is_read_without_blowing_up(tmp_path: Path) -> None:
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]" for i in range(1, 9)]
    (tmp_path / "uji.yaml").write_text("\n".join(lines) + "\n", encoding="utf-8")
    os.chdir(tmp_path)
    with pytest.raises(FlowError) as caught:
        load_flow(Path("uji.yaml"))
    assert "missing key 'flow'" in str(caught.value)


# --- the command -------------------------------------------------------------------------------


def run_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("CALLCENTER_")}
    environ["PYTHONPATH"] = str(Path(__file__).parents[2])
    return subprocess.run(
        [sys.executable, "-m", "callcenter.cli", *args],
        cwd=cwd,
        env=environ,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_cli_check_the_flows_folder(tmp_path: Path) -> None:
    (tmp_path / "ivr_flows").mkdir()
    for name in GOOD:
        shutil.copy(FIXTURES / name, tmp_path / "ivr_flows" / name)
    result = run_cli("flows", "check", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "ok: 2 flows (hotline, status)\n"
    one = run_cli("flows", "check", "ivr_flows/good_status.yaml", cwd=tmp_path)
    assert one.stdout == "ok: 1 flow (status)\n"


def test_cli_check_prints_every_problem_and_exits_2(tmp_path: Path) -> None:
    shutil.copy(FIXTURES / "several.yaml", tmp_path / "several.yaml")
    result = run_cli("flows", "check", "several.yaml", cwd=tmp_path)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert result.stdout == ""
    expected = problems_of("several.yaml")
    assert result.stderr.splitlines() == [f"callcenter: error: {line}" for line in expected]


def test_cli_check_without_flow_files(tmp_path: Path) -> None:
    (tmp_path / "ivr_flows").mkdir()
    result = run_cli("flows", "check", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.splitlines() == ["callcenter: error: no flow files (*.yaml) in ivr_flows"]
