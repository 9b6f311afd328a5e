# ruff: noqa: RUF001 - the stop lists are written in Cyrillic on purpose
"""Topic discovery: what unhappy customers talk about that no reason code covers yet.

``discover`` takes a workspace's negative comments (sentiment negative, or a score of 0-6
where the sentiment is not known) that carry no reason code, and groups them:

1. **Features.** Each comment is folded (lower case, no accents: "Parcarea" → "parcarea"),
   split into words, cleared of the stop words of its language (the short lists below; all
   of them where the language is unknown), and described by its words and word pairs, plus a
   *cross-language stem* of each longer word: transliterated to Latin letters, spelled
   roughly as it sounds (c/q → k, w → v, y → i, doubled letters once) and cut to its first
   four letters. Loanwords that customers of ru/ro/en/uk companies share — парковка /
   parcare / parking, тариф / tarif / tariff, терминал / terminal, интернет / internet —
   meet on the same stem, so one subject in three languages can fall into one cluster.
   Words with no shared root (очередь / coadă / queue) only meet with embeddings (below).
2. **TF-IDF** over those features (sublinear term frequency), reduced to one dimension per ten comments (at most 100)
   dimensions (LSA: truncated SVD) and L2-normalised, so that distances are cosines.
3. **k-means** (``random_state`` fixed: the same comments give the same topics) for each k in
   a small range; the k with the best silhouette wins unless ``k`` is given.
   With ``embeddings=True`` (and ``ml.embeddings_available()``) the comments are embedded
   with the multilingual model shipped in a PyPI package (centred, so that the direction all
   of them share does not hide their differences) and grouped by agglomerative clustering
   (Ward linkage), k chosen the same way — slower, but it groups the same subject whatever
   the words.
4. Each cluster of three comments or more is a ``Topic``: its size, the comments' ids, the
   top keywords of each language in it (the words and pairs whose TF-IDF is highest in the
   cluster compared with the other comments of that language, in the customers' spelling),
   up to five examples (the comments closest to the cluster's centre) and a short label.

``create_reason_from_topic`` turns a topic into a reason code and labels its comments with it
through ``services.set_label``: analysts' labels, hence training data for the reasons model.
"""

from __future__ import annotations

import functools
import itertools
import logging
import math
import re
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from django.core.exceptions import ValidationError
from django.core.validators import validate_slug
from django.db import transaction
from django.db.models import Count, Exists, Max, OuterRef, Q, QuerySet
from django.utils.translation import gettext as _

from cxloop.accounts.models import Workspace
from cxloop.cases.models import ReasonCode

from .lexicon import fold
from .models import Comment, CommentReason, Sentiment, Task

log = logging.getLogger(__name__)

MIN_SIZE = 3  # smaller clusters are dropped: two comments are an anecdote, not a topic
EXAMPLES = 5
KEYWORDS = 6
MAX_K = 40
# The numbers of clusters tried when none is given (up to √n and MAX_K).
K_GRID = (2, 3, 4, 5, 6, 8, 10, 12, 15, 18, 22, 26, 30, 35, 40)
K_SAMPLE = 1000  # comments on which k is chosen
MAX_DIMENSIONS = 100
LANGUAGES = ("en", "ru", "ro", "uk")
LABEL_LANGUAGES = ("en", "ru", "ro")  # the languages a reason code is labelled in

