"""The evaluation models: which class computes which of the paper's metrics, where its weight file is, and
loading it once per process.

Each entry of :data:`EVAL_MODELS` names a model the user configures (``--eval-weights panns=/w/Cnn14_16k.pth``),
the class that implements it as an import path (``evaluation.models.panns:PANNsCnn14``, imported only when the
model is loaded, so a missing module costs one line, not an import error), its weight file in
``nag_model.checkpoint.OFFICIAL_WEIGHTS`` and the roles it plays:

* ``set``: ``features(wavs) -> {"embedding": (B, D), "logits": (B, C)}`` or ``{"frames": [(n_i, D)]}``:
  FD, KL and IS of a run against a reference set (:mod:`evaluation.run_sets`);
* ``clap``: ``embed_audio(wavs)``, ``embed_text(captions)``: CLAP T-A per track, CLAP A-A per mix;
* ``ib``: ``embed_video(frames)``, ``embed_audio(wavs)``: IB-score per track and per mix;
* ``sync``: ``desync(frames, wavs)``: DeSync per mix (videos at least as long as its window).

The classes follow ``/work/HELPERS-13.md``'s interface (``name``, ``sample_rate``, ``from_file(path, preset, *,
verify_checksum, storage_options)``); ``demo`` adapts the demo world's audio evaluator to the same interface
(:mod:`evaluation.models.demo`), so the whole path runs on the demo world.

Configuration (:func:`parse_eval_weights`): a list of ``NAME=PATH``, ``NAME:PRESET=PATH`` or a bare folder
/ URL (every registered model whose official file name is in it). The CLI's ``--eval-weights`` (or the
``FOLEY_EVAL_WEIGHTS`` environment variable, entries separated by spaces) and the flows' ``eval_weights``
parameter take this list.
"""
from __future__ import annotations

import importlib
import threading
from dataclasses import dataclass
from typing import Any, Iterable, Mapping

import fsspec

from nag_model.checkpoint import OFFICIAL_WEIGHTS, WeightFile

SET, CLAP, IB, SYNC = "set", "clap", "ib", "sync"
DOCS = "docs/metrics.md"


@dataclass(frozen=True)
class EvalModelSpec:
    """One evaluation model: what the user configures and what it gives."""

    name: str  # the configuration name: --eval-weights <name>=PATH
    target: str  # "module:Class", imported when the model is loaded
    weights: str | None  # key of nag_model.checkpoint.OFFICIAL_WEIGHTS (None: no official file)
    roles: tuple[str, ...]
    columns: str  # the paper's columns it fills
    metrics: tuple[str, ...]  # the metric names of its rows
    paper: bool = True  # one of the paper's models (a "skipped" line when not configured)
    companions: tuple[str, ...] = ()  # OFFICIAL_WEIGHTS keys of files its class reads beside the weights

    @property
    def weight_file(self) -> WeightFile | None:
        """The registered official file (None until its loader registers it)."""
        return OFFICIAL_WEIGHTS.get(self.weights) if self.weights else None


EVAL_MODELS: dict[str, EvalModelSpec] = {s.name: s for s in (
    EvalModelSpec("panns", "evaluation.models.panns:PANNsCnn14", "panns_cnn14_16k", (SET,), "FD_PANNs, KL_PANNs, IS",
                  ("fd", "kl", "is")),
    EvalModelSpec("vggish", "evaluation.models.vggish:VGGish", "vggish", (SET,), "FD_VGG", ("fd",)),
    EvalModelSpec("passt", "evaluation.models.passt:PaSST", "passt_s_swa_p16_128_ap476", (SET,), "KL_PaSST",
                  ("fd", "kl", "is")),
    EvalModelSpec("clap", "evaluation.models.clap:LaionClap", "laion_clap", (CLAP,), "CLAP A-A, CLAP T-A",
                  ("aa_similarity_mean", "aa_similarity_max", "ta_similarity"),
                  companions=("roberta_base_vocab", "roberta_base_merges")),  # RoBERTa's tokenizer files
    EvalModelSpec("imagebind", "evaluation.models.imagebind:ImageBind", "imagebind_huge", (IB,), "IB-score",
                  ("ib_score",)),
    EvalModelSpec("desync", "evaluation.models.synchformer_sync:SynchformerSync", "synchformer", (SYNC,), "DeSync",
                  ("desync",)),
    EvalModelSpec("demo", "evaluation.models.demo:DemoEvalModel", None, (SET, CLAP),
                  "demo world only (not comparable with the paper)",
                  ("fd", "kl", "is", "aa_similarity_mean", "aa_similarity_max", "ta_similarity"), paper=False),
)}


