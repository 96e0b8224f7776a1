"""Preference training with TRL and a LoRA adapter: DPO, IPO, any TRL DPO loss, and KTO.

Defaults follow the survey: sigmoid DPO loss, beta 0.1, LoRA rank 32, one epoch.
Continuations that hold several turns train on assistant tokens only: TRL tokenises each row
as usual, and a per-token assistant mask (see masks.py) zeroes TRL's completion mask on the
environment's observations. Single-turn rows get a mask of all ones, i.e. plain TRL.

Rows longer than `max_length` are shortened first so that their opening and the turns where
chosen and rejected differ survive TRL's cut (see shorten.py); rows that still carry no
differing assistant token are dropped, and a batch without one stops training.

Training refuses rows sampled under a different chat template than the tokenizer's (the
template hash is on every exported row): the model would be taught on renderings it never
produced. Rows marked "scripted" or with no hash are exempt (see masks.EXEMPT_TEMPLATE_HASHES).
"""

from __future__ import annotations

import json
import logging
import time
from collections import Counter
from functools import cache
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from agentpref.errors import ConfigError, DataError, MissingDependencyError
from agentpref.precision import Precision, auto_precision
from agentpref.train.masks import (
    EXEMPT_TEMPLATE_HASHES,
    AssistantMaskCollator,
    chat_template_hash,
    completion_assistant_mask,
    row_has_signal,
)
from agentpref.train.shorten import LengthReport, fit_examples

log = logging.getLogger(__name__)

#: Loss types TRL 1.16's DPOTrainer accepts (DPOConfig.loss_type).
DPO_LOSSES = frozenset(
    {
        "sigmoid",
        "hinge",
        "ipo",
        "exo_pair",
        "nca_pair",
        "robust",
        "bco_pair",
        "sppo_hard",
        "aot",
        "aot_unpaired",
        "apo_zero",
        "apo_down",
        "discopop",
        "sft",
        "sigmoid_norm",
    }
)
#: Loss types TRL's KTOTrainer accepts (unpaired rows: prompt, completion, label).
KTO_LOSSES = frozenset({"kto", "apo_zero_unpaired"})
ALIASES = {"dpo": "sigmoid"}


class TrainConfig(BaseModel):
    """Training options (recipe section `train`, or `--set train.<key>=<value>`)."""

    model_config = ConfigDict(extra="forbid")

    loss: str = Field(
        default="dpo",
        description="dpo (sigmoid), ipo, kto, or any TRL DPO loss_type (hinge, robust, ...).",
    )
    beta: float = Field(default=0.1, gt=0.0, description="DPO beta (IPO's tau, KTO's beta).")
    lora_rank: int = Field(default=32, ge=1)
    lora_alpha: int = Field(default=64, ge=1)
    lora_dropout: float = Field(default=0.05, ge=0.0, lt=1.0)
    target_modules: list[str] | str = Field(
        default="all-linear", description="LoRA target modules, or 'all-linear'."
    )
    epochs: float = Field(default=1.0, gt=0.0)
    max_steps: int = Field(default=-1, description="Stop after this many steps (-1: epochs).")
    lr: float = Field(default=5e-5, gt=0.0, description="Learning rate.")
    scheduler: str = Field(default="linear", description="transformers lr scheduler name.")
    warmup_ratio: float = Field(default=0.0, ge=0.0, lt=1.0)
    batch_size: int = Field(default=4, ge=1, description="Rows per device step.")
    grad_accum: int = Field(default=1, ge=1)
    max_length: int = Field(default=1024, ge=8, description="Tokens of prompt + completion.")
    truncation: Literal["keep_start", "keep_end"] = Field(
        default="keep_start", description="TRL's cut of what is still too long after shortening."
    )
    long_rows: Literal["shorten", "refuse"] = Field(
        default="shorten",
        description="shorten: drop old history turns so the opening and the differing turns "
        "fit max_length; refuse: stop on any row longer than max_length.",
    )
    seed: int = 0
    device: str = Field(default="auto", description="auto, cpu or cuda.")
    dtype: Literal["auto", "float32", "bfloat16"] = Field(
        default="auto",
        description="Weights and compute: auto is bfloat16 on a GPU that supports it and on a "
        "CPU with AMX or AVX512-BF16 (about twice as fast there), else float32.",
    )
    gradient_checkpointing: bool = False
    desirable_weight: float = Field(default=1.0, gt=0.0, description="KTO only.")
    undesirable_weight: float = Field(default=1.0, gt=0.0, description="KTO only.")
    loss_probe: int = Field(
        default=32, ge=0, description="Rows to measure the loss on before and after (0: off)."
    )
    chat_template: str | None = Field(
        default=None, description="Chat template file to use instead of the tokenizer's."
    )
    trl: dict[str, Any] = Field(
        default_factory=dict, description="Extra DPOConfig/KTOConfig arguments, passed as is."
    )

    @field_validator("loss")
    @classmethod
    def _known_loss(cls, value: str) -> str:
        name = value.strip().lower()
        if name not in ALIASES and name not in DPO_LOSSES and name not in KTO_LOSSES:
            known = ", ".join(sorted({*ALIASES, *DPO_LOSSES, *KTO_LOSSES}))
            raise ValueError(f"unknown loss {value!r}; known: {known}")
        return name

    @property
    def is_kto(self) -> bool:
        return self.loss in KTO_LOSSES

    @property
    def trl_loss(self) -> str:
        return ALIASES.get(self.loss, self.loss)


