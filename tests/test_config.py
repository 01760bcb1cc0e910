"""The project's promises about its own setup: pins agree, nbval is not vacuous."""

import json
import re
import sys
import tomllib
import types
from pathlib import Path

import jsonschema
import pytest
from nbval.plugin import get_sanitize_patterns
from toc import api_toc, book_toc

import emlib

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]-*.ipynb"))


def normalize(name):
    """PEP 503 normal form, so jupyter_client and jupyter-client compare equal."""
    return re.sub(r"[-_.]+", "-", name).lower()


def constraint_pins():
    pins = {}
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        line = line.split("#")[0].strip()
        if line:
            name, version = line.split("==")
            pins[normalize(name)] = version
    return pins


def environment_pins():
    """name -> version of environment.yml's conda (=) and pip (==) entries."""
    pins = {}
    for line in (ROOT / "environment.yml").read_text().splitlines():
        match = re.fullmatch(r"\s*- ([A-Za-z0-9_.-]+)==?([0-9][^\s#]*)\s*", line)
        if match and match[1] != "python":
            pins[normalize(match[1])] = match[2]
    return pins


def test_environment_yml_has_the_constraints_pins():
    assert environment_pins() == constraint_pins()


def test_every_declared_dependency_is_pinned():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    declared = project["dependencies"] + project["optional-dependencies"]["dev"]
    names = {normalize(re.split(r"[<>=!~ \[]", d)[0]) for d in declared}
    assert names - set(constraint_pins()) == set()


def test_sanitize_file_rules_all_parse():
    # nbval drops a rule silently when its regex/replace lines are malformed.
    text = (ROOT / "notebooks" / "sanitize.cfg").read_text()
    assert "\r" not in text
    sections = re.findall(r"^\[.+\]$", text, flags=re.MULTILINE)
    assert len(get_sanitize_patterns(text)) == len(sections) > 0


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_is_stored_executed_in_order(path):
    # nbval compares only cells with an execution count: a stripped or
    # partly run notebook would pass vacuously.
    cells = json.loads(path.read_text())["cells"]
    code = [
        c for c in cells if c["cell_type"] == "code" and "".join(c["source"]).strip()
    ]
    assert code, "a notebook with no code proves nothing"
    assert [c["execution_count"] for c in code] == list(range(1, len(code) + 1))
    assert not [o for c in code for o in c["outputs"] if o["output_type"] == "error"]
    assert any("assert" in "".join(c["source"]) for c in code)


def test_readme_quick_start_names_the_make_targets():
    readme = (ROOT / "README.md").read_text()
    makefile = (ROOT / "Makefile").read_text()
    for target in ("lab", "test", "bench", "mutate", "html"):
        assert f"make {target}" in readme
        assert re.search(rf"^{target}:", makefile, flags=re.MULTILINE)
    assert "make test" in (ROOT / ".ci" / "run").read_text()


def readme_reading_table():
    """The notebook names of the README's reading table, in order."""
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Reading order", 1)[1].split("\n#", 1)[0]
    return re.findall(r"^\| `([0-9][0-9]-[^`]+)` \|", section, flags=re.MULTILINE)


def test_book_contents_readme_and_notebooks_agree():
    # notebooks/index.md is the book's one table of contents: every notebook
    # is in it once, in file-name order, as in the README's reading table.
    notebooks = [path.stem for path in NOTEBOOKS]
    assert book_toc() == notebooks
    assert readme_reading_table() == notebooks


def overview_reading_map():
    """The notebook names of the overview's reading map, in order."""
    cells = json.loads((ROOT / "notebooks" / "00-overview.ipynb").read_text())["cells"]
    (text,) = [
        "".join(c["source"]) for c in cells if "## Reading map" in "".join(c["source"])
    ]
    return re.findall(r"^\| `([0-9][0-9]-[^`]+)` \|", text, flags=re.MULTILINE)


def test_overview_reading_map_lists_the_book_in_order():
    assert overview_reading_map() == book_toc()


def public_modules():
    """emlib and the modules its __all__ exports: the API reference's pages."""
    exported = [getattr(emlib, name) for name in emlib.__all__]
    return ["emlib"] + [m.__name__ for m in exported if isinstance(m, types.ModuleType)]


def test_api_reference_has_one_page_per_public_module():
    # The contents' API toctree, the pages in notebooks/api and emlib's
    # public modules name the same modules, emlib first; each page documents
    # its module (autodoc lists the members, so a new function needs no edit).
    pages = [entry.removeprefix("api/") for entry in api_toc()]
    assert pages[0] == "emlib"
    assert sorted(pages) == sorted(public_modules())
    files = sorted(path.stem for path in (ROOT / "notebooks" / "api").glob("*.md"))
    assert files == sorted(pages)
    for module in pages:
        text = (ROOT / "notebooks" / "api" / f"{module}.md").read_text()
        assert re.findall(r"^\.\. automodule:: (\S+)$", text, re.MULTILINE) == [module]


def test_readme_tour_has_a_row_per_public_module():
    # The tour's table of modules, which points at their API pages.
    readme = (ROOT / "README.md").read_text()
    section = readme.split("\n## emlib\n", 1)[1].split("\n## ", 1)[0]
    rows = re.findall(r"^\| `(emlib[a-z_.]*)` \|", section, flags=re.MULTILINE)
    assert rows == [entry.removeprefix("api/") for entry in api_toc()]
    assert "build/html/api/emlib.html" in section


def test_make_lab_installs_the_quiet_lab_settings():
    # JupyterLab's own schema accepts the values: never fetch news (so never
    # ask), never check for updates.
    overrides = json.loads((ROOT / "lab" / "overrides.json").read_text())
    plugin = "@jupyterlab/apputils-extension:notification"
    assert overrides == {plugin: {"fetchNews": "false", "checkForUpdates": False}}
    schema_path = Path(sys.prefix, "share/jupyter/lab/schemas", *plugin.split(":"))
    schema = json.loads(schema_path.with_suffix(".json").read_text())
    jsonschema.validate(overrides[plugin], schema)
    # Installed where JupyterLab reads setting defaults: the venv's, not $HOME.
    makefile = (ROOT / "Makefile").read_text()
    installed = r"\$\(VENV\)/share/jupyter/lab/settings/overrides\.d/\w+\.json"
    assert re.search(rf"^LAB_SETTINGS := {installed}$", makefile, flags=re.MULTILINE)
    assert re.search(r"^lab: .*\$\(LAB_SETTINGS\)", makefile, flags=re.MULTILINE)
