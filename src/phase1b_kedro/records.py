"""Input formats → the normalised test record (see shared/DESIGN.md, "Record contract").

Supported per-record formats (detected, or forced with ``sampling.input_format``):

- ``prompt_response``: a prompt field and a reference field with configurable names
  (``prompt``/``response``, ``question``/``answer``, ``input``/``output``, ...);
- ``alpaca``: ``instruction``, optional ``input``, ``output``;
- ``chat``: ``messages`` whose final assistant turn is the reference;
- ``sharegpt``: ``conversations`` of ``{from, value}`` turns, same rule;
- ``evals``: OpenAI-evals ``input`` (chat list or string) + ``ideal`` (string or list of
  acceptable answers; all kept in ``meta.acceptable``, the first is the reference).

``normalise`` never raises for bad content: it returns a :class:`Rejection` with a reason,
so the caller can quarantine the record and account for it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

from phase1b_kedro.code_tests import extract_tests

CATEGORIES: tuple[str, ...] = ("math", "code", "reasoning", "creative", "qa", "other")
FORMATS: tuple[str, ...] = ("prompt_response", "alpaca", "chat", "sharegpt", "evals")

_SHAREGPT_ROLES = {
    "human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant",
    "chatgpt": "assistant", "bing": "assistant", "bard": "assistant", "model": "assistant",
    "system": "system",
}
_CHAT_ROLES = {"system", "user", "assistant", "developer", "tool"}


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
    source_field: str = "source"
    max_prompt_chars: int = 200_000

    @classmethod
    def from_params(cls, params: Mapping[str, Any]) -> FieldConfig:
        """Build from the ``sampling`` parameter group (missing keys keep defaults)."""
        kwargs: dict[str, Any] = {}
        for name in ("prompt_fields", "response_fields", "id_fields", "category_fields",
                     "system_fields"):
            if name in params and params[name] is not None:
                kwargs[name] = tuple(params[name])
        if params.get("source_field"):
            kwargs["source_field"] = str(params["source_field"])
        if params.get("max_prompt_chars"):
            kwargs["max_prompt_chars"] = int(params["max_prompt_chars"])
        return cls(**kwargs)


@dataclass
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
    """A stable 16-hex-digit hash of a conversation and its reference."""
    payload = orjson.dumps([[m["role"], m["content"]] for m in messages] + [reference])
    return hashlib.blake2b(payload, digest_size=8).hexdigest()


def detect_format(obj: Mapping[str, Any], cfg: FieldConfig) -> str | None:
    """Guess a record's format from its keys; ``None`` when nothing fits."""
    if "messages" in obj:
        return "chat"
    if "conversations" in obj:
        return "sharegpt"
    if "ideal" in obj and "input" in obj:
        return "evals"
    if "instruction" in obj and "output" in obj:
        return "alpaca"
    if any(f in obj for f in cfg.prompt_fields) and any(f in obj for f in cfg.response_fields):
        return "prompt_response"
    return None


def normalise(obj: Any, cfg: FieldConfig, forced_format: str = "auto") -> Normalised | Rejection:
    """Turn one parsed JSON value into a :class:`Normalised` record or a :class:`Rejection`.

    Args:
        obj: The parsed JSON value of one input line.
        cfg: Field names to look for.
        forced_format: ``auto`` to detect per record, or one of :data:`FORMATS`.

    Returns:
        The normalised record, or the reason it cannot be used.
    """
    if not isinstance(obj, dict):
        return Rejection("not_an_object", f"line holds a JSON {type(obj).__name__}")
    fmt = detect_format(obj, cfg) if forced_format == "auto" else forced_format
    if fmt is None:
        keys = ", ".join(sorted(map(str, obj))[:8])
        return Rejection("unknown_format", f"no known format fits keys [{keys}]")
    try:
        messages, reference, acceptable = _PARSERS[fmt](obj, cfg)
    except _Bad as bad:
        return Rejection(bad.reason, bad.detail)

    prompt = _last_prompt(messages)
    if not prompt.strip():
        return Rejection("empty_prompt", "the prompt is empty or whitespace")
    if not reference.strip():
        return Rejection("empty_reference", "the reference answer is empty")
    total_chars = sum(len(m["content"]) for m in messages)
    if total_chars > cfg.max_prompt_chars:
        return Rejection(
            "prompt_too_long",
            f"{total_chars} characters > max_prompt_chars={cfg.max_prompt_chars}",
        )

    meta: dict[str, Any] = {"format": fmt}
    if isinstance(obj.get("meta"), dict):
        meta["source_meta"] = obj["meta"]
    if acceptable is not None:
        meta["acceptable"] = acceptable
    tests = extract_tests(obj)
    if tests is not None:
        meta["tests"] = tests

    raw_id = _first_present(obj, cfg.id_fields)
    if raw_id is not None and not isinstance(raw_id, (str, int)) or isinstance(raw_id, bool):
        return Rejection("wrong_type", f"id must be a string or integer, got {type(raw_id).__name__}")
    rec_id = str(raw_id).strip() if raw_id is not None else ""
    from_source = bool(rec_id)
    key = content_hash(messages, reference)
    if not from_source:
        rec_id = "h-" + key

    source = obj.get(cfg.source_field)
    cat = _first_present(obj, cfg.category_fields)
    return Normalised(
        id=rec_id,
        id_from_source=from_source,
        messages=messages,
        prompt=prompt,
        reference=reference,
        format=fmt,
        source=source if isinstance(source, str) and source else None,
        source_category=cat.strip() if isinstance(cat, str) and cat.strip() else None,
        meta=meta,
        key=key,
    )


