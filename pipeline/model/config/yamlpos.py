"""YAML helpers that keep source positions (pure logic, no I/O).

`yaml.safe_load` throws away where each value came from and silently keeps the last of
two duplicate keys. The config loader works on the composed node graph instead, so every
problem can be reported as FILE:LINE:COL. Lines and columns here are 1-based.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterator

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

TAG_STR = "tag:yaml.org,2002:str"
TAG_INT = "tag:yaml.org,2002:int"
TAG_FLOAT = "tag:yaml.org,2002:float"
TAG_BOOL = "tag:yaml.org,2002:bool"
TAG_NULL = "tag:yaml.org,2002:null"
TAG_TIMESTAMP = "tag:yaml.org,2002:timestamp"
TAG_BINARY = "tag:yaml.org,2002:binary"
TAG_MERGE = "tag:yaml.org,2002:merge"

_SCALAR_KINDS = {
    TAG_STR: "a string",
    TAG_INT: "an integer",
    TAG_FLOAT: "a number",
    TAG_BOOL: "a boolean",
    TAG_NULL: "null",
    TAG_TIMESTAMP: "a date",
    TAG_BINARY: "binary data",
}


def compose(text: str) -> Node | None:
    """Compose a single YAML document into nodes (None for an empty document).

    Raises yaml.YAMLError (usually a MarkedYAMLError) on syntax errors.
    """
    return yaml.compose(text, Loader=yaml.SafeLoader)


def position(node: Node) -> tuple[int, int]:
    """1-based (line, col) where `node` starts."""
    mark = node.start_mark
    return mark.line + 1, mark.column + 1


def error_position(exc: yaml.YAMLError, text: str | None = None) -> tuple[int | None, int | None]:
    """1-based (line, col) of a YAML error, or (None, None) when yaml does not say."""
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    if mark is not None:
        return mark.line + 1, mark.column + 1
    pos = getattr(exc, "position", None)  # yaml.reader.ReaderError
    if isinstance(pos, int) and text is not None:
        return offset_position(text, pos)
    return None, None


def yaml_message(exc: yaml.YAMLError) -> str:
    """"invalid YAML: PROBLEM (CONTEXT)", without yaml's own position lines."""
    problem = getattr(exc, "problem", None)
    context = getattr(exc, "context", None)
    if problem:
        text = f"invalid YAML: {problem}"
        if context:
            text += f" ({context})"
        return text
    return f"invalid YAML: {exc}"


def yaml_hint(exc: yaml.YAMLError) -> str | None:
    """What to do about the two YAML errors people meet most: tabs, and a second document."""
    problem = getattr(exc, "problem", None) or ""
    if "'\\t'" in problem:
        return "YAML does not allow tabs for indentation; use spaces"
    if "expected a single document" in (getattr(exc, "context", None) or "") or \
            "expected a single document" in problem:
        return "release.yml holds one YAML document; remove the extra '---'"
    return None


def offset_position(text: str, offset: int) -> tuple[int, int]:
    """1-based (line, col) of character `offset` in `text`."""
    before = text[:offset]
    line = before.count("\n") + 1
    col = offset - (before.rfind("\n") + 1) + 1
    return line, col


def describe(node: Node) -> str:
    """Human name of a node's type: 'a mapping', 'a list', 'a string', 'null', ..."""
    if isinstance(node, MappingNode):
        return "a mapping"
    if isinstance(node, SequenceNode):
        return "a list"
    kind = _SCALAR_KINDS.get(node.tag)
    if kind is not None:
        return kind
    return f"a value tagged {node.tag}"


def is_scalar(node: Node, *tags: str) -> bool:
    """True if `node` is a scalar (with one of `tags`, when given)."""
    return isinstance(node, ScalarNode) and (not tags or node.tag in tags)


@dataclass(frozen=True)
class Duplicate:
    """A key that appears twice in the same mapping."""

    key: str
    first: Node  # the first key node
    second: Node  # the repeated key node


def find_duplicate_keys(root: Node | None) -> list[Duplicate]:
    """Every repeated key in every mapping under `root`, in document order.

    Keys are compared by their text. Merge keys (`<<`) are not duplicates: an explicit key
    that overrides a merged one is how YAML merges are meant to be used.
    """
    found: list[Duplicate] = []
    seen_nodes: set[int] = set()
    for node in _walk(root, seen_nodes):
        if not isinstance(node, MappingNode):
            continue
        first_seen: dict[str, Node] = {}
        for key_node, _value in node.value:
            if not isinstance(key_node, ScalarNode) or key_node.tag == TAG_MERGE:
                continue
            key = key_node.value
            if key in first_seen:
                found.append(Duplicate(key, first_seen[key], key_node))
            else:
                first_seen[key] = key_node
    found.sort(key=lambda d: position(d.second))
    return found


def _walk(node: Node | None, seen: set[int]) -> Iterator[Node]:
    """Every node under `node` once (aliases can make the graph cyclic)."""
    stack = [node] if node is not None else []
    while stack:
        current = stack.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        if isinstance(current, MappingNode):
            for key_node, value_node in reversed(current.value):
                stack.append(value_node)
                stack.append(key_node)
        elif isinstance(current, SequenceNode):
            stack.extend(reversed(current.value))


class Values:
    """Turns scalar nodes into Python values and resolves `<<` merge keys.

    Uses PyYAML's SafeLoader constructor so that `0x10`, `1_000` and `.inf` mean what
    they mean to every other YAML tool.
    """

    def __init__(self) -> None:
        self._loader = yaml.SafeLoader("")

    def scalar(self, node: ScalarNode) -> Any:
        """The Python value of a scalar node (raises yaml.constructor.ConstructorError)."""
        return self._loader.construct_object(node, deep=True)

    def pairs(self, node: MappingNode) -> list[tuple[Node, Node]]:
        """(key node, value node) pairs with `<<` merges applied; for duplicate keys the
        last one wins, as in PyYAML. Raises yaml.constructor.ConstructorError on a bad merge.
        """
        raw = list(node.value)
        if any(isinstance(k, ScalarNode) and k.tag == TAG_MERGE for k, _ in raw):
            copy = MappingNode(node.tag, raw, node.start_mark, node.end_mark, node.flow_style)
            self._loader.flatten_mapping(copy)
            raw = copy.value
        result: dict[Any, tuple[Node, Node]] = {}
        for key_node, value_node in raw:
            ident: Any = key_node.value if isinstance(key_node, ScalarNode) else id(key_node)
            result.pop(ident, None)  # last wins, and takes the last position in order
            result[ident] = (key_node, value_node)
        return list(result.values())
