"""Read ``ivr_flows/*.yaml`` into :class:`~callcenter.ivr.flow.Flow` objects, refusing any mistake.

The files are written by administrators, not programmers, so every problem in a file is reported
at once, each with its file and line, in words that name the node and the field::

    ivr_flows/hotline.yaml:42: menu 'kategori': option '7' goes to unknown node 'jalan_rusak'

The YAML is composed (``yaml.compose`` with the safe loader) rather than loaded, so that every
value keeps its line and duplicate keys, which PyYAML would silently drop, can be found. The
fields of each node kind are those of its dataclass in ``flow.py``: the names, which are
required (no default) and the types come from there; this module adds the rules an
administrator needs to hear about (keys, ranges, references, reachability, loops).

:func:`load_flow` checks one file on its own; :func:`load_flows` also checks what spans files:
duplicate flow names, subflows naming an unknown flow, and flows that call each other in a loop.
Pure apart from reading the files.
"""

from __future__ import annotations

import dataclasses
import difflib
import re
import typing
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import yaml
from yaml.constructor import SafeConstructor
from yaml.error import MarkedYAMLError, YAMLError
from yaml.nodes import MappingNode, ScalarNode, SequenceNode
from yaml.nodes import Node as YamlNode
from yaml.reader import ReaderError

from callcenter.ivr import flow as model
from callcenter.ivr.flow import KINDS, LANGUAGES, Flow, MenuOption, SubFlow, is_exit, successors
from callcenter.tickets.lifecycle import STATUSES

MAX_FILE_BYTES: Final = 1024 * 1024
TOP_LEVEL_KEYS: Final = ("flow", "description", "language", "start", "nodes")
REQUIRED_TOP_LEVEL: Final = ("flow", "start", "nodes")
DTMF_KEYS: Final = "0123456789*#"
TERMINATORS: Final = ("#", "*", "")
MAX_SECONDS: Final = 60
MAX_RETRIES: Final = 5
MAX_DIGITS: Final = 20
# Fields (of any kind) whose value names another node of the same flow.
REFERENCE_FIELDS: Final = ("next", "default", "on_fail", "if_open", "if_closed")

FLOW_NAME: Final = re.compile(r"[a-z0-9_-]+")
NODE_ID: Final = re.compile(r"[a-z0-9_]+")
IDENTIFIER: Final = re.compile(r"[a-z_]+")
CLOCK: Final = re.compile(r"([01][0-9]|2[0-3]):[0-5][0-9]")

_NULL = "tag:yaml.org,2002:null"
_STR = "tag:yaml.org,2002:str"
_INT = "tag:yaml.org,2002:int"
_FLOAT = "tag:yaml.org,2002:float"
_BOOL = "tag:yaml.org,2002:bool"
# Plain scalars taken as the text the administrator typed: `channel: 112`, `open_until: 16:00`
# (YAML 1.1 would read that as the number 960) and `en: Yes` all mean the text as written.
_TEXT_TAGS = (_STR, _INT, _FLOAT, _BOOL)

FIELD_NAME_RULE = "lower-case letters and _"


@dataclass(frozen=True)
class FlowProblem:
    """One mistake in a flow file. ``line`` is 1-based; 0 when it concerns the whole file."""

    file: str
    line: int
    message: str

    def __str__(self) -> str:
        if self.line <= 0:
            return f"{self.file}: {self.message}"
        return f"{self.file}:{self.line}: {self.message}"


class FlowError(Exception):
    """One or more flow files are wrong; ``str()`` gives one problem per line."""

    def __init__(self, problems: Sequence[FlowProblem]) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


def load_flow(path: Path) -> Flow:
    """The flow in one file, checked on its own (subflows are not looked up: see load_flows)."""
    parsed = _parse_file(path)
    if parsed.problems or parsed.flow is None:
        raise FlowError(parsed.problems)
    return parsed.flow


def load_flows(paths: Iterable[Path]) -> dict[str, Flow]:
    """Flows by name from files and folders (a folder means its ``*.yaml`` files, sorted).

    Raises :class:`FlowError` with every problem of every file, plus those between files.
    """
    files = _expand(paths)
    parsed = [_parse_file(path) for path in files]
    _check_across(parsed)
    order = {p.file: index for index, p in enumerate(parsed)}
    problems = sorted(
        (problem for p in parsed for problem in p.problems),
        key=lambda problem: (order.get(problem.file, len(order)), problem.line),
    )
    if problems:
        raise FlowError(problems)
    return {p.flow.name: p.flow for p in parsed if p.flow is not None}


