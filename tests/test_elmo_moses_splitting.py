"""ELMo's word splitting is the Moses tokenizer for English: ``split_words`` against sacremoses'
``MosesTokenizer(lang="en").tokenize(text, escape=False)`` on hand-picked cases, on thousands of generated English
sentences and on arbitrary text; its character classes and nonbreaking prefixes against sacremoses' own data.

The hand-picked cases also run without sacremoses, against the words written out below (sacremoses 0.2's output).
"""

from __future__ import annotations

import random
import unicodedata

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from hf_elmo.models.elmo import tokenization_elmo as tok_mod
from hf_elmo.models.elmo.tokenization_elmo import split_words

try:
    from sacremoses import MosesTokenizer
except ImportError:  # a dev dependency: the comparisons below need it
    MosesTokenizer = None

needs_sacremoses = pytest.mark.skipif(MosesTokenizer is None, reason="sacremoses is not installed (a dev dependency: "
                                      "the comparisons with the Moses tokenizer need it)")


@pytest.fixture(scope="module")
def moses():
    return MosesTokenizer(lang="en")


def moses_words(moses, text: str) -> list[str]:
    """What sacremoses makes of the text that ``split_words`` splits (it NFC-normalises first)."""
    return moses.tokenize(unicodedata.normalize("NFC", text), escape=False)


# The issue's cases (ma'am, O'Donnell, Mark's., Jr., runs of _) and more, with sacremoses' words.
CASES = [
    ("Yes, ma'am.", ["Yes", ",", "ma", "'am", "."]),
    ("Mr. O'Donnell left.", ["Mr.", "O", "'Donnell", "left", "."]),
    ("It is Mark's.", ["It", "is", "Mark", "'s", "."]),
    ("Martin Luther King Jr. spoke.", ["Martin", "Luther", "King", "Jr.", "spoke", "."]),
    ("Martin Luther King Jr. Day", ["Martin", "Luther", "King", "Jr", ".", "Day"]),  # Jr is no nonbreaking prefix
    ("Fill in ____ here", ["Fill", "in", "_", "_", "_", "_", "here"]),
    ("The U.S. economy grew.", ["The", "U.S.", "economy", "grew", "."]),
    ("e.g. this, i.e. that", ["e.g.", "this", ",", "i.e.", "that"]),
    ("See No. 5 and No. five.", ["See", "No.", "5", "and", "No.", "five", "."]),
    ("See No. Five", ["See", "No", ".", "Five"]),  # No keeps its period before a number only
    ("pp. 12-14 and Art. 3", ["pp.", "12-14", "and", "Art.", "3"]),
    ("It costs $1,000.50 (about 3.5%).", ["It", "costs", "$", "1,000.50", "(", "about", "3.5", "%", ")", "."]),
    ("Rock'n'roll isn't dead, y'all.", ["Rock", "'n'roll", "isn", "'t", "dead", ",", "y", "'all", "."]),
    ("'Tis the 1990's, said O'Neil.", ["'Tis", "the", "1990", "'s", ",", "said", "O", "'Neil", "."]),
    ('"Quoted," she said.', ['"', "Quoted", ",", '"', "she", "said", "."]),
    ("He wrote 'hi'.", ["He", "wrote", "'", "hi", "'", "."]),
    ("Well...what?", ["Well", "...", "what", "?"]),
    ("Wait.... no", ["Wait", "....", "no"]),
    ("and/or 12:30 a.m.", ["and", "/", "or", "12", ":", "30", "a.m."]),
    ("john.doe@example.com wrote http://example.com/a?b=1",
     ["john.doe", "@", "example.com", "wrote", "http", ":", "/", "/", "example.com", "/", "a", "?", "b", "=", "1"]),
    ("--- a -- b - c", ["---", "a", "--", "b", "-", "c"]),
    ("the end.'", ["the", "end", ".", "'"]),
    ("I can't, won't, DON'T.", ["I", "can", "'t", ",", "won", "'t", ",", "DON", "'T", "."]),
    ("Visit St. Louis in Jan. 2020.", ["Visit", "St.", "Louis", "in", "Jan.", "2020", "."]),
    ("x,y 5,000 5, 6,a", ["x", ",", "y", "5,000", "5", ",", "6", ",", "a"]),
    ("Über café Straße naïve", ["Über", "café", "Straße", "naïve"]),
    ("中文，日本語。한국어!", ["中", "文", "，", "日", "本", "語", "。", "한", "국", "어", "!"]),  # no letters to Moses
    ("😀 emoji 👍🏽 ok", ["😀", "emoji", "👍", "🏽", "ok"]),
    ("«Bonjour» „Hallo“ “Hi” ‘yo’", ["«", "Bonjour", "»", "„", "Hallo", "“", "“", "Hi", "”", "‘", "yo", "’"]),
    ("A. B. Smith", ["A.", "B.", "Smith"]),
    ("Prof. Dr. Müller vs. Smith", ["Prof.", "Dr.", "Müller", "vs.", "Smith"]),
    ("tab\there  two   spaces\n", ["tab", "here", "two", "spaces"]),
    ("a\x00b\x1fc", ["ab", "c"]),  # controls deleted, \x1f is whitespace
    ("[brackets] {braces} <angles>", ["[", "brackets", "]", "{", "braces", "}", "<", "angles", ">"]),
    ("#hashtag @handle", ["#", "hashtag", "@", "handle"]),
    ("½ ³ ² ① ⅷ", ["½", "³", "²", "①", "ⅷ"]),
    ("Ph.D. students", ["Ph.D.", "students"]),
    ("etc. and so on. The end", ["etc.", "and", "so", "on", ".", "The", "end"]),
    ("", []),
]


