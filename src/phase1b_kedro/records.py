"""Input formats → the normalised test record (the contract: docs/RECORDS.md, phase1b_kedro.contract).

Supported per-record formats (detected, or forced with ``sampling.input_format``):

- ``prompt_response``: a prompt field and a reference field with configurable names
  (``prompt``/``response``, ``question``/``answer``, ``input``/``output``, ...). A passage
  (``context`` as in SQuAD, or ``passage``; a string or a list of strings) goes before the
  prompt after a blank line; multiple-choice ``options`` (or ``choices``) follow it on the next
  lines, one per line as ``A. text`` (a list of texts is labelled ``A.``, ``B.``, ... unless
  already labelled; an object ``{label: text}``; ARC's ``{"text": [...], "label": [...]}``; a
  string kept as written). ``meta.prompt_parts`` names the fields used, in order (e.g.
  ``["context", "question", "options"]``), only when more than the prompt field was used;
- ``alpaca``: ``instruction`` with ``output`` or any response field (Alpaca, Dolly-15k's
  ``response``); its extra input, ``context`` (Dolly) and/or ``input`` (Alpaca) when non-empty,
  follows the instruction after a blank line; a ``history`` of ``[instruction, response]``
  pairs (LLaMA-Factory) becomes earlier user/assistant turns;
- ``chat``: ``messages`` whose final assistant turn is the reference;
- ``sharegpt``: ``conversations`` of ``{from, value}`` turns, same rule.
  In both, roles are compared case-insensitively and stripped (``"User"``, ``" GPT "``); an
  unknown or non-string role is ``bad_role``;
- ``evals``: OpenAI-evals ``input`` (chat list or string) + ``ideal`` (string or list of
  acceptable answers; all kept in ``meta.acceptable``, the first is the reference).

Tool calling (function calling) conversations are accepted in every common layout:
OpenAI ``tool_calls`` (an assistant turn whose ``content`` may be null) or the legacy
``function_call``, ``tool`` and ``function`` result turns, ShareGPT ``function_call`` /
``observation`` (and ``tool_call``/``tool``/``function_response``/``tool_response``) turns. In
``messages`` they stay ``{role, content}`` with text content, so any chat template renders
them and every later stage reads them like other turns:

- a tool call is an ``assistant`` turn whose content ends with one block per call,
  ``<tool_call>\n{"name": ..., "arguments": ...}\n</tool_call>`` (the Hermes/Qwen convention
  most tool-tuned open models are trained on), after the turn's own text if it has any;
- a tool result is a ``tool`` turn whose content is the result's text (JSON for structured
  results);
- tool definitions given with the record (``tools``, else ``functions``: a list, one object,
  or a JSON string of either; anything else is ``wrong_type``, an empty one adds nothing) are
  appended to the system turn (one is added when there is none) as ``<tools>\n...\n</tools>``,
  one definition per line.

``meta.tool_calls``, ``meta.tool_results`` and ``meta.tools`` count them.

Content given as a list of parts keeps its text parts joined with a newline; parts that are
not text (images, audio, files) are counted in ``meta.non_text_parts`` (``count`` and
``types``). A text part whose text is not a string makes the record ``wrong_type``.

``normalise`` never raises for bad content: it returns a :class:`Rejection` with a reason,
so the caller can quarantine the record and account for it. (It raises one signal,
:class:`NumberLiteralNeeded`, below.)

Numbers are kept as written. A prompt or reference (or tool result) given as a JSON number
becomes its literal text exactly as in the line (``1267650600228229401496703205376``, ``1e5``,
``1.50``, ``-0.0``), never a float's repr. orjson gives every non-integer, and every integer
beyond 64 bits, as a ``float`` whose literal is lost, so the caller normalises in two steps::

    obj = orjson.loads(raw)
    try:
        rec = normalise(obj, cfg, forced_format, with_meta)
    except NumberLiteralNeeded:                      # rare: a float in a text field
        rec = normalise_line(raw, cfg, forced_format, with_meta)

:func:`normalise_line` re-parses that one line with :func:`parse_literal_numbers` (stdlib
``json``, numbers as :class:`JSONNumber`, a ``float`` that keeps its ``literal``) and
normalises it again; integers that fit 64 bits are exact from orjson and never trigger it.
(``-0`` written as an integer is the one literal orjson folds: it reads ``0``.)
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Self

import orjson
from xxhash import xxh3_64_hexdigest

from phase1b_kedro.code_tests import extract_tests
from phase1b_kedro.contract import CATEGORIES as _CATEGORIES
from phase1b_kedro.params import string_list

CATEGORIES: tuple[str, ...] = _CATEGORIES  # the contract's (phase1b_kedro.contract.Category)
FORMATS: tuple[str, ...] = ("prompt_response", "alpaca", "chat", "sharegpt", "evals")

_SHAREGPT_ROLES = {
    "human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant",
    "chatgpt": "assistant", "bing": "assistant", "bard": "assistant", "model": "assistant",
    "system": "system",
    # function calling (LLaMA-Factory, glaive, ToolACE, xLAM exports...)
    "function_call": "tool_call", "tool_call": "tool_call", "tool_calls": "tool_call",
    "observation": "tool", "tool": "tool", "function": "tool", "function_response": "tool",
    "tool_response": "tool", "ipython": "tool",
}
_CHAT_ROLES = {"system", "user", "assistant", "developer", "tool"}
#: Result turns of the OpenAI chat format (``function`` is the legacy name of ``tool``).
_CHAT_ROLE_MAP = {"function": "tool", "ipython": "tool"}
_TEXT_PART_TYPES = {"text", "input_text", "output_text"}


@dataclass(frozen=True)
class FieldConfig:
    """Field names the detector looks for, in order of preference."""

    prompt_fields: tuple[str, ...] = ("prompt", "question", "input", "query", "problem")
    response_fields: tuple[str, ...] = (
        "response", "answer", "output", "completion", "reference", "target",
        "solution", "canonical_solution", "ideal",
    )
    id_fields: tuple[str, ...] = ("id", "task_id", "uid", "question_id", "example_id")
    category_fields: tuple[str, ...] = ("category", "task_type", "type", "domain")
    system_fields: tuple[str, ...] = ("system", "system_prompt")
    #: Where a record says which dataset it came from (the first one present is used).
    source_fields: tuple[str, ...] = ("source", "dataset", "data_source", "dataset_name")
    max_prompt_chars: int = 200_000

    #: The list-typed parameters (each also accepts one string).
    LIST_PARAMS = ("prompt_fields", "response_fields", "id_fields", "category_fields", "system_fields",
                   "source_fields")

    @classmethod
    def from_params(cls, params: Mapping[str, Any]) -> FieldConfig:
        """Build from the ``sampling`` parameter group (missing keys keep defaults).

        Raises:
            ParameterError: For a list parameter that is neither a list of strings nor a string.
        """
        kwargs: dict[str, Any] = {}
        for name in cls.LIST_PARAMS:
            if params.get(name) is not None:
                kwargs[name] = string_list(params[name], f"sampling.{name}",
                                           allow_empty=name not in ("prompt_fields", "response_fields"))
        if params.get("max_prompt_chars"):
            kwargs["max_prompt_chars"] = int(params["max_prompt_chars"])
        return cls(**kwargs)


@dataclass(slots=True)
class Normalised:
    """A record in the contract's shape, before its category is decided."""

    id: str
    id_from_source: bool
    messages: list[dict[str, str]]
    prompt: str
    reference: str
    format: str
    source: str | None
    source_category: str | None
    #: Hash of (conversation, reference): equal keys are exact duplicates.
    key: str
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Rejection:
    """Why a record could not be used."""

    reason: str
    detail: str = ""


