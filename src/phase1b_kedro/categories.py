"""Deciding a record's category, in order of trust (each record keeps how it was decided):

1. ``field``: a category field of the record (``category``, ``task_type``, ...) that maps to one
   of the six categories through ``category_aliases``;
2. ``classifier``: a text classifier (scikit-learn, a linear model with logistic loss on the
   words at the start of the system turn and prompt, plus the record's source) trained on *this file's* records that
   have a category field, applied to the others where its probability reaches
   ``classifier_min_confidence``;
3. ``source``: records of one source/dataset share a category: the majority of the source's
   records decided by 1 (else 2, else 4), when it is a clear one (``source_min_share`` of at
   least ``source_min_records``). A record's own text overrides it only through step 2;
4. ``rules``: a transparent rule-based classifier configured in
   ``conf/base/parameters_sampling.yml`` (``sampling.category_rules``): keywords (whole words),
   phrases (substrings) and patterns (regular expressions) per category, one point per match,
   highest score wins, ties to the category listed first, no match ``other``. The matched
   rules are kept on the record (``meta.category_rules``).

Why this order: rules written for known datasets generalise poorly to unfamiliar ones (on
OpenAI-evals datasets they were not written for, 40% right), while real files mix datasets
of which some carry a category field and most carry a source field. The estimated accuracy
of each method is measured on the file's own labelled records, cross-validated with whole
sources held out (:func:`estimate_accuracy`), and reported in ``test_dataset_stats``.

Only the start of the system turn and of the prompt are read (the task is stated early,
and long passages would otherwise dominate the cost); system turns repeat across records
of one source, so their rule matches are cached.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from functools import lru_cache
from itertools import chain, count, repeat
from typing import Any

import numpy as np

from phase1b_kedro.params import ParameterError
from phase1b_kedro.records import CATEGORIES

#: Characters of the prompt (last user turn) and of the system turns that the rules read.
PROMPT_CHARS = 800
SYSTEM_CHARS = 600
_WORD = re.compile(r"[a-z0-9_]+")
#: Bytes that are not word characters (``_WORD``) become spaces (see :func:`_words`).
_NOT_WORD = bytes(c if c in b"abcdefghijklmnopqrstuvwxyz0123456789_" else 32 for c in range(256))
_RULE_KINDS = ("keywords", "phrases", "patterns")


def _words(lowered: str) -> list[str]:
    """``_WORD.findall(lowered)``, about three times faster (it runs on every record).

    Word characters are ASCII, so every other character, once encoded as ``?``, is a
    separator like any other non-word character.
    """
    return lowered.encode("ascii", "replace").translate(_NOT_WORD).decode("ascii").split()


#: How a category was decided, in order of trust.
METHODS: tuple[str, ...] = ("field", "classifier", "source", "rules")
_CAT_CODE = {c: i for i, c in enumerate(CATEGORIES)}


@dataclass(frozen=True)
class CategoryDecision:
    """The category and how it was decided (``field`` or ``rules`` here)."""

    category: str
    method: str
    rules: tuple[str, ...] = ()


class CategoryClassifier:
    """Maps source categories through aliases, or infers one from keyword/pattern rules."""

    def __init__(self, rules: Mapping[str, Mapping[str, Sequence[str]]],
                 aliases: Mapping[str, str] | None = None) -> None:
        """Args:
        rules: ``{category: {keywords: [...], phrases: [...], patterns: [...]}}`` in priority
            order (ties go to the earlier category).
        aliases: Source category names → one of the six categories (case, spaces and hyphens
            do not matter: see :func:`_spelling`).

        Raises:
            ValueError: For unknown categories or rule kinds, or an invalid regex.
        """
        if not isinstance(rules, Mapping):
            raise ParameterError(f"sampling.category_rules must be a mapping of category to rules, got {rules!r}")
        if aliases is not None and not isinstance(aliases, Mapping):
            raise ParameterError(f"sampling.category_aliases must be a mapping of name to category, got {aliases!r}")
        unknown = set(rules) - set(CATEGORIES)
        if unknown:
            raise ParameterError(f"sampling.category_rules names unknown categories: {sorted(unknown)}")
        bad_alias = {k: v for k, v in (aliases or {}).items() if v not in CATEGORIES}
        if bad_alias:
            raise ParameterError(f"sampling.category_aliases map to unknown categories: {bad_alias}")
        self._aliases = {_spelling(str(k)): v for k, v in (aliases or {}).items()}
        self._aliases.update({c: c for c in CATEGORIES})
        self._order = {cat: i for i, cat in enumerate(rules)}
        self._keywords: dict[str, list[str]] = {}
        self._phrases: list[tuple[str, str]] = []
        self._patterns: list[tuple[str, re.Pattern[str], str]] = []
        for cat, spec in rules.items():
            if spec is not None and not isinstance(spec, Mapping):
                raise ParameterError(f"sampling.category_rules.{cat} must be a mapping of {_RULE_KINDS}, got {spec!r}")
            extra = set(spec or {}) - set(_RULE_KINDS)
            if extra:
                raise ParameterError(f"sampling.category_rules.{cat} has unknown keys {sorted(extra)}; use {_RULE_KINDS}")
            # A single string is one rule (Kedro's CLI passes one), never its characters.
            lists = {kind: _rule_list((spec or {}).get(kind), f"sampling.category_rules.{cat}.{kind}")
                     for kind in _RULE_KINDS}
            for word in lists["keywords"]:
                self._keywords.setdefault(word.lower(), []).append(cat)
            for phrase in lists["phrases"]:
                self._phrases.append((cat, phrase.lower()))
            for i, pattern in enumerate(lists["patterns"]):
                try:
                    compiled = re.compile(pattern, re.IGNORECASE | re.MULTILINE)
                except re.error as exc:
                    raise ParameterError(f"sampling.category_rules.{cat}.patterns[{i}] is not a valid regex: {exc}") from exc
                self._patterns.append((cat, compiled, pattern))
        self._keyword_set = frozenset(self._keywords)
        self._system_hits = lru_cache(maxsize=4096)(self._hits)

    def field_category(self, source_category: str | None) -> str | None:
        """The record's own category field mapped through the aliases (``None`` if it does not map)."""
        if source_category is None:
            return None
        mapped = self._aliases.get(source_category)  # the common case: already a category
        return mapped if mapped is not None else self._aliases.get(_spelling(source_category))

    def decide(self, source_category: str | None, messages: Sequence[Mapping[str, str]],
               prompt: str) -> CategoryDecision:
        """Category from the field when it maps to one of the six, else from the rules."""
        mapped = self.field_category(source_category)
        if mapped is not None:
            return CategoryDecision(mapped, "field")
        return self.rules(*classifier_text(messages, prompt))

    def rules(self, system: str, prompt: str) -> CategoryDecision:
        """Apply the rules to the start of the system turn(s) and of the prompt."""
        return self._choose(self._system_hits(system[:SYSTEM_CHARS]) | self._hits(prompt[:PROMPT_CHARS]))

    def infer(self, text: str) -> CategoryDecision:
        """Apply the rules to ``text`` (its first ``PROMPT_CHARS`` characters)."""
        return self._choose(self._hits(text[:PROMPT_CHARS]))

    def _hits(self, text: str) -> frozenset[tuple[str, str]]:
        """Every (category, rule) that matches ``text``."""
        if not text:
            return frozenset()
        lowered = text.lower()
        hits = {(cat, w) for w in self._keyword_set.intersection(_words(lowered)) for cat in self._keywords[w]}
        hits.update((cat, p) for cat, p in self._phrases if p in lowered)
        hits.update((cat, src) for cat, rx, src in self._patterns if rx.search(text))
        return frozenset(hits)

    def _choose(self, hits: frozenset[tuple[str, str]]) -> CategoryDecision:
        if not hits:
            return CategoryDecision("other", "rules")
        score: dict[str, int] = {}
        for cat, _ in hits:
            score[cat] = score.get(cat, 0) + 1
        best = min(score, key=lambda c: (-score[c], self._order[c]))
        return CategoryDecision(best, "rules", tuple(sorted(r for c, r in hits if c == best)))


