"""The warm sandbox worker ("zygote"): one per worker slot, started by the host as
`python3 -I -S -c <this source>` inside bubblewrap's PID, network, IPC, UTS and mount
namespaces, on a read-only view of the system. It never runs untrusted code itself.

It reads jobs on stdin and answers on stdout, one length-prefixed JSON message each. A job
is a few files and a list of steps (syntax check, compile, run; or one run per stdin/stdout
case, whose input the child gets as its stdin and whose output the worker compares with the
expected one). A compile step may go to a warm compiler (see COMPILERS). For every step it forks a
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
import re
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
STDIN = "/tmp/.stdin"  # a case's input; outside WORK, root-only
MS_NOSUID, MS_NODEV = 2, 4
PR_SET_NO_NEW_PRIVS = 38
LIBC = ctypes.CDLL(None, use_errno=True)


def tell(fd, event):
    try:
        os.write(fd, event)
    except OSError:
        pass


def mount_tmpfs(size_mb, inodes):
    """A private tmpfs at /tmp with a byte and an inode budget (many empty files fill it too):
    the program's directory and a writable, sticky /tmp, wiped before and after every job.
    Needs CAP_SYS_ADMIN in this mount namespace; without it bubblewrap's sized tmpfs stays."""
    options = f"size={size_mb}m,nr_inodes={inodes},mode=1777".encode()  # a machine's /tmp: anyone, sticky
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
        stdin = os.open(STDIN if "stdin" in step else "/dev/null", os.O_RDONLY)  # before the uid drops
        os.dup2(stdin, 0)
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
    """SIGKILL every process of this PID namespace but its init, this worker and its warm
    compilers; wait until the init has reaped them all. True when none is left."""
    end = time.monotonic() + limit_s
    spare = {1, os.getpid(), *(server["pid"] for server in COMPILERS.values())}
    while time.monotonic() < end:
        if len(spare) == 2:  # no compiler to spare: one call signals them all
            try:
                os.kill(-1, signal.SIGKILL)
            except ProcessLookupError:
                return True
        else:
            others = [int(name) for name in os.listdir("/proc") if name.isdigit() and int(name) not in spare]
            if not others:
                return True
            for pid in others:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        time.sleep(0.001)
    return False


# Warm compilers (coderanker/sandbox/warm.py): one long-lived compiler process per kind
# (javac in a JVM, tsc in node), started on first use inside this sandbox under a uid of
# its own (programs cannot signal, trace or write to it), with the compile step's limits
# but a per-request wall-clock limit. Any failure of a compiler falls back to the cold
# compile, which stays the authority; a request that runs out of time is a compile timeout.

COMPILERS = {}
FALLBACKS = []  # why warm compiles went cold (reported with the job's answer)
BROKEN = set()  # kinds whose compiler could not start: compiled cold for this sandbox's life
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def drop_to(uid):
    if uid is not None:
        os.setgroups([])
        os.setgid(uid)
        os.setuid(uid)
    LIBC.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)


def confine(rlimits, uid, directory):
    os.chdir(directory)
    for name, value in rlimits.items():
        resource.setrlimit(getattr(resource, name), (int(value), int(value)))
    drop_to(uid)
    os.umask(0o077)


def own(path, uid):
    if uid is None:
        return
    os.chown(path, uid, uid)
    for folder, dirs, files in os.walk(path):
        for name in dirs + files:
            os.chown(os.path.join(folder, name), uid, uid, follow_symlinks=False)


def start_compiler(job, spec):
    """Set up and start one warm compiler; None when it cannot start."""
    uid, directory = job.get("compiler_uid"), spec["dir"]
    shutil.rmtree(directory, ignore_errors=True)
    os.mkdir(directory, 0o700)
    for name, text in spec["files"].items():
        with open(os.path.join(directory, name), "w", encoding="utf-8") as handle:
            handle.write(text)
    own(directory, uid)
    devnull = os.open("/dev/null", os.O_RDWR)
    if spec.get("setup"):  # e.g. compile the server itself
        pid = os.fork()
        if pid == 0:
            try:
                for fd in (0, 1, 2):
                    os.dup2(devnull, fd)
                os.closerange(3, 65536)
                confine(spec["rlimits"], uid, directory)
                os.execve(spec["setup"][0], spec["setup"], spec["env"])
            finally:
                os._exit(127)
        deadline = time.monotonic() + spec["setup_timeout"]
        while os.waitpid(pid, os.WNOHANG)[0] == 0:
            if time.monotonic() > deadline:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
                os.close(devnull)
                return None
            time.sleep(0.01)
        # the child has ended (and been reaped): it set the server up if it wrote its output
        if not os.path.exists(os.path.join(directory, spec["setup_output"])):
            os.close(devnull)
            return None
    requests_r, requests_w = os.pipe()
    answers_r, answers_w = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.dup2(requests_r, 0)
            os.dup2(answers_w, 1)
            os.dup2(os.open(os.path.join(directory, "server.log"), os.O_WRONLY | os.O_CREAT, 0o600), 2)
            os.closerange(3, 65536)
            confine(spec["rlimits"], uid, directory)
            os.execve(spec["argv"][0], spec["argv"], spec["env"])
        finally:
            os._exit(127)
    for fd in (requests_r, answers_w, devnull):
        os.close(fd)
    return {"pid": pid, "to": requests_w, "from": answers_r, "dir": directory, "uid": uid, "served": 0}


