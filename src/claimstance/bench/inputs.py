"""The benchmark's inputs, built from the project's own corpus: sentences, whole documents, article files, and the
predict config a tagging run uses. No model here: tested in the fast tier."""

from __future__ import annotations

import random
from collections.abc import Sequence
from itertools import cycle, islice
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from claimstance.data.annotations import annotation_files
from claimstance.data.corpus import documents_in_order
from claimstance.inference.documents import read_inputs

PARAGRAPH_SIZES = (2, 3, 1)  # sentences per paragraph of a built article, in turn


def corpus_sentences(annotations: str | Path, count: int, seed: int) -> list[str]:
    """``count`` annotated sentences in a seeded random order (the corpus repeated if it is smaller)."""
    texts = [text for path in annotation_files(annotations) for text in read_inputs(path, "jsonl")]
    random.Random(seed).shuffle(texts)
    return list(islice(cycle(texts), count))


def corpus_documents(source: str | Path) -> list[tuple[str, list[str]]]:
    """The documents of a corpus (a JSONL file or a folder of them) as ``(name, sentences in reading order)``."""
    return documents_in_order(annotation_files(source))


def article_text(sentences: Sequence[str]) -> str:
    """Sentences as running text: paragraphs of one to three sentences with a blank line between paragraphs."""
    paragraphs, start = [], 0
    for size in cycle(PARAGRAPH_SIZES):
        if start >= len(sentences):
            break
        paragraphs.append(" ".join(s.strip() for s in sentences[start : start + size]))
        start += size
    return "\n\n".join(paragraphs) + "\n"


def build_articles(documents: Sequence[tuple[str, Sequence[str]]], folder: Path, count: int) -> list[Path]:
    """``count`` article files in ``folder``, the documents cycled; a running number keeps repeated documents' names apart."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for index, (name, sentences) in enumerate(islice(cycle(documents), count)):
        path = folder / f"{index:05d}-{name}.txt"
        path.write_text(article_text(sentences), encoding="utf-8")
        paths.append(path)
    return paths


def predict_config(root: Path, **values) -> DictConfig:
    """``configs/predict.yaml`` with ``values`` over it, as ``scripts/predict.py`` would run; a key it lacks is an error."""
    cfg = OmegaConf.load(root / "configs" / "predict.yaml")
    cfg.pop("defaults")
    OmegaConf.set_struct(cfg, True)
    return OmegaConf.merge(cfg, values)


def write_lines(path: Path, texts: Sequence[str], count: int) -> None:
    """An input file of ``count`` lines, the sentences repeated, written without holding it in memory."""
    with path.open("w", encoding="utf-8") as handle:
        for text in islice(cycle(texts), count):
            handle.write(text + "\n")
