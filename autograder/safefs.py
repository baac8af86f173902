"""Reading a folder that students filled, without trusting it.

Every path is walked from an open descriptor of the folder one name at a time, each folder opened
with ``O_NOFOLLOW | O_DIRECTORY`` and each file with ``O_NOFOLLOW | O_NONBLOCK``, so

- no symbolic link is followed, at any level (a linked student folder, notebook or model file);
- nothing outside the folder is reached (no ``..``, no absolute name, no link);
- only regular files are read (``fstat`` after opening; a FIFO, a socket or a device is refused
  without blocking and without being opened), each up to a size cap.

A refusal is a :class:`Refused` whose message says why, for the student's row
(``"not a regular file: a symbolic link"``).
"""
from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

NOTEBOOK_CAP = 50 * 2**20  # a notebook larger than this is refused (``malformed``)
ATTACHMENT_CAP = 32 * 2**20  # a file handed in next to the notebook larger than this is left out
MAX_DEPTH = 8  # folders nested deeper inside a student's folder are not searched

_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK
_FILE = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK | os.O_NOCTTY


class Refused(Exception):
    """An entry that is not read: the message says why (shown to the student and in grades.csv)."""


def kind(mode: int) -> str:
    """What a file of this ``st_mode`` is, in words."""
    for test, words in ((stat.S_ISLNK, "a symbolic link"), (stat.S_ISFIFO, "a FIFO (named pipe)"),
                        (stat.S_ISSOCK, "a socket"), (stat.S_ISCHR, "a character device"),
                        (stat.S_ISBLK, "a block device"), (stat.S_ISDIR, "a folder"),
                        (stat.S_ISREG, "a regular file")):
        if test(mode):
            return words
    return "of an unknown kind"


def _check_name(name: str) -> None:
    if not name or name in (".", "..") or "/" in name or "\0" in name:
        raise Refused(f"{name!r} is not a name inside the folder")


def parts_of(rel) -> tuple:
    """``"a/b.ipynb"`` (or a Path or a tuple) as checked names: no ``..``, no absolute path."""
    if isinstance(rel, (tuple, list)):
        parts = tuple(rel)
    else:
        s = Path(rel).as_posix() if not isinstance(rel, str) else rel
        if s.startswith("/"):
            raise Refused(f"{s!r} is outside the folder")
        parts = tuple(p for p in s.split("/") if p not in ("", "."))
    for p in parts:
        _check_name(p)
    return parts


def open_dir(root, rel=()) -> int:
    """A descriptor of the folder ``root/rel``; every component of ``rel`` must be a real folder
    (not a link). ``root`` itself is the grader's choice and is opened as given. Close it."""
    fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        done = []
        for name in parts_of(rel):
            try:
                st = os.stat(name, dir_fd=fd, follow_symlinks=False)
            except OSError as exc:
                raise Refused(f"{'/'.join(done + [name])}: {exc.strerror}") from None
            if not stat.S_ISDIR(st.st_mode):
                raise Refused(f"{'/'.join(done + [name])} is not a folder: {kind(st.st_mode)}")
            try:
                nfd = os.open(name, _DIR, dir_fd=fd)
            except OSError as exc:
                raise Refused(f"{'/'.join(done + [name])}: " + ("not a folder: a symbolic link" if exc.errno in (
                    errno.ELOOP, errno.ENOTDIR) else exc.strerror)) from None
            os.close(fd)
            fd, done = nfd, done + [name]
        return fd
    except BaseException:
        os.close(fd)
        raise


def entries(dir_fd: int) -> list:
    """``[(name, lstat)]`` of the folder open at ``dir_fd``, sorted by name (links not followed)."""
    out = []
    for name in sorted(os.listdir(dir_fd)):
        try:
            out.append((name, os.stat(name, dir_fd=dir_fd, follow_symlinks=False)))
        except OSError:
            continue
    return out


