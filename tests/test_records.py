"""Format detection and normalisation to the record contract."""

from __future__ import annotations

import orjson
import pytest

from phase1b_kedro.records import (
    FieldConfig,
    JSONNumber,
    Normalised,
    NumberLiteralNeeded,
    Rejection,
    content_hash,
    normalise,
    normalise_line,
    parse_literal_numbers,
)

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


def line_record(raw: bytes, fmt: str = "auto", with_meta: bool = True) -> Normalised | Rejection:
    """What sampling's Scanner.record does: orjson first, the literal re-parse only when asked."""
    try:
        return normalise(orjson.loads(raw), CFG, fmt, with_meta)
    except NumberLiteralNeeded:
        return normalise_line(raw, CFG, fmt, with_meta)


@pytest.mark.parametrize("literal", ["1267650600228229401496703205376", "1e5", "1.50", "-0.0", "1E+5", "2.50e-3",
                                     "18446744073709551616", "-9223372036854775809", "0.1"])
def test_numeric_text_is_the_literal_as_written(literal):
    raw = b'{"question": ' + literal.encode() + b', "answer": ' + literal.encode() + b'}'
    with pytest.raises(NumberLiteralNeeded):  # orjson gave a float: its literal is lost
        normalise(orjson.loads(raw), CFG)
    rec = line_record(raw)
    assert (rec.prompt, rec.reference) == (literal, literal)
    assert rec.messages == [{"role": "user", "content": literal}]


def test_reference_two_to_the_hundred_is_exact():
    rec = line_record(b'{"question": "What is 2**100?", "answer": 1267650600228229401496703205376}')
    assert rec.reference == "1267650600228229401496703205376"


@pytest.mark.parametrize("literal", ["42", "-7", "0", "18446744073709551615", "-9223372036854775808"])
def test_integers_within_64_bits_are_exact_without_a_reparse(literal):
    rec = normalise(orjson.loads(b'{"question": "q", "answer": ' + literal.encode() + b'}'), CFG)
    assert rec.reference == literal


def test_literals_in_every_text_field_kind():
    rec = line_record(b'{"input": "q", "ideal": [1.50, 2e3, 7]}')  # evals acceptable answers
    assert (rec.reference, rec.meta["acceptable"]) == ("1.50", ["1.50", "2e3", "7"])
    rec = line_record(b'{"instruction": "Halve 3", "input": 3.0, "output": 1.50}')  # alpaca
    assert (rec.prompt, rec.reference) == ("Halve 3\n\n3.0", "1.50")
    rec = line_record(b'{"messages": [{"role": "user", "content": "t?"}, {"role": "assistant", "content": null,'
                      b' "tool_calls": [{"function": {"name": "t", "arguments": {}}}]},'
                      b' {"role": "tool", "content": 21.50}, {"role": "assistant", "content": "21.50"}]}')
    assert rec.messages[-1] == {"role": "tool", "content": "21.50"}


def test_reparsed_record_equals_the_orjson_one_apart_from_literals_and_meta_stays_writable():
    raw = (b'{"id": "r1", "question": "q", "answer": 1.50, "meta": {"difficulty": 0.25, "big": 1e40},'
           b' "tests": [{"input": "1", "output": "2"}]}')
    rec = line_record(raw)
    assert rec.reference == "1.50"
    assert rec.meta["source_meta"] == {"difficulty": 0.25, "big": 1e40}
    assert type(rec.meta["source_meta"]["difficulty"]) is float  # no JSONNumber left in meta
    orjson.dumps(rec.meta)  # writable by the datasets (orjson refuses float subclasses)
    plain = normalise(orjson.loads(raw.replace(b"1.50", b'"1.50"')), CFG)
    assert (rec.id, rec.messages, rec.meta) == (plain.id, plain.messages, plain.meta)
    indexed = line_record(raw, with_meta=False)  # the index pass decides the same
    assert (indexed.id, indexed.key, indexed.meta) == (rec.id, rec.key, {})


