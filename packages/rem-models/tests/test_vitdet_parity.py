"""ViTDet against detectron2 itself: the tiny oracle recorded by running detectron2 on CPU.

The oracle (../shared/data/vitdet/tiny_oracle.pt, see its README) holds a detectron2
state dict, two input images, every intermediate of an inference pass, the train-mode losses
with the sampled anchors/ROIs, and gradients. Each stage is compared on the recorded inputs
of that stage, so an error shows where it starts, and end to end. Tolerances follow the
README (features/logits 1e-4, boxes 1e-3 px, <= 0.1 % differing mask pixels); end-to-end
values are looser only where the 1e-5 ViT difference is amplified by box decoding.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from rem_models import get_model, get_model_config
from rem_models.vitdet.convert import convert_detectron2_state_dict, detectron2_key_map
from rem_models.vitdet.postprocess import Detections, detector_postprocess, paste_masks_in_image
from rem_models.vitdet.roi_heads import SampledProposals
from rem_models.vitdet.rpn import find_top_proposals, flatten_predictions, rpn_losses

ORACLE = (
    Path(__file__).resolve().parents[3].parent / "shared" / "data" / "vitdet" / "tiny_oracle.pt"
)

if not ORACLE.is_file():
    pytest.skip(f"../shared test data not found: {ORACLE}", allow_module_level=True)


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    # The test machine is shared; one thread is several times faster than two contended ones.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def oracle() -> dict:
    return torch.load(ORACLE, weights_only=True)


@pytest.fixture(scope="module")
def model(oracle):
    config = get_model_config("vitdet_test")
    net = get_model("vitdet_test")
    net.load_state_dict(convert_detectron2_state_dict(oracle["state_dict"], config), strict=True)
    return net.eval()


@pytest.fixture(scope="module")
def images(oracle) -> list[torch.Tensor]:
    return [x["image"].float() for x in oracle["inputs"]]


@pytest.fixture(scope="module")
def recorded(oracle) -> dict:
    return oracle["intermediates"]


def levels(features: dict, names: list[str]) -> list[torch.Tensor]:
    return [features[n] for n in names]


def max_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    assert a.shape == b.shape, (a.shape, b.shape)
    return (a.double() - b.double()).abs().max().item() if a.numel() else 0.0


def test_config_matches_the_oracle(oracle, model):
    cfg = oracle["config"]
    assert sum(p.numel() for p in model.parameters()) == oracle["num_params"] == 524_382
    assert model.pixel_mean.flatten().tolist() == pytest.approx(cfg["pixel_mean"])
    assert model.pixel_std.flatten().tolist() == pytest.approx(cfg["pixel_std"])
    blocks = model.backbone.vit.blocks
    for name, shape in cfg["backbone"]["vit"]["rel_pos_shapes"].items():
        assert list(blocks[int(name.split(".")[1])].attn.rel_pos_h.shape) == shape


@torch.no_grad()
def test_preprocessing_normalises_then_zero_pads(model, images, recorded):
    batch, sizes = model.preprocess(images)
    assert sizes == [tuple(s) for s in recorded["image_sizes"]]
    assert max_diff(batch, recorded["normalized_padded_images"]) <= 1e-6


@torch.no_grad()
def test_backbone_features(model, recorded):
    batch = recorded["normalized_padded_images"]
    assert max_diff(model.backbone.vit(batch), recorded["vit_last_feat"]) <= 1e-4
    features = model.backbone(batch)
    assert list(features) == ["p2", "p3", "p4", "p5", "p6"]
    for name, expected in recorded["features"].items():
        assert max_diff(features[name], expected) <= 1e-4, name


@torch.no_grad()
def test_rpn_head_and_anchors(model, recorded):
    features = levels(recorded["features"], model.rpn_features)
    logits, deltas = model.rpn.head(features)
    for i in range(5):
        assert max_diff(logits[i], recorded["rpn_objectness_logits_per_level"][i]) <= 1e-4
        assert max_diff(deltas[i], recorded["rpn_anchor_deltas_per_level"][i]) <= 1e-4
    anchors = model.rpn.anchor_generator(features)
    for mine, theirs in zip(anchors, recorded["anchors_per_level"]):
        assert torch.equal(mine, theirs)  # pure arithmetic on the config: bit for bit


def recorded_rpn_boxes(model, recorded) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """Proposal candidates decoded from detectron2's own RPN outputs."""
    logits, deltas = flatten_predictions(
        recorded["rpn_objectness_logits_per_level"], recorded["rpn_anchor_deltas_per_level"]
    )
    boxes = [
        model.rpn.box_coder.decode(d.reshape(-1, 4), a.repeat(2, 1)).view(2, -1, 4)
        for a, d in zip(recorded["anchors_per_level"], deltas)
    ]
    return boxes, logits


