"""Synthetic data, deterministic by seed: a small drawn sample with images and exact, coarse and
predicted masks (for the demo and tests), and COCO-scale JSON files for benchmarks."""

from rem_core.synth.eval_bench import write_eval_benchmark
from rem_core.synth.large import write_large_json
from rem_core.synth.sample import SynthSample, make_sample

__all__ = ["SynthSample", "make_sample", "write_eval_benchmark", "write_large_json"]
