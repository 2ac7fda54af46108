"""Guards of the semantic cache: cheap lexical features of a prompt that refuse a hit when two prompts
differ in a negation, a number, a named entity, a date/time word, a polarity, a format or a language."""
from __future__ import annotations

import re
from dataclasses import dataclass

_WORD_RE = re.compile(r"[^\W\d_]+(?:['’][^\W\d_]+)?|\d+(?:[.,]\d+)*", re.UNICODE)
_SENTENCE_END_RE = re.compile(r"[.!?:;\n]\s*$")

# ---- negation ----
_NEGATIONS = frozenset(
    "not no never none nobody nothing nowhere neither nor without cannot unless except excluding "
    "isnt arent wasnt werent dont doesnt didnt wont wouldnt cant couldnt shouldnt havent hasnt hadnt "
    "mustnt neednt aint".split()
)

# ---- numbers ----
_UNITS = {w: i for i, w in enumerate(
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen "
    "sixteen seventeen eighteen nineteen".split())}
_TENS = {w: 10 * i for i, w in enumerate("_ _ twenty thirty forty fifty sixty seventy eighty ninety".split()) if w != "_"}
_SCALES = {"thousand": 1_000, "million": 1_000_000, "billion": 1_000_000_000, "trillion": 1_000_000_000_000}
_ORDINALS = {w: i + 1 for i, w in enumerate(
    "first second third fourth fifth sixth seventh eighth ninth tenth eleventh twelfth".split())}
_NUMBER_OTHER = {"dozen": 12, "half": 0.5, "quarter": 0.25, "hundred": 100, "twice": 2, "double": 2, "triple": 3}
# "which one", "the other one": a pronoun, not a count
_ONE_PRONOUN_AFTER = frozenset("which this that the each every any some another no other".split())

# ---- dates and times (canonical form per word) ----
_TIME_WORDS: dict[str, str] = {}
for _canon, _forms in {
    "today": "today tonight", "tomorrow": "tomorrow", "yesterday": "yesterday",
    "now": "now currently current nowadays presently", "latest": "latest newest recent recently",
    "earliest": "earliest oldest",
    "upcoming": "upcoming soon", "ago": "ago", "morning": "morning mornings", "afternoon": "afternoon",
    "evening": "evening evenings", "night": "night nights overnight", "noon": "noon midday", "midnight": "midnight",
    "weekend": "weekend weekends", "second": "seconds", "minute": "minute minutes", "hour": "hour hours hourly",
    "day": "day days daily", "week": "week weeks weekly", "month": "month months monthly",
    "year": "year years yearly annual annually", "decade": "decade decades", "century": "century centuries",
    "quarter": "quarterly", "am": "am a.m", "pm": "pm p.m",
    "spring": "spring", "summer": "summer", "autumn": "autumn", "winter": "winter",
}.items():
    for _f in _forms.split():
        _TIME_WORDS[_f] = _canon
for _d in "monday tuesday wednesday thursday friday saturday sunday".split():
    _TIME_WORDS[_d] = _d
    _TIME_WORDS[_d + "s"] = _d
_MONTHS = "january february march april may june july august september october november december".split()
# "may" and "march" are also a verb: months only when capitalized mid-sentence
_AMBIGUOUS_MONTHS = frozenset({"may", "march"})
_RELATIVE_PREFIX = frozenset({"this", "next", "last", "past", "previous", "coming"})

