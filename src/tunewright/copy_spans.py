"""Copy-span constraints for task.copied_fields: a field the task says is copied from the input may only
take a value that is a span of that input. `copy_schema` rewrites the output schema for one input, each
copied string field an enum of the input's word-aligned spans and the rest as it is, for grammar.py to
compile per row. Never imports torch."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from fnmatch import fnmatchcase
from typing import Any

from jsonschema import validators

# Where a span may start and end: a run of word characters, or one other non-space character, so that
# "tomorrow" is a span of "tomorrow?" and "Le Petit's" one of "at Le Petit's.".
WORD = re.compile(r"\w+|[^\w\s]")
# The longest span, in words and marks: SNIPS slot values need up to 17 ("S.t.r.e.e.t. D.a.d"); the
# enum grows with input length times this, so a long served input still compiles in well under a second.
MAX_SPAN_WORDS = 32
DEF_PREFIX = "tunewright_copy_"


def input_spans(text: str, max_words: int = MAX_SPAN_WORDS) -> list[str]:
    """Every run of 1 to `max_words` consecutive words and marks of `text` as written there (its inner
    spacing kept), each once, sorted."""
    bounds = [match.span() for match in WORD.finditer(text)]
    return sorted({text[start:bounds[last][1]] for first, (start, _) in enumerate(bounds)
                   for last in range(first, min(len(bounds), first + max_words))})


def copy_source(turns: Iterable[tuple[str, str]]) -> str:
    """The text copied values come from, given a chat's (role, content) turns: the user turns after the
    last assistant turn, the ones the answer replies to (few-shot demonstrations come before it)."""
    found: list[str] = []
    for role, content in turns:
        if role == "assistant":
            found = []
        elif role == "user":
            found.append(content)
    return "\n".join(found)


def copy_schema(schema: dict[str, Any], patterns: Sequence[str], source: str) -> dict[str, Any]:
    """`schema` with every string field whose answer path (schema.answer_fields: 'slots.city', 'items[]';
    '*' stands for a key of additionalProperties) matches one of `patterns` restricted to the spans of
    `source` that its own constraints allow (minLength, pattern, ...); no such span: the field cannot be
    written. Local $refs on the way are inlined (recursive ones left as they are)."""
    rewriter = _Rewriter(schema, list(patterns), input_spans(source))
    rewritten = rewriter.children(schema, "", ())
    if rewriter.defs:
        rewritten["$defs"] = {**rewritten.get("$defs", {}),
                              **{name: {"enum": list(spans)} for spans, name in rewriter.defs.items()}}
    return rewritten


class _Rewriter:
    def __init__(self, root: dict[str, Any], patterns: list[str], spans: list[str]) -> None:
        self.root, self.patterns, self.spans = root, patterns, spans
        self.defs: dict[tuple[str, ...], str] = {}  # one $defs entry per distinct span list
        self.allowed: dict[str, tuple[str, ...]] = {}  # the spans a field schema (as JSON) allows

    def node(self, node: Any, path: str, refs: tuple[str, ...]) -> Any:
        if not isinstance(node, dict):
            return node  # true / false schemas
        ref = node.get("$ref")
        target = self._resolve(ref) if isinstance(ref, str) and ref.startswith("#/") and ref not in refs else None
        if isinstance(target, dict):
            merged = {**target, **{key: value for key, value in node.items() if key != "$ref"}}
            return self.node(merged, path, (*refs, str(ref)))
        if path and "string" in _types(node) and any(fnmatchcase(path, p) for p in self.patterns):
            return self._span_field(node)
        return self.children(node, path, refs)

    def children(self, node: dict[str, Any], path: str, refs: tuple[str, ...]) -> dict[str, Any]:
        """`node` with the schemas of its properties, items and branches rewritten."""
        out = dict(node)
        for key in ("properties", "patternProperties"):
            if isinstance(node.get(key), dict):
                out[key] = {name: self.node(sub, _join(path, name if key == "properties" else "*"), refs)
                            for name, sub in node[key].items()}
        if isinstance(node.get("additionalProperties"), dict):
            out["additionalProperties"] = self.node(node["additionalProperties"], _join(path, "*"), refs)
        if isinstance(node.get("items"), dict):
            out["items"] = self.node(node["items"], f"{path}[]", refs)
        for key in ("prefixItems", "anyOf", "oneOf", "allOf"):
            if isinstance(node.get(key), list):
                where = f"{path}[]" if key == "prefixItems" else path
                out[key] = [self.node(sub, where, refs) for sub in node[key]]
        return out

    def _span_field(self, node: dict[str, Any]) -> Any:
        """The field's string values restricted to the input's spans; its other types as they were."""
        key = json.dumps(node, sort_keys=True)
        if key not in self.allowed:  # fields often share one schema ({"type": "string"}): check spans once
            check = validators.validator_for(node)(node)
            self.allowed[key] = tuple(span for span in self.spans if check.is_valid(span))
        allowed = self.allowed[key]
        strings: Any = False
        if allowed:
            name = self.defs.setdefault(allowed, f"{DEF_PREFIX}{len(self.defs)}")
            strings = {"$ref": f"#/$defs/{name}"}
        others = [kind for kind in _types(node) if kind != "string"]
        return {"anyOf": [strings, {**node, "type": others}]} if others else strings

    def _resolve(self, ref: str) -> Any:
        target: Any = self.root
        for part in ref[2:].split("/"):
            part = part.replace("~1", "/").replace("~0", "~")
            if not isinstance(target, dict) or part not in target:
                return None
            target = target[part]
        return target


def _types(node: dict[str, Any]) -> list[str]:
    kind = node.get("type")
    if isinstance(kind, list):
        return [k for k in kind if isinstance(k, str)]
    return [kind] if isinstance(kind, str) else []


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key
