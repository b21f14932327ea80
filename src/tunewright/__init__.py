"""tunewright: turn a general open LLM into a specialist for one narrow task."""

__version__ = "0.1.0"
