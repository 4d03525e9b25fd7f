"""SynthFoley: a deterministic procedural audio-visual world with known ground truth (see README.md)."""
from .world import FPS, KINDS, SR, Clip, ClipPlan, SourceInfo, make_clip, plan_clip, render

__all__ = ["FPS", "KINDS", "SR", "Clip", "ClipPlan", "SourceInfo", "make_clip", "plan_clip", "render"]
