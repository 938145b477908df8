"""spaCy 3's English tokenizer (``spacy.blank("en").tokenizer``), re-implemented with the standard library.

``EnglishWordSplitter`` runs spaCy's tokenizer algorithm (whitespace spans, special cases, prefixes, suffixes,
infixes, URLs and the final special-case pass) on the punctuation rules and tokenizer exceptions of spaCy 3's English
language data, so that fastai's tokens (``tokenization_awd_lstm``, which puts fastai's text rules in front of it)
come out as fastai's own. It is a module of its own because it is one thing (a word splitter, 500 lines of
language data and algorithm) and fastai's processing another; it ships beside ``tokenization_awd_lstm.py`` as remote
code (transformers copies a module's relative imports with it).
"""

from __future__ import annotations

import re
from typing import Any, Iterable

# ----------------------------------------------------------------------------------------------------------------
# spaCy's English punctuation rules (spacy/lang/punctuation.py, spacy/lang/en/punctuation.py)
# ----------------------------------------------------------------------------------------------------------------
# The letter classes and the symbol class of spaCy's char_classes.py, as code-point ranges ("A-B", or "A-B/2" for
# every other code point): the Latin, Greek, Cyrillic (Russian, Ukrainian, Macedonian, Tatar) letters split into
# lower and upper case, and the uncased scripts (Hebrew, Arabic/Persian, Indic, Sinhala, Ethiopic, Hangul, Kana, CJK)
# that count as both.
_ALPHA = """
41-5A 61-7A C0-D6 D8-F6 F8-1BF 1C4-2AF 386 388-38A 38C 38E-38F 391-3A9 3AC-3AF 3B1-3C9 3CC-3CE 400-401 403-40A
40C-40D 410-451 453-45A 45C-45D 490-491 496-497 4A2-4A3 4AE-4AF 4BA-4BB 4D8-4D9 4E8-4E9 591-5F4 620-64A 66E-6D5
6E5-6FF 750-77F 8A0-8BD 900-9FF B80-CFF D80-DFF 1100-137F 1D00-1D25 1D6B-1D77 1D79-1D9A 1E00-1EFF 2C60-2C7B
2C7E-2C7F 2E80-2FDF 2FF0-30FF 31C0-31EF 3200-4DBF 4E00-9FFF A722-A76F A771-A787 A78B-A78E A790-A7B9 A7FA
AB30-AB5A AB60-AB64 AC00-D7AF F900-FAFF FB1D-FBB1 FBD3-FD3D FD50-FDC7 FDF0-FDFB FE30-FE4F FE70-FEFC FF21-FF3A
FF41-FF5A 1EE00-1EEBB 1F200-1F2FF 20000-2A6DF 2A700-2EBEF 2F800-2FA1F
"""
_ALPHA_LOWER = """
61-7A DF-F6 F8-FF 101-137/2 138-148/2 149-177/2 17A-17E/2 17F-180 183 185 188 18C-18D 192 195 199-19B 19E
1A1-1A5/2 1A8 1AA-1AB 1AD 1B0 1B4 1B6 1B9-1BA 1BD-1BF 1C6 1C9 1CC-1DC/2 1DD-1EF/2 1F0 1F3 1F5 1F9-233/2 234-239
23C 23F-240 242 247-24F/2 250-2AF 3AC-3AF 3B1-3C9 3CC-3CE 430-451 453-45A 45C-45D 491 497 4A3 4AF 4BB 4D9 4E9
591-5F4 620-64A 66E-6D5 6E5-6FF 750-77F 8A0-8BD 900-9FF B80-CFF D80-DFF 1100-137F 1D00-1D25 1D6B-1D77 1D79-1D9A
1E01-1E95/2 1E96-1E9D 1E9F-1EFF/2 2C61 2C65-2C66 2C68-2C6C/2 2C71 2C73-2C74 2C76-2C7B 2E80-2FDF 2FF0-30FF
31C0-31EF 3200-4DBF 4E00-9FFF A723-A72F/2 A730-A731 A733-A771/2 A772-A778 A77A A77C A77F-A787/2 A78C A78E A791
A793-A795 A797-A7A9/2 A7AF A7B5-A7B9/2 A7FA AB30-AB5A AB60-AB64 AC00-D7AF F900-FAFF FB1D-FBB1 FBD3-FD3D
FD50-FDC7 FDF0-FDFB FE30-FE4F FE70-FEFC FF41-FF5A 1EE00-1EEBB 1F200-1F2FF 20000-2A6DF 2A700-2EBEF 2F800-2FA1F
"""
_ALPHA_UPPER = """
41-5A C0-D6 D8-DE 100-136/2 139-147/2 14A-178/2 179-17D/2 181-182 184 186-187 189-18B 18E-191 193-194 196-198
19C-19D 19F-1A0 1A2-1A6/2 1A7 1A9 1AC 1AE-1AF 1B1-1B3 1B5 1B7-1B8 1BC 1C4 1C7 1CA 1CD-1DB/2 1DE-1EE/2 1F1 1F4
1F6-1F8 1FA-232/2 23A-23B 23D-23E 241 243-246 248-24E/2 386 388-38A 38C 38E-38F 391-3A9 400-401 403-40A 40C-40D
410-42F 490 496 4A2 4AE 4BA 4D8 4E8 591-5F4 620-64A 66E-6D5 6E5-6FF 750-77F 8A0-8BD 900-9FF B80-CFF D80-DFF
1100-137F 1E00-1E94/2 1E9E-1EFE/2 2C60 2C62-2C64 2C67-2C6D/2 2C6E-2C70 2C72 2C75 2C7E-2C7F 2E80-2FDF 2FF0-30FF
31C0-31EF 3200-4DBF 4E00-9FFF A722-A72E/2 A732-A76E/2 A779-A77D/2 A77E-A786/2 A78B A78D A790 A792 A796-A7AA/2
A7AB-A7AE A7B0-A7B4 A7B6 A7B8 AC00-D7AF F900-FAFF FB1D-FBB1 FBD3-FD3D FD50-FDC7 FDF0-FDFB FE30-FE4F FE70-FEFC
FF21-FF3A 1EE00-1EEBB 1F200-1F2FF 20000-2A6DF 2A700-2EBEF 2F800-2FA1F
"""
_ICONS = """
A6 A9 AE B0 482 58D-58E 60E-60F 6DE 6E9 6FD-6FE 7F6 9FA B70 BF3-BF8 BFA C7F D4F D79 F01-F03 F13 F15-F17 F1A-F1F
F34-F38/2 FBE-FC5 FC7-FCC FCE-FCF FD5-FD8 109E-109F 1390-1399 1940 19DE-19FF 1B61-1B6A 1B74-1B7C 2100-2101
2103-2106 2108-2109 2114 2116-2117 211E-2123 2125-2129/2 212E 213A-213B 214A 214C-214D 214F 218A-218B 2195-2199
219C-219F 21A1-21A2 21A4-21A5 21A7-21AD 21AF-21CD 21D0-21D1 21D3 21D5-21F3 2300-2307 230C-231F 2322-2328
232B-237B 237D-239A 23B4-23DB 23E2-2426 2440-244A 249C-24E9 2500-25B6 25B8-25C0 25C2-25F7 2600-266E 2670-2767
2794-27BF 2800-28FF 2B00-2B2F 2B45-2B46 2B4D-2B73 2B76-2B95 2B98-2BC8 2BCA-2BFE 2CE5-2CEA 2E80-2E99 2E9B-2EF3
2F00-2FD5 2FF0-2FFB 3004 3012-3013 3020 3036-3037 303E-303F 3190-3191 3196-319F 31C0-31E3 3200-321E 322A-3247
3250 3260-327F 328A-32B0 32C0-32FE 3300-33FF 4DC0-4DFF A490-A4C6 A828-A82B A836-A837 A839 AA77-AA79 FDFD FFE4
FFE8 FFED-FFEE FFFC-FFFD 10137-1013F 10179-10189 1018C-1018E 10190-1019B 101A0 101D0-101FC 10877-10878 10AC8
1173F 16B3C-16B3F 16B45 1BC9C 1D000-1D0F5 1D100-1D126 1D129-1D164 1D16A-1D16C 1D183-1D184 1D18C-1D1A9
1D1AE-1D1E8 1D200-1D241 1D245 1D300-1D356 1D800-1D9FF 1DA37-1DA3A 1DA6D-1DA74 1DA76-1DA83 1DA85-1DA86 1ECAC
1F000-1F02B 1F030-1F093 1F0A0-1F0AE 1F0B1-1F0BF 1F0C1-1F0CF 1F0D1-1F0F5 1F110-1F16B 1F170-1F1AC 1F1E6-1F202
1F210-1F23B 1F240-1F248 1F250-1F251 1F260-1F265 1F300-1F3FA 1F400-1F6D4 1F6E0-1F6EC 1F6F0-1F6F9 1F700-1F773
1F780-1F7D8 1F800-1F80B 1F810-1F847 1F850-1F859 1F860-1F887 1F890-1F8AD 1F900-1F90B 1F910-1F93E 1F940-1F970
1F973-1F976 1F97A 1F97C-1F9A2 1F9B0-1F9B9 1F9C0-1F9C2 1F9D0-1F9FF 1FA60-1FA6D
"""


