"""The BERT text encoder and LAVT's tokenisation.

LAVT encodes each sentence as ``[CLS] wordpieces [SEP]``, cuts the ids to 20 (a long sentence
loses its ``[SEP]``), pads with id 0 and masks the padding; BERT (no pooler) turns the ids into
(B, L, D) word features. ``transformers`` and ``tokenizers`` are imported only when a text
encoder or tokenizer is built, so importing the family stays cheap.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor, nn

from rem_core.errors import RemError

if TYPE_CHECKING:
    from rem_models.lavt.config import TextConfig

PAD_ID = 0


def bert_config(config: TextConfig) -> Any:
    """The ``transformers.BertConfig`` of ``config`` (pad id 0, exact-erf GELU)."""
    from transformers import BertConfig

    return BertConfig(
        vocab_size=config.vocab_size,
        hidden_size=config.hidden_size,
        num_hidden_layers=config.num_layers,
        num_attention_heads=config.num_heads,
        intermediate_size=config.intermediate_size,
        hidden_act="gelu",
        hidden_dropout_prob=config.hidden_dropout,
        attention_probs_dropout_prob=config.attention_dropout,
        max_position_embeddings=config.max_position_embeddings,
        type_vocab_size=config.type_vocab_size,
        layer_norm_eps=config.layer_norm_eps,
        pad_token_id=PAD_ID,
    )


class TextEncoder(nn.Module):
    """BERT without its pooler: token ids (B, L) and mask (B, L) -> word features (B, L, D)."""

    def __init__(self, config: TextConfig):
        super().__init__()
        from transformers import BertModel

        self.bert = BertModel(bert_config(config), add_pooling_layer=False)
        self.config = config  # names the tokenizer that goes with these weights

    def forward(self, token_ids: Tensor, attention_mask: Tensor) -> Tensor:
        return self.bert(input_ids=token_ids, attention_mask=attention_mask).last_hidden_state

    def encoder_layers(self) -> nn.ModuleList:
        """The transformer layers, for choosing which of them train."""
        return self.bert.encoder.layer


class LavtTokenizer:
    """Sentences -> (ids, mask), both (N, max_tokens) int64, with LAVT's truncation and padding.

    ``source`` is a WordPiece ``vocab.txt``, a folder holding one, or a Hugging Face
    tokenizer name (loaded by ``transformers``, from its cache or the Hub).
    """

    def __init__(self, source: str | Path, *, max_tokens: int = 20, lowercase: bool = True):
        self.max_tokens = max_tokens
        path = Path(source).expanduser()
        if path.is_dir():
            path = path / "vocab.txt"
        if path.is_file():
            from tokenizers import BertWordPieceTokenizer

            wordpiece = BertWordPieceTokenizer(str(path), lowercase=lowercase)
            self._encode = lambda text: wordpiece.encode(text).ids
            self.vocab_size = wordpiece.get_vocab_size()
        elif path.suffix == ".txt" or Path(source).is_absolute():
            raise RemError("no such vocabulary file", path=path)
        else:
            self._encode, self.vocab_size = _hub_tokenizer(str(source), lowercase)

    def encode(self, text: str) -> list[int]:
        """``[CLS] pieces [SEP]`` ids cut to ``max_tokens`` (not padded)."""
        return list(self._encode(text))[: self.max_tokens]

    def __call__(self, sentences: Sequence[str]) -> tuple[Tensor, Tensor]:
        ids = torch.full((len(sentences), self.max_tokens), PAD_ID, dtype=torch.int64)
        mask = torch.zeros((len(sentences), self.max_tokens), dtype=torch.int64)
        for i, text in enumerate(sentences):
            encoded = self.encode(text)
            ids[i, : len(encoded)] = torch.tensor(encoded, dtype=torch.int64)
            mask[i, : len(encoded)] = 1
        return ids, mask


def _hub_tokenizer(name: str, lowercase: bool) -> tuple[Any, int]:
    from transformers import BertTokenizer

    try:
        tokenizer = BertTokenizer.from_pretrained(name, do_lower_case=lowercase)
    except (OSError, ValueError) as exc:
        raise RemError(
            f"cannot load tokenizer {name!r} ({str(exc).splitlines()[0]}); set "
            "model.text.tokenizer to a local vocab.txt (bert-base-uncased's for released LAVT "
            "weights)"
        ) from None
    return (lambda text: tokenizer.encode(text, add_special_tokens=True)), len(tokenizer)


def build_tokenizer(config: TextConfig) -> LavtTokenizer:
    """The tokenizer a :class:`TextConfig` names."""
    return LavtTokenizer(config.tokenizer, max_tokens=config.max_tokens, lowercase=config.lowercase)
