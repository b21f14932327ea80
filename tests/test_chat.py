"""The chat template encoding: loss only on the assistant answer, end-of-turn included."""

from pathlib import Path

from tunewright.chat import IGNORE_INDEX, encode_example, prompt_ids, stop_token_ids, with_system_prompt
from tunewright.modeling import load_tokenizer
from tunewright.records import Example, Message

EXAMPLE = Example("x", (Message("user", "my card was stolen"), Message("assistant", "[Intent: Fraud Report] Sorry.")))


def test_labels_cover_exactly_the_answer_and_its_end_of_turn(tiny_model_dir: Path) -> None:
    tokenizer = load_tokenizer(tiny_model_dir)
    encoded = encode_example(tokenizer, EXAMPLE, "Be brief.", max_seq_len=512)
    learned = [token for token in encoded.labels if token != IGNORE_INDEX]
    decoded = tokenizer.decode(learned)
    assert decoded.startswith("[Intent: Fraud Report] Sorry.")
    assert "<|im_end|>" in decoded
    assert tokenizer.convert_tokens_to_ids("<|im_end|>") in learned
    pairs = zip(encoded.input_ids, encoded.labels, strict=True)
    prompt = tokenizer.decode([token for token, label in pairs if label == IGNORE_INDEX])
    assert "Be brief." in prompt and "my card was stolen" in prompt and "Sorry" not in prompt
    assert not encoded.truncated


def test_truncation_is_reported(tiny_model_dir: Path) -> None:
    tokenizer = load_tokenizer(tiny_model_dir)
    encoded = encode_example(tokenizer, EXAMPLE, "Be brief.", max_seq_len=10)
    assert encoded.truncated and len(encoded.input_ids) == 10


def test_system_prompt_is_added_once(tiny_model_dir: Path) -> None:
    chat = with_system_prompt((Message("system", "mine"), Message("user", "hi")), "task prompt")
    assert [m["content"] for m in chat] == ["mine", "hi"]
    chat = with_system_prompt((Message("user", "hi"),), "task prompt")
    assert chat[0] == {"role": "system", "content": "task prompt"}
    tokenizer = load_tokenizer(tiny_model_dir)
    assert tokenizer.decode(prompt_ids(tokenizer, chat)).endswith("<|im_start|>assistant\n")
    assert stop_token_ids(tokenizer) == [tokenizer.convert_tokens_to_ids("<|im_end|>")]


def test_label_span_covers_exactly_the_label_tokens(tiny_model_dir: Path) -> None:
    tokenizer = load_tokenizer(tiny_model_dir)
    regex = r"^\[Intent: (?P<label>[^\]]+)\]"
    encoded = encode_example(tokenizer, EXAMPLE, "Be brief.", 512, regex)
    assert encoded.label_span is not None
    start, end = encoded.label_span
    assert tokenizer.decode(encoded.input_ids[start:end]).strip() == "Fraud Report"
    assert all(label != IGNORE_INDEX for label in encoded.labels[start:end])
    unlabelled = Example("y", (Message("user", "hi"), Message("assistant", "no label here")))
    assert encode_example(tokenizer, unlabelled, "", 512, regex).label_span is None
