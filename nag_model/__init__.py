"""Step-by-step video-to-audio with Negative Audio Guidance: pure PyTorch, no Prefect, no I/O beyond weights.

The core (network, ControlNet, flow matching, guidance, generator, checkpoints) is in this package's
modules; condition encoders are in :mod:`nag_model.encoders`, waveform <-> latent codecs in
:mod:`nag_model.codecs`, and the demo world's evaluators in :mod:`nag_model.demo`.
"""
from nag_model.bundle import FoleyBundle, load_bundle, random_bundle, save_bundle
from nag_model.checkpoint import IncompatibleWeights, WeightsNotFound, load_controlnet, load_mmaudio, save_controlnet
from nag_model.codecs.base import AudioCodec
from nag_model.codecs.demo_mel import MelCodec, MelCodecConfig
from nag_model.codecs.mmaudio import MMAudioCodec, load_codec
from nag_model.config import MMAudioConfig, get_config
from nag_model.controlnet import AudioControlNet, ControlNetConfig
from nag_model.encoders.clip import load_clip
from nag_model.encoders.synchformer import load_synchformer
from nag_model.flow_matching import euler, time_grid
from nag_model.generator import StepByStepGenerator, Track, VideoFeatures
from nag_model.guidance import ClassifierFreeGuidance, ConditionSet, NegativeAudioGuidance, NegativePromptGuidance
from nag_model.network import MMAudio, PreprocessedConditions, build_mmaudio
from nag_model.settings import DEFAULTS, METHODS, TrackSettings
from nag_model.velocity import GuidedVelocity

__all__ = [
    "AudioCodec", "AudioControlNet", "ClassifierFreeGuidance", "ConditionSet", "ControlNetConfig", "DEFAULTS",
    "FoleyBundle", "GuidedVelocity", "IncompatibleWeights", "METHODS", "MMAudio", "MMAudioConfig", "MelCodec",
    "MelCodecConfig", "MMAudioCodec", "NegativeAudioGuidance", "NegativePromptGuidance", "PreprocessedConditions",
    "StepByStepGenerator", "Track", "TrackSettings", "VideoFeatures", "WeightsNotFound", "build_mmaudio", "euler",
    "get_config", "load_bundle", "load_clip", "load_codec", "load_synchformer", "load_controlnet", "load_mmaudio", "random_bundle", "save_bundle",
    "save_controlnet", "time_grid",
]
