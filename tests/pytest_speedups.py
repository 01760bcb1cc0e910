"""Start-up and shut-down costs of the test processes, none of which a test sees.

pytest loads this plugin first (``-p pytest_speedups`` in pyproject.toml).

``rfc3987_syntax`` is kept out. JupyterLab brings it into the venv (through
jupyter-events, which asks for jsonschema's ``format-nongpl`` checkers), and
when it is installed jsonschema imports it to register checkers for the
``iri`` formats; importing it compiles 38 Lark grammars, about 1.3 s of CPU.
nbval imports nbformat, which imports jsonschema, so every pytest process
(the xdist controller and each worker) paid that before running a test.
Nothing here checks an IRI: nbformat validates notebooks without a format
checker, and so does the settings-schema test in test_config.py. A ``None``
in ``sys.modules`` makes the import raise ImportError, which jsonschema
catches: it then registers no ``iri`` checker, and nothing else changes.
This must happen before nbval's plugin is imported, hence first in
``addopts``.

The objects alive once the tests are collected (modules, SymPy's and
Sphinx's tables, the test items) live until the process ends, so they are
moved out of the cyclic garbage collector's reach with ``gc.freeze()``: a
full collection no longer walks them again and again during the run, and
the interpreter's collections at exit, which took a second or more per
process, skip them. Each freeze comes right after a full collection, so an
object left unclosed in a reference cycle is still found and reported (as
an unraisable-exception warning, an error under ``filterwarnings``), never
frozen away unseen.

The notebook kernels nbval starts (one per notebook, with this process's
environment) get an IPython profile of their own: ``IPYTHONDIR`` points at
a temporary directory, removed at the end, whose kernel configuration
raises the thresholds of the cyclic garbage collector from (700, 10, 10) to
(20000, 20, 20). Importing SymPy and deriving with it allocates millions
of container objects, nearly all still alive when a collection comes: with
the default thresholds a kernel of notebooks 15, 30 or 80 ran about 500
young collections and a few full ones, 0.5-0.8 s of CPU (measured with
``gc.callbacks``), now about 20, 0.3 s. Garbage in cycles is still
collected, only in larger batches; what a cell prints or returns does not
depend on when that happens. The line runs before the first cell, as an
expression (it binds no name in the notebook's namespace).

The same configuration renders each inline figure without
``bbox_inches="tight"``, the inline backend's default, which draws the
figure twice, once to measure it and once to crop it to what it holds:
each of the suite's 32 figures took about 0.3 s of CPU, now about 0.18 s.
A figure is still drawn whole, every artist of it, so an error in drawing
it still fails the notebook. nbval compares a figure's ``text/plain``
output (``<Figure size 650x350 with 1 Axes>``, which the crop does not
change) and never its PNG, which differs between machines; the PNGs the
reader sees are the ones ``jupyter nbconvert --execute`` stored, cropped.
The kernels keep no input history (IPython's sqlite database, written
after each cell); none of the notebooks reads ``In`` or ``Out``. The
profile also keeps a user's own ``~/.ipython`` start-up files and
configuration out of the tests, where they could change what a notebook
prints. ``make lab`` and ``jupyter``
commands run outside pytest never see any of this.

Each test process, the kernel zygote and every kernel run OpenBLAS, numpy's
linear algebra, on one thread (``OPENBLAS_NUM_THREADS=1``, set here before
numpy is imported and inherited by the processes started from here). Two
workers, each with a kernel, already keep the two cores busy; OpenBLAS's
own threads only added their hand-offs and spinning to small products: a
3 ms triangular solve took 0.07 ms on one thread, and three notebooks under
nbval took 10% less CPU.

The kernels themselves are forked from a warm process, ``kernel_zygote``,
started once per run that has notebooks to run (by the xdist controller,
shared by the workers): a kernel started
from scratch spent about 1 s starting IPython and 1-3 s in its notebook's
import cell, close to half of the notebooks' CPU; forked, it finds those
modules imported. ``test_kernel_zygote.py`` checks that a forked kernel sees
the working directory, path, arguments, environment and matplotlib backend
of a kernel started from scratch. ``EMLIB_TEST_FORK=0`` starts every kernel
from scratch instead.

Forked or not, a kernel is started and stopped without two waits on a clock
that jupyter_client built in (``start_new_kernel`` below): about 0.3 s a
notebook in which the worker's core had nothing to do.
"""