_SEPARATORS = re.compile(r"[\s\-]+")


def _spelling(name: str) -> str:
    """A category name as aliases are looked up: lowercased, spaces and hyphens as one ``_``
    (``Creative Writing``, ``creative-writing`` and ``creative_writing`` are one name)."""
    return _SEPARATORS.sub("_", name.strip().lower())


def _rule_list(value: Any, name: str) -> list[str]:
    """A list of rule strings, kept exactly (a phrase's spaces matter); one string is one rule.

    Raises:
        ParameterError: For anything but a string or a list of non-empty strings.
    """
    if value is None:
        return []
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, (list, tuple)) or not all(isinstance(v, str) and v for v in items):
        raise ParameterError(f"{name} must be a list of non-empty strings (or one string), got {value!r}")
    return list(items)


def classifier_from_params(params: Mapping[str, Any]) -> CategoryClassifier:
    """Build the classifier from the ``sampling`` parameter group."""
    return CategoryClassifier(params.get("category_rules") or {}, params.get("category_aliases") or {})


def classifier_text(messages: Sequence[Mapping[str, str]], prompt: str) -> tuple[str, str]:
    """What the rules and the text classifier read: the start of the system turn(s) and of the
    prompt. Tool definitions appended to the system turn (``<tools>`` block, see
    :mod:`phase1b_kedro.records`) are not read: they describe the tools, not the task."""
    system = "\n".join(m["content"] for m in messages if m["role"] == "system")
    if "<tools>\n" in system:
        system = system.partition("<tools>\n")[0].rstrip()
    return system[:SYSTEM_CHARS], prompt[:PROMPT_CHARS]


