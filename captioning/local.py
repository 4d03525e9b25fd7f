"""A chat backend over a local Hugging Face transformers VLM folder, loaded offline (``local_files_only``).

Install with the ``captions-local`` extra (``transformers``, ``llguidance``). Nothing is downloaded: the folder
holds the model's ``config.json``, weights, tokenizer and image-processor files (for example a copy of
``Qwen/Qwen2.5-VL-7B-Instruct``).

Inputs are built from the tokenizer's chat template and the image processor. The Qwen2-VL family
(``qwen2_vl``, ``qwen2_5_vl``; the paper used Qwen2.5-VL) is handled without ``AutoProcessor``, whose Qwen
processors need torchvision for their video part: each image placeholder is expanded to the number of merged
patches the image processor reports. Other VLMs go through ``AutoProcessor``.

Structured output: when a JSON schema is given, decoding is constrained to it with llguidance (the grammar
engine vLLM and llama.cpp also use), token by token through a ``LogitsProcessor``; greedy decoding otherwise.
"""
from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import torch

from captioning.two_step import decode_image_part

QWEN_FAMILY = ("qwen2_vl", "qwen2_5_vl")
IMAGE_PAD = "<|image_pad|>"


class LocalModelError(RuntimeError):
    """The local VLM folder cannot be used; the message says why."""


class SchemaConstraint:
    """A transformers ``LogitsProcessor`` that only lets tokens through that keep the output valid under a JSON
    schema (llguidance). One instance per generation."""

    def __init__(self, tokenizer, schema: dict, prompt_len: int, eos_ids: list[int]):
        import llguidance
        import llguidance.hf

        self._matcher = llguidance.LLMatcher(llguidance.hf.from_tokenizer(tokenizer, eos_token=eos_ids),
                                             llguidance.LLMatcher.grammar_from_json_schema(
                                                 schema, overrides={"whitespace_flexible": False}))
        if self._matcher.is_error():
            raise LocalModelError(f"the JSON schema cannot be enforced: {self._matcher.get_error()}")
        self._prompt_len = prompt_len
        self._eos = eos_ids

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:  # scores: (1, V)
        if input_ids.shape[1] > self._prompt_len:
            self._matcher.consume_token(int(input_ids[0, -1]))
        if self._matcher.is_stopped() or self._matcher.is_error():
            allowed = np.zeros(scores.shape[-1], dtype=bool)
            allowed[self._eos] = True
        else:
            bits = np.unpackbits(np.frombuffer(self._matcher.compute_bitmask(), np.uint8), bitorder="little")
            allowed = np.zeros(scores.shape[-1], dtype=bool)
            n = min(bits.size, allowed.size)
            allowed[:n] = bits[:n].astype(bool)
        return scores.masked_fill(~torch.from_numpy(allowed).to(scores.device)[None], float("-inf"))


class LocalChat:
    """A :class:`captioning.two_step.Chat` over a transformers VLM folder (greedy decoding; thread-safe)."""

    def __init__(self, path: str | Path, device: str = "cpu", dtype: str | None = None):
        try:
            import transformers
        except ImportError as exc:
            raise LocalModelError("the local captioner needs transformers: pip install 'foley-nag[captions-local]'"
                                  ) from exc
        folder = Path(path)
        if not (folder / "config.json").is_file():
            raise LocalModelError(f"{folder} is not a transformers model folder (no config.json); point "
                                  "--captioner-path at a local copy of a VLM such as Qwen2.5-VL-7B-Instruct")
        kwargs = {"local_files_only": True}
        self.config = transformers.AutoConfig.from_pretrained(folder, **kwargs)
        self.model = f"{folder.name}"
        self._family = self.config.model_type in QWEN_FAMILY
        if self._family:
            self._tokenizer = transformers.AutoTokenizer.from_pretrained(folder, **kwargs)
            self._images = transformers.AutoImageProcessor.from_pretrained(folder, **kwargs)
        else:
            self._processor = transformers.AutoProcessor.from_pretrained(folder, **kwargs)
            self._tokenizer = self._processor.tokenizer
        torch_dtype = getattr(torch, dtype) if dtype else None
        self._net = transformers.AutoModelForImageTextToText.from_pretrained(folder, dtype=torch_dtype, **kwargs)
        self._net.to(device).eval()
        self._device = device
        eos = self._net.generation_config.eos_token_id
        self._eos = [eos] if isinstance(eos, int) else list(eos or [self._tokenizer.eos_token_id])
        self._lock = threading.Lock()

    def _inputs(self, messages: list[dict]) -> dict:
        images, chat = [], []
        for message in messages:
            content = message["content"]
            if isinstance(content, list):
                parts = []
                for part in content:
                    if part.get("type") == "image_url":
                        images.append(decode_image_part(part))
                        parts.append({"type": "image"})
                    else:
                        parts.append({"type": "text", "text": part.get("text", "")})
                content = parts
            chat.append({"role": message["role"], "content": content})
        text = self._tokenizer.apply_chat_template(chat, add_generation_prompt=True, tokenize=False)
        if not self._family:
            return dict(self._processor(text=[text], images=images or None, return_tensors="pt"))
        if not images:
            return dict(self._tokenizer([text], return_tensors="pt"))
        vision = self._images(images=images, return_tensors="pt")
        merge = getattr(self._images, "merge_size", 2) ** 2
        counts = (vision["image_grid_thw"].prod(-1) // merge).tolist()
        pieces = text.split(IMAGE_PAD)
        if len(pieces) != len(counts) + 1:
            raise LocalModelError(f"the chat template placed {len(pieces) - 1} image tokens for {len(counts)} images")
        text = pieces[0] + "".join(IMAGE_PAD * n + rest for n, rest in zip(counts, pieces[1:], strict=True))
        return {**self._tokenizer([text], return_tensors="pt"), **vision}

    def __call__(self, messages: list[dict], *, json_schema: dict | None = None, max_tokens: int = 512) -> str:
        import transformers

        inputs = {k: v.to(self._device) for k, v in self._inputs(messages).items()}
        prompt_len = inputs["input_ids"].shape[1]
        processors = transformers.LogitsProcessorList()
        if json_schema is not None:
            processors.append(SchemaConstraint(self._tokenizer, json_schema, prompt_len, self._eos))
        with self._lock, torch.inference_mode():
            out = self._net.generate(**inputs, max_new_tokens=max_tokens, do_sample=False, logits_processor=processors,
                                     eos_token_id=self._eos, pad_token_id=self._tokenizer.pad_token_id)
        return self._tokenizer.decode(out[0, prompt_len:], skip_special_tokens=True)
