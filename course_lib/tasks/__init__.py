"""Tasks: synthetic sequence problems generated on the fly, and the real-text corpus.

Synthetic generators (``make_<task>(n, ..., seed) -> TaskData``, seeded by their own generator):

- :func:`make_adding`                 regression; chance MSE 1/6 (use :func:`normalized_mse`)
- :func:`make_recall`                 recall a key across ``k`` distractors; chance 1/vocab
- :func:`make_agreement`              subject-verb agreement with attractors; chance 0.5
- :func:`make_right_context_tagging`  tags that need the next token; ``info["unidirectional_ceiling"]``

Token tasks give both ``tokens`` (ids, for an embedding) and ``x`` (their one-hot encoding).
:func:`fresh_batches` and :meth:`TaskData.sampler` turn them into ``batch_fn(step, generator)``
for :func:`course_lib.train.train`.

The corpus (``course_lib.tasks.corpus``): :func:`load_corpus`, :func:`unigram_bits_per_char`.
"""
from .synthetic import (  # noqa: F401
    AGREEMENT_VOCAB,
    TAG_NAMES,
    TAGGING_VOCAB,
    TaskData,
    fresh_batches,
    make_adding,
    make_agreement,
    make_recall,
    make_right_context_tagging,
    normalized_mse,
    render_agreement,
    render_tagging,
)
from .corpus import (  # noqa: F401
    CORPORA,
    Corpus,
    Vocab,
    load_corpus,
    stream_batches,
    unigram_bits_per_char,
)
