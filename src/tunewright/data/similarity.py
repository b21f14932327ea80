"""Near-duplicate clusters of texts: datasketch MinHash signatures over words and word bigrams, computed for all
rows at once with numpy, indexed in a datasketch MinHashLSH, candidates verified by estimated Jaccard."""

from __future__ import annotations

import re
import unicodedata
import zlib
from dataclasses import dataclass

import numpy as np
from datasketch import MinHash, MinHashLSH

NUM_PERM = 64
THRESHOLD = 0.6  # estimated Jaccard of word + bigram sets at which two inputs count as near-duplicates
# A word or bigram found in at least this share of rows (and in at least BOILERPLATE_MIN_ROWS) is boilerplate, such
# as an instruction every alpaca row repeats; it would make every pair of rows look alike, so it is ignored.
BOILERPLATE_SHARE = 0.05
BOILERPLATE_MIN_ROWS = 20
_SEED = 1
_WORD = re.compile(r"\w+")


@dataclass(frozen=True)
class NearDuplicates:
    """`cluster[i]` is the index of the first row (in input order) of row i's cluster; `similarity[i]`
    is row i's estimated Jaccard with that row (1.0 for the first row itself); `normalised[i]` is row i's
    words (NFKC, case-folded, punctuation dropped) joined by spaces: the key exact-input checks compare,
    computed on the way so they need no second pass."""

    cluster: list[int]
    similarity: list[float]
    normalised: list[str]

    def pairs(self) -> list[tuple[int, int, float]]:
        """(row, first row of its cluster, similarity) for every row that is not first in its cluster."""
        return [(row, first, self.similarity[row]) for row, first in enumerate(self.cluster) if first != row]


def near_duplicates(texts: list[str], threshold: float = THRESHOLD) -> NearDuplicates:
    """Cluster `texts` so that rows whose word + bigram sets are at least `threshold` alike share a cluster
    (transitively: a row's similarity to its cluster's first row can be lower).

    Banding follows datasketch's MinHashLSH: its `(b, r)` optimum, weighted 0.9 against false negatives
    (a missed near-duplicate is what a check must not do). The buckets themselves are found with numpy in
    one pass per band: inserting 100k sketches one at a time into MinHashLSH took ~10 s more here (measured
    on a loaded machine).
    """
    if not texts:
        return NearDuplicates([], [], [])
    signatures, normalised = _signatures_and_words(texts)
    lsh = MinHashLSH(threshold=threshold, num_perm=NUM_PERM, weights=(0.1, 0.9))
    bands, rows_per_band = lsh.b, lsh.r
    candidates = []
    for band in range(bands):
        # The band's values mixed into one uint64 bucket key: integers sort much faster than byte strings,
        # and a rare key collision only adds a candidate that the Jaccard check rejects.
        keys = np.zeros(len(texts), dtype=np.uint64)
        for column in range(band * rows_per_band, (band + 1) * rows_per_band):
            keys = keys * np.uint64(0x100000001B3) + signatures[:, column]
        _, first, inverse = np.unique(keys, return_index=True, return_inverse=True)
        anchor = first[inverse.ravel()]
        shared = np.flatnonzero(anchor != np.arange(len(texts)))
        candidates.append(np.stack([anchor[shared], shared], axis=1))
    pairs = np.unique(np.concatenate(candidates), axis=0)
    alike = (signatures[pairs[:, 0]] == signatures[pairs[:, 1]]).mean(axis=1) >= threshold
    parent = list(range(len(texts)))
    for left, right in pairs[alike].tolist():
        union_rows(parent, left, right)
    cluster = [find_root(parent, row) for row in range(len(texts))]
    similarity = [1.0 if first == row else _jaccard(signatures, first, row) for row, first in enumerate(cluster)]
    return NearDuplicates(cluster, similarity, normalised)


def minhash_signatures(texts: list[str]) -> np.ndarray:
    """(rows, NUM_PERM) uint32 MinHash values with datasketch's affine32 permutations, all rows at once
    in numpy rather than one `MinHash.update` call per shingle."""
    return _signatures_and_words(texts)[0]


