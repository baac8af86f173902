"""Synthetic sequence tasks, generated on the fly and seeded.

Every generator is ``make_<task>(n, ..., seed) -> TaskData``. It draws from its own
``torch.Generator(seed)`` (never the global RNG), so the same seed always gives the same data and
nothing else in the program changes what it draws.

Conventions (the same for every task)
-------------------------------------
- Batch first: ``x`` is a float tensor ``(n, T, I)``.
- Token tasks (recall, agreement, tagging) also return the token ids in ``tokens`` (``(n, T)``,
  int64), and ``x`` is their one-hot encoding (``I`` = vocabulary size). Use ``x`` with a model
  that reads features, ``tokens`` with a model that has an embedding
  (``SequenceModel(..., embedding=len(data.vocab))``). ``data.vocab[i]`` is the word for id ``i``.
- Padded positions (agreement only; its sequences vary in length) have token id 0 (``"<pad>"``)
  and an all-zero row in ``x``; ``lengths`` holds each sequence's true length and ``mask`` marks
  the valid steps.
- ``chance`` is the score of the best input-blind predictor, stated from the generating
  distribution: an MSE for regression, an accuracy for classification and tagging.
- ``info`` holds per-example tensors (first dimension ``n``) and task-level numbers.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import torch

from .._validate import int_at_least

__all__ = [
    "TaskData",
    "make_adding",
    "normalized_mse",
    "make_recall",
    "make_agreement",
    "render_agreement",
    "AGREEMENT_VOCAB",
    "make_right_context_tagging",
    "render_tagging",
    "TAGGING_VOCAB",
    "TAG_NAMES",
    "fresh_batches",
]


# ----------------------------------------------------------------------------------------------
# small shared pieces
# ----------------------------------------------------------------------------------------------
def _probability(name: str, value, *, allow_one: bool = True) -> float:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and value == value
    if not ok or value < 0 or value > 1 or (not allow_one and value == 1):
        upper = "1]" if allow_one else "1)"
        raise ValueError(f"{name} must be a probability in [0, {upper}, got {value!r}")
    return float(value)


def _generator(seed) -> torch.Generator:
    seed = int_at_least("seed", seed, 0)
    g = torch.Generator()
    g.manual_seed(seed)
    return g


@dataclass
class TaskData:
    """One generated data set.

    Attributes
    ----------
    x : float tensor ``(n, T, I)``, the model input (values, or one-hot tokens).
    y : targets. Regression: float ``(n, 1)`` (same shape as a 1-output model's prediction);
        classification: int64 class ids ``(n,)``; tagging: int64 tags ``(n, T)``.
    tokens : int64 ``(n, T)`` token ids for token tasks, else ``None``.
    mask : bool ``(n, T)``, True at valid steps (``None`` when every step is valid and it does
        not matter for the loss).
    lengths : int64 ``(n,)`` true sequence lengths, or ``None`` for fixed-length tasks.
    chance : the best input-blind score (MSE for regression, accuracy otherwise).
    kind : ``"regression"``, ``"classification"`` or ``"tagging"``.
    num_classes : number of target classes (``None`` for regression).
    vocab : words for the token ids (token tasks), else ``None``.
    info : per-example tensors (first dimension ``n``; :meth:`subset` indexes them) and
        task-level numbers, described by each generator.
    """

    x: torch.Tensor
    y: torch.Tensor
    tokens: torch.Tensor | None = None
    mask: torch.Tensor | None = None
    lengths: torch.Tensor | None = None
    chance: float = float("nan")
    kind: str = "regression"
    num_classes: int | None = None
    vocab: tuple[str, ...] | None = None
    info: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return self.x.shape[0]

    @property
    def input_size(self) -> int:
        """Feature size ``I`` of ``x`` (the vocabulary size for token tasks)."""
        return self.x.shape[-1]

    def subset(self, index) -> "TaskData":
        """The examples at ``index`` (a slice, an index tensor or a boolean mask) as a new TaskData.

        Per-example tensors in ``info`` are indexed too; task-level numbers are kept.
        """
        n = len(self)

        def pick(t):
            if isinstance(t, torch.Tensor) and t.dim() >= 1 and t.shape[0] == n:
                return t[index]
            return t

        return TaskData(
            x=pick(self.x), y=pick(self.y), tokens=pick(self.tokens), mask=pick(self.mask),
            lengths=pick(self.lengths), chance=self.chance, kind=self.kind,
            num_classes=self.num_classes, vocab=self.vocab,
            info={k: pick(v) for k, v in self.info.items()},
        )

    def as_batch(self, use_tokens: bool = False):
        """``(inputs, targets)`` in the form :func:`course_lib.train.train` expects.

        ``inputs`` is ``x`` (or ``tokens`` when ``use_tokens``), paired with ``lengths`` as a
        tuple ``(x, lengths)`` when the task has variable lengths, so ``model(*inputs)`` works
        with :class:`course_lib.models.SequenceModel`. ``targets`` is ``y``, or ``(y, mask)`` for
        tagging (the loss ignores masked steps).
        """
        if use_tokens and self.tokens is None:
            raise ValueError("use_tokens=True needs a token task, but this TaskData has tokens=None")
        x = self.tokens if use_tokens else self.x
        inputs = (x, self.lengths) if self.lengths is not None else x
        targets = (self.y, self.mask) if (self.kind == "tagging" and self.mask is not None) else self.y
        return inputs, targets

    def sampler(self, batch_size: int, use_tokens: bool = False) -> Callable:
        """A ``batch_fn(step, generator)`` that draws ``batch_size`` random examples from this set.

        Use it to train on a fixed data set; :func:`fresh_batches` makes new data every step.
        """
        batch_size = int_at_least("batch_size", batch_size, 1)

        def batch_fn(step, generator):
            idx = torch.randint(len(self), (batch_size,), generator=generator)
            return self.subset(idx).as_batch(use_tokens)

        return batch_fn


def fresh_batches(make: Callable, batch_size: int, *, use_tokens: bool = False, **kwargs) -> Callable:
    """A ``batch_fn(step, generator)`` that generates a new batch of ``make(...)`` every step.

    ``fresh_batches(make_adding, 64, T=50)`` gives an endless stream of adding problems; each batch's
    seed is drawn from the training loop's generator, so a training run stays reproducible. Keep
    ``seed`` out of ``kwargs``; test sets use their own fixed seeds.
    """
    batch_size = int_at_least("batch_size", batch_size, 1)
    if "seed" in kwargs:
        raise ValueError("fresh_batches draws each batch's seed itself; do not pass seed=")

    def batch_fn(step, generator):
        seed = int(torch.randint(0, 2**31 - 1, (1,), generator=generator))
        return make(batch_size, seed=seed, **kwargs).as_batch(use_tokens)

    return batch_fn


def _one_hot(tokens: torch.Tensor, vocab_size: int, mask: torch.Tensor | None = None) -> torch.Tensor:
    x = torch.zeros(*tokens.shape, vocab_size)
    x.scatter_(-1, tokens.unsqueeze(-1), 1.0)
    if mask is not None:
        x *= mask.unsqueeze(-1)
    return x


# ----------------------------------------------------------------------------------------------
# adding problem
# ----------------------------------------------------------------------------------------------
ADDING_CHANCE_MSE = 1.0 / 6.0


def make_adding(n: int, T: int, seed: int = 0) -> TaskData:
    """The adding problem (Hochreiter and Schmidhuber 1997).

    ``x`` is ``(n, T, 2)``: channel 0 holds values drawn from U(0, 1), channel 1 is a marker that
    is 1 at exactly two steps, one in the first half (``t < T // 2``) and one in the second half.
    The target ``y`` ``(n, 1)`` is the sum of the two marked values.

    Chance: always predicting the mean, 1, scores MSE Var(y) = 2 * (1/12) = 1/6 (``chance``).
    A test set of 1,000 samples has an empirical variance that wobbles by about 5% around 1/6,
    so compare models with :func:`normalized_mse` (MSE divided by that set's own variance):
    1.0 is the mean predictor, 0.0 perfect. ``info["y_var"]`` is this set's variance; the marked
    positions are in ``info["positions"]`` ``(n, 2)``.
    """
    n = int_at_least("n", n, 1)
    T = int_at_least("T", T, 2)
    g = _generator(seed)
    half = T // 2
    values = torch.rand(n, T, generator=g)
    first = torch.randint(0, half, (n,), generator=g)
    second = torch.randint(half, T, (n,), generator=g)
    marker = torch.zeros(n, T)
    rows = torch.arange(n)
    marker[rows, first] = 1.0
    marker[rows, second] = 1.0
    x = torch.stack([values, marker], dim=-1)
    y = (values[rows, first] + values[rows, second]).unsqueeze(1)
    return TaskData(
        x=x, y=y, chance=ADDING_CHANCE_MSE, kind="regression",
        info={"positions": torch.stack([first, second], 1), "y_var": float(y.var(unbiased=False)),
              "T": T},
    )


def normalized_mse(pred: torch.Tensor, y: torch.Tensor) -> float:
    """MSE of ``pred`` divided by the variance of ``y`` (the same test set).

    1.0 means no better than predicting that set's mean, 0.0 means perfect. ``pred`` and ``y``
    must have the same number of elements (``(n,)`` and ``(n, 1)`` are both fine).
    """
    if not isinstance(pred, torch.Tensor) or not isinstance(y, torch.Tensor):
        raise ValueError(f"pred and y must be torch.Tensors, got {type(pred).__name__} and {type(y).__name__}")
    if pred.numel() != y.numel() or y.numel() < 2:
        raise ValueError(f"pred and y must hold the same number (>= 2) of values, got shapes "
                         f"{tuple(pred.shape)} and {tuple(y.shape)}")
    p = pred.detach().reshape(-1).double()
    t = y.detach().reshape(-1).double().to(p.device)
    var = t.var(unbiased=False)
    if var == 0:
        raise ValueError("y has zero variance; normalized_mse is undefined")
    return float(((p - t) ** 2).mean() / var)


# ----------------------------------------------------------------------------------------------
# long-distance recall
# ----------------------------------------------------------------------------------------------
def make_recall(n: int, k: int, seed: int = 0, vocab: int = 8, num_distractors: int = 8) -> TaskData:
    """Long-distance recall: remember the first token across ``k`` distractors.

    Each sequence (length ``k + 2``) is a key token, then ``k`` distractor tokens, then a query
    marker; at the query the model must name the key. The target ``y`` ``(n,)`` is the key's class
    in ``[0, vocab)``, balanced.

    Token ids: ``0 .. vocab-1`` keys (``"K0"``, ...), ``vocab .. vocab+num_distractors-1``
    distractors (``"d0"``, ...), then ``"?"`` the query marker. ``x`` is the one-hot encoding
    (``I = vocab + num_distractors + 1``); ``tokens`` the ids.

    Chance = 1 / vocab: the key is uniform and nothing else in the sequence depends on it. Read out
    the model at the last step (the query).

    Measured here (tanh RNN, 64 units, Adam 3e-3, batch 64, 400 steps, one seed, defaults
    otherwise): accuracy 1.0 at k = 5 and 20, 0.49 at k = 50 (chance 0.125).
    """
    n = int_at_least("n", n, 1)
    k = int_at_least("k", k, 0)
    vocab = int_at_least("vocab", vocab, 2)
    num_distractors = int_at_least("num_distractors", num_distractors, 1)
    g = _generator(seed)
    V = vocab + num_distractors + 1
    query = V - 1
    keys = torch.randint(0, vocab, (n,), generator=g)
    distract = torch.randint(vocab, vocab + num_distractors, (n, k), generator=g)
    tokens = torch.cat([keys[:, None], distract, torch.full((n, 1), query)], dim=1)
    words = tuple([f"K{i}" for i in range(vocab)] + [f"d{i}" for i in range(num_distractors)] + ["?"])
    return TaskData(
        x=_one_hot(tokens, V), y=keys, tokens=tokens, chance=1.0 / vocab, kind="classification",
        num_classes=vocab, vocab=words, info={"k": k, "query_id": query},
    )


# ----------------------------------------------------------------------------------------------
# subject-verb agreement with attractors
# ----------------------------------------------------------------------------------------------
_STEMS = ("key", "cabinet", "lamp", "drawer", "kettle", "ladder", "parcel", "window")
_ADJECTIVES = ("old", "green", "tiny", "dusty")
_ADVERBS = ("today", "perhaps", "still", "surely", "again")
_PREPOSITIONS = ("to", "near", "behind", "beside", "under")

AGREEMENT_VOCAB: tuple[str, ...] = (
    ("<pad>", "the") + _ADJECTIVES + _ADVERBS + _PREPOSITIONS
    + _STEMS + tuple(s + "s" for s in _STEMS) + ("<verb>",)
)
_AG = {w: i for i, w in enumerate(AGREEMENT_VOCAB)}
_AG_PAD, _AG_THE, _AG_VERB = _AG["<pad>"], _AG["the"], _AG["<verb>"]
_AG_ADJ = torch.tensor([_AG[w] for w in _ADJECTIVES])
_AG_ADV = torch.tensor([_AG[w] for w in _ADVERBS])
_AG_PREP = torch.tensor([_AG[w] for w in _PREPOSITIONS])
_AG_SING = torch.tensor([_AG[w] for w in _STEMS])
_AG_PLUR = torch.tensor([_AG[w + "s"] for w in _STEMS])


def _agreement_sentence(u, max_prefix, max_attractors, attractor_rate, n_attractors, max_fillers, adjective_rate):
    """One sentence of :func:`make_agreement` from the uniforms ``u`` (an iterator, one per decision):
    ``(token ids, subject plural, attractors, intervening nouns, subject position, last noun plural)``."""
    adverbs, adjectives, preps = _AG_ADV.tolist(), _AG_ADJ.tolist(), _AG_PREP.tolist()
    singular, plural_ids = _AG_SING.tolist(), _AG_PLUR.tolist()

    def pick(options):
        return options[int(next(u) * len(options))]

    def noun_phrase(is_plural):
        words = [_AG_THE]
        if next(u) < adjective_rate:
            words.append(pick(adjectives))
        words.append(pick(plural_ids if is_plural else singular))
        return words

    plural = next(u) < 0.5
    seq = [pick(adverbs) for _ in range(int(next(u) * (max_prefix + 1)))]
    seq += noun_phrase(plural)
    pos = len(seq) - 1  # the subject noun
    if n_attractors is None:
        n_pp = int(next(u) * (max_attractors + 1))
        flips = [next(u) < attractor_rate for _ in range(n_pp)]
    else:
        next(u)
        n_pp = n_attractors
        flips = [True] * n_pp
    last = plural
    for flip in flips:  # a prepositional phrase; an attractor when its noun flips number
        seq.append(pick(preps))
        last = plural != flip
        seq += noun_phrase(last)
    seq += [pick(adverbs) for _ in range(int(next(u) * (max_fillers + 1)))]
    seq.append(_AG_VERB)
    return seq, int(plural), sum(flips), n_pp, pos, int(last)


def make_agreement(
    n: int,
    seed: int = 0,
    max_attractors: int = 3,
    attractor_rate: float = 0.05,
    n_attractors: int | None = None,
    max_prefix: int = 4,
    max_fillers: int = 2,
    adjective_rate: float = 0.3,
) -> TaskData:
    """Synthetic subject-verb agreement with attractors (after Linzen et al. 2016).

    A sequence reads like "perhaps the old key to the cabinets near the lamps still <verb>":

    - a prefix of 0 .. ``max_prefix`` adverbs, so the subject's position varies (with a fixed
      position a model can just read step 0, and attractor effects do not show);
    - the subject noun phrase: "the", maybe an adjective, a singular or plural noun;
    - prepositional phrases ("to the cabinets"), each with one noun. A noun of the opposite number
      to the subject is an *attractor*;
    - 0 .. ``max_fillers`` adverbs, then ``<verb>``, where the model predicts the verb's number.

    The target ``y`` ``(n,)`` is the subject's number: 0 = singular ("is"), 1 = plural ("are"),
    balanced. Syntactic recency (the subject) gives the answer; sequential recency (the nearest
    noun) is wrong whenever that noun is an attractor.

    Training sets (``n_attractors=None``): 0 .. ``max_attractors`` phrases, uniform; each phrase's
    noun is an attractor with probability ``attractor_rate`` (rare, as in natural text), otherwise
    it has the subject's number.

    Test sets (``n_attractors=a``): exactly ``a`` phrases, every one an attractor (the condition
    Linzen et al. plot: all intervening nouns disagree with the subject). More attractors also
    mean a longer distance, as in real sentences.

    Measured here (embedding 16, 48 units, Adam 5e-3, batch 64, 2 seeds, other arguments at their
    defaults): after 200 to 400 steps a tanh RNN's accuracy falls from 1.0 with no attractor to
    0.07 to 0.63 with 4 attractors, an LSTM's stays at 0.7 to 1.0. With ``attractor_rate=0`` both
    learn the nearest-noun rule and fail on most attractors; frequent attractors (0.1) or long
    training make the effect fade.

    Returns token ids in ``tokens`` (0 = ``"<pad>"``), one-hot ``x``, ``lengths``, ``mask``; read the
    model out at the last valid step (the ``<verb>``). ``info`` per example: ``n_attractors``,
    ``n_nouns`` (intervening nouns), ``subject_pos``, ``last_noun_plural`` (the answer sequential
    recency gives), ``distance`` (steps from subject to verb). Chance = 0.5 (classes balanced).
    """
    n = int_at_least("n", n, 1)
    max_attractors = int_at_least("max_attractors", max_attractors, 0)
    attractor_rate = _probability("attractor_rate", attractor_rate)
    if n_attractors is not None:
        n_attractors = int_at_least("n_attractors", n_attractors, 0)
    max_prefix = int_at_least("max_prefix", max_prefix, 0)
    max_fillers = int_at_least("max_fillers", max_fillers, 0)
    adjective_rate = _probability("adjective_rate", adjective_rate)
    g = _generator(seed)

    # Draw every random number up front (one uniform per decision), then build the sentences in
    # plain Python: much faster than thousands of tiny torch calls, and just as reproducible.
    n_pp_max = max_attractors if n_attractors is None else n_attractors
    per_example = 2 + max_prefix + 3 + 1 + 5 * n_pp_max + 1 + max_fillers
    uniforms = torch.rand(n, per_example, generator=g).tolist()
    rows = [_agreement_sentence(iter(row), max_prefix, max_attractors, attractor_rate, n_attractors, max_fillers,
                                adjective_rate) for row in uniforms]
    seqs, plural_subj, n_attr, n_nouns, subj_pos, last_plural = (list(c) for c in zip(*rows))
    distance = [len(seq) - 1 - pos for seq, pos in zip(seqs, subj_pos)]
    lengths = torch.tensor([len(s) for s in seqs])
    T = int(lengths.max())
    tokens = torch.full((n, T), _AG_PAD, dtype=torch.long)
    for i, seq in enumerate(seqs):
        tokens[i, : len(seq)] = torch.tensor(seq)
    mask = torch.arange(T)[None, :] < lengths[:, None]
    return TaskData(
        x=_one_hot(tokens, len(AGREEMENT_VOCAB), mask), y=torch.tensor(plural_subj), tokens=tokens,
        mask=mask, lengths=lengths, chance=0.5, kind="classification", num_classes=2,
        vocab=AGREEMENT_VOCAB,
        info={
            "n_attractors": torch.tensor(n_attr), "n_nouns": torch.tensor(n_nouns),
            "subject_pos": torch.tensor(subj_pos), "last_noun_plural": torch.tensor(last_plural),
            "distance": torch.tensor(distance),
        },
    )


def render_agreement(data: TaskData, i: int = 0, with_answer: bool = True) -> str:
    """Example ``i`` of :func:`make_agreement` as words, e.g. "the key to the cabinets is".

    The ``<verb>`` slot shows "is" or "are" (the right answer) when ``with_answer``, else "___".
    """
    i = int_at_least("i", i, 0)
    if data.tokens is None or data.vocab is None or i >= len(data):
        raise ValueError(f"data must be an agreement TaskData with more than {i} examples")
    length = int(data.lengths[i]) if data.lengths is not None else data.tokens.shape[1]
    words = [data.vocab[t] for t in data.tokens[i, :length].tolist()]
    verb = ("are" if int(data.y[i]) == 1 else "is") if with_answer else "___"
    return " ".join(verb if w == "<verb>" else w for w in words)


# ----------------------------------------------------------------------------------------------
# tagging whose labels need the right context
# ----------------------------------------------------------------------------------------------
_NEUTRAL = ("film", "plot", "cast", "was", "quite", "and", "the", "ending")
_POSITIVE = ("exciting", "charming", "clever", "moving")
_NEGATIVE = ("boring", "clumsy", "dull", "shallow")
_INTENSIFIERS = ("terribly", "awfully", "incredibly")
TAGGING_VOCAB: tuple[str, ...] = _NEUTRAL + _POSITIVE + _NEGATIVE + _INTENSIFIERS
TAG_NAMES = ("neutral", "positive", "negative")
_TG = {w: i for i, w in enumerate(TAGGING_VOCAB)}
_TG_NEU = torch.tensor([_TG[w] for w in _NEUTRAL])
_TG_POS = torch.tensor([_TG[w] for w in _POSITIVE])
_TG_NEG = torch.tensor([_TG[w] for w in _NEGATIVE])
_TG_INT = torch.tensor([_TG[w] for w in _INTENSIFIERS])


def _tagging_expectations(T: int, p_intensifier: float, p_sentiment: float) -> dict:
    """Exact expected tag counts per sequence from the generating Markov chain (see the generator).

    ``free[t]`` is the probability that position ``t`` is not the word right after an intensifier.
    """
    free = [1.0]
    for t in range(T - 1):  # position t + 1 is bound iff position t was an intensifier
        free.append(1.0 - free[t] * p_intensifier)
    intens = sum(free[t] * p_intensifier for t in range(T - 1))
    after = T - sum(free)  # positions right after an intensifier: always a sentiment word
    sentiment = after
    neutral = 0.0
    for t in range(T):
        if t < T - 1:
            sentiment += free[t] * p_sentiment
            neutral += free[t] * (1.0 - p_intensifier - p_sentiment)
        else:  # the last word cannot be an intensifier: renormalise its choice
            sentiment += free[t] * p_sentiment / (1.0 - p_intensifier)
            neutral += free[t] * (1.0 - p_sentiment / (1.0 - p_intensifier))
    # tags: intensifiers take the sentiment of the next word (positive or negative, 50/50);
    # sentiment words are positive or negative, 50/50.
    positive = negative = (sentiment + intens) / 2.0
    return {"intensifiers": intens, "neutral": neutral, "positive": positive, "negative": negative}


def make_right_context_tagging(
    n: int, T: int = 20, seed: int = 0, p_intensifier: float = 0.2, p_sentiment: float = 0.2
) -> TaskData:
    """Token tagging where some tags depend on the *next* token ("terribly exciting").

    Each token gets a tag in ``TAG_NAMES``: 0 neutral, 1 positive, 2 negative. Sentiment words
    ("exciting", "dull", ...) tag themselves; neutral words are neutral; an intensifier
    ("terribly", ...) takes the sentiment of the word after it, so "terribly exciting" is
    positive, positive and "terribly boring" negative, negative.

    Generation, left to right: at a free position the word is an intensifier with probability
    ``p_intensifier`` (never at the last position, which renormalises over the other two kinds), a
    sentiment word with probability ``p_sentiment`` (positive or negative, 50/50), else neutral. The
    word after an intensifier is always a sentiment word, positive or negative 50/50.

    Returns ``tokens`` ``(n, T)``, one-hot ``x`` ``(n, T, V)``, ``y`` ``(n, T)`` tags and ``mask``
    (all True; sequences have fixed length). ``info["unidirectional_ceiling"]`` is the best
    expected accuracy of any model that sees tokens ``0..t`` only when tagging ``t``: everything is
    determined by the token itself except an intensifier's tag, which is a fair coin given the
    left context, so the ceiling is ``1 - 0.5 * E[#intensifiers] / T``, computed exactly from the
    generating chain. A model that also sees token ``t + 1`` (bidirectional) can reach 1.0.
    ``chance`` is the majority tag's expected rate (an input-blind predictor).
    ``info["is_intensifier"]`` marks the ambiguous positions.
    """
    n = int_at_least("n", n, 1)
    T = int_at_least("T", T, 2)
    p_intensifier = _probability("p_intensifier", p_intensifier, allow_one=False)
    p_sentiment = _probability("p_sentiment", p_sentiment)
    if p_intensifier + p_sentiment > 1:
        raise ValueError(f"p_intensifier + p_sentiment must be <= 1, got {p_intensifier + p_sentiment}")
    g = _generator(seed)
    int_ids, pos_ids, neg_ids, neu_ids = (t.tolist() for t in (_TG_INT, _TG_POS, _TG_NEG, _TG_NEU))
    all_tokens, all_tags = [], []
    for _ in range(n):
        u = torch.rand(T, generator=g).tolist()  # kind of word at each free position
        sign = (torch.rand(T, generator=g) < 0.5).tolist()  # positive or negative
        pick = torch.randint(0, 24, (T,), generator=g).tolist()  # which word (24: uniform over 8, 4, 3)
        tokens, tags = [], []
        t = 0
        while t < T:
            last = t == T - 1
            r = u[t] * (1 - p_intensifier) if last else u[t]  # the last word is never an intensifier
            if not last and r < p_intensifier:  # intensifier + sentiment word, both tagged by the latter
                words = pos_ids if sign[t + 1] else neg_ids
                tokens += [int_ids[pick[t] % len(int_ids)], words[pick[t + 1] % len(words)]]
                tags += [1 if sign[t + 1] else 2] * 2
                t += 2
                continue
            if r < (0.0 if last else p_intensifier) + p_sentiment:
                words = pos_ids if sign[t] else neg_ids
                tokens.append(words[pick[t] % len(words)])
                tags.append(1 if sign[t] else 2)
            else:
                tokens.append(neu_ids[pick[t] % len(neu_ids)])
                tags.append(0)
            t += 1
        all_tokens.append(tokens)
        all_tags.append(tags)
    tokens, tags = torch.tensor(all_tokens), torch.tensor(all_tags)
    e = _tagging_expectations(T, p_intensifier, p_sentiment)
    ceiling = 1.0 - 0.5 * e["intensifiers"] / T
    chance = max(e["neutral"], e["positive"], e["negative"]) / T
    return TaskData(
        x=_one_hot(tokens, len(TAGGING_VOCAB)), y=tags, tokens=tokens,
        mask=torch.ones(n, T, dtype=torch.bool), chance=chance, kind="tagging", num_classes=3,
        vocab=TAGGING_VOCAB,
        info={
            "unidirectional_ceiling": ceiling,
            "is_intensifier": torch.isin(tokens, _TG_INT),
            "expected_tag_rates": {TAG_NAMES[0]: e["neutral"] / T, TAG_NAMES[1]: e["positive"] / T,
                                   TAG_NAMES[2]: e["negative"] / T},
        },
    )


def render_tagging(data: TaskData, i: int = 0, upto: int | None = None) -> str:
    """Example ``i`` of :func:`make_right_context_tagging` as ``word/TAG`` pairs.

    ``"the/neu film/neu was/neu terribly/pos exciting/pos"``.
    """
    i = int_at_least("i", i, 0)
    if data.tokens is None or data.vocab is None or i >= len(data):
        raise ValueError(f"data must be a tagging TaskData with more than {i} examples")
    T = data.tokens.shape[1] if upto is None else min(int_at_least("upto", upto, 1), data.tokens.shape[1])
    short = ("neu", "pos", "neg")
    return " ".join(f"{data.vocab[w]}/{short[t]}" for w, t in zip(data.tokens[i, :T].tolist(), data.y[i, :T].tolist()))
