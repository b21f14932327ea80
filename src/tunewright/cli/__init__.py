"""The `tunewright` command. Each stage's commands live in their own module; this one wires them up.

Exit codes: 0 ok / go, 1 problems found (data check), 2 bad input or usage, 3 no-go, 130 interrupted.
"""

from __future__ import annotations

import importlib
import os
import sys

import click

from tunewright.cli.common import STATE, app, err
from tunewright.errors import EXIT_INTERRUPTED, TunewrightError

# Importing a module registers its commands; `--help` lists them in this order, the loop's order.
for _stage in ("loop", "data", "training", "evaluation", "deploy", "ui"):
    importlib.import_module(f"tunewright.cli.{_stage}")

__all__ = ["app", "main"]


def main() -> None:
    """Entry point: user errors become one line and an exit code; --debug shows tracebacks."""
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    try:
        code = app(standalone_mode=False)
    except click.ClickException as exc:  # usage errors: bad option, missing argument
        exc.show()
        sys.exit(exc.exit_code)
    except TunewrightError as exc:
        if STATE["debug"]:
            raise
        err.print(f"[red]error:[/] {exc}", highlight=False)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        err.print("interrupted")
        sys.exit(EXIT_INTERRUPTED)
    sys.exit(code if isinstance(code, int) else 0)
