"""A warm parent for the notebook kernels: it imports once, then forks each kernel.

Every notebook under nbval gets a kernel of its own, a fresh ``python -m
ipykernel_launcher`` process. Before its first cell computes anything, that
process has spent about 1 s starting IPython and the kernel, and the
notebook's first cell 1-3 s importing numpy, SciPy, SymPy, matplotlib and
scikit-learn: close to half of all the CPU the notebooks cost. This process
pays those imports once per pytest process. ``pytest_speedups`` starts it,
and each kernel is then a ``fork()`` of it: the child runs exactly what
``python -m ipykernel_launcher -f <connection file>`` runs, with the
environment and working directory the kernel manager asked for, in a process
that has the modules already imported. Importing a module a second time is
a dictionary look-up, so the notebook's own import cell still runs, and
names nothing it did not import itself.

What the child shares with its siblings is the state the imports left,
nothing a notebook computes: every kernel is forked from this process as it
was after the imports, before any notebook ran. Nothing here seeds or draws
random numbers, changes an option, or starts a thread pool that a fork
would break. OpenBLAS, numpy's linear algebra, stops its threads before a
fork and restarts them in the child (its ``pthread_atfork`` handlers).
matplotlib is imported with the backend the kernel sets,
``MPLBACKEND=module://matplotlib_inline.backend_inline``, the variable
ipykernel sets before it runs a cell (``IPKernelApp.init_gui_pylab``), and
each forked kernel configures inline figures once its shell exists
(``become_kernel``), so figures are drawn and displayed exactly as in a
kernel started from scratch; nbval compares every output a cell makes, a
figure's too (its ``text/plain``), so a figure that failed to display would
fail the notebook's test.

One zygote serves every pytest process of a run. Under ``pytest -n 2`` the
xdist controller starts it (``Zygote.start``) before the workers exist and
hands them its address in ``EMLIB_KERNEL_ZYGOTE``; a pytest process run
alone starts its own. The imports are paid once per run, not once per
worker, and while the workers collect the tests.

Protocol, on a Unix socket whose listening end the starting process creates
and passes down (so a client can connect at once): each client connection
receives "ready", one line, once the imports are done; then it sends one
JSON request a line, ``{"argv": [...], "env": {...}, "cwd": "..."}``, and
gets for each the kernel's process id, one line. A client that goes away
only closes its connection. End of this process's standard input (the
process that started it ended, or died) ends this process; a kernel whose
parent has gone exits too (ipykernel's parent poller). This process waits
for each kernel it forked when it exits (``reap``); the pytest process,
whose child the kernel is not, follows each one through a pidfd
(``ForkedKernel``).
"""

import contextlib
import importlib.util
import json
import os
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile

# What the notebooks import, with the kernel's own modules.
PRELOAD = (
    "ipykernel.kernelapp",
    "ipykernel.ipkernel",
    "matplotlib_inline.backend_inline",
    "matplotlib.pyplot",
    "numpy",
    "scipy.differentiate",
    "scipy.integrate",
    "scipy.linalg",
    "scipy.optimize",
    "scipy.special",
    "scipy.stats",
    "sympy",
    "sympy.stats",
    # What SymPy imports on first use, not with sympy: a first derivative
    # (combinatorics, sets, tensor), lambdify (codegen), solve (physics.units,
    # when it checks a solution), matrix calculus (assumptions.satask) and
    # integrate (manualintegrate), about 0.1 s per notebook, 0.25 s in those
    # that solve.
    "sympy.assumptions.satask",
    "sympy.codegen",
    "sympy.combinatorics",
    "sympy.integrals.manualintegrate",
    "sympy.physics.units",
    "sympy.sets.setexpr",
    "sympy.tensor.tensor",
    "sklearn.datasets",
    "sklearn.decomposition",
    "sklearn.mixture",
    "hmmlearn.hmm",
    "emlib",
    "embook.data",
    "embook.em_runs",
    "embook.missing",
    "embook.mixture_plots",
    "embook.mixture_reference",
    "embook.params",
    "embook.sym",
)


