"""The warm sandbox worker ("zygote"): one per worker slot, started by the host as
`python3 -I -S -c <this source>` inside bubblewrap's PID, network, IPC, UTS and mount
namespaces, on a read-only view of the system. It never runs untrusted code itself.

It reads jobs on stdin and answers on stdout, one length-prefixed JSON message each. A job
is a few files and a list of steps (syntax check, compile, run). For every step it forks a
child that moves into a fresh directory on a size-limited tmpfs, sets the step's rlimits,
drops to the slot's uid and runs the step: Python programs in the child's own (already
warm) interpreter, everything else by execve. The worker enforces the wall-clock limit,
caps the output, and after every step SIGKILLs every other process in its PID namespace
(daemons that left the process group included) before it answers.

Events a Python child writes on fd 3, one byte each:
    C  the program does not compile     R  compiled, now running     D  ran to its end
    M  the program ran out of memory    E  sandbox set-up failed (never the program's fault)

Standard library only, no site.
"""

import base64
import ctypes
import fnmatch
import json
import os
import resource
import select
import shutil
import signal
import stat
import struct
import sys
import time

ROOT = "/tmp"
WORK = "/tmp/w"
MS_NOSUID, MS_NODEV = 2, 4
PR_SET_NO_NEW_PRIVS = 38
LIBC = ctypes.CDLL(None, use_errno=True)


def tell(fd, event):
    try:
        os.write(fd, event)
    except OSError:
        pass


def mount_tmpfs(size_mb, inodes):
    """A private tmpfs with a byte and an inode budget (many empty files fill it too).
    Needs CAP_SYS_ADMIN in this mount namespace; without it bubblewrap's sized tmpfs stays."""
    options = f"size={size_mb}m,nr_inodes={inodes},mode=0755".encode()
    return LIBC.mount(b"tmpfs", ROOT.encode(), b"tmpfs", MS_NOSUID | MS_NODEV, options) == 0


def run_python(path, events):
    try:
        with open(path, "rb") as handle:
            code = compile(handle.read(), path, "exec")
    except MemoryError:
        tell(events, b"M")
        os._exit(1)
    except (SyntaxError, ValueError, RecursionError) as err:
        tell(events, b"C")
        sys.stderr.write(f"{type(err).__name__}: {err}\n")
        sys.stderr.flush()
        os._exit(1)
    tell(events, b"R")
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
    except BaseException as err:
        import traceback

        try:
            traceback.print_exception(type(err), err, err.__traceback__.tb_next)  # from the program's frame
        except BaseException:  # the program closed or broke stderr
            pass
        status, event = 1, b""
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:
            pass
    if event:
        tell(events, event)
    os._exit(status)


def child(job, step, out_w, err_w, events_w):
    """In the forked child: confine, then run the step. Never returns."""
    confined = False
    try:
        devnull = os.open("/dev/null", os.O_RDONLY)
        os.dup2(devnull, 0)
        os.dup2(out_w, 1)
        os.dup2(err_w, 2)
        os.dup2(events_w, 3, inheritable=step["argv"] is None)  # exec'd tools never see it
        os.closerange(4, 65536)
        os.setsid()
        os.chdir(WORK)
        for name, value in step["rlimits"].items():
            soft = int(value)
            hard = soft + 1 if name == "RLIMIT_CPU" else soft  # SIGXCPU first, SIGKILL a second later
            resource.setrlimit(getattr(resource, name), (soft, hard))
        if job["uid"] is not None:
            os.setgroups([])
            os.setgid(job["uid"])
            os.setuid(job["uid"])
        LIBC.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)
        os.umask(0o077)
        os.environ.clear()
        os.environ.update(step["env"])
        confined = True  # from here on, whatever goes wrong is the program's doing
        if step["argv"] is None:
            run_python(os.path.join(WORK, step["python"]), 3)
        for sig in (signal.SIGPIPE, signal.SIGXFSZ, signal.SIGINT):
            signal.signal(sig, signal.SIG_DFL)
        os.execve(step["argv"][0], step["argv"], step["env"])
    except BaseException as err:
        if confined and step["argv"] is None:
            os._exit(1)
        tell(3, b"E")
        try:
            os.write(2, f"sandbox set-up failed: {type(err).__name__}: {err}\n".encode())
        except OSError:
            pass
    os._exit(125)


def kill_everything_else(limit_s=5.0):
    """SIGKILL every process of this PID namespace but its init and this worker; wait
    until the init has reaped them all. True when none is left."""
    end = time.monotonic() + limit_s
    while time.monotonic() < end:
        try:
            os.kill(-1, signal.SIGKILL)
        except ProcessLookupError:
            return True
        time.sleep(0.001)
    return False


class Tail:
    def __init__(self, keep):
        self.keep, self.data, self.total = keep, b"", 0

    def add(self, chunk):
        self.total += len(chunk)
        self.data = (self.data + chunk)[-self.keep :]