class _Bad(Exception):
    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(reason, detail)
        self.reason, self.detail = reason, detail


def _first_present(obj: Mapping[str, Any], names: Sequence[str]) -> Any:
    for name in names:
        value = obj.get(name)
        if value is not None and value != "":
            return value
    return None


def _text(value: Any, what: str) -> str:
    """Coerce a scalar answer to text; numbers are common references (``"answer": 42``)."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(value)
    if value is None:
        raise _Bad(f"missing_{what}", f"no {what}")
    raise _Bad("wrong_type", f"{what} must be text, got {type(value).__name__}")


def _last_prompt(messages: list[dict[str, str]]) -> str:
    """The last user turn; a conversation with none (some evals put the task in the system
    message) falls back to its last non-empty message."""
    for m in reversed(messages):
        if m["role"] == "user" and m["content"].strip():
            return m["content"]
    for m in reversed(messages):
        if m["content"].strip():
            return m["content"]
    return ""


def _chat_list(turns: Any, what: str, role_key: str = "role", content_key: str = "content",
               role_map: Mapping[str, str] | None = None) -> list[dict[str, str]]:
    if not isinstance(turns, list) or not turns:
        raise _Bad("wrong_type" if turns is not None else f"missing_{what}",
                   f"{what} must be a non-empty list of turns")
    out = []
    for i, turn in enumerate(turns):
        if not isinstance(turn, dict):
            raise _Bad("wrong_type", f"{what}[{i}] is not an object")
        role = turn.get(role_key)
        role = role_map.get(str(role).lower()) if role_map is not None else role
        if role not in _CHAT_ROLES:
            raise _Bad("bad_role", f"{what}[{i}] has unknown role {turn.get(role_key)!r}")
        content = turn.get(content_key)
        if isinstance(content, list):  # OpenAI content parts: keep the text parts
            content = "".join(p.get("text", "") for p in content if isinstance(p, dict))
        if not isinstance(content, str):
            raise _Bad("wrong_type", f"{what}[{i}].{content_key} must be text")
        out.append({"role": role, "content": content})
    return out


def _split_final_assistant(turns: list[dict[str, str]], what: str):
    if turns[-1]["role"] != "assistant":
        raise _Bad("missing_reference", f"{what} does not end with an assistant turn")
    if len(turns) < 2:
        raise _Bad("missing_prompt", f"{what} has no turn before the reference")
    return turns[:-1], turns[-1]["content"], None


def _parse_chat(obj: Mapping[str, Any], cfg: FieldConfig):
    return _split_final_assistant(_chat_list(obj.get("messages"), "messages"), "messages")


def _parse_sharegpt(obj: Mapping[str, Any], cfg: FieldConfig):
    turns = _chat_list(obj.get("conversations"), "conversations", "from", "value", _SHAREGPT_ROLES)
    return _split_final_assistant(turns, "conversations")


def _parse_evals(obj: Mapping[str, Any], cfg: FieldConfig):
    raw = obj.get("input")
    if isinstance(raw, str):
        messages = [{"role": "user", "content": raw}]
    else:
        messages = _chat_list(raw, "input")
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


def _parse_alpaca(obj: Mapping[str, Any], cfg: FieldConfig):
    instruction = _text(obj.get("instruction"), "prompt")
    extra = obj.get("input")
    if extra not in (None, ""):
        instruction = f"{instruction}\n\n{_text(extra, 'prompt')}"
    messages = _system(obj, cfg) + [{"role": "user", "content": instruction}]
    return messages, _text(obj.get("output"), "reference"), None


def _parse_prompt_response(obj: Mapping[str, Any], cfg: FieldConfig):
    prompt = _first_present(obj, cfg.prompt_fields)
    reference = _first_present(obj, cfg.response_fields)
    messages = _system(obj, cfg) + [{"role": "user", "content": _text(prompt, "prompt")}]
    if isinstance(reference, list) and reference:
        acceptable = [_text(v, "reference") for v in reference]
        return messages, acceptable[0], acceptable
    return messages, _text(reference, "reference"), None


_PARSERS = {
    "chat": _parse_chat,
    "sharegpt": _parse_sharegpt,
    "evals": _parse_evals,
    "alpaca": _parse_alpaca,
    "prompt_response": _parse_prompt_response,
}
