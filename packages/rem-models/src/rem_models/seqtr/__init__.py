"""SeqTR (ECCV 2022) and Partial-RES (CVPR 2023): visual grounding as coordinate tokens.

A DarkNet-53 image encoder, a GloVe + bi-GRU sentence encoder and a multi-scale fusion feed a
transformer that writes the referred object as a sequence of quantised coordinates: a box
(x1, y1, x2, y2) or a contour of ``num_ray`` points. See ``model.py`` for the contract.
"""