@pytest.mark.parametrize("text, words", CASES)
def test_hand_picked_cases(text, words):
    assert split_words(text) == words


@needs_sacremoses
@pytest.mark.parametrize("text, words", CASES)
def test_hand_picked_cases_are_what_sacremoses_makes_of_them(moses, text, words):
    assert moses_words(moses, text) == words


# ----------------------------------------------------------------------------------------------------------------
# Generated English
# ----------------------------------------------------------------------------------------------------------------
NAMES = ["John", "Mary", "O'Donnell", "D'Angelo", "McDonald's", "José", "Zoë", "Müller", "Ångström", "Łukasz",
         "Søren", "Nguyễn", "Renée", "Jones", "James'", "MacArthur", "Anne-Marie", "al-Hassan", "de la Cruz"]
TITLES = ["Mr.", "Mrs.", "Ms.", "Dr.", "Prof.", "Sen.", "Gov.", "Gen.", "Rev.", "Capt.", "Sgt.", "St.", "Messrs.",
          "Mme.", "Msgr.", "Lt."]
SUFFIXES = ["Jr.", "Sr.", "Inc.", "Ltd.", "Corp.", "Co.", "Bros.", "Ph.D.", "M.D.", "Esq.", "LLC", "PLC"]
ABBREVIATIONS = ["U.S.", "U.K.", "U.N.", "e.g.", "i.e.", "etc.", "vs.", "v.", "a.m.", "p.m.", "approx.", "Jan.",
                 "Feb.", "Sept.", "Dec.", "Mon.", "No.", "Nos.", "pp.", "Art.", "Nr.", "Fig.", "Vol.", "cf.", "Rs.",
                 "A.", "Z.", "dept.", "U.S.A.", "N.Y.C."]
CONTRACTIONS = ["don't", "can't", "won't", "isn't", "I'm", "you're", "we've", "they'll", "she'd", "ma'am", "y'all",
                "'tis", "'Twas", "o'clock", "rock'n'roll", "DON'T", "it's", "It's", "gov't", "'em", "ol'", "goin'",
                "shouldn't've", "l'amour"]
POSSESSIVES = ["Mark's", "James'", "children's", "Jones's", "the 1990's", "the '90s", "boss'", "CEO's", "U.S.'s",
               "Smith's."]
NUMBERS = ["5", "1,000", "3.14", "1,234,567.89", "10%", "$5", "£20", "€3.50", "¥100", "2nd", "1990s", "12:30",
           "555-1234", "-5", "+7", "1/2", "½", "³", "0.5", ".5", "5.", "5,", "1,", "9.99", "100,000,000", "3-0",
           "٣٤", "१२", "１２", "1e10", "#1", "No.1", "5'11\"", "6'"]
