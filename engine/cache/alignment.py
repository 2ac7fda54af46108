"""The alignment guard of the semantic cache: two prompts' normalised tokens aligned (difflib), and
a hit refused when a content word was replaced by one that is no paraphrase of it, when content was
added that changes the sentence, or when the same words changed places around the verb (roles)."""
from __future__ import annotations

import difflib
import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import numpy as np

_TOKEN_RE = re.compile(r"[^\W_]+(?:['’][^\W_]+)*", re.UNICODE)

# English grammar, not a list of cases: function words carry no topic of their own, so an edit
# that only touches them ("How do I" / "How can I") is left to the embedding threshold.
_FUNCTION = frozenset("""
a an the this that these those some any each every all both either neither no 's
of to in on at by for with from into onto about as than then so if whether because while until
and or but nor yet
is am are was were be been being do does did done have has had having will would shall should can could
may might must ought
i me my mine we us our ours you your yours he him his she her hers it its they them their theirs one
what which who whom whose where when why how there here
not just also too very really quite indeed even still only ever
""".split())
# Case forms of one pronoun are one role: "he would reject her" / "she would reject him" swap roles.
_PRONOUN_CASE = {"him": "he", "his": "he", "her": "she", "hers": "she", "them": "they", "their": "they",
                 "theirs": "they", "me": "i", "my": "i", "mine": "i", "us": "we", "our": "we", "ours": "we",
                 "your": "you", "yours": "you"}
_ROLE_PRONOUNS = frozenset(("he", "she", "they"))  # third persons can trade places; "I"/"you" is a viewpoint
_CONTRACTIONS = (("n't", " not"), ("'re", " are"), ("'ve", " have"), ("'ll", " will"), ("'d", " would"), ("'m", " am"))
_BE = frozenset("is am are was were be been being get got gets".split())
_COORD = frozenset(("and", "or"))


def _stem(w: str) -> str:
    """Crude suffix stripping, enough that "manage" / "managed", "prefer" / "preferred" and
    "take" / "taken" meet."""
    if w.endswith("ed") and len(w) == 4:
        return w[:-1]  # used -> use
    for suf in ("ing", "ed", "en", "es", "s"):
        if w.endswith(suf) and len(w) - len(suf) >= 3:
            w = w[: -len(suf)]
            if suf in ("ing", "ed") and len(w) > 3 and w[-1] == w[-2] and w[-1] not in "aeiouls":
                w = w[:-1]  # preferr -> prefer, stopp -> stop
            break
    return w[:-1] if w.endswith("e") and len(w) > 3 else w


def normalise(text: str) -> list[str]:
    """Lower-case word tokens with contractions expanded and possessive 's dropped."""
    out: list[str] = []
    for tok in _TOKEN_RE.findall(text.lower().replace("’", "'")):
        if tok in ("can't", "cannot"):
            out += ["can", "not"]
            continue
        if tok == "won't":
            out += ["will", "not"]
            continue
        for suf, rep in _CONTRACTIONS:
            if tok.endswith(suf):
                out += [tok[: -len(suf)]] + rep.split()
                break
        else:
            if tok.endswith("'s"):
                head = tok[:-2]
                # "what's" is "what is"; "Nvidia's CEO" keeps a mark for "the CEO of Nvidia"
                out += [head, "is"] if head in _FUNCTION else [head, "'s"]
            else:
                out.append(tok)
    return [t for t in out if t]


def is_content(w: str) -> bool:
    return w not in _FUNCTION and w not in _PRONOUN_CASE and not w.isdigit()


def _close_spelling(a: str, b: str) -> bool:
    """One typo apart: a word misspelled is the same word ("happne" / "happen")."""
    if a == b or _stem(a) == _stem(b):
        return True
    if min(len(a), len(b)) < 4:
        return False
    return difflib.SequenceMatcher(None, a, b).ratio() >= 0.8


