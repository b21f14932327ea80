"""Export for other runtimes: gguf.py (one GGUF file for llama.cpp / Ollama) and vllm.py (a launch line
for an adapter library)."""

from tunewright.export.gguf import GgufExport, export_gguf
from tunewright.export.vllm import VllmPlan, export_vllm

__all__ = ["GgufExport", "VllmPlan", "export_gguf", "export_vllm"]
