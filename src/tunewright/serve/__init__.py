"""An OpenAI-compatible server for one base model and its fine-tuned adapters."""