@dataclass(slots=True)
class Edit:
    kind: str  # replace | insert | delete
    a: list[str]
    b: list[str]
    inside: bool = False  # kept content words on both sides of it: it modifies, not rephrases the frame
    context_a: str = ""  # the edited span with one token either side, as it reads in each prompt
    context_b: str = ""


def align(a: list[str], b: list[str]) -> list[Edit]:
    """The spans that differ, over tokens compared by stem and spelling (typos are no edit)."""
    key_b = {w: w for w in b}
    canon = []
    for w in a:  # map a's words to b's spelling where one is a typo of the other
        match = next((x for x in key_b if x != w and _close_spelling(w, x)), None) if w not in key_b else w
        canon.append(match or w)
    sm = difflib.SequenceMatcher(None, [_stem(w) for w in canon], [_stem(w) for w in b], autojunk=False)
    ops = sm.get_opcodes()
    kept = [False] * (len(canon) + 1)
    for tag, i1, i2, _, _ in ops:
        if tag == "equal":
            for i in range(i1, i2):
                kept[i] = is_content(canon[i])
    out = []
    for tag, i1, i2, j1, j2 in ops:
        if tag != "equal":
            out.append(Edit(tag, canon[i1:i2], b[j1:j2], any(kept[:i1]) and any(kept[i2:]),
                            " ".join(canon[max(i1 - 1, 0): i2 + 1]), " ".join(b[max(j1 - 1, 0): j2 + 1])))
    return out


def _roles(tokens: list[str]) -> list[str]:
    """Content words and third-person pronouns in order, a passive turned active ("the house was
    managed by Christian" -> christian manage house) so voice alone is no change of roles."""
    toks = [_PRONOUN_CASE.get(w, w) for w in tokens]
    if "by" in toks and any(w in _BE for w in toks[: toks.index("by")]):
        k = toks.index("by")
        before = [_stem(w) for w in toks[:k] if is_content(w) or w in _ROLE_PRONOUNS]
        agent = [_stem(w) for w in toks[k + 1:] if is_content(w) or w in _ROLE_PRONOUNS]
        if before and agent:
            return agent + before[-1:] + before[:-1]  # agent, verb (the participle before "by"), the rest
    return [_stem(w) for w in toks if is_content(w) or w in _ROLE_PRONOUNS]


def _coordinated(tokens: list[str], x: str, y: str) -> bool:
    """x and y joined by "and"/"or" with nothing but function words between: their order is free."""
    stems = [_stem(_PRONOUN_CASE.get(w, w)) for w in tokens]
    if x not in stems or y not in stems:
        return False
    i, j = sorted((stems.index(x), stems.index(y)))
    between = tokens[i + 1: j]
    return any(w in _COORD for w in between) and not any(is_content(w) for w in between)


def _possessive(tokens: list[str], owner: str, owned: str) -> bool:
    """ "owner's owned" in these tokens."""
    st = [_stem(w) for w in tokens]
    return any(st[i] == owner and st[i + 1] == "'s" and st[i + 2] == owned for i in range(len(st) - 2))


def _of_phrase(tokens: list[str], owner: str, owned: str) -> bool:
    """ "owned of (the) owner" in these tokens."""
    st = [_stem(w) for w in tokens if w not in ("the", "a", "an")]
    return any(st[i] == owned and st[i + 1] == "of" and st[i + 2] == owner for i in range(len(st) - 2))


def _same_possession(a: list[str], b: list[str], x: str, y: str) -> bool:
    """ "Nvidia's CEO" and "the CEO of Nvidia" name one person: the words trade places, not roles."""
    for owner, owned in ((x, y), (y, x)):
        if (_possessive(a, owner, owned) and _of_phrase(b, owner, owned)) or \
                (_possessive(b, owner, owned) and _of_phrase(a, owner, owned)):
            return True
    return False