class TrainResult(BaseModel):
    """What a training run produced; also written to `<out_dir>/train_result.json`."""

    model_config = ConfigDict(extra="forbid")

    adapter_path: str = Field(description="Folder holding the LoRA adapter (and tokenizer).")
    base_model: str = Field(description="The resolved base model the adapter applies to.")
    loss: str
    round: int = 0
    rows: int = Field(description="Training rows after TRL dropped fully truncated ones.")
    multi_turn_rows: int = Field(description="Rows whose continuation holds several turns.")
    masked_tokens: int = Field(description="Completion tokens kept out of the loss.")
    steps: int
    losses: list[float] = Field(description="Training loss at every optimizer step.")
    loss_before: float | None = Field(default=None, description="Probe loss before training.")
    loss_after: float | None = Field(default=None, description="Probe loss after training.")
    template_hash: str
    unchecked_rows: int = Field(description="Rows exempt from the template check.")
    length: dict[str, Any] = Field(
        default_factory=dict,
        description="How rows were fitted into max_length: shortened, how, dropped (shorten.py).",
    )
    seconds: float
    device: str
    dtype: str = Field(default="float32", description="Float type the weights were trained in.")
    metrics: dict[str, float] = Field(default_factory=dict)
    config: dict[str, Any] = Field(default_factory=dict)


# -- data ----------------------------------------------------------------------------------


def find_data(path: str | Path, loss: str = "dpo") -> Path:
    """A run folder or an export file -> the JSONL/Parquet file to train on."""
    p = Path(path)
    if p.is_file():
        return p
    if p.is_dir():
        kto = TrainConfig(loss=loss).is_kto
        names = (
            ["kto.jsonl", "kto.parquet", "dpo.jsonl", "dpo.parquet"]
            if kto
            else [
                "dpo.jsonl",
                "dpo.parquet",
            ]
        )
        for folder in (p / "export", p):
            for name in names:
                if (folder / name).is_file():
                    return folder / name
        raise DataError(
            f"{p} holds no {' or '.join(names[:1] + names[2:3])} export; "
            f"run `agentpref export {p}` first or pass the file"
        )
    raise DataError(f"training data {str(p)!r} does not exist; pass a run folder or a .jsonl file")


def load_rows(path: Path) -> list[dict[str, Any]]:
    """Rows of a JSONL or Parquet export."""
    if path.suffix == ".parquet":
        try:
            import pyarrow.parquet as pq
        except ImportError as exc:
            raise MissingDependencyError("pyarrow", "export") from exc
        return list(pq.read_table(path).to_pylist())
    rows = []
    with path.open(encoding="utf-8") as f:
        for n, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                raise DataError(f"{path.name} line {n} is not valid JSON; re-export it") from None
            if not isinstance(row, dict):
                raise DataError(f"{path.name} line {n} is not a JSON object; re-export it")
            rows.append(row)
    return rows


def _messages(value: Any, where: str) -> list[dict[str, str]]:
    if not isinstance(value, list) or not value:
        raise DataError(f"{where} must be a non-empty list of {{role, content}} messages")
    out = []
    for m in value:
        if not isinstance(m, dict) or "role" not in m or "content" not in m:
            raise DataError(f"{where} holds a message without role and content")
        out.append({"role": str(m["role"]), "content": str(m["content"] or "")})
    return out