def test_parse_literal_numbers_types_like_orjson():
    obj = parse_literal_numbers(b'[1, 18446744073709551615, 18446744073709551616, 1.50, -0.0, "s"]')
    assert obj == orjson.loads(b'[1, 18446744073709551615, 18446744073709551616, 1.50, -0.0, "s"]')
    assert [type(v).__name__ for v in obj] == ["int", "int", "JSONNumber", "JSONNumber", "JSONNumber", "str"]
    assert [v.literal for v in obj[2:5]] == ["18446744073709551616", "1.50", "-0.0"]
    assert JSONNumber("1e5") == 100000.0


def test_float_id_is_wrong_type_on_both_paths():
    rej = line_record(b'{"id": 1.5, "question": "q", "answer": 2.50}')
    assert rej == Rejection("wrong_type", "id must be a string or integer, got float")


def test_alpaca_with_and_without_input():
    rec = ok({"instruction": "Translate to French", "input": "cat", "output": "chat"})
    assert rec.format == "alpaca"
    assert rec.prompt == "Translate to French\n\ncat"
    assert ok({"instruction": "Say hi", "input": "", "output": "hi"}).prompt == "Say hi"


@pytest.mark.parametrize("input_value", ["Hello, world", ""])
def test_alpaca_with_a_response_field_keeps_its_instruction(input_value):
    rec = ok({"instruction": "Translate the following sentence to French.", "input": input_value,
              "response": "Bonjour, le monde"})
    assert rec.format == "alpaca"
    expected = "Translate the following sentence to French." + ("\n\nHello, world" if input_value else "")
    assert rec.messages == [{"role": "user", "content": expected}]
    assert rec.reference == "Bonjour, le monde"
    assert rec.meta.get("prompt_parts") == (["instruction", "input"] if input_value else None)


def test_dolly_context_follows_the_instruction():
    rec = ok({"instruction": "When was Virgin Australia founded?",
              "context": "Virgin Australia commenced services on 31 August 2000.",
              "response": "31 August 2000", "category": "closed_qa"})
    assert rec.format == "alpaca"
    assert rec.prompt == "When was Virgin Australia founded?\n\nVirgin Australia commenced services on 31 August 2000."
    assert (rec.reference, rec.meta["prompt_parts"]) == ("31 August 2000", ["instruction", "context"])
    rec = ok({"instruction": "Name a colour.", "context": "", "response": "Blue", "category": "brainstorming"})
    assert rec.prompt == "Name a colour." and "prompt_parts" not in rec.meta


def test_alpaca_history_becomes_earlier_turns():
    rec = ok({"system": "Be brief.", "instruction": "And times 3?", "input": "", "output": "6",
              "history": [["What is 1+1?", "2"], ["Add 0?", 2]]})
    assert rec.messages == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "What is 1+1?"}, {"role": "assistant", "content": "2"},
        {"role": "user", "content": "Add 0?"}, {"role": "assistant", "content": "2"},
        {"role": "user", "content": "And times 3?"},
    ]
    assert rec.prompt == "And times 3?" and rec.reference == "6"
    assert ok({"instruction": "Hi", "output": "Hello", "history": []}).messages == [{"role": "user", "content": "Hi"}]


@pytest.mark.parametrize("history", ["q a", [["only one"]], [["q", None]], [{"q": "a"}], 5])
def test_bad_alpaca_history_is_wrong_type(history):
    rej = normalise({"instruction": "Hi", "output": "Hello", "history": history}, CFG)
    assert isinstance(rej, Rejection) and rej.reason == "wrong_type" and "history" in rej.detail


SQUAD = {"id": "5733be284776f41900661182", "title": "University_of_Notre_Dame",
         "context": "Architecturally, the school has a Catholic character.",
         "question": "What character does the school have?", "answer": "Catholic"}