# What importing ipykernel's debugger wrote into the environment: debugpy
# sets PYDEVD_USE_FRAME_EVAL=NO unless it is set. A kernel imports it as it
# starts, before any cell, so become_kernel puts it back. (The notebooks'
# own imports set variables too, scikit-learn's KMP_*, but a fresh kernel
# has them only once its notebook imports that library.)
DEBUGGER_ENVIRONMENT = {}


def preload():
    """Import what every kernel would, with the kernel's matplotlib backend.

    A module that fails to import is left out: the notebook that imports it
    then fails at its import cell, as it would in a kernel started from
    scratch (``make mutate`` relies on that, with an emlib made unimportable).
    """
    os.environ.setdefault("MPLBACKEND", "module://matplotlib_inline.backend_inline")
    environment = dict(os.environ)
    with contextlib.suppress(Exception), quiet_standard_error():
        __import__("ipykernel.debugger")
    DEBUGGER_ENVIRONMENT.update(
        (key, value)
        for key, value in os.environ.items()
        if environment.get(key) != value
    )
    for name in PRELOAD:
        with contextlib.suppress(Exception):
            __import__(name)
    with contextlib.suppress(Exception):
        draw_a_figure()


@contextlib.contextmanager
def quiet_standard_error():
    """File descriptor 2 on /dev/null for a while, as a kernel's under nbval.

    Each kernel imports ipykernel's debugger as it starts (about 0.08 s of
    CPU), and its debugpy prints a warning about frozen modules when
    imported. A kernel's standard error is /dev/null under nbval, so the
    warning is never seen; imported here, it would be printed in the test
    run's output, unless this process's standard error goes there too.
    """
    saved = os.dup(2)
    null = os.open(os.devnull, os.O_WRONLY)
    os.dup2(null, 2)
    os.close(null)
    try:
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def draw_a_figure():
    """Draw one figure with text and mathematics, outside pyplot, and drop it.

    A process's first figure loads the fonts and builds matplotlib's
    mathtext parser, about 0.13 s of CPU that every notebook with a figure
    paid again; they are caches, kept by the kernels forked from here. The
    figure is never pyplot's (no figure number is taken) and nothing of it
    outlives this function.
    """
    import io

    from matplotlib.figure import Figure

    figure = Figure()
    axes = figure.add_subplot()
    axes.plot([0, 1], [0, 1], label=r"$\log P(Y \mid \theta)$")
    axes.set_xlabel(r"$\sigma_k^2$")
    axes.legend()
    figure.savefig(io.BytesIO(), format="png")


def become_kernel(request, channel_fds, ready):
    """In the forked child: the kernel the request describes. Never returns.

    ``ready`` is written once the child leads a process group of its own, as
    jupyter_client starts kernels: the kernel manager reads the group of the
    process it is handed and signals the group (an interrupt, a kill), which
    must not be the zygote's or the tests'.
    """
    os.setsid()
    os.write(ready, b"1")
    os.close(ready)
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)  # the kernel waits for its own
    for fd in channel_fds:
        os.close(fd)
    null = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(null, fd)
    os.close(null)
    os.environ.clear()
    os.environ.update(request["env"])
    for key, value in DEBUGGER_ENVIRONMENT.items():
        os.environ.setdefault(key, value)
    os.chdir(request["cwd"])
    # `python -m` puts "" first on the path and ipykernel_launcher takes it
    # out; here the zygote's working directory is in that place.
    del sys.path[0]
    # python -m ipykernel_launcher <args>: what the launcher's __main__ runs,
    # with the arguments that command would see.
    launcher = importlib.util.find_spec("ipykernel_launcher").origin
    sys.argv = [launcher, *request["argv"][3:]]
    status = 1
    try:
        from ipykernel.kernelapp import IPKernelApp
        from matplotlib_inline import backend_inline

        # IPKernelApp.launch_instance(), with one step between the two halves.
        app = IPKernelApp.instance()
        app.initialize()
        # In a kernel started from scratch, the notebook's first import of
        # pyplot imports the inline backend, whose import, finding a shell,
        # makes matplotlib interactive and configures inline figures: the
        # PNG formatter with the profile's settings, the display of each
        # cell's figures when it ends. Here the zygote imported that module,
        # before any shell existed, so the step is taken now.
        backend_inline._enable_matplotlib_integration()
        app.start()
        status = 0
    finally:
        os._exit(status)