# Small stop lists, written folded (lower case, no accents) as ``fold`` leaves words.
_STOP_TEXT = {
    "en": """a about above after again against all also am an and any are as at be because
        been before being below between both but by can could did do does doing done down
        during each even ever every few for from further get got had has have having he her
        here hers him his how i if in into is it its itself just me more most my myself no
        nor not now of off on once only or other our ours out over own same she should so
        some still such than that the their them then there these they this those through
        to too under until up us very was we were what when where which while who whom why
        will with would you your yours im ive dont didnt cant wasnt isnt one two really
        there's it's i'm i've don't didn't can't wasn't isn't won't""",
    "ru": """а без более бы был была были было быть в вам вас весь во вот все всё всего всех
        вы где да даже для до его ее её если есть еще ещё же за здесь и из или им их к как
        какой когда кто ли либо меня мне мной мы на над надо наш не него нее неё нет ни них
        но ну о об однако он она они оно от очень по под при про с сам себя со так также
        такой там те тем то того тоже той только том ту ты у уже чем что чтобы эта эти это
        этот я мой моя мое моё мои вообще просто раз два""",
    "ro": """a acea aceasta această acel acela acest acesta acolo acum ai al ale am an ar
        are as asa așa au avea avem aveti aveți ca că care ce cel cea cei cele cu cum da dar
        de deci deja din doar dupa după ea ei el ele eu fi fie fost iar ii îi il îl in în
        inca încă la le li lor lui m ma mă mai mea mei meu mi mie mult multa multă nici noi
        nu o ori pe pentru prea sa să sau se si și sunt ta te tot toti toți tu un una unei
        unor unui voi vă va vom s-a n-am nu-mi mi-a este e era erau fiind foarte nimic""",
    "uk": """а або але б без би був була були було бути в вам вас ви від він вона вони воно
        все всі всього де для до є ж же за з зі і й із їх й як який яка які коли ми мене мені
        мій моя мої на над не нам нас неї нема немає ні ніж них но ну о об от по під при про
        с так також там те тем то того тож той тут у уже хто це цей ця ці цього чи що щоб я
        дуже просто""",
}
STOP_WORDS: dict[str, frozenset[str]] = {
    lang: frozenset(fold(w).strip() for w in re.split(r"\s+", words) if w.strip())
    for lang, words in _STOP_TEXT.items()
}
_ALL_STOP = frozenset().union(*STOP_WORDS.values())
_WORD = re.compile(r"[^\W\d_]+(?:['’-][^\W\d_]+)*")

_CYRILLIC = {
    "а": "a", "б": "b", "в": "v", "г": "g", "ґ": "g", "д": "d", "е": "e", "є": "e", "ж": "zh",
    "з": "z", "и": "i", "і": "i", "к": "k", "л": "l", "м": "m", "н": "n", "о": "o", "п": "p",
    "р": "r", "с": "s", "т": "t", "у": "u", "ф": "f", "х": "h", "ц": "ts", "ч": "ch",
    "ш": "sh", "щ": "sch", "ъ": "", "ы": "i", "ь": "", "э": "e", "ю": "iu", "я": "ia",
}  # fmt: skip
_SOUNDS = (("ph", "f"), ("th", "t"), ("ck", "k"), ("c", "k"), ("q", "k"), ("w", "v"), ("y", "i"))


@dataclass
class Topic:
    size: int
    label: str
    keywords: dict[str, list[str]]  # language → top keywords, in the customers' spelling
    examples: list[Comment]
    comment_ids: list[int]
    languages: dict[str, int] = field(default_factory=dict)  # language → comments

    @property
    def key(self) -> str:
        """Stable enough to name the topic in a page: its smallest comment id."""
        return str(min(self.comment_ids)) if self.comment_ids else ""


# --- features -------------------------------------------------------------------------------


def stem(word: str) -> str:
    """The cross-language stem of a folded word: Latin letters, rough spelling, 4 letters."""
    latin = "".join(_CYRILLIC.get(ch, ch) for ch in word)
    for written, sound in _SOUNDS:
        latin = latin.replace(written, sound)
    latin = re.sub(r"(.)\1+", r"\1", latin)
    return latin[:4]


@functools.lru_cache(maxsize=50_000)
def _fold_word(word: str) -> str:
    return fold(word).strip()


def words(text: str, language: str) -> list[tuple[str, str]]:
    """(folded word, as written in lower case) for each word of ``text`` that is not a stop
    word of ``language`` (of any language when it is not one of ours)."""
    stop = STOP_WORDS.get(language, _ALL_STOP)
    out = []
    for match in _WORD.finditer(text.casefold()):
        written = match.group(0).replace("’", "'")
        folded = _fold_word(written)
        if len(folded) < 2 or folded in stop:
            continue
        out.append((folded, written))
    return out


def _terms(tokens: Sequence[tuple[str, str]]) -> list[str]:
    folded = [t[0] for t in tokens]
    return folded + [f"{a} {b}" for a, b in itertools.pairwise(folded)]


def _stems(tokens: Sequence[tuple[str, str]]) -> list[str]:
    return [f"~{stem(t[0])}" for t in tokens if len(t[0]) >= 5]


def _identity(doc: list[str]) -> list[str]:
    return doc


# --- the comments ---------------------------------------------------------------------------


