"""Model loading with a per-process cache, and the video-feature cache next to it (library code; the
task is :func:`tasks.model_info.describe_model`).

A worker process loads each (model, duration) once; every task in that process reuses it. The
``model`` string names what to load:

* ``"random:<preset>"`` or ``"random:<preset>:<seed>"``: random weights (tests, benchmarks);
* ``"demo"``: the bundled demo model in ``nag_model/weights/demo/`` (a clear ``ModelNotFound`` while
  its files are missing; nothing is ever downloaded);
* ``"<mmaudio bundle>:<weights folder or URL>"``, e.g. ``"mmaudio-small-16k:s3://models/mmaudio/"``:
  a real MMAudio bundle assembled from the official files (``nag_model.mmaudio_bundle``);
* anything else: a bundle folder, local path or fsspec URL (``nag_model.bundle.load_bundle``).

Video features (``bundle.video_features``) are cached per process by (video sha256, encoder identity,
duration), so the captions, ordering and synthesis stages of one video encode its frames once. A video
is encoded whole (up to :data:`MAX_VIDEO_S`), one set of features per generation window of
``nag_model.long_form``: ``duration`` is the model's window, not a cut. Captions and ordering look at the
first window; the synthesis at all of them (:func:`video_windows`).
"""
from __future__ import annotations

import hashlib
import json
import threading
from dataclasses import asdict, dataclass
from pathlib import Path

from cachetools import LRUCache

import nag_model
from media.decode import FrameRequest, decode_frames
from nag_model.bundle import FoleyBundle, load_bundle, random_bundle
from nag_model.checkpoint import state_fingerprint
from nag_model.config import CLIP_FPS, SYNC_FPS
from nag_model.generator import VideoFeatures
from nag_model.long_form import Window, plan_windows, window_features
from nag_model.mmaudio_bundle import load_mmaudio_bundle, parse_model_string
from pipeline.objects import open_input

DEMO_MODEL = "demo"
DEMO_MODEL_DIR = Path(nag_model.__file__).resolve().parent / "weights" / "demo"
DEMO_MODEL_FILES = ("bundle.json", "base.json", "base.safetensors")
FEATURE_CACHE_SIZE = 64
# The longest video given a soundtrack: decoding keeps its frames at the encoder's sizes in memory (the demo's
# 64x64: ~0.4 MB per second of video; MMAudio's CLIP 384x384 + Synchformer 224x224: ~7 MB per second).
MAX_VIDEO_S = 600.0

_lock = threading.Lock()
_bundles: dict[tuple[str, float], FoleyBundle] = {}
_ids: dict[int, str] = {}
_features: LRUCache[tuple[str, str, float], tuple[list[VideoFeatures], float]] = LRUCache(maxsize=FEATURE_CACHE_SIZE)


class ModelNotFound(FileNotFoundError):
    """The named model's files are not there; the message says which and what to do."""


def _demo_path() -> str:
    missing = [name for name in DEMO_MODEL_FILES if not (DEMO_MODEL_DIR / name).is_file()]
    if missing:
        raise ModelNotFound(
            f"the demo model is not installed: {', '.join(str(DEMO_MODEL_DIR / m) for m in missing)} "
            f"missing (a bundle folder written by nag_model.bundle.save_bundle: bundle.json, base.*, "
            f"controlnet.*). It is trained from SynthFoley; until it is in place, pass a bundle folder or "
            f"URL as the model, or 'random:tiny' for random weights"
        )
    return str(DEMO_MODEL_DIR)


def _load(model: str, duration: float) -> FoleyBundle:
    if model.startswith("random:"):
        parts = model.split(":")
        if len(parts) not in (2, 3) or not parts[1]:
            raise ValueError(f"random models are 'random:<preset>' or 'random:<preset>:<seed>', got {model!r}")
        seed = int(parts[2]) if len(parts) == 3 else 0
        return random_bundle(parts[1], seed=seed, duration=duration)
    real = parse_model_string(model)
    if real is not None:
        try:
            return load_mmaudio_bundle(*real, duration=duration)
        except (FileNotFoundError, ValueError) as exc:  # missing, corrupt or mismatched weight files
            raise ModelNotFound(f"cannot load model {real[0]!r} from {real[1]!r}: {exc}") from exc
    path = _demo_path() if model == DEMO_MODEL else model
    try:
        return load_bundle(path, duration=duration)
    except FileNotFoundError as exc:
        raise ModelNotFound(f"cannot load model {model!r}: {exc}") from exc


def load_model(model: str, duration: float) -> FoleyBundle:
    """The bundle named by ``model`` at ``duration`` seconds, loaded once per process.

    Raises:
        ModelNotFound: the files are missing (the message names them). ValueError: a bad name.
    """
    if not isinstance(model, str) or not model:
        raise ValueError(f"model must be a non-empty string, got {model!r}")
    if not duration > 0:
        raise ValueError(f"duration must be positive, got {duration}")
    key = (model, float(duration))
    with _lock:
        if key not in _bundles:
            _bundles[key] = _load(model, float(duration))
        return _bundles[key]


def register_model(name: str, bundle: FoleyBundle, duration: float) -> None:
    """Make an in-memory bundle loadable as ``name`` in this process (notebooks, tests)."""
    if not name or name == DEMO_MODEL or name.startswith("random:"):
        raise ValueError(f"{name!r} is reserved; pick another name for a registered model")
    with _lock:
        _bundles[(name, float(duration))] = bundle