def reap(signum=None, frame=None):
    """Collect every kernel that has exited (the ``SIGCHLD`` handler).

    Waiting for them, rather than letting the system discard them, keeps
    their CPU time in this process's children's account, and so, once the
    pytest process has waited for this one, in what ``time make test``
    reports.
    """
    with contextlib.suppress(ChildProcessError):
        while os.waitpid(-1, os.WNOHANG)[0]:
            pass


def serve(listener, owner):
    """Answer the clients' requests until ``owner`` (our standard input) ends."""
    clients = {}  # socket -> its buffered reader and writer
    while True:
        readable = select.select([owner, listener, *clients], [], [])[0]
        if owner in readable and not os.read(owner.fileno(), 4096):
            return
        if listener in readable:
            client = listener.accept()[0]
            clients[client] = (client.makefile("r"), client.makefile("w"))
            write_line(clients[client][1], "ready")
        for client in set(readable) & set(clients):
            reader, writer = clients[client]
            # A client sends its next request only after our reply, so a
            # readable socket holds one whole line, or nothing (it closed).
            line = reader.readline()
            if not line:
                for stream in (reader, writer, client):
                    stream.close()
                del clients[client]
                continue
            channels = (owner, listener, *clients)
            write_line(writer, str(fork_kernel(json.loads(line), channels)))


def fork_kernel(request, channels):
    """Fork the kernel ``request`` describes; its process id, once it has its group."""
    wait_for, ready = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(wait_for)
        become_kernel(request, [channel.fileno() for channel in channels], ready)
    os.close(ready)
    os.read(wait_for, 1)  # the child has its own session and group
    os.close(wait_for)
    return pid


def write_line(writer, text):
    writer.write(text + "\n")
    writer.flush()


def main():
    # Anything this process prints (an import's warning) goes to standard
    # error; the listening socket is the inherited descriptor named in argv.
    os.dup2(2, 1)
    listener = socket.socket(fileno=int(sys.argv[1]))
    # Not this script's directory but the working one (the notebooks', where
    # embook is), first on the path, as for `python -m ipykernel_launcher`.
    sys.path[0] = os.getcwd()
    preload()
    signal.signal(signal.SIGCHLD, reap)
    serve(listener, sys.stdin)
    # The pytest processes shut every kernel down before our input ended.
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    with contextlib.suppress(ChildProcessError):
        while True:
            os.wait()


class ForkedKernel:
    """The kernel process as jupyter_client's local provisioner handles it.

    The part of ``subprocess.Popen`` that ``LocalProvisioner`` uses:
    ``pid``, ``poll``, ``wait``, ``send_signal``, ``kill``, ``terminate``
    and the standard streams (none). The kernel is the zygote's child, not
    this process's, so it is followed through a pidfd, which becomes
    readable when the process exits. Its exit status is the zygote's to
    collect, so ``returncode`` is 0 once it has exited; nbval and
    jupyter_client only ask whether it has.
    """

    stdin = stdout = stderr = None

    def __init__(self, pid):
        self.pid = pid
        self.returncode = None
        try:
            self._pidfd = os.pidfd_open(pid)
        except ProcessLookupError:  # exited already, and reaped
            self._pidfd = None
            self.returncode = 0

    def wait(self, timeout=None):
        """Block until the kernel exits (or ``timeout`` seconds); its returncode."""
        if self.returncode is None:
            if select.select([self._pidfd], [], [], timeout)[0]:
                os.close(self._pidfd)
                self._pidfd = None
                self.returncode = 0
            else:
                raise subprocess.TimeoutExpired(f"kernel {self.pid}", timeout)
        return self.returncode

    def poll(self):
        """None while the kernel runs, then its returncode."""
        try:
            return self.wait(timeout=0)
        except subprocess.TimeoutExpired:
            return None

    def send_signal(self, signum):
        """Signal the kernel; ProcessLookupError once it has exited."""
        if self.poll() is not None:
            raise ProcessLookupError(f"kernel {self.pid} has exited")
        signal.pidfd_send_signal(self._pidfd, signum)

    def kill(self):
        self.send_signal(signal.SIGKILL)

    def terminate(self):
        self.send_signal(signal.SIGTERM)