def test_squad_passage_goes_before_the_question():
    rec = ok(SQUAD)
    assert rec.format == "prompt_response"
    assert rec.messages == [{"role": "user", "content": "Architecturally, the school has a Catholic character."
                                                        "\n\nWhat character does the school have?"}]
    assert rec.prompt == rec.messages[0]["content"] and rec.reference == "Catholic"
    assert rec.meta["prompt_parts"] == ["context", "question"]
    boolq = ok({"passage": ["First paragraph.", "Second paragraph."], "question": "is it so", "answer": True})
    assert boolq.prompt == "First paragraph.\n\nSecond paragraph.\n\nis it so" and boolq.reference == "true"
    assert boolq.meta["prompt_parts"] == ["passage", "question"]


MC_QUESTION = "Which gas do plants absorb?"
MC_PROMPT = MC_QUESTION + "\nA. Oxygen\nB. Carbon dioxide\nC. Nitrogen"


@pytest.mark.parametrize(("field", "options"), [
    ("options", ["Oxygen", "Carbon dioxide", "Nitrogen"]),                                    # a list of texts
    ("choices", ["Oxygen", "Carbon dioxide", "Nitrogen"]),
    ("options", {"A": "Oxygen", "B": "Carbon dioxide", "C": "Nitrogen"}),                   # MedQA: label -> text
    ("choices", {"text": ["Oxygen", "Carbon dioxide", "Nitrogen"], "label": ["A", "B", "C"]}),  # ARC
    ("options", ["A. Oxygen", "B. Carbon dioxide", "C. Nitrogen"]),                          # already labelled
    ("options", "A. Oxygen\nB. Carbon dioxide\nC. Nitrogen"),                              # written out
])
def test_multiple_choice_options_follow_the_question(field, options):
    rec = ok({"question": MC_QUESTION, field: options, "answer": "B"})
    assert rec.prompt == MC_PROMPT and rec.reference == "B"
    assert rec.meta["prompt_parts"] == ["question", field]


def test_passage_question_and_options_together_and_labels_kept():
    rec = ok({"context": "Photosynthesis uses CO2.", "question": "Plants absorb?",
              "choices": {"text": ["O2", "CO2"], "label": ["1", "2"]}, "answer": "2"})
    assert rec.prompt == "Photosynthesis uses CO2.\n\nPlants absorb?\n1. O2\n2. CO2"
    assert rec.meta["prompt_parts"] == ["context", "question", "choices"]
    aqua = ok({"question": "x?", "options": ["A)21", "B)21.5", "C)22"], "answer": "B"})
    assert aqua.prompt == "x?\nA)21\nB)21.5\nC)22"
    numbers = ok({"question": "2+2?", "options": [3, 4], "answer": "B"})
    assert numbers.prompt == "2+2?\nA. 3\nB. 4"


def test_no_extra_fields_no_prompt_parts_and_empty_extras_are_ignored():
    assert "prompt_parts" not in ok({"question": "q", "answer": "a"}).meta
    rec = ok({"question": "q", "context": "", "options": [], "answer": "a"})
    assert rec.prompt == "q" and "prompt_parts" not in rec.meta


def test_context_named_as_the_prompt_field_is_not_repeated():
    cfg = FieldConfig(prompt_fields=("context",), response_fields=("answer",))
    rec = normalise({"context": "Read this.", "answer": "ok"}, cfg)
    assert rec.prompt == "Read this." and "prompt_parts" not in rec.meta


@pytest.mark.parametrize(("extra", "detail"), [
    ({"context": {"title": ["T"], "text": ["s"]}}, "context must be text or a list of texts"),
    ({"passage": ["ok", None]}, "passage[1] must be text"),
    ({"options": 4}, "options must be a list, an object or text, got int"),
    ({"choices": {"text": ["a", "b"], "label": ["A"]}}, "choices.label and choices.text"),
    ({"options": [["a"], "b"]}, "options[0] must be text"),
])
def test_unusable_passage_or_options_are_wrong_type(extra, detail):
    rej = normalise({"question": "q", "answer": "a", **extra}, CFG)
    assert isinstance(rej, Rejection) and rej.reason == "wrong_type" and detail in rej.detail, rej