def flow_files(paths: Iterable[Path]) -> list[Path]:
    """The files :func:`load_flows` reads for these paths, in that order."""
    return _expand(paths)


# --- files -------------------------------------------------------------------------------------


@dataclass
class _Parsed:
    file: str  # as shown in messages
    problems: list[FlowProblem] = field(default_factory=list)
    flow: Flow | None = None
    name: str | None = None  # known even when the rest of the file is wrong
    name_line: int = 0
    # (message prefix such as "subflow 'cek'", flow called, line)
    subflows: list[tuple[str, str, int]] = field(default_factory=list)


def _expand(paths: Iterable[Path]) -> list[Path]:
    out: list[Path] = []
    seen: set[Path] = set()
    for path in paths:
        found = sorted(p for p in path.glob("*.yaml") if p.is_file()) if path.is_dir() else [path]
        for file in found:
            key = file.resolve()
            if key not in seen:
                seen.add(key)
                out.append(file)
    return out


def display_path(path: Path) -> str:
    """The path as given, or relative to the working directory when it lies below it."""
    if path.is_absolute():
        try:
            return str(path.relative_to(Path.cwd()))
        except (ValueError, OSError):
            return str(path)
    return str(path)


def _parse_file(path: Path) -> _Parsed:
    shown = display_path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        return _Parsed(shown, [FlowProblem(shown, 0, f"cannot read: {exc.strerror or exc}")])
    if len(data) > MAX_FILE_BYTES:
        message = f"the file is too large ({len(data)} bytes; at most {MAX_FILE_BYTES})"
        return _Parsed(shown, [FlowProblem(shown, 0, message)])
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        return _Parsed(shown, [FlowProblem(shown, line, "the file is not UTF-8 text")])
    return _FileChecker(shown).check(text)


# --- one file ----------------------------------------------------------------------------------


class _Invalid:
    """A value that was reported as wrong (distinct from None, a valid "absent")."""


INVALID: Final = _Invalid()


@dataclass
class _Reference:
    where: str  # "menu 'kategori'"
    what: str  # "option '7'", "next"
    target: str
    line: int