WORDS = ["the", "a", "house", "market", "grew", "said", "percent", "and", "or", "but", "in", "on", "of", "with",
         "to", "from", "New", "York", "economy", "well-known", "e-mail", "state-of-the-art", "re-elected", "naïve",
         "café", "Straße", "coöperate", "résumé", "WHO", "NASA", "iPhone", "eBay", "x86", "COVID-19", "and/or",
         "his/her", "TCP/IP", "AT&T", "R&D", "C++", "C#", ".NET", "Node.js", "file.txt", "v2.0", "3D", "A4"]
FOREIGN = ["中文", "日本語", "한국어", "Привет", "мир", "Ελληνικά", "עברית", "العربية", "हिन्दी", "ไทย", "Việt",
           "Æsir", "İstanbul", "ǅemal", "ﬁne", "Ⓐ", "ⓑ"]
SYMBOLS = ["😀", "👍🏽", "©", "™", "°", "×", "÷", "±", "→", "•", "§", "¶", "†", "©2020", "&", "@", "#", "*", "~", "^",
           "|", "\\", "+", "=", "<", ">", "%", "€", "$", "¢"]
WEB = ["http://example.com/path?q=1&r=2", "https://www.example.org/a/b.html", "www.example.co.uk", "ftp://x.y/z",
       "john.doe@example.com", "a_b@c-d.org", "@handle", "#hashtag", "example.com", "192.168.0.1", "C:\\dir\\file"]
RUNS = ["-", "--", "---", "----", "—", "–", "_", "__", "_____", ".", "..", "...", "....", "…", "!!", "?!", "!?", "**",
        "==", "~~", "''", "``", ",,", ";;", "::", "-_-", "._.", "-.-", "'-'"]
QUOTES = [('"', '"'), ("'", "'"), ("“", "”"), ("‘", "’"), ("«", "»"), ("„", "“"), ("`", "'"), ("``", "''"),
          ("‹", "›"), ("「", "」")]
BRACKETS = [("(", ")"), ("[", "]"), ("{", "}"), ("<", ">"), ("（", "）")]
ENDS = [".", "!", "?", "...", ".'", '."', ".”", ".)", "!)", "?\"", "", ";", ":", ",", ". ", "?!", ".'\"", "..'"]
JOINS = [" ", " ", " ", " ", "  ", "\t", " \t ", "\n", "\u00a0", "\u2009", "   ", ""]
ATTACHED = [",", ";", ":", "!", "?", ".", "'", "'s", "-", "/", "%", "...", ")", "'.", ",\"", "’s"]


def generated_sentence(rng: random.Random) -> str:
    """One real-looking English sentence: words of every kind above, some attached to punctuation, some quoted
    or bracketed, separated by varied whitespace, with a varied ending."""
    pools = [WORDS] * 6 + [NAMES, TITLES, SUFFIXES, ABBREVIATIONS, CONTRACTIONS, POSSESSIVES, NUMBERS, NUMBERS,
                           FOREIGN, SYMBOLS, WEB, RUNS]
    pieces = []
    for _ in range(rng.randint(1, 14)):
        piece = rng.choice(rng.choice(pools))
        roll = rng.random()
        if roll < 0.12:
            piece += rng.choice(ATTACHED)
        elif roll < 0.2:
            left, right = rng.choice(QUOTES + BRACKETS)
            piece = left + piece + right
        elif roll < 0.24 and pieces:
            piece = rng.choice(TITLES + ["No.", "pp.", "Art."]) + " " + rng.choice(NAMES + NUMBERS)
        pieces.append(piece)
    text = pieces[0]
    for piece in pieces[1:]:
        text += rng.choice(JOINS) + piece
    if rng.random() < 0.2:
        text = text[0].upper() + text[1:] if text else text
    if rng.random() < 0.1:
        text = rng.choice(JOINS) + text
    return text + rng.choice(ENDS)


