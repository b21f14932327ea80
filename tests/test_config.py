"""The config: strict YAML loading, `--set` overrides, paths relative to the file, task card rules."""

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from tunewright.config import Config, apply_override, dump_config, load_config
from tunewright.errors import ConfigError

REPO = Path(__file__).resolve().parents[1]
LABELS = ["Fraud Report", "General Inquiry"]


def minimal_config() -> dict[str, Any]:
    return {
        "task": {
            "name": "triage",
            "system_prompt": "Label the message.",
            "labels": LABELS,
            "label_regex": r"^\[Intent: (?P<label>[^\]]+)\]",
        },
        "data": {"path": "data.jsonl"},
    }


def write_config(directory: Path, raw: dict[str, Any]) -> Path:
    path = directory / "tunewright.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False), encoding="utf-8")
    return path


def test_minimal_config_loads_with_defaults(tmp_path: Path) -> None:
    config = load_config(write_config(tmp_path, minimal_config()))
    assert config.task.labels == LABELS
    assert config.method.name == "lora"
    assert (config.data.split.train, config.data.split.val, config.data.split.test) == (0.8, 0.1, 0.1)


def test_data_path_is_resolved_relative_to_the_config_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    project = tmp_path / "project"
    project.mkdir()
    raw = minimal_config()
    raw["data"]["path"] = "sub/rows.jsonl"
    path = write_config(project, raw)
    monkeypatch.chdir(tmp_path)  # the working directory must not matter
    config = load_config(Path("project") / "tunewright.yaml")
    assert config.data.path == (project / "sub" / "rows.jsonl").resolve()
    assert config.data.path.is_absolute()
    assert load_config(path).data.path == config.data.path


@pytest.mark.parametrize(
    ("section", "key", "expected_path"),
    [
        ("training", "epoch", "training.epoch"),  # typo of `epochs`
        ("task", "lables", "task.lables"),
        (None, "extra_section", "extra_section"),
    ],
)
def test_unknown_keys_are_rejected_naming_the_field_path(
    tmp_path: Path, section: str | None, key: str, expected_path: str
) -> None:
    raw = minimal_config()
    if section is None:
        raw[key] = {}
    else:
        raw.setdefault(section, {})[key] = 1
    path = write_config(tmp_path, raw)
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    message = str(caught.value)
    assert f": {expected_path}:" in message
    assert str(path) in message
    assert "\n" not in message


def test_unknown_nested_key_is_rejected(tmp_path: Path) -> None:
    raw = minimal_config()
    raw["eval"] = {"gate": {"metrc": "macro_f1"}}
    with pytest.raises(ConfigError, match=r"eval\.gate\.metrc"):
        load_config(write_config(tmp_path, raw))