@dataclass(frozen=True)
class InferenceSettings:
    """``sampling.category_inference``: when the classifier and source propagation apply."""

    #: Train a classifier on the file's labelled records (false: field, source, rules only).
    classifier: bool = True
    #: Fewest labelled records (and at least two categories) to train one.
    classifier_min_labeled: int = 30
    #: A classifier decision is used when its probability reaches this.
    classifier_min_confidence: float = 0.6
    #: For sources without labelled records, the classifier is used only when its accuracy
    #: (when confident) with whole sources held out reaches this.
    classifier_unseen_min_accuracy: float = 0.85
    #: Labelled records used for training (a deterministic subset beyond this).
    classifier_max_train: int = 5_000
    #: A source's majority is used when at least this many of its records were decided...
    source_min_records: int = 3
    #: ...and at least this share of them agree.
    source_min_share: float = 0.6
    #: Records per source whose rules are read to find the source's majority (all of a source's
    #: records when it has no clear one).
    source_sample: int = 200
    #: Labelled records on which the rules' accuracy is estimated (a deterministic subset).
    rules_estimate_records: int = 3_000
    #: Labelled records on which the classifier is cross-validated (a deterministic subset of
    #: the training set: its cost grows with it, its precision hardly beyond a few thousand).
    classifier_estimate_records: int = 2_500
    #: Distinct sources the source vote keeps (the first ones in file order); a source field
    #: with more values is a per-record value, not a dataset: records of sources beyond it count
    #: as without a source (their own text decides). Bounds the memory sources take.
    max_sources: int = 100_000

    @classmethod
    def from_params(cls, params: Mapping[str, Any]) -> InferenceSettings:
        """Build from the ``sampling`` group; unknown keys and wrong types stop the run naming them."""
        group = params.get("category_inference") or {}
        if not isinstance(group, Mapping):
            raise ParameterError(f"sampling.category_inference must be a mapping, got {group!r}")
        known = {f.name: f.type for f in fields(cls)}
        unknown = set(group) - set(known)
        if unknown:
            raise ParameterError(f"sampling.category_inference has unknown keys {sorted(unknown)}; "
                                 f"known: {sorted(known)}")
        kwargs: dict[str, Any] = {}
        for key, value in group.items():
            default = getattr(cls, key)
            if isinstance(default, bool):
                ok = isinstance(value, bool)
            elif isinstance(default, float):
                ok = isinstance(value, (int, float)) and not isinstance(value, bool) and 0 <= value <= 1
            else:
                ok = isinstance(value, int) and not isinstance(value, bool) and value >= 0
            if not ok:
                raise ParameterError(f"sampling.category_inference.{key} must be like {default!r}, got {value!r}")
            kwargs[key] = value
        return cls(**kwargs)