def _parse_ranges(spec: str) -> list[tuple[int, int, int]]:
    out = []
    for item in spec.split():
        step = 1
        if "/" in item:
            item, s = item.split("/")
            step = int(s)
        lo, _, hi = item.partition("-")
        out.append((int(lo, 16), int(hi or lo, 16), step))
    return out


def _codepoints(spec: str) -> set[int]:
    points: set[int] = set()
    for lo, hi, step in _parse_ranges(spec):
        points.update(range(lo, hi + 1, step))
    return points


def _char_class(points: Iterable[int]) -> str:
    """The body of a regex character class (no brackets) matching exactly these code points."""
    parts = []
    run: list[int] = []
    for cp in sorted(set(points)) + [-2]:
        if run and cp == run[-1] + 1:
            run.append(cp)
            continue
        if run:
            lo, hi = run[0], run[-1]
            parts.append(_esc(lo) if lo == hi else f"{_esc(lo)}-{_esc(hi)}")
        run = [cp]
    return "".join(parts)


def _esc(cp: int) -> str:
    return f"\\u{cp:04X}" if cp <= 0xFFFF else f"\\U{cp:08X}"


def _chars(text: str) -> set[int]:
    return {ord(c) for c in text}


_PUNCT = ["…", "……", ",", ":", ";", "!", "?", "¿", "؟", "¡", "(", ")", "[", "]", "{", "}", "<", ">", "_", "#", "*", "&",
          "。", "？", "！", "，", "、", "；", "：", "～", "·", "।", "،", "۔", "؛", "٪"]