class Zygote:
    """The client side: asks the zygote at ``address`` for kernels."""

    ADDRESS_VARIABLE = "EMLIB_KERNEL_ZYGOTE"

    def __init__(self, address):
        self.socket = socket.socket(socket.AF_UNIX)
        self.socket.connect(address)
        self.reader = self.socket.makefile("r")
        self.writer = self.socket.makefile("w")
        self.ready = False

    @classmethod
    def start(cls, cwd):
        """Start a zygote in ``cwd``, the notebooks' directory; its ``Owner``.

        The listening socket exists before this returns, so clients can
        connect at once; the zygote accepts them once its imports are done.
        """
        directory = tempfile.mkdtemp(prefix="emlib-kernel-zygote-")
        address = os.path.join(directory, "socket")
        listener = socket.socket(socket.AF_UNIX)
        listener.bind(address)
        listener.listen()
        process = subprocess.Popen(
            [sys.executable, __file__, str(listener.fileno())],
            stdin=subprocess.PIPE,
            cwd=cwd,
            pass_fds=[listener.fileno()],
        )
        listener.close()
        return Owner(process, directory, address)

    def wait_until_ready(self):
        """Block until the zygote has imported everything (once).

        Call it before a kernel manager picks its ports: a kernel binds the
        ports written in its connection file when it starts, and the longer
        that is after they were picked, free, the likelier another process
        (a Dask cluster of another test) has taken one. A kernel started
        from scratch starts at once; a fork asked for during the imports
        would wait for them.
        """
        if not self.ready:
            self.ready = self._reply() == "ready"

    def _reply(self):
        reply = self.reader.readline()
        if not reply:
            raise RuntimeError(
                "the kernel zygote exited; run without it: EMLIB_TEST_FORK=0"
            )
        return reply.strip()

    def launch_kernel(self, cmd, *, env, cwd=None, independent=False, **ignored):
        """A kernel for ``python -m ipykernel_launcher <args>``, forked.

        The arguments of ``jupyter_client.launcher.launch_kernel``: ``env``
        and ``cwd`` as it passes them to ``Popen``, with the variable it adds,
        ``JPY_PARENT_PID``, the process the kernel's parent poller watches;
        the standard streams (``ignored``) are /dev/null in the kernel.
        """
        env = dict(env)
        if not independent:
            env["JPY_PARENT_PID"] = str(os.getpid())
        request = {"argv": list(cmd), "env": env, "cwd": str(cwd or os.getcwd())}
        self.wait_until_ready()
        write_line(self.writer, json.dumps(request))
        return ForkedKernel(int(self._reply()))

    def close(self):
        """Hang up; the zygote serves the other clients until its owner ends."""
        for stream in (self.reader, self.writer, self.socket):
            stream.close()


class Owner:
    """The process that started a zygote: its lifetime and its address."""

    def __init__(self, process, directory, address):
        self.process = process
        self.directory = directory
        self.address = address

    def close(self, timeout=30):
        """End of input ends the zygote, once its kernels (shut down) have exited.

        A kernel still running after ``timeout`` seconds is left to its
        parent poller: the zygote is killed, and the kernel, orphaned, exits.
        """
        self.process.stdin.close()
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        shutil.rmtree(self.directory, ignore_errors=True)


if __name__ == "__main__":
    main()
