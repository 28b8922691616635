"""Which unlabelled sentences to label next: uncertainty ranking on calibrated probabilities, balanced and de-duplicated.

Pure numpy on a ``(sentences, labels)`` probability array, so the ranking is tested without a model. The three
strategies are the classic uncertainty measures (Settles, *Active Learning*, 2.3), scored so that higher means
"label this first":

- ``margin``: ``1 - (p_top - p_second)``; the sentences the model cannot decide between two labels for;
- ``entropy``: the entropy of the distribution divided by ``log(labels)``, in [0, 1]; unsure over all labels;
- ``least_confidence``: ``1 - p_top``.

Near-duplicates are judged as :mod:`claimstance.data.corpus` judges them in the corpus (word-bigram Jaccard),
but incrementally: a candidate is compared only with the sentences already picked and the excluded ones, so a
large pool costs no all-pairs pass.
"""

from __future__ import annotations

from collections import defaultdict, deque
from collections.abc import Iterable, Sequence

import numpy as np

from claimstance.data.corpus import shingles
from claimstance.errors import ConfigError

STRATEGIES = ("margin", "entropy", "least_confidence")


def check_options(n: object, strategy: str) -> None:
    """``n`` a positive integer and a known strategy: checked before a pool is predicted, not after."""
    if strategy not in STRATEGIES:
        raise ConfigError(f"strategy must be one of {', '.join(STRATEGIES)}, got {strategy!r}")
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ConfigError(f"n must be a positive number of sentences, got {n!r}")


def uncertainty(probabilities: np.ndarray, strategy: str = "margin") -> np.ndarray:
    """One score per row, higher = more worth labelling; rows are probability distributions over the labels."""
    check_options(1, strategy)
    p = np.asarray(probabilities, dtype=np.float64)
    if p.ndim != 2 or p.shape[1] < 2:
        raise ValueError(f"probabilities must be (rows, labels >= 2), got shape {p.shape}")
    if strategy == "least_confidence":
        return 1.0 - p.max(axis=1)
    if strategy == "margin":
        top_two = np.sort(p, axis=1)[:, -2:]
        return 1.0 - (top_two[:, 1] - top_two[:, 0])
    safe = np.clip(p, 1e-12, 1.0)
    return -(p * np.log(safe)).sum(axis=1) / np.log(p.shape[1])


def ranked(scores: np.ndarray) -> np.ndarray:
    """Row indices by descending score; equal scores keep input order (a stable, reproducible pick)."""
    return np.argsort(-np.asarray(scores, dtype=np.float64), kind="stable")


class NearDuplicateFilter:
    """Remembers kept texts and answers whether a new one is a near-duplicate of any of them.

    Same measure as :func:`claimstance.data.corpus.near_duplicates`: Jaccard of word ``size``-grams >= ``threshold``
    (case and whitespace ignored, so exact duplicates score 1). ``threshold=None`` turns the check off.
    """

    def __init__(self, threshold: float | None = 0.7, size: int = 2, existing: Iterable[str] = ()):
        if threshold is not None and not 0 < threshold <= 1:
            raise ConfigError(f"duplicate_threshold must be in (0, 1] or null, got {threshold!r}")
        self.threshold = threshold
        self.size = size
        self._kept: list[frozenset] = []
        self._index: dict[tuple[str, ...], list[int]] = defaultdict(list)
        for text in existing:
            self.add(text)

    def is_duplicate(self, text: str) -> bool:
        """True when ``text`` overlaps a kept text by at least the threshold."""
        if self.threshold is None:
            return False
        grams = shingles(text, self.size)
        shared: dict[int, int] = defaultdict(int)
        for gram in grams:
            for j in self._index.get(gram, ()):
                shared[j] += 1
        return any(inter / (len(grams) + len(self._kept[j]) - inter) >= self.threshold for j, inter in shared.items())

    def add(self, text: str) -> None:
        """Keep ``text``: later near-copies of it are duplicates."""
        if self.threshold is None:
            return
        grams = shingles(text, self.size)
        for gram in grams:
            self._index[gram].append(len(self._kept))
        self._kept.append(grams)


def select(
    probabilities: np.ndarray,
    texts: Sequence[str],
    n: int,
    strategy: str = "margin",
    balance: bool = False,
    duplicates: NearDuplicateFilter | None = None,
) -> tuple[list[int], np.ndarray]:
    """The ``n`` rows to label next, in the order picked, and every row's uncertainty score.

    ``balance``: round-robin over predicted labels. Each round takes the most uncertain remaining row of every
    predicted label (most uncertain of those first), so a label the model predicts rarely still gets a share
    of the picks; when a label runs out the others fill the remaining places.
    ``duplicates``: rows that are near-duplicates of an earlier pick (or of the filter's existing texts) are skipped.
    """
    check_options(n, strategy)
    if len(texts) != len(probabilities):
        raise ValueError(f"{len(texts)} texts but {len(probabilities)} probability rows")
    scores = uncertainty(probabilities, strategy) if len(texts) else np.empty(0)
    order = ranked(scores)
    duplicates = duplicates or NearDuplicateFilter(threshold=None)
    predicted = np.asarray(probabilities).argmax(axis=1) if len(texts) else np.empty(0, dtype=int)
    queues: dict[int, deque] = defaultdict(deque)
    for i in order:
        queues[int(predicted[i]) if balance else 0].append(int(i))
    picked: list[int] = []

    def next_fresh(queue: deque) -> int | None:
        while queue:
            i = queue.popleft()
            if not duplicates.is_duplicate(texts[i]):
                return i
        return None

    while len(picked) < n and any(queues.values()):
        heads = [i for i in (next_fresh(q) for q in queues.values()) if i is not None]
        for i in sorted(heads, key=lambda i: -scores[i]):
            if len(picked) < n and not duplicates.is_duplicate(texts[i]):  # two heads may copy each other
                duplicates.add(texts[i])
                picked.append(i)
    return picked, scores
