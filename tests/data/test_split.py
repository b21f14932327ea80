"""Splits by content hash: deterministic, close to the configured fractions, stable when rows are added,
and groups never straddle splits."""

from tunewright.config import SplitConfig
from tunewright.data.split import SPLITS, Splits, build_splits
from tunewright.records import Example, Message, content_hash


def example(i: int, group: str | None = None, label: str | None = None) -> Example:
    messages = (Message("user", f"message {i}"), Message("assistant", f"reply {i}"))
    return Example(f"id-{i}", messages, label=label, group=group)


def ids(splits: Splits) -> dict[str, list[str]]:
    return {name: [e.id for e in rows] for name, rows in splits.by_name().items()}


def where(splits: Splits) -> dict[str, str]:
    return {e.id: name for name, rows in splits.by_name().items() for e in rows}


ROWS = [example(i) for i in range(1000)]
DEFAULT = SplitConfig()


def test_split_is_deterministic_and_independent_of_row_order() -> None:
    first = build_splits(ROWS, DEFAULT)
    assert ids(build_splits(ROWS, DEFAULT)) == ids(first)
    assert where(build_splits(list(reversed(ROWS)), DEFAULT)) == where(first)


def test_seed_changes_the_assignment() -> None:
    assert where(build_splits(ROWS, SplitConfig(seed=1))) != where(build_splits(ROWS, SplitConfig(seed=2)))


def test_fractions_are_roughly_respected_on_1000_rows() -> None:
    for config in (DEFAULT, SplitConfig(train=0.6, val=0.2, test=0.2)):
        splits = build_splits(ROWS, config)
        sizes = {name: len(rows) for name, rows in splits.by_name().items()}
        assert sum(sizes.values()) == len(ROWS)
        for name in SPLITS:
            expected = getattr(config, name) * len(ROWS)
            assert abs(sizes[name] - expected) < 50, (name, sizes)


def test_every_example_lands_in_exactly_one_split() -> None:
    splits = build_splits(ROWS, DEFAULT)
    placed = [e.id for rows in splits.by_name().values() for e in rows]
    assert sorted(placed) == sorted(e.id for e in ROWS)
    hashes = {name: {content_hash(e.messages) for e in rows} for name, rows in splits.by_name().items()}
    assert not hashes["train"] & hashes["val"]
    assert not hashes["train"] & hashes["test"]
    assert not hashes["val"] & hashes["test"]


def test_appending_rows_never_moves_existing_rows() -> None:
    before = where(build_splits(ROWS[:600], DEFAULT))
    after = where(build_splits(ROWS, DEFAULT))
    assert {row_id: after[row_id] for row_id in before} == before


def test_assignment_follows_content_not_id() -> None:
    renamed = [Example(f"other-{e.id}", e.messages) for e in ROWS[:200]]
    original = where(build_splits(ROWS[:200], DEFAULT))
    moved = where(build_splits(renamed, DEFAULT))
    assert {k.removeprefix("other-"): v for k, v in moved.items()} == original


def test_rows_sharing_a_group_land_in_the_same_split() -> None:
    grouped = [example(i, group=f"customer-{i % 40}") for i in range(400)]
    splits = build_splits(grouped, DEFAULT)
    split_of_group: dict[str, set[str]] = {}
    for name, rows in splits.by_name().items():
        for e in rows:
            assert e.group is not None
            split_of_group.setdefault(e.group, set()).add(name)
    assert all(len(names) == 1 for names in split_of_group.values())
    assert len({name for names in split_of_group.values() for name in names}) > 1  # groups still spread out


def test_manifest_records_counts_labels_and_hashes() -> None:
    rows = [example(i, label="A" if i % 3 else "B") for i in range(100)]
    splits = build_splits(rows, DEFAULT)
    manifest = splits.manifest(DEFAULT.seed, DEFAULT)
    assert manifest["seed"] == 42
    assert manifest["fractions"] == {"train": 0.8, "val": 0.1, "test": 0.1}
    for name, rows_in_split in splits.by_name().items():
        entry = manifest["splits"][name]
        assert entry["rows"] == len(rows_in_split)
        assert entry["ids"] == [e.id for e in rows_in_split]
        assert entry["content_hashes"] == [content_hash(e.messages) for e in rows_in_split]
        assert sum(entry["labels"].values()) == len(rows_in_split)
