"""Mutation testing: do the notebooks alone notice a broken emlib?

Run with ``make mutate`` (or ``.venv/bin/python tools/mutate.py --help``).
Each mutant changes one operator or one constant of one module of emlib
(every ``emlib/*.py``, found by globbing, so renamed and new modules are
picked up). The mutations, chosen on the syntax tree:

- arithmetic: ``+`` <-> ``-``, ``*`` <-> ``/``, ``//`` -> ``/``,
  ``**`` -> ``*``, ``@`` -> ``*`` (also in ``+=`` and the like);
- comparison: ``<`` <-> ``<=``, ``>`` <-> ``>=``, ``==`` <-> ``!=``;
- constant: a number ``c`` -> ``c + 1``, ``True`` <-> ``False``;
- unary minus dropped: ``-x`` -> ``+x``.

Not mutated, because no notebook should have to notice them: docstrings and
every other string; f-strings (error and warning messages); ``raise`` and
``assert`` statements; calls of ``warn``; and pure validation branches, an
``if`` whose body only raises (its test and body; its ``else`` is mutated).

Each mutant runs the notebooks alone, ``pytest -x --nbval notebooks/...``
(stopping at the first failing cell), in a private copy of the repository
with ``PYTHONPATH`` pointing at it, so the notebook kernels import the
mutant; the notebooks that name the module come first. A mutant is killed
when pytest fails or runs out of time (a mutant can loop forever). Before
the mutants, the unmutated copy must pass, and a copy whose emlib cannot be
imported must fail (proof that the kernels import the copy).

Prints one line per mutant and the kill rate per module. Surviving mutants
are either equivalent (the same function, e.g. a tolerance nothing reaches)
or a check the notebooks lack.
"""

import argparse
import ast
import contextlib
import itertools
import os
import queue
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import NamedTuple

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = "emlib"
# Left out of each worker's copy of the repository.
NOT_COPIED = shutil.ignore_patterns(
    ".git",
    ".venv",
    "build",
    "__pycache__",
    ".pytest_cache",
    ".ruff_cache",
    ".hypothesis",
    ".ipynb_checkpoints",
    "*.egg-info",
)
# The pytest processes running now, killed (with their kernels) if we stop.
RUNNING = set()

BINARY_SWAPS = {
    ast.Add: ast.Sub,
    ast.Sub: ast.Add,
    ast.Mult: ast.Div,
    ast.Div: ast.Mult,
    ast.FloorDiv: ast.Div,
    ast.Pow: ast.Mult,
    ast.MatMult: ast.Mult,
}
COMPARE_SWAPS = {
    ast.Lt: ast.LtE,
    ast.LtE: ast.Lt,
    ast.Gt: ast.GtE,
    ast.GtE: ast.Gt,
    ast.Eq: ast.NotEq,
    ast.NotEq: ast.Eq,
}
SYMBOL = {
    ast.Add: "+",
    ast.Sub: "-",
    ast.Mult: "*",
    ast.Div: "/",
    ast.FloorDiv: "//",
    ast.Pow: "**",
    ast.MatMult: "@",
    ast.Lt: "<",
    ast.LtE: "<=",
    ast.Gt: ">",
    ast.GtE: ">=",
    ast.Eq: "==",
    ast.NotEq: "!=",
}


class Site(NamedTuple):
    """One mutant: the ``index``-th mutation site of ``module`` (a path)."""

    module: Path
    index: int
    lineno: int
    change: str  # e.g. "+ -> -"


def _is_string(node):
    return isinstance(node, ast.JoinedStr) or (
        isinstance(node, ast.Constant) and isinstance(node.value, str | bytes)
    )


def _only_raises(body):
    return all(isinstance(stmt, ast.Raise) for stmt in body)


