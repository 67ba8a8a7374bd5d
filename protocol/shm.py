"""Shared-memory arenas: pixel buffers between a client and a local engine without sockets.

Over an ``ipc://`` endpoint both sides are the same user on the same machine, so a 64 MiB
layer need not be pushed through four kernel socket copies. Instead the client creates
two files in ``/dev/shm`` (``up``: client to engine, ``down``: engine to client), offers
their paths in ``hello``, and unlinks them once the engine has answered: from then on
they exist only as mappings in the two processes, and vanish with them.

Each arena is a single-producer, single-consumer ring. The writer copies a buffer into
the ring and names its position in the buffer's header entry (``"shm": pos``) instead of
sending a frame; the reader hands out a zero-copy, read-only view of those bytes, and
the space is given back when the last view of it is garbage (a ``weakref.finalize`` on
the view's owner), by advancing the ``tail`` word in the arena's first page. The writer
never overwrites bytes between ``tail`` and its own head. If a buffer does not fit (the
reader still holds older views, or the buffer is larger than the ring), it simply
travels as a frame, so nothing here can block or fail a message.

Layout of an arena file::

    page 0:   magic b"WBSHM001" | tail (u64, written by the reader) | zero padding
    page 1..: the ring, ``capacity`` bytes

Positions are byte counts since the start (they never wrap); ``pos % capacity`` is the
offset in the ring. A buffer never straddles the end of the ring: the writer skips to the
next lap instead.

Safety: the engine accepts an offer only on an ``ipc://`` endpoint (the default one lives
in a 0700 folder, and the socket file is 0600) and only for files in ``/dev/shm`` that
are regular, not links, owned by its own user with no group or other permissions, of the
stated size and magic. Every position a reader is given is bounds-checked against the
ring. The writer reserves memory with ``posix_fallocate`` before its first write to a
range, so a full tmpfs makes the buffer travel as a frame instead of raising SIGBUS.
What this cannot stop is a process of the same user truncating a ring it holds open
(the engine would then die of SIGBUS); such a process can kill the engine anyway. Arena
names carry their creator's pid, so files left by a client that died before unlinking
them are removed by the next client's offer. Shared memory is used on Linux only;
elsewhere every buffer travels as a frame.
"""

from __future__ import annotations

import os
import re
import secrets
import stat
import sys
import threading
import weakref
from collections import deque
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import msgpack

from .errors import ProtocolError
from .framing import frame_buffer

try:  # an editor's embedded Python may lack either; then everything travels as frames
    import ctypes
    import mmap
except ImportError:  # pragma: no cover - not on any platform we test
    ctypes = mmap = None  # type: ignore[assignment]

SHM_DIR = Path("/dev/shm")
MAGIC = b"WBSHM001"
HEADER_BYTES = 4096
TAIL_OFFSET = 8
ALIGN = 64
#: buffers smaller than this travel as frames (previews, masks of small selections)
MIN_SHARED_BYTES = 256 * 1024
#: ring size of each direction; tmpfs pages are only committed as they are first written
DEFAULT_CAPACITY = 256 * 1024 * 1024
_NAME = re.compile(r"wordbrush-(\d+)-(\d+)-[0-9a-f]{32}-(up|down)")  # uid, creator pid


def supported() -> bool:
    """Shared memory is offered on Linux with a writable /dev/shm (tmpfs)."""
    return (ctypes is not None and sys.platform.startswith("linux")
            and hasattr(os, "posix_fallocate")
            and SHM_DIR.is_dir() and os.access(SHM_DIR, os.W_OK | os.X_OK))


class SharedMemoryUnavailable(ProtocolError):
    """An arena could not be created or opened; the connection uses frames instead."""


def _align(value: int) -> int:
    return (value + ALIGN - 1) // ALIGN * ALIGN


