"""Referring prediction: every sentence of every ref -> a mask, written for ``rem eval-referring``.

As LAVT's ``test.py``: the image is resized to S x S (480, PIL bilinear, aspect not kept), each
sentence is tokenised to 20 ids, and the mask is the argmax of the two logits at S x S. With
``mask_size="input"`` the S x S mask is written as is (LAVT's own evaluation resolution: use it
with ``rem eval-referring --preset legacy-lavt`` to reproduce LAVT's numbers exactly); with
``"original"`` it is resized (PIL nearest) back to the image, for any other use.

Output: a JSON list of ``{"ref_id", "sent_id", "image_id", "segmentation"}``, the mask as a
compressed COCO RLE (counts a str) with its ``size`` [h, w].
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from PIL import Image
from rich.console import Console
from torch import Tensor

from rem_core import masks as mask_ops
from rem_core.errors import RemError
from rem_core.progress import progress_bar
from rem_core.refer import read_referring
from rem_core.schemas import ReferringSample
from rem_models.lavt.data import image_path, load_image, sentence_text, square_image
from rem_models.lavt.model import LAVT
from rem_models.lavt.text import LavtTokenizer, build_tokenizer

MaskSize = Literal["original", "input"]


def _resize_nearest(mask: np.ndarray, height: int, width: int) -> np.ndarray:
    if mask.shape == (height, width):
        return mask
    image = Image.fromarray(mask.astype(np.uint8)).resize((width, height), Image.NEAREST)
    return np.asarray(image, dtype=bool)


def _autocast(device: torch.device, amp: bool) -> contextlib.AbstractContextManager:
    if amp and device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def predict_referring(
    model: LAVT,
    tokenizer: LavtTokenizer,
    samples: Sequence[ReferringSample],
    image_dir: str | Path,
    *,
    device: str | torch.device = "cpu",
    batch_size: int = 8,
    mask_size: MaskSize = "original",
    amp: bool = True,
    on_sentences: Callable[[int], None] | None = None,
) -> list[dict[str, Any]]:
    """One prediction per sentence of ``samples`` (see the module docstring), in order."""
    if mask_size not in ("original", "input"):
        raise RemError(f"mask size must be original or input, got {mask_size!r}")
    device = torch.device(device)
    model.eval().to(device)
    size = model.image_size
    results: list[dict[str, Any]] = []
    pending: list[tuple[ReferringSample, Any, Tensor]] = []

    def flush() -> None:
        if not pending:
            return
        images = torch.stack([p[2] for p in pending]).to(device)
        ids, mask = tokenizer([sentence_text(p[1]) for p in pending])
        with torch.inference_mode(), _autocast(device, amp):
            logits = model(images, ids.to(device), mask.to(device))
        masks = (logits.argmax(1) == 1).cpu().numpy()
        for (sample, sentence, _), m in zip(pending, masks, strict=True):
            if mask_size == "original":
                m = _resize_nearest(m, sample.height, sample.width)
            results.append(
                {
                    "ref_id": sample.ref_id,
                    "sent_id": sentence.sent_id,
                    "image_id": sample.image_id,
                    "segmentation": mask_ops.encode(m),
                }
            )
        if on_sentences is not None:
            on_sentences(len(pending))
        pending.clear()

    for sample in samples:
        image = square_image(load_image(image_path(sample, image_dir)), size)
        for sentence in sample.sentences:
            pending.append((sample, sentence, image))
            if len(pending) >= batch_size:
                flush()
    flush()
    return results


def load_lavt_for_inference(
    arch: str, checkpoint: str | Path, overrides: Sequence[str] = ()
) -> LAVT:
    """A LAVT model in eval mode from a rem checkpoint or straight from a LAVT ``.pth``.

    A LAVT file is converted on the fly with the config read from it (window, widths, BERT
    sizes, ``args.mha``); ``overrides`` (``model.KEY=VALUE``) then apply, e.g.
    ``model.text.tokenizer=/path/to/vocab.txt``.
    """
    from rem_models.checkpoints import guess_format
    from rem_models.engine.run_predict import load_for_inference
    from rem_models.engine.run_train import split_overrides
    from rem_models.lavt.convert import convert_lavt_state_dict, infer_config, read_lavt_file
    from rem_models.overrides import override_config
    from rem_models.registry import get_model

    path = Path(checkpoint)
    if guess_format(path) == "torch":
        lavt_file = read_lavt_file(path)
        if lavt_file.layout != "rem":
            model_over, other = split_overrides(overrides)
            if other:
                raise RemError(
                    f"predict takes model.* keys only, got {', '.join(sorted(other))}",
                    where="--set",
                )
            config = override_config(infer_config(lavt_file), model_over)
            model = get_model(arch, config)
            state = convert_lavt_state_dict(lavt_file.state_dict, config)
            try:
                model.load_state_dict(state, strict=True)
            except RuntimeError as exc:
                lines = str(exc).strip().splitlines()
                raise RemError(
                    f"weights do not fit {arch!r}: {' '.join(lines[:3])}", path=path
                ) from None
            return model.eval()
    loaded = load_for_inference(arch, path, overrides)
    if not isinstance(loaded.model, LAVT):
        raise RemError(f"model {arch!r} is not a LAVT model: referring prediction needs one")
    return loaded.model


def predict_referring_run(
    arch: str,
    checkpoint: str | Path,
    refs: str | Path,
    out: str | Path,
    *,
    image_dir: str | Path,
    split: str | None = None,
    instances: str | Path | None = None,
    overrides: Sequence[str] = (),
    device: str = "cpu",
    batch_size: int = 8,
    mask_size: MaskSize = "original",
    amp: bool = True,
    console: Console | None = None,
) -> list[dict[str, Any]]:
    """``rem predict MODEL --refs REFS``: predict every sentence of ``refs`` and write ``out``.

    ``refs`` is a refer ``refs(*).p`` (with ``instances.json`` beside it, or ``instances``) or
    a rem referring JSON file; ``split`` keeps one split (val, testA...).
    """
    from rem_core.io import save_json

    console = console or Console(stderr=True, soft_wrap=True)
    samples = read_referring(refs, split=split, instances=instances)
    if not samples:
        raise RemError(f"no referring samples{f' in split {split}' if split else ''}", path=refs)
    model = load_lavt_for_inference(arch, checkpoint, overrides)
    tokenizer = build_tokenizer(model.text_encoder.config)
    total = sum(len(s.sentences) for s in samples)
    progress = progress_bar(console, "[bold]predict")
    with progress:
        task = progress.add_task("predict", total=total)
        results = predict_referring(
            model,
            tokenizer,
            samples,
            image_dir,
            device=device,
            batch_size=batch_size,
            mask_size=mask_size,
            amp=amp,
            on_sentences=lambda n: progress.advance(task, n),
        )
    save_json(out, results)
    console.print(f"wrote {len(results)} masks for {len(samples)} refs to {out}")
    return results