def test_blank_question_with_a_passage_is_still_empty_prompt():
    rej = normalise({"context": "A passage.", "question": "  ", "answer": "a"}, CFG)
    assert rej == Rejection("empty_prompt", "the prompt is empty or whitespace")


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


@pytest.mark.parametrize(("raw", "role"), [("User", "user"), (" ASSISTANT ", "assistant"), ("System", "system"),
                                           ("Tool", "tool"), ("Function", "tool"), ("Developer", "developer")])
def test_chat_roles_are_case_insensitive_and_stripped(raw, role):
    rec = ok({"messages": [{"role": "user", "content": "q"}, {"role": raw, "content": "x"},
                           {"role": "user", "content": "q2"}, {"role": "Assistant", "content": "a"}]})
    assert rec.messages[1] == {"role": role, "content": "x"} and rec.reference == "a"


@pytest.mark.parametrize(("raw", "role"), [("Human", "user"), (" gpt ", "assistant"), ("SYSTEM", "system"),
                                           ("Observation", "tool"), ("USER", "user")])
def test_sharegpt_roles_are_case_insensitive_and_stripped(raw, role):
    rec = ok({"conversations": [{"from": "human", "value": "q"}, {"from": raw, "value": "x"},
                                {"from": "human", "value": "q2"}, {"from": "GPT", "value": "a"}]})
    assert rec.messages[1] == {"role": role, "content": "x"} and rec.reference == "a"


@pytest.mark.parametrize("raw", ["wizard", None, 3, ["user"], {"r": 1}, ""])
@pytest.mark.parametrize("key", ["messages", "conversations"])
def test_unknown_or_non_string_roles_are_bad_role(raw, key):
    role_key, content_key = ("role", "content") if key == "messages" else ("from", "value")
    rej = normalise({key: [{role_key: raw, content_key: "x"}, {role_key: "assistant", content_key: "y"}]}, CFG)
    assert rej == Rejection("bad_role", f"{key}[0] has unknown role {raw!r}")


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


# ---------------------------------------------------------------- tool calling and content parts

CALL = '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>'


@pytest.mark.parametrize("call_role", ["function_call", "tool_call", "Function_Call"])
@pytest.mark.parametrize("result_role", ["observation", "tool", "function_response", "tool_response"])
def test_sharegpt_function_calling_turns_are_accepted(call_role, result_role):
    rec = ok({"conversations": [
        {"from": "human", "value": "Weather in Paris?"},
        {"from": call_role, "value": '{"name": "get_weather", "arguments": {"city": "Paris"}}'},
        {"from": result_role, "value": '{"temp_c": 21}'},
        {"from": "gpt", "value": "It is 21 °C in Paris."},
    ], "tools": '[{"name": "get_weather", "parameters": {"type": "object"}}]'})
    assert rec.messages == [
        {"role": "system", "content": '<tools>\n{"name": "get_weather", "parameters": {"type": "object"}}\n</tools>'},
        {"role": "user", "content": "Weather in Paris?"},
        {"role": "assistant", "content": CALL},
        {"role": "tool", "content": '{"temp_c": 21}'},
    ]
    assert rec.reference == "It is 21 °C in Paris." and rec.prompt == "Weather in Paris?"
    assert (rec.meta["tool_calls"], rec.meta["tool_results"], rec.meta["tools"]) == (1, 1, 1)


@pytest.mark.parametrize("value", [
    {"name": "get_weather", "arguments": {"city": "Paris"}},                    # an object, not JSON text
    '{"name": "get_weather", "arguments": "{\\"city\\": \\"Paris\\"}"}',        # arguments as JSON text
    [{"name": "get_weather", "parameters": {"city": "Paris"}}],                # a list, `parameters`
])
def test_sharegpt_call_layouts_render_the_same_block(value):
    rec = ok({"conversations": [{"from": "human", "value": "Weather in Paris?"}, {"from": "function_call", "value": value}]})
    assert rec.reference == CALL  # a conversation ending in a call: the call is the reference