#: Characters of the system turn and of the prompt that the text classifier reads.
CLASSIFIER_CHARS = 300
#: Separates documents in a batch: a byte ``_NOT_WORD`` turns into a space, so no word holds it.
_DOC_SEP = b"\x01"


@dataclass(frozen=True)
class Documents:
    """A batch of classifier inputs, featurised in bulk (C-level string, dict and sparse operations).

    ``systems[i]`` and ``prompts[i]`` are record ``i``'s system turn and prompt as the
    classifier reads them: their first ``CLASSIFIER_CHARS`` characters, lowercased, every
    non-word character a space (the words of :func:`_words`); ``sources[i]`` is its source
    (``None``: none). System turns repeat across the records of a source, so each distinct one
    is split and looked up once.
    """

    systems: list[bytes]
    prompts: list[bytes]
    sources: list[str | None]

    def __len__(self) -> int:
        return len(self.prompts)

    def presence(self, lookup: Mapping[bytes, int], width: int) -> Any:
        """Which tokens each document holds: CSR ``(len(self), width)``, float32, ones.

        Args:
            lookup: Token → column (words, and :func:`source_token` for sources); tokens it
                does not hold are not features. It must map ``_DOC_SEP`` to ``-2`` (see
                :func:`with_separator`).
            width: The number of columns.
        """
        from scipy.sparse import csr_matrix

        distinct: dict[bytes, int] = {}
        which = [distinct.setdefault(system, len(distinct)) for system in self.systems]
        matrix = _occurrences(list(distinct), lookup, width)[which] + _occurrences(self.prompts, lookup, width)
        by_source = {src: lookup.get(source_token(src), -1) for src in set(self.sources) if src}
        src_cols = np.fromiter((by_source[src] if src else -1 for src in self.sources), dtype=np.int64,
                               count=len(self))
        rows = np.flatnonzero(src_cols >= 0)
        matrix = matrix + csr_matrix((np.ones(len(rows), dtype=np.float32), (rows, src_cols[rows])),
                                     shape=(len(self), width))
        matrix.data[:] = 1.0  # presence: a word in both the system turn and the prompt counts once
        return matrix


def _occurrences(texts: list[bytes], lookup: Mapping[bytes, int], width: int) -> Any:
    """How often each column's token occurs in each of ``texts``: CSR ``(len(texts), width)``.

    The texts are joined with a separator token and split once; each token is looked up in
    one C-level ``map``.
    """
    from scipy.sparse import csr_matrix

    flat = (b" " + _DOC_SEP + b" ").join(texts).split()
    cols = np.array(list(map(lookup.get, flat, repeat(-1))), dtype=np.int64)
    rows = np.cumsum(cols == -2)
    keep = cols >= 0
    return csr_matrix((np.ones(int(keep.sum()), dtype=np.float32), (rows[keep], cols[keep])),
                      shape=(len(texts), width))


def with_separator(vocabulary: Mapping[bytes, int]) -> dict[bytes, int]:
    """The vocabulary plus the document separator (``-2``), as :meth:`Documents.presence` reads it."""
    return {**vocabulary, _DOC_SEP: -2}


