"""SeqTR's sequence head: teacher-forced training loss and greedy decoding of tokens."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from rem_models.seqtr.losses import label_smoothed_ce, token_weights
from rem_models.seqtr.transformer import SeqTransformer


class _Linear(nn.Module):
    """Linear (+ ReLU): named ``fc`` as SeqTR's LinearModule."""

    def __init__(self, in_dim: int, out_dim: int, relu: bool) -> None:
        super().__init__()
        self.fc = nn.Linear(in_dim, out_dim)
        self.relu = relu

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.fc(x)
        return F.relu(x) if self.relu else x


class SeqHead(nn.Module):
    """Fused map (B, C, h, w) + its pad mask (B, h, w) -> token logits or decoded tokens.

    Vocabulary: ``num_bins`` coordinate bins and END (= ``num_bins``). The start token is a zero
    embedding. ``seq_len`` coordinate tokens are written per object (4 or 2*num_ray).
    """

    def __init__(
        self,
        transformer: SeqTransformer,
        num_bins: int,
        seq_len: int,
        task: str,
        x1_weight: float = 1.5,
        end_weight: float = 0.1,
        smoothing: float = 0.1,
    ) -> None:
        super().__init__()
        d = transformer.d_model
        self.transformer = transformer
        self.predictor = nn.Sequential(
            _Linear(d, d, True), _Linear(d, d, True), _Linear(d, num_bins + 1, False)
        )
        self.num_bins = num_bins
        self.end = num_bins
        self.seq_len = seq_len
        self.task = task
        self.x1_weight = x1_weight
        self.end_weight = end_weight
        self.smoothing = smoothing

    @property
    def partial_res(self) -> bool:
        return self.transformer.partial_res

    def _start(self, memory: torch.Tensor) -> torch.Tensor:
        if self.partial_res and self.task == "mask":
            return self.transformer.task_prompt.weight[None].expand(memory.shape[0], -1, -1)
        return memory.new_zeros((memory.shape[0], 1, self.transformer.d_model))

    def _encode(self, x: torch.Tensor, pad_mask: torch.Tensor, language: torch.Tensor | None):
        memory, pos, mask = self.transformer.encode(
            x, pad_mask, language if self.partial_res else None
        )
        h, w = pad_mask.shape[1:]
        grid = memory[:, : h * w].reshape(memory.shape[0], h, w, -1) if self.partial_res else None
        return memory, pos, mask, grid

    def _embed(self, tokens: torch.Tensor, grid: torch.Tensor | None, first: int) -> torch.Tensor:
        """Token embeddings (B, L, d); Partial-RES adds co-content (see :func:`co_content`)."""
        embeds = self.transformer.query_embedding(tokens)
        if grid is not None:
            embeds = embeds + co_content(grid, tokens, self.num_bins, first)
        return embeds

    def loss(
        self,
        x: torch.Tensor,
        pad_mask: torch.Tensor,
        targets: torch.Tensor,
        language: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Teacher-forced loss for target tokens (B, seq_len + 1), the last one END.

        ``language`` (B, C) is the gated sentence feature, used by Partial-RES only.
        """
        memory, pos, mask, grid = self._encode(x, pad_mask, language)
        inputs = torch.cat([self._start(memory), self._embed(targets[:, :-1], grid, 0)], dim=1)
        hidden = self.transformer.decode(
            inputs, memory, pos, mask, pad_mask if self.partial_res else None
        )
        logits = self.predictor(hidden)
        weights = token_weights(targets, self.task, self.end, self.x1_weight, self.end_weight)
        return label_smoothed_ce(logits, targets, weights, self.smoothing)

    @torch.no_grad()
    def generate(
        self, x: torch.Tensor, pad_mask: torch.Tensor, language: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Greedy decoding -> (B, 4) box bins (END never chosen) or (B, seq_len + 1) tokens."""
        memory, pos, mask, grid = self._encode(x, pad_mask, language)
        steps = 4 if self.task == "box" else self.seq_len + 1
        inputs = self._start(memory)
        grid_mask = pad_mask if self.partial_res else None
        out = []
        for step in range(steps):
            hidden = self.transformer.decode(inputs, memory, pos, mask, grid_mask)[:, -1]
            logits = self.predictor(hidden)
            if self.task == "box":
                logits = logits[:, : self.end]
            token = logits.argmax(dim=-1, keepdim=True)
            out.append(token)
            inputs = torch.cat([inputs, self._embed(token, grid, step)], dim=1)
        return torch.cat(out, dim=1)


def co_content(grid: torch.Tensor, tokens: torch.Tensor, num_bins: int, first: int) -> torch.Tensor:
    """Partial-RES's co-content features: (B, h, w, d) memory, (B, L) tokens -> (B, L, d).

    Token k (counted from ``first``) is an x coordinate when k is even. An x token gets the mean
    memory feature of row floor(bin / num_bins * (h - 1)) and a y token that of column
    floor(bin / num_bins * (w - 1)): rows for x and columns for y is the reference's
    (transposed) choice, kept because released training and testing both use it.
    """
    _, h, w, _ = grid.shape
    rel = tokens.float() / num_bins
    rows = (rel * (h - 1)).long().clamp(0, h - 1)
    cols = (rel * (w - 1)).long().clamp(0, w - 1)
    row_mean = grid.mean(dim=2)  # (B, h, d)
    col_mean = grid.mean(dim=1)  # (B, w, d)
    by_row = torch.gather(row_mean, 1, rows[..., None].expand(-1, -1, grid.shape[3]))
    by_col = torch.gather(col_mean, 1, cols[..., None].expand(-1, -1, grid.shape[3]))
    parity = (torch.arange(tokens.shape[1], device=tokens.device) + first) % 2 == 0
    return torch.where(parity[None, :, None], by_row, by_col)