def content_hash(messages: Sequence[Mapping[str, str]], reference: str) -> str:
    """A stable 16-hex-digit hash of a conversation and its reference: XXH3-64 (xxHash 0.8,
    Y. Collet; frozen output, the same on every machine) of the JSON array
    ``[[role, content], ..., reference]``. Non-cryptographic: it tells duplicates apart and
    names records, about 30 times faster than BLAKE2b on these ~1 KB payloads (it runs for
    every input line)."""
    payload = orjson.dumps([(m["role"], m["content"]) for m in messages] + [reference])  # tuples: JSON arrays
    return xxh3_64_hexdigest(payload)


def detect_format(obj: Mapping[str, Any], cfg: FieldConfig) -> str | None:
    """Guess a record's format from its keys; ``None`` when nothing fits."""
    if "messages" in obj:
        return "chat"
    if "conversations" in obj:
        return "sharegpt"
    if "ideal" in obj and "input" in obj:
        return "evals"
    if "instruction" in obj and ("output" in obj or any(f in obj for f in cfg.response_fields)):
        return "alpaca"
    if any(f in obj for f in cfg.prompt_fields) and any(f in obj for f in cfg.response_fields):
        return "prompt_response"
    return None


def normalise(obj: Any, cfg: FieldConfig, forced_format: str = "auto", with_meta: bool = True) -> Normalised | Rejection:
    """Turn one parsed JSON value into a :class:`Normalised` record or a :class:`Rejection`.

    Args:
        obj: The parsed JSON value of one input line.
        cfg: Field names to look for.
        forced_format: ``auto`` to detect per record, or one of :data:`FORMATS`.
        with_meta: ``False`` leaves ``meta`` empty (the sampling index reads no meta; the same
            records are accepted and rejected either way).

    Returns:
        The normalised record, or the reason it cannot be used.

    Raises:
        NumberLiteralNeeded: A text field holds a plain ``float`` (its literal is lost): call
            :func:`normalise_line` with the raw line instead.
    """
    if not isinstance(obj, dict):
        return Rejection("not_an_object", f"line holds a JSON {type(obj).__name__}")
    fmt = detect_format(obj, cfg) if forced_format == "auto" else forced_format
    if fmt is None:
        keys = ", ".join(sorted(map(str, obj))[:8])
        return Rejection("unknown_format", f"no known format fits keys [{keys}]")
    notes: dict[str, Any] = {}
    try:
        messages, reference, acceptable = _PARSERS[fmt](obj, cfg, notes)
        messages = _with_tool_definitions(obj, messages, notes)
    except _Bad as bad:
        return Rejection(bad.reason, bad.detail)

    prompt = _last_prompt(messages)
    if _blank(prompt):
        return Rejection("empty_prompt", "the prompt is empty or whitespace")
    if _blank(reference):
        return Rejection("empty_reference", "the reference answer is empty")
    total_chars = sum([len(m["content"]) for m in messages])
    if total_chars > cfg.max_prompt_chars:
        return Rejection(
            "prompt_too_long",
            f"{total_chars} characters > max_prompt_chars={cfg.max_prompt_chars}",
        )

    tests = extract_tests(obj)
    meta: dict[str, Any] = {}
    if with_meta:
        meta["format"] = fmt
        if isinstance(obj.get("meta"), dict):
            meta["source_meta"] = obj["meta"]
        if acceptable is not None:
            meta["acceptable"] = acceptable
        meta.update(notes)
        if tests is not None:
            meta["tests"] = tests

    try:
        rec_id = source_id(obj, cfg)
    except _Bad as bad:
        return Rejection(bad.reason, bad.detail)
    from_source = bool(rec_id)
    key = content_hash(messages, reference)
    if not from_source:
        rec_id = "h-" + key

    source = _first_text(obj, cfg.source_fields)
    cat = _first_text(obj, cfg.category_fields)
    # Positional (the field order of Normalised): it runs for every input line.
    return Normalised(rec_id, from_source, messages, prompt, reference, fmt,
                      source.strip() or None if isinstance(source, str) else None,
                      cat.strip() or None if isinstance(cat, str) else None, key, meta)


