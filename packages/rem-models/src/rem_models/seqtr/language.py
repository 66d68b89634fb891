"""SeqTR's sentence side: tokenisation, the word vocabulary, GloVe rows and the bi-GRU encoder.

SeqTR lowercases, deletes ``.,'!?"()*#:;``, turns ``-`` and ``/`` into spaces and splits on
whitespace; the vocabulary holds PAD (0), UNK (1) and then every word of every split in order of
first appearance. The embedding table (GloVe ``en_vectors_web_lg`` rows) is stored in the
checkpoint, so spaCy is only needed to build a new vocabulary; here vectors load from a text
file in GloVe format (``word v1 ... vD`` per line).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn

from rem_core.errors import RemError

PAD, UNK = "PAD", "UNK"
_DELETE = re.compile(r"[.,'!?\"()*#:;]")
_SPACE = re.compile(r"[-/]")


def tokenize(sentence: str) -> list[str]:
    """SeqTR's word split: ``"The man's hat-stand!"`` -> ``["the", "mans", "hat", "stand"]``."""
    text = _SPACE.sub(" ", _DELETE.sub("", sentence.lower()))
    return text.split()


def build_vocabulary(sentences: Iterable[str]) -> list[str]:
    """PAD, UNK, then each word in order of first appearance."""
    words = [PAD, UNK]
    seen = set(words)
    for sentence in sentences:
        for word in tokenize(sentence):
            if word not in seen:
                seen.add(word)
                words.append(word)
    return words


def encode(sentence: str, vocab: dict[str, int], max_tokens: int) -> list[int]:
    """Token ids of ``sentence`` truncated to ``max_tokens`` and right-padded with 0 (PAD).

    Unknown words map to UNK (1). An empty sentence becomes a single UNK so the sentence
    feature (a max over non-pad tokens) is defined.
    """
    ids = [vocab.get(w, 1) for w in tokenize(sentence)][:max_tokens] or [1]
    return ids + [0] * (max_tokens - len(ids))


def load_word_vectors(path: str | Path, words: Sequence[str], dim: int = 300) -> np.ndarray:
    """(len(words), dim) float32 rows for ``words`` from a GloVe-format text file.

    PAD stays zero; words missing from the file (and UNK) get zero rows, as spaCy gives for
    out-of-vocabulary words.
    """
    path = Path(path)
    index = {w: i for i, w in enumerate(words)}
    table = np.zeros((len(words), dim), dtype=np.float32)
    try:
        with path.open(encoding="utf-8") as f:
            for line_no, line in enumerate(f, 1):
                parts = line.rstrip("\n").split(" ")
                row = index.get(parts[0])
                if row is None or row == 0:
                    continue
                if len(parts) != dim + 1:
                    raise RemError(
                        f"expected a word and {dim} numbers, got {len(parts) - 1} numbers",
                        path=path,
                        where=f"line {line_no}",
                    )
                try:
                    table[row] = np.asarray(parts[1:], dtype=np.float32)
                except ValueError:
                    raise RemError("not a number", path=path, where=f"line {line_no}") from None
    except FileNotFoundError:
        raise RemError("no such file", path=path) from None
    return table


class LanguageEncoder(nn.Module):
    """Token ids (B, T), 0 = pad -> sentence feature (B, 2*hidden): max over non-pad GRU outputs.

    ``embedding`` is frozen by default (SeqTR keeps the GloVe rows fixed).
    """

    def __init__(
        self, vocab_size: int, embed_dim: int = 300, hidden_size: int = 512, freeze: bool = True
    ) -> None:
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, embed_dim)
        self.embedding.weight.requires_grad_(not freeze)
        self.lstm = nn.GRU(embed_dim, hidden_size, batch_first=True, bidirectional=True)

    def load_vectors(self, vectors: np.ndarray | torch.Tensor) -> None:
        """Copy pretrained word vectors (V, D) into the embedding table."""
        vectors = torch.as_tensor(vectors, dtype=self.embedding.weight.dtype)
        if vectors.shape != self.embedding.weight.shape:
            raise RemError(
                f"word vectors {tuple(vectors.shape)} do not fit the embedding "
                f"{tuple(self.embedding.weight.shape)}"
            )
        with torch.no_grad():
            self.embedding.weight.copy_(vectors)

    def forward(self, token_ids: torch.Tensor) -> torch.Tensor:
        pad = token_ids == 0
        words, _ = self.lstm(self.embedding(token_ids))
        words = words.masked_fill(pad[:, :, None], float("-inf"))
        return words.max(dim=1).values
