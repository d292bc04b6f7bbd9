"""Format detection and normalisation to the record contract."""

from __future__ import annotations

import pytest

from phase1b_kedro.records import FieldConfig, Normalised, Rejection, content_hash, normalise

CFG = FieldConfig()


def ok(obj, fmt="auto") -> Normalised:
    rec = normalise(obj, CFG, fmt)
    assert isinstance(rec, Normalised), rec
    return rec


@pytest.mark.parametrize(
    ("prompt_key", "response_key"),
    [("prompt", "response"), ("question", "answer"), ("input", "output"), ("query", "completion")],
)
def test_prompt_response_field_names(prompt_key, response_key):
    rec = ok({prompt_key: "What is 2+2?", response_key: "4", "id": "q1"})
    assert rec.format == "prompt_response"
    assert rec.messages == [{"role": "user", "content": "What is 2+2?"}]
    assert (rec.prompt, rec.reference, rec.id, rec.id_from_source) == ("What is 2+2?", "4", "q1", True)


def test_configurable_field_names():
    cfg = FieldConfig(prompt_fields=("q",), response_fields=("a",))
    rec = normalise({"q": "Capital of France?", "a": "Paris"}, cfg)
    assert isinstance(rec, Normalised) and rec.reference == "Paris"
    assert isinstance(normalise({"q": "x", "a": "y"}, CFG), Rejection)


def test_numeric_reference_becomes_text():
    assert ok({"question": "6*7?", "answer": 42}).reference == "42"


def test_alpaca_with_and_without_input():
    rec = ok({"instruction": "Translate to French", "input": "cat", "output": "chat"})
    assert rec.format == "alpaca"
    assert rec.prompt == "Translate to French\n\ncat"
    assert ok({"instruction": "Say hi", "input": "", "output": "hi"}).prompt == "Say hi"


def test_chat_final_assistant_turn_is_reference():
    rec = ok({"messages": [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello"},
        {"role": "user", "content": "2+2?"},
        {"role": "assistant", "content": "4"},
    ]})
    assert rec.format == "chat"
    assert rec.reference == "4" and rec.prompt == "2+2?"
    assert len(rec.messages) == 4 and rec.messages[-1] == {"role": "user", "content": "2+2?"}


def test_chat_without_final_assistant_is_rejected():
    rej = normalise({"messages": [{"role": "user", "content": "Hi"}]}, CFG)
    assert isinstance(rej, Rejection) and rej.reason == "missing_reference"


def test_sharegpt_roles_mapped():
    rec = ok({"conversations": [{"from": "system", "value": "S"}, {"from": "human", "value": "Q"},
                                {"from": "gpt", "value": "A"}]})
    assert rec.format == "sharegpt"
    assert [m["role"] for m in rec.messages] == ["system", "user"]
    assert rec.reference == "A"


def test_evals_list_input_and_acceptable_answers():
    rec = ok({"input": [{"role": "system", "content": "Answer briefly."}, {"role": "user", "content": "Colour of sky?"}],
              "ideal": ["blue", "Blue."]})
    assert rec.format == "evals"
    assert rec.reference == "blue"
    assert rec.meta["acceptable"] == ["blue", "Blue."]


def test_evals_string_input_and_system_only_prompt():
    assert ok({"input": "What is 1+1?", "ideal": "2"}).prompt == "What is 1+1?"
    rec = ok({"input": [{"role": "system", "content": "Count the ducks: 3 ducks."}], "ideal": "3"})
    assert rec.prompt == "Count the ducks: 3 ducks."


def test_forced_format_overrides_detection():
    obj = {"input": "Say hi", "output": "hi", "instruction": "ignored?"}
    assert ok(obj).format == "alpaca"
    rec = ok(obj, "prompt_response")
    assert rec.format == "prompt_response" and rec.prompt == "Say hi"


def test_stable_content_hash_id_when_source_has_none():
    a = ok({"prompt": "P", "response": "R"})
    b = ok({"prompt": "P", "response": "R", "extra": 1})
    assert a.id == b.id == "h-" + content_hash([{"role": "user", "content": "P"}], "R")
    assert not a.id_from_source
    assert ok({"prompt": "P", "response": "R2"}).id != a.id


@pytest.mark.parametrize(
    ("obj", "reason"),
    [
        ([1, 2], "not_an_object"),
        ("text", "not_an_object"),
        ({"foo": 1}, "unknown_format"),
        ({"prompt": "   ", "response": "x"}, "empty_prompt"),
        ({"prompt": "p", "response": ""}, "missing_reference"),
        ({"instruction": "p", "output": "  "}, "empty_reference"),
        ({"prompt": "p", "response": {"a": 1}}, "wrong_type"),
        ({"prompt": ["p"], "response": "x"}, "wrong_type"),
        ({"instruction": "p", "output": None}, "missing_reference"),
        ({"messages": "hi"}, "wrong_type"),
        ({"messages": [{"role": "wizard", "content": "x"}, {"role": "assistant", "content": "y"}]}, "bad_role"),
        ({"input": "q", "ideal": []}, "missing_reference"),
        ({"prompt": "p", "response": "r", "id": {"x": 1}}, "wrong_type"),
        ({"prompt": "x" * 300_000, "response": "r"}, "prompt_too_long"),
    ],
)
def test_unusable_records_are_rejected_with_reason(obj, reason):
    rej = normalise(obj, CFG)
    assert isinstance(rej, Rejection)
    assert rej.reason == reason