class _FileChecker:
    def __init__(self, file: str) -> None:
        self.result = _Parsed(file)
        self.where = ""  # prefix of messages about the node being read
        self.language: str | None = "id"  # None when the flow's language is itself wrong
        self.references: list[_Reference] = []
        self.numbers = SafeConstructor()

    # reporting

    def report(self, at: YamlNode | int, message: str) -> None:
        line = at if isinstance(at, int) else _line(at)
        text = f"{self.where}: {message}" if self.where else message
        self.result.problems.append(FlowProblem(self.result.file, line, text))

    # the document

    def check(self, text: str) -> _Parsed:
        try:
            root = yaml.compose(text, Loader=yaml.SafeLoader)
        except MarkedYAMLError as exc:
            self.report(_syntax_line(exc), _syntax_message(exc))
            return self.result
        except ReaderError as exc:
            line = text.count("\n", 0, exc.position) + 1
            self.report(line, f"character U+{exc.character:04X} is not allowed in a YAML file")
            return self.result
        except RecursionError:
            self.report(1, "the file is nested too deeply")
            return self.result
        except YAMLError as exc:  # pragma: no cover - every PyYAML error above has a line
            self.report(1, f"invalid YAML: {exc}")
            return self.result
        if root is None:
            self.report(1, "the file is empty (expected a mapping with flow, start and nodes)")
            return self.result
        if not isinstance(root, MappingNode):
            self.report(root, f"expected a mapping with flow, start and nodes, got {_describe(root)}")
            return self.result
        top = _pairs(root)
        nodes_value = top["nodes"][1] if "nodes" in top else None
        self.find_duplicates(root, nodes_value)
        for key, (key_node, _value) in top.items():
            if key not in TOP_LEVEL_KEYS:
                self.report(key_node, f"unknown key '{key}'{_hint(key, TOP_LEVEL_KEYS, 'keys')}")
        for key in REQUIRED_TOP_LEVEL:
            if key not in top:
                self.report(root, f"missing key '{key}'")

        name = self.flow_name(top)
        description = ""
        if "description" in top:
            description = self.text(top["description"][1], "description", allow_empty=True) or ""
        self.language = "id"
        if "language" in top:
            key_node, value = top["language"]
            language = self.text(value, "language")
            if language is not None and language not in LANGUAGES:
                self.report(
                    key_node, f"language '{language}' is not supported (expected {_either(LANGUAGES)})"
                )
                language = None
            self.language = language
        start: str | None = None
        if "start" in top:
            start = self.text(top["start"][1], "start")

        nodes: dict[str, model.Node] = {}
        declared: dict[str, ScalarNode] = {}  # every node id, with its key (for lines)
        if nodes_value is not None:
            if not isinstance(nodes_value, MappingNode):
                self.report(
                    top["nodes"][0],
                    f"nodes must be a mapping of node id to node, got {_describe(nodes_value)}",
                )
            elif not nodes_value.value:
                self.report(top["nodes"][0], "nodes is empty")
            else:
                for node_id, (key_node, value) in _pairs(nodes_value).items():
                    declared[node_id] = key_node
                    node = self.node(node_id, key_node, value)
                    if node is not None:
                        nodes[node_id] = node
        self.where = ""

        if start is not None and declared and start not in declared:
            at = top["start"][0]
            self.report(at, f"start node '{start}' is not defined under nodes{_suggest(start, declared)}")
        for ref in self.references:
            if ref.target not in declared:
                message = f"{ref.what} goes to unknown node '{ref.target}'{_suggest(ref.target, declared)}"
                self.where = ref.where
                self.report(ref.line, message)
        self.where = ""
        self.check_graph(start, nodes, declared)

        self.result.problems.sort(key=lambda problem: problem.line)
        if not self.result.problems and name is not None and start is not None and self.language:
            self.result.flow = Flow(
                name=name,
                start=start,
                nodes=nodes,
                language=self.language,
                description=description,
                source=self.result.file,
            )
        return self.result

    def flow_name(self, top: dict[str, tuple[ScalarNode, YamlNode]]) -> str | None:
        if "flow" not in top:
            return None
        key_node, value = top["flow"]
        name = self.text(value, "flow")
        if name is None:
            return None
        if not FLOW_NAME.fullmatch(name):
            self.report(key_node, f"flow name '{name}' may only have lower-case letters, digits, - and _")
            return None
        self.result.name, self.result.name_line = name, _line(key_node)
        return name

    def find_duplicates(self, root: YamlNode, nodes_value: YamlNode | None) -> None:
        """Duplicate keys anywhere (PyYAML would keep the last one without a word)."""
        seen: set[int] = set()
        stack: list[YamlNode] = [root]
        while stack:
            node = stack.pop()
            if id(node) in seen:  # an alias: the same node again
                continue
            seen.add(id(node))
            if isinstance(node, SequenceNode):
                stack.extend(node.value)
            elif isinstance(node, MappingNode):
                first: dict[str, int] = {}
                for key, value in node.value:
                    stack.append(value)
                    if not isinstance(key, ScalarNode):
                        self.report(key, f"a key must be plain text, got {_describe(key)}")
                        continue
                    if key.value in first:
                        what = "node id" if node is nodes_value else "key"
                        self.report(key, f"duplicate {what} '{key.value}' (first at line {first[key.value]})")
                    else:
                        first[key.value] = _line(key)

    # nodes

    def node(self, node_id: str, key_node: ScalarNode, value: YamlNode) -> model.Node | None:
        self.where = f"node '{node_id}'"
        if not NODE_ID.fullmatch(node_id):
            self.report(key_node, "a node id may only have lower-case letters, digits and _")
        if not isinstance(value, MappingNode):
            self.report(key_node, f"expected a mapping with a kind, got {_describe(value)}")
            return None
        fields_ = _pairs(value)
        if "kind" not in fields_:
            self.report(key_node, f"missing field 'kind' (one of: {', '.join(KINDS)})")
            return None
        kind = self.text(fields_["kind"][1], "kind")
        if kind is None:
            return None
        cls = KINDS.get(kind)
        if cls is None:
            at = fields_["kind"][0]
            self.report(at, f"unknown kind '{kind}'{_hint(kind, KINDS, 'one of')}")
            return None
        self.where = f"{kind} '{node_id}'"
        specs = {f.name: f for f in dataclasses.fields(cls)}
        values: dict[str, Any] = {}
        ok = True
        for name, (field_key, field_value) in fields_.items():
            if name == "kind":
                continue
            spec = specs.get(name)
            if spec is None:
                self.report(field_key, f"unknown field '{name}'{_hint(name, specs, f'fields of {kind}')}")
                ok = False
                continue
            converted = self.field(cls, spec, field_key, field_value)
            if converted is INVALID:
                ok = False
            else:
                values[name] = converted
        for name, spec in specs.items():
            if _required(spec) and name not in fields_:
                self.report(key_node, f"missing field '{name}'")
                ok = False
        if not ok:
            return None
        if not self.consistent(cls, values, fields_):
            return None
        node: model.Node = cls(**values)
        return node

    def consistent(
        self, cls: type[model.Node], values: dict[str, Any], fields_: dict[str, tuple[ScalarNode, YamlNode]]
    ) -> bool:
        """Rules between fields of one node (each field alone is already fine)."""
        ok = True
        if cls is model.Collect:
            low, high = values.get("min_digits", 1), values.get("max_digits", 10)
            if low > high:
                at = fields_["max_digits" if "max_digits" in fields_ else "min_digits"][0]
                self.report(at, f"min_digits ({low}) is more than max_digits ({high})")
                ok = False
        elif cls is model.Condition:
            if values["open_from"] >= values["open_until"]:
                at = fields_["open_until"][0]
                self.report(
                    at,
                    f"open_from ({values['open_from']}) must be before open_until ({values['open_until']})",
                )
                ok = False
        elif cls is model.SpeechChoice:
            options: dict[str, MenuOption] = values["options"]
            grammar_value = fields_["grammar"][1]
            assert isinstance(grammar_value, MappingNode)  # it was read as a mapping
            for word, (_key, key_value) in _pairs(grammar_value).items():
                key = values["grammar"].get(word)
                if key is not None and key not in options:
                    self.report(
                        key_value,
                        f"grammar word '{word}' maps to key '{key}', which is not one of the options "
                        f"({', '.join(options)})",
                    )
                    ok = False
        return ok

    def field(
        self, cls: type[model.Node], spec: dataclasses.Field[Any], key: ScalarNode, value: YamlNode
    ) -> Any:
        name, kind = spec.name, str(spec.type)
        if kind in ("Prompt", "Prompt | None"):
            if kind == "Prompt | None" and _is_null(value):
                return None
            return self.prompt(value, name, key)
        if kind in ("str", "str | None"):
            if kind == "str | None" and _is_null(value):
                return None
            return self.string_field(cls, name, key, value)
        if kind == "float":
            return self.number(value, name, key, float_ok=True)
        if kind == "int":
            return self.number(value, name, key, float_ok=False)
        if kind == "bool":
            if isinstance(value, ScalarNode) and value.tag == _BOOL:
                return self.numbers.construct_yaml_bool(value)
            self.report(key, f"{name} must be true or false, got {_describe(value)}")
            return INVALID
        if kind == "tuple[int, ...]":
            return self.weekdays(value, name, key)
        if kind.startswith("Literal["):
            return self.choice(value, name, key, typing.get_args(typing.get_type_hints(cls)[name]))
        if kind == "dict[str, MenuOption]":
            return self.options(value, name, key)
        if kind == "dict[str, str]":
            return self.string_map(cls, value, name, key)
        if kind == "dict[str, Prompt]":
            return self.statuses(value, name, key)
        raise TypeError(f"the loader does not know the field type {kind!r} of {cls.__name__}.{name}")

    # values

    def text(
        self, value: YamlNode, what: str, *, allow_empty: bool = False, at: YamlNode | None = None
    ) -> str | None:
        """Text as typed; None (and a problem reported) for anything else or, unless allowed, nothing."""
        if isinstance(value, ScalarNode) and (value.tag in _TEXT_TAGS or value.tag == _NULL):
            text = "" if value.tag == _NULL else str(value.value)
            if text.strip() or allow_empty:
                return text
            self.report(at or value, f"{what} is empty")
            return None
        self.report(at or value, f"{what} must be text, got {_describe(value)}")
        return None

    def string_field(self, cls: type[model.Node], name: str, key: ScalarNode, value: YamlNode) -> Any:
        if name == "terminator":
            terminator = self.text(value, name, allow_empty=True, at=key)
            if terminator is None:
                return INVALID
            if terminator not in TERMINATORS:
                self.report(key, f'terminator must be "#", "*" or "" (none), got \'{terminator}\'')
                return INVALID
            return terminator
        text = self.text(value, name, at=key)
        if text is None:
            return INVALID
        if name in REFERENCE_FIELDS:
            self.references.append(_Reference(self.where, name, text, _line(key)))
        elif name == "field" and not IDENTIFIER.fullmatch(text):
            self.report(key, f"field name '{text}' may only have {FIELD_NAME_RULE}")
            return INVALID
        elif name == "flow" and cls is SubFlow:
            if not FLOW_NAME.fullmatch(text):
                self.report(key, f"flow name '{text}' may only have lower-case letters, digits, - and _")
                return INVALID
            self.result.subflows.append((self.where, text, _line(key)))
        elif name in ("open_from", "open_until") and not CLOCK.fullmatch(text):
            self.report(key, f"{name} must be a time of day as HH:MM (00:00 to 23:59), got '{text}'")
            return INVALID
        elif name == "pattern":
            try:
                re.compile(text)
            except re.error as exc:
                self.report(key, f"pattern is not a valid regular expression: {exc}")
                return INVALID
        return text

    def number(self, value: YamlNode, name: str, key: ScalarNode, *, float_ok: bool) -> Any:
        number: float
        if isinstance(value, ScalarNode) and value.tag == _INT:
            number = self.numbers.construct_yaml_int(value)
        elif float_ok and isinstance(value, ScalarNode) and value.tag == _FLOAT:
            number = self.numbers.construct_yaml_float(value)
        else:
            kind = "a number" if float_ok else "a whole number"
            self.report(key, f"{name} must be {kind}, got {_describe(value)}")
            return INVALID
        low, high, unit = _RANGES.get(name, (None, None, ""))
        if name in ("timeout", "listen_seconds"):
            if not 0 < number <= MAX_SECONDS:
                self.report(
                    key, f"{name} must be more than 0 and at most {MAX_SECONDS} seconds, got {value.value}"
                )
                return INVALID
        elif low is not None and high is not None and not low <= number <= high:
            self.report(key, f"{name} must be between {low} and {high}{unit}, got {value.value}")
            return INVALID
        elif low is not None and number < low:
            self.report(key, f"{name} must be {low} or more, got {value.value}")
            return INVALID
        return float(number) if float_ok else int(number)

    def choice(self, value: YamlNode, name: str, key: ScalarNode, allowed: tuple[Any, ...]) -> Any:
        text = self.text(value, name, at=key)
        if text is None:
            return INVALID
        if text not in allowed:
            self.report(key, f"{name} must be {_either(allowed)}, got '{text}'")
            return INVALID
        return text

    def weekdays(self, value: YamlNode, name: str, key: ScalarNode) -> Any:
        rule = "a list of ISO weekdays, 1 (Monday) to 7 (Sunday), e.g. [1, 2, 3, 4, 5]"
        if not isinstance(value, SequenceNode):
            self.report(key, f"{name} must be {rule}, got {_describe(value)}")
            return INVALID
        if not value.value:
            self.report(key, f"{name} must list at least one day")
            return INVALID
        days: list[int] = []
        ok = True
        for item in value.value:
            if not (isinstance(item, ScalarNode) and item.tag == _INT):
                self.report(item, f"{name} must be {rule}, got {_describe(item)} in it")
                ok = False
                continue
            day = self.numbers.construct_yaml_int(item)
            if not 1 <= day <= 7:
                self.report(item, f"{name}: {day} is not a weekday (1 = Monday ... 7 = Sunday)")
                ok = False
            elif day in days:
                self.report(item, f"{name}: day {day} is listed twice")
                ok = False
            days.append(day)
        return tuple(days) if ok else INVALID

    def prompt(self, value: YamlNode, name: str, key: YamlNode) -> Any:
        if not isinstance(value, MappingNode):
            self.report(
                key,
                f'{name} must map languages to texts, e.g. {{id: "...", en: "..."}}, got {_describe(value)}',
            )
            return INVALID
        texts: dict[str, str] = {}
        ok = True
        for language, (lang_key, text_value) in _pairs(value).items():
            if language not in LANGUAGES:
                self.report(
                    lang_key, f"{name} has unknown language '{language}' (expected {_either(LANGUAGES)})"
                )
                ok = False
                continue
            text = self.text(text_value, f"{name} '{language}' text", at=lang_key)
            if text is None:
                ok = False
            else:
                texts[language] = text.strip()
        if self.language is not None and self.language not in _pairs(value):
            self.report(key, f"{name} has no '{self.language}' text (the flow's language)")
            ok = False
        return texts if ok else INVALID

    def options(self, value: YamlNode, name: str, key: ScalarNode) -> Any:
        if not isinstance(value, MappingNode):
            self.report(key, f"{name} must map phone keys to nodes, got {_describe(value)}")
            return INVALID
        if not value.value:
            self.report(key, f"{name} must have at least one key")
            return INVALID
        out: dict[str, MenuOption] = {}
        ok = True
        for dtmf, (option_key, option) in _pairs(value).items():
            if not self.dtmf(dtmf, option_key):
                ok = False
                continue
            what = f"option '{dtmf}'"
            if isinstance(option, ScalarNode):
                target = self.text(option, what)
                if target is None:
                    ok = False
                    continue
                self.references.append(_Reference(self.where, what, target, _line(option)))
                out[dtmf] = MenuOption(target)
                continue
            if not isinstance(option, MappingNode):
                self.report(
                    option_key,
                    f"{what} must be a node id or {{next: ..., set: {{...}}}}, got {_describe(option)}",
                )
                ok = False
                continue
            parts = _pairs(option)
            for part, (part_key, _part_value) in parts.items():
                if part not in ("next", "set"):
                    self.report(
                        part_key, f"{what}: unknown field '{part}'{_hint(part, ('next', 'set'), 'fields')}"
                    )
                    ok = False
            if "next" not in parts:
                self.report(option_key, f"{what}: missing field 'next'")
                ok = False
                continue
            target = self.text(parts["next"][1], f"{what} next", at=parts["next"][0])
            sets: Any = {}
            if "set" in parts:
                sets = self.set_values(parts["set"][1], f"{what} set", parts["set"][0])
            if target is None or sets is INVALID:
                ok = False
                continue
            self.references.append(_Reference(self.where, what, target, _line(parts["next"][0])))
            out[dtmf] = MenuOption(target, sets)
        return out if ok else INVALID

    def dtmf(self, dtmf: str, at: YamlNode) -> bool:
        if len(dtmf) == 1 and dtmf in DTMF_KEYS:
            return True
        self.report(at, f"option '{dtmf}' is not a phone key (one of 0-9, * or #)")
        return False

    def set_values(self, value: YamlNode, what: str, key: YamlNode) -> Any:
        if not isinstance(value, MappingNode):
            self.report(key, f"{what} must map field names to values, got {_describe(value)}")
            return INVALID
        out: dict[str, str] = {}
        ok = True
        for name, (name_key, item) in _pairs(value).items():
            if not IDENTIFIER.fullmatch(name):
                self.report(name_key, f"{what}: field name '{name}' may only have {FIELD_NAME_RULE}")
                ok = False
                continue
            text = self.text(item, f"{what}: {name}", at=name_key)
            if text is not None and not (text and model.FIELD_VALUE.fullmatch(text)):
                self.report(
                    name_key,
                    f"{what}: value '{text}' may only have letters, digits, spaces, '.', '_' and '-' "
                    "(at most 64)",
                )
                text = None
            if text is None:
                ok = False
            else:
                out[name] = text
        return out if ok else INVALID

    def string_map(self, cls: type[model.Node], value: YamlNode, name: str, key: ScalarNode) -> Any:
        if cls is model.SetFields:
            return self.set_values(value, name, key)
        if not isinstance(value, MappingNode):
            self.report(key, f"{name} must be a mapping, got {_describe(value)}")
            return INVALID
        if not value.value:
            self.report(key, f"{name} must have at least one entry")
            return INVALID
        out: dict[str, str] = {}
        ok = True
        for entry, (entry_key, item) in _pairs(value).items():
            if cls is model.Language:  # key -> language code
                if not self.dtmf(entry, entry_key):
                    ok = False
                    continue
                language = self.text(item, f"option '{entry}'", at=entry_key)
                if language is not None and language not in LANGUAGES:
                    self.report(
                        entry_key,
                        f"option '{entry}' is language '{language}' (expected {_either(LANGUAGES)})",
                    )
                    language = None
                if language is None:
                    ok = False
                else:
                    out[entry] = language
            else:  # speech grammar: spoken word -> key (checked against the options later)
                if not entry.strip():
                    self.report(entry_key, f"{name} has an empty word")
                    ok = False
                    continue
                target = self.text(item, f"{name} word '{entry}'", at=entry_key)
                if target is None:
                    ok = False
                else:
                    out[entry] = target
        return out if ok else INVALID

    def statuses(self, value: YamlNode, name: str, key: ScalarNode) -> Any:
        if not isinstance(value, MappingNode):
            self.report(key, f"{name} must map each ticket status to words, got {_describe(value)}")
            return INVALID
        out: dict[str, dict[str, str]] = {}
        ok = True
        for status, (status_key, words) in _pairs(value).items():
            if status not in STATUSES:
                self.report(
                    status_key, f"{name} '{status}' is not a ticket status (expected {_either(STATUSES)})"
                )
                ok = False
                continue
            prompt = self.prompt(words, f"{name} '{status}'", status_key)
            if prompt is INVALID:
                ok = False
            else:
                out[status] = prompt
        for status in STATUSES:
            if status not in out and status not in _pairs(value):
                self.report(key, f"{name} has no words for '{status}'")
                ok = False
        return out if ok else INVALID

    # the graph

    def check_graph(
        self, start: str | None, nodes: dict[str, model.Node], declared: dict[str, ScalarNode]
    ) -> None:
        """Unreachable nodes, and loops from which no exit can be reached.

        A node that could not be read has unknown edges: it is given the benefit of the doubt
        (it may exit), and when one is reachable nothing is called unreachable.
        """
        unreachable: set[str] = set()
        if start is not None and start in declared:
            reached = {start}
            todo = [start]
            complete = True
            while todo:
                current = nodes.get(todo.pop())
                if current is None:
                    complete = False
                    continue
                for nxt in successors(current):
                    if nxt in declared and nxt not in reached:
                        reached.add(nxt)
                        todo.append(nxt)
            if complete:
                unreachable = set(declared) - reached
                for node_id in sorted(unreachable, key=lambda n: _line(declared[n])):
                    self.where = f"{_kind(nodes.get(node_id))} '{node_id}'"
                    self.report(
                        declared[node_id], f"unreachable: no path from the start node '{start}' leads here"
                    )
        # Nodes that can reach an exit. A subflow counts (the flow it runs may end the call), and
        # so does an unknown target or an unreadable node (already reported).
        can_exit = {
            n for n in declared if n not in nodes or is_exit(nodes[n]) or isinstance(nodes[n], SubFlow)
        }
        changed = True
        while changed:
            changed = False
            for node_id, node in nodes.items():
                if node_id not in can_exit and any(
                    s in can_exit or s not in declared for s in successors(node)
                ):
                    can_exit.add(node_id)
                    changed = True
        trapped = {n for n in nodes if n not in can_exit}
        for node_id in sorted(trapped - unreachable, key=lambda n: _line(declared[n])):
            if _on_cycle(node_id, nodes, trapped):
                self.where = f"{_kind(nodes[node_id])} '{node_id}'"
                self.report(
                    declared[node_id],
                    "no way out: every path from here loops without reaching a transfer or hang-up",
                )
        self.where = ""