def _signatures_and_words(texts: list[str]) -> tuple[np.ndarray, list[str]]:
    shingles, row_of, normalised = _shingles(texts)
    permutations = MinHash(num_perm=NUM_PERM, seed=_SEED).permutations
    a, b = permutations[0].astype(np.uint32), permutations[1].astype(np.uint32)
    signatures = np.empty((len(texts), NUM_PERM), dtype=np.uint32)
    # Every row has at least one shingle, so the row starts are the rows, in order. One permutation at a
    # time keeps each pass over contiguous 1-D arrays (a 2-D reduceat over all of them led the profile).
    starts = np.flatnonzero(np.r_[True, row_of[1:] != row_of[:-1]])
    for column in range(NUM_PERM):
        signatures[:, column] = np.minimum.reduceat(shingles * a[column] + b[column], starts)
    return signatures, normalised


def _shingles(texts: list[str]) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Unique word and word-bigram hashes of each text (boilerplate ones dropped), and each one's row."""
    words: list[str] = []
    normalised: list[str] = []
    lengths = np.zeros(len(texts), dtype=np.int64)
    for row, text in enumerate(texts):
        row_words = _WORD.findall(text.lower() if text.isascii() else unicodedata.normalize("NFKC", text).casefold())
        lengths[row] = len(row_words)
        words.extend(row_words)
        normalised.append(" ".join(row_words))
    word_hash = {word: zlib.crc32(word.encode()) for word in dict.fromkeys(words)}
    flat = list(map(word_hash.__getitem__, words))
    hashes = np.array(flat, dtype=np.uint64)
    row_of_word = np.repeat(np.arange(len(texts)), lengths)
    same_row = row_of_word[1:] == row_of_word[:-1]
    bigrams = ((hashes[:-1] * np.uint64(0x9E3779B1) + hashes[1:] * np.uint64(0x85EBCA6B))
               & np.uint64(0xFFFFFFFF))[same_row]
    # Words and bigrams together: one changed word in a 12-word message still leaves ~0.8 of the set.
    empty = np.flatnonzero(lengths == 0)  # a text without words gets one shared shingle, so it has a signature
    shingles = np.concatenate([hashes, bigrams, np.zeros(len(empty), dtype=np.uint64)])
    rows = np.concatenate([row_of_word, row_of_word[:-1][same_row], empty])
    keys = np.sort((rows.astype(np.uint64) << np.uint64(32)) | shingles)
    keys = keys[np.r_[True, keys[1:] != keys[:-1]]]  # sort-based: numpy's hash-based unique led the profile
    rows, shingles = (keys >> np.uint64(32)).astype(np.int64), (keys & np.uint64(0xFFFFFFFF)).astype(np.uint32)
    return (*_drop_boilerplate(shingles, rows, len(texts)), normalised)


def _drop_boilerplate(shingles: np.ndarray, rows: np.ndarray, n_rows: int) -> tuple[np.ndarray, np.ndarray]:
    order = np.argsort(shingles)
    ordered = shingles[order]
    starts = np.flatnonzero(np.r_[True, ordered[1:] != ordered[:-1]])
    sizes = np.diff(np.r_[starts, len(ordered)])
    common = np.empty(len(shingles), dtype=bool)
    common[order] = np.repeat(sizes, sizes) >= max(BOILERPLATE_MIN_ROWS, BOILERPLATE_SHARE * n_rows)
    if not common.any():
        return shingles, rows
    # Rows made only of boilerplate keep all their shingles, so they still match each other.
    kept_rows = np.zeros(n_rows, dtype=bool)
    kept_rows[rows[~common]] = True
    keep = ~common | ~kept_rows[rows]
    return shingles[keep], rows[keep]


def _jaccard(signatures: np.ndarray, left: int, right: int) -> float:
    return float(np.count_nonzero(signatures[left] == signatures[right])) / NUM_PERM


def find_root(parent: list[int], row: int) -> int:
    """Union-find: the root of `row`'s set (paths halved on the way)."""
    while parent[row] != row:
        parent[row] = parent[parent[row]]
        row = parent[row]
    return row


def union_rows(parent: list[int], left: int, right: int) -> None:
    # The smaller index becomes the root, so each cluster is named by its first row in input order.
    root_left, root_right = find_root(parent, left), find_root(parent, right)
    if root_left != root_right:
        parent[max(root_left, root_right)] = min(root_left, root_right)