# ---- polarity: groups of words on either side of one scale ----
_POLARITY_PAIRS = [
    ("advantage advantages pro pros benefit benefits upside upsides strength strengths",
     "disadvantage disadvantages con cons drawback drawbacks downside downsides weakness weaknesses risk risks"),
    ("gain gains gaining gained", "lose loses losing loss losses"),
    ("for", "against"),
    ("polite politely", "rude rudely"),
    ("high", "low"),
    ("increase increases increasing raise raises raising rise rises rising grow grows growth gain gains",
     "decrease decreases decreasing reduce reduces reduction lower lowers drop drops fall falls shrink loss losses"),
    ("more most higher highest greater greatest maximum max maximize",
     "less least fewer fewest lower lowest smaller smallest minimum min minimize"),
    ("best better good great", "worst worse bad poor"),
    ("fast faster fastest quick quicker quickest", "slow slower slowest"),
    ("cheap cheaper cheapest inexpensive", "expensive pricier priciest costly"),
    ("safe safer safest", "dangerous unsafe risky riskier"),
    ("hot hotter hottest warm warmer warmest", "cold colder coldest cool cooler coolest"),
    ("big bigger biggest large larger largest", "small smaller smallest little tiny"),
    ("long longer longest", "short shorter shortest"),
    ("heavy heavier heaviest", "light lighter lightest"),
    ("easy easier easiest", "hard harder hardest difficult"),
    ("strong stronger strongest", "weak weaker weakest"),
    ("rich richer richest wealthy", "poor poorer poorest"),
    ("old older oldest", "young younger youngest new newer newest"),
    ("start starts starting begin begins beginning", "end ends ending finish finishes stop stops"),
    ("open opens opening", "close closes closing"),
    ("buy buying buys purchase", "sell selling sells"),
    ("win wins winning won", "lose loses losing lost"),
    ("add adding adds insert", "remove removing removes delete deleting deletes"),
    ("enable enabling enabled", "disable disabling disabled"),
    ("install installing", "uninstall uninstalling"),
    ("encrypt encrypting encryption", "decrypt decrypting decryption"),
    ("encode encoding encoder", "decode decoding decoder"),
    ("compress compressing compression", "decompress decompressing decompression"),
    ("import importing imports", "export exporting exports"),
    ("upload uploading", "download downloading"),
    ("push", "pull"),
    ("before", "after"),
    ("above over", "below under beneath"),
    ("inside internal", "outside external"),
    ("ascending", "descending"),
    ("positive", "negative"),
    ("love loves", "hate hates"),
    ("like likes", "dislike dislikes"),
    ("agree", "disagree"),
    ("accept accepts", "reject rejects"),
    ("allow allows allowed permit", "deny denies forbid forbidden block blocks"),
    ("include includes including", "exclude excludes"),
    ("input inputs", "output outputs"),
    ("north northern", "south southern"),
    ("east eastern", "west western"),
    ("left", "right"),
    ("up", "down"),
    ("uppercase upper", "lowercase"),
    ("success successful succeed", "failure fail fails failed"),
    ("legal", "illegal"),
    ("healthy", "unhealthy"),
    ("possible", "impossible"),
    ("likely", "unlikely"),
    ("correct", "incorrect wrong"),
    ("sync synchronous synchronously", "async asynchronous asynchronously"),
    ("mutable", "immutable"),
    ("static", "dynamic"),
    ("server", "client"),
    ("frontend", "backend"),
    ("horizontal horizontally", "vertical vertically"),
    ("public", "private"),
    ("true", "false"),
    ("optimistic", "pessimistic"),
    ("wet", "dry"),
    ("deep deeper", "shallow shallower"),
    ("thick", "thin"),
    ("sweet", "bitter sour"),
    ("introvert introverts introverted", "extrovert extroverts extroverted"),
    ("import", "export"),
    ("acid acidic", "base alkaline basic"),
    ("male men man", "female women woman"),
    ("attack", "defend defense"),
    ("first", "last"),
]
# a word may sit on several scales ("lose" is the opposite of "win" and of "gain")
_POLARITY: dict[str, set[tuple[int, int]]] = {}
for _k, (_plus, _minus) in enumerate(_POLARITY_PAIRS):
    for _side, _words in ((0, _plus), (1, _minus)):
        for _w in _words.split():
            _POLARITY.setdefault(_w, set()).add((_k, _side))

