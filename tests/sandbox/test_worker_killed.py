"""A sandbox worker SIGKILLed in the middle of a batch: the program it was running runs
again on a fresh worker; none is lost, none is mislabelled (a dead worker is never the
program's `failed` or `timeout`, nor a final `sandbox_error`), and nothing is left running."""

from __future__ import annotations

import logging
import os
import signal
import threading
import time

from coderanker.sandbox import SandboxConfig, Status
from coderanker.sandbox.pool import execute_programs, shutdown
from tests.sandbox.test_adversarial import sandbox_processes

# uid_base 63500: apart from the pipeline's and the other sandbox tests' uids.
CONFIG = SandboxConfig(workers=2, uid_base=63500, timeout_s=10, cpu_s=10, memory_mb=256, tmp_size_mb=16,
                       tmp_inodes=512)
KINDS = {  # what each program does, and the status an undisturbed run gives it
    "slow pass": ("import time\ntime.sleep(0.3)\nassert 1 + 1 == 2\n", Status.PASSED),
    "slow fail": ("import time\ntime.sleep(0.3)\nassert 1 + 1 == 3\n", Status.FAILED),
    "pass": ("assert sorted([3, 1, 2]) == [1, 2, 3]\n", Status.PASSED),
    "fail": ("raise ValueError('wrong')\n", Status.FAILED),
}


def batch(size: int = 60) -> tuple[list[tuple[str, str]], list[Status]]:
    """`size` distinct programs (each numbered, so none is deduplicated) and their statuses."""
    kinds = [list(KINDS)[i % len(KINDS)] for i in range(size)]
    programs = [("py", f"# program {i}\n{KINDS[kind][0]}") for i, kind in enumerate(kinds)]
    return programs, [KINDS[kind][1] for kind in kinds]


def _stat(pid: int) -> tuple[int, bytes] | None:
    """(parent pid, state) of a process, None when it is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            fields = handle.read().rsplit(b")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return int(fields[1]), fields[0]


def alive(pid: int) -> bool:
    stat = _stat(pid)
    return stat is not None and stat[1] not in (b"Z", b"X")


def children() -> dict[int, list[int]]:
    tree: dict[int, list[int]] = {}
    for name in os.listdir("/proc"):
        if name.isdigit() and (stat := _stat(int(name))) is not None and stat[1] not in (b"Z", b"X"):
            tree.setdefault(stat[0], []).append(int(name))
    return tree


def is_zygote(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as handle:
            return handle.read().split(b"\0")[1:4] == [b"-I", b"-S", b"-c"]
    except (OSError, IndexError):
        return False


def sandboxes() -> dict[int, int]:
    """This process's sandboxes: bubblewrap's pid (our child) -> its zygote's pid, the
    topmost Python inside it (the programs it forks share its command line)."""
    tree, found = children(), {}
    for bwrap in tree.get(os.getpid(), []):
        level = [bwrap]
        while level and bwrap not in found:
            found.update((bwrap, pid) for pid in level if is_zygote(pid))
            level = [child for pid in level for child in tree.get(pid, [])]
    return found


def kill_a_busy_zygote(done: list[int], after: int, killed: dict) -> None:
    """Once `after` programs are done, SIGKILL a zygote that is running a program."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if len(done) >= after:
            tree = children()
            busy = [(bwrap, zygote) for bwrap, zygote in sandboxes().items() if tree.get(zygote)]
            if busy:
                killed["bwrap"], killed["zygote"] = busy[0]
                killed["program"] = tree[busy[0][1]][0]
                os.kill(busy[0][1], signal.SIGKILL)
                return
        time.sleep(0.005)


def test_a_killed_worker_loses_and_mislabels_nothing(caplog):
    shutdown()  # warm workers of other tests' settings would count as this test's sandboxes
    programs, expected = batch()
    assert [o.status for o in execute_programs(programs, CONFIG)] == expected  # undisturbed
    before = set(sandboxes())
    assert len(before) == CONFIG.workers

    done, killed = [], {}
    killer = threading.Thread(target=kill_a_busy_zygote, args=(done, 15, killed))
    killer.start()
    with caplog.at_level(logging.WARNING, logger="coderanker.sandbox.worker"):
        outcomes = execute_programs(programs, CONFIG, progress=lambda: done.append(1))
    killer.join()

    assert killed, "no zygote was caught running a program"
    statuses = [o.status for o in outcomes]
    lost = [(i, o.status.value, o.detail) for i, (o, want) in enumerate(zip(outcomes, expected, strict=True))
            if o.status is not want]
    assert statuses == expected, f"killed {killed}; differing: {lost}"
    assert Status.SANDBOX_ERROR not in statuses
    assert any("again" in record.getMessage() for record in caplog.records)  # it was retried
    # the killed sandbox is gone, whole; a fresh one took its slot
    assert not any(alive(pid) for pid in killed.values())
    after = sandboxes()
    assert killed["bwrap"] not in after and len(after) == CONFIG.workers

    shutdown()
    time.sleep(0.1)
    assert not any(alive(pid) for pid in (*after, *after.values()))
    assert sandboxes() == {}
    assert sandbox_processes(CONFIG) == []  # no program of the sandbox uids anywhere on the host
