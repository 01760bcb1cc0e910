"""A notebook's kernel forked from the zygote sees the world a fresh kernel sees.

``pytest_speedups`` hands nbval's kernels to ``kernel_zygote``, which forks
them from a process that has imported the notebooks' libraries already. What
a notebook can observe of its process, apart from which modules are
imported, must not change: the working directory, ``sys.path``, ``sys.argv``,
every environment variable, matplotlib's backend and how it displays
figures (inline, drawn with the test profile's settings, after each cell),
the profile's configuration. A kernel started from scratch, as
jupyter_client starts it, is the reference.
"""

import json
from pathlib import Path

import kernel_zygote
import pytest
import pytest_speedups
from jupyter_client import launcher
from jupyter_client.provisioning import local_provisioner
from nbval.kernel import CURRENT_ENV_KERNEL_NAME, start_new_kernel

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
# A notebook's first cell imports pyplot; what that leaves is part of the world.
WORLD = """\
import json, os, sys, matplotlib, matplotlib.pyplot
from matplotlib.figure import Figure
from matplotlib_inline.backend_inline import InlineBackend
shell = get_ipython()
print(json.dumps({
    "cwd": os.getcwd(), "path": sys.path, "argv0": sys.argv[0],
    "env": dict(os.environ), "backend": matplotlib.get_backend(),
    "interactive": matplotlib.is_interactive(),
    "after_each_cell": [
        f.__qualname__ for f in shell.events.callbacks["post_execute"]
    ],
    "figure_formats": sorted(
        kind for kind, formatter in shell.display_formatter.formatters.items()
        if Figure in formatter.type_printers
    ),
    "figure_settings": repr(InlineBackend.instance().print_figure_kwargs),
    "gc_thresholds": __import__("gc").get_threshold(),
}))
"""


def world(launch):
    """What a kernel started by ``launch`` prints of its process."""
    lines = []

    def keep_stdout(msg):
        if msg["msg_type"] == "stream":
            lines.append(msg["content"]["text"])

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(local_provisioner, "launch_kernel", launch)
        km, kc = start_new_kernel(kernel_name=CURRENT_ENV_KERNEL_NAME, cwd=NOTEBOOKS)
    try:
        reply = kc.execute_interactive(WORLD, output_hook=keep_stdout, timeout=60)
        assert reply["content"]["status"] == "ok"
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)
    return json.loads("".join(lines))


@pytest.fixture(scope="module")
def zygote():
    """The run's zygote when notebooks run in this process, else a new one."""
    if pytest_speedups.ZYGOTE is not None:
        yield pytest_speedups.ZYGOTE
        return
    owner = kernel_zygote.Zygote.start(cwd=NOTEBOOKS)
    client = kernel_zygote.Zygote(owner.address)
    yield client
    client.close()
    owner.close()


def test_a_forked_kernel_sees_what_a_fresh_one_sees(zygote):
    forked = world(zygote.launch_kernel)
    fresh = world(launcher.launch_kernel)
    # The connection file names each kernel: the one variable allowed to differ.
    for seen in (forked, fresh):
        seen["env"].pop("JPY_SESSION_NAME", None)
    assert forked == fresh