# ---- format, length and audience directives (canonical form per word) ----
_FORMAT_WORDS: dict[str, str] = {}
for _canon, _forms in {
    "json": "json", "yaml": "yaml yml", "xml": "xml", "csv": "csv", "markdown": "markdown", "html": "html",
    "table": "table tabular", "bullets": "bullet bullets bulleted bullet-point", "numbered": "numbered",
    "paragraph": "paragraph paragraphs", "sentence": "sentence sentences",
    "haiku": "haiku", "poem": "poem poetry verse", "limerick": "limerick", "sonnet": "sonnet", "essay": "essay",
    "tweet": "tweet", "email": "email e-mail", "letter": "letter", "story": "story", "song": "song lyrics",
    "code": "code snippet", "pseudocode": "pseudocode", "diagram": "diagram", "outline": "outline",
    "summary": "summary summarize summarise tldr tl;dr", "brief": "brief briefly short concise concisely succinct",
    "detailed": "detailed thorough thoroughly in-depth comprehensive elaborate", "steps": "step steps",
    "simple": "simple simply eli5 child children kid kids toddler toddlers layman beginner beginners",
    "expert": "expert experts technical technically advanced professional phd academic rigorous graduate",
    "adult": "adult adults grown-up",
    "formal": "formal formally", "casual": "casual casually informal slang", "funny": "funny humorous joke jokes",
    "rhyme": "rhyme rhyming", "uppercase": "caps capitals", "example": "example examples",
}.items():
    for _f in _forms.split():
        _FORMAT_WORDS[_f] = _canon

# ---- languages: stop words per language, and scripts ----
_LANG_STOPWORDS = {
    "en": "the is are what how of and to in you do does can which why who with for this that it my your".split(),
    "fr": "le la les est que quel quelle comment des du une un et pour pas je vous qui dans sur avec ce mon".split(),
    "de": "der die das ist wie was ein eine und nicht ich sie mit für auf von zu den dem wer warum ich mein".split(),
    "es": "el la los las es qué cómo de un una y por para con en del cuál cuántos mi tu se lo".split(),
    "it": "il lo gli è che come di un una e per con non del della qual quanti mio sono".split(),
    "pt": "o os é que como de um uma e para com não do da qual quantos meu são".split(),
    "nl": "de het een is wat hoe en van niet ik je met voor zijn waarom".split(),
}
_SCRIPTS = [
    ("zh", re.compile(r"[\u4e00-\u9fff]")), ("ja", re.compile(r"[\u3040-\u30ff]")),
    ("ko", re.compile(r"[\uac00-\ud7af]")), ("ru", re.compile(r"[\u0400-\u04ff]")),
    ("ar", re.compile(r"[\u0600-\u06ff]")), ("el", re.compile(r"[\u0370-\u03ff]")),
    ("he", re.compile(r"[\u0590-\u05ff]")), ("hi", re.compile(r"[\u0900-\u097f]")),
    ("th", re.compile(r"[\u0e00-\u0e7f]")),
]
_LANGUAGE_NAMES = frozenset(
    "english french german spanish italian portuguese dutch russian chinese mandarin cantonese japanese korean "
    "arabic hindi greek hebrew turkish polish swedish norwegian danish finnish latin esperanto".split()
)

# Lowercase names people often type: software, languages, products.
_GAZETTEER = frozenset(
    "python java javascript typescript rust golang kotlin swift ruby php perl haskell scala elixir erlang clojure "
    "c++ c# fortran cobol matlab julia lua dart sql postgres postgresql mysql sqlite mongodb redis duckdb "
    "linux windows macos ubuntu debian fedora android ios docker kubernetes react vue angular svelte django flask "
    "fastapi rails numpy pandas pytorch tensorflow jax excel aws azure gcp git github gitlab bash zsh powershell "
    "vim emacs vscode chrome firefox safari nginx apache kafka spark hadoop terraform ansible".split()
) | _LANGUAGE_NAMES
_ACRONYM_RE = re.compile(r"^[A-Z][A-Z0-9]+s?$")
_MIXED_RE = re.compile(r"^[a-z]+[A-Z]")  # iPhone, macOS, eBay (the tokenizer splits letters from digits)
# identifiers, dotted names, calls and paths: os.path, my_var, len(), ./src/main.py
_CODEY_RE = re.compile(r"\b[A-Za-z_]\w+(?:\.[A-Za-z_]\w+)+|\b\w+_\w+\b|\b\w+\(\)|(?:\.{0,2}/[\w.-]+){2,}")
_QUOTED_RE = re.compile(r"[\"“”`]([^\"“”`]{2,60})[\"“”`]|(?<!\w)'([^']{2,60})'(?!\w)")