_QUOTES = ["'", '"', "\u201d", "\u201c", "`", "\u2018", "\u00b4", "\u2019", "\u201a", ",", "\u201e", "\u00bb", "\u00ab",
           "\u300c", "\u300d", "\u300e", "\u300f", "\uff08", "\uff09", "\u3014", "\u3015", "\u3010", "\u3011", "\u300a",
           "\u300b", "\u3008", "\u3009", "\u2329", "\u232a", "\u27e6", "\u27e7"]
_HYPHENS = ["-", "\u2013", "\u2014", "--", "---", "\u2014\u2014", "~"]
_CURRENCY = ["$", "£", "€", "¥", "฿", "US$", "C$", "A$", "₽", "﷼", "₴", "₠", "₡", "₢", "₣", "₤", "₥", "₦", "₧", "₨", "₩",
             "₪", "₫", "€", "₭", "₮", "₯", "₰", "₱", "₲", "₳", "₴", "₵", "₶", "₷", "₸", "₹", "₺", "₻", "₼", "₽", "₾", "₿"]
# (spaCy's list runs "тб" and "كم" together, so the unit is "тбكم"; kept as spaCy has it)
_UNITS = (
    "km km² km³ m m² m³ dm dm² dm³ cm cm² cm³ mm mm² mm³ ha µm nm yd in ft kg g mg µg t lb oz m/s km/h kmh mph hPa "
    "Pa mbar mb MB kb KB gb GB tb TB T G M K % км км² км³ м м² м³ дм дм² дм³ см см² см³ мм мм² мм³ нм кг г мг м/с "
    "км/ч кПа Па мбар Кб КБ кб Мб МБ мб Гб ГБ гб Тб ТБ тбكم كم² كم³ م م² م³ سم سم² سم³ مم مم² مم³ كم غرام جرام جم "
    "كغ ملغ كوب اكواب"
).split()
_ELLIPSES = [r"\.\.+", "…"]


