from pathlib import Path

import pytest

from agentpref.config import apply_overrides, load_recipe
from agentpref.errors import ConfigError


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "r.yaml"
    p.write_text(text)
    return p


def test_defaults_and_overrides(tmp_path):
    r = load_recipe(write(tmp_path, "name: x\nsampling: {k: 3}\n"), ["sampling.k=6", "seed=9"])
    assert r.sampling.k == 6 and r.seed == 9 and r.name == "x"
    assert [s.name for s in r.strategies] == ["best-worst"]


def test_override_parses_yaml_values_and_list_indices(tmp_path):
    r = load_recipe(
        write(tmp_path, "strategies: [{name: best-worst}]\n"),
        ["strategies.0.options.min_margin=0.5", "tasks.sources=[{name: spider, count: 3}]"],
    )
    assert r.strategies[0].options == {"min_margin": 0.5}
    assert r.tasks.sources[0].name == "spider" and r.tasks.sources[0].count == 3


@pytest.mark.parametrize(
    "text, needle",
    [
        ("samplng: {k: 2}\n", "unknown key 'samplng'"),
        ("sampling: {k: 0}\n", "sampling.k"),
        ("sampling: {kk: 2}\n", "unknown key 'sampling.kk'"),
        ("- a\n- b\n", "must be a mapping"),
        ("a: [\n", "not valid YAML"),
    ],
)
def test_recipe_errors_are_one_line(tmp_path, text, needle):
    with pytest.raises(ConfigError) as exc:
        load_recipe(write(tmp_path, text))
    assert needle in str(exc.value)
    assert "\n" not in str(exc.value)


def test_missing_recipe_file(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_recipe(tmp_path / "nope.yaml")


def test_bad_override():
    with pytest.raises(ConfigError, match="key=value"):
        apply_overrides({}, ["sampling.k"])