def remove_stale_arenas() -> int:
    """Remove this user's arena files whose creator has died before unlinking them."""
    removed = 0
    uid = os.getuid()
    for path in SHM_DIR.glob(f"wordbrush-{uid}-*"):
        match = _NAME.fullmatch(path.name)
        if match is None or int(match.group(1)) != uid:
            continue
        try:
            os.kill(int(match.group(2)), 0)
            continue  # its creator is alive (it unlinks the name itself)
        except ProcessLookupError:
            pass
        except OSError:
            continue  # alive but not ours to signal, or unknown: leave it
        path.unlink(missing_ok=True)
        removed += 1
    return removed


class Arena:
    """One mapped arena file (one direction). Use :class:`RingWriter` or :class:`RingReader`."""

    def __init__(self, fd: int, capacity: int, path: str) -> None:
        self.fd = fd
        self.capacity = capacity
        self.path = path
        self._map = mmap.mmap(fd, HEADER_BYTES + capacity, mmap.MAP_SHARED,
                              mmap.PROT_READ | mmap.PROT_WRITE)
        # an aligned 8-byte word: ctypes reads and writes it with one machine access
        self._tail = ctypes.c_uint64.from_buffer(self._map, TAIL_OFFSET)

    @classmethod
    def create(cls, direction: str, capacity: int = DEFAULT_CAPACITY) -> Arena:
        """A fresh arena file in /dev/shm (mode 0600, exclusive) for one direction."""
        if not supported():
            raise SharedMemoryUnavailable("shared memory needs Linux with a writable /dev/shm")
        if capacity <= 0 or capacity % ALIGN:
            raise SharedMemoryUnavailable(f"a ring's size must be a multiple of {ALIGN} bytes")
        uid = os.getuid()
        path = SHM_DIR / f"wordbrush-{uid}-{os.getpid()}-{secrets.token_hex(16)}-{direction}"
        flags = os.O_RDWR | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
        try:
            fd = os.open(path, flags, 0o600)
        except OSError as exc:
            raise SharedMemoryUnavailable(f"cannot create {path}: {exc}") from None
        try:
            os.ftruncate(fd, HEADER_BYTES + capacity)  # sparse: costs nothing until written
            os.pwrite(fd, MAGIC, 0)
            return cls(fd, capacity, str(path))
        except OSError as exc:
            os.close(fd)
            path.unlink(missing_ok=True)
            raise SharedMemoryUnavailable(f"cannot set up {path}: {exc}") from None

    @classmethod
    def open_offered(cls, path: Any, capacity: Any) -> Arena:
        """Map an arena a peer offered, after checking it is a safe file of ours."""
        if (not isinstance(path, str) or isinstance(capacity, bool)
                or not isinstance(capacity, int) or capacity <= 0 or capacity % ALIGN):
            raise SharedMemoryUnavailable(
                f"the shared-memory offer needs a path and a size (a multiple of {ALIGN})")
        if not supported():
            raise SharedMemoryUnavailable("shared memory needs Linux with a writable /dev/shm")
        where = Path(path)
        if where.parent != SHM_DIR or not _NAME.fullmatch(where.name):
            raise SharedMemoryUnavailable(f"{path} is not a wordbrush arena in {SHM_DIR}")
        try:
            fd = os.open(where, os.O_RDWR | getattr(os, "O_NOFOLLOW", 0))
        except OSError as exc:
            raise SharedMemoryUnavailable(f"cannot open {path}: {exc}") from None
        try:
            st = os.fstat(fd)
            problem = None
            if not stat.S_ISREG(st.st_mode):
                problem = "is not a regular file"
            elif st.st_uid != os.getuid():
                problem = "belongs to another user"
            elif st.st_mode & 0o077:
                problem = "is readable by other users"
            elif st.st_size != HEADER_BYTES + capacity:
                problem = f"is {st.st_size} bytes, not {HEADER_BYTES + capacity}"
            elif os.pread(fd, len(MAGIC), 0) != MAGIC:
                problem = "is not a wordbrush arena"
            if problem:
                raise SharedMemoryUnavailable(f"refusing {path}: it {problem}")
            return cls(fd, capacity, path)
        except BaseException:
            os.close(fd)
            raise

    @property
    def tail(self) -> int:
        return int(self._tail.value)

    def close(self) -> None:
        """Drop this side's file descriptor; the mapping goes when its last view does."""
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