def to_examples(rows: list[dict[str, Any]], kto: bool, name: str) -> list[dict[str, Any]]:
    """Rows -> the columns TRL reads (conversational prompt/chosen/rejected or completion/label)."""
    if not rows:
        raise DataError(f"{name} has no rows; nothing to train on")
    paired = "chosen" in rows[0] and "rejected" in rows[0]
    if not kto and not paired:
        raise DataError(
            f"{name} holds unpaired rows (prompt, completion, label); DPO needs chosen and "
            "rejected: use --loss kto or train on the dpo.jsonl export"
        )
    examples: list[dict[str, Any]] = []
    for i, row in enumerate(rows, start=1):
        where = f"{name} row {i}"
        prompt = _messages(row.get("prompt"), f"{where} prompt")
        if paired:
            sides = {s: _messages(row.get(s), f"{where} {s}") for s in ("chosen", "rejected")}
            for side, msgs in sides.items():
                if not any(m["role"] == "assistant" for m in msgs):
                    raise DataError(f"{where} {side} has no assistant message to train on")
            if kto:  # unpair here, so each side keeps its own assistant mask
                examples.append({"prompt": prompt, "completion": sides["chosen"], "label": True})
                examples.append({"prompt": prompt, "completion": sides["rejected"], "label": False})
            else:
                examples.append({"prompt": prompt, **sides})
        else:
            completion = _messages(row.get("completion"), f"{where} completion")
            if "label" not in row:
                raise DataError(f"{where} has no label; KTO rows need label true/false")
            label = bool(row["label"])
            examples.append({"prompt": prompt, "completion": completion, "label": label})
    return examples


def example_labels(rows: list[dict[str, Any]], kto: bool, name: str) -> list[str]:
    """A name for each example `to_examples` makes, for messages ("dpo.jsonl row 3 (p7)")."""
    paired = bool(rows) and "chosen" in rows[0] and "rejected" in rows[0]
    out = []
    for i, row in enumerate(rows, start=1):
        label = f"{name} row {i}" + (f" ({row['id']})" if row.get("id") else "")
        out.extend([f"{label} chosen", f"{label} rejected"] if paired and kto else [label])
    return out


def check_template(rows: list[dict[str, Any]], tokenizer_hash: str, model: str, name: str) -> int:
    """Raise ConfigError when rows were sampled under another chat template; count exempt rows."""
    hashes = Counter(str(row.get("template_hash") or "") for row in rows)
    exempt = EXEMPT_TEMPLATE_HASHES
    bad = {h: n for h, n in hashes.items() if h not in exempt and h != tokenizer_hash}
    if bad:
        h, n = max(bad.items(), key=lambda kv: kv[1])
        raise ConfigError(
            f"{sum(bad.values())} of {len(rows)} rows in {name} were sampled with chat template "
            f"{h!r} but {model}'s tokenizer has {tokenizer_hash!r}; train the model that sampled "
            "them (--model), set train.chat_template to the template used, or sample again"
        )
    return sum(n for h, n in hashes.items() if h in EXEMPT_TEMPLATE_HASHES)


# -- trainers ------------------------------------------------------------------------------


def _add_dpo_masks(example: dict[str, Any], tokenizer: Any) -> dict[str, Any]:
    p = len(example["prompt_ids"])
    out = {}
    for side in ("chosen", "rejected"):
        try:
            out[f"{side}_assistant_mask"] = completion_assistant_mask(
                tokenizer, example["prompt"], example[side], p, example[f"{side}_ids"]
            )
        except ValueError as exc:
            raise DataError(f"cannot build the assistant mask: {exc}") from None
    return out


def _add_kto_mask(example: dict[str, Any], tokenizer: Any) -> dict[str, Any]:
    try:
        mask = completion_assistant_mask(
            tokenizer,
            example["prompt"],
            example["completion"],
            len(example["prompt_ids"]),
            example["completion_ids"],
        )
    except ValueError as exc:
        raise DataError(f"cannot build the assistant mask: {exc}") from None
    return {"completion_assistant_mask": mask}


def _rotate_kl_masks(batch: dict[str, list[Any]]) -> dict[str, list[Any]]:
    # Mirrors TRL's KL rotation of completion_ids within each train batch.
    masks = batch["completion_assistant_mask"]
    return {"KL_completion_assistant_mask": [masks[-1]] + masks[:-1]}


