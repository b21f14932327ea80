"""`tunewright ui`: a local web dashboard over a runs directory (runs, a run's decision and evidence,
live loss curves), blind pairwise human review whose verdicts reach the gate, a playground against a
running server and the feedback queue."""

from tunewright.ui.app import UISettings, create_app

__all__ = ["UISettings", "create_app"]