def _alt(items: Iterable[str]) -> str:
    return "|".join(re.escape(x) for x in items)


def _build_patterns() -> dict[str, Any]:
    alpha = _char_class(_codepoints(_ALPHA))
    lower_points = _codepoints(_ALPHA_LOWER)
    al = _char_class(lower_points)
    au = _char_class(_codepoints(_ALPHA_UPPER))
    icons = f"[{_char_class(_codepoints(_ICONS))}]"
    quotes = _char_class(_chars("".join(_QUOTES)))
    punct = [re.escape(p) for p in _PUNCT]
    quote_list = [re.escape(q) for q in _QUOTES]
    # spaCy writes this class as [0-9{lower}%²\-\+{PUNCT}(?:{QUOTES})] with PUNCT an alternation: so "|", "(",
    # "?", ":" and ")" are in it too.
    before_period = _char_class(
        _chars("0123456789%²-+|(?:)") | lower_points | _chars("".join(_PUNCT)) | _chars("".join(_QUOTES))
    )
    prefixes = (["§", "%", "=", "\u2014", "\u2013", r"\+(?![0-9])"] + punct + _ELLIPSES + quote_list
                + [re.escape(c) for c in _CURRENCY] + [icons])
    suffixes = (punct + _ELLIPSES + quote_list + [icons] + ["'s", "'S", "\u2019s", "\u2019S", "\u2014", "\u2013"] + [
        r"(?<=[0-9])\+",
        r"(?<=°[FfCcKk])\.",
        rf"(?<=[0-9])(?:{_alt(_CURRENCY)})",
        rf"(?<=[0-9])(?:{_alt(_UNITS)})",
        rf"(?<=[{before_period}])\.",
        rf"(?<=[{au}][{au}])\.",
    ])
    infixes = _ELLIPSES + [icons] + [
        r"(?<=[0-9])[+\-\*^](?=[0-9-])",
        rf"(?<=[{al}{quotes}])\.(?=[{au}{quotes}])",
        rf"(?<=[{alpha}]),(?=[{alpha}])",
        rf"(?<=[{alpha}0-9])(?:{_alt(_HYPHENS)})(?=[{alpha}])",
        rf"(?<=[{alpha}0-9])[:<>=/](?=[{alpha}])",
    ]
    # URLs (spaCy's URL_MATCH, after Diego Perini's regex): optional scheme, optional user info, then a public IP
    # address or host names ending in a lower-case top-level domain, optional port and path.
    url = (
        r"^(?:(?:[\w\+\-\.]{2,})://)?"
        r"(?:\S+(?::\S*)?@)?"
        r"(?:"
        r"(?!(?:10|127)(?:\.\d{1,3}){3})"
        r"(?!(?:169\.254|192\.168)(?:\.\d{1,3}){2})"
        r"(?!172\.(?:1[6-9]|2\d|3[0-1])(?:\.\d{1,3}){2})"
        r"(?:[1-9]\d?|1\d\d|2[01]\d|22[0-3])"
        r"(?:\.(?:1?\d{1,2}|2[0-4]\d|25[0-5])){2}"
        r"(?:\.(?:[1-9]\d?|1\d\d|2[0-4]\d|25[0-4]))"
        r"|"
        r"(?:(?:[A-Za-z0-9\u00a1-\uffff][A-Za-z0-9\u00a1-\uffff_-]{0,62})?[A-Za-z0-9\u00a1-\uffff]\.)+"
        rf"(?:[{al}]{{2,63}})"
        r")"
        r"(?::\d{2,5})?"
        r"(?:[/?#]\S*)?$"
    )
    return {
        "prefix": re.compile("|".join("^" + p for p in prefixes)),
        "suffix": re.compile("|".join(p + "$" for p in suffixes)),
        "infix": re.compile("|".join(infixes)),
        "url": re.compile("(?u)" + url),
    }