import gc
import os
import pprint
import queue
import shutil
import sys
import tempfile
import time
from pathlib import Path

import pytest

sys.modules.setdefault("rfc3987_syntax", None)
# One BLAS thread per process (see the docstring), unless the caller chose.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import jupyter_client  # noqa: E402  (nbval imports it too; after the two lines above)

KERNEL_CONFIG = """\
c.InteractiveShellApp.exec_lines = ["__import__('gc').set_threshold(20000, 20, 20)"]
c.InlineBackend.print_figure_kwargs = {"bbox_inches": None}
c.HistoryManager.enabled = False
"""


def kernel_profile():
    """A fresh IPYTHONDIR for the test kernels (removed at unconfigure)."""
    ipython_dir = Path(tempfile.mkdtemp(prefix="emlib-test-ipython-"))
    profile = ipython_dir / "profile_default"
    profile.mkdir()
    (profile / "ipython_kernel_config.py").write_text(KERNEL_CONFIG)
    return str(ipython_dir)


KERNEL_IPYTHONDIR = kernel_profile()
os.environ["IPYTHONDIR"] = KERNEL_IPYTHONDIR


# The zygote this process started (the xdist controller, or a pytest process
# run alone), and this process's connection to a zygote.
ZYGOTE_OWNER = None
ZYGOTE = None


def forking(config):
    """Whether notebook kernels are forked: not if ``EMLIB_TEST_FORK=0``, or
    when tests are only collected."""
    if config.option.collectonly:
        return False
    return os.environ.get("EMLIB_TEST_FORK", "1") != "0"


def may_run_notebooks(config, notebooks):
    """Whether a path on the command line (or in testpaths) holds the notebooks."""
    for arg in config.args:
        path = Path(arg.split("::")[0]).resolve()
        if path == notebooks or path in notebooks.parents or notebooks in path.parents:
            return True
    return False


def start_zygote(notebooks):
    """Start the kernel zygote; its address is in the environment from now on."""
    global ZYGOTE_OWNER
    import kernel_zygote

    ZYGOTE_OWNER = kernel_zygote.Zygote.start(cwd=notebooks)
    os.environ[kernel_zygote.Zygote.ADDRESS_VARIABLE] = ZYGOTE_OWNER.address


def fork_kernels(notebooks):
    """From now on nbval's kernels are forks of the run's zygote.

    ``jupyter_client``'s local provisioner starts every kernel with its
    module's ``launch_kernel``; the replacement hands the kernels nbval asks
    for, ``python -m ipykernel_launcher`` of this interpreter, to the zygote,
    and anything else to the original. A pytest process run alone starts the
    zygote here; an xdist worker finds the controller's address.
    """
    global ZYGOTE
    import kernel_zygote
    from jupyter_client.provisioning import local_provisioner

    if kernel_zygote.Zygote.ADDRESS_VARIABLE not in os.environ:
        start_zygote(notebooks)
    ZYGOTE = kernel_zygote.Zygote(os.environ[kernel_zygote.Zygote.ADDRESS_VARIABLE])
    start_from_scratch = local_provisioner.launch_kernel

    def launch_kernel(cmd, **kwargs):
        if cmd[:3] == [sys.executable, "-m", "ipykernel_launcher"]:
            return ZYGOTE.launch_kernel(cmd, **kwargs)
        return start_from_scratch(cmd, **kwargs)

    local_provisioner.launch_kernel = launch_kernel


class _Formatted:
    """``pprint.pformat(obj)``, computed only if a log record is printed."""

    def __init__(self, obj):
        self.obj = obj

    def __str__(self):
        return pprint.pformat(self.obj)