class EvalModelUnavailable(RuntimeError):
    """A configured evaluation model cannot be used; the message is one line saying why."""


@dataclass(frozen=True)
class WeightRef:
    """Where one model's weights are, and which preset of its class to build (None: the official one)."""

    path: str
    preset: str | None = None

    def entry(self, name: str) -> str:
        """The configuration entry that gives this reference back: ``name[:preset]=path``."""
        return f"{name}{':' + self.preset if self.preset else ''}={self.path}"


def _join(folder: str, name: str) -> str:
    return folder.rstrip("/") + "/" + name


def parse_eval_weights(entries: Iterable[str] | Mapping[str, str] | None,
                       storage_options: Mapping | None = None) -> dict[str, WeightRef]:
    """The configured models from ``NAME=PATH``, ``NAME:PRESET=PATH`` and folder entries (module docstring).

    A folder entry adds every registered model whose official file name exists in it (explicit entries win).

    Raises:
        ValueError: an unknown model name, a model given twice, or an empty path; the message lists the names.
    """
    if entries is None:
        return {}
    if isinstance(entries, Mapping):
        entries = [f"{k}={v}" for k, v in entries.items()]
    explicit: dict[str, WeightRef] = {}
    folders: list[str] = []
    for raw in entries:
        entry = str(raw).strip()
        if not entry:
            continue
        head, sep, path = entry.partition("=")
        if not sep or "/" in head or head.startswith(("file:", "s3:", "gs:", "memory:")):
            folders.append(entry)  # no NAME= in front: a folder or URL holding official files
            continue
        name, _, preset = head.partition(":")
        if name not in EVAL_MODELS:
            raise ValueError(f"--eval-weights: unknown evaluation model {name!r}; known: {', '.join(EVAL_MODELS)}")
        if name in explicit:
            raise ValueError(f"--eval-weights: {name} is given twice")
        if not path.strip():
            raise ValueError(f"--eval-weights {entry!r}: the path after '=' is empty")
        explicit[name] = WeightRef(path.strip(), preset or None)
    found: dict[str, WeightRef] = {}
    for folder in folders:
        fs, base = fsspec.core.url_to_fs(folder, **dict(storage_options or {}))
        for spec in EVAL_MODELS.values():
            known = spec.weight_file
            if known is not None and spec.name not in found and fs.exists(_join(base, known.filename)):
                found[spec.name] = WeightRef(_join(folder, known.filename))
    return {**found, **explicit}


def weight_entries(weights: Mapping[str, WeightRef]) -> list[str]:
    """The configuration entries of ``weights`` (what a flow's ``eval_weights`` parameter takes)."""
    return [ref.entry(name) for name, ref in sorted(weights.items())]


def model_class(spec: EvalModelSpec) -> type:
    """Import the class of ``spec``.

    Raises:
        EvalModelUnavailable: the module or the class is not there (one line).
    """
    module, _, attr = spec.target.partition(":")
    try:
        return getattr(importlib.import_module(module), attr)
    except ImportError as exc:
        why = f"{type(exc).__name__}: {exc}"
        raise EvalModelUnavailable(f"{spec.name}: {spec.target} cannot be imported ({why})") from exc
    except AttributeError:
        raise EvalModelUnavailable(f"{spec.name}: module {module} has no class {attr}") from None


def _missing_file(spec: EvalModelSpec, ref: WeightRef) -> str:
    known = spec.weight_file
    where = "" if known is None else f" (expected {known.filename}, {known.size}, from {known.url})"
    return f"{spec.name}: weights not found at {ref.path!r}{where}"