@pytest.mark.parametrize("training", [False, True])
def test_proposals_from_recorded_rpn_outputs(model, oracle, recorded, training):
    boxes, logits = recorded_rpn_boxes(model, recorded)
    rpn = model.rpn
    stage = 0 if training else 1
    proposals = find_top_proposals(
        boxes,
        logits,
        [tuple(s) for s in recorded["image_sizes"]],
        nms_thresh=rpn.nms_thresh,
        pre_nms_topk=rpn.pre_nms_topk[stage],
        post_nms_topk=rpn.post_nms_topk[stage],
        training=training,
    )
    expected = (
        oracle["train"]["recorded"]["train_rpn_proposals"] if training else recorded["proposals"]
    )
    for mine, theirs in zip(proposals, expected):
        assert len(mine) == len(theirs["proposal_boxes"])
        assert max_diff(mine.boxes, theirs["proposal_boxes"]) <= 1e-4
        assert torch.equal(mine.logits, theirs["objectness_logits"])


@torch.no_grad()
def test_end_to_end_proposals(model, images, recorded):
    batch, sizes = model.preprocess(images)
    features = model.backbone(batch)
    proposals, losses = model.rpn(levels(features, model.rpn_features), sizes)
    assert losses == {}
    assert [len(p) for p in proposals] == [947, 710]
    for mine, theirs in zip(proposals, recorded["proposals"]):
        # The backbone's 1e-5 differences become ~1e-3 px on 512 px anchors.
        assert max_diff(mine.boxes, theirs["proposal_boxes"]) <= 5e-3
        assert max_diff(mine.logits, theirs["objectness_logits"]) <= 1e-4


@torch.no_grad()
def test_box_head_on_recorded_proposals(model, recorded):
    features = levels(recorded["features"], model.roi_features)
    boxes = [p["proposal_boxes"] for p in recorded["proposals"]]
    head = model.roi_heads.box_features(features, boxes)
    cls_logits, deltas = model.roi_heads.box_predictor(head)
    counts = [len(b) for b in boxes]
    for i, (h, c, d) in enumerate(
        zip(head.split(counts), cls_logits.split(counts), deltas.split(counts))
    ):
        assert max_diff(h, recorded["box_head_features"][i]) <= 1e-4
        assert max_diff(c, recorded["box_cls_logits"][i]) <= 1e-4
        assert max_diff(d, recorded["box_deltas"][i]) <= 1e-4


@torch.no_grad()
def test_fast_rcnn_inference_on_recorded_logits(model, recorded):
    from rem_models.vitdet.postprocess import fast_rcnn_inference

    heads = model.roi_heads
    for i, size in enumerate(recorded["image_sizes"]):
        boxes = heads.box_coder.decode(
            recorded["box_deltas"][i], recorded["proposals"][i]["proposal_boxes"]
        )
        probs = torch.softmax(recorded["box_cls_logits"][i], dim=-1)
        det = fast_rcnn_inference(
            boxes,
            probs,
            tuple(size),
            score_thresh=heads.score_thresh,
            nms_thresh=heads.nms_thresh,
            topk=heads.detections_per_image,
        )
        expected = recorded["roi_results_before_postprocess"][i]
        assert torch.equal(det.classes, expected["pred_classes"])
        assert max_diff(det.boxes, expected["pred_boxes"]) <= 1e-4
        assert max_diff(det.scores, expected["scores"]) <= 1e-6


