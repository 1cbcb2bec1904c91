"""Reading one YAML parameter file, bounded: the runner's only YAML input.

A parameter file is a small mapping of runbook parameters (scalars and short lists of
strings, plus ``environment:``), yet YAML can describe far more than that. Everything beyond
what a parameter file needs is refused with a :class:`UsageError` naming the file and line:

* more than ``MAX_BYTES`` bytes (read at most one byte past the limit, never the whole file);
* aliases (``*name``): refused outright, not counted. Parameter files never need them - a
  value is written where it is used - and an alias is how a few hundred bytes expand to
  billions of nodes ("billion laughs"). A budget would still let moderate expansion through
  to every later consumer (papermill writes the parameters into the notebook, expanded);
  refusing the first alias costs nothing legitimate and stops the bomb at the parser.
  Anchors (``&name``) alone are harmless and pass.
* nesting deeper than ``MAX_DEPTH`` (parameters are at most mapping -> list or mapping), or
  more than ``MAX_NODES`` values in all (a file of ours has a few dozen; pure-Python PyYAML
  needs seconds per hundred thousand, so this bounds the time as the byte limit does not);
* a number written with more than ``MAX_NUMBER_CHARS`` characters (a 5,000-digit integer
  cannot even be printed under Python's digit limit; none of ours needs more than a few);
* a key given twice in one mapping (PyYAML would silently keep the last one);
* anything else PyYAML or its constructors reject (bad syntax, an impossible date).

The loader is :class:`yaml.SafeLoader` with these limits added at the composer (aliases,
depth) and constructor (numbers, duplicate keys): no Python objects, no tags beyond YAML's.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from yaml.composer import ComposerError
from yaml.constructor import ConstructorError
from yaml.nodes import MappingNode, ScalarNode

from imds_helpers.model.errors import UsageError

MAX_BYTES = 1024 * 1024
MAX_DEPTH = 8
MAX_NODES = 10_000
MAX_NUMBER_CHARS = 32
_MERGE = "tag:yaml.org,2002:merge"


class ParameterLoader(yaml.SafeLoader):
    """SafeLoader without aliases, deep nesting, huge numbers or duplicate keys."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0
        self._nodes = 0

    def compose_node(self, parent, index):  # type: ignore[no-untyped-def]
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            raise ComposerError(None, None, f"alias *{event.anchor}: aliases are not allowed in parameter "
                                "files (write the value out)", event.start_mark)
        if self._depth >= MAX_DEPTH:
            raise ComposerError(None, None, f"nested deeper than {MAX_DEPTH} levels", self.peek_event().start_mark)
        self._nodes += 1
        if self._nodes > MAX_NODES:
            raise ComposerError(None, None, f"more than {MAX_NODES} values", self.peek_event().start_mark)
        self._depth += 1
        try:
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def construct_mapping(self, node, deep=False):  # type: ignore[no-untyped-def]
        if isinstance(node, MappingNode):
            seen: set[Any] = set()
            for key_node, _ in node.value:
                if not isinstance(key_node, ScalarNode) or key_node.tag == _MERGE:
                    continue
                key = self.construct_object(key_node)
                if key in seen:
                    from imds_helpers.model.validate import shown

                    raise ConstructorError(None, None, f"duplicate key {shown(key)}", key_node.start_mark)
                seen.add(key)
        return super().construct_mapping(node, deep=deep)

    def _bounded_number(self, node: ScalarNode) -> None:
        if len(node.value) > MAX_NUMBER_CHARS:
            raise ConstructorError(None, None, f"number of {len(node.value)} characters (at most "
                                   f"{MAX_NUMBER_CHARS})", node.start_mark)

    def construct_yaml_int(self, node):  # type: ignore[no-untyped-def]
        self._bounded_number(node)
        return super().construct_yaml_int(node)

    def construct_yaml_float(self, node):  # type: ignore[no-untyped-def]
        self._bounded_number(node)
        return super().construct_yaml_float(node)


ParameterLoader.add_constructor("tag:yaml.org,2002:int", ParameterLoader.construct_yaml_int)
ParameterLoader.add_constructor("tag:yaml.org,2002:float", ParameterLoader.construct_yaml_float)


def load_parameter_yaml(path: Path) -> Any:
    """The YAML document in ``path`` (None when empty); UsageError naming the file otherwise."""
    try:
        with open(path, "rb") as handle:
            data = handle.read(MAX_BYTES + 1)
    except OSError as err:
        raise UsageError(f"cannot read parameter file: {err.strerror or err}", argument=str(path)) from None
    if len(data) > MAX_BYTES:
        raise UsageError(f"parameter file is larger than {MAX_BYTES // 1024} KiB", argument=str(path))
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise UsageError(f"cannot read parameter file: not UTF-8 ({err.reason} at byte {err.start})",
                         argument=str(path)) from None
    loader = ParameterLoader(text)
    try:
        return loader.get_single_data()
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        problem = getattr(err, "problem", None) or str(err).splitlines()[0]
        raise UsageError(f"invalid YAML{where}: {problem}", argument=str(path)) from None
    except (ValueError, OverflowError, TypeError, RecursionError) as err:
        # A constructor's own error, e.g. a date that does not exist (2024-13-01).
        raise UsageError(f"invalid YAML value: {type(err).__name__}: {err}", argument=str(path)) from None
    finally:
        loader.dispose()