@dataclass(frozen=True)
class EvalPlan:
    """What the configured models will give: the usable ones and one line per paper metric that will not be."""

    usable: dict[str, WeightRef]
    skipped: tuple[str, ...]
    unconfigured: tuple[str, ...] = ()  # the columns of the paper models given no weights at all

    def notice(self) -> list[str]:
        """The skipped lines to show a user once per run: one line in all when no paper model is configured
        (a plain run), else one per skipped model, saying why."""
        if len(self.unconfigured) > 1 and len(self.unconfigured) == len(self.skipped):
            return [f"skipped: the paper's metrics ({'; '.join(self.unconfigured)}): no evaluation weights "
                    f"configured (--eval-weights NAME=PATH or FOLEY_EVAL_WEIGHTS; see {DOCS})"]
        return list(self.skipped)

    def with_role(self, role: str) -> list[str]:
        """Names of the usable models that play ``role``."""
        return [n for n in self.usable if role in EVAL_MODELS[n].roles]

    def entries(self) -> list[str]:
        return weight_entries(self.usable)


def plan_eval_models(weights: Mapping[str, WeightRef], storage_options: Mapping | None = None) -> EvalPlan:
    """Check each configured model cheaply (its class imports, its file exists; the checksum is verified when it
    loads) and say, one line each, why a paper metric will be skipped."""
    usable: dict[str, WeightRef] = {}
    skipped: list[str] = []
    unconfigured: list[str] = []
    for spec in EVAL_MODELS.values():
        ref = weights.get(spec.name)
        if ref is None:
            if spec.paper:
                unconfigured.append(spec.columns)
                skipped.append(f"skipped: {spec.columns}: no {spec.name} weights configured "
                               f"(--eval-weights {spec.name}=PATH; see {DOCS})")
            continue
        try:
            model_class(spec)
            fs, path = fsspec.core.url_to_fs(ref.path, **dict(storage_options or {}))
            if not fs.exists(path):
                raise EvalModelUnavailable(_missing_file(spec, ref))
            for key in spec.companions:  # files the class reads from the weights' folder
                extra = OFFICIAL_WEIGHTS[key]
                if not fs.exists(_join(path.rsplit("/", 1)[0] if "/" in path else ".", extra.filename)):
                    raise EvalModelUnavailable(f"{spec.name}: {extra.filename} is not beside {ref.path!r} "
                                               f"(get it from {extra.url})")
        except EvalModelUnavailable as exc:
            skipped.append(f"skipped: {spec.columns}: {exc}")
            continue
        usable[spec.name] = ref
    return EvalPlan(usable, tuple(skipped), tuple(unconfigured))


_lock = threading.Lock()
_loaded: dict[tuple[str, str, str | None, str], Any] = {}


def load_eval_model(name: str, ref: WeightRef, device: str = "cpu", *, storage_options: Mapping | None = None) -> Any:
    """The model ``name`` built from ``ref`` on ``device``, in eval mode; loaded once per process.

    Raises:
        EvalModelUnavailable: unknown name, the class cannot be imported, or the file is missing, corrupt or not
            the official one (the message names the file, its expected size and checksum and where to get it).
    """
    if name not in EVAL_MODELS:
        raise EvalModelUnavailable(f"unknown evaluation model {name!r}; known: {', '.join(EVAL_MODELS)}")
    spec = EVAL_MODELS[name]
    key = (name, ref.path, ref.preset, str(device))
    with _lock:
        if key in _loaded:
            return _loaded[key]
        cls = model_class(spec)
        kwargs = {"storage_options": storage_options} if storage_options else {}
        try:
            model = cls.from_file(ref.path, ref.preset, **kwargs) if ref.preset else cls.from_file(ref.path, **kwargs)
        except FileNotFoundError as exc:
            raise EvalModelUnavailable(f"{name}: {exc}") from exc
        except ValueError as exc:  # ChecksumMismatch, CorruptWeights, IncompatibleWeights
            raise EvalModelUnavailable(f"{name}: {ref.path!r} cannot be loaded: {exc}") from exc
        if hasattr(model, "eval"):
            model.eval()
        if str(device) != "cpu":
            model = model.to(device) or model
        _loaded[key] = model
        return model


def model_label(name: str, model: Any) -> str:
    """What rows record in ``model``: the class's ``name`` (e.g. ``panns-cnn14-16k``), else the registry name."""
    return str(getattr(model, "name", None) or name)


def clear_loaded() -> None:
    """Forget every loaded evaluation model (tests)."""
    with _lock:
        _loaded.clear()