@torch.no_grad()
def test_mask_head_on_recorded_detections(model, recorded):
    features = levels(recorded["features"], model.roi_features)
    results = recorded["roi_results_before_postprocess"]
    logits = model.roi_heads.mask_logits(features, [r["pred_boxes"] for r in results])
    dets = [
        Detections(r["pred_boxes"], r["scores"], r["pred_classes"], r["scores"]) for r in results
    ]
    model.roi_heads.predict_masks(features, dets)
    for i, (mine, det) in enumerate(zip(logits.split(100), dets)):
        assert max_diff(mine, recorded["mask_logits_all_classes"][i]) <= 1e-4
        assert max_diff(det.mask_probs, results[i]["pred_mask_probs_28"]) <= 1e-5


@pytest.mark.parametrize("rescaled", [False, True])
def test_postprocess_on_recorded_detections(oracle, recorded, rescaled):
    """Mask pasting and rescaling alone, fed detectron2's pre-postprocess detections."""
    outputs = oracle["outputs_rescaled" if rescaled else "outputs"]
    for i, result in enumerate(recorded["roi_results_before_postprocess"]):
        det = Detections(
            result["pred_boxes"],
            result["scores"],
            result["pred_classes"],
            result["scores"],
            result["pred_mask_probs_28"],
        )
        expected = outputs[i]
        out = detector_postprocess(
            det, tuple(recorded["image_sizes"][i]), tuple(expected["image_size"])
        )
        assert max_diff(out["boxes"], expected["pred_boxes"]) <= 1e-4
        assert torch.equal(out["labels"], expected["pred_classes"])
        assert out["masks"].dtype == torch.bool
        wrong = (out["masks"].to(torch.uint8) != expected["pred_masks"]).sum().item()
        # Same inputs, same arithmetic: at most the 1-pixel thread jitter the README reports.
        assert wrong <= 1, wrong


def test_paste_masks_is_exact_at_native_size(recorded, oracle):
    result = recorded["roi_results_before_postprocess"][1]
    pasted = paste_masks_in_image(
        result["pred_mask_probs_28"][:, 0], result["pred_boxes"], (96, 128)
    )
    assert torch.equal(pasted.to(torch.uint8), oracle["outputs"][1]["pred_masks"])


@pytest.mark.parametrize("rescaled", [False, True])
@torch.no_grad()
def test_end_to_end_detections(model, oracle, images, rescaled):
    if rescaled:
        sizes = [(x["height"], x["width"]) for x in oracle["inputs_rescaled"]]
        outputs = model(images, output_sizes=sizes)
        expected = oracle["outputs_rescaled"]
    else:
        outputs = model(images)
        expected = oracle["outputs"]
    for out, exp in zip(outputs, expected):
        assert set(out) == {"boxes", "scores", "labels", "masks"}
        assert torch.equal(out["labels"], exp["pred_classes"])  # same detections, same order
        assert max_diff(out["boxes"], exp["pred_boxes"]) <= 5e-3
        # Backbone differences of 1e-5 reach the softmax as ~3e-5; order is unchanged.
        assert max_diff(out["scores"], exp["scores"]) <= 1e-4
        assert tuple(out["masks"].shape) == tuple(exp["pred_masks"].shape)
        wrong = (out["masks"].to(torch.uint8) != exp["pred_masks"]).sum().item()
        assert wrong <= 1e-3 * exp["pred_masks"].numel()


def train_targets(oracle) -> list[dict]:
    return [
        {"boxes": x["gt_boxes"], "labels": x["gt_classes"], "masks": x["gt_masks"]}
        for x in oracle["train"]["inputs"]
    ]


