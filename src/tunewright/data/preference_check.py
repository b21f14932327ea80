"""`data check` for preference files: chosen identical to rejected, the same prompt with contradicting
preferences, a chosen side systematically longer than the rejected one (a length bias the model learns),
exact and near-duplicate pairs; then the SFT content and length checks on each side (check.py adds
personal data)."""

from __future__ import annotations

from collections.abc import Iterable
from statistics import mean
from typing import TYPE_CHECKING

from tunewright.data.content import check_content
from tunewright.data.lengths import check_lengths, token_lengths
from tunewright.data.readers import Finding
from tunewright.data.similarity import near_duplicates
from tunewright.records import Example, Preference

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

# A consistent direction teaches "longer wins" even when the gap is small (DPO's length exploitation,
# Park et al. 2024): warn when the chosen side is the longer one in at least LENGTH_BIAS_SHARE of the pairs
# and longer on average by LENGTH_BIAS_RATIO (mean chosen / mean rejected characters).
LENGTH_BIAS_RATIO = 1.1
LENGTH_BIAS_SHARE = 0.75
MIN_PAIRS_FOR_BIAS = 10


def check_preferences(preferences: list[Preference], source: str, special_tokens: Iterable[str] = (),
                      tokenizer: PreTrainedTokenizerBase | None = None, system_prompt: str = "",
                      max_seq_len: int | None = None) -> list[Finding]:
    contradicting = contradictions(preferences)
    # a swapped pair is made of the same words, so it is a near-duplicate too: reported once, as a contradiction
    swapped = {finding.source for finding in contradicting}
    findings = [*identical_sides(preferences), *contradicting, *length_bias(preferences, source),
                *(f for f in duplicate_pairs(preferences) if f.source not in swapped)]
    chosen, rejected = side_examples(preferences, "chosen"), side_examples(preferences, "rejected")
    # Refusal wording is what a rejected answer often is; only the chosen side is checked for it.
    findings += check_content(chosen, special_tokens)
    findings += [f for f in check_content(rejected, special_tokens) if f.code != "refusal"]
    if tokenizer is not None and max_seq_len is not None:
        for side in (chosen, rejected):
            lengths = token_lengths(side, tokenizer, system_prompt)
            findings += check_lengths(side, lengths, tokenizer, system_prompt, max_seq_len)
    # A prompt finding (personal data, a special token) is found once per side; report it once.
    return list(dict.fromkeys(findings))


def side_examples(preferences: list[Preference], side: str) -> list[Example]:
    """Each row's prompt with its `side` answer, as an SFT example, for the checks both kinds share."""
    examples = []
    for preference in preferences:
        answer = preference.chosen if side == "chosen" else preference.rejected
        if answer is not None:
            examples.append(preference.with_answer(answer))
    return examples


def identical_sides(preferences: list[Preference]) -> list[Finding]:
    return [Finding("error", "identical-sides", "chosen and rejected are the same text: the pair teaches "
                    "nothing; fix or drop it", p.source, "rejected")
            for p in preferences if p.paired and _norm(p.chosen) == _norm(p.rejected)]


def contradictions(preferences: list[Preference]) -> list[Finding]:
    """The same prompt with A preferred over B in one row and B over A in another (or one answer marked
    both desirable and undesirable)."""
    findings = []
    verdicts: dict[tuple[str, str, str], Preference] = {}
    for p in preferences:
        if p.paired:
            keys = [((p.prompt_key, _norm(p.chosen), _norm(p.rejected)), (p.prompt_key, _norm(p.rejected),
                                                                        _norm(p.chosen)))]
        else:
            answer = _norm(p.chosen if p.chosen is not None else p.rejected)
            good = p.chosen is not None
            keys = [((p.prompt_key, answer, str(good)), (p.prompt_key, answer, str(not good)))]
        for key, opposite in keys:
            if opposite in verdicts and key[1] != key[2]:
                findings.append(Finding("error", "contradicting-preferences", "same prompt as "
                                        f"{verdicts[opposite].source} with the opposite preference; keep one",
                                        p.source))
            verdicts.setdefault(key, p)
    return findings


def length_bias(preferences: list[Preference], source: str) -> list[Finding]:
    pairs = [(len(p.chosen or ""), len(p.rejected or "")) for p in preferences if p.paired]
    if len(pairs) < MIN_PAIRS_FOR_BIAS:
        return []
    ratio = mean(c for c, _ in pairs) / max(mean(r for _, r in pairs), 1.0)
    share = sum(c > r for c, r in pairs) / len(pairs)
    if ratio < LENGTH_BIAS_RATIO or share < LENGTH_BIAS_SHARE:
        return []
    return [Finding("warning", "length-bias", f"chosen answers are {ratio:.2f}x as long as rejected ones on average "
                    f"and longer in {share:.0%} of pairs: the model may learn 'longer is better'; add pairs where "
                    "the shorter answer wins", source)]


def duplicate_pairs(preferences: list[Preference]) -> list[Finding]:
    """Exact repeats of a row and rows whose prompt and answers together are near-duplicates (MinHash)."""
    findings = []
    texts = ["\n".join([*(m.content for m in p.prompt if m.role != "system"), p.chosen or "", p.rejected or ""])
             for p in preferences]
    first_of: dict[tuple[str, str, str], Preference] = {}
    exact: set[int] = set()
    for row, p in enumerate(preferences):
        first = first_of.setdefault((p.prompt_key, p.chosen or "", p.rejected or ""), p)
        if first is not p:
            exact.add(row)
            findings.append(Finding("warning", "duplicate-pair", f"same as {first.source}", p.source))
    for row, anchor, similarity in near_duplicates(texts).pairs():
        if row not in exact:
            findings.append(Finding("warning", "near-duplicate-pair", f"prompt and answers {similarity:.0%} similar "
                                    f"to {preferences[anchor].source}", preferences[row].source))
    return findings


def _norm(text: str | None) -> str:
    return " ".join((text or "").split()).casefold()