def source_token(source: str) -> bytes:
    """The classifier's feature for a record's source (no word can equal it: words hold no NUL)."""
    return b"\x00" + source.encode("utf-8")


def _classifier_words(text: str) -> bytes:
    """The start of ``text`` as the classifier reads it: lowercased, non-word characters as spaces."""
    return text[:CLASSIFIER_CHARS].lower().encode("ascii", "replace").translate(_NOT_WORD)


def documents(texts: Sequence[tuple[str, str]], sources: Sequence[str | None]) -> Documents:
    """The classifier's view of each ``(system, prompt)`` text and its source: the words at the
    start of the system turn and prompt, plus the source."""
    return Documents([_classifier_words(system) for system, _ in texts],
                     [_classifier_words(prompt) for _, prompt in texts], list(sources))


class TextCategoryModel:
    """A scikit-learn linear model (logistic loss, SGD: a fraction of a second on 20,000 records)
    on word-presence features, fitted on one file's labelled records.

    The record's source is a feature too: within a source that has labelled records, it
    carries the source's category; for a source with none it is unknown and only the words
    count (which is what the cross-validation with whole sources held out measures).
    """

    def __init__(self, vocabulary: dict[bytes, int], model: Any) -> None:
        """Use :meth:`fit`."""
        self._lookup = with_separator(vocabulary)
        self._model = model
        self.classes = np.asarray(model.classes_)

    @classmethod
    def fit(cls, docs: Documents, labels: Sequence[str], seed: int = 0) -> TextCategoryModel:
        """Fit on :func:`documents` with their categories."""
        vocabulary = cls.vocabulary(docs)
        return cls(vocabulary, cls.estimator(seed).fit(cls._matrix(docs, with_separator(vocabulary)), np.asarray(labels)))

    @staticmethod
    def estimator(seed: int) -> Any:
        """The unfitted scikit-learn model."""
        from sklearn.linear_model import SGDClassifier

        return SGDClassifier(loss="log_loss", alpha=1e-4, max_iter=15, tol=None, random_state=seed)

    @staticmethod
    def vocabulary(docs: Documents) -> dict[bytes, int]:
        """Feature columns: words and sources in at least two documents (all of them for small files)."""
        # Every token once, in order of first appearance (dict.fromkeys: the loop in C).
        seen = dict.fromkeys(chain.from_iterable(text.split() for text in (*docs.systems, *docs.prompts)))
        seen.update(dict.fromkeys(source_token(src) for src in docs.sources if src))
        ids = dict(zip(seen, count()))
        in_docs = np.bincount(docs.presence(with_separator(ids), max(1, len(ids))).indices, minlength=len(ids))
        # Words seen once say little and make the model large.
        min_df = 2 if len(docs) >= 200 else 1
        return {tok: i for i, tok in enumerate(sorted(t for t, i in ids.items() if in_docs[i] >= min_df))}

    @staticmethod
    def _matrix(docs: Documents, lookup: Mapping[bytes, int]) -> Any:
        """The L2-normalised token-presence matrix: CSR, ``(len(docs), vocabulary size)``, float32.

        ``lookup`` is a vocabulary made into a lookup by :func:`with_separator`.
        """
        from sklearn.preprocessing import normalize

        return normalize(docs.presence(lookup, max(1, len(lookup) - 1)))

    def predict(self, docs: Documents) -> tuple[np.ndarray, np.ndarray]:
        """Predicted category and its probability for each of :func:`documents`."""
        if not docs:
            return np.array([], dtype=object), np.array([], dtype=np.float32)
        proba = self._model.predict_proba(self._matrix(docs, self._lookup))
        best = proba.argmax(axis=1)
        return self.classes[best], proba[np.arange(len(best)), best].astype(np.float32)


def train_classifier(texts: Sequence[tuple[str, str]], sources: Sequence[str | None], labels: Sequence[str],
                     settings: InferenceSettings, seed: int = 0) -> TextCategoryModel | None:
    """The file's own classifier, or ``None`` when it has too few labelled records or one category."""
    if not settings.classifier or len(labels) < settings.classifier_min_labeled or len(set(labels)) < 2:
        return None
    return TextCategoryModel.fit(documents(texts, sources), labels, seed)