def source_id(obj: Mapping[str, Any], cfg: FieldConfig) -> str:
    """The id a record brings (the first of ``cfg.id_fields`` present, stripped), ``""`` if none.

    Raises:
        _Bad: ``wrong_type`` when it is neither a string nor an integer.
    """
    raw_id = _first_present(obj, cfg.id_fields)
    if raw_id is not None and not isinstance(raw_id, (str, int)) or isinstance(raw_id, bool):
        raise _Bad("wrong_type", f"id must be a string or integer, got {_type_name(raw_id)}")
    return str(raw_id).strip() if raw_id is not None else ""


class NumberLiteralNeeded(Exception):
    """A text field holds a number parsed as a plain ``float``, whose literal text is lost.

    Raised by :func:`normalise` (it is not a :class:`Rejection`): the caller re-runs the same
    line through :func:`normalise_line`, which keeps every number's literal.
    """


class JSONNumber(float):
    """A JSON number that remembers how it was written (``literal``), e.g. ``1.50`` or ``1e5``.

    It compares, hashes and computes like the ``float`` orjson would give; only text fields
    read ``literal``. orjson cannot serialise it (see :func:`normalise_line`).
    """

    __slots__ = ("literal",)
    literal: str

    def __new__(cls, literal: str) -> Self:
        number = super().__new__(cls, literal)
        number.literal = literal
        return number


_INT64_MIN, _UINT64_MAX = -(1 << 63), (1 << 64) - 1  # the integers orjson gives as int


def _literal_int(literal: str) -> int | JSONNumber:
    """An integer as orjson types it: ``int`` within 64 bits, else a number (here keeping its literal)."""
    if len(literal) < 19:  # |value| < 10**18: fits, and the common case
        return int(literal)
    if len(literal) <= 21:
        value = int(literal)
        if _INT64_MIN <= value <= _UINT64_MAX:
            return value
    return JSONNumber(literal)


