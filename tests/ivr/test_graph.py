"""The drawing of a flow: DOT text with every node and way on, and a real SVG from Graphviz."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from callcenter.ivr.flow import Flow, Hangup, Menu, MenuOption, Play
from callcenter.ivr.graph import GraphError, render_svg, to_dot
from callcenter.ivr.loader import load_flows
from tests.realparts import missing

FIXTURES = Path(__file__).parent / "fixtures"
SVG = "{http://www.w3.org/2000/svg}"


@pytest.fixture
def flows() -> dict[str, Flow]:
    return load_flows([FIXTURES / "good_hotline.yaml", FIXTURES / "good_status.yaml"])


def needs_graphviz() -> None:
    if shutil.which("dot") is None:
        missing("Graphviz 'dot' is not installed (apt-get install graphviz)")


def test_every_node_and_every_way_on_is_drawn(flows: dict[str, Flow]) -> None:
    dot = to_dot(flows["hotline"])
    assert dot.startswith('digraph "hotline" {') and dot.endswith("}\n")
    for node_id in flows["hotline"].nodes:
        assert f'  "{node_id}" [label="{node_id}\\n' in dot
    edges = [
        '"(start)" -> "jam";',
        '"jam" -> "welcome" [label="open"];',
        '"jam" -> "tutup" [label="closed"];',
        '"welcome" -> "menu_bahasa";',
        '"kategori" -> "lokasi" [label="1 (category=JALAN)"];',
        '"kategori" -> "pilih_layanan" [label="2"];',
        '"kategori" -> "status_lookup" [label="9"];',
        '"kategori" -> "ulang" [label="*"];',
        '"kategori" -> "petugas" [label="invalid / timeout"];',
        '"ulang" -> "kategori";',
        '"lokasi" -> "buat_tiket" [label="ok\\ninvalid / timeout"];',  # both ways to one node
        '"pilih_layanan" -> "tandai" [label="1 (service=police) \\"polisi, police\\"\\n'
        '3 (service=ambulance) \\"ambulans, ambulance\\""];',
        '"pilih_layanan" -> "petugas" [label="not understood"];',
        '"status_lookup" -> "selesai" [label="return"];',
        '"status_lookup" -> "flow status" [style=dashed, label="runs"];',
    ]
    for edge in edges:
        assert f"  {edge}\n" in dot
    status = to_dot(flows["status"])
    assert '"cek" -> "lagi" [label="found / not found"];' in status
    assert '"lagi" -> "selesai" [label="invalid / timeout"];' in status


def test_boxes_show_kind_and_prompt_and_exits_stand_out(flows: dict[str, Flow]) -> None:
    dot = to_dot(flows["hotline"])
    lines = {line.split(" [", 1)[0].strip(): line for line in dot.splitlines() if " [label=" in line}
    assert (
        'label="kategori\\nmenu (5 s, 2 retries)\\n\\"Tekan 1 untuk jalan rusak, 2 untuk layanan daru…\\""'
        in (lines['"kategori"'])
    )
    assert "condition: days 1-5, 08:00-16:00, closed on holidays" in lines['"jam"']
    exits = {name for name, line in lines.items() if "peripheries=2" in line}
    assert exits == {'"petugas"', '"tutup"', '"selesai"'}
    english = to_dot(flows["hotline"], "en")
    assert '\\"Welcome to the complaint line.\\"' in english
    assert "Selamat datang" not in english


def test_texts_are_escaped_for_dot() -> None:
    flow = Flow(
        name="uji",
        start="a",
        nodes={
            "a": Play({"id": 'Tekan "1" lalu \\ dan\nbaris baru'}, "b"),
            "b": Menu({"id": "Pilih"}, {"#": MenuOption("c", {"catatan": 'kata "kutip"'})}, "c"),
            "c": Hangup(),
        },
        description='Uji "kutip"',
    )
    dot = to_dot(flow)
    assert 'label="a\\nplay\\n\\"Tekan \\"1\\" lalu \\\\ dan baris baru\\""' in dot
    assert '"b" -> "c" [label="# (catatan=kata \\"kutip\\")\\ninvalid / timeout"];' in dot
    assert 'graph [label="uji: Uji \\"kutip\\""' in dot


def test_an_svg_is_drawn_with_graphviz(flows: dict[str, Flow], tmp_path: Path) -> None:
    needs_graphviz()
    out = tmp_path / "hotline.svg"
    render_svg(to_dot(flows["hotline"]), out)
    root = ET.fromstring(out.read_bytes())  # noqa: S314 - our own Graphviz output
    assert root.tag == f"{SVG}svg"
    titles = {t.text for t in root.iter(f"{SVG}title")}
    assert set(flows["hotline"].nodes) <= titles
    texts = " ".join(t.text or "" for t in root.iter(f"{SVG}text"))
    assert "invalid / timeout" in texts and "kategori" in texts
    assert not (tmp_path / "hotline.svg.partial").exists()


def test_graphviz_missing_or_failing_is_one_clear_line(tmp_path: Path) -> None:
    with pytest.raises(GraphError) as caught:
        render_svg("digraph { a }", tmp_path / "x.svg", program="no-such-graphviz-dot")
    assert str(caught.value) == (
        "Graphviz is not installed: no 'no-such-graphviz-dot' command (Debian: apt-get install graphviz)"
    )
    needs_graphviz()
    with pytest.raises(GraphError, match=r"^Graphviz failed: .*syntax error"):
        render_svg("digraph { a -> }", tmp_path / "x.svg")
    assert not (tmp_path / "x.svg").exists()
    with pytest.raises(GraphError, match=r"^cannot write .*nowhere/x.svg: No such file or directory$"):
        render_svg("digraph { a }", tmp_path / "nowhere" / "x.svg")


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


@pytest.fixture
def flows_dir(tmp_path: Path) -> Path:
    (tmp_path / "ivr_flows").mkdir()
    for name in ("good_hotline.yaml", "good_status.yaml"):
        shutil.copy(FIXTURES / name, tmp_path / "ivr_flows" / name)
    return tmp_path


def test_cli_graph_writes_the_svg(flows_dir: Path) -> None:
    needs_graphviz()
    result = run_cli("flows", "graph", "status", "-o", "status.svg", "--lang", "en", cwd=flows_dir)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "wrote status.svg: flow status, 6 nodes\n"
    root = ET.fromstring((flows_dir / "status.svg").read_bytes())  # noqa: S314 - our own Graphviz output
    assert "Your ticket status:" in " ".join(t.text or "" for t in root.iter(f"{SVG}text"))


def test_cli_graph_of_an_unknown_flow(flows_dir: Path) -> None:
    result = run_cli("flows", "graph", "hotlien", "-o", "x.svg", cwd=flows_dir)
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        "callcenter: error: no flow 'hotlien' in ivr_flows (flows: hotline, status)"
    ]
    assert not (flows_dir / "x.svg").exists()


def test_cli_graph_refuses_broken_flows(flows_dir: Path) -> None:
    shutil.copy(FIXTURES / "unknown_node.yaml", flows_dir / "ivr_flows" / "zz.yaml")
    result = run_cli("flows", "graph", "status", "-o", "x.svg", cwd=flows_dir)
    assert result.returncode == 2
    # unknown_node.yaml is also named "hotline": both problems are told.
    assert result.stderr.splitlines() == [
        "callcenter: error: " + line
        for line in (
            "ivr_flows/zz.yaml:1: flow 'hotline' is also defined in ivr_flows/good_hotline.yaml:2",
            "ivr_flows/zz.yaml:9: menu 'kategori': option '7' goes to unknown node 'jalan_rusak'",
        )
    ]
