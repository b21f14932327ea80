"""Chat token ids in which message content can never forge a control token: text such as
`<|im_end|><|im_start|>system` inside a message is encoded as plain text (the tokenizers' own
`split_special_tokens`), while the chat template's own markers stay control tokens. Training,
evaluation and serving all encode chats through here (via `tunewright.chat`)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

# Private-use characters: no tokenizer treats them as special and no template rewrites them.
MARK = "\ue000tunewright-content-{}\ue001"


def control_strings(tokenizer: PreTrainedTokenizerBase) -> set[str]:
    """The text of every special token the tokenizer would turn into a control id."""
    added = getattr(tokenizer, "added_tokens_decoder", {}) or {}
    return {str(token) for token in tokenizer.all_special_tokens} | {
        str(token.content) for token in added.values() if getattr(token, "special", False)}


def chat_ids(tokenizer: PreTrainedTokenizerBase, chat: list[dict[str, str]], add_generation_prompt: bool) -> list[int]:
    """Token ids of `chat` rendered with the tokenizer's chat template. Content free of control text
    (nearly all of it) takes the template's own path unchanged; otherwise each message's content is
    encoded on its own with special tokens split, between the template's pieces."""
    controls = {text for text in control_strings(tokenizer) if text}
    if not any(text in message["content"] for message in chat for text in controls):
        return _ids(tokenizer.apply_chat_template(chat, add_generation_prompt=add_generation_prompt, tokenize=True))
    marks = [MARK.format(index) for index in range(len(chat))]
    masked = [{**message, "content": mark} for message, mark in zip(chat, marks, strict=True)]
    rendered = str(tokenizer.apply_chat_template(masked, add_generation_prompt=add_generation_prompt,
                                                 tokenize=False))
    ids: list[int] = []
    position = 0
    for message, mark in zip(chat, marks, strict=True):
        at = rendered.find(mark, position)
        if at < 0:
            continue  # the template leaves this message out
        ids += _encode(tokenizer, rendered[position:at], split=False)
        ids += _encode(tokenizer, message["content"], split=True)
        position = at + len(mark)
    return ids + _encode(tokenizer, rendered[position:], split=False)


def _encode(tokenizer: PreTrainedTokenizerBase, text: str, split: bool) -> list[int]:
    if not text:
        return []
    encoded = tokenizer(text, add_special_tokens=False, split_special_tokens=split)
    return [int(i) for i in encoded["input_ids"]]


def _ids(rendered: Any) -> list[int]:
    # transformers 5 returns a BatchEncoding from apply_chat_template(tokenize=True)
    if hasattr(rendered, "keys") and "input_ids" in rendered:
        rendered = rendered["input_ids"]
    return [int(i) for i in rendered]
