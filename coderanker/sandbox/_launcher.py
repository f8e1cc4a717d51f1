"""Sandbox launcher: runs as `python -I -S -c <this source> <config json>` inside the
fresh process group that the parent created. It isolates the network, applies resource
limits, drops to the sandbox uid, then runs the program in this very interpreter (one
interpreter start per program). It reports on a status pipe, one byte per event:

    N  namespaces were not available (run continues)       E  setup failed (exit 125)
    C  the program does not compile                          R  compiled, now running
    M  the program ran out of memory                         D  the program ran to its end
    T  the program was killed at its CPU-time limit

Standard library only, no site: it is the first code in an untrusted process.
"""

import json
import os
import resource
import signal
import sys

CLONE_NEWNET = 0x40000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000


def tell(fd, event):
    try:
        os.write(fd, event)
    except OSError:
        pass


def new_namespaces(network):
    """A new PID namespace (its init's death kills every process in it) and, unless
    network is "host", a new network namespace with no interfaces up."""
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    user = 0 if os.geteuid() == 0 else CLONE_NEWUSER
    wanted = CLONE_NEWPID | (0 if network == "host" else CLONE_NEWNET)
    if libc.unshare(user | wanted) == 0:
        return True
    if network == "strict":
        raise OSError(ctypes.get_errno(), "cannot create network and PID namespaces")
    return False


def become_init_of_namespace(cfg):
    """Fork: the child is PID 1 of the new namespace and runs the program; this process
    waits and exits as the child did, so the parent sees the program's own status.
    PID 1 ignores SIGXCPU, so the CPU limit ends it with SIGKILL: the child's CPU time
    tells that kill from an out-of-memory kill."""
    pid = os.fork()
    if pid == 0:
        return
    _, status, usage = os.wait4(pid, 0)
    if os.WIFSIGNALED(status):
        if usage.ru_utime + usage.ru_stime >= cfg["rlimits"]["RLIMIT_CPU"] - 0.05:
            tell(cfg["status_fd"], b"T")
        if os.WTERMSIG(status) in (signal.SIGINT, signal.SIGPIPE):  # Python handles these
            signal.signal(os.WTERMSIG(status), signal.SIG_DFL)
        os.kill(os.getpid(), os.WTERMSIG(status))
    os._exit(os.waitstatus_to_exitcode(status))


def confine(cfg):
    if new_namespaces(cfg["network"]):
        become_init_of_namespace(cfg)
    else:
        tell(cfg["status_fd"], b"N")
    for name, value in cfg["rlimits"].items():
        resource.setrlimit(getattr(resource, name), (value, value))
    if cfg["uid"] is not None:
        os.setgroups([])
        os.setgid(cfg["uid"])
        os.setuid(cfg["uid"])
    os.umask(0o077)


def run_python(cfg):
    fd = cfg["status_fd"]
    path = cfg["program"]
    try:
        with open(path, "rb") as handle:
            code = compile(handle.read(), path, "exec")
    except MemoryError:
        tell(fd, b"M")
        os._exit(1)
    except (SyntaxError, ValueError, RecursionError) as err:
        tell(fd, b"C")
        sys.stderr.write(f"{type(err).__name__}: {err}\n")
        os._exit(1)
    tell(fd, b"R")
    sys.argv = [path]
    namespace = {"__name__": "__main__", "__file__": path, "__builtins__": __builtins__}
    status, event = 0, b"D"
    try:
        exec(code, namespace)
    except MemoryError:
        status, event = 1, b"M"
    except SystemExit as exit_:
        # An exit before the tests' end is not a pass, whatever its code.
        status = exit_.code if isinstance(exit_.code, int) else 1
        event = b""
    except BaseException:
        import traceback

        traceback.print_exc()
        status, event = 1, b""
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:
            pass
    if event:
        tell(fd, event)
    os._exit(status)


def main():
    cfg = json.loads(sys.argv[1])
    try:
        confine(cfg)
    except BaseException as err:
        tell(cfg["status_fd"], b"E")
        sys.stderr.write(f"sandbox setup failed: {type(err).__name__}: {err}\n")
        os._exit(125)
    if cfg["mode"] == "python":
        run_python(cfg)
    else:
        os.set_inheritable(cfg["status_fd"], False)
        tell(cfg["status_fd"], b"R")
        os.execv(cfg["argv"][0], cfg["argv"])


main()