@needs_sacremoses
def test_generated_english_splits_as_moses_does(moses):
    rng = random.Random(12)
    texts = [generated_sentence(rng) for _ in range(5000)]
    assert len(set(texts)) > 4900
    different = [(t, split_words(t), moses_words(moses, t)) for t in texts if split_words(t) != moses_words(moses, t)]
    assert not different, f"{len(different)} of {len(texts)} texts split differently, e.g. {different[:3]}"


# Every character class and nonbreaking prefix in play: arbitrary text, and text made of what Moses treats apart.
MOSES_CHARACTERS = list(" \t.,'`-_\"!?$%()[]{}<>/@#&;:0123456789aZsSé½³٣") + ["...", "No.", "pp. 5", "Mr.", "A.", "n't"]
arbitrary_text = (st.text(max_size=60) | st.lists(st.sampled_from(MOSES_CHARACTERS), max_size=30).map("".join)
                  | st.text(st.characters(codec="utf-8"), max_size=40))


@needs_sacremoses
@settings(max_examples=500, deadline=None)
@given(arbitrary_text)
def test_arbitrary_text_splits_as_moses_does(text):
    assume("DOTMULTI" not in unicodedata.normalize("NFC", text))  # sacremoses' placeholder: see below
    assert split_words(text) == moses_words(MosesTokenizer(lang="en"), text)


@needs_sacremoses
def test_the_two_documented_differences(moses):
    # NFC first: sacremoses parts a decomposed accent from its letter
    assert split_words("cafe\u0301 nai\u0308ve") == ["café", "naïve"] == moses_words(moses, "cafe\u0301 nai\u0308ve")
    assert moses.tokenize("cafe\u0301", escape=False) == ["cafe", "\u0301"]
    # sacremoses' placeholder for runs of dots turns the literal text DOTMULTI into a dot; it is text here
    assert split_words("DOTMULTI... x") == ["DOTMULTI", "...", "x"]
    assert moses.tokenize("DOTMULTI... x", escape=False) == [".", "...", "x"]


# ----------------------------------------------------------------------------------------------------------------
# The data: character classes and nonbreaking prefixes
# ----------------------------------------------------------------------------------------------------------------
def table_characters(table: str) -> set[str]:
    """The characters of one of the module's tables (hexadecimal code points and ranges), read independently."""
    chars = set()
    for item in table.split():
        first, _, last = item.partition("-")
        chars.update(chr(c) for c in range(int(first, 16), int(last or first, 16) + 1))
    return chars


@needs_sacremoses
@pytest.mark.parametrize("table, moses_class", [("_MOSES_ALPHA", "IsAlpha"), ("_MOSES_NUMBER", "IsN"),
                                                ("_MOSES_LOWER", "IsLower")])
def test_character_classes_are_sacremoses(table, moses_class):
    # sacremoses' class strings also hold the "\n" that separated its data lines (whitespace to every rule)
    assert table_characters(getattr(tok_mod, table)) == set(getattr(MosesTokenizer, moses_class)) - {"\n"}


@needs_sacremoses
def test_alnum_is_the_letters_and_the_digits():
    alnum = table_characters(tok_mod._MOSES_ALPHA) | table_characters(tok_mod._MOSES_DIGITS)
    assert alnum == set(MosesTokenizer.IsAlnum) - {"\n"}


@pytest.mark.parametrize("name", ["_ALPHA_CHAR", "_LOWER_CHAR"])
def test_compiled_classes_hold_their_tables(name):
    table = {"_ALPHA_CHAR": tok_mod._MOSES_ALPHA, "_LOWER_CHAR": tok_mod._MOSES_LOWER}[name]
    pattern = getattr(tok_mod, name)
    chars = table_characters(table)
    assert all(pattern.fullmatch(c) for c in chars)
    assert not any(pattern.fullmatch(chr(c)) for c in range(0x110000) if chr(c) not in chars)


@needs_sacremoses
def test_nonbreaking_prefixes_are_sacremoses(moses):
    numeric_only = set(moses.NUMERIC_ONLY_PREFIXES)
    assert tok_mod._NUMERIC_ONLY_PREFIXES == numeric_only
    assert tok_mod._NONBREAKING_PREFIXES == {p for p in moses.NONBREAKING_PREFIXES if "#" not in p} - numeric_only
