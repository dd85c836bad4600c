"""Norwegian reference data and check digits for the demo warehouse.

Kept apart from :mod:`amili.warehouse.demo` so the generator reads as SQL plus wiring. The
check-digit functions make the creditors' numbers with python-stdnum; the tests hold the SQL
the generator runs for debtors and invoices against the same library.
"""

from __future__ import annotations

from collections.abc import Callable

from stdnum import luhn
from stdnum.no import kontonr, orgnr

from amili.validation import kid_mod11_check_digit

# --------------------------------------------------------------------------------------------
# Names. Common Norwegian first and last names, with æ, ø and å where Norwegians have them.
# --------------------------------------------------------------------------------------------

FIRST_NAMES_MALE: tuple[str, ...] = (
    "Ola", "Per", "Bjørn", "Jørgen", "Øyvind", "Håkon", "Lars", "Knut", "Ståle", "Pål",
    "Tore", "Geir", "Arne", "Erlend", "Sindre", "Magnus", "Henrik", "Jonas", "Mathias", "Emil",
    "Even", "Åsmund", "Ørjan", "Trond", "Rune", "Terje", "Kjetil", "Sigurd", "Øystein", "Nils",
    "Kåre", "Stian", "Morten", "Espen", "Anders", "Jan", "Martin", "Kristian", "Fredrik",
    "Torbjørn", "Bjørnar", "Håvard", "Jostein", "Ole", "Aksel", "Sverre", "Vegard", "Tormod",
)

FIRST_NAMES_FEMALE: tuple[str, ...] = (
    "Kari", "Åse", "Ingrid", "Solveig", "Bjørg", "Grete", "Kristin", "Marit", "Sølvi", "Randi",
    "Tone", "Hege", "Anne", "Hilde", "Liv", "Siri", "Ingeborg", "Astrid", "Ragnhild", "Eli",
    "Turid", "Åshild", "Gøril", "Mari", "Nora", "Emma", "Sofie", "Ida", "Thea", "Maja",
    "Ingvild", "Marte", "Silje", "Synnøve", "Torild", "Frøydis", "Hanne", "Linn", "Camilla",
    "Sunniva", "Tiril", "Mette", "Berit", "Wenche", "Gro", "Målfrid", "Bodil", "Øydis",
)

LAST_NAMES: tuple[str, ...] = (
    "Hansen", "Johansen", "Olsen", "Larsen", "Andersen", "Pedersen", "Nilsen", "Kristiansen",
    "Jensen", "Karlsen", "Johnsen", "Pettersen", "Eriksen", "Berg", "Haugen", "Hagen",
    "Johannessen", "Andreassen", "Jacobsen", "Dahl", "Jørgensen", "Halvorsen", "Henriksen",
    "Lund", "Sørensen", "Jakobsen", "Moen", "Gundersen", "Iversen", "Strand", "Solberg",
    "Svendsen", "Eide", "Knutsen", "Martinsen", "Paulsen", "Bakken", "Kristoffersen",
    "Mathisen", "Lie", "Amundsen", "Nguyen", "Rasmussen", "Ali", "Lunde", "Solheim", "Berge",
    "Moe", "Nygård", "Bakke", "Kristensen", "Fredriksen", "Holm", "Lien", "Hauge", "Christensen",
    "Andresen", "Nielsen", "Knudsen", "Evensen", "Sæther", "Aas", "Myhre", "Hanssen", "Ahmed",
    "Haugland", "Thomassen", "Sivertsen", "Simonsen", "Danielsen", "Berntsen", "Sandvik",
    "Rønning", "Arnesen", "Antonsen", "Næss", "Ødegård", "Østby", "Brekke", "Økland", "Aasen",
    "Tveit", "Fjeld", "Løken", "Bråten", "Hovland", "Vik", "Øien", "Sætre", "Grønli",
    "Bjørnstad", "Håland", "Åsheim", "Røed", "Kvåle", "Skjærvø",
)

