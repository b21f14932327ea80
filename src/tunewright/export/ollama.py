"""An Ollama Modelfile beside a GGUF: the file, the chat template in Ollama's Go template syntax, the
task's system prompt and the stop tokens, so `ollama create` gives a model that answers as tunewright's."""

from __future__ import annotations

import json
from pathlib import Path

from tunewright.errors import ModelError

# ChatML, as the Hugging Face templates of ChatML models render it; Ollama puts SYSTEM first when a
# request has no system message of its own.
CHATML_TEMPLATE = """{{- range $i, $_ := .Messages }}<|im_start|>{{ .Role }}
{{ .Content }}<|im_end|>
{{ end }}<|im_start|>assistant
"""


def modelfile(gguf_file: Path, chat_template: str, system_prompt: str, stop_tokens: list[str]) -> str:
    """The Modelfile text; only ChatML templates are translated (others have no faithful rendering here)."""
    if "<|im_start|>" not in chat_template:
        raise ModelError(f"{gguf_file}: the chat template is not ChatML, and only ChatML is written as an Ollama "
                         "TEMPLATE; the GGUF itself is fine for llama.cpp")
    if '"""' in system_prompt:
        raise ModelError('task.system_prompt contains """, which an Ollama Modelfile cannot quote; remove it')
    lines = [f"FROM ./{gguf_file.name}", f'TEMPLATE """{CHATML_TEMPLATE}"""', f'SYSTEM """{system_prompt}"""',
             *(f"PARAMETER stop {json.dumps(token)}" for token in stop_tokens),
             "PARAMETER temperature 0", ""]
    return "\n".join(lines)