class _Sites(ast.NodeVisitor):
    """Collects (node, how) for every mutation, in a fixed traversal order."""

    def __init__(self):
        self.found = []  # (node, kind, detail, lineno, change)

    def visit_Expr(self, node):
        if not _is_string(node.value):  # a docstring or a bare string
            self.generic_visit(node)

    def visit_JoinedStr(self, node):
        pass  # message text

    def visit_Raise(self, node):
        pass

    def visit_Assert(self, node):
        pass

    def visit_If(self, node):
        if _only_raises(node.body):  # a pure validation branch
            for stmt in node.orelse:
                self.visit(stmt)
        else:
            self.generic_visit(node)

    def visit_Call(self, node):
        func = node.func
        name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
        if name != "warn":
            self.generic_visit(node)

    def visit_BinOp(self, node):
        new = BINARY_SWAPS.get(type(node.op))
        if new and not (_is_string(node.left) or _is_string(node.right)):
            change = f"{SYMBOL[type(node.op)]} -> {SYMBOL[new]}"
            self.found.append((node, "op", new, node.lineno, change))
        self.generic_visit(node)

    def visit_AugAssign(self, node):
        new = BINARY_SWAPS.get(type(node.op))
        if new:
            change = f"{SYMBOL[type(node.op)]}= -> {SYMBOL[new]}="
            self.found.append((node, "op", new, node.lineno, change))
        self.generic_visit(node)

    def visit_Compare(self, node):
        for i, op in enumerate(node.ops):
            new = COMPARE_SWAPS.get(type(op))
            if new:
                change = f"{SYMBOL[type(op)]} -> {SYMBOL[new]}"
                self.found.append((node, "cmp", (i, new), node.lineno, change))
        self.generic_visit(node)

    def visit_UnaryOp(self, node):
        if isinstance(node.op, ast.USub):
            self.found.append((node, "neg", None, node.lineno, "-x -> +x"))
        self.generic_visit(node)

    def visit_Constant(self, node):
        value = node.value
        if isinstance(value, bool):
            self.found.append(
                (node, "const", not value, node.lineno, f"{value} -> {not value}")
            )
        elif isinstance(value, int | float):
            new = value + 1
            self.found.append(
                (node, "const", new, node.lineno, f"{value!r} -> {new!r}")
            )


def _find(tree):
    visitor = _Sites()
    visitor.visit(tree)
    return visitor.found


def sites(module):
    """Every mutation site of a module, as Site tuples."""
    tree = ast.parse(module.read_text(), filename=str(module))
    return [
        Site(module, i, lineno, change)
        for i, (_, _, _, lineno, change) in enumerate(_find(tree))
    ]


def mutant_source(site, source):
    """``source`` (the text of ``site.module``) with that one mutation applied."""
    tree = ast.parse(source, filename=str(site.module))
    node, kind, detail, _, _ = _find(tree)[site.index]
    if kind == "op":
        node.op = detail()
    elif kind == "cmp":
        i, new = detail
        node.ops[i] = new()
    elif kind == "neg":
        node.op = ast.UAdd()
    else:
        node.value = detail
    return ast.unparse(tree) + "\n"


def modules(only=None):
    """emlib's modules (emlib/*.py), or those whose stem is in ``only``."""
    found = sorted((ROOT / PACKAGE).glob("*.py"))
    if only:
        unknown = set(only) - {m.stem for m in found}
        if unknown:
            have = [m.stem for m in found]
            sys.exit(f"no module {sorted(unknown)} in {PACKAGE}/; have {have}")
        found = [m for m in found if m.stem in only]
    return found


def notebook_order(module):
    """The notebooks, those that name the module first (they fail soonest)."""
    notebooks = sorted((ROOT / "notebooks").glob("*.ipynb"))
    names = module.stem.lstrip("_")
    return [nb for nb in notebooks if names in nb.read_text()] + [
        nb for nb in notebooks if names not in nb.read_text()
    ]


def run_notebooks(copy, notebooks, timeout):
    """Run the notebooks under nbval in ``copy``: (passed, seconds, tail of output)."""
    env = dict(
        os.environ,
        PYTHONPATH=str(copy),
        PYTHONDONTWRITEBYTECODE="1",  # a stale .pyc must never stand in for a mutant
        JUPYTER_PLATFORM_DIRS="1",
        PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        # Each worker one thread: N workers use N cores.
        OMP_NUM_THREADS="1",
        OPENBLAS_NUM_THREADS="1",
        MKL_NUM_THREADS="1",
    )
    command = [
        sys.executable,
        "-m",
        "pytest",
        "-x",
        "-q",
        "-n",
        "0",
        "-p",
        "no:cacheprovider",
        *(str(nb.relative_to(ROOT)) for nb in notebooks),
    ]
    start = time.perf_counter()
    proc = subprocess.Popen(
        command,
        cwd=copy,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # its kernels too are killed on a timeout
    )
    RUNNING.add(proc)
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        return None, time.perf_counter() - start, "timeout"
    finally:
        RUNNING.discard(proc)
    seconds = time.perf_counter() - start
    if proc.returncode not in (0, 1, 2):
        sys.exit(f"pytest failed to run (exit {proc.returncode}):\n{out[-3000:]}")
    return proc.returncode == 0, seconds, out[-2000:]


def make_copies(n):
    copies = []
    for _ in range(n):
        copy = Path(tempfile.mkdtemp(prefix="emlib-mutant-")) / "repo"
        shutil.copytree(ROOT, copy, ignore=NOT_COPIED)
        copies.append(copy)
    return copies