STREETS: tuple[str, ...] = (
    "Løkkeveien", "Storgata", "Kirkegata", "Kongens gate", "Dronningens gate",
    "Bjørnstjerne Bjørnsons gate", "Skogveien", "Åsveien", "Fjellveien", "Bakkegata", "Sjøgata",
    "Strandveien", "Møllergata", "Tollbugata", "Ringveien", "Granveien", "Bjørkeveien",
    "Furuveien", "Eikeveien", "Lønneveien", "Rognveien", "Kløvervegen", "Solbakken",
    "Gamle Drammensvei", "Trondheimsveien", "Sørliveien", "Nordre gate", "Øvre Slottsgate",
    "Åkerveien", "Hagaløkkveien", "Tårnveien", "Fjordgata", "Havnegata", "Jernbanegata",
    "Prestegårdsveien", "Markveien", "Thereses gate", "Ullevålsveien", "Hovedgata",
    "Vestre Strandgate", "Elvegata", "Torggata", "Øvregata", "Bekkeveien", "Nedre Åsvei",
    "Kjølnes ring", "Bølerlia", "Sagveien", "Rådhusgata", "Smørbukkveien",
)

# (postal town, first postcode, last postcode, weight). Real postal towns; the codes fall in the
# town's real range, though not every code in a range exists.
POSTCODES: tuple[tuple[str, int, int, int], ...] = (
    ("Oslo", 150, 1295, 10), ("Bergen", 5003, 5268, 5), ("Trondheim", 7010, 7099, 4),
    ("Stavanger", 4005, 4099, 3), ("Tromsø", 9006, 9038, 2), ("Ålesund", 6002, 6020, 2),
    ("Kristiansand", 4608, 4639, 2), ("Drammen", 3011, 3048, 2), ("Fredrikstad", 1601, 1639, 2),
    ("Sandvika", 1300, 1339, 2), ("Bærums Verk", 1353, 1354, 1), ("Bekkestua", 1356, 1357, 1),
    ("Stabekk", 1369, 1371, 1), ("Sarpsborg", 1701, 1727, 1), ("Bodø", 8005, 8028, 1),
    ("Lillehammer", 2609, 2619, 1), ("Hamar", 2315, 2322, 1), ("Gjøvik", 2815, 2821, 1),
    ("Molde", 6413, 6421, 1), ("Sandnes", 4306, 4327, 2), ("Tønsberg", 3110, 3127, 1),
    ("Skien", 3711, 3732, 1), ("Porsgrunn", 3911, 3944, 1), ("Haugesund", 5521, 5538, 1),
    ("Arendal", 4836, 4849, 1), ("Harstad", 9403, 9415, 1), ("Førde", 6800, 6807, 1),
    ("Ørsta", 6150, 6155, 1), ("Røros", 7374, 7374, 1), ("Lørenskog", 1470, 1476, 1),
    ("Lillestrøm", 2000, 2010, 1), ("Jessheim", 2050, 2069, 1), ("Ski", 1400, 1408, 1),
    ("Asker", 1383, 1396, 1), ("Sandefjord", 3205, 3227, 1), ("Larvik", 3256, 3271, 1),
    ("Horten", 3181, 3189, 1), ("Halden", 1767, 1792, 1), ("Moss", 1530, 1535, 1),
    ("Kongsberg", 3611, 3618, 1), ("Hønefoss", 3510, 3519, 1), ("Elverum", 2406, 2418, 1),
    ("Steinkjer", 7713, 7725, 1), ("Stjørdal", 7500, 7503, 1), ("Levanger", 7600, 7608, 1),
    ("Namsos", 7800, 7805, 1), ("Mo i Rana", 8601, 8624, 1), ("Narvik", 8505, 8517, 1),
    ("Alta", 9505, 9515, 1), ("Hammerfest", 9600, 9602, 1), ("Kirkenes", 9900, 9917, 1),
    ("Vadsø", 9800, 9800, 1), ("Svolvær", 8300, 8301, 1), ("Brønnøysund", 8900, 8905, 1),
    ("Kristiansund", 6500, 6517, 1), ("Sogndal", 6856, 6856, 1), ("Voss", 5700, 5710, 1),
    ("Florø", 6900, 6905, 1), ("Egersund", 4370, 4379, 1), ("Ås", 1430, 1432, 1),
    ("Fauske", 8200, 8211, 1), ("Bryne", 4340, 4349, 1), ("Stord", 5410, 5417, 1),
    ("Sortland", 8400, 8402, 1), ("Finnsnes", 9300, 9303, 1), ("Ålgård", 4330, 4330, 1),
    ("Åndalsnes", 6300, 6301, 1), ("Årnes", 2150, 2151, 1), ("Ørje", 1870, 1871, 1),
    ("Øystese", 5610, 5610, 1),
)