_RANGES: dict[str, tuple[int | None, int | None, str]] = {
    "retries": (0, MAX_RETRIES, ""),
    "min_digits": (1, MAX_DIGITS, ""),
    "max_digits": (1, MAX_DIGITS, ""),
    "priority": (0, None, ""),
}


# --- across files ------------------------------------------------------------------------------


def _check_across(parsed: list[_Parsed]) -> None:
    by_name: dict[str, _Parsed] = {}
    for p in parsed:
        if p.name is None:
            continue
        first = by_name.get(p.name)
        if first is None:
            by_name[p.name] = p
            continue
        p.problems.append(
            FlowProblem(
                p.file, p.name_line, f"flow '{p.name}' is also defined in {first.file}:{first.name_line}"
            )
        )
    for p in parsed:
        for where, target, line in p.subflows:
            if target not in by_name:
                message = (
                    f"{where}: flow '{target}' is not defined in any flow file{_suggest(target, by_name)}"
                )
                p.problems.append(FlowProblem(p.file, line, message))
    calls = {name: {t for _w, t, _l in p.subflows if t in by_name} for name, p in by_name.items()}
    for name, p in by_name.items():
        for where, target, line in p.subflows:
            if target not in by_name:
                continue
            back = _path(calls, target, name)
            if back is not None:
                loop = " -> ".join([name, *back])
                message = f"{where}: flows call each other in a loop: {loop}"
                p.problems.append(FlowProblem(p.file, line, message))