@cache
def masked_trainer_classes() -> tuple[type, type]:
    """DPOTrainer and KTOTrainer subclasses that carry assistant masks (imports TRL)."""
    try:
        from trl import DPOTrainer, KTOTrainer
    except ImportError as exc:
        raise MissingDependencyError("trl", "train") from exc

    class MaskedDPOTrainer(DPOTrainer):  # type: ignore[misc]
        """TRL's DPOTrainer; the loss covers assistant tokens of chosen/rejected only."""

        def _prepare_dataset(self, dataset, processing_class, args, dataset_name):  # type: ignore[no-untyped-def]
            dataset = super()._prepare_dataset(dataset, processing_class, args, dataset_name)
            if "chosen_assistant_mask" in dataset.column_names:
                return dataset
            return dataset.map(
                _add_dpo_masks,
                fn_kwargs={"tokenizer": processing_class},
                desc=f"Assistant masks for {dataset_name}",
            )

        def _set_signature_columns_if_needed(self) -> None:
            super()._set_signature_columns_if_needed()
            extra = ["chosen_assistant_mask", "rejected_assistant_mask"]
            self._signature_columns = list(self._signature_columns or []) + extra  # type: ignore[assignment]

    class MaskedKTOTrainer(KTOTrainer):  # type: ignore[misc]
        """TRL's KTOTrainer; the loss (and KL estimate) covers assistant tokens only."""

        def _prepare_dataset(self, dataset, processing_class, args, dataset_name):  # type: ignore[no-untyped-def]
            dataset = super()._prepare_dataset(dataset, processing_class, args, dataset_name)
            if "completion_assistant_mask" in dataset.column_names:
                return dataset
            dataset = dataset.map(
                _add_kto_mask,
                fn_kwargs={"tokenizer": processing_class},
                desc=f"Assistant masks for {dataset_name}",
            )
            if "KL_completion_ids" in dataset.column_names:
                dataset = dataset.map(
                    _rotate_kl_masks, batched=True, batch_size=args.per_device_train_batch_size
                )
            return dataset

        def _set_signature_columns_if_needed(self) -> None:
            super()._set_signature_columns_if_needed()
            extra = ["completion_assistant_mask", "KL_completion_assistant_mask"]
            self._signature_columns = list(self._signature_columns or []) + extra  # type: ignore[assignment]

    return MaskedDPOTrainer, MaskedKTOTrainer


# -- the run -------------------------------------------------------------------------------


def _resolve_device(device: str) -> str:
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device not in ("cpu", "cuda"):
        raise ConfigError(
            f"train.device {device!r} is not auto, cpu or cuda "
            "(pick a GPU with CUDA_VISIBLE_DEVICES)"
        )
    if device == "cuda" and not torch.cuda.is_available():
        raise ConfigError("train.device is cuda but no CUDA device is visible; use cpu")
    return device


def train_dtype(config: TrainConfig, device: str) -> Precision:
    """The float type training uses on `device` (`train.dtype`, "auto" resolved)."""
    return auto_precision(device) if config.dtype == "auto" else config.dtype


