"""The alignment guard of the semantic cache with the real all-MiniLM-L6-v2: a content word swapped
for one that is no paraphrase is refused, a paraphrase is kept, swapped roles are refused, and near
misses that only rephrase, reorder a list, turn a passive or fix a typo are kept."""
import pytest

from engine.cache.alignment import AlignmentGuard, align, normalise, roles_swapped
from engine.cache.semantic_cache import CacheScope, SemanticCache, SemanticCacheConfig


@pytest.fixture(scope="module")
def guard():
    from engine.embeddings import load_embedder

    return AlignmentGuard(load_embedder())


def test_normalise_expands_contractions_and_marks_possession():
    assert normalise("What's the CEO's name? I can't tell") == ["what", "is", "the", "ceo", "'s", "name", "i", "can",
                                                              "not", "tell"]


def test_align_ignores_typos_and_reports_what_changed():
    assert align(normalise("How do I transfer between two accounts?"),
                 normalise("How do I transfer between two accuonts?")) == []
    (edit,) = align(normalise("Is the store open today?"), normalise("Is the store closed today?"))
    assert (edit.kind, edit.a, edit.b, edit.inside) == ("replace", ["open"], ["closed"], True)


@pytest.mark.parametrize("a, b", [
    ("Is the pharmacy open on Sunday?", "Is the pharmacy closed on Sunday?"),
    ("Does my insurance policy cover water damage?", "Does my insurance policy exclude water damage?"),
    ("Can I feed my fish soup?", "Can I feed my dog soup?"),
    ("Is Amber Baker trustworthy?", "Is Amber Baker mad?"),
])
def test_substitution_of_a_non_paraphrase_is_refused(guard, a, b):
    assert guard.refusal(a, b) == "substitution"


@pytest.mark.parametrize("a, b", [
    ("How much does a used car cost?", "How much does a used automobile cost?"),
    ("How do I start a clothing company in Mumbai?", "How can I start a clothing company in Mumbai?"),
    ("How big is a blue whale?", "How large is a blue whale?"),
    ("Where can I buy cheap flights?", "Where can I purchase cheap flights?"),
])
def test_paraphrase_is_kept(guard, a, b):
    assert guard.refusal(a, b) is None


@pytest.mark.parametrize("a, b", [
    ("Did Alice send the payment to Bob?", "Did Bob send the payment to Alice?"),
    ("Is Anthony punching Angela?", "Is Angela punching Anthony?"),
    ("If Noah and Kristen were alone, would he reject her?", "If Noah and Kristen were alone, would she reject him?"),
    ("Did Adam use the farm?", "Was Adam used by the farm?"),
])
def test_role_swap_is_refused(guard, a, b):
    assert roles_swapped(normalise(a), normalise(b))
    assert guard.refusal(a, b) == "role_swap"


@pytest.mark.parametrize("a, b", [
    ("Did Christian manage the house?", "Was the house managed by Christian?"),  # passive, same roles
    ("Is Scott Anderson an intern or an auditor?", "Is Scott Anderson an auditor or an intern?"),  # a list
    ("Is Sarah Davis a German actress?", "Is Sarah Davis an actress and German?"),
    ("Who is Nvidia's CEO?", "Who is the CEO of Nvidia?"),  # possession, said two ways
    ("How do I learn hypnosis?", "What is a good way to learn hypnosis?"),  # the frame rephrased
    ("What will happen if Trump wins?", "What will happne if Trump wins?"),  # a typo
])
def test_near_misses_are_kept(guard, a, b):
    assert guard.refusal(a, b) is None


def test_added_content_and_repointed_pronoun_are_refused(guard):
    assert guard.refusal("Is Jamie Green an intern?", "Did Jamie Green use to be an intern?") == "insertion"
    assert guard.refusal("If George and Jasmine were married, would his family be happy?",
                         "If George and Jasmine were married, would Jasmine's family be happy?") == "coreference"


def test_cache_refuses_a_role_swap_it_would_otherwise_serve(guard):
    a, b = "Did Alice send the payment to Bob?", "Did Bob send the payment to Alice?"
    scope = CacheScope("m", "s", "t", "h", "greedy")
    for on in (False, True):
        cache = SemanticCache(SemanticCacheConfig(threshold=0.9, alignment_guard=on), embedder=guard.embedder)
        cache.store(a, scope, "yes")
        probe = cache.probe(b, scope)
        assert probe.best_similarity > 0.95  # the embedding alone calls them one question
        assert (probe.hit is None) == on
        assert (probe.refused_by == "role_swap") == on
    assert cache.figures.refusals["role_swap"] == 1