@dataclass(slots=True, frozen=True)
class PromptFeatures:
    negations: int
    numbers: frozenset[str]
    entities: frozenset[str]
    times: frozenset[str]
    polarity: frozenset[tuple[int, int]]
    formats: frozenset[str]
    language: str  # ISO-ish code, or "" when too short to tell
    references: frozenset[str]  # words that point back at an earlier answer ("another", "else")
    words: frozenset[str]  # every lowercased word, to find a name the other prompt did not capitalize
    text: str  # lowercased


# "Name another color" is one word from "Name a color" and asks for a different answer.
_REFERENCE_WORDS = frozenset("another else again instead different other others".split())


def _norm_number(x: float) -> str:
    return f"{x:.6g}"


def _tokens(text: str) -> list[tuple[str, int]]:
    """(token, start offset); apostrophes kept inside words so "don't" stays one token."""
    return [(m.group(0), m.start()) for m in _WORD_RE.finditer(text)]


def _numbers(low: list[str]) -> set[str]:
    out: set[str] = set()
    run_total, run_current, in_run = 0.0, 0.0, False

    def close() -> None:
        nonlocal run_total, run_current, in_run
        if in_run:
            out.add(_norm_number(run_total + run_current))
        run_total, run_current, in_run = 0.0, 0.0, False

    for i, w in enumerate(low):
        if w[0].isdigit():
            close()
            # 1,000,000 is a thousands separator; 3,5 is a decimal comma
            w = w.replace(",", "") if re.fullmatch(r"\d{1,3}(?:,\d{3})+", w) else w.replace(",", ".")
            try:
                out.add(_norm_number(float(w)))
            except ValueError:  # 1.2.3 (a version) stays as written
                out.add(w)
            continue
        if w == "one" and i > 0 and low[i - 1] in _ONE_PRONOUN_AFTER:
            close()
            continue
        if w in _UNITS or w in _TENS:
            run_current += _UNITS.get(w, 0) + _TENS.get(w, 0)
            in_run = True
        elif w == "hundred":
            run_current = (run_current or 1) * 100
            in_run = True
        elif w in _SCALES:
            run_total += (run_current or 1) * _SCALES[w]
            run_current, in_run = 0.0, True
        elif w == "and" and in_run:
            continue  # "two hundred and five"
        else:
            close()
            if w in _ORDINALS:
                out.add(_norm_number(_ORDINALS[w]))  # "tenth" == "10th"
            elif w in _NUMBER_OTHER:
                out.add(_norm_number(_NUMBER_OTHER[w]))
    close()
    return out


def _is_sentence_start(text: str, start: int) -> bool:
    before = text[:start].rstrip(" \t\"'“(«*#-")
    return not before or bool(_SENTENCE_END_RE.search(before))


def _entities(text: str, toks: list[tuple[str, int]]) -> set[str]:
    out: set[str] = set()
    for tok, start in toks:
        low = tok.lower().replace("’", "'")
        if low.endswith("'s"):  # France's -> france
            tok, low = tok[:-2], low[:-2]
        if low in _TIME_WORDS or low in _MONTHS or low in _FORMAT_WORDS:
            continue  # other guards own these words
        if low in _GAZETTEER:
            out.add(low)
        elif _ACRONYM_RE.match(tok) and tok not in ("I", "OK", "A"):
            out.add(low.rstrip("s") if tok.endswith("s") and tok[:-1].isupper() else low)
        elif _MIXED_RE.match(tok):
            out.add(low)
        elif start > 0 and text[start - 1] == "°" and low in ("f", "c"):
            out.add("fahrenheit" if low == "f" else "celsius")
        elif tok[0].isupper() and tok != "I" and not tok.startswith(("I'", "I’")):
            # A capital opening a sentence says nothing ("Write", "Compose", "Kindly"), so
            # only capitals inside a sentence mark a name.
            if not _is_sentence_start(text, start):
                out.add(low)
    for m in _CODEY_RE.finditer(text):
        out.add(m.group(0).lower())
    for m in _QUOTED_RE.finditer(text):
        out.add("'" + (m.group(1) or m.group(2)).strip().lower() + "'")
    return out