def load_tokenizer(model_path: str | Path, chat_template: str | None = None) -> Any:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(model_path))
    if chat_template:
        p = Path(chat_template)
        if not p.is_file():
            raise ConfigError(f"train.chat_template {chat_template!r} is not a file")
        tokenizer.chat_template = p.read_text(encoding="utf-8")
    if not tokenizer.chat_template:
        raise ConfigError(
            f"{model_path} has no chat template; conversational rows need one "
            "(set train.chat_template to a template file)"
        )
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def build_trainer(
    config: TrainConfig,
    examples: list[dict[str, Any]],
    model_path: str | Path,
    tokenizer: Any,
    out_dir: Path,
    device: str = "cpu",
    init_adapter: str | Path | None = None,
) -> Any:
    """A TRL trainer (masked DPO or KTO) with a LoRA adapter, ready to `train()`.

    Its `train_dataset` holds TRL's tokenised columns plus `<side>_assistant_mask`, and its
    collator applies those masks; `eval_dataset` is the loss probe (or None).
    """
    import torch
    from datasets import Dataset
    from peft import LoraConfig, PeftModel
    from transformers import AutoModelForCausalLM
    from trl import DPOConfig, KTOConfig

    on_gpu = device.startswith("cuda")
    bf16 = train_dtype(config, device) == "bfloat16"
    common: dict[str, Any] = dict(
        output_dir=str(out_dir / "trainer"),
        per_device_train_batch_size=config.batch_size,
        per_device_eval_batch_size=config.batch_size,
        gradient_accumulation_steps=config.grad_accum,
        num_train_epochs=config.epochs,
        max_steps=config.max_steps,
        learning_rate=config.lr,
        lr_scheduler_type=config.scheduler,
        warmup_steps=config.warmup_ratio,
        seed=config.seed,
        data_seed=config.seed,
        max_length=config.max_length,
        beta=config.beta,
        logging_steps=1,
        save_strategy="no",
        eval_strategy="no",
        report_to=[],
        use_cpu=not on_gpu,
        bf16=bf16,
        # TRL defaults to checkpointing (and bf16); on a small model it only costs time.
        activation_checkpointing=config.gradient_checkpointing,
    )
    dpo_cls, kto_cls = masked_trainer_classes()
    config_cls: Any
    if config.is_kto:
        config_cls, trainer_cls = KTOConfig, kto_cls
        common.update(
            loss_type=config.trl_loss,
            desirable_weight=config.desirable_weight,
            undesirable_weight=config.undesirable_weight,
        )
    else:
        config_cls, trainer_cls = DPOConfig, dpo_cls
        common.update(loss_type=[config.trl_loss], truncation_mode=config.truncation)
    try:
        args = config_cls(**{**common, **config.trl})  # train.trl overrides on purpose
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"train.trl: {exc}; see TRL's {config_cls.__name__}") from None

    torch.manual_seed(config.seed)
    model: Any = AutoModelForCausalLM.from_pretrained(
        str(model_path), dtype=torch.bfloat16 if bf16 else torch.float32
    )
    peft_config = None
    if init_adapter is not None:
        model = PeftModel.from_pretrained(model, str(init_adapter), is_trainable=True)
    else:
        peft_config = LoraConfig(
            r=config.lora_rank,
            lora_alpha=config.lora_alpha,
            lora_dropout=config.lora_dropout,
            target_modules=config.target_modules,
            task_type="CAUSAL_LM",
        )

    dataset = Dataset.from_list(examples)
    probe = None
    if config.loss_probe:
        n = min(config.loss_probe, len(dataset))
        if config.is_kto:
            n = max(2, n - n % 2) if len(dataset) >= 2 else n
        probe = dataset.select(range(n))
    trainer = trainer_cls(
        model=model,
        args=args,
        train_dataset=dataset,
        eval_dataset=probe,
        processing_class=tokenizer,
        peft_config=peft_config,
    )
    trainer.data_collator = AssistantMaskCollator(
        trainer.data_collator, config.max_length, config.truncation
    )
    return trainer


def drop_rows_without_signal(
    trainer: Any, config: TrainConfig, labels: list[str], report: LengthReport
) -> None:
    """Drop prepared rows that train on nothing within max_length (see row_has_signal)."""
    dataset = trainer.train_dataset
    keep = [row_has_signal(ex, config.max_length, config.truncation) for ex in dataset]
    if all(keep):
        return
    aligned = len(labels) == len(keep)  # TRL dropped nothing, so labels still line up
    report.no_signal = [
        labels[i] if aligned else f"prepared row {i + 1}" for i, k in enumerate(keep) if not k
    ]
    if not any(keep):
        raise DataError(
            f"no row has differing assistant tokens between chosen and rejected within "
            f"train.max_length={config.max_length} ({', '.join(report.no_signal[:3])}, ...); "
            "the loss would stay constant: raise train.max_length or check the export"
        )
    log.warning(
        "%d of %d rows have no differing assistant tokens within max_length=%d (%s); dropped them",
        len(report.no_signal),
        len(keep),
        config.max_length,
        ", ".join(report.no_signal[:3]),
    )
    trainer.train_dataset = dataset.select([i for i, k in enumerate(keep) if k])
    probe = trainer.eval_dataset
    if probe is not None:
        ok = [row_has_signal(ex, config.max_length, config.truncation) for ex in probe]
        kept = [i for i, k in enumerate(ok) if k]
        trainer.eval_dataset = probe.select(kept) if kept else None


