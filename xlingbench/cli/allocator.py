"""The C allocator's policy for an ``xlingbench run`` process: large blocks go back to the OS when freed.

Why: glibc maps a block above its threshold on its own and unmaps it when freed, but it raises
that threshold to the largest mapped block freed so far (up to 32 MiB). After the first such
free, the arrays that task 1's probe and tasks 2-3's search allocate and free at every step (tens
of MB each) come from heaps whose holes stay resident, and the run's peak carries them: tasks 1-3
on the offline default peaked at 1.44-1.52 GB (1,523,684 KiB in the same window as the figures
below). A fixed 4 MiB threshold keeps every larger block mapped on its own: tasks 1-3 1.41 GB
(1,377,164 KiB), the default run 1.59 GB where it was 1.81 GB (1,593,864 against 1,812,552 KiB),
for about 2% more CPU in page faults (the same wall time), on a 2-core CPU.

Only the command sets it: a process that calls :func:`xlingbench.evaluate` (a training loop) keeps
its own allocator's settings. Elsewhere than glibc (macOS, musl) this does nothing.
"""
from __future__ import annotations

import ctypes

#: blocks of at least this many bytes are mapped on their own, and unmapped when freed
LARGE_BLOCK = 4 << 20
#: free memory a heap keeps at its top before giving it back: twice the threshold, the ratio glibc keeps
#: itself while it moves the threshold. Fixing the threshold alone leaves this at 128 KiB, and
#: K-means's heaps then shrank and grew at every iteration: COLAP's system time went from 1.5 s to
#: 8 s, against 3.5 s with this
KEPT_AT_TOP = 2 * LARGE_BLOCK
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # glibc's mallopt parameters


def return_large_blocks() -> bool:
    """Fix glibc's mmap threshold at :data:`LARGE_BLOCK` and its trim threshold at :data:`KEPT_AT_TOP`;
    False where the C library has no ``mallopt``."""
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    return bool(mallopt(_M_MMAP_THRESHOLD, LARGE_BLOCK)) and bool(mallopt(_M_TRIM_THRESHOLD, KEPT_AT_TOP))