def candidates(workspace: Workspace, *, since: Any = None, until: Any = None) -> QuerySet[Comment]:
    """The workspace's negative comments without a reason code (``since`` ≤ written < ``until``)."""
    coded = CommentReason.objects.filter(comment=OuterRef("pk"))
    comments = (
        Comment.objects.filter(workspace=workspace)
        .filter(Q(sentiment=Sentiment.NEGATIVE) | Q(sentiment="", score__lte=6))
        .filter(~Exists(coded))
    )
    if since is not None:
        comments = comments.filter(written_at__gte=since)
    if until is not None:
        comments = comments.filter(written_at__lt=until)
    return comments


def fingerprint(workspace: Workspace, *, since: Any = None, until: Any = None) -> str:
    """Changes when the comments ``discover`` would read change (new, coded, re-analysed)."""
    found = candidates(workspace, since=since, until=until).aggregate(
        count=Count("pk"), last=Max("pk"), analysed=Max("analysed_at")
    )
    analysed = found["analysed"].isoformat() if found["analysed"] else ""
    return f"{found['count']}:{found['last'] or 0}:{analysed}"


# --- clustering -----------------------------------------------------------------------------


def _k_grid(n: int) -> list[int]:
    """The numbers of clusters tried: about √n at most, denser where k is small."""
    top = max(2, min(MAX_K, math.isqrt(n)))
    return [k for k in K_GRID if k <= top] or [2]


def _best_k(points: Any, labels_for: Callable[[int], Any], metric: str) -> int:
    """The k of ``_k_grid`` whose clustering of ``points`` has the best silhouette."""
    from sklearn.metrics import silhouette_score

    n = points.shape[0]
    best: tuple[float, int] | None = None
    for k in _k_grid(n):
        if k >= n:
            break
        labels = labels_for(k)
        if len(set(labels.tolist())) < 2:
            continue
        score = float(silhouette_score(points, labels, metric=metric))
        if best is None or score > best[0] + 1e-9:
            best = (score, k)
    return best[1] if best is not None else 1


def _sample(points: Any) -> Any:
    n = points.shape[0]
    if n <= K_SAMPLE:
        return points
    rows = np.random.default_rng(0).choice(n, K_SAMPLE, replace=False)
    return points[np.sort(rows)]


def _kmeans(points: Any, k: int | None) -> Any:
    """k-means; k chosen on a sample of the comments (one start each), the final clustering
    of all of them with three starts."""
    from sklearn.cluster import KMeans

    if k is None:
        sample = _sample(points)
        k = _best_k(
            sample,
            lambda kk: KMeans(n_clusters=kk, n_init=1, random_state=0).fit_predict(sample),
            "euclidean",
        )
    k = max(1, min(k, points.shape[0]))
    return KMeans(n_clusters=k, n_init=3, random_state=0).fit_predict(points)


def _agglomerative(points: Any, k: int | None) -> Any:
    """Agglomerative clustering (Ward linkage: one tree, cut at k)."""
    from scipy.cluster.hierarchy import fcluster, linkage

    tree = linkage(points, method="ward")

    def cut(kk: int) -> Any:
        return fcluster(tree, t=kk, criterion="maxclust") - 1

    if k is None:
        k = _best_k(points, cut, "euclidean")
    return cut(max(1, min(k, points.shape[0])))


def _embed(texts: list[str]) -> Any:
    from sklearn.preprocessing import normalize

    from . import ml

    vectors = np.asarray(ml.embed(texts), dtype=np.float64)
    # e5's vectors share a large common direction (every cosine is 0.7-0.9): without it, the
    # distances between subjects stand out.
    return normalize(vectors - vectors.mean(axis=0))