def test_seeded_sampling_draws_detectron2s_samples(model, oracle, recorded):
    """Same seed, same randperm calls in the same order: identical anchors and ROIs."""
    rec = oracle["train"]["recorded"]
    targets = train_targets(oracle)
    anchors = torch.cat(recorded["anchors_per_level"])
    torch.manual_seed(oracle["train"]["seed"])
    labels, matched = model.rpn.label_and_sample_anchors(anchors, [t["boxes"] for t in targets])
    assert torch.equal(labels, torch.stack(list(rec["rpn_gt_labels"])))
    assert torch.equal(matched, torch.stack(list(rec["rpn_matched_gt_boxes"])))
    samples = model.roi_heads.sample_proposals(
        [p["proposal_boxes"] for p in rec["train_rpn_proposals"]],
        [t["boxes"] for t in targets],
        [t["labels"] for t in targets],
    )
    for mine, theirs in zip(samples, rec["roi_sampled"]):
        assert torch.equal(mine.boxes, theirs["proposal_boxes"])
        assert torch.equal(mine.gt_classes, theirs["gt_classes"])
        assert torch.equal(mine.gt_boxes, theirs["gt_boxes"])
        assert torch.equal(mine.gt_index, theirs["gt_index"])


def test_injected_samples_give_detectron2s_losses_and_gradients(model, oracle, images):
    rec = oracle["train"]["recorded"]
    model.zero_grad()
    batch, _ = model.preprocess(images)
    features = model.backbone(batch)
    rpn_in = levels(features, model.rpn_features)
    logits, deltas = flatten_predictions(*model.rpn.head(rpn_in))
    anchors = torch.cat(model.rpn.anchor_generator(rpn_in))
    losses = rpn_losses(
        anchors,
        torch.cat(logits, dim=1),
        torch.cat(deltas, dim=1),
        torch.stack(list(rec["rpn_gt_labels"])),
        torch.stack(list(rec["rpn_matched_gt_boxes"])),
        model.rpn.box_coder,
        batch_size_per_image=model.rpn.batch_size_per_image,
    )
    samples = [
        SampledProposals(s["proposal_boxes"], s["gt_classes"], s["gt_boxes"], s["gt_index"])
        for s in rec["roi_sampled"]
    ]
    model.train()
    try:
        masks = [t["masks"] for t in train_targets(oracle)]
        losses.update(model.roi_heads.losses(levels(features, model.roi_features), samples, masks))
    finally:
        model.eval()
    expected = oracle["train"]["losses"]
    assert set(losses) == set(expected)
    for name, value in losses.items():
        assert value.item() == pytest.approx(expected[name], abs=1e-5), name
    sum(losses.values()).backward()
    grads = oracle["train"]["grads_of_total_loss"]
    names = detectron2_key_map(list(grads), get_model_config("vitdet_test"))
    params = dict(model.named_parameters())
    for d2_name, expected_grad in grads.items():
        grad = params[names[d2_name]].grad
        assert grad is not None, d2_name
        assert max_diff(grad, expected_grad) <= 1e-4, d2_name
        rel = (grad - expected_grad).norm() / expected_grad.norm()
        assert rel <= 2e-3, (d2_name, rel.item())
    model.zero_grad()


def test_seeded_training_step_matches_detectron2(model, oracle, images):
    """The whole train-mode forward, sampling included, from detectron2's seed."""
    model.train()
    try:
        torch.manual_seed(oracle["train"]["seed"])
        losses = model(images, train_targets(oracle))
        stats = model.training_stats
    finally:
        model.eval()
    expected = oracle["train"]["losses"]
    assert set(losses) == set(expected)
    for name, value in losses.items():
        assert value.item() == pytest.approx(expected[name], abs=1e-5), name
    logged = oracle["train"]["event_storage_scalars"]
    ours = {
        "rpn/num_pos_anchors": "rpn/num_pos_anchors",
        "rpn/num_neg_anchors": "rpn/num_neg_anchors",
        "roi_head/num_fg_samples": "roi/num_fg_samples",
        "roi_head/num_bg_samples": "roi/num_bg_samples",
        "fast_rcnn/cls_accuracy": "roi/cls_accuracy",
        "fast_rcnn/fg_cls_accuracy": "roi/fg_cls_accuracy",
        "fast_rcnn/false_negative": "roi/false_negative",
        "mask_rcnn/accuracy": "roi/mask_accuracy",
        "mask_rcnn/false_positive": "roi/mask_false_positive",
        "mask_rcnn/false_negative": "roi/mask_false_negative",
    }
    for theirs, mine in ours.items():
        assert stats[mine] == pytest.approx(logged[theirs], abs=1e-6), mine
