"""Human verdicts reach the decision and the reports: `eval --rescore` on a real run, and report.html
with its pictures before the tables."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from tunewright.config import HumanGate, load_config
from tunewright.pipeline import rescore_run
from tunewright.review import VerdictRecord, append_verdict, now
from tunewright.runs import RunPaths
from tunewright.ui.runs import example_rows

from .conftest import RUN, SCREENSHOTS


def test_rescore_puts_the_human_win_rate_in_the_gate_and_the_report(runs_dir: Path, tmp_path: Path,
                                                                    browser_page: Any) -> None:
    run = RunPaths(tmp_path / RUN)
    shutil.copytree(runs_dir / RUN, run.root)
    before = json.loads(run.summary.read_text())
    baseline = before["eval"]["best_baseline"]
    rows = example_rows(run, baseline)
    for index, row in enumerate(rows):
        append_verdict(run.root, VerdictRecord("ann", now(), row.example_id, baseline,
                                               "finetuned" if index % 2 == 0 else "both_bad", "left"))
    config = load_config(run.config)
    gate = config.eval.gate.model_copy(update={"human_win_rate": HumanGate(min=0.6, min_rows=len(rows) + 1)})
    config = config.model_copy(update={"eval": config.eval.model_copy(update={"gate": gate})})
    summary = rescore_run(config, run).to_json()
    human = summary["eval"]["human_review"]
    wins = (len(rows) + 1) // 2
    assert human["rows"] == len(rows) and human["wins"] == wins
    assert abs(human["win_rate"] - (wins + 0.5 * (len(rows) - wins)) / len(rows)) < 1e-9
    assert summary["decision"] == "no-go"  # one row short of min_rows
    assert f"{len(rows)} of {len(rows) + 1} test rows reviewed" in summary["decision_reasons"][-1]
    assert summary["training"] == before["training"] and summary["timings"] == before["timings"]
    html = run.report_html.read_text()
    assert "How to use this model" in html and "/v1/chat/completions" in html
    assert "Human review" in html and html.index('class="chart forest"') < html.index("Metrics on the test split")
    browser_page.goto(run.report_html.as_uri())
    browser_page.screenshot(path=str(SCREENSHOTS / "report-first-screen.png"))
