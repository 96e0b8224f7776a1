"""The policy model on a managed vLLM server: started from its own venv, shared, stopped at exit.

`agentpref engine install vllm` creates the engine's venv; this backend starts vLLM's
OpenAI-compatible server for the policy model there (once per process and configuration),
waits for /health, and samples through the `openai` backend: the n replies of a prompt go in
one request (prefix caching shares the prompt) or, with per-reply seeds, one request each.
A LoRA adapter is loaded into the running server (`/v1/load_lora_adapter`) and asked for by
name, so the rounds of `iterate` reuse one server. Without the engine installed the backend
falls back to `transformers` with one warning line.

Reproducibility: replies are seeded per request. On CPU that needs chunked prefill off (the
CPU engine crashes on a seeded request whose prompt is prefilled in chunks). The same seed and
the same batch give the same reply; a different batch (a resumed run's) can change the
numerics and so the reply in bfloat16, vLLM's CPU and GPU default. In float32
(`dtype="float32"`, about half the speed on CPU) a seeded reply came out the same alone and in
a batch of 24 requests. On a GPU, `env={"VLLM_BATCH_INVARIANT": "1"}` asks vLLM for
batch-invariant kernels.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path
from typing import Any

from agentpref.errors import BackendError, ConfigError
from agentpref.policies import engine
from agentpref.policies.models import DEFAULT_NAME, resolve_model
from agentpref.policies.openai import OpenAIPolicy
from agentpref.records import Completion, Message, SamplingParams

logger = logging.getLogger(__name__)

SERVER_MODULE = "vllm.entrypoints.openai.api_server"
"""`vllm serve` fails with the CPU package; the module entry point works for both."""

_KNOWN = (
    "venv", "command", "device", "dtype", "max_model_len", "kv_cache_gb",
    "gpu_memory_utilization", "lora", "max_lora_rank", "max_loras", "send_seed",
    "chunked_prefill", "prefix_caching", "max_num_seqs", "host", "port", "concurrency",
    "timeout_s", "startup_timeout_s", "env", "extra_args", "keep_alive", "trust_remote_code",
)


def installed(venv: str | Path | None = None) -> bool:
    """Whether the engine venv exists with vLLM recorded in it."""
    path = Path(venv).expanduser() if venv else engine.default_venv()
    return engine.engine_info(path) is not None


def make_vllm_policy(model: str = "default", adapter: str | None = None, **options: Any) -> Any:
    """A VLLMPolicy, or a TransformersPolicy (one warning line) when no engine is installed."""
    unknown = sorted(set(options) - set(_KNOWN))
    if unknown:
        raise ConfigError(
            f"unknown vllm policy option(s) {', '.join(unknown)}; known: {', '.join(_KNOWN)}"
        )
    if options.get("command") or installed(options.get("venv")):
        return VLLMPolicy(model=model, adapter=adapter, **options)
    from agentpref.policies.transformers import _DTYPES, TransformersPolicy

    logger.warning(
        "the vLLM engine is not installed (run: agentpref engine install vllm); "
        "sampling with the transformers backend instead"
    )
    kept: dict[str, Any] = {}
    if options.get("device") in ("auto", "cpu", "cuda"):
        kept["device"] = options["device"]
    if options.get("dtype") in _DTYPES:
        kept["dtype"] = options["dtype"]
    return TransformersPolicy(model=model, adapter=adapter, **kept)


def adapter_name(path: Path) -> str:
    """Served name of an adapter folder: changes when its weights do (vLLM keeps prefix-cache
    blocks of an adapter reloaded under the same name)."""
    stats = [
        f"{p.name}:{p.stat().st_size}:{p.stat().st_mtime_ns}"
        for p in sorted(path.glob("adapter_model.*"))
    ]
    digest = hashlib.sha256(f"{path.resolve()}|{'|'.join(stats)}".encode()).hexdigest()
    return f"adapter-{digest[:12]}"


def template_hash_of(model_path: Path | str) -> str:
    """Hash of the folder's chat template, as the transformers backend computes it."""
    if not isinstance(model_path, Path):
        return ""
    jinja = model_path / "chat_template.jinja"
    template: Any = jinja.read_text() if jinja.is_file() else None
    if template is None:
        try:
            config = json.loads((model_path / "tokenizer_config.json").read_text())
        except (OSError, ValueError):
            return ""
        template = config.get("chat_template")
        if isinstance(template, list):  # several named templates
            template = {t.get("name"): t.get("template") for t in template}
    if not template:
        return ""
    if isinstance(template, dict):
        template = "\n".join(f"{k}\n{v}" for k, v in sorted(template.items()))
    return hashlib.sha256(str(template).encode()).hexdigest()[:16]


