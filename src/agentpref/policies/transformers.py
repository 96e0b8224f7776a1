"""Local models through transformers: batched sampling with n replies per prompt.

Every row (one prompt, one of its n replies) of a call is sampled in as few `generate`
calls as the memory budget allows: prompts are rendered with the model's chat template,
sorted by length to cut padding, padded on the left, and cut into chunks whose rows times
(prompt + new tokens) stay within `token_budget`. Generation stops when every row of a chunk
has hit an end-of-turn token.
"""

from __future__ import annotations

import gc
import hashlib
import inspect
import logging
from pathlib import Path
from typing import Any

from pydantic import Field

from agentpref.errors import ConfigError, MissingDependencyError
from agentpref.plugins import Options
from agentpref.policies.models import DEFAULT_NAME, resolve_model
from agentpref.precision import auto_precision
from agentpref.records import Completion, Message, SamplingParams, stable_hash

logger = logging.getLogger(__name__)

_DTYPES = ("auto", "float32", "bfloat16", "float16")


def _torch() -> Any:
    try:
        import torch
    except ImportError as exc:
        raise MissingDependencyError("torch", "hf") from exc
    return torch


def _check_adapter(adapter: str) -> Path:
    path = Path(adapter).expanduser()
    if not (path / "adapter_config.json").is_file():
        what = "does not exist" if not path.exists() else "has no adapter_config.json"
        raise ConfigError(
            f"LoRA adapter {adapter!r} {what}; give a folder saved by peft (save_pretrained)"
        )
    return path


class TransformersOptions(Options):
    """Options of the transformers backend (recipe `policy.options`)."""

    device: str = Field(default="auto", description="auto, cpu, cuda, cuda:1, ...")
    dtype: str = Field(
        default="auto",
        description="auto (bfloat16 where the device multiplies it natively, else float32), "
        "float32, bfloat16 or float16.",
    )
    batch_size: int = Field(default=64, ge=1, description="Most rows in one generate call.")
    token_budget: int | None = Field(default=None, ge=1, description="Rows x tokens per call.")
    merge_adapter: bool = True
    chat_template: str | None = None
    top_k: int = Field(default=0, ge=0)
    repetition_penalty: float = Field(default=1.0, gt=0.0)
    trust_remote_code: bool = False
    attn_implementation: str | None = None
    share_prefix: bool = True