def _times(text: str, toks: list[tuple[str, int]]) -> set[str]:
    out: set[str] = set()
    low = [t.lower() for t, _ in toks]
    for i, (tok, start) in enumerate(toks):
        w = low[i]
        if w.endswith(("'s", "’s")):  # yesterday's
            w = w[:-2]
        if w in _MONTHS:
            if w in _AMBIGUOUS_MONTHS and not (tok[0].isupper() and not _is_sentence_start(text, start)):
                continue
            out.add(w)
        elif w in _TIME_WORDS:
            canon = _TIME_WORDS[w]
            if canon == "year" and i + 1 < len(low) and low[i + 1] == "old":
                continue  # an age ("a five-year-old"), not a time
            # "this week" and "next week" are different weeks
            if i > 0 and low[i - 1] in _RELATIVE_PREFIX:
                canon = f"{low[i - 1]} {canon}"
            out.add(canon)
    return out


def _language(text: str, low: list[str]) -> str:
    for code, pattern in _SCRIPTS:
        if len(pattern.findall(text)) >= 2:
            return code
    scores = {lang: sum(w in words for w in low) for lang, words in _LANG_STOPWORDS_SETS.items()}
    best = max(scores, key=scores.get)
    ranked = sorted(scores.values(), reverse=True)
    if ranked[0] >= 2 and ranked[0] > ranked[1]:
        return best
    if re.search(r"[àâçéèêëîïôûùüÿñæœßäöãõ¿¡]", text, re.IGNORECASE) and best != "en" and ranked[0] >= 1:
        return best
    return ""


_LANG_STOPWORDS_SETS = {k: frozenset(v) for k, v in _LANG_STOPWORDS.items()}


def prompt_features(text: str) -> PromptFeatures:
    toks = _tokens(text)
    low = [t.lower().replace("’", "'") for t, _ in toks]
    negations = sum(1 for w in low if w.replace("'", "") in _NEGATIONS or w.endswith("n't"))
    polarity = {ks for w in low if w in _POLARITY for ks in _POLARITY[w]}
    formats = {_FORMAT_WORDS[w] for w in low if w in _FORMAT_WORDS}
    if "tl;dr" in text.lower():
        formats.add("summary")
    return PromptFeatures(
        negations=negations,
        numbers=frozenset(_numbers(low)),
        entities=frozenset(_entities(text, toks)),
        times=frozenset(_times(text, toks)),
        polarity=frozenset(polarity),
        formats=frozenset(formats),
        language=_language(text, low),
        references=frozenset(w for w in low if w in _REFERENCE_WORDS),
        words=frozenset(w[:-2] if w.endswith("'s") else w for w in low),
        text=text.lower(),
    )


def _polarity_flipped(a: frozenset[tuple[int, int]], b: frozenset[tuple[int, int]]) -> bool:
    """True when one prompt takes a side of a scale and the other takes a different side."""
    # A scale named by only one prompt is left to the threshold: "best way" and "most
    # effective way" sit on different scales and mean the same.
    for key in {k for k, _ in a} & {k for k, _ in b}:
        if {s for k, s in a if k == key} != {s for k, s in b if k == key}:
            return True
    return False


def _same_entities(a: PromptFeatures, b: PromptFeatures) -> bool:
    """A name found in one prompt must occur in the other, capitalized or not ("spain" typed
    in lowercase is still Spain)."""
    for e in a.entities ^ b.entities:
        other = b if e in a.entities else a
        if e in other.words or (not e.isalpha() and e.strip("'") in other.text):
            continue
        return False
    return True


GUARD_NAMES = ("language", "negation", "number", "entity", "datetime", "polarity", "format", "reference")


def refusal(a: PromptFeatures, b: PromptFeatures) -> str | None:
    """The name of the first guard that refuses to treat the two prompts as one, else None.
    Embeddings score "is X safe" and "is X not safe" as near-duplicates; these checks do not care
    how similar the vectors are. Each guard compares one feature set, named so refusals can be counted."""
    if a.language and b.language and a.language != b.language:
        return "language"
    if a.negations != b.negations:
        return "negation"
    if a.numbers != b.numbers:
        return "number"
    if not _same_entities(a, b):
        return "entity"
    if a.times != b.times:
        return "datetime"
    if _polarity_flipped(a.polarity, b.polarity):
        return "polarity"
    if a.formats != b.formats:
        return "format"
    if a.references != b.references:
        return "reference"
    return None