def source_majorities(source: np.ndarray, category: np.ndarray, tiers: Sequence[np.ndarray],
                      settings: InferenceSettings) -> dict[int, int]:
    """Each source's clear majority category, from its most trusted tier of decisions.

    Args:
        source: Source code per record (-1: none).
        category: Category code per record (meaningful where a tier mask is true).
        tiers: Boolean masks of decided records, most trusted first (field, classifier, rules).
        settings: ``source_min_records`` and ``source_min_share``.

    Returns:
        ``{source code: category code}`` for sources with a clear majority.
    """
    width = int(source.max(initial=-1)) + 1
    return majorities(np.stack([_counts_by_source(source, category, mask, width) for mask in tiers]), settings)


def majorities(counts: np.ndarray, settings: InferenceSettings) -> dict[int, int]:
    """Each source's clear majority category from its per-tier counts (see :func:`tier_counts`).

    Args:
        counts: ``counts[tier, source, category]``, tiers most trusted first.
        settings: ``source_min_records`` and ``source_min_share``.

    Returns:
        ``{source code: category code}`` for sources with a clear majority: the first tier with
        at least ``source_min_records`` records of the source decides, and its top category
        needs ``source_min_share`` of them (ties: the first category).
    """
    out: dict[int, int] = {}
    settled = np.zeros(counts.shape[1], dtype=bool)
    for tier in counts:
        totals = tier.sum(axis=1)
        for src in np.flatnonzero(totals):
            src = int(src)
            if settled[src] or totals[src] < settings.source_min_records:
                continue
            settled[src] = True  # a source decided at a more trusted tier never falls to a lower one
            if tier[src].max() >= settings.source_min_share * totals[src]:
                out[src] = int(tier[src].argmax())
    return out


#: Records per chunk of the per-record array operations below (bounds their temporaries).
_CHUNK = 1 << 20


def _counts_by_source(source: np.ndarray, category: np.ndarray, mask: np.ndarray, width: int) -> np.ndarray:
    """``counts[s, c]``: records of source ``s`` with category ``c`` among ``mask`` (``int64``,
    ``(width, len(CATEGORIES))``); records without a source (-1) are not counted."""
    k = len(CATEGORIES)
    counts = np.zeros(width * k, dtype=np.int64)
    for lo in range(0, len(source), _CHUNK):
        sel = mask[lo:lo + _CHUNK] & (source[lo:lo + _CHUNK] >= 0)
        if sel.any():
            flat = source[lo:lo + _CHUNK][sel].astype(np.int64) * k + category[lo:lo + _CHUNK][sel]
            counts += np.bincount(flat, minlength=width * k)
    return counts.reshape(width, k)


def decision_tiers(field: np.ndarray, clf_cat: np.ndarray, clf_conf: np.ndarray, rule_cat: np.ndarray,
                   rule_hit: np.ndarray, settings: InferenceSettings) -> tuple[np.ndarray, ...]:
    """The records each trusted method decides, before sources are consulted.

    Returns:
        ``(by_field, by_classifier, by_rules_hit, decided)``: exclusive boolean masks (the
        field, a confident classifier, a rule that matched) and each record's category code
        under the most trusted of them (the rules' default where none applies).
    """
    by_field = field >= 0
    by_clf = ~by_field & (clf_cat >= 0) & (clf_conf >= settings.classifier_min_confidence)
    by_rules_hit = ~by_field & ~by_clf & (rule_hit != 0)
    decided = np.where(by_field, field, np.where(by_clf, clf_cat, rule_cat))
    return by_field, by_clf, by_rules_hit, decided