def train(
    config: TrainConfig,
    data: Path,
    base_model: str,
    out_dir: Path,
    round: int = 0,
    init_adapter: str | Path | None = None,
) -> TrainResult:
    """Train a LoRA adapter on an export and save it to `out_dir/adapter`.

    `data` is a run folder or an export file (dpo.jsonl, kto.jsonl, .parquet). With
    `init_adapter`, training continues that adapter (iterative rounds), and the reference
    model is a frozen copy of it; otherwise a fresh adapter is trained against the base model.
    """
    try:
        import peft  # noqa: F401
        import trl  # noqa: F401
    except ImportError as exc:
        raise MissingDependencyError(exc.name or "trl", "train") from exc
    from agentpref.policies.models import resolve_model

    started = time.monotonic()
    out_dir = Path(out_dir)
    path = find_data(data, config.loss)
    rows = load_rows(path)
    examples = to_examples(rows, config.is_kto, path.name)
    labels = example_labels(rows, config.is_kto, path.name)
    if config.is_kto and config.batch_size < 2 and config.loss == "kto":
        raise ConfigError("KTO needs train.batch_size >= 2 (its KL estimate mixes rows of a batch)")

    model_path = resolve_model(base_model)
    tokenizer = load_tokenizer(model_path, config.chat_template)
    tok_hash = chat_template_hash(tokenizer)
    unchecked = check_template(rows, tok_hash, base_model, path.name)
    if unchecked:
        log.info(
            "%d of %d rows carry no template hash to check (scripted or unknown)",
            unchecked,
            len(rows),
        )

    examples, labels, length = fit_examples(
        examples, tokenizer, config.max_length, labels, refuse=config.long_rows == "refuse"
    )
    if length.shortened or length.dropped:
        log.info("%s", length.summary())

    device = _resolve_device(config.device)
    trainer = build_trainer(config, examples, model_path, tokenizer, out_dir, device, init_adapter)
    probe = trainer.eval_dataset
    prepared = trainer.train_dataset
    if len(prepared) == 0:
        raise DataError(
            f"every row of {path.name} has a prompt longer than train.max_length="
            f"{config.max_length}; raise it"
        )
    drop_rows_without_signal(trainer, config, labels, length)
    prepared, probe = trainer.train_dataset, trainer.eval_dataset
    if length.no_signal:
        log.info("%s", length.summary())
    multi, masked = _mask_stats(prepared, config.is_kto)

    loss_before = _probe(trainer) if probe is not None else None
    trainer.train()
    loss_after = _probe(trainer) if probe is not None else None
    history = [h for h in trainer.state.log_history if "loss" in h and "eval_loss" not in h]
    losses = [float(h["loss"]) for h in history]
    metrics = {
        k: float(v)
        for h in trainer.state.log_history
        for k, v in h.items()
        if isinstance(v, (int, float)) and k not in ("step", "epoch") and not k.startswith("eval")
    }

    adapter_dir = out_dir / "adapter"
    unwrapped = trainer.accelerator.unwrap_model(trainer.model)
    unwrapped.save_pretrained(str(adapter_dir), selected_adapters=["default"])
    tokenizer.save_pretrained(str(adapter_dir))
    result = TrainResult(
        adapter_path=str(adapter_dir),
        base_model=str(model_path),
        loss=config.loss,
        round=round,
        rows=len(prepared),
        multi_turn_rows=multi,
        masked_tokens=masked,
        steps=int(trainer.state.global_step),
        losses=losses,
        loss_before=loss_before,
        loss_after=loss_after,
        template_hash=tok_hash,
        unchecked_rows=unchecked,
        length=length.to_dict(),
        seconds=round_seconds(time.monotonic() - started),
        device=device,
        dtype=train_dtype(config, device),
        metrics=metrics,
        config=config.model_dump(mode="json"),
    )
    (out_dir / "train_result.json").write_text(result.model_dump_json(indent=2) + "\n")
    log.info(
        "trained %s on %d rows for %d steps: probe loss %s -> %s; adapter in %s",
        config.loss,
        result.rows,
        result.steps,
        loss_before,
        loss_after,
        adapter_dir,
    )
    return result


def round_seconds(seconds: float) -> float:
    return float(f"{seconds:.2f}")


def _probe(trainer: Any) -> float:
    return float(trainer.evaluate()["eval_loss"])


def _mask_stats(dataset: Any, kto: bool) -> tuple[int, int]:
    """(rows with several turns in a continuation, completion tokens kept out of the loss)."""
    multi = masked = 0
    sides = ["completion"] if kto else ["chosen", "rejected"]
    for ex in dataset:
        if any(len(ex[s]) > 1 for s in sides):
            multi += 1
        for s in sides:
            mask = ex[f"{s}_assistant_mask"]
            masked += len(mask) - sum(mask)
    return multi, masked