class TransformersPolicy:
    """A local causal LM (folder, hub id, GGUF file or "default"), optionally with a LoRA adapter.

    Options:
        device: "auto" (cuda when available, else cpu), "cpu", "cuda", "cuda:1", ...
        dtype: "auto" (bfloat16 on a GPU, and on a CPU with AMX or AVX512-BF16; float32
            otherwise; see agentpref.precision), "float32", "bfloat16", "float16".
        batch_size: most rows (prompt x reply) in one `generate` call.
        token_budget: most rows x (longest prompt + max_new_tokens) tokens in one call; bounds
            the KV cache. Default: 32768 on cpu, 1048576 on cuda.
        merge_adapter: fold the LoRA weights into the base model (faster sampling).
        chat_template: a Jinja chat template (text or file) for models that ship none.
        top_k, repetition_penalty: extra sampling controls (off by default, so sampling is
            exactly temperature and top_p whatever the model's generation_config says).
        trust_remote_code, attn_implementation: passed to `from_pretrained`.
        share_prefix: run each prompt once for its n replies and copy its KV cache (same
            replies, less prompt compute).

    Sampling is seeded per row: each reply draws its tokens from its own generator, seeded by
    the caller's per-reply seed, so a reply does not depend on the rest of the batch.
    """

    Options = TransformersOptions

    def __init__(
        self,
        model: str = "default",
        adapter: str | None = None,
        device: str = "auto",
        dtype: str = "auto",
        batch_size: int = 64,
        token_budget: int | None = None,
        merge_adapter: bool = True,
        chat_template: str | None = None,
        top_k: int = 0,
        repetition_penalty: float = 1.0,
        trust_remote_code: bool = False,
        attn_implementation: str | None = None,
        share_prefix: bool = True,
        **options: Any,
    ) -> None:
        if options:
            known = "device, dtype, batch_size, token_budget, merge_adapter, chat_template, "
            known += "top_k, repetition_penalty, trust_remote_code, attn_implementation, "
            known += "share_prefix"
            raise ConfigError(
                f"unknown transformers policy option(s) {', '.join(sorted(options))}; "
                f"known: {known}"
            )
        if dtype not in _DTYPES:
            raise ConfigError(f"dtype {dtype!r} is not one of {', '.join(_DTYPES)}")
        if batch_size < 1:
            raise ConfigError(f"batch_size must be at least 1, got {batch_size}")
        torch = _torch()
        try:
            from transformers import AutoModelForCausalLM, AutoTokenizer
        except ImportError as exc:
            raise MissingDependencyError("transformers", "hf") from exc

        self.model_id = model
        self.adapter = adapter
        if adapter is not None:
            _check_adapter(adapter)
        self.model_path = resolve_model(model)
        base_name = DEFAULT_NAME if model == "default" else model
        self.name = base_name if adapter is None else f"{base_name}+{adapter}"

        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        self.device = torch.device(device)
        if dtype == "auto":
            dtype = auto_precision(self.device.type)
        self.dtype = getattr(torch, dtype)
        self.batch_size = batch_size
        self.token_budget = token_budget or (1 << 20 if self.device.type == "cuda" else 1 << 15)
        self.top_k = top_k
        self.repetition_penalty = repetition_penalty
        self.share_prefix = share_prefix

        load_kwargs: dict[str, Any] = {"dtype": self.dtype, "trust_remote_code": trust_remote_code}
        if attn_implementation:
            load_kwargs["attn_implementation"] = attn_implementation
        where = str(self.model_path)
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(
                where, trust_remote_code=trust_remote_code
            )
            self.model: Any = AutoModelForCausalLM.from_pretrained(where, **load_kwargs)
        except OSError as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ConfigError(
                f"cannot load model {model!r}: {first}; give an existing folder, a .gguf file, "
                "'default', or a hub id reachable from this machine"
            ) from None

        if chat_template:
            template_path = Path(chat_template).expanduser()
            is_file = len(chat_template) < 4096 and "{" not in chat_template
            if is_file and not template_path.is_file():
                raise ConfigError(f"chat_template file {chat_template!r} does not exist")
            self.tokenizer.chat_template = template_path.read_text() if is_file else chat_template
        if not self.tokenizer.chat_template:
            raise ConfigError(
                f"model {model!r} has no chat template; use an instruct model or set "
                "policy.options.chat_template to a Jinja template (text or file)"
            )
        self.tokenizer.padding_side = "left"
        if self.tokenizer.pad_token_id is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token

        if adapter is not None:
            self._load_adapter(adapter, merge_adapter)
        self.model.to(self.device)
        self.model.eval()
        self.eos_ids = self._eos_ids()
        logger.info(
            "loaded %s on %s (%s), batch_size=%d, token_budget=%d",
            self.name,
            self.device,
            dtype,
            self.batch_size,
            self.token_budget,
        )

    def _load_adapter(self, adapter: str, merge: bool) -> None:
        path = _check_adapter(adapter)
        try:
            from peft import PeftModel
        except ImportError as exc:
            raise MissingDependencyError("peft", "train") from exc
        peft_model = PeftModel.from_pretrained(self.model, str(path))
        self.model = peft_model.merge_and_unload() if merge else peft_model

    def _eos_ids(self) -> list[int]:
        ids: list[int] = []
        configured = getattr(self.model.generation_config, "eos_token_id", None)
        for value in configured if isinstance(configured, list) else [configured]:
            if value is not None:
                ids.append(int(value))
        if self.tokenizer.eos_token_id is not None:
            ids.append(int(self.tokenizer.eos_token_id))
        return sorted(set(ids))

    def render(self, conversation: list[Message]) -> str:
        """The prompt text the model sees for a conversation (chat template, generation cue)."""
        rendered = self.tokenizer.apply_chat_template(
            [{"role": m.role, "content": m.content} for m in conversation],
            add_generation_prompt=True,
            tokenize=False,
        )
        return str(rendered)

    def generate(
        self,
        conversations: list[list[Message]],
        sampling: SamplingParams,
        seeds: list[list[int]] | None = None,
    ) -> list[list[Completion]]:
        """`sampling.n` replies for each conversation; reply j of conversation i is sampled
        with seed `seeds[i][j]` (default: derived from `sampling.seed`, i and j)."""
        if not conversations:
            return []
        greedy = sampling.temperature == 0.0
        per_prompt = 1 if greedy else sampling.n  # greedy replies are all the same
        if seeds is None:
            seeds = [
                [
                    int(stable_hash(sampling.seed, i, j, length=12), 16) % (2**31 - 1)
                    for j in range(sampling.n)
                ]
                for i in range(len(conversations))
            ]
        if len(seeds) != len(conversations) or any(len(g) < per_prompt for g in seeds):
            raise ValueError("seeds must hold one list of n seeds per conversation")
        prompts = [
            self.tokenizer(self.render(c), add_special_tokens=False)["input_ids"]
            for c in conversations
        ]
        rows = [(i, j) for i in range(len(prompts)) for j in range(per_prompt)]
        rows.sort(key=lambda r: (len(prompts[r[0]]), r[0], r[1]))
        results: dict[tuple[int, int], Completion] = {}
        for chunk in self._chunks(rows, prompts, sampling.max_new_tokens):
            texts = self._generate_chunk(
                [prompts[i] for i, _ in chunk],
                [i for i, _ in chunk],
                sampling,
                greedy,
                [seeds[i][j] for i, j in chunk],
            )
            results.update(zip(chunk, texts, strict=True))
        return [
            [results[(i, 0 if greedy else j)] for j in range(sampling.n)]
            for i in range(len(conversations))
        ]

    def _chunks(
        self, rows: list[tuple[int, int]], prompts: list[list[int]], max_new: int
    ) -> list[list[tuple[int, int]]]:
        """Cut length-sorted rows into chunks within batch_size and token_budget."""
        chunks: list[list[tuple[int, int]]] = []
        current: list[tuple[int, int]] = []
        for row in rows:
            width = len(prompts[row[0]]) + max_new  # rows are sorted: this one is the longest
            if current and (
                len(current) >= self.batch_size or (len(current) + 1) * width > self.token_budget
            ):
                chunks.append(current)
                current = []
            current.append(row)
        if current:
            chunks.append(current)
        return chunks

    def _generate_chunk(
        self,
        ids: list[list[int]],
        owners: list[int],
        sampling: SamplingParams,
        greedy: bool,
        seeds: list[int],
    ) -> list[Completion]:
        """Sample one reply per row; `owners[r]` is the prompt row r belongs to."""
        torch = _torch()
        pad = int(self.tokenizer.pad_token_id)
        width = max(len(x) for x in ids)
        input_ids = torch.full((len(ids), width), pad, dtype=torch.long)
        attention = torch.zeros((len(ids), width), dtype=torch.long)
        for r, row in enumerate(ids):
            input_ids[r, width - len(row) :] = torch.tensor(row, dtype=torch.long)
            attention[r, width - len(row) :] = 1
        kwargs: dict[str, Any] = {
            "max_new_tokens": sampling.max_new_tokens,
            "pad_token_id": pad,
            "eos_token_id": self.eos_ids,
            "use_cache": True,
            "repetition_penalty": self.repetition_penalty,
        }
        # Sampling is done by our own processor (one generator per row); `generate` itself
        # then only takes the one token left, greedily.
        kwargs.update(do_sample=False, temperature=None, top_p=None, top_k=None)
        if not greedy:
            from transformers import LogitsProcessorList

            sampler = _RowSampler(
                seeds, sampling.temperature, sampling.top_p, self.top_k, self.device
            )
            kwargs["logits_processor"] = LogitsProcessorList([sampler])
        input_ids = input_ids.to(self.device)
        attention = attention.to(self.device)
        with torch.inference_mode():
            if self.share_prefix and len(set(owners)) < len(owners):
                cache = self._shared_prefill(input_ids, attention, owners)
                if cache is not None:
                    kwargs[self._cache_kwarg] = cache
            out = self.model.generate(input_ids=input_ids, attention_mask=attention, **kwargs)
        new = out[:, width:].tolist()
        completions = []
        eos = set(self.eos_ids)
        for row in new:
            stop = next((k for k, tok in enumerate(row) if tok in eos), None)
            kept = row if stop is None else row[:stop]
            text = str(self.tokenizer.decode(kept, skip_special_tokens=True))
            completions.append(
                Completion(
                    text=text,
                    tokens=len(row) if stop is None else stop + 1,
                    finish_reason="stop" if stop is not None else "length",
                )
            )
        return completions

    def _shared_prefill(self, input_ids: Any, attention: Any, owners: list[int]) -> Any:
        """KV cache of every row's prompt, computed once per distinct prompt of the chunk.

        The n rows of a prompt are identical (same padding too), so the prompt is run once and
        its cache rows are repeated; `generate` then only feeds each row's last prompt token.
        Returns None (and stops trying) when this transformers version does not support it.
        """
        torch = _torch()
        firsts: dict[int, int] = {}
        for r, owner in enumerate(owners):
            firsts.setdefault(owner, r)
        unique = torch.tensor(list(firsts.values()), device=input_ids.device)
        expand = torch.tensor([list(firsts).index(o) for o in owners], device=input_ids.device)
        ids, mask = input_ids[unique, :-1], attention[unique, :-1]
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        try:
            from transformers import DynamicCache

            cache = DynamicCache(config=self.model.config)
            self.model(
                input_ids=ids,
                attention_mask=mask,
                position_ids=positions,
                use_cache=True,
                **{self._cache_kwarg: cache},
            )
            cache.batch_select_indices(expand)
        except (TypeError, ValueError, AttributeError, NotImplementedError) as exc:
            logger.warning("prompt prefix sharing is off for this model (%s)", exc)
            self.share_prefix = False
            return None
        return cache

    @property
    def _cache_kwarg(self) -> str:
        """transformers 5 calls the KV cache argument `cache`; earlier versions past_key_values."""
        model = self.model.get_base_model() if hasattr(self.model, "get_base_model") else self.model
        forward = getattr(model, "forward", None)
        try:
            params = inspect.signature(forward).parameters if forward else {}
        except (TypeError, ValueError):
            params = {}
        return "cache" if "cache" in params else "past_key_values"

    def template_hash(self) -> str:
        """First 16 hex digits of the sha256 of the chat template."""
        template = self.tokenizer.chat_template or ""
        if isinstance(template, dict):  # several named templates
            template = "\n".join(f"{k}\n{v}" for k, v in sorted(template.items()))
        return hashlib.sha256(str(template).encode()).hexdigest()[:16]

    def close(self) -> None:
        """Free the model's memory."""
        torch = _torch()
        self.model = None
        gc.collect()
        if self.device.type == "cuda":
            torch.cuda.empty_cache()