def stop_compiler(kind):
    server = COMPILERS.pop(kind, None)
    if server is None:
        return
    try:
        os.kill(server["pid"], signal.SIGKILL)
        os.waitpid(server["pid"], 0)
    except (ProcessLookupError, ChildProcessError):  # it had ended, and was reaped
        pass
    for fd in (server["to"], server["from"]):
        os.close(fd)
    shutil.rmtree(server["dir"], ignore_errors=True)


def cpu_seconds(pid):
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            fields = handle.read().rsplit(b")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS
    except (OSError, IndexError, ValueError):
        return 0.0


def ask(server, args, deadline):
    """Send one request; (exit code, diagnostics), "timeout", or None when the server failed."""
    try:
        os.write(server["to"], ("\0".join(args) + "\n").encode())
    except OSError as err:
        FALLBACKS.append("write " + str(err))
        return None
    data = b""
    while True:
        header_end = data.find(b"\n")
        if header_end >= 0:
            try:
                code, size = map(int, data[:header_end].split())
            except ValueError:
                FALLBACKS.append("bad header " + repr(data[:300]))
                return None
            if len(data) >= header_end + 1 + size:
                return code, data[header_end + 1 : header_end + 1 + size]
        left = deadline - time.monotonic()
        if left <= 0:
            return "timeout"
        ready, _, _ = select.select([server["from"]], [], [], left)
        if not ready:
            return "timeout"
        chunk = os.read(server["from"], 65536)
        if not chunk:
            FALLBACKS.append("eof " + repr(data[:300]))
            return None
        data += chunk


def compile_warm(job, step):
    """The compile step on a warm compiler: the same result a cold compile gives, or None
    to compile cold (the compiler could not start or failed)."""
    spec = step["server"]
    kind = spec["kind"]
    # a compiler serves only jobs with its own settings (limits, command): others restart it
    signature = json.dumps([spec["argv"], spec["rlimits"], spec.get("setup"), spec["env"]], sort_keys=True)
    server = COMPILERS.get(kind)
    if server is not None and (server["served"] >= spec["requests_per_server"] or server["signature"] != signature
                               or os.waitpid(server["pid"], os.WNOHANG)[0] != 0):
        stop_compiler(kind)
        server = None
    if server is None:
        if (kind, signature) in BROKEN:
            return None
        try:
            server = start_compiler(job, spec)
        except OSError:
            server = None
        if server is None:
            BROKEN.add((kind, signature))
            shutil.rmtree(spec["dir"], ignore_errors=True)
            return None
        server["signature"] = signature
        COMPILERS[kind] = server
    folder = os.path.join(server["dir"], "job")
    shutil.rmtree(folder, ignore_errors=True)
    os.mkdir(folder, 0o700)
    shutil.copyfile(os.path.join(WORK, spec["source"]), os.path.join(folder, spec["source"]))
    own(folder, server["uid"])
    start, cpu = time.monotonic(), cpu_seconds(server["pid"])
    answer = ask(server, [arg.replace("{dir}", folder) for arg in spec["args"]], start + step["timeout"])
    server["served"] += 1
    result = {"stage": step["stage"], "mismatch": "", "events": "", "flooded": False, "stdout": "", "clean": True,
              "warm": True}
    if answer == "timeout" or answer is None or answer[0] >= spec["failure_code"]:
        # out of time, or the compiler failed (not only the program): javac/tsc decide
        ended = os.waitpid(server["pid"], os.WNOHANG)
        FALLBACKS.append(f"{kind}: {answer if answer is None or answer == 'timeout' else answer[0]} "
                         f"after {server['served']} (server {'ended ' + str(ended[1]) if ended[0] else 'running'})")
        stop_compiler(kind)
        return None
    code, diagnostics = answer
    for entry in os.scandir(folder):
        if entry.name != spec["source"] and entry.is_file(follow_symlinks=False) and \
                any(fnmatch.fnmatch(entry.name, pattern) for pattern in step["keep"]):
            target = os.path.join(WORK, entry.name)
            shutil.copyfile(entry.path, target)
            if job["uid"] is not None:
                os.chown(target, job["uid"], job["uid"])
    return {**result, "code": code, "timed_out": False, "cpu_s": cpu_seconds(server["pid"]) - cpu,
            "duration_s": time.monotonic() - start,
            "flooded": len(diagnostics) > job["output_limit"],
            "stderr": base64.b64encode(diagnostics[-job["tail"] :]).decode()}


class Tail:
    def __init__(self, keep):
        self.keep, self.data, self.total = keep, b"", 0

    def add(self, chunk):
        self.total += len(chunk)
        self.data = (self.data + chunk)[-self.keep :]


def same_output(got, expected, tolerance):
    """'' when the output matches the expected one token by token (whitespace-insensitive;
    numbers within `tolerance`, absolute or relative, when it is set); else what differs."""
    got, want = got.decode("utf-8", "replace").split(), expected.split()
    for index, (a, b) in enumerate(zip(got, want, strict=False)):
        if a != b and not (tolerance and close_numbers(a, b, tolerance)):
            return f"token {index + 1}: expected {b[:60]!r}, got {a[:60]!r}"
    if len(got) < len(want):
        return f"output ends after {len(got)} tokens, expected {len(want)} (next {want[len(got)][:60]!r})"
    if len(got) > len(want):
        return f"{len(got) - len(want)} tokens more than the {len(want)} expected (first {got[len(want)][:60]!r})"
    return ""


NUMBER = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")


def close_numbers(a, b, tolerance):
    """Both tokens are decimal numbers, the expected one written as a real number (with a
    point or an exponent: integers stay exact), and they differ by at most the tolerance,
    absolute or relative to the expected value."""
    if not (NUMBER.fullmatch(a) and NUMBER.fullmatch(b)) or not any(c in b for c in ".eE"):
        return False
    x, y = float(a), float(b)
    return abs(x - y) <= tolerance * max(1.0, abs(y))


def write_stdin(data_b64):
    """The case's input, outside the program's directory and readable by root only: the
    child opens it as its stdin before it drops to the sandbox uid."""
    try:
        os.unlink(STDIN)  # whatever a program left in its place (/tmp is writable), links included
    except FileNotFoundError:
        pass
    with open(os.open(STDIN, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600), "wb") as handle:
        handle.write(base64.b64decode(data_b64))


def run_step(job, step):
    if "stdin" in step:
        write_stdin(step["stdin"])
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
    judged = "expect" in step  # stdout is judged whole: keep all of it (the limit bounds it)
    limit = max(job["output_limit"], 2 * len(step["expect"]) + 65536) if judged else job["output_limit"]
    out, err, events = Tail(limit if judged else job["tail"]), Tail(job["tail"]), bytearray()
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
        if out.total + err.total > limit:
            flooded = True
            break
    if exited_at is None:
        os.kill(pid, signal.SIGKILL)
    _, status, usage = os.wait4(pid, 0)
    clean = kill_everything_else()
    for fd in list(sinks) + [pidfd]:
        os.close(fd)
    code = os.waitstatus_to_exitcode(status)
    mismatch = ""
    if judged and code == 0 and not (timed_out or flooded):
        mismatch = same_output(out.data, step["expect"], step.get("tolerance") or 0.0)
    return {
        "stage": step["stage"],
        "code": code,
        "mismatch": mismatch,
        "events": events.decode("ascii", "replace"),
        "timed_out": timed_out,
        "flooded": flooded,
        "cpu_s": usage.ru_utime + usage.ru_stime,
        "duration_s": time.monotonic() - start,
        "stdout": base64.b64encode(out.data[-job["tail"] :]).decode(),
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
        if entry.path in {server["dir"] for server in COMPILERS.values()}:
            continue
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


def snapshot():
    """The work directory's regular files (name -> bytes, mode): what each I/O case starts from."""
    files = {}
    for entry in os.scandir(WORK):
        if entry.is_file(follow_symlinks=False):
            with open(entry.path, "rb") as handle:
                files[entry.name] = (handle.read(), entry.stat(follow_symlinks=False).st_mode & 0o777)
    return files


def restore(job, files):
    """/tmp as the case before found it: the program's directory as it was after the compile
    step, nothing else (but the warm compilers' directories)."""
    fresh_workdir({"files": {}, "uid": None})
    for name, (data, mode) in files.items():
        path = os.path.join(WORK, name)
        with open(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode), "wb") as handle:
            handle.write(data)
        if job["uid"] is not None:
            os.chown(path, job["uid"], job["uid"])
    if job["uid"] is not None:
        os.chown(WORK, job["uid"], job["uid"])


def run_job(job):
    fresh_workdir(job)
    steps, files, start = [], {}, None
    for step in job["steps"]:
        if "stdin" in step:  # each I/O case starts from the same files; nothing of the last case remains
            start = snapshot() if start is None else restore(job, start) or start
        result = (compile_warm(job, step) if step.get("server") else None) or run_step(job, step)
        steps.append(result)
        ok = result["code"] == 0 and not (result["timed_out"] or result["flooded"] or "E" in result["events"])
        ok = ok and not (step.get("quiet") and reported_errors(result["stderr"])) and not result["mismatch"]
        markers = step.get("markers") or ()
        ok = ok and not any(marker.encode() in base64.b64decode(result["stderr"]) for marker in markers)
        if not ok or not result["clean"]:
            break
        if step.get("keep"):
            files = keep_files(step["keep"], job["keep_limit"])
    fresh_workdir({"files": {}, "uid": None})
    answer = {"steps": steps, "files": files}
    if FALLBACKS:
        answer["warm_fallbacks"] = FALLBACKS[:]
        FALLBACKS.clear()
    return answer


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
