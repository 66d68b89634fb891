"""SOLO, SOLOv2, AggMask and AggMask* instance segmentation in plain PyTorch.

Registered variants live in :mod:`rem_models.solo.variants`; :func:`build_solo` assembles a
model from a config; :mod:`rem_models.solo.convert` maps released mmdetection checkpoints.
"""