def roles_swapped(a: list[str], b: list[str]) -> bool:
    """The same content words in a different order around the verb: who does what to whom changed."""
    ra, rb = _roles(a), _roles(b)
    if sorted(ra) != sorted(rb) or ra == rb:
        return False
    first_a = {w: ra.index(w) for w in ra}
    first_b = {w: rb.index(w) for w in rb}
    words = list(first_a)
    for i, x in enumerate(words):
        for y in words[i + 1:]:
            if (first_a[x] < first_a[y]) != (first_b[x] < first_b[y]):
                if not (_coordinated(a, x, y) or _coordinated(b, x, y) or _same_possession(a, b, x, y)):
                    return True
    return False


@dataclass
class AlignmentGuard:
    """Judges the edits between two prompts with MiniLM embeddings: a content word replaced by one
    other must be a paraphrase of it, as words (cosine >= `paraphrase_similarity`) or as read with
    their neighbours (>= `context_similarity`); content added inside the sentence is allowed only
    when the two prompts stay nearly one in meaning (cosine >= `insertion_similarity`); the same
    words in another order around the verb are refused outright. The thresholds were fitted on the
    tuning half of the CheckList QQP pairs (tests/perf/bench_semantic_cache_public.py)."""

    embedder: Any = None
    paraphrase_similarity: float = 0.75
    insertion_similarity: float = 0.98
    context_similarity: float = 0.95
    _memo: dict[str, np.ndarray] = field(default_factory=dict, repr=False)

    def _vec(self, phrases: list[str]) -> list[np.ndarray]:
        todo = [p for p in dict.fromkeys(phrases) if p not in self._memo]
        if todo:
            if self.embedder is None:
                from engine.embeddings import load_embedder

                self.embedder = load_embedder()
            for p, v in zip(todo, self.embedder.encode(todo)):
                self._memo[p] = v
        return [self._memo[p] for p in phrases]

    def refusal(self, a_text: str, b_text: str, similarity: float | None = None) -> str | None:
        """"substitution", "insertion", "coreference" or "role_swap" when the prompts must not share an answer, else None."""
        a, b = normalise(a_text), normalise(b_text)
        if roles_swapped(a, b):
            return "role_swap"
        # content that only moved (same words, other place) is no edit here; roles_swapped judged it
        bag_a = Counter(_stem(w) for w in a if is_content(w))
        bag_b = Counter(_stem(w) for w in b if is_content(w))
        only_a, only_b = bag_a - bag_b, bag_b - bag_a
        subs, added = [], False
        for e in align(a, b):
            ca = [w for w in e.a if is_content(w) and only_a[_stem(w)] > 0]
            cb = [w for w in e.b if is_content(w) and only_b[_stem(w)] > 0]
            if ca and cb:
                # one word for one word in the same frame ("open" / "closed"); a rephrased stretch
                # ("wrote" / "is the author of") is the embedding threshold's to judge
                if len(ca) == 1 and len(cb) == 1 and len(e.a) <= 2 and len(e.b) <= 2:
                    subs.append((ca[0], cb[0], e.context_a, e.context_b))
            elif ca or cb:
                # a word the prompt already has, put where a pronoun was ("his family" -> "George's
                # family"), points the sentence at someone else
                if any(bag_a[_stem(w)] > 1 for w in ca) or any(bag_b[_stem(w)] > 1 for w in cb):
                    return "coreference"
                added = added or e.inside
        if subs:
            # MiniLM puts antonyms close ("open"/"closed" 0.70) and some synonyms apart ("write"/
            # "compose"): a word pair must look unlike as words and in its context to be refused
            vecs = self._vec([p for sub in subs for p in sub])
            for k in range(len(subs)):
                wa, wb, xa, xb = vecs[4 * k: 4 * k + 4]
                if float(wa @ wb) < self.paraphrase_similarity and float(xa @ xb) < self.context_similarity:
                    return "substitution"
        if added:
            if similarity is None:
                va, vb = self._vec([a_text, b_text])
                similarity = float(va @ vb)
            if similarity < self.insertion_similarity:
                return "insertion"
        return None


ALIGNMENT_GUARD_NAMES = ("substitution", "insertion", "coreference", "role_swap")