COMPANY_WORDS_A: tuple[str, ...] = (
    "Nordlys", "Fjellbris", "Havgløtt", "Skogheim", "Bjørkli", "Sjøsprøyt", "Ørnereir",
    "Trollheim", "Vårsol", "Solstreif", "Elvebakken", "Fossekall", "Lysthus", "Granlund",
    "Måkeskjær", "Blåbær", "Tindegg", "Kystlys", "Isbre", "Fjæra", "Løvåsen", "Bølgetopp",
    "Mårstua", "Østlandske", "Vestkyst", "Gråstein", "Rødberg", "Sølvberg", "Jærbu", "Åkerlund",
)

COMPANY_WORDS_B: tuple[str, ...] = (
    "Bygg", "Regnskap", "Transport", "Eiendom", "Elektro", "Rør", "Maling", "Catering",
    "Rådgivning", "Data", "Fiskeri", "Frisør", "Snekkeri", "Handel", "Verksted", "Blomster",
    "Bakeri", "Gårdsdrift", "Låsservice", "Tannhelse",
)

EMAIL_DOMAINS: tuple[str, ...] = (
    "gmail.com", "online.no", "hotmail.com", "outlook.com", "live.no", "icloud.com",
    "yahoo.no", "altibox.no", "broadpark.no", "lyse.net",
)

MONTHS_NO: tuple[str, ...] = (
    "januar", "februar", "mars", "april", "mai", "juni",
    "juli", "august", "september", "oktober", "november", "desember",
)

# (creditor name, invoice description label, three principal line descriptions)
CREDITOR_TEMPLATES: tuple[tuple[str, str, tuple[str, str, str]], ...] = (
    ("Bjørkelund Energi AS", "Strøm", ("Strømforbruk", "Nettleie", "Fastbeløp")),
    ("Fjordnett Telekom AS", "Mobilabonnement",
     ("Mobilabonnement", "Datapakke", "Utlandssamtaler")),
    ("Løvåsen Eiendom AS", "Husleie", ("Husleie", "Felleskostnader", "Parkeringsplass")),
    ("Ørnes Rørleggerservice AS", "Rørleggerarbeid", ("Arbeid", "Materialer", "Kjøring")),
    ("Sprek Åsane Treningssenter AS", "Treningsavgift",
     ("Medlemskap", "Personlig trener", "Innmeldingsavgift")),
    ("Tannhelse Tromsø AS", "Tannbehandling", ("Undersøkelse", "Fylling", "Røntgen")),
)

# (first four digits of the account number: the bank's registry number, its BIC)
BANKS: tuple[tuple[str, str], ...] = (
    ("1503", "DNBANOKKXXX"), ("1506", "DNBANOKKXXX"), ("6001", "NDEANOKKXXX"),
    ("3201", "SPRONO22XXX"), ("9001", "HANDNOKKXXX"),
)

