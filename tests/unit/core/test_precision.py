"""What "auto" precision means for sampling and training, on this machine and on others."""

from __future__ import annotations

import pytest

from agentpref import precision
from agentpref.precision import auto_precision, cpu_has_native_bf16
from agentpref.train.dpo import TrainConfig, train_dtype


def test_cpu_auto_follows_the_matrix_units(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(precision, "cpu_has_native_bf16", lambda: True)
    assert auto_precision("cpu") == "bfloat16"
    assert train_dtype(TrainConfig(), "cpu") == "bfloat16"
    monkeypatch.setattr(precision, "cpu_has_native_bf16", lambda: False)
    assert auto_precision("cpu") == "float32"
    assert train_dtype(TrainConfig(), "cpu") == "float32"
    # A chosen type is kept whatever the CPU has.
    assert train_dtype(TrainConfig(dtype="bfloat16"), "cpu") == "bfloat16"


# torch is imported inside the tests: imported while pytest collects, before
# mysql.connector, it makes the connector fall back to its pure-Python implementation, whose
# multi-statement results differ from the C extension's that test_dbbench_mysql compares to.
def test_cuda_auto_asks_the_device(monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)
    assert auto_precision("cuda:1") == "float32"
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    assert auto_precision("cuda") == "bfloat16"


def test_native_bf16_is_read_from_torch(monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: False, raising=False)
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: False, raising=False)
    assert cpu_has_native_bf16() is False
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: True, raising=False)
    assert cpu_has_native_bf16() is True


def test_unknown_train_dtype_is_refused() -> None:
    with pytest.raises(ValueError, match="dtype"):
        TrainConfig(dtype="float8")
