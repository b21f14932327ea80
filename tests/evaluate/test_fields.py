"""Extraction metrics against values computed by hand: field precision / recall / F1 (micro and per
field; missing, extra and wrong values), JSON and schema validity, exact frame match, the error table."""

from __future__ import annotations

import json

import pytest

from tunewright.config import GateConfig, TaskConfig
from tunewright.evaluate.fields import field_row_scores
from tunewright.evaluate.gate import decide
from tunewright.evaluate.metrics import score
from tunewright.evaluate.stats import bootstrap_indices, paired_difference
from tunewright.records import Prediction

SCHEMA = {"type": "object", "required": ["intent", "slots"],
          "properties": {"intent": {"type": "string"},
                         "slots": {"type": "object", "additionalProperties": {"type": "string"}}}}
TASK = TaskConfig(name="slots", system_prompt="Extract.", output_schema=SCHEMA)


def prediction(gold: dict[str, object], output: str | dict[str, object], candidate: str = "finetuned") -> Prediction:
    text = output if isinstance(output, str) else json.dumps(output)
    return Prediction("id", candidate, text, json.dumps(gold), None, None)


GOLD = [
    {"intent": "GetWeather", "slots": {"city": "Boston", "timeRange": "tomorrow"}},
    {"intent": "PlayMusic", "slots": {"artist": "Beyonce"}},
    {"intent": "RateBook", "slots": {"rating_value": "six", "object_name": "Dune"}},
    {"intent": "AddToPlaylist", "slots": {"playlist": "roadtrip"}},
]
OUTPUTS: list[str | dict[str, object]] = [
    # all 3 right: tp 3
    {"intent": "GetWeather", "slots": {"city": "Boston", "timeRange": "tomorrow"}},
    # intent right, artist wrong, an extra slot: tp 1, fp 2 (wrong artist + extra service), fn 1
    {"intent": "PlayMusic", "slots": {"artist": "Beyonce Knowles", "service": "Spotify"}},
    # object_name missing, rating_value a number (schema violation, still JSON): tp 1 (intent), fp 1, fn 2
    {"intent": "RateBook", "slots": {"rating_value": 6}},
    # not JSON: fn 2
    '{"intent": "AddToPlaylist", "slots": {',
]


def test_field_scores_match_hand_computed_values() -> None:
    metrics = score(TASK, [prediction(g, o) for g, o in zip(GOLD, OUTPUTS, strict=True)])
    tp, fp, fn = 5, 3, 5
    assert metrics.field_precision == pytest.approx(tp / (tp + fp))
    assert metrics.field_recall == pytest.approx(tp / (tp + fn))
    assert metrics.field_f1 == pytest.approx(2 * tp / (2 * tp + fp + fn))  # 10 / 18
    assert metrics.json_valid_rate == 0.75
    assert metrics.schema_valid_rate == 0.5
    assert metrics.exact_frame_match == 0.25
    table = {row.field: row for row in metrics.fields}
    assert (table["intent"].gold, table["intent"].correct, table["intent"].missing) == (4, 3, 1)
    assert (table["slots.artist"].wrong_value, table["slots.artist"].f1) == (1, 0.0)
    assert (table["slots.service"].extra, table["slots.service"].precision) == (1, 0.0)
    assert (table["slots.object_name"].missing, table["slots.object_name"].recall) == (1, 0.0)
    assert (table["slots.rating_value"].wrong_value, table["slots.city"].f1) == (1, 1.0)


def test_repeated_values_count_as_a_multiset_and_list_order_does_not_matter() -> None:
    schema = {"type": "object", "properties": {"names": {"type": "array", "items": {"type": "string"}}}}
    rows = [prediction({"names": ["Ann", "Bo", "Ann"]}, {"names": ["Bo", "Ann"]})]
    scores = field_row_scores(schema, rows)
    # gold {Ann x2, Bo}, answer {Ann, Bo}: tp 2, fn 1, fp 0
    assert scores["field_precision"]([0]) == 1.0
    assert scores["field_recall"]([0]) == pytest.approx(2 / 3)
    assert scores["exact_frame_match"]([0]) == 0.0


def test_field_f1_is_a_gate_metric_with_a_paired_interval() -> None:
    tuned = [prediction(g, g) for g in GOLD]
    base = [prediction(g, o, "zero_shot") for g, o in zip(GOLD, OUTPUTS, strict=True)]
    samples = bootstrap_indices(len(GOLD), 200, seed=0)
    comparison = paired_difference("field_f1", "finetuned", "zero_shot", field_row_scores(SCHEMA, tuned)["field_f1"],
                                   field_row_scores(SCHEMA, base)["field_f1"], len(GOLD), samples)
    assert comparison is not None
    assert comparison.difference == pytest.approx(1 - 10 / 18)
    assert comparison.ci95[0] <= comparison.difference <= comparison.ci95[1]
    gate = GateConfig(metric="field_f1", beat_by=0.3)
    decision = decide(gate, {"finetuned": score(TASK, tuned), "zero_shot": score(TASK, base)}, [comparison])
    assert decision.decision == "go", decision.reasons
    assert decide(GateConfig(metric="field_f1", beat_by=0.5),
                  {"finetuned": score(TASK, tuned), "zero_shot": score(TASK, base)}).decision == "no-go"


def test_the_report_tables_errors_per_field_and_names_each_side_s_wrong_fields() -> None:
    from dataclasses import asdict

    from tunewright.report.examples import _compare
    from tunewright.report.sections import fields_section

    tuned = [prediction(g, g) for g in GOLD]
    base = [prediction(g, o, "zero_shot") for g, o in zip(GOLD, OUTPUTS, strict=True)]
    candidates = {name: asdict(score(TASK, rows)) for name, rows in (("finetuned", tuned), ("zero_shot", base))}
    section = fields_section(candidates, "zero_shot")
    assert section is not None and len(section.tables) == 2
    baseline_rows = {row[0]: row for row in section.tables[1].rows}
    assert baseline_rows["slots.service"][5] == "1"  # extra
    side_by_side = _compare(tuned[1], base[1], "play Beyonce", "zero_shot", SCHEMA)
    assert side_by_side.change == "improved"
    assert "zero_shot wrong fields: slots.artist, slots.service" in side_by_side.labels
    assert "finetuned wrong fields: none" in side_by_side.labels