def test_sharegpt_call_that_is_not_json_is_kept_verbatim():
    rec = ok({"conversations": [{"from": "human", "value": "q"}, {"from": "function_call", "value": "get_weather(Paris)"},
                                {"from": "observation", "value": "21"}, {"from": "gpt", "value": "21"}]})
    assert rec.messages[1]["content"] == "<tool_call>\nget_weather(Paris)\n</tool_call>"


def test_openai_tool_calls_with_null_content_and_tool_turn():
    rec = ok({"messages": [
        {"role": "user", "content": "Weather in Paris?"},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": '{"temp_c": 21}'},
        {"role": "assistant", "content": "It is 21 °C."},
    ], "tools": [{"type": "function", "function": {"name": "get_weather"}}]})
    assert rec.format == "chat"
    assert [m["role"] for m in rec.messages] == ["system", "user", "assistant", "tool"]
    assert rec.messages[2]["content"] == CALL and rec.messages[3]["content"] == '{"temp_c": 21}'
    assert rec.reference == "It is 21 °C."
    assert (rec.meta["tool_calls"], rec.meta["tool_results"], rec.meta["tools"]) == (1, 1, 1)


def test_openai_legacy_function_call_function_role_and_text_beside_calls():
    rec = ok({"messages": [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Weather in Paris and Rome?"},
        {"role": "assistant", "content": "Checking.", "function_call": {"name": "get_weather", "arguments": {"city": "Paris"}}},
        {"role": "function", "name": "get_weather", "content": {"temp_c": 21}},
        {"role": "assistant", "content": [{"type": "text", "text": "Paris: 21 °C."}]},
    ], "functions": [{"name": "get_weather"}]})
    assert rec.messages[0] == {"role": "system", "content": 'Be brief.\n\n<tools>\n{"name": "get_weather"}\n</tools>'}
    assert rec.messages[2]["content"] == "Checking.\n" + CALL
    assert rec.messages[3] == {"role": "tool", "content": '{"temp_c": 21}'}
    assert rec.reference == "Paris: 21 °C."


def test_final_turn_with_only_tool_calls_is_the_reference():
    rec = ok({"messages": [{"role": "user", "content": "Weather in Paris?"},
                           {"role": "assistant", "content": "", "tool_calls": [
                               {"type": "function", "function": {"name": "get_weather", "arguments": {"city": "Paris"}}}]}]})
    assert rec.reference == CALL


@pytest.mark.parametrize(("tools", "got"), [
    (5, "got int"),
    (True, "got bool"),
    ("5", "got a JSON string holding int"),
    ('"get_weather"', "got a JSON string holding str"),
])
def test_tools_that_are_not_definitions_are_wrong_type(tools, got):
    rej = normalise({"prompt": "p", "response": "r", "tools": tools}, CFG)
    detail = "tools must be a list or an object of tool definitions (or a JSON string of one), " + got
    assert rej == Rejection("wrong_type", detail)


def test_functions_number_is_named_and_tool_shapes_accepted():
    rej = normalise({"prompt": "p", "response": "r", "functions": 0}, CFG)
    assert rej.reason == "wrong_type" and rej.detail.startswith("functions must be a list or an object")
    one = ok({"prompt": "p", "response": "r", "tools": {"name": "f"}})
    assert one.messages[0] == {"role": "system", "content": '<tools>\n{"name": "f"}\n</tools>'}
    assert ok({"prompt": "p", "response": "r", "tools": '{"name": "f"}'}).messages == one.messages
    assert ok({"prompt": "p", "response": "r", "tools": None, "functions": [{"name": "f"}]}).messages == one.messages
    for empty in ("", "[]", [], {}, None):
        rec = ok({"prompt": "p", "response": "r", "tools": empty})
        assert rec.messages == [{"role": "user", "content": "p"}] and "tools" not in rec.meta


def test_content_parts_are_joined_with_a_newline():
    rec = ok({"messages": [
        {"role": "user", "content": [{"type": "text", "text": "Name the largest planet."},
                                     {"type": "text", "text": "Answer in one word."}]},
        {"role": "assistant", "content": "Jupiter"}]})
    assert rec.prompt == "Name the largest planet.\nAnswer in one word."