def run_step(job, step):
    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    ev_r, ev_w = os.pipe()
    start = time.monotonic()
    pid = os.fork()
    if pid == 0:
        child(job, step, out_w, err_w, ev_w)
    for fd in (out_w, err_w, ev_w):
        os.close(fd)
    pidfd = os.pidfd_open(pid)
    out, err, events = Tail(job["tail"]), Tail(job["tail"]), bytearray()
    sinks = {out_r: out.add, err_r: err.add, ev_r: events.extend}
    deadline = start + step["timeout"]
    timed_out = flooded = False
    exited_at = None
    while sinks or exited_at is None:
        now = time.monotonic()
        if exited_at is not None and now - exited_at > 0.05:  # left-over processes may hold the pipes
            break
        if now >= deadline:
            timed_out = exited_at is None
            break
        wait = [pidfd] if exited_at is None else []
        ready, _, _ = select.select(list(sinks) + wait, [], [], min(0.05, deadline - now))
        for fd in ready:
            if fd == pidfd:
                exited_at = time.monotonic()
                continue
            chunk = os.read(fd, 65536)
            if chunk:
                sinks[fd](chunk)
            else:
                del sinks[fd]
                os.close(fd)
        if out.total + err.total > job["output_limit"]:
            flooded = True
            break
    if exited_at is None:
        os.kill(pid, signal.SIGKILL)
    _, status, usage = os.wait4(pid, 0)
    clean = kill_everything_else()
    for fd in list(sinks) + [pidfd]:
        os.close(fd)
    return {
        "stage": step["stage"],
        "code": os.waitstatus_to_exitcode(status),
        "events": events.decode("ascii", "replace"),
        "timed_out": timed_out,
        "flooded": flooded,
        "cpu_s": usage.ru_utime + usage.ru_stime,
        "duration_s": time.monotonic() - start,
        "stdout": base64.b64encode(out.data).decode(),
        "stderr": base64.b64encode(err.data).decode(),
        "clean": clean,
    }


def keep_files(patterns, limit):
    """Regular files (never links) in the work directory matching the patterns."""
    kept, total = {}, 0
    for entry in os.scandir(WORK):
        if not any(fnmatch.fnmatch(entry.name, pattern) for pattern in patterns):
            continue
        fd = os.open(entry.path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
        try:
            info = os.fstat(fd)
            if not stat.S_ISREG(info.st_mode) or total + info.st_size > limit:
                continue
            total += info.st_size
            with os.fdopen(os.dup(fd), "rb") as handle:
                kept[entry.name] = base64.b64encode(handle.read()).decode()
        finally:
            os.close(fd)
    return kept


def fresh_workdir(job):
    for entry in os.scandir(ROOT):
        if entry.is_dir(follow_symlinks=False):
            shutil.rmtree(entry.path, ignore_errors=True)
        else:
            os.unlink(entry.path)
    os.mkdir(WORK, 0o700)
    for name, data in job["files"].items():
        path = os.path.join(WORK, os.path.basename(name))
        with open(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o700), "wb") as handle:
            handle.write(base64.b64decode(data))  # executable: cached binaries run as they are
        if job["uid"] is not None:
            os.chown(path, job["uid"], job["uid"])
    if job["uid"] is not None:
        os.chown(WORK, job["uid"], job["uid"])


def reported_errors(stderr_b64):
    """A quiet step's stderr has lines other than warnings."""
    text = base64.b64decode(stderr_b64).decode("utf-8", "replace")
    return any(line.strip() and "warning:" not in line for line in text.splitlines())


def run_job(job):
    fresh_workdir(job)
    steps, files = [], {}
    for step in job["steps"]:
        result = run_step(job, step)
        steps.append(result)
        ok = result["code"] == 0 and not (result["timed_out"] or result["flooded"] or "E" in result["events"])
        ok = ok and not (step.get("quiet") and reported_errors(result["stderr"]))
        if not ok or not result["clean"]:
            break
        if step.get("keep"):
            files = keep_files(step["keep"], job["keep_limit"])
    fresh_workdir({"files": {}, "uid": None})
    return {"steps": steps, "files": files}


def read_message(fd):
    header = read_exactly(fd, 4)
    if header is None:
        return None
    return json.loads(read_exactly(fd, struct.unpack(">I", header)[0]))


def read_exactly(fd, size):
    data = b""
    while len(data) < size:
        chunk = os.read(fd, size - len(data))
        if not chunk:
            return None
        data += chunk
    return data


def write_message(fd, message):
    data = json.dumps(message).encode()
    data = struct.pack(">I", len(data)) + data
    while data:
        data = data[os.write(fd, data) :]


#: Imported once here, so each forked child finds them loaded (a fresh `import typing` costs
#: milliseconds, more than the rest of a typical test run). Children get copies: nothing leaks.
WARM_MODULES = ("typing", "math", "re", "collections", "itertools", "functools", "heapq", "bisect", "string",
                "hashlib", "random", "fractions", "decimal", "statistics", "copy", "operator", "traceback")


def main():
    settings = json.loads(sys.argv[1])
    for module in WARM_MODULES:
        try:
            __import__(module)
        except ImportError:
            pass
    requests, answers = os.dup(0), os.dup(1)  # children get other fds 0-2; Python's own streams stay unused
    null = os.open("/dev/null", os.O_RDWR)
    os.dup2(null, 0)
    os.dup2(null, 1)
    mounted = os.geteuid() == 0 and mount_tmpfs(settings["tmp_size_mb"], settings["tmp_inodes"])
    write_message(answers, {"ready": True, "tmpfs": "own" if mounted else "bubblewrap"})
    while True:
        job = read_message(requests)
        if job is None:
            return
        try:
            answer = run_job(job)
        except Exception as err:  # the worker's own failure: sandbox_error, never a label
            kill_everything_else()
            answer = {"error": f"{type(err).__name__}: {err}"}
        write_message(answers, answer)


main()
