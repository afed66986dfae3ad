"""Start-up: the command line parses, checks and lists without importing torch, from the
plain data of convzoo.catalog, which must equal the registries it mirrors."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

import convzoo.catalog as catalog

SRC = Path(__file__).resolve().parents[1] / "src"


def python(code: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env
    )


def test_parsing_checking_helping_and_listing_import_no_torch():
    r = python(
        "import contextlib, io, sys\n"
        "import convzoo, convzoo.cli as cli\n"
        "assert cli.main(['train', '--epochs', '0']) == 2\n"
        "assert cli.main(['finetune', 'runs/x', '--lr', '-1']) == 2\n"
        "with contextlib.redirect_stdout(io.StringIO()) as out:\n"
        "    assert cli.main(['models']) == 0\n"
        "    commands = cli.build_parser()._subparsers._group_actions[0].choices\n"
        "    for command in [*commands, 'data fetch', 'data info']:\n"
        "        with contextlib.suppress(SystemExit):\n"
        "            cli.main([*command.split(), '--help'])\n"
        "assert 'vgg11' in out.getvalue() and 'usage: convzoo bench' in out.getvalue()\n"
        "heavy = [m for m in ('torch', 'numpy', 'PIL') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    assert r.returncode == 0, r.stderr[-2000:]
    assert "epochs must be >= 1, got 0" in r.stderr and "learning rate must be > 0" in r.stderr


def test_the_catalog_mirrors_the_registries():
    from convzoo.data.sequences import ARCHIVES
    from convzoo.data.sources import dataset_names
    from convzoo.export.formats import FORMATS
    from convzoo.models.tv import TORCHVISION_ARCHS
    from convzoo.parallel import STRATEGIES
    from convzoo.reproduce.profiles import PROFILES
    from convzoo.train.recipes import RECIPES

    assert tuple(RECIPES) == catalog.RECIPES
    assert tuple(STRATEGIES) == catalog.STRATEGIES
    assert tuple(dataset_names()) == catalog.DATASETS
    assert tuple(ARCHIVES) == catalog.SERIES_ARCHIVES
    assert tuple(FORMATS) == catalog.EXPORT_FORMATS
    assert tuple(TORCHVISION_ARCHS) == catalog.TORCHVISION_ARCHS
    assert tuple(PROFILES) == catalog.PROFILES


@pytest.mark.slow
def test_the_zoo_table_is_the_registry_counted_on_the_meta_device():
    from convzoo.cli.models import zoo_rows

    rows = zoo_rows()
    assert rows == catalog.MODELS, "convzoo.catalog.MODELS is stale; it should read:\n" + "\n".join(
        f"    {r!r}," for r in rows
    )


def test_convzoo_models_lists_the_table_with_a_pattern():
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    r = subprocess.run(
        [sys.executable, "-m", "convzoo", "models", "resnet*"],
        capture_output=True, text=True, timeout=120, env=env,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    names = [line.split()[0] for line in r.stdout.splitlines()[1:] if line.strip()][:-1]
    assert names == ["resnet18", "resnet1d", "resnet34"]
    row = next(r for r in catalog.MODELS if r.name == "resnet18")
    assert f"  {row.params:,}  {row.flops / 1e9:.4g}  " in r.stdout