class VLLMPolicy:
    """A model served by a managed vLLM server (see the module docstring).

    Options:
        venv: the engine's venv (default: `$AGENTPREF_CACHE/engines/vllm`).
        command: the server command instead, e.g. "/opt/vllm/bin/python -m
            vllm.entrypoints.openai.api_server" (a string or a list); agentpref adds the
            model, port and the flags below.
        device: "auto" (what the venv was installed for), "cpu" or "cuda".
        dtype: "auto" (vLLM's choice: bfloat16 where the hardware has it), "float32" (seeded
            replies independent of the batch, slower), "bfloat16", "float16".
        max_model_len: most tokens of prompt + reply (default 4096).
        kv_cache_gb: KV-cache size in GiB (cpu: VLLM_CPU_KVCACHE_SPACE, default 2; cuda:
            --kv-cache-memory-bytes, default: from gpu_memory_utilization).
        gpu_memory_utilization: share of GPU memory vLLM takes (vLLM's default 0.9).
        lora: serve LoRA adapters (default True; needed to change adapters without a restart).
        max_lora_rank, max_loras: largest adapter rank (default 32, the trainer's) and how
            many adapters are resident at once (default 2).
        send_seed: seed every request (default True); False keeps n batching with no seed and
            the replies are not reproducible.
        chunked_prefill: default on, except on cpu with send_seed (where seeded requests crash
            it).
        prefix_caching: share the KV cache of common prompt prefixes (default True).
        max_num_seqs: most sequences the engine runs at once (vLLM's default when unset).
        host, port: where the server listens (default 127.0.0.1 and a free port).
        concurrency, timeout_s: requests in flight (default 256) and per-request timeout.
        startup_timeout_s: how long to wait for the server to be ready (default 1800).
        env: extra environment variables for the server (e.g. VLLM_CPU_OMP_THREADS_BIND).
        extra_args: extra server flags, e.g. ["--enforce-eager"].
        keep_alive: keep the server for the next policy of this process after close()
            (default True: a round's sampling and evaluation share it); `release()` stops it
            anyway (iterate does before training), and it is stopped at exit either way.
        trust_remote_code: passed to vLLM.
    """

    def __init__(
        self,
        model: str = "default",
        adapter: str | None = None,
        venv: str | None = None,
        command: str | list[str] | None = None,
        device: str = "auto",
        dtype: str = "auto",
        max_model_len: int = 4096,
        kv_cache_gb: float | None = None,
        gpu_memory_utilization: float | None = None,
        lora: bool = True,
        max_lora_rank: int = 32,
        max_loras: int = 2,
        send_seed: bool = True,
        chunked_prefill: bool | None = None,
        prefix_caching: bool = True,
        max_num_seqs: int | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        concurrency: int = 256,
        timeout_s: float = 1800.0,
        startup_timeout_s: float = 1800.0,
        env: dict[str, str] | None = None,
        extra_args: list[str] | None = None,
        keep_alive: bool = True,
        trust_remote_code: bool = False,
        **options: Any,
    ) -> None:
        if options:
            raise ConfigError(
                f"unknown vllm policy option(s) {', '.join(sorted(options))}; "
                f"known: {', '.join(_KNOWN)}"
            )
        prefix, info = self._command(venv, command)
        if device == "auto":
            device = str(info.get("device") or ("cuda" if engine.has_cuda() else "cpu"))
        if device not in ("cpu", "cuda"):
            raise ConfigError(f"device {device!r} must be auto, cpu or cuda")
        if chunked_prefill is None:
            chunked_prefill = not (device == "cpu" and send_seed)
        elif chunked_prefill and device == "cpu" and send_seed:
            raise ConfigError(
                "the CPU engine crashes on seeded requests with chunked prefill; set "
                "chunked_prefill=false or send_seed=false"
            )
        if adapter is not None and not lora:
            raise ConfigError(f"adapter {adapter!r} needs lora=true (the server serves none)")
        self.model_path = resolve_model(model)
        base_name = DEFAULT_NAME if model == "default" else model
        self.name = base_name if adapter is None else f"{base_name}+{adapter}"
        self.served_name = Path(base_name).name if isinstance(self.model_path, Path) else model
        self.device = device
        self.send_seed = send_seed
        self.keep_alive = keep_alive
        self.max_lora_rank = max_lora_rank

        args = [
            *prefix, "--model", str(self.model_path), "--served-model-name", self.served_name,
            "--max-model-len", str(max_model_len),
            # sample exactly with the request's settings, not the model's generation_config
            "--generation-config", "vllm",
            "--enable-prefix-caching" if prefix_caching else "--no-enable-prefix-caching",
            "--enable-chunked-prefill" if chunked_prefill else "--no-enable-chunked-prefill",
            "--disable-uvicorn-access-log",
        ]
        if dtype != "auto":
            args += ["--dtype", dtype]
        if lora:
            args += ["--enable-lora", "--max-lora-rank", str(max_lora_rank),
                     "--max-loras", str(max_loras)]
        if max_num_seqs:
            args += ["--max-num-seqs", str(max_num_seqs)]
        if gpu_memory_utilization is not None:
            args += ["--gpu-memory-utilization", str(gpu_memory_utilization)]
        if trust_remote_code:
            args.append("--trust-remote-code")
        server_env = dict(_clean_env())
        if lora:
            server_env["VLLM_ALLOW_RUNTIME_LORA_UPDATING"] = "1"
        if device == "cpu":
            server_env["VLLM_CPU_KVCACHE_SPACE"] = str(max(1, round(kv_cache_gb or 2)))
        elif kv_cache_gb:
            args += ["--kv-cache-memory-bytes", str(int(kv_cache_gb * (1 << 30)))]
        server_env.update({str(k): str(v) for k, v in (env or {}).items()})
        args += [str(a) for a in extra_args or []]

        self._key = (tuple(args), tuple(sorted((env or {}).items())), host, port, device)
        self.server = engine.shared_server(
            self._key,
            lambda: engine.ManagedServer(command=args, env=server_env, host=host, port=port),
            startup_timeout_s,
        )
        self.adapter = adapter
        served_adapter = self._load_adapter(Path(adapter)) if adapter is not None else None
        self._client = OpenAIPolicy(
            model=self.served_name,
            adapter=served_adapter,
            base_url=self.server.base_url,
            concurrency=concurrency,
            timeout_s=timeout_s,
            max_retries=2,
            send_seed=send_seed,
            # each choice's tokens (usage counts a request's n choices together)
            extra_body={"return_token_ids": True},
        )
        self._template_hash = template_hash_of(self.model_path)
        self._closed = False

    @staticmethod
    def _command(
        venv: str | None, command: str | list[str] | None
    ) -> tuple[list[str], dict[str, Any]]:
        if command:
            parts = command.split() if isinstance(command, str) else [str(c) for c in command]
            return parts, {}
        path = Path(venv).expanduser() if venv else engine.default_venv()
        info = engine.engine_info(path)
        if info is None:
            raise ConfigError(
                f"no vLLM engine in {path}; install it with: agentpref engine install vllm"
                + (f" --venv {path}" if venv else "")
            )
        return [str(engine.venv_python(path)), "-m", SERVER_MODULE], info

    def _load_adapter(self, path: Path) -> str:
        """Load an adapter folder into the running server (once) and return its served name."""
        config_file = path / "adapter_config.json"
        if not config_file.is_file():
            what = "does not exist" if not path.exists() else "has no adapter_config.json"
            raise ConfigError(
                f"LoRA adapter {str(path)!r} {what}; give a folder saved by peft (save_pretrained)"
            )
        try:
            rank = int(json.loads(config_file.read_text()).get("r", 0))
        except (OSError, ValueError, TypeError):
            rank = 0
        if rank > self.max_lora_rank:
            raise ConfigError(
                f"LoRA adapter {str(path)!r} has rank {rank}, above the server's max_lora_rank "
                f"{self.max_lora_rank}; set policy.options.max_lora_rank to {rank} or more"
            )
        name = adapter_name(path)
        with self.server.lock:
            if name in self.server.adapters:
                return name
            status, body = self.server.post(
                "/v1/load_lora_adapter", {"lora_name": name, "lora_path": str(path.resolve())}
            )
            if status != 200 and "already been loaded" not in body:
                raise BackendError(
                    f"vLLM could not load LoRA adapter {str(path)!r}: HTTP {status}: "
                    f"{body.strip()[:400]}",
                    retryable=False,
                )
            self.server.adapters[name] = str(path)
        logger.info("serving adapter %s as %s", path, name)
        return name

    @property
    def reproducible(self) -> bool:
        return self.send_seed

    def generate(
        self,
        conversations: list[list[Message]],
        sampling: SamplingParams,
        seeds: list[list[int]] | None = None,
    ) -> list[list[Completion]]:
        """`sampling.n` replies for each conversation (`seeds[i][j]`: reply j's seed)."""
        if self._closed:
            raise BackendError("this vllm policy is closed", retryable=False)
        try:
            return self._client.generate(conversations, sampling, seeds)
        except BackendError as exc:
            if not self.server.alive():
                raise BackendError(
                    f"the vLLM server stopped ({exc}); its log {self.server.log_path} ends "
                    f"with:\n{self.server.log_tail()}",
                    retryable=False,
                ) from exc
            raise

    def template_hash(self) -> str:
        """The model folder's chat template hash (vLLM renders prompts with it)."""
        return self._template_hash

    def close(self) -> None:
        """Done with this policy; the server stays for the next one unless keep_alive=False."""
        if self._closed:
            return
        self._closed = True
        if not self.keep_alive:
            engine.release_server(self._key)

    def release(self) -> None:
        """Close and stop the server whatever keep_alive says: what comes next (training)
        needs the memory it holds (6.6 GB resident for the 0.5B on CPU; on a GPU, most of the
        device's)."""
        self._closed = True
        engine.release_server(self._key)


def _clean_env() -> dict[str, str]:
    """This process's environment minus what would make the engine's venv import the
    project's packages."""
    drop = {"PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "PYTHONSTARTUP"}
    return {k: v for k, v in os.environ.items() if k not in drop}