def _path(calls: dict[str, set[str]], source: str, goal: str) -> list[str] | None:
    """The shortest chain of flow calls from source to goal (both included), if any."""
    parents: dict[str, str | None] = {source: None}
    todo = [source]
    while todo:
        current = todo.pop(0)
        if current == goal:
            chain = [current]
            while (parent := parents[chain[-1]]) is not None:
                chain.append(parent)
            return chain[::-1]
        for nxt in sorted(calls.get(current, ())):
            if nxt not in parents:
                parents[nxt] = current
                todo.append(nxt)
    return None


# --- helpers -----------------------------------------------------------------------------------


def _pairs(mapping: MappingNode) -> dict[str, tuple[ScalarNode, YamlNode]]:
    """Key text -> (key, value), first occurrence wins; duplicates are reported elsewhere."""
    out: dict[str, tuple[ScalarNode, YamlNode]] = {}
    for key, value in mapping.value:
        if isinstance(key, ScalarNode) and key.value not in out:
            out[str(key.value)] = (key, value)
    return out


def _line(node: YamlNode) -> int:
    return int(node.start_mark.line) + 1 if node.start_mark is not None else 0


def _is_null(node: YamlNode) -> bool:
    return isinstance(node, ScalarNode) and node.tag == _NULL


def _required(spec: dataclasses.Field[Any]) -> bool:
    return spec.default is dataclasses.MISSING and spec.default_factory is dataclasses.MISSING