# ----------------------------------------------------------------------------------------------------------------
# spaCy's tokenizer exceptions for English (spacy/lang/tokenizer_exceptions.py, spacy/lang/en/tokenizer_exceptions.py)
# ----------------------------------------------------------------------------------------------------------------
_EMOTICONS = r"""
:) :-) :)) :-)) :))) :-))) (: (-: =) (= :] :-] [: [-: [= =] :o) (o: :} :-} 8) 8-) (-8 ;) ;-) (; (-; :( :-( :(( :-((
:((( :-((( ): )-: =( >:( :') :'-) :'( :'-( :/ :-/ =/ =| :| :-| ]= =[ :1 :P :-P :p :-p :O :-O :o :-o :0 :-0 :() >:o
:* :-* :3 :-3 =3 :> :-> :X :-X :x :-x :D :-D ;D ;-D =D xD XD xDD XDD 8D 8-D ^_^ ^__^ ^___^ >.< >.> <.< ._. ;_; -_-
-__- v.v V.V v_v V_V o_o o_O O_o O_O 0_o o_0 0_0 o.O O.o O.O o.o 0.0 o.0 0.o @_@ <3 <33 <333 </3 (^_^) (-_-) (._.)
(>_<) (*_*) (¬_¬) ಠ_ಠ ಠ︵ಠ (ಠ_ಠ) ¯\(ツ)/¯ (╯°□°）╯︵┻━┻ ><(((*>
""".split()

# Abbreviations and other strings that stay one token.
_SINGLE_TOKENS = r"""
' \") <space> '' C++ ä. ö. ü.
'S 's ‘S ‘s and/or w/o 're 'Cause 'cause 'cos 'Cos 'coz 'Coz 'cuz 'Cuz 'bout ma'am Ma'am o'clock O'clock
lovin' Lovin' lovin Lovin havin' Havin' havin Havin doin' Doin' doin Doin goin' Goin' goin Goin
Mt. Ak. Ala. Apr. Ariz. Ark. Aug. Calif. Colo. Conn. Dec. Del. Feb. Fla. Ga. Ia. Id. Ill. Ind. Jan. Jul. Jun. Kan.
Kans. Ky. La. Mar. Mass. Mich. Minn. Miss. N.C. N.D. N.H. N.J. N.M. N.Y. Neb. Nebr. Nev. Nov. Oct. Okla. Ore. Pa.
S.C. Sep. Sept. Tenn. Va. Wash. Wis.
'd a.m. Adm. Bros. co. Co. Corp. D.C. Dr. e.g. E.g. E.G. Gen. Gov. i.e. I.e. I.E. Inc. Jr. Ltd. Md. Messrs. Mo.
Mont. Mr. Mrs. Ms. p.m. Ph.D. Prof. Rep. Rev. Sen. St. vs. v.s.
""".split()