class _RowSampler:
    """A logits processor that samples each row with its own generator.

    Temperature, top-k and top-p are applied to the row's scores, one token is drawn with the
    row's generator, and every other token is masked, so greedy decoding keeps exactly the
    drawn token. Each row's draws depend only on its seed and its own scores.

    The nucleus is looked for among the row's `candidates` most likely tokens (a partial
    top-k, not a sort of the whole vocabulary: Qwen's has 151,936 entries, and sorting and
    scattering it for every row and step cost as much as the model's forward pass on CPU). A
    row whose nucleus does not end within them is sorted in full, so the kept set is the
    same either way; only the draw is made over the kept tokens alone.
    """

    candidates = 1024

    def __init__(
        self, seeds: list[int], temperature: float, top_p: float, top_k: int, device: Any
    ) -> None:
        torch = _torch()
        gen_device = device if getattr(device, "type", "cpu") == "cuda" else "cpu"
        self.generators = [torch.Generator(device=gen_device).manual_seed(s) for s in seeds]
        self.temperature = temperature
        self.top_p = top_p
        self.top_k = top_k

    def __call__(self, input_ids: Any, scores: Any) -> Any:
        torch = _torch()
        logits = scores.float() / self.temperature
        vocab = logits.shape[-1]
        probs = logits.softmax(dim=-1)
        if self.top_k and self.top_k < vocab:  # top-k, renormalised over the k kept
            top, index = torch.topk(probs, self.top_k, dim=-1)
            top = top / top.sum(dim=-1, keepdim=True)
            partial = False
        elif self.top_p < 1.0:  # most likely first; a top-k of the whole vocabulary sorts it
            top, index = torch.topk(probs, min(self.candidates, vocab), dim=-1)
            partial = top.shape[-1] < vocab
        else:  # the whole vocabulary, in its own order
            top, index, partial = probs, None, False
        out = torch.full_like(scores, float("-inf"))
        for r, gen in enumerate(self.generators):
            p, i = top[r], None if index is None else index[r]
            if i is not None:  # top-k or top-p: the kept tokens, most likely first
                if partial and float(p.sum()) <= self.top_p:
                    # the nucleus reaches past the candidates: this row's full sort
                    p, i = torch.sort(probs[r], descending=True)
                if self.top_p < 1.0:
                    cum = p.cumsum(dim=-1)
                    keep = int((cum - p <= self.top_p).sum())  # the first token past p stays
                    p, i = p[:keep], i[:keep]
            if p.device != gen.device:
                p = p.to(gen.device)
            pick = torch.multinomial(p, 1, generator=gen).to(scores.device)
            out[r, pick if i is None else i[pick]] = 0.0
        return out
