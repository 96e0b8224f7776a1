"""The pair-quality experiment's recipe (benchmarks/pair_quality.py): every size loads and
passes the recipe check, and its DB Bench limits reach both the sampling and the evaluation."""

import argparse
import importlib.util
from pathlib import Path

import pytest

from agentpref.config import recipe_from_dict
from agentpref.envs.sql.dbbench import DBBenchOptions

SCRIPT = Path(__file__).resolve().parents[3] / "benchmarks" / "pair_quality.py"


@pytest.fixture(scope="module")
def pq():
    spec = importlib.util.spec_from_file_location("pair_quality", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def args(pq, tmp_path: Path, dtype: str = "auto") -> argparse.Namespace:
    return argparse.Namespace(
        data=tmp_path, engine="transformers", model="default", seed=0, dtype=dtype
    )


@pytest.mark.parametrize("size", ["smoke", "quick", "full"])
def test_every_size_passes_the_recipe_check(pq, tmp_path, size):
    recipe = recipe_from_dict(pq.recipe(args(pq, tmp_path), pq.SIZES[size]), "pair_quality")
    limit = pq.SIZES[size]["operations"]
    # the cap reaches the environment as an option it validates ...
    assert DBBenchOptions.model_validate(recipe.envs["dbbench"]).max_operations == limit
    # ... and the evaluation leaves the environment's own limit to end an episode
    assert pq.eval_options(recipe).max_turns == limit + 1
    assert recipe.train["loss_probe"] == pq.SIZES[size]["probe"]


def test_the_full_size_plays_the_benchmarks_operation_limit(pq):
    assert pq.SIZES["full"]["operations"] == DBBenchOptions().max_operations == 15
    assert pq.SIZES["quick"]["operations"] < 15  # the documented quick-size cap


def test_a_recipe_without_a_dbbench_section_evaluates_to_the_benchmarks_limit(pq, tmp_path):
    data = pq.recipe(args(pq, tmp_path), pq.SIZES["quick"])
    del data["envs"]["dbbench"]
    assert pq.eval_options(recipe_from_dict(data, "pair_quality")).max_turns == 16


def test_a_chosen_precision_reaches_sampling_and_training(pq, tmp_path):
    auto = recipe_from_dict(pq.recipe(args(pq, tmp_path), pq.SIZES["quick"]), "pair_quality")
    assert "dtype" not in auto.policy.options and auto.train["dtype"] == "auto"
    data = pq.recipe(args(pq, tmp_path, "float32"), pq.SIZES["quick"])
    fixed = recipe_from_dict(data, "pair_quality")
    assert fixed.policy.options["dtype"] == "float32" and fixed.train["dtype"] == "float32"


def test_the_report_names_the_databases_of_each_side(pq, tmp_path):
    assert pq._split(tmp_path) == {}
    (tmp_path / "tasks_report.json").write_text(
        '{"split": {"train": 2, "train_databases": ["pets_1"], "eval_databases": ["car_1"]}}'
    )
    assert pq._split(tmp_path) == {"train_databases": ["pets_1"], "eval_databases": ["car_1"]}