def tier_counts(source: np.ndarray, field: np.ndarray, clf_cat: np.ndarray, clf_conf: np.ndarray,
                rule_cat: np.ndarray, rule_hit: np.ndarray, settings: InferenceSettings, width: int) -> np.ndarray:
    """``counts[tier, source, category]`` of some records (tiers: field, classifier, rules that
    matched; ``width`` sources): summed over chunks of a file, the input of :func:`majorities`."""
    by_field, by_clf, by_hit, decided = decision_tiers(field, clf_cat, clf_conf, rule_cat, rule_hit, settings)
    return np.stack([_counts_by_source(source, decided, mask, width) for mask in (by_field, by_clf, by_hit)])


def majority_lookup(majority: Mapping[int, int], width: int) -> np.ndarray:
    """Category code per source code (``-1``: no clear majority), ``width + 1`` slots: the last
    one, read by source ``-1``, is always ``-1``."""
    lookup = np.full(width + 1, -1, dtype=np.int16)
    for src, cat in majority.items():
        lookup[src] = cat
    return lookup


def apply_decisions(field: np.ndarray, clf_cat: np.ndarray, clf_conf: np.ndarray, rule_cat: np.ndarray,
                    rule_hit: np.ndarray, source: np.ndarray, lookup: np.ndarray,
                    settings: InferenceSettings) -> tuple[np.ndarray, np.ndarray]:
    """Final category code and method code per record, given the sources' majorities
    (:func:`majority_lookup`); any chunk of records at a time."""
    by_field, by_clf, _, decided = decision_tiers(field, clf_cat, clf_conf, rule_cat, rule_hit, settings)
    src_cat = lookup[source]  # source -1 reads the last slot, always -1
    by_source = ~by_field & ~by_clf & (src_cat >= 0)
    category = np.where(by_field | by_clf, decided, np.where(by_source, src_cat, rule_cat))
    method = np.full(len(field), 3, dtype=np.int8)  # the masks are exclusive
    method[by_source], method[by_clf], method[by_field] = 2, 1, 0
    return category.astype(np.int8, copy=False), method


def resolve(field: np.ndarray, clf_cat: np.ndarray, clf_conf: np.ndarray, rule_cat: np.ndarray,
            rule_hit: np.ndarray, source: np.ndarray, settings: InferenceSettings) -> tuple[np.ndarray, np.ndarray]:
    """Final category code and method code (index into :data:`METHODS`) per record.

    All arguments are per-record arrays: category codes (-1: none) of the field, the
    classifier (with its probability) and the rules (with whether any rule matched), and
    the source code (-1: none). (A file too large to hold these arrays is resolved in chunks:
    :func:`tier_counts` summed, :func:`majorities`, then :func:`apply_decisions` per chunk.)
    """
    width = int(source.max(initial=-1)) + 1
    counts = tier_counts(source, field, clf_cat, clf_conf, rule_cat, rule_hit, settings, width)
    lookup = majority_lookup(majorities(counts, settings), width)
    return apply_decisions(field, clf_cat, clf_conf, rule_cat, rule_hit, source, lookup, settings)