def _lsa(matrix: Any) -> Any:
    from sklearn.decomposition import TruncatedSVD
    from sklearn.preprocessing import normalize

    n, m = matrix.shape
    # About one dimension per ten comments: enough to keep the subjects apart, few enough that
    # near-duplicate wordings do not make clusters of their own.
    dims = min(MAX_DIMENSIONS, max(10, n // 10), n - 1, m - 1)
    if dims < 2:
        return normalize(matrix.toarray())
    reduced = TruncatedSVD(n_components=dims, n_iter=2, random_state=0).fit_transform(matrix)
    return normalize(reduced)


def _keywords(
    members: list[int],
    by_language: dict[str, list[int]],
    term_matrix: Any,
    vocabulary: list[str],
    spelled: dict[str, str],
) -> dict[str, list[str]]:
    """Per language: the terms most above that language's average in the cluster."""
    out: dict[str, list[str]] = {}
    member_set = set(members)
    for language, rows in by_language.items():
        inside = [r for r in rows if r in member_set]
        if not inside:
            continue
        outside = [r for r in rows if r not in member_set]
        mean_in = np.asarray(term_matrix[inside].mean(axis=0)).ravel()
        mean_out = (
            np.asarray(term_matrix[outside].mean(axis=0)).ravel()
            if outside
            else np.zeros_like(mean_in)
        )
        present = np.asarray((term_matrix[inside] > 0).sum(axis=0)).ravel()
        # A keyword is in at least two of the cluster's comments (or its only one).
        enough = present >= min(2, len(inside))
        score = np.where(enough, mean_in - mean_out, -np.inf)
        order = np.argsort(-score, kind="stable")
        chosen: list[str] = []
        for index in order:
            if len(chosen) >= KEYWORDS or not np.isfinite(score[index]) or score[index] <= 0:
                break
            term = vocabulary[index]
            # A pair whose two words are both keywords already says nothing new, and a word
            # inside a chosen pair neither.
            if any(term in c.split(" ") or c in term.split(" ") for c in chosen):
                continue
            chosen.append(term)
        out[language] = [spelled.get(term, term) for term in chosen]
    return out


def _label(keywords: dict[str, list[str]], languages: dict[str, int]) -> str:
    ordered = [lang for lang, _n in sorted(languages.items(), key=lambda i: (-i[1], i[0]))]
    ordered = [lang for lang in ordered if keywords.get(lang)]
    if not ordered:
        return _("(no keywords)")
    if len(ordered) == 1:
        return ", ".join(keywords[ordered[0]][:3])
    return " / ".join(keywords[lang][0] for lang in ordered[:3])


def discover(
    workspace: Workspace,
    *,
    since: Any = None,
    until: Any = None,
    max_comments: int = 3000,
    k: int | None = None,
    embeddings: bool = False,
) -> list[Topic]:
    """The topics of the newest ``max_comments`` negative comments without a reason code,
    largest first. ``k``: the number of clusters (chosen by silhouette when None);
    ``embeddings``: cluster on multilingual embeddings where the model is installed."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from threadpoolctl import threadpool_limits

    comments = list(
        candidates(workspace, since=since, until=until)
        .select_related("branch")
        .order_by("-written_at", "-pk")[:max_comments]
    )
    comments.sort(key=lambda c: c.pk)
    tokens = [words(c.text, c.language) for c in comments]
    keep = [i for i, t in enumerate(tokens) if t]
    comments = [comments[i] for i in keep]
    tokens = [tokens[i] for i in keep]
    if len(comments) < MIN_SIZE:
        return []

    spelled_counts: dict[str, Counter[str]] = defaultdict(Counter)
    for doc in tokens:
        for (folded, written), nxt in zip(doc, [*doc[1:], None], strict=True):
            spelled_counts[folded][written] += 1
            if nxt is not None:
                spelled_counts[f"{folded} {nxt[0]}"][f"{written} {nxt[1]}"] += 1
    spelled = {term: counts.most_common(1)[0][0] for term, counts in spelled_counts.items()}

    term_vectorizer = TfidfVectorizer(
        analyzer=_identity, sublinear_tf=True, min_df=1, dtype=np.float64
    )
    term_matrix = term_vectorizer.fit_transform([_terms(t) for t in tokens]).tocsr()
    vocabulary = list(term_vectorizer.get_feature_names_out())

    use_embeddings = embeddings and embeddings_available()
    # One thread for the linear algebra: at this size it is fast enough, and a web worker's
    # request must not start as many threads as the machine has cores (several at once
    # would fight over them and each take many times longer).
    if use_embeddings:
        points = _embed([c.text for c in comments])
        with threadpool_limits(limits=1):
            labels = _agglomerative(points, k)
    else:
        feature_vectorizer = TfidfVectorizer(
            analyzer=_identity, sublinear_tf=True, min_df=2, dtype=np.float64
        )
        try:
            features = feature_vectorizer.fit_transform([_terms(t) + _stems(t) for t in tokens])
        except ValueError:  # no term in two comments: nothing in common to group by
            return []
        with threadpool_limits(limits=1):
            points = _lsa(features)
            labels = _kmeans(points, k)

    by_language: dict[str, list[int]] = defaultdict(list)
    for row, comment in enumerate(comments):
        by_language[comment.language or "unknown"].append(row)

    topics = []
    for cluster in sorted(set(labels.tolist())):
        members = [i for i, label in enumerate(labels.tolist()) if label == cluster]
        if len(members) < MIN_SIZE:
            continue
        centre = points[members].mean(axis=0)
        distance = np.linalg.norm(points[members] - centre, axis=1)
        closest: list[int] = []
        seen: set[str] = set()
        for i in np.argsort(distance, kind="stable"):
            # The same words twice show nothing new: the examples are different comments.
            said = fold(comments[members[i]].text).strip()
            if said not in seen and len(closest) < EXAMPLES:
                seen.add(said)
                closest.append(members[i])
        languages = Counter(comments[i].language or "unknown" for i in members)
        keywords = _keywords(members, by_language, term_matrix, vocabulary, spelled)
        topics.append(
            Topic(
                size=len(members),
                label=_label(keywords, dict(languages)),
                keywords=keywords,
                examples=[comments[i] for i in closest],
                comment_ids=sorted(comments[i].pk for i in members),
                languages=dict(languages.most_common()),
            )
        )
    topics.sort(key=lambda t: (-t.size, t.comment_ids[0]))
    log.info(
        "topics_discovered workspace=%s comments=%s topics=%s embeddings=%s",
        workspace.pk,
        len(comments),
        len(topics),
        use_embeddings,
    )
    return topics


def embeddings_available() -> bool:
    from . import ml

    return ml.embeddings_available()


# --- from a topic to a reason code ----------------------------------------------------------


def _transliterate(word: str) -> str:
    return "".join(_CYRILLIC.get(ch, ch) for ch in fold(word).strip())


def suggestion(topic: Topic) -> tuple[str, dict[str, str]]:
    """A code and labels to start the "create a reason code" form with: the top keyword of
    each language (English first for the code), capitalised."""
    labels = {
        lang: topic.keywords[lang][0][:1].upper() + topic.keywords[lang][0][1:]
        for lang in LABEL_LANGUAGES
        if topic.keywords.get(lang)
    }
    first = next(
        (topic.keywords[lang][0] for lang in ("en", *topic.languages) if topic.keywords.get(lang)),
        "",
    )
    code = re.sub(r"[^a-z0-9]+", "-", _transliterate(first)).strip("-")[:64]
    return code, labels


@transaction.atomic
def create_reason_from_topic(
    workspace: Workspace,
    topic_comment_ids: Iterable[int],
    *,
    code: str,
    labels: dict[str, str],
    user: Any,
) -> ReasonCode:
    """A new reason code, and the topic's comments (of this workspace) labelled with it as an
    analyst's labels. ``ValidationError`` (nothing saved) for a bad or taken code or no label."""
    from cxloop.accounts.services import audit

    from . import services

    code = (code or "").strip()
    errors: dict[str, list[str]] = {}
    if not code:
        errors["code"] = [_("Give the reason a code.")]
    elif len(code) > 64:
        errors["code"] = [_("A code has at most 64 characters.")]
    else:
        try:
            validate_slug(code)
        except ValidationError:
            errors["code"] = [_("Use only letters, digits, hyphens and underscores in the code.")]
        else:
            if ReasonCode.objects.filter(workspace=workspace, code=code).exists():
                errors["code"] = [
                    _("This workspace already has a reason with the code “%(code)s”.")
                    % {"code": code}
                ]
    clean_labels = {
        lang: str(text).strip()[:200]
        for lang, text in labels.items()
        if lang in LABEL_LANGUAGES and str(text).strip()
    }
    if not clean_labels.get("en"):
        errors["labels"] = [_("Give the reason a label in English.")]
    if errors:
        raise ValidationError(errors)

    position = (
        ReasonCode.objects.filter(workspace=workspace).aggregate(last=Max("position"))["last"] or 0
    )
    reason = ReasonCode.objects.create(
        workspace=workspace, code=code, labels=clean_labels, position=min(position + 1, 32000)
    )
    audit(
        workspace,
        "reason_code.create",
        via="web",
        actor=user,
        obj=reason,
        changes={"code": code, "labels": clean_labels, "from": "topic"},
    )
    comments = Comment.objects.filter(workspace=workspace, pk__in=list(topic_comment_ids))
    for comment in comments.order_by("pk"):
        services.set_label(comment, Task.REASONS, code, user=user, present=True)
    return reason