# Strings that the contraction rules would make but that are ordinary words.
_NOT_CONTRACTIONS = frozenset(
    "Ill ill Its its Hell hell Shell shell Shed shed were Were Well well Whore whore".split()
)


def _cased(word: str) -> tuple[str, str]:
    return word, word.title()


def english_exceptions() -> dict[str, tuple[str, ...]]:
    """spaCy's English special cases: string → the tokens it is split into (concatenating to the string)."""
    exc: dict[str, tuple[str, ...]] = {}

    def add(*pieces: str) -> None:
        exc["".join(pieces)] = pieces

    for pron in _cased("i"):
        add(pron, "'m")
        add(pron, "m")
        add(pron, "'m", "a")
        add(pron, "m", "a")
    for word in ("i", "you", "he", "she", "it", "we", "they"):
        for pron in _cased(word):
            add(pron, "'ll")
            add(pron, "ll")
            add(pron, "'ll", "'ve")
            add(pron, "ll", "ve")
            add(pron, "'d")
            add(pron, "d")
            add(pron, "'d", "'ve")
            add(pron, "d", "ve")
    for word in ("i", "you", "we", "they"):
        for pron in _cased(word):
            add(pron, "'ve")
            add(pron, "ve")
    for word in ("you", "we", "they"):
        for pron in _cased(word):
            add(pron, "'re")
            add(pron, "re")
    for word in ("he", "she", "it"):
        for pron in _cased(word):
            add(pron, "'s")
            add(pron, "s")
    for word in ("who", "what", "when", "where", "why", "how", "there", "that", "this", "these", "those"):
        plural, singular = word in ("these", "those"), word in ("that", "this")
        for w in _cased(word):
            if not plural:
                add(w, "'s")
                add(w, "s")
            add(w, "'ll")
            add(w, "ll")
            add(w, "'ll", "'ve")
            add(w, "ll", "ve")
            if not singular:
                add(w, "'re")
                add(w, "re")
                add(w, "'ve")
                add(w, "ve")
            add(w, "'d")
            add(w, "d")
            add(w, "'d", "'ve")
            add(w, "d", "ve")
    for word in ("ca", "could", "do", "does", "did", "had", "may", "might", "must", "need", "ought", "sha", "should",
                 "wo", "would"):
        for verb in _cased(word):
            add(verb, "n't")
            add(verb, "nt")
            add(verb, "n't", "'ve")
            add(verb, "nt", "ve")
    for word in ("could", "might", "must", "should", "would"):
        for verb in _cased(word):
            add(verb, "'ve")
            add(verb, "ve")
    for word in ("ai", "are", "is", "was", "were", "have", "has", "dare"):
        for verb in _cased(word):
            add(verb, "n't")
            add(verb, "nt")
    for word in ("doin", "goin", "nothin", "nuthin", "ol", "somethin"):
        for w in _cased(word):
            add(w)
            add(w + "'")
    for word in ("em", "ll", "nuff"):
        add(word)
        add("'" + word)
    for hour in range(1, 13):
        for period in ("a.m.", "am", "p.m.", "pm"):
            add(str(hour), period)
    for pieces in (("y'", "all"), ("y", "all"), ("how", "'d", "'y"), ("How", "'d", "'y"), ("not", "'ve"),
                   ("not", "ve"), ("Not", "'ve"), ("Not", "ve"), ("can", "not"), ("Can", "not"), ("gon", "na"),
                   ("Gon", "na"), ("got", "ta"), ("Got", "ta"), ("let", "'s"), ("Let", "'s"), ("c'm", "on"),
                   ("C'm", "on")):
        add(*pieces)
    for word in _SINGLE_TOKENS:
        add(word)
    for word in _NOT_CONTRACTIONS:
        exc.pop(word, None)
    # the language-independent ones
    for word in (" ", "\t", "\\t", "\n", "\\n", "\u2014", "\u00a0"):
        add(word)
    for letter in "abcdefghijklmnopqrstuvwxyz":
        add(letter + ".")
    for word in _EMOTICONS:
        add(word)
    for unit in "cfkCFK":
        add("°", unit, ".")
    # and every one with an apostrophe once more with the typographic one
    for string, pieces in list(exc.items()):
        if "'" in string:
            exc[string.replace("'", "\u2019")] = tuple(p.replace("'", "\u2019") for p in pieces)
    return exc