def start_new_kernel(startup_timeout=60, kernel_name="python", **kwargs):
    """nbval's ``start_new_kernel``, without two waits for nothing.

    nbval starts each notebook's kernel with this function of its module and
    stops it with ``shutdown_kernel(now=True)``. Two steps of jupyter_client
    in between waited on a clock, not on the kernel: about 0.3 s a notebook,
    while its worker's core stood idle.

    - ``KernelClient.wait_for_ready`` ends by reading the IOPub channel
      until it has been silent for 0.2 s. Here readiness is what it is
      there, the kernel's reply to ``kernel_info`` on the shell channel and
      then a message on IOPub, without that last wait. nbval's
      ``RunningKernel`` checks IOPub again (``_ensure_iopub_up``) and, like
      jupyter_client's ``execute_interactive``, reads only the messages
      whose parent is the request it sent, so a status message left unread
      from here is never taken for a cell's output.
    - The kernel manager then polls a killed kernel every 5 ms, not 100 ms
      (``_KernelManager``).
    """
    import nbval.kernel

    manager = _KernelManager(
        kernel_name=kernel_name,
        kernel_spec_manager=nbval.kernel.NbvalKernelspecManager(),
    )
    manager.start_kernel(**kwargs)
    client = manager.client()
    client.start_channels()
    deadline = time.monotonic() + startup_timeout
    while True:
        client.kernel_info()
        try:
            reply = client.get_shell_msg(timeout=1)
            # A reply to this request or to an earlier one, as jupyter_client;
            # then a message on IOPub (the request's status), the proof that
            # this client's subscription has reached the kernel: messages
            # published before that are lost to it.
            if reply["msg_type"] == "kernel_info_reply":
                client.get_iopub_msg(timeout=0.2)
                return manager, client
        except queue.Empty:
            pass
        if not client.is_alive() or time.monotonic() > deadline:
            client.stop_channels()
            manager.shutdown_kernel(now=True)
            raise RuntimeError(
                f"kernel {kernel_name!r} did not answer kernel_info within "
                f"{startup_timeout} s, or died"
            )


class _KernelManager(jupyter_client.KernelManager):
    """jupyter_client's, polling a killed kernel every 5 ms instead of 100 ms.

    ``shutdown_kernel(now=True)`` sends SIGKILL to the kernel's process group
    and then waits, checking every ``pollinterval`` s, until the process has
    gone. SIGKILL cannot be caught and takes effect within milliseconds, so
    the first check, at once, usually found the kernel still there, and the
    second came 0.1 s later.
    """

    async def _async_wait(self, pollinterval=0.005):
        await super()._async_wait(pollinterval)


def pytest_configure(config):
    """Cheaper nbval: debug formatting only when shown; kernels started faster.

    ``nbval.kernel.get_message`` calls ``logger.debug(..., pformat(msg))``:
    the message is pretty-printed before logging decides to drop the record,
    for every message of every cell (1.6 s for 300 one-line cells, under
    cProfile). Passing the record a ``_Formatted`` defers that to the moment
    a handler formats it, so the log reads the same when it is switched on.
    Kernels start and stop through ``start_new_kernel`` above.
    """
    import nbval.kernel

    nbval.kernel.pformat = _Formatted
    nbval.kernel.start_new_kernel = start_new_kernel


@pytest.hookimpl(tryfirst=True)
def pytest_sessionstart(session):
    """In the xdist controller, start the zygote before the workers exist.

    The controller runs no test. ``tryfirst``: xdist's own
    ``pytest_sessionstart`` (its ``dsession`` plugin, registered under
    ``-n``) starts the workers, which then inherit the zygote's address in
    their environment, if notebooks may run.
    """
    config = session.config
    notebooks = config.rootpath / "notebooks"
    if (
        config.pluginmanager.has_plugin("dsession")
        and forking(config)
        and may_run_notebooks(config, notebooks)
    ):
        start_zygote(notebooks)


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item):
    """Before a notebook's kernel picks its ports, the zygote has its imports."""
    if ZYGOTE is not None and item.path.suffix == ".ipynb":
        ZYGOTE.wait_until_ready()


def pytest_collection_finish(session):
    """Fork the kernels if notebooks are to run; freeze what collection built."""
    notebooks = {
        item.path.parent for item in session.items if item.path.suffix == ".ipynb"
    }
    if len(notebooks) == 1 and forking(session.config):
        fork_kernels(notebooks.pop())
    gc.collect()
    gc.freeze()


@pytest.hookimpl(trylast=True)
def pytest_unconfigure(config):
    """Freeze everything before the interpreter's collections at exit.

    ``trylast``: pytest's unraisableexception plugin does a last
    ``gc.collect()`` in its own unconfigure, to report what the last tests
    left in cycles; this runs after it. The xdist controller collects no
    tests, so this is its only freeze. Every kernel has been shut down by
    now, so their profile directory goes too.
    """
    if ZYGOTE is not None:
        ZYGOTE.close()
    if ZYGOTE_OWNER is not None:
        ZYGOTE_OWNER.close()
    shutil.rmtree(KERNEL_IPYTHONDIR, ignore_errors=True)
    gc.freeze()