#: Currency codes that are not ISO 4217 (``XXX`` is avoided on purpose: it *is* ISO 4217).
UNKNOWN_CURRENCIES: tuple[str, ...] = ("NKR", "XYZ", "KR")


def ascii_fold(text: str) -> str:
    """Lower-case ASCII for e-mail addresses: æ→ae, ø→o, å→aa, as Norwegians write them."""
    return (
        text.lower().replace("æ", "ae").replace("ø", "o").replace("å", "aa").replace(" ", "")
    )


# --------------------------------------------------------------------------------------------
# Check digits of the creditors (reference: amili-api-reference.md §7). python-stdnum makes
# them, the same library the validation checks them with, so the demo cannot drift from it;
# the debtors' and invoices' check digits are computed in the generator's SQL instead.
# --------------------------------------------------------------------------------------------


def _completing_digit(base: str, is_valid: Callable[[str], bool]) -> int | None:
    """The digit that makes ``base`` + digit valid, or None where none does (MOD11 gives 10)."""
    return next((int(d) for d in "0123456789" if is_valid(base + d)), None)


def orgnr_check_digit(first8: str) -> int | None:
    """Check digit of an organisasjonsnummer, or None where the base admits none (10)."""
    return _completing_digit(first8, orgnr.is_valid)


def kontonr_check_digit(first10: str) -> int | None:
    """Check digit of an 11-digit kontonummer, or None where the base admits none (10)."""
    return _completing_digit(first10, kontonr.is_valid)


def luhn_check_digit(base: str) -> int:
    """KID MOD10 (Luhn) check digit of ``base``."""
    return int(luhn.calc_check_digit(base))


def mod11_kid_check_digit(base: str) -> int | None:
    """KID MOD11 check digit (weights 2..7 from the right); None where it would be 10.

    python-stdnum has no KID MOD11, so this is the validation's own function.
    """
    check = kid_mod11_check_digit(base)
    return None if check is None else int(check)


def iban_from_kontonr(kontonr_number: str) -> str:
    """Norwegian IBAN (``NOkk`` + the 11-digit account number), ISO 13616 mod-97."""
    return kontonr.to_iban(kontonr_number)

# --------------------------------------------------------------------------------------------
# Case handlers' requests about invoices already handed over (table ``case_actions``).
# --------------------------------------------------------------------------------------------

#: (subject, message) of a PAUSE; ``{date}`` is the day the pause lasts until (DD.MM.YYYY).
ACTION_PAUSE: tuple[str, str] = (
    "Pause i saken",
    "Kunden har fått betalingsutsettelse til {date}. Sett saken på pause til da.",
)
#: (subject, message) of a RESUME, sent after a PAUSE of the same invoice.
ACTION_RESUME: tuple[str, str] = (
    "Gjenoppta saken",
    "Avtalen om betalingsutsettelse er brutt. Gjenoppta inndrivelsen.",
)
#: (subject, message) of a WITHDRAW, by reason: the invoice was credited, or it is disputed.
ACTION_WITHDRAW: tuple[tuple[str, str], ...] = (
    ("Trekk saken", "Fakturaen er kreditert med kreditnota. Avslutt saken uten kostnad for "
     "kunden."),
    ("Trekk saken", "Kunden bestrider kravet. Trekk saken til tvisten er avklart."),
)
#: (subject, message) of a MESSAGE: a case handler's note, no change of the case's state.
ACTION_MESSAGES: tuple[tuple[str, str], ...] = (
    ("Ny adresse", "Kunden har meldt flytting; ny adresse er registrert hos oss."),
    ("Spørsmål fra kunden", "Kunden ber om kopi av fakturaen. Kan dere sende den?"),
    ("Delbetaling avtalt", "Kunden betaler resten i to avdrag. Ta kontakt ved mislighold."),
    ("Dødsbo", "Kunden er død; kravet rettes mot dødsboet. Kontaktinfo følger."),
    ("Klage på gebyr", "Kunden klager på purregebyret. Vi fastholder kravet."),
)