def parse_literal_numbers(raw: bytes | str) -> Any:
    """Parse one JSON line like ``orjson.loads``, except that every value orjson would give as a
    ``float`` (non-integers, integers beyond 64 bits) is a :class:`JSONNumber` with its literal.

    Raises:
        ValueError: When the line is not JSON (callers pass lines orjson already accepted).
    """
    return json.loads(raw, parse_float=JSONNumber, parse_int=_literal_int)


def normalise_line(raw: bytes | str, cfg: FieldConfig, forced_format: str = "auto",
                   with_meta: bool = True) -> Normalised | Rejection:
    """:func:`normalise` for a line whose text fields hold numbers orjson gave as floats.

    Call it with the raw line when :func:`normalise` raised :class:`NumberLiteralNeeded` (it
    works on any line, but re-parses with the slower stdlib parser). Text fields get each
    number's literal; everything else is as :func:`normalise` gives it (``meta`` holds plain
    floats, so orjson can write it).

    Raises:
        ValueError: When ``raw`` is not JSON (pass only lines orjson parsed).
    """
    rec = normalise(parse_literal_numbers(raw), cfg, forced_format, with_meta)
    if isinstance(rec, Normalised) and rec.meta:
        rec.meta = _plain_numbers(rec.meta)
    return rec