def estimate_accuracy(texts: Sequence[tuple[str, str]], sources: Sequence[str | None], labels: Sequence[str],
                      rules: CategoryClassifier, settings: InferenceSettings, seed: int = 0) -> dict[str, Any]:
    """How often each method gets the labelled records' categories right.

    - ``classifier``: cross-validated with whole sources held out (scikit-learn
      ``GroupKFold``, up to 5 folds): the estimate for a source with no labelled records.
      Both classifier estimates use a uniform subset of ``classifier_estimate_records``
      records (each fold trains on fewer records than the deployed model, so they lean low).
      Records without a source form one group of their own.
    - ``classifier_within_sources``: cross-validated over records (``StratifiedKFold``): the
      estimate for records of sources that do have labelled records.
    - ``source``: each labelled record against the majority of the *other* labelled records
      of its source (sources with at least ``source_min_records`` others).
    - ``rules``: the rules on the labelled records (they are not trained on the file).

    Returns:
        ``{method: {accuracy, records, ...}}`` plus how many labelled records and sources were used.
    """
    labels_arr = np.asarray(labels)
    groups = np.asarray([s or "\x00none" for s in sources])
    n = len(labels_arr)
    report: dict[str, Any] = {"labelled_records": n, "sources": int(len(set(groups.tolist())))}
    if n == 0:
        return report
    if settings.classifier and n >= settings.classifier_min_labeled and len(set(labels)) >= 2:
        from sklearn.model_selection import GroupKFold, StratifiedKFold

        # Every step-th record: the training set is in content-hash order, so this is a
        # uniform subset (and the whole set when it is small enough).
        cv = np.arange(0, n, max(1, -(-n // max(1, settings.classifier_estimate_records))))
        docs = documents([texts[i] for i in cv], [sources[i] for i in cv])
        cv_labels, cv_groups = labels_arr[cv], groups[cv]
        folds = min(5, int(np.unique(cv_labels, return_counts=True)[1].min()))
        k = min(5, len(set(cv_groups.tolist())))
        # The feature columns are chosen once from all documents (no labels involved), so each
        # fold only fits the linear model.
        matrix = TextCategoryModel._matrix(docs, with_separator(TextCategoryModel.vocabulary(docs)))
        if folds >= 2:
            # Records of sources that have labelled records: what the classifier is used for first.
            splits = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed).split(cv, cv_labels)
            report["classifier_within_sources"] = _cross_validate(matrix, cv_labels, splits, settings, seed,
                                                                  "records (their sources seen)")
        if k >= 2:
            # Whole sources held out: what to expect for a source with no labelled record.
            splits = GroupKFold(n_splits=k).split(cv, cv_labels, cv_groups)
            report["classifier"] = _cross_validate(matrix, cv_labels, splits, settings, seed, "whole sources")
    right = total = 0
    for group in set(groups.tolist()):
        members = labels_arr[groups == group]
        if group == "\x00none" or len(members) <= settings.source_min_records:
            continue
        values, counts = np.unique(members, return_counts=True)
        for value, count in zip(values, counts, strict=True):
            others = counts.copy()
            others[values == value] -= 1  # leave this record out
            right += int(count) * int(values[others.argmax()] == value)
        total += len(members)
    if total:
        report["source"] = {"accuracy": round(right / total, 4), "records": total, "held_out": "one record"}
    step = max(1, n // max(1, settings.rules_estimate_records))
    picked = range(0, n, step)
    hits = [rules.rules(*texts[i]).category == labels_arr[i] for i in picked]
    report["rules"] = {"accuracy": _share(np.asarray(hits)), "records": len(hits)}
    return report


def _cross_validate(matrix: Any, labels: np.ndarray, splits: Any, settings: InferenceSettings, seed: int,
                    held_out: str) -> dict[str, Any]:
    """Accuracy of :class:`TextCategoryModel`'s estimator on each fold's held-out records
    (``matrix``: their features, CSR ``(len(labels), columns)``)."""
    n = len(labels)
    pred = np.empty(n, dtype=object)
    conf = np.zeros(n, dtype=np.float32)
    folds = 0
    for train, test in splits:
        folds += 1
        if len(set(labels[train].tolist())) < 2:
            pred[test], conf[test] = labels[train][0], 1.0
            continue
        model = TextCategoryModel.estimator(seed).fit(matrix[train], labels[train])
        proba = model.predict_proba(matrix[test])
        pred[test], conf[test] = model.classes_[proba.argmax(axis=1)], proba.max(axis=1)
    confident = conf >= settings.classifier_min_confidence
    return {
        "accuracy": _share(pred == labels),
        "accuracy_when_confident": _share((pred == labels)[confident]),
        "confident_share": _share(confident),
        "records": n,
        "folds": folds,
        "held_out": held_out,
    }


def _share(mask: np.ndarray) -> float | None:
    return round(float(mask.mean()), 4) if len(mask) else None