def _kind(node: model.Node | None) -> str:
    if node is None:
        return "node"
    return next((kind for kind, cls in KINDS.items() if isinstance(node, cls)), "node")


def _on_cycle(node_id: str, nodes: dict[str, model.Node], within: set[str]) -> bool:
    todo = [s for s in successors(nodes[node_id]) if s in within]
    seen: set[str] = set()
    while todo:
        current = todo.pop()
        if current == node_id:
            return True
        if current in seen:
            continue
        seen.add(current)
        todo.extend(s for s in successors(nodes[current]) if s in within)
    return False


def _describe(node: YamlNode) -> str:
    if isinstance(node, MappingNode):
        return "a mapping"
    if isinstance(node, SequenceNode):
        return "a list"
    if node.tag == _NULL:
        return "nothing"
    text = str(node.value)
    text = text if len(text) <= 40 else text[:37] + "..."
    return f"text '{text}'" if node.tag == _STR else text


def _either(choices: Sequence[Any]) -> str:
    items = [str(c) for c in choices]
    return items[0] if len(items) == 1 else f"{', '.join(items[:-1])} or {items[-1]}"


def _suggest(word: str, known: Iterable[str]) -> str:
    close = difflib.get_close_matches(word, list(known), n=1, cutoff=0.75)
    return f" (did you mean '{close[0]}'?)" if close else ""


def _hint(word: str, known: Iterable[str], what: str) -> str:
    names = list(known)
    return _suggest(word, names) or f" ({what}: {', '.join(names)})"


def _syntax_line(exc: MarkedYAMLError) -> int:
    # "while scanning a simple key ... could not find expected ':'": the key without its colon
    # is where the mistake is; the problem mark is already the next line.
    mark = exc.context_mark if exc.context == "while scanning a simple key" else exc.problem_mark
    mark = mark or exc.problem_mark or exc.context_mark
    return int(mark.line) + 1 if mark is not None else 1


def _syntax_message(exc: MarkedYAMLError) -> str:
    problem = exc.problem or "cannot be read"
    message = f"invalid YAML: {exc.context}: {problem}" if exc.context else f"invalid YAML: {problem}"
    if "'\\t'" in problem:
        message += " (indent with spaces, not tabs)"
    return message