def _plain_numbers(value: Any) -> Any:
    """``value`` with every :class:`JSONNumber` turned back into the ``float`` orjson gives."""
    if isinstance(value, JSONNumber):
        return float(value)
    if isinstance(value, dict):
        return {k: _plain_numbers(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain_numbers(v) for v in value]
    return value


def _type_name(value: Any) -> str:
    """A JSON value's Python type name for messages (a :class:`JSONNumber` is a ``float``)."""
    return "float" if isinstance(value, JSONNumber) else type(value).__name__


class _Bad(Exception):
    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(reason, detail)
        self.reason, self.detail = reason, detail


def _blank(text: str) -> bool:
    """``not text.strip()`` without copying the text."""
    return not text or text.isspace()


def _first_text(obj: Mapping[str, Any], names: Sequence[str]) -> str | None:
    """The first of ``names`` whose value is a non-blank string (a number or a list there is
    not a name: the next field is tried)."""
    for name in names:
        value = obj.get(name)
        if isinstance(value, str) and value and not value.isspace():
            return value
    return None


def _first_present(obj: Mapping[str, Any], names: Sequence[str]) -> Any:
    """The value of the first of ``names`` present (not null, not ``""``); ``None`` if none."""
    return _first_named(obj, names)[1]


def _text(value: Any, what: str) -> str:
    """Coerce a scalar answer to text; numbers are common references (``"answer": 42``).

    A number's text is its JSON literal: ``str`` of an ``int`` (exact), the ``literal`` of a
    :class:`JSONNumber`.

    Raises:
        NumberLiteralNeeded: For a plain ``float`` (orjson lost its literal).
        _Bad: ``missing_<what>`` for ``None``, ``wrong_type`` for a list or an object.
    """
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if isinstance(value, JSONNumber):
            return value.literal
        raise NumberLiteralNeeded(f"{what} is the number {value!r}; its literal text needs normalise_line")
    if value is None:
        raise _Bad(f"missing_{what}", f"no {what}")
    raise _Bad("wrong_type", f"{what} must be text, got {type(value).__name__}")


def _last_prompt(messages: list[dict[str, str]]) -> str:
    """The last user turn; a conversation with none (some evals put the task in the system
    message) falls back to its last non-empty message."""
    for m in reversed(messages):
        if m["role"] == "user" and not _blank(m["content"]):
            return m["content"]
    for m in reversed(messages):
        if not _blank(m["content"]):
            return m["content"]
    return ""


def _count(notes: dict[str, Any], key: str, n: int = 1) -> None:
    notes[key] = notes.get(key, 0) + n


def _parts_text(parts: list[Any], where: str, notes: dict[str, Any]) -> str:
    """Join a content-parts list: text parts with a newline, other parts counted in ``notes``."""
    texts = []
    for j, part in enumerate(parts):
        if isinstance(part, str):
            texts.append(part)
            continue
        if not isinstance(part, dict):
            raise _Bad("wrong_type", f"{where}[{j}] is a {type(part).__name__}, not a content part")
        kind = part.get("type", "text" if "text" in part else None)
        if kind in _TEXT_PART_TYPES:
            text = part.get("text")
            if not isinstance(text, str):
                raise _Bad("wrong_type", f"{where}[{j}].text must be text, got {type(text).__name__}")
            texts.append(text)
        else:
            found = notes.setdefault("non_text_parts", {"count": 0, "types": {}})
            found["count"] += 1
            found["types"][str(kind)] = found["types"].get(str(kind), 0) + 1
    return "\n".join(texts)


def _as_json_text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def _tool_call_block(name: Any, arguments: Any) -> str:
    """One call in the Hermes/Qwen text convention; arguments given as a JSON string are parsed."""
    if isinstance(arguments, str):
        try:
            arguments = json.loads(arguments)
        except ValueError:
            pass  # kept as the string it is
    return "<tool_call>\n" + json.dumps({"name": name, "arguments": arguments}, ensure_ascii=False) + "\n</tool_call>"


def _openai_tool_calls(turn: Mapping[str, Any], where: str) -> list[str]:
    """The calls of an OpenAI assistant turn (``tool_calls``, or the legacy ``function_call``)."""
    calls = turn.get("tool_calls")
    if calls is None and isinstance(turn.get("function_call"), dict):
        calls = [{"function": turn["function_call"]}]
    if calls is None:
        return []
    if not isinstance(calls, list):
        raise _Bad("wrong_type", f"{where}.tool_calls must be a list")
    blocks = []
    for k, call in enumerate(calls):
        fn = call.get("function", call) if isinstance(call, dict) else None
        if not isinstance(fn, dict) or not isinstance(fn.get("name"), str):
            raise _Bad("wrong_type", f"{where}.tool_calls[{k}] has no function name")
        blocks.append(_tool_call_block(fn["name"], fn.get("arguments")))
    return blocks


def _sharegpt_tool_call(value: Any) -> str:
    """A ShareGPT ``function_call`` value: ``{"name", "arguments"}`` (as JSON text or an object),
    or a list of them; anything else is kept verbatim inside one block."""
    parsed = value
    if isinstance(value, str):
        try:
            parsed = json.loads(value)
        except ValueError:
            return f"<tool_call>\n{value}\n</tool_call>"
    calls = parsed if isinstance(parsed, list) else [parsed]
    if all(isinstance(c, dict) and "name" in c for c in calls):
        return "\n".join(_tool_call_block(c["name"], c.get("arguments", c.get("parameters"))) for c in calls)
    return f"<tool_call>\n{_as_json_text(value)}\n</tool_call>"


def _content(turn: Mapping[str, Any], key: str, what: str, i: int, notes: dict[str, Any], tool_result: bool) -> Any:
    """A turn's content as text (parts joined); ``None`` stays ``None`` for the caller to judge."""
    content = turn.get(key)
    if isinstance(content, list):
        return _parts_text(content, f"{what}[{i}].{key}", notes)
    if tool_result:  # structured tool results are common
        if isinstance(content, dict):
            return _as_json_text(content)
        if isinstance(content, (int, float)):  # bool included: "true"/"false", as JSON
            return _text(content, "tool result")
    return content


def _role(raw_role: Any, role_map: Mapping[str, str] | None) -> Any:
    """A turn's role, compared case-insensitively and stripped (``"User"``, ``" GPT "``).

    ``role_map`` (ShareGPT) maps every known name; without it (OpenAI chat) the role is kept,
    legacy result roles (``function``) mapped to ``tool``. Exact lowercase roles take the fast
    path; an unknown or non-string role comes back as it is or ``None`` (the caller rejects it).
    """
    if role_map is not None:
        if raw_role.__class__ is str and (role := role_map.get(raw_role)) is not None:
            return role
        return role_map.get(raw_role.strip().lower()) if isinstance(raw_role, str) else None
    if raw_role.__class__ is str and raw_role in _CHAT_ROLES:
        return raw_role
    if not isinstance(raw_role, str):
        return None
    role = raw_role.strip().lower()
    return _CHAT_ROLE_MAP.get(role, role)


def _chat_list(turns: Any, what: str, notes: dict[str, Any], role_key: str = "role",
               content_key: str = "content", role_map: Mapping[str, str] | None = None) -> list[dict[str, str]]:
    if not isinstance(turns, list) or not turns:
        raise _Bad("wrong_type" if turns is not None else f"missing_{what}",
                   f"{what} must be a non-empty list of turns")
    out = []
    for i, turn in enumerate(turns):
        if not isinstance(turn, dict):
            raise _Bad("wrong_type", f"{what}[{i}] is not an object")
        raw_role = turn.get(role_key)
        role = _role(raw_role, role_map)
        content = turn.get(content_key)
        if role == "user" or role == "system" or (role == "assistant" and "tool_calls" not in turn
                                                   and "function_call" not in turn):
            if isinstance(content, str):  # the common case, kept cheap
                out.append({"role": role, "content": content})
                continue
        if role == "tool_call":  # ShareGPT function_call turn: the call itself (an object, a list, JSON text)
            if content is None or content == "":
                raise _Bad("wrong_type", f"{what}[{i}].{content_key} must hold the call")
            out.append({"role": "assistant", "content": _sharegpt_tool_call(content)})
            _count(notes, "tool_calls")
            continue
        if role not in _CHAT_ROLES:
            raise _Bad("bad_role", f"{what}[{i}] has unknown role {raw_role!r}")
        content = _content(turn, content_key, what, i, notes, tool_result=role == "tool")
        calls = _openai_tool_calls(turn, f"{what}[{i}]") if role == "assistant" and role_map is None else []
        if calls:
            content = "\n".join(([content] if isinstance(content, str) and content.strip() else []) + calls)
            _count(notes, "tool_calls", len(calls))
        if not isinstance(content, str):
            raise _Bad("wrong_type", f"{what}[{i}].{content_key} must be text, got {type(content).__name__}")
        if role == "tool":
            _count(notes, "tool_results")
        out.append({"role": role, "content": content})
    return out


def _with_tool_definitions(obj: Mapping[str, Any], messages: list[dict[str, str]],
                           notes: dict[str, Any]) -> list[dict[str, str]]:
    """Append the record's tool definitions (``tools`` or ``functions``) to its system turn.

    They are a list, one object, or a JSON string of either; an empty one adds nothing.

    Raises:
        _Bad: ``wrong_type`` for anything else (a number, a boolean, text that is not JSON).
    """
    name, tools = "tools", obj.get("tools")
    if tools is None:
        name, tools = "functions", obj.get("functions")
        if tools is None:
            return messages
    if isinstance(tools, str):
        if not tools:
            return messages
        try:
            tools = json.loads(tools)
        except ValueError as exc:
            raise _Bad("wrong_type", f"{name} is a string but not JSON ({exc})") from exc
        if not isinstance(tools, (list, dict)):
            raise _Bad("wrong_type", f"{name} must be a list or an object of tool definitions (or a JSON string "
                                     f"of one), got a JSON string holding {_type_name(tools)}")
    elif not isinstance(tools, (list, dict)):
        raise _Bad("wrong_type", f"{name} must be a list or an object of tool definitions (or a JSON string "
                                 f"of one), got {_type_name(tools)}")
    if not tools:
        return messages
    if isinstance(tools, dict):
        tools = [tools]
    block = "<tools>\n" + "\n".join(json.dumps(t, ensure_ascii=False) for t in tools) + "\n</tools>"
    notes["tools"] = len(tools)
    if messages and messages[0]["role"] == "system":
        head = messages[0]["content"]
        return [{"role": "system", "content": f"{head}\n\n{block}" if head.strip() else block}] + messages[1:]
    return [{"role": "system", "content": block}] + messages


def _split_final_assistant(turns: list[dict[str, str]], what: str):
    if turns[-1]["role"] != "assistant":
        raise _Bad("missing_reference", f"{what} does not end with an assistant turn")
    if len(turns) < 2:
        raise _Bad("missing_prompt", f"{what} has no turn before the reference")
    return turns[:-1], turns[-1]["content"], None


def _parse_chat(obj: Mapping[str, Any], cfg: FieldConfig, notes: dict[str, Any]):
    return _split_final_assistant(_chat_list(obj.get("messages"), "messages", notes), "messages")


def _parse_sharegpt(obj: Mapping[str, Any], cfg: FieldConfig, notes: dict[str, Any]):
    turns = _chat_list(obj.get("conversations"), "conversations", notes, "from", "value", _SHAREGPT_ROLES)
    system = _first_present(obj, cfg.system_fields)
    if isinstance(system, str) and system.strip() and turns[0]["role"] != "system":
        turns = [{"role": "system", "content": system}] + turns  # LLaMA-Factory keeps it beside the turns
    return _split_final_assistant(turns, "conversations")


def _parse_evals(obj: Mapping[str, Any], cfg: FieldConfig, notes: dict[str, Any]):
    raw = obj.get("input")
    if isinstance(raw, str):
        messages = [{"role": "user", "content": raw}]
    else:
        messages = _chat_list(raw, "input", notes)
    ideal = obj.get("ideal")
    acceptable = None
    if isinstance(ideal, list):
        if not ideal:
            raise _Bad("missing_reference", "ideal is an empty list")
        acceptable = [_text(v, "reference") for v in ideal]
        reference = acceptable[0]
    else:
        reference = _text(ideal, "reference")
    return messages, reference, acceptable


def _system(obj: Mapping[str, Any], cfg: FieldConfig) -> list[dict[str, str]]:
    system = _first_present(obj, cfg.system_fields)
    return [{"role": "system", "content": system}] if isinstance(system, str) else []


#: The alpaca family's extra input, in the order it follows the instruction (Dolly-15k:
#: ``context``; Alpaca: ``input``).
_ALPACA_EXTRA = ("context", "input")


def _parse_alpaca(obj: Mapping[str, Any], cfg: FieldConfig, notes: dict[str, Any]):
    """``instruction`` + extra input (``context``, ``input``; each after a blank line), prior
    turns from ``history``; the reference is ``output``, else the first of ``response_fields``."""
    instruction = _text(obj.get("instruction"), "prompt")
    parts = ["instruction"]
    for name in _ALPACA_EXTRA:
        extra = obj.get(name)
        if extra is not None and extra != "":
            instruction = f"{instruction}\n\n{_text(extra, 'prompt')}"
            parts.append(name)
    if len(parts) > 1:
        notes["prompt_parts"] = parts
    history = obj.get("history")
    earlier = _history_turns(history) if history not in (None, "", []) else []
    messages = _system(obj, cfg) + earlier + [{"role": "user", "content": instruction}]
    reference = obj.get("output")
    if reference is None or reference == "":
        reference = _first_present(obj, cfg.response_fields)
    return messages, _text(reference, "reference"), None


def _history_turns(history: Any) -> list[dict[str, str]]:
    """LLaMA-Factory's alpaca ``history``, ``[[instruction, response], ...]``, as earlier turns.

    Raises:
        _Bad: ``wrong_type`` for anything but a list of two-text pairs.
    """
    if not isinstance(history, list):
        raise _Bad("wrong_type", f"history must be a list of [instruction, response] pairs, got {_type_name(history)}")
    turns = []
    for i, pair in enumerate(history):
        if not isinstance(pair, list) or len(pair) != 2 or None in pair:
            raise _Bad("wrong_type", f"history[{i}] must be an [instruction, response] pair of texts")
        turns.append({"role": "user", "content": _text(pair[0], f"history[{i}][0]")})
        turns.append({"role": "assistant", "content": _text(pair[1], f"history[{i}][1]")})
    return turns


#: Fields a prompt_response record may add to its prompt: a passage before it, options after it.
_PASSAGE_FIELDS = ("context", "passage")
_OPTION_FIELDS = ("options", "choices")
_PROMPT_EXTRAS = frozenset(_PASSAGE_FIELDS + _OPTION_FIELDS)


def _parse_prompt_response(obj: Mapping[str, Any], cfg: FieldConfig, notes: dict[str, Any]):
    prompt = _text(_first_present(obj, cfg.prompt_fields), "prompt")
    if not _PROMPT_EXTRAS.isdisjoint(obj):  # SQuAD passages, multiple-choice options: rare, so only then
        prompt = _with_passage_and_options(obj, cfg, prompt, notes)
    reference = _first_present(obj, cfg.response_fields)
    messages = _system(obj, cfg) + [{"role": "user", "content": prompt}]
    if isinstance(reference, list) and reference:
        acceptable = [_text(v, "reference") for v in reference]
        return messages, acceptable[0], acceptable
    return messages, _text(reference, "reference"), None


def _first_named(obj: Mapping[str, Any], names: Sequence[str]) -> tuple[str | None, Any]:
    """The first of ``names`` present (not null, not ``""``) and its value; ``(None, None)`` if none."""
    for name in names:
        value = obj.get(name)
        if value is not None and value != "":
            return name, value
    return None, None


def _with_passage_and_options(obj: Mapping[str, Any], cfg: FieldConfig, prompt: str,
                              notes: dict[str, Any]) -> str:
    """The prompt with the record's passage before it (blank line between) and its options
    after it (one per line, ``A. text``); ``notes["prompt_parts"]`` names the fields used.

    A field that is the prompt itself (``prompt_fields`` may name ``context``) is not repeated;
    a blank prompt stays blank (``empty_prompt``: a passage or options are no question).
    """
    if _blank(prompt):
        return prompt
    prompt_name, _ = _first_named(obj, cfg.prompt_fields)
    names: list[str] = [prompt_name or "prompt"]
    passage_name, passage = _first_named(obj, [f for f in _PASSAGE_FIELDS if f != prompt_name])
    if passage_name is not None and (text := _passage_text(passage, passage_name)):
        prompt = f"{text}\n\n{prompt}"
        names.insert(0, passage_name)
    options_name, options = _first_named(obj, [f for f in _OPTION_FIELDS if f != prompt_name])
    if options_name is not None and (text := _options_text(options, options_name)):
        prompt = f"{prompt}\n{text}"
        names.append(options_name)
    if len(names) > 1:
        notes["prompt_parts"] = names
    return prompt


def _scalar_text(value: Any, where: str) -> str:
    """A string or number as text; anything else (null included) is ``wrong_type`` at ``where``."""
    if value is None or isinstance(value, (list, dict)):
        raise _Bad("wrong_type", f"{where} must be text, got {_type_name(value) if value is not None else 'null'}")
    return _text(value, where)


def _passage_text(passage: Any, name: str) -> str:
    """A passage as text: a string, or a list of strings joined with a blank line. HotpotQA's
    titled paragraphs (``[[title, [sentence, ...]], ...]``, or Hugging Face's ``{"title": [...],
    "sentences": [[...], ...]}``) become ``title`` then its sentences, one paragraph each.

    Raises:
        _Bad: ``wrong_type`` for anything else (another object, a list of non-texts).
    """
    if isinstance(passage, dict) and isinstance(passage.get("title"), list) \
            and isinstance(passage.get("sentences"), list) and len(passage["title"]) == len(passage["sentences"]):
        passage = [[t, s] for t, s in zip(passage["title"], passage["sentences"], strict=True)]
    if isinstance(passage, list):
        return "\n\n".join(_paragraph(p, f"{name}[{i}]") for i, p in enumerate(passage))
    if isinstance(passage, dict):
        raise _Bad("wrong_type", f"{name} must be text or a list of texts, got an object")
    return _scalar_text(passage, name)


def _paragraph(item: Any, where: str) -> str:
    """One paragraph of a passage: a text, or a ``[title, [sentence, ...]]`` pair."""
    if isinstance(item, list) and len(item) == 2 and isinstance(item[0], str) and isinstance(item[1], list):
        return item[0] + "\n" + "".join(_scalar_text(t, f"{where}[1]") for t in item[1])
    return _scalar_text(item, where)


#: An option that already starts with its label: ``A)21`` (AQuA), ``(B) ...``, ``C. ...``, ``D: ...``.
_LABELLED = re.compile(r"\(?([A-Z])\s*[).:]")


def _option_label(i: int) -> str:
    return chr(ord("A") + i) if i < 26 else str(i + 1)


def _options_text(options: Any, name: str) -> str:
    """Multiple-choice options, one per line as ``A. text``.

    Shapes: a list of texts (labelled ``A.``, ``B.``, ... unless each already starts with its
    letter, as AQuA's ``A)21``); an object ``{label: text}``; ARC's ``{"text": [...],
    "label": [...]}``; a string, kept as written.

    Raises:
        _Bad: ``wrong_type`` for any other shape.
    """
    if isinstance(options, str):
        return options
    if isinstance(options, list):
        texts = [_scalar_text(o, f"{name}[{i}]") for i, o in enumerate(options)]
        if all((m := _LABELLED.match(t)) and m.group(1) == _option_label(i) for i, t in enumerate(texts)):
            return "\n".join(texts)
        return "\n".join(f"{_option_label(i)}. {t}" for i, t in enumerate(texts))
    if isinstance(options, dict):
        if "text" in options and "label" in options:  # ARC
            labels, texts = options["label"], options["text"]
            if not isinstance(labels, list) or not isinstance(texts, list) or len(labels) != len(texts):
                raise _Bad("wrong_type", f"{name}.label and {name}.text must be lists of the same length")
            pairs = list(zip(labels, texts))
        else:
            pairs = list(options.items())
        return "\n".join(f"{_scalar_text(label, f'{name} label')}. {_scalar_text(text, f'{name}[{label!r}]')}"
                         for label, text in pairs)
    raise _Bad("wrong_type", f"{name} must be a list, an object or text, got {_type_name(options)}")


_PARSERS = {
    "chat": _parse_chat,
    "sharegpt": _parse_sharegpt,
    "evals": _parse_evals,
    "alpaca": _parse_alpaca,
    "prompt_response": _parse_prompt_response,
}