# ----------------------------------------------------------------------------------------------------------------
# spaCy's tokenizer algorithm (spacy/tokenizer.pyx), on the rules above
# ----------------------------------------------------------------------------------------------------------------
class EnglishWordSplitter:
    """Splits text into words exactly as spaCy 3's English tokenizer (``spacy.blank("en").tokenizer``) does.

    The algorithm: the text is cut into alternating runs of non-space and space characters, a single ``" "`` between
    two runs being dropped (it is the first word's trailing space). Each run is looked up among the special cases;
    otherwise prefixes and suffixes are peeled off repeatedly (stopping early when what is left is a special case),
    and what is left in the middle is a special case, a URL, or is cut at its infixes. Finally special cases that the
    affix rules had split into several adjacent tokens (an emoticon glued to a word, say) are put back together.

    Args:
        special_cases: extra strings that must stay one token (fastai adds its ``xx`` tokens this way).
    """

    _shared_patterns: dict[str, Any] | None = None
    max_cache_size = 100_000

    def __init__(self, special_cases: Iterable[str] = ()) -> None:
        self._cache: dict[str, tuple[str, ...]] = {}  # span → its tokens (as spaCy caches them)
        if EnglishWordSplitter._shared_patterns is None:
            EnglishWordSplitter._shared_patterns = _build_patterns()
        patterns = EnglishWordSplitter._shared_patterns
        self._prefix = patterns["prefix"].search
        self._suffix = patterns["suffix"].search
        self._infix = patterns["infix"].finditer
        self._url = patterns["url"].match
        self.special_cases = english_exceptions()
        for token in special_cases:
            self.special_cases[token] = (token,)
        # special cases that the affix rules split into several tokens: found again in the final pass
        self._phrases: dict[str, list[tuple[tuple[str, ...], str]]] = {}
        for string in sorted(self.special_cases):
            if self._prefix(string) or self._suffix(string) or list(self._infix(string)) or " " in string:
                pattern = tuple(t for t, _ in self._split(string, with_special_cases=False))
                self._phrases.setdefault(pattern[0], []).append((pattern, string))
        self._max_phrase = max((len(p) for ps in self._phrases.values() for p, _ in ps), default=0)

    def __call__(self, text: str) -> list[str]:
        return [token for token, _ in self.split_with_spaces(text)]

    def split_with_spaces(self, text: str) -> list[tuple[str, bool]]:
        """The tokens, each with whether a space followed it (and was dropped)."""
        return self._merge_special_phrases(self._split(text, with_special_cases=True))

    # -- the first pass: whitespace runs, then affixes -------------------------------------------------------
    def _split(self, text: str, with_special_cases: bool) -> list[list]:
        tokens: list[list] = []  # [text, followed by a space]
        if not text:
            return tokens
        in_space = text[0].isspace()
        start = 0
        for i, char in enumerate(text):
            if char.isspace() != in_space:
                if start < i:
                    self._split_span(text[start:i], tokens, with_special_cases)
                if char == " ":
                    tokens[-1][1] = True
                    start = i + 1
                else:
                    start = i
                in_space = not in_space
        if start < len(text):
            self._split_span(text[start:], tokens, with_special_cases)
            tokens[-1][1] = text[-1] == " " and not in_space
        return tokens

    def _split_span(self, span: str, tokens: list[list], with_special_cases: bool) -> None:
        if with_special_cases:
            cached = self._cache.get(span)
            if cached is None:
                start = len(tokens)
                self._split_span_uncached(span, tokens, True)
                if len(self._cache) >= self.max_cache_size:
                    self._cache.clear()
                self._cache[span] = tuple(t for t, _ in tokens[start:])
            else:
                tokens.extend([t, False] for t in cached)
        else:
            self._split_span_uncached(span, tokens, False)

    def _split_span_uncached(self, span: str, tokens: list[list], with_special_cases: bool) -> None:
        specials = self.special_cases if with_special_cases else {}
        if span in specials:
            tokens.extend([t, False] for t in specials[span])
            return
        prefixes: list[str] = []
        suffixes: list[str] = []
        string = span
        last_size = -1
        while string and len(string) != last_size:
            if string in specials:
                break
            last_size = len(string)
            pre_len = self._match_len(self._prefix(string))
            if pre_len:
                minus_pre = string[pre_len:]
                if minus_pre and minus_pre in specials:
                    prefixes.append(string[:pre_len])
                    string = minus_pre
                    break
            suf_len = self._match_len(self._suffix(string[pre_len:]))
            if suf_len:
                minus_suf = string[:-suf_len]
                if minus_suf and minus_suf in specials:
                    suffixes.append(string[-suf_len:])
                    string = minus_suf
                    break
            if pre_len and suf_len and pre_len + suf_len <= len(string):
                prefixes.append(string[:pre_len])
                suffixes.append(string[-suf_len:])
                string = string[pre_len:-suf_len]
            elif pre_len:
                prefixes.append(string[:pre_len])
                string = string[pre_len:]
            elif suf_len:
                suffixes.append(string[-suf_len:])
                string = string[:-suf_len]
        tokens.extend([p, False] for p in prefixes)
        if string:
            if string in specials:
                tokens.extend([t, False] for t in specials[string])
            elif self._url(string):
                tokens.append([string, False])
            else:
                start = 0
                for match in self._infix(string):
                    lo, hi = match.start(), match.end()
                    if lo == 0:  # an infix at the very start does not split
                        continue
                    if lo != start:
                        tokens.append([string[start:lo], False])
                    if lo != hi:
                        tokens.append([string[lo:hi], False])
                    start = hi
                if string[start:]:
                    tokens.append([string[start:], False])
        tokens.extend([s, False] for s in reversed(suffixes))

    @staticmethod
    def _match_len(match: re.Match | None) -> int:
        return match.end() - match.start() if match is not None else 0

    # -- the final pass: special cases split by the affix rules -----------------------------------------------
    def _merge_special_phrases(self, tokens: list[list]) -> list[tuple[str, bool]]:
        if not self._phrases:
            return [(t, s) for t, s in tokens]
        texts = [t for t, _ in tokens]
        matches = []  # (start, end)
        for i, first in enumerate(texts):
            for pattern, _ in self._phrases.get(first, ()):
                n = len(pattern)
                if tuple(texts[i:i + n]) == pattern:
                    matches.append((i, i + n))
        if not matches:
            return [(t, s) for t, s in tokens]
        # longest first, then leftmost; a match is kept unless its first or last token is in one seen before
        matches.sort(key=lambda m: (-(m[1] - m[0]), m[0]))
        seen: set[int] = set()
        kept = []
        for lo, hi in matches:
            if lo not in seen and hi - 1 not in seen:
                kept.append((lo, hi))
            seen.update(range(lo, hi))
        kept.sort()
        out: list[tuple[str, bool]] = []
        i = 0
        for lo, hi in kept:
            out.extend((t, s) for t, s in tokens[i:lo])
            text = "".join(t + (" " if s else "") for t, s in tokens[lo:hi - 1]) + tokens[hi - 1][0]
            pieces = self.special_cases.get(text)
            if pieces is None:  # the tokens are not adjacent: left as they are
                out.extend((t, s) for t, s in tokens[lo:hi])
            else:
                out.extend((p, False) for p in pieces[:-1])
                out.append((pieces[-1], tokens[hi - 1][1]))
            i = hi
        out.extend((t, s) for t, s in tokens[i:])
        return out