class RingWriter:
    """The producing side of an arena: places buffers and rewrites headers to name them."""

    def __init__(self, arena: Arena, min_bytes: int = MIN_SHARED_BYTES) -> None:
        self.arena = arena
        self.min_bytes = min_bytes
        self._head = 0
        self._placed: deque[tuple[int, int]] = deque()  # (start, end) not yet known freed
        self._batch: list[tuple[int, int]] = []  # what the last place_frames placed
        self._reserved = 0  # ring bytes already backed by posix_fallocate
        self._view = memoryview(arena._map)

    def _reserve(self, end: int) -> bool:
        """Back ring offsets up to ``end`` with memory, so writes cannot SIGBUS."""
        if end <= self._reserved:
            return True
        try:
            os.posix_fallocate(self.arena.fd, HEADER_BYTES + self._reserved, end - self._reserved)
        except OSError:
            return False
        self._reserved = end
        return True

    def place(self, data: Any) -> int | None:
        """Copy ``data`` into the ring; its position, or None if it must travel as a frame."""
        source = memoryview(data)
        if not source.c_contiguous:
            return None  # let the socket path deal with (or refuse) it
        if source.ndim != 1 or source.format != "B":
            source = source.cast("B")
        size = source.nbytes
        cap = self.arena.capacity
        if size < self.min_bytes or size > cap:
            return None
        tail = self.arena.tail
        while self._placed and self._placed[0][1] <= tail:
            self._placed.popleft()  # the reader is done with it
        pos = _align(self._head)
        if (not self._placed or pos % cap + size > cap) and pos % cap:
            # start the next lap: never straddle the end, and when the ring is empty reuse
            # its first pages, which are already backed and mapped (much faster than new)
            pos = (pos // cap + 1) * cap
        # the oldest bytes the reader may still hold (skipped gaps were never written)
        oldest = self._placed[0][0] if self._placed else pos
        if pos + size - oldest > cap:
            return None  # the reader still holds what this would overwrite
        offset = pos % cap
        if not self._reserve(offset + size):
            return None
        start = HEADER_BYTES + offset
        self._view[start:start + size] = source
        self._head = pos + size
        self._placed.append((pos, pos + size))
        return pos

    def place_frames(self, frames: Sequence[Any]) -> list[Any]:
        """Encoded frames (magic, header, buffers) with large buffers moved into the ring.

        The header is re-packed with ``"shm": pos`` on every moved buffer; the rest stay
        frames. Frames that are not a well-formed wordbrush message pass through unchanged.
        """
        self._batch = []
        if len(frames) <= 2:
            return list(frames)
        try:
            header = msgpack.unpackb(frame_buffer(frames[1]), raw=False)
            specs = header["buffers"]
        except Exception:  # not a message of ours to judge: send it as it is
            return list(frames)
        kept: list[Any] = []
        moved = False
        for spec, frame in zip(specs, frames[2:], strict=True):
            pos = self.place(frame_buffer(frame))
            if pos is None:
                kept.append(frame)
            else:
                spec["shm"] = pos
                self._batch.append(self._placed[-1])
                moved = True
        if not moved:
            return list(frames)
        return [frames[0], msgpack.packb(header, use_bin_type=True), *kept]

    def unplace_last(self) -> None:
        """Take back what the last :meth:`place_frames` placed: its message was not sent.

        Otherwise the reader, never seeing those positions, would hold the ring's space
        until some later buffer is read.
        """
        for placed in reversed(self._batch):
            if self._placed and self._placed[-1] == placed:
                self._placed.pop()
                self._head = placed[0]
        self._batch = []

    def close(self) -> None:
        self._view.release()
        self.arena.close()


class RingReader:
    """The consuming side of an arena: hands out views and frees space as they die.

    A view's space is given back from a ``weakref.finalize`` callback, which the garbage
    collector may run in any thread, also in the middle of this class's own bookkeeping.
    So the callback only appends to a queue (never blocks), and whoever gets the lock
    without waiting folds the queue in; a nested call just leaves its entry for the
    outer one.
    """

    def __init__(self, arena: Arena) -> None:
        self.arena = arena
        self._lock = threading.Lock()
        self._freed: deque[int] = deque()  # positions whose last view died, not yet folded in
        self._live: dict[int, list[int]] = {}  # start position -> [end position, views]
        self._seen = 0  # the furthest end position handed out

    def view(self, pos: Any, nbytes: int, name: str) -> memoryview:
        """A read-only view of ``nbytes`` at ring position ``pos`` (bounds-checked)."""
        cap = self.arena.capacity
        if (isinstance(pos, bool) or not isinstance(pos, int) or not 0 <= pos < 2**63
                or pos % ALIGN):
            raise ProtocolError(f"buffer {name!r} names an invalid shared-memory position")
        if nbytes > cap or pos % cap + nbytes > cap:
            raise ProtocolError(f"buffer {name!r} lies outside the shared-memory ring")
        start = HEADER_BYTES + pos % cap
        owner = (ctypes.c_char * nbytes).from_buffer(self.arena._map, start)
        with self._lock:
            entry = self._live.setdefault(pos, [pos + nbytes, 0])
            entry[0] = max(entry[0], pos + nbytes)
            entry[1] += 1
            self._seen = max(self._seen, pos + nbytes)
        weakref.finalize(owner, self._release, pos)
        self._fold()  # what was freed while we held the lock
        return memoryview(owner).cast("B").toreadonly()

    def _release(self, pos: int) -> None:
        self._freed.append(pos)  # deque.append is atomic and never blocks
        self._fold()

    def _fold(self) -> None:
        """Apply queued releases and advance ``tail``, unless another call is doing it."""
        while self._freed:
            if not self._lock.acquire(blocking=False):
                return  # the holder (maybe this very thread, nested) folds it in after
            try:
                while self._freed:
                    pos = self._freed.popleft()
                    entry = self._live.get(pos)
                    if entry is not None:
                        entry[1] -= 1
                        if entry[1] <= 0:
                            del self._live[pos]
                # the writer may reuse everything before the oldest view still alive
                tail = min(self._live) if self._live else self._seen
                if tail > self.arena._tail.value:
                    self.arena._tail.value = tail
            finally:
                self._lock.release()

    def close(self) -> None:
        self.arena.close()


class SharedLink:
    """Both arenas of one connection, as seen from one side."""

    def __init__(self, writer: RingWriter, reader: RingReader) -> None:
        self.writer = writer
        self.reader = reader

    @classmethod
    def offer(cls, capacity: int = DEFAULT_CAPACITY) -> tuple[SharedLink, dict[str, Any]]:
        """Client side: create both arenas; return the link and the ``hello`` offer."""
        remove_stale_arenas()
        up = Arena.create("up", capacity)
        try:
            down = Arena.create("down", capacity)
        except SharedMemoryUnavailable:
            up.close()
            Path(up.path).unlink(missing_ok=True)
            raise
        link = cls(RingWriter(up), RingReader(down))
        return link, {"up": up.path, "down": down.path, "size": capacity}

    @classmethod
    def accept(cls, offer: Any) -> SharedLink:
        """Engine side: map a client's offer (the engine writes ``down``, reads ``up``)."""
        if not isinstance(offer, dict):
            raise SharedMemoryUnavailable("the shared-memory offer must be a map")
        up = Arena.open_offered(offer.get("up"), offer.get("size"))
        try:
            down = Arena.open_offered(offer.get("down"), offer.get("size"))
        except SharedMemoryUnavailable:
            up.close()
            raise
        return cls(RingWriter(down), RingReader(up))

    def unlink(self) -> None:
        """Client side, once the engine answered: remove the names; the mappings stay."""
        for arena in (self.writer.arena, self.reader.arena):
            Path(arena.path).unlink(missing_ok=True)

    def close(self) -> None:
        self.writer.close()
        self.reader.close()
