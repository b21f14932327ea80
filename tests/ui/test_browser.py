"""The dashboard in a real browser (Debian's chromium under Playwright): runs page, run page, blind
review by keyboard that survives a reload, the verdicts file and the win rate, and the live curve."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from tunewright.review import SCORE, read_verdicts
from tunewright.ui import UISettings, create_app
from tunewright.ui.runs import example_rows

from .conftest import RUN, SCREENSHOTS


def test_runs_page_lists_the_run_and_the_run_page_shows_its_evidence(ui_url: str, browser_page: Any,
                                                                     runs_dir: Path) -> None:
    summary = json.loads((runs_dir / RUN / "summary.json").read_text())
    browser_page.goto(ui_url + "/")
    row = browser_page.locator("table.runs tr", has_text=RUN)
    assert "finished" in row.inner_text() and summary["decision"].upper() in row.inner_text()
    browser_page.screenshot(path=str(SCREENSHOTS / "runs.png"), full_page=True)
    row.locator("a").click()
    browser_page.wait_for_selector(".decision")
    assert summary["decision"].upper() in browser_page.inner_text(".decision")
    for reason in summary["decision_reasons"]:
        assert reason in browser_page.inner_text(".decision")
    assert browser_page.locator("svg.forest circle").count() == len(summary["eval"]["comparisons"])
    assert browser_page.locator("svg.heatmap rect").count() > 0
    steps = sum(1 for line in (runs_dir / RUN / "metrics.jsonl").read_text().splitlines() if line.strip())
    browser_page.wait_for_function(f"document.getElementById('loss').dataset.points == '{steps}'")
    assert browser_page.locator("#loss polyline").count() >= 1
    browser_page.screenshot(path=str(SCREENSHOTS / "run.png"), full_page=True)
    browser_page.screenshot(path=str(SCREENSHOTS / "run-first-screen.png"))
    with browser_page.expect_navigation():
        browser_page.check("input[name=show][value=regressed]")
    regressed = browser_page.locator("tr.caption .badge.regressed").count()
    assert browser_page.locator("table.examples tr.caption").count() == regressed


def test_blind_review_by_keyboard_is_kept_across_reloads_and_counted(ui_url: str, browser_page: Any,
                                                                     tmp_path: Path) -> None:
    browser_page.goto(ui_url + f"/runs/{RUN}/review")
    browser_page.fill("#reviewer", "ann")
    browser_page.press("#reviewer", "Enter")
    browser_page.wait_for_selector("#verdict")
    page_text = browser_page.inner_text("main")
    assert "finetuned" not in page_text and "zero_shot" not in page_text and "few_shot" not in page_text
    browser_page.screenshot(path=str(SCREENSHOTS / "review.png"), full_page=True)
    keys = ["1", "ArrowRight", "3", "4", "2"]
    shown = []
    for key in keys:
        shown.append((browser_page.inner_text("#answer-a"), browser_page.inner_text("#answer-b")))
        with browser_page.expect_navigation():
            browser_page.keyboard.press(key)
    browser_page.reload()
    total = len(example_rows(_paths(tmp_path), read_verdicts(tmp_path / "runs" / RUN)[0].baseline))
    assert f"5 of {total} graded" in browser_page.inner_text("#progress-text")

    records = read_verdicts(tmp_path / "runs" / RUN)
    assert [r.reviewer for r in records] == ["ann"] * 5 and len({r.row for r in records}) == 5
    choice = {"1": "left", "ArrowRight": "right", "3": "both_good", "4": "both_bad", "2": "right"}
    for key, record, (left, right) in zip(keys, records, shown, strict=True):
        rows = {r.example_id: r for r in example_rows(_paths(tmp_path), record.baseline)}
        tuned_text = rows[record.row].tuned.output.strip()
        side = choice[key]
        if side in ("left", "right"):
            picked = left if side == "left" else right
            assert record.verdict == ("finetuned" if picked.strip() == tuned_text and
                                      record.finetuned_side == side else "baseline")
        else:
            assert record.verdict == side
    expected = sum(SCORE[r.verdict] for r in records) / 5
    browser_page.goto(ui_url + f"/runs/{RUN}")
    assert f"{expected * 100:.1f}%" in browser_page.inner_text("#human")


def _paths(tmp_path: Path) -> Any:
    from tunewright.runs import RunPaths

    return RunPaths(tmp_path / "runs" / RUN)


def test_the_live_curve_receives_a_new_point_when_metrics_jsonl_grows(runs_dir: Path, serve_app: Any,
                                                                       browser_page: Any, tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    live = runs / "live-run"
    live.mkdir(parents=True)
    shutil.copy(runs_dir / RUN / "config.yaml", live / "config.yaml")
    lines = (runs_dir / RUN / "metrics.jsonl").read_text().splitlines(keepends=True)
    (live / "metrics.jsonl").write_text("".join(lines[:2]))
    with serve_app(create_app(UISettings(runs_dir=runs))) as url:
        browser_page.goto(url + "/")
        assert "running" in browser_page.locator("table.runs tr", has_text="live-run").inner_text()
        browser_page.goto(url + "/runs/live-run")
        browser_page.wait_for_function("document.getElementById('loss').dataset.points == '2'")
        with (live / "metrics.jsonl").open("a") as handle:
            handle.write(lines[2])
        browser_page.wait_for_function("document.getElementById('loss').dataset.points == '3'", timeout=10_000)
        step = json.loads(lines[2])["step"]
        assert f"step {step}" in browser_page.inner_text("#loss-status")
        browser_page.screenshot(path=str(SCREENSHOTS / "live.png"))


def test_off_loopback_the_key_is_required(runs_dir: Path, serve_app: Any) -> None:
    import urllib.error
    import urllib.request

    with serve_app(create_app(UISettings(runs_dir=runs_dir, key="s3cret"))) as url:
        try:
            urllib.request.urlopen(url + "/")
            raise AssertionError("no key, yet the page answered")
        except urllib.error.HTTPError as exc:
            assert exc.code == 401
        request = urllib.request.Request(url + "/", headers={"Authorization": "Bearer s3cret"})
        assert RUN in urllib.request.urlopen(request).read().decode()