def model_id(bundle: FoleyBundle) -> str:
    """``<name>@<12 hex>``: the bundle's name and a fingerprint of its base + ControlNet weights."""
    with _lock:
        if id(bundle) not in _ids:
            h = hashlib.sha256(state_fingerprint(bundle.base).encode())
            if bundle.controlnet is not None:
                h.update(state_fingerprint(bundle.controlnet).encode())
            _ids[id(bundle)] = f"{bundle.name}@{h.hexdigest()[:12]}"
        return _ids[id(bundle)]


def encoder_id(bundle: FoleyBundle) -> str:
    """Identity of what turns frames into features: the video encoder's config and the model's lengths."""
    enc = bundle.video_encoder
    spec = {"encoder": enc.to_dict() if hasattr(enc, "to_dict") else type(enc).__name__,
            "clip_size": list(enc.clip_size), "sync_size": list(enc.sync_size), "seq": asdict(bundle.base.seq)}
    return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:16]


def frame_requests(bundle: FoleyBundle) -> tuple[FrameRequest, FrameRequest]:
    """Frames at the CLIP rate and at the sync rate (``nag_model.config``), at the encoder's sizes and fits
    (stretched unless the encoder says otherwise: MMAudio's Synchformer frames are centre-cropped)."""
    enc = bundle.video_encoder
    return (FrameRequest(CLIP_FPS, tuple(enc.clip_size), getattr(enc, "clip_fit", "stretch")),
            FrameRequest(SYNC_FPS, tuple(enc.sync_size), getattr(enc, "sync_fit", "stretch")))


def soundtrack_windows(bundle: FoleyBundle, covered_s: float) -> list[Window]:
    """The generation windows of a soundtrack of ``covered_s`` seconds (``nag_model.long_form.plan_windows``)."""
    window = bundle.base.seq.latent * bundle.codec.samples_per_latent
    return plan_windows(round(covered_s * bundle.sample_rate), window, bundle.sample_rate)


def encode_video(bundle: FoleyBundle, video_uri: str, sha256: str, duration: float) -> tuple[list[VideoFeatures], float]:
    """Features of every generation window of a video (:func:`soundtrack_windows`) and the seconds of video
    (at most :data:`MAX_VIDEO_S`), decoded and encoded once per process (cached by sha256, encoder identity
    and the model's window ``duration``).

    Raises the ``media.errors`` of ``decode_frames`` for unusable videos.
    """
    key = (encoder_id(bundle), sha256, float(duration))
    with _lock:
        if key in _features:
            return _features[key]
    with open_input(video_uri) as source:
        decoded = decode_frames(source, frame_requests(bundle), duration=MAX_VIDEO_S)
    clip, sync = decoded.frame_sets
    covered = float(decoded.duration)
    windows = soundtrack_windows(bundle, covered) if covered > 0 else [Window(0, 1)]
    value = (window_features(bundle.video_features, clip.frames, sync.frames, windows, bundle.sample_rate), covered)
    with _lock:
        _features[key] = value
    return value


def video_features(bundle: FoleyBundle, video_uri: str, sha256: str, duration: float) -> VideoFeatures:
    """The features of the video's first window (from this worker's cache when it has them)."""
    return encode_video(bundle, video_uri, sha256, duration)[0][0]


def video_windows(bundle: FoleyBundle, video_uri: str, sha256: str, duration: float) -> list[VideoFeatures]:
    """The features of every generation window of the video, in order (from this worker's cache)."""
    return encode_video(bundle, video_uri, sha256, duration)[0]


def clear_caches() -> None:
    """Forget every loaded model and cached feature (tests)."""
    with _lock:
        _bundles.clear()
        _ids.clear()
        _features.clear()


@dataclass(frozen=True)
class ModelInfo:
    """What a run records about its model, and what the other stages can count on."""

    model: str
    model_id: str
    sample_rate: int
    duration: float
    encoder_id: str
    has_controlnet: bool
    has_scorer: bool
    has_captioner: bool
    has_evaluator: bool


def check_method(info: dict, method: str) -> None:
    """Refuse NAG up front on a model without an audio ControlNet (the other methods need none).

    ``info`` is :class:`ModelInfo` as a dict (what the ``describe-model`` task returns).

    Raises:
        ModelNotFound: ``method`` needs the ControlNet file the model lacks.
    """
    if method == "nag" and not info["has_controlnet"]:
        raise ModelNotFound(
            f"model {info['model']!r} has no audio ControlNet, which method 'nag' needs: put "
            f"controlnet_<network>.safetensors + .json (written by `python -m training.features train`) in its "
            f"weights folder, or use --method independent or negative-prompt")


def describe(model: str, duration: float) -> ModelInfo:
    """Load the model in this process (once) and describe it."""
    bundle = load_model(model, duration)
    return ModelInfo(model=model, model_id=model_id(bundle), sample_rate=bundle.sample_rate,
                     duration=bundle.duration, encoder_id=encoder_id(bundle),
                     has_controlnet=bundle.controlnet is not None, has_scorer=bundle.scorer is not None,
                     has_captioner=bundle.captioner is not None, has_evaluator=bundle.evaluator is not None)