def read_at(dir_fd: int, name: str, cap: int, shown: str | None = None) -> bytes:
    """The bytes of the regular file ``name`` in the folder open at ``dir_fd``, at most ``cap``."""
    _check_name(name)
    shown = shown or name
    try:
        st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except OSError as exc:
        raise Refused(f"{shown}: {exc.strerror}") from None
    if not stat.S_ISREG(st.st_mode):  # never open a FIFO, a device or a socket at all
        raise Refused(f"not a regular file: {kind(st.st_mode)} ({shown})")
    try:
        fd = os.open(name, _FILE, dir_fd=dir_fd)
    except OSError as exc:
        raise Refused("not a regular file: a symbolic link" + f" ({shown})" if exc.errno == errno.ELOOP
                      else f"{shown}: {exc.strerror}") from None
    try:
        fst = os.fstat(fd)
        if not stat.S_ISREG(fst.st_mode) or (fst.st_dev, fst.st_ino) != (st.st_dev, st.st_ino):
            raise Refused(f"not a regular file: {kind(fst.st_mode)} ({shown})")
        if fst.st_nlink > 1:  # a hard link can name any file of the same disk (the solution notebook)
            raise Refused(f"not a file of its own: a hard link ({shown}, {fst.st_nlink} names); hand in a copy")
        if fst.st_size > cap:
            raise Refused(f"{shown} is too large ({fst.st_size / 2**20:.1f} MiB, at most {cap / 2**20:g} MiB)")
        chunks, n = [], 0
        while n <= cap:
            b = os.read(fd, min(1 << 20, cap + 1 - n))
            if not b:
                break
            chunks.append(b)
            n += len(b)
        if n > cap:
            raise Refused(f"{shown} is too large (more than {cap / 2**20:g} MiB)")
        return b"".join(chunks)
    finally:
        os.close(fd)


def read_file(root, rel, cap: int = NOTEBOOK_CAP) -> bytes:
    """The bytes of the regular file ``root/rel``: no link followed at any level, at most ``cap``."""
    parts = parts_of(rel)
    if not parts:
        raise Refused("no file named")
    fd = open_dir(root, parts[:-1])
    try:
        return read_at(fd, parts[-1], cap, "/".join(parts))
    finally:
        os.close(fd)


def walk(root, rel=(), skip_dirs=(".ipynb_checkpoints",), max_depth: int = MAX_DEPTH):
    """Every entry below ``root/rel``, as ``(relative parts, lstat)``, folders included, without
    following links (a linked folder is listed, never entered). Names starting with ``.`` are skipped."""
    base = parts_of(rel)
    out = []

    def visit(fd, prefix, depth):
        for name, st in entries(fd):
            if name.startswith("."):
                continue
            parts = prefix + (name,)
            out.append((parts, st))
            if stat.S_ISDIR(st.st_mode) and name not in skip_dirs and depth < max_depth:
                try:
                    sub = os.open(name, _DIR, dir_fd=fd)
                except OSError:
                    continue
                try:
                    visit(sub, parts, depth + 1)
                finally:
                    os.close(sub)

    fd = open_dir(root, base)
    try:
        visit(fd, (), 0)
    finally:
        os.close(fd)
    return out


def copy_regular_files(folder, dest: Path, cap: int = ATTACHMENT_CAP, keep=lambda name: True) -> list:
    """Copy the regular files directly inside ``folder`` (itself opened without following a link)
    into ``dest``; links, FIFOs, devices, sockets, folders and files over ``cap`` are left out.
    Returns the names copied."""
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    folder = Path(folder)
    try:
        fd = open_dir(folder.parent, (folder.name,))
    except (Refused, OSError):
        return []
    copied = []
    try:
        for name, st in entries(fd):
            if not stat.S_ISREG(st.st_mode) or st.st_size > cap or not keep(name):
                continue
            try:
                data = read_at(fd, name, cap)
            except Refused:
                continue
            (dest / name).write_bytes(data)
            copied.append(name)
    finally:
        os.close(fd)
    return copied
