"""Run by test_features.py under torchrun: the test-only tiny-weights override, then ControlNet training
from extracted features (`training.features.train_controlnet`); each rank saves its losses and EMA weights.

    torchrun --nproc-per-node 2 tests/training/features_ddp_driver.py WEIGHTS FEATURES OUT
"""
import importlib.util
import os
import sys
from pathlib import Path

import pytest
import torch

from training import features as tf

spec = importlib.util.spec_from_file_location(
    "tiny_mmaudio", Path(__file__).resolve().parents[1] / "nag_model" / "tiny_mmaudio.py")
tiny_mmaudio = importlib.util.module_from_spec(spec)
spec.loader.exec_module(tiny_mmaudio)

if __name__ == "__main__":
    weights, features, out = sys.argv[1:4]
    torch.set_num_threads(1)
    tiny_mmaudio.use_tiny_weights(pytest.MonkeyPatch(), Path(weights))
    result, stem = tf.train_controlnet(features, "mmaudio-small-16k", weights, out, steps=2, batch_size=4,
                                       work=f"{out}/work", progress=False)
    torch.save({"losses": result.losses, "ema": result.model.state_dict(), "stem": stem},
               f"{out}/rank{os.environ['RANK']}.pt")
