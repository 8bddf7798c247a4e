"""A flow drawn for supervisors: Graphviz DOT of its nodes and of where each key leads.

One box per node (its id, its kind with the essentials, and the start of its prompt in one
language), one arrow per way on, labelled with what takes the caller there: the key pressed
("1"), "invalid / timeout", "open" / "closed", "found / not found", ... Exits (transfer to a
queue, hang-up) are drawn with a double border in their own colours, so a supervisor sees at a
glance where calls leave the IVR. :func:`to_dot` is pure; :func:`render_svg` runs Graphviz.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Final

from callcenter.ivr.flow import (
    KINDS,
    Collect,
    Condition,
    CreateTicket,
    Flow,
    Goto,
    Hangup,
    Language,
    LookupTicket,
    Menu,
    Node,
    Play,
    Prompt,
    SetFields,
    SpeechChoice,
    SubFlow,
    Transfer,
    is_exit,
)

PROMPT_CHARS: Final = 48  # of a prompt shown in a box
RENDER_TIMEOUT: Final = 30.0  # seconds Graphviz may take
START: Final = "(start)"  # not a possible node id: the arrow into the start node
FONT: Final = "Helvetica"

# Fill colours: input nodes, branches, exits; everything else is light grey.
_FILL: Final[dict[type[Node], str]] = {
    Menu: "#e3eefc",
    SpeechChoice: "#e3eefc",
    Collect: "#e3eefc",
    Language: "#e3eefc",
    Condition: "#fff3cd",
    SubFlow: "#ece3fc",
    Transfer: "#d4edda",
    Hangup: "#f8d7da",
}
_PLAIN_FILL: Final = "#f5f5f5"


class GraphError(Exception):
    """Graphviz is missing or failed; the message is one line for the operator."""


def to_dot(flow: Flow, lang: str | None = None) -> str:
    """The flow as a Graphviz ``digraph``; prompts shown in ``lang`` (default: the flow's)."""
    language = lang or flow.language
    title = f"{flow.name}: {flow.description}" if flow.description else flow.name
    out = [
        f"digraph {_quote(flow.name)} {{",
        f"  graph [label={_quote(title)}, labelloc=t, fontname={FONT}, fontsize=14, rankdir=TB];",
        f'  node [shape=box, style="rounded,filled", fillcolor="{_PLAIN_FILL}",'
        f" fontname={FONT}, fontsize=10];",
        f"  edge [fontname={FONT}, fontsize=9];",
        f'  {_quote(START)} [shape=circle, style=filled, fillcolor="#333333", fontcolor=white,'
        ' label="start"];',
    ]
    called: list[str] = []
    for node_id, node in flow.nodes.items():
        lines = [node_id, _summary(node), *_details(node, language, flow.language)]
        attributes = [f"label={_label(lines)}", f'fillcolor="{_FILL.get(type(node), _PLAIN_FILL)}"']
        if is_exit(node):
            attributes += ['style="filled,bold"', "peripheries=2"]
        out.append(f"  {_quote(node_id)} [{', '.join(attributes)}];")
        if isinstance(node, SubFlow) and node.flow not in called:
            called.append(node.flow)
    for name in called:
        out.append(
            f'  {_quote("flow " + name)} [shape=folder, style=filled, fillcolor="#ece3fc", '
            f"label={_quote('flow ' + name)}];"
        )
    out.append(f"  {_quote(START)} -> {_quote(flow.start)};")
    for node_id, node in flow.nodes.items():
        for target, labels in _edges(node).items():
            shown = [label for label in labels if label]
            label = f" [label={_label(shown)}]" if shown else ""
            out.append(f"  {_quote(node_id)} -> {_quote(target)}{label};")
        if isinstance(node, SubFlow):
            out.append(f'  {_quote(node_id)} -> {_quote("flow " + node.flow)} [style=dashed, label="runs"];')
    out.append("}")
    return "\n".join(out) + "\n"


def render_svg(dot: str, out: Path, *, program: str = "dot", timeout: float = RENDER_TIMEOUT) -> None:
    """Draw ``dot`` with Graphviz into the SVG file ``out`` (written whole or not at all)."""
    executable = shutil.which(program)
    if executable is None:
        raise GraphError(
            f"Graphviz is not installed: no '{program}' command (Debian: apt-get install graphviz)"
        )
    try:
        result = subprocess.run(
            [executable, "-Tsvg"],
            input=dot.encode("utf-8"),
            capture_output=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise GraphError(f"Graphviz took more than {timeout:g} seconds to draw the flow") from exc
    except OSError as exc:
        raise GraphError(f"cannot run Graphviz ({executable}): {exc.strerror or exc}") from exc
    if result.returncode != 0:
        reason = result.stderr.decode("utf-8", "replace").strip().splitlines()
        raise GraphError(f"Graphviz failed: {reason[0] if reason else f'exit status {result.returncode}'}")
    partial = out.with_name(out.name + ".partial")
    try:
        partial.write_bytes(result.stdout)
        partial.replace(out)
    except OSError as exc:
        partial.unlink(missing_ok=True)
        raise GraphError(f"cannot write {out}: {exc.strerror or exc}") from exc


# --- boxes -------------------------------------------------------------------------------------


def _kind(node: Node) -> str:
    return next((kind for kind, cls in KINDS.items() if isinstance(node, cls)), type(node).__name__)


def _summary(node: Node) -> str:
    """The kind, with what matters about this node."""
    if isinstance(node, Menu):
        return f"menu ({node.timeout:g} s, {node.retries} retries)"
    if isinstance(node, SpeechChoice):
        return f"speech ({node.engine}, {node.listen_seconds:g} s)"
    if isinstance(node, Collect):
        digits = (
            f"{node.min_digits}"
            if node.min_digits == node.max_digits
            else f"{node.min_digits}-{node.max_digits}"
        )
        return f"collect {node.field} ({digits} digits)"
    if isinstance(node, SetFields):
        return "set " + ", ".join(f"{k}={v}" for k, v in node.values.items())
    if isinstance(node, CreateTicket):
        return f"create ticket ({node.channel})"
    if isinstance(node, LookupTicket):
        return f"lookup ticket ({node.field})"
    if isinstance(node, Transfer):
        priority = f", priority {node.priority}" if node.priority else ""
        return f"transfer to queue {node.queue}{priority}"
    if isinstance(node, Condition):
        holidays = ", closed on holidays" if node.closed_on_holidays else ""
        return f"condition: days {_days(node.open_days)}, {node.open_from}-{node.open_until}{holidays}"
    if isinstance(node, Language):
        return "language " + ", ".join(f"{k}={v}" for k, v in node.options.items())
    if isinstance(node, SubFlow):
        return f"subflow {node.flow}"
    if isinstance(node, Hangup):
        return "hang up"
    return _kind(node)


def _details(node: Node, lang: str, default: str) -> list[str]:
    """The start of what the caller hears here, in quotes."""
    prompt: Prompt | None = None
    if isinstance(node, (Play, Menu, Collect, SpeechChoice, Language)):
        prompt = node.prompt
    elif isinstance(node, (Transfer, Hangup)):
        prompt = node.prompt
    elif isinstance(node, CreateTicket):
        prompt = node.readback
    elif isinstance(node, LookupTicket):
        prompt = node.found
    if not prompt:
        return []
    text = prompt.get(lang) or prompt.get(default) or next(iter(prompt.values()))
    return [f'"{_short(text)}"']


def _days(days: tuple[int, ...]) -> str:
    ordered = sorted(days)
    if len(ordered) > 2 and ordered == list(range(ordered[0], ordered[-1] + 1)):
        return f"{ordered[0]}-{ordered[-1]}"
    return ",".join(str(d) for d in ordered)


def _short(text: str) -> str:
    words = " ".join(text.split())
    return words if len(words) <= PROMPT_CHARS else words[: PROMPT_CHARS - 1].rstrip() + "…"


# --- arrows ------------------------------------------------------------------------------------


def _edges(node: Node) -> dict[str, list[str]]:
    """Target node -> the labels of the ways there (in order; "" for a plain "next")."""
    edges: dict[str, list[str]] = {}

    def add(target: str, label: str) -> None:
        edges.setdefault(target, []).append(label)

    if isinstance(node, Menu):
        for key, option in node.options.items():
            add(option.next, _option_label(key, option.set))
        add(node.default, "invalid / timeout")
    elif isinstance(node, SpeechChoice):
        words: dict[str, list[str]] = {}
        for word, key in node.grammar.items():
            words.setdefault(key, []).append(word)
        for key, option in node.options.items():
            spoken = f' "{", ".join(words[key])}"' if key in words else ""
            add(option.next, _option_label(key, option.set) + spoken)
        add(node.default, "not understood")
    elif isinstance(node, Collect):
        add(node.next, "ok")
        add(node.on_fail, "invalid / timeout")
    elif isinstance(node, Condition):
        add(node.if_open, "open")
        add(node.if_closed, "closed")
    elif isinstance(node, LookupTicket):
        add(node.next, "found / not found")
    elif isinstance(node, SubFlow):
        add(node.next, "return")
    elif isinstance(node, (Play, SetFields, CreateTicket, Language, Goto)):
        add(node.next, "")
    return edges


def _option_label(key: str, values: dict[str, str]) -> str:
    return key + (" (" + ", ".join(f"{k}={v}" for k, v in values.items()) + ")" if values else "")


# --- DOT text ----------------------------------------------------------------------------------


def _escape(text: str) -> str:
    """Text for inside a DOT double-quoted string: shown as written, on one line."""
    return " ".join(text.splitlines()).replace("\\", "\\\\").replace('"', '\\"')


def _quote(text: str) -> str:
    return f'"{_escape(text)}"'


def _label(lines: list[str]) -> str:
    """A quoted DOT label of several lines, joined by DOT's own line break."""
    return '"' + "\\n".join(_escape(line) for line in lines) + '"'
