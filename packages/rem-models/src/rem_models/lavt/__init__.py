"""LAVT referring segmentation in plain PyTorch, loading and reproducing LAVT's checkpoints.

Registered as ``lavt`` / ``lavt_one`` (and the tiny ``lavt_test``) in
:mod:`rem_models.registry`; :mod:`rem_models.lavt.convert` reads LAVT's files.
"""