def test_missing_file_and_bad_yaml_are_config_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "absent.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("task: [unclosed\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(bad)
    scalar = tmp_path / "scalar.yaml"
    scalar.write_text("just a string\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="mapping"):
        load_config(scalar)


def test_overrides_parse_numbers_and_nested_keys(tmp_path: Path) -> None:
    config = load_config(
        write_config(tmp_path, minimal_config()),
        ["training.epochs=1", "training.learning_rate=1e-3", "eval.gate.beat_by=0.1",
         "method.target_modules=[q_proj, v_proj]", "training.max_steps=7"],
    )
    assert config.training.epochs == 1.0
    assert config.training.learning_rate == pytest.approx(1e-3)
    assert config.training.max_steps == 7
    assert config.eval.gate.beat_by == pytest.approx(0.1)
    assert config.method.target_modules == ["q_proj", "v_proj"]


def test_override_of_data_path_is_relative_to_the_config_file(tmp_path: Path) -> None:
    config = load_config(write_config(tmp_path, minimal_config()), ["data.path=other.jsonl"])
    assert config.data.path == (tmp_path / "other.jsonl").resolve()


def test_apply_override_values_are_yaml_typed() -> None:
    raw: dict[str, Any] = {"training": {"epochs": 2}}
    apply_override(raw, "training.epochs=3")
    apply_override(raw, "training.precision=bf16")
    apply_override(raw, "eval.gate.beat_by=0.25")  # creates missing sections
    apply_override(raw, "training.max_steps=null")
    assert raw == {
        "training": {"epochs": 3, "precision": "bf16", "max_steps": None},
        "eval": {"gate": {"beat_by": 0.25}},
    }


@pytest.mark.parametrize("override", ["training.epochs", "=3", "", "task.name.inner=1"])
def test_bad_override_syntax_is_a_config_error(override: str) -> None:
    raw: dict[str, Any] = {"task": {"name": "triage"}}
    with pytest.raises(ConfigError, match="--set"):
        apply_override(raw, override)


def test_override_to_unknown_key_is_rejected_by_validation(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"training\.epoch:"):
        load_config(write_config(tmp_path, minimal_config()), ["training.epoch=1"])


def test_override_with_wrong_type_names_the_field(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"training\.batch_size:"):
        load_config(write_config(tmp_path, minimal_config()), ["training.batch_size=many"])


@pytest.mark.parametrize(
    ("split", "ok"),
    [
        ({"train": 0.8, "val": 0.1, "test": 0.1}, True),
        ({"train": 0.7, "val": 0.2, "test": 0.1}, True),
        ({"train": 0.8, "val": 0.1, "test": 0.2}, False),
        ({"train": 0.5, "val": 0.1, "test": 0.1}, False),
    ],
)
def test_split_fractions_must_sum_to_one(tmp_path: Path, split: dict[str, float], ok: bool) -> None:
    raw = minimal_config()
    raw["data"]["split"] = split
    path = write_config(tmp_path, raw)
    if ok:
        assert load_config(path).data.split.train == split["train"]
    else:
        with pytest.raises(ConfigError, match=r"data\.split.*sum to 1"):
            load_config(path)


@pytest.mark.parametrize("regex", [r"^\[Intent: ([^\]]+)\]", r"^\[Intent: (?P<intent>[^\]]+)\]"])
def test_label_regex_needs_a_label_group(tmp_path: Path, regex: str) -> None:
    raw = minimal_config()
    raw["task"]["label_regex"] = regex
    with pytest.raises(ConfigError, match=r"task\.label_regex:.*\(\?P<label>"):
        load_config(write_config(tmp_path, raw))


def test_invalid_label_regex_is_a_config_error(tmp_path: Path) -> None:
    raw = minimal_config()
    raw["task"]["label_regex"] = r"^\[Intent: (?P<label>[^\]]+"
    with pytest.raises(ConfigError, match=r"task\.label_regex:.*invalid regex"):
        load_config(write_config(tmp_path, raw))


def test_labels_without_a_regex_are_rejected(tmp_path: Path) -> None:
    raw = minimal_config()
    del raw["task"]["label_regex"]
    with pytest.raises(ConfigError, match="label_regex is needed"):
        load_config(write_config(tmp_path, raw))


@pytest.mark.parametrize(
    "criterion",
    [
        {"name": "nothing"},
        {"name": "two", "max_chars": 100, "max_questions": 1},
        {"name": "three", "required_pattern": "x", "forbidden_pattern": "y", "min_questions": 1},
    ],
)
def test_rubric_criterion_must_set_exactly_one_check(tmp_path: Path, criterion: dict[str, Any]) -> None:
    raw = minimal_config()
    raw["task"]["rubric"] = [{"name": "fine", "max_chars": 10}, criterion]
    with pytest.raises(ConfigError, match=rf"task\.rubric\.1:.*'{criterion['name']}'.*exactly one"):
        load_config(write_config(tmp_path, raw))


@pytest.mark.parametrize(
    "criterion",
    [
        {"name": "a", "required_pattern": "^ok"},
        {"name": "b", "forbidden_pattern": "(?i)password"},
        {"name": "c", "max_chars": 450},
        {"name": "d", "max_questions": 0},
        {"name": "e", "min_questions": 1},
    ],
)
def test_rubric_criterion_with_one_check_is_accepted(tmp_path: Path, criterion: dict[str, Any]) -> None:
    raw = minimal_config()
    raw["task"]["rubric"] = [criterion]
    assert load_config(write_config(tmp_path, raw)).task.rubric[0].name == criterion["name"]


def test_rubric_pattern_must_compile(tmp_path: Path) -> None:
    raw = minimal_config()
    raw["task"]["rubric"] = [{"name": "broken", "forbidden_pattern": "(unclosed"}]
    with pytest.raises(ConfigError, match="invalid regex"):
        load_config(write_config(tmp_path, raw))


def test_config_is_frozen(tmp_path: Path) -> None:
    config = load_config(write_config(tmp_path, minimal_config()))
    with pytest.raises(ValueError, match="frozen"):
        config.training.epochs = 5  # type: ignore[misc]


def test_shipped_example_config_loads() -> None:
    path = REPO / "examples" / "fintech-support" / "tunewright.yaml"
    config = load_config(path)
    assert isinstance(config, Config)
    assert config.task.labels == ["Account Access", "Fraud Report", "Transaction Dispute", "General Inquiry"]
    assert config.data.path == (path.parent / "data.jsonl").resolve()
    assert config.data.path.is_file()
    assert {c.name for c in config.task.rubric} >= {"one_question", "concise"}


SLOT_SCHEMA = {"type": "object", "required": ["intent"],
               "properties": {"intent": {"type": "string"}, "slots": {"type": "object"}}}


def test_output_schema_is_read_inline_or_from_a_file_relative_to_the_config(tmp_path: Path) -> None:
    raw = minimal_config()
    raw["task"]["output_schema"] = SLOT_SCHEMA
    assert load_config(write_config(tmp_path, raw)).task.output_schema == SLOT_SCHEMA
    (tmp_path / "schemas").mkdir()
    (tmp_path / "schemas" / "slots.json").write_text(json.dumps(SLOT_SCHEMA), encoding="utf-8")
    raw["task"]["output_schema"] = "schemas/slots.json"
    config = load_config(write_config(tmp_path, raw))
    assert config.task.output_schema == SLOT_SCHEMA
    # The resolved config carries the schema itself, so a run directory is self-contained.
    assert yaml.safe_load(dump_config(config))["task"]["output_schema"] == SLOT_SCHEMA


@pytest.mark.parametrize(("schema", "message"), [
    ({"type": "object", "properties": {"intent": {"type": "strin"}}}, r"not a valid JSON Schema: \$\.properties"),
    ({"type": "array"}, "must describe a JSON object"),
    ("missing.json", "missing.json not found"),
    (["type", "object"], "JSON Schema mapping"),
])
def test_a_bad_output_schema_is_one_config_error(tmp_path: Path, schema: Any, message: str) -> None:
    raw = minimal_config()
    raw["task"]["output_schema"] = schema
    with pytest.raises(ConfigError, match=rf"task\.output_schema: .*{message}"):
        load_config(write_config(tmp_path, raw))