def sanity_checks(copy, notebooks, seconds=None):
    """The clean copy passes (unless its time ``seconds`` is given); an
    unimportable emlib in the copy fails. Returns the clean run's seconds."""
    if seconds is None:
        passed, seconds, out = run_notebooks(copy, notebooks, timeout=None)
        if not passed:
            sys.exit(f"the notebooks fail without any mutant:\n{out}")
    init = copy / PACKAGE / "__init__.py"
    original = init.read_text()
    init.write_text('raise ImportError("mutate.py sanity check")\n' + original)
    try:
        broken, _, _ = run_notebooks(copy, notebooks[:1], timeout=None)
    finally:
        init.write_text(original)
    if broken:
        sys.exit("the notebooks do not import emlib from the copy (check PYTHONPATH)")
    return seconds


def run_mutant(site, copies, timeout):
    copy = copies.get()
    target = copy / site.module.relative_to(ROOT)
    original = target.read_text()
    try:
        target.write_text(mutant_source(site, original))
        passed, seconds, _ = run_notebooks(copy, notebook_order(site.module), timeout)
    finally:
        target.write_text(original)
        copies.put(copy)
    return site, passed, seconds


def report(results):
    """The kill rate per module and the survivors, of the mutants run so far."""
    print("\nkill rate per module (notebooks alone)")
    for module, found in results.items():
        if found:
            killed = sum(passed is not True for _, passed in found)
            rate = 100 * killed / len(found)
            print(
                f"  {module.name:20s} {killed:4d} / {len(found):4d} killed {rate:.0f}%"
            )
    survivors = [(s, p) for found in results.values() for s, p in found if p is True]
    if survivors:
        print("survivors:")
        for site, _ in survivors:
            print(f"  {site.module.name}:{site.lineno}  {site.change}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--module", action="append", help="only emlib/MODULE.py (repeatable)"
    )
    parser.add_argument(
        "--sample", type=int, help="at most N random mutants per module"
    )
    parser.add_argument("--seed", type=int, default=0, help="of the sample (default 0)")
    parser.add_argument(
        "--workers", type=int, default=1, help="parallel runs (default 1)"
    )
    parser.add_argument(
        "--list", action="store_true", help="list the mutants, run nothing"
    )
    parser.add_argument(
        "--timeout", type=float, default=3.0, help="x the clean run's time (default 3)"
    )
    parser.add_argument(
        "--clean-seconds",
        type=float,
        help="skip the clean run (it passed already) and take this as its time",
    )
    args = parser.parse_args()
    # On SIGTERM, unwind through the finally below: kill the runs, remove the
    # copies.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit("stopped by SIGTERM"))

    chosen = {}
    for module in modules(args.module):
        found = sites(module)
        if args.sample is not None and args.sample < len(found):
            found = sorted(
                random.Random(f"{args.seed}:{module.stem}").sample(found, args.sample)
            )
        chosen[module] = found
        print(
            f"{module.name}: {len(found)} mutants"
            + (
                f" (a sample of {len(sites(module))}, seed {args.seed})"
                if args.sample is not None and args.sample < len(sites(module))
                else ""
            )
        )
    if args.list:
        for found in chosen.values():
            for site in found:
                line = site.module.read_text().splitlines()[site.lineno - 1].strip()
                print(f"  {site.module.name}:{site.lineno}  {site.change:16s}  {line}")
        return

    copy_dirs = make_copies(max(args.workers, 1))
    pool = None
    results = {module: [] for module in chosen}
    try:
        clean_seconds = sanity_checks(
            copy_dirs[0],
            sorted((ROOT / "notebooks").glob("*.ipynb")),
            args.clean_seconds,
        )
        timeout = args.timeout * clean_seconds + 30
        print(
            f"clean run {clean_seconds:.0f} s; a mutant times out after {timeout:.0f} s"
        )
        copies = queue.Queue()
        for copy in copy_dirs:
            copies.put(copy)
        # Round robin over the modules: a run cut short covers them all.
        jobs = [
            site
            for group in itertools.zip_longest(*chosen.values())
            for site in group
            if site is not None
        ]
        pool = ThreadPoolExecutor(max_workers=len(copy_dirs))
        futures = [pool.submit(run_mutant, site, copies, timeout) for site in jobs]
        for future in futures:
            site, passed, seconds = future.result()
            results[site.module].append((site, passed))
            verdict = {True: "SURVIVED", False: "killed", None: "killed (timeout)"}
            line = site.module.read_text().splitlines()[site.lineno - 1].strip()
            where = f"{site.module.name}:{site.lineno}"
            print(
                f"{verdict[passed]:16s} {where}  {site.change} | {line} "
                f"[{seconds:.0f} s]",
                flush=True,
            )
    finally:
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)
        for proc in list(RUNNING):
            with contextlib.suppress(ProcessLookupError):  # it ended meanwhile
                os.killpg(proc.pid, signal.SIGKILL)
        if pool is not None:
            pool.shutdown(wait=True)
        for copy in copy_dirs:
            shutil.rmtree(copy.parent, ignore_errors=True)
        report(results)  # also when stopped early: what ran so far


if __name__ == "__main__":
    main()
