"""Load the YAML config and report every problem as FILE:LINE: key.path: message."""

from __future__ import annotations

import difflib
import re
import types
import typing
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from edge.config import EdgeConfig
from edge.config_devices import DEVICE_MODELS
from edge.errors import ConfigError, ConfigProblem

Loc = tuple[str | int, ...]
_LOCATED = re.compile(r"^(?:Value error, )?\[at ([^\]]*)\] (.*)$", re.DOTALL)


def load_config(path: Path) -> EdgeConfig:
    """Read and validate a config file; raise ConfigError listing every problem."""
    config, problems = _load(path)
    if problems or config is None:
        raise ConfigError(problems)
    return config


def check_config(path: Path) -> list[ConfigProblem]:
    """Return every problem in a config file (an empty list when it is valid)."""
    return _load(path)[1]


def parse_config_text(text: str, name: str) -> EdgeConfig:
    """Validate config text (used for the packaged demo config); raise ConfigError."""
    config, problems = _parse(text, name)
    if problems or config is None:
        raise ConfigError(problems)
    return config


def _load(path: Path) -> tuple[EdgeConfig | None, list[ConfigProblem]]:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        return None, [ConfigProblem(str(path), 0, "<file>", f"cannot read: {err}")]
    return _parse(text, str(path))


def _parse(text: str, name: str) -> tuple[EdgeConfig | None, list[ConfigProblem]]:
    try:
        data = yaml.safe_load(text)
        lines = _key_lines(yaml.compose(text))
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        line = mark.line + 1 if mark is not None else 0
        return None, [ConfigProblem(name, line, "<yaml>", str(err).replace("\n", " "))]
    if data is None:
        data = {}
    if not isinstance(data, dict):
        return None, [ConfigProblem(name, 1, "<root>", "the config must be a mapping of keys")]
    try:
        return EdgeConfig.model_validate(data), []
    except ValidationError as err:
        return None, [_problem(name, e, lines) for e in err.errors(include_url=False)]


def _problem(name: str, error: Any, lines: dict[Loc, int]) -> ConfigProblem:
    tagged: Loc = tuple(error["loc"])
    # A device's errors carry its type tag as an extra path step (devices.0.node.port);
    # the YAML has no such key, so drop it for the line and the dotted path.
    loc = _untagged(tagged)
    message: str = error["msg"]
    match = _LOCATED.match(message)
    if match:
        loc = loc + tuple(int(p) if p.isdigit() else p for p in match.group(1).split(".") if p)
        message = match.group(2)
    elif message.startswith("Value error, "):
        message = message.removeprefix("Value error, ")
    if error["type"] == "extra_forbidden":
        message = "unknown key" + _suggestion(tagged)
    elif error["type"] == "missing":
        message = "required key is missing"
    return ConfigProblem(name, _line_for(loc, lines), _dotted(loc), message)


def _untagged(loc: Loc) -> Loc:
    if len(loc) >= 3 and loc[0] == "devices" and isinstance(loc[1], int) and loc[2] in DEVICE_MODELS:
        return loc[:2] + loc[3:]
    return loc


def _suggestion(loc: Loc) -> str:
    model = _model_at(loc[:-1])
    if model is None or not isinstance(loc[-1], str):
        return ""
    close = difflib.get_close_matches(loc[-1], list(model.model_fields), n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else ""


def _model_at(loc: Loc) -> type[BaseModel] | None:
    """Walk the model tree along a location to the model that owns its last key."""
    model: type[BaseModel] = EdgeConfig
    for part in loc:
        if isinstance(part, int):
            continue
        field = model.model_fields.get(part)
        if field is None:
            tagged = DEVICE_MODELS.get(part)
            if tagged is None:
                return None
            model = tagged
            continue
        inner = _inner_model(field.annotation)
        if inner is None:
            return None
        model = inner
    return model


def _inner_model(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    origin = typing.get_origin(annotation)
    if origin in (list, typing.Union, types.UnionType):
        for arg in typing.get_args(annotation):
            found = _inner_model(arg)
            if found is not None:
                return found
    return None


def _line_for(loc: Loc, lines: dict[Loc, int]) -> int:
    for end in range(len(loc), -1, -1):
        if loc[:end] in lines:
            return lines[loc[:end]]
    return 1


def _dotted(loc: Loc) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else part)
    return out or "<root>"


def _key_lines(node: yaml.Node | None) -> dict[Loc, int]:
    """Map every key path in the YAML document to the 1-based line it is on."""
    lines: dict[Loc, int] = {(): 1}

    def walk(n: yaml.Node, loc: Loc) -> None:
        if isinstance(n, yaml.MappingNode):
            for key, value in n.value:
                if isinstance(key, yaml.ScalarNode):
                    child = (*loc, key.value)
                    lines[child] = key.start_mark.line + 1
                    walk(value, child)
        elif isinstance(n, yaml.SequenceNode):
            for i, item in enumerate(n.value):
                lines[(*loc, i)] = item.start_mark.line + 1
                walk(item, (*loc, i))

    if node is not None:
        walk(node, ())
    return lines