def test_non_text_parts_are_counted_in_meta_never_dropped_silently():
    rec = ok({"messages": [
        {"role": "user", "content": [{"type": "image_url", "image_url": {"url": "data:..."}},
                                     {"type": "text", "text": "What is shown?"},
                                     {"type": "input_audio", "input_audio": {}}, {"type": "image_url"}]},
        {"role": "assistant", "content": [{"type": "output_text", "text": "A cat."}]}]})
    assert rec.prompt == "What is shown?" and rec.reference == "A cat."
    assert rec.meta["non_text_parts"] == {"count": 3, "types": {"image_url": 2, "input_audio": 1}}
    assert "non_text_parts" not in ok({"prompt": "p", "response": "r"}).meta


@pytest.mark.parametrize("part", [{"type": "text", "text": None}, {"type": "text"}, {"type": "text", "text": 3}, 7])
def test_a_text_part_that_is_not_text_is_wrong_type(part):
    rej = normalise({"messages": [{"role": "user", "content": [part]}, {"role": "assistant", "content": "x"}]}, CFG)
    assert isinstance(rej, Rejection) and rej.reason == "wrong_type"
    assert "messages[0].content[0]" in rej.detail


def test_sharegpt_system_field_and_source_fields():
    rec = ok({"system": "You are terse.", "dataset": "glaive",
              "conversations": [{"from": "human", "value": "hi"}, {"from": "gpt", "value": "hello"}]})
    assert rec.messages[0] == {"role": "system", "content": "You are terse."}
    assert rec.source == "glaive"


def test_assistant_turn_without_content_or_calls_is_wrong_type():
    rej = normalise({"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": None}]}, CFG)
    assert isinstance(rej, Rejection) and rej.reason == "wrong_type"


# ---------------------------------------------------------------- list parameters

@pytest.mark.parametrize("name", FieldConfig.LIST_PARAMS)
def test_every_list_parameter_accepts_a_single_string(name):
    cfg = FieldConfig.from_params({name: "instruction_text"})
    assert getattr(cfg, name) == ("instruction_text",)


def test_single_string_prompt_field_reads_records():
    """`--params "sampling.prompt_fields=instruction_text"` gives a string, not a list."""
    cfg = FieldConfig.from_params({"prompt_fields": "instruction_text"})
    rec = normalise({"instruction_text": "Say hi", "response": "hi"}, cfg)
    assert isinstance(rec, Normalised) and rec.prompt == "Say hi"


@pytest.mark.parametrize("value", [3, {"a": 1}, ["ok", 5], [""], None])
def test_bad_list_parameters_stop_naming_the_parameter(value):
    from phase1b_kedro.params import ParameterError

    if value is None:
        assert FieldConfig.from_params({"id_fields": None}).id_fields == FieldConfig().id_fields
        return
    with pytest.raises(ParameterError, match=r"sampling\.id_fields"):
        FieldConfig.from_params({"id_fields": value})
    with pytest.raises(ParameterError, match=r"sampling\.prompt_fields"):
        FieldConfig.from_params({"prompt_fields": []})


def test_hotpotqa_titled_paragraphs_become_the_passage():
    pairs = [["Paris", ["Paris is the capital.", " It is in France."]], ["Rome", ["Rome is old."]]]
    hf = {"title": ["Paris", "Rome"], "sentences": [["Paris is the capital.", " It is in France."], ["Rome is old."]]}
    for context in (pairs, hf):
        rec = normalise({"question": "Which is older?", "answer": "Rome", "context": context}, CFG)
        assert rec.prompt == "Paris\nParis is the capital. It is in France.\n\nRome\nRome is old.\n\nWhich is older?"


def test_a_source_or_category_that_is_not_text_falls_to_the_next_field():
    rec = normalise({"prompt": "p", "response": "r", "source": 2023, "dataset": "gsm8k",
                     "category": ["math"], "task_type": "arithmetic"}, CFG)
    assert (rec.source, rec.source_category) == ("gsm8k", "arithmetic")
