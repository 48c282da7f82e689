"""Extractors for replies: return dates, substitute contacts, order and ticket numbers."""

from __future__ import annotations

import datetime as dt
import random

import pytest

from operators.reply_extract import (
    contacts,
    find_return,
    references,
    return_date,
    return_date_evidence,
)

UTC = dt.UTC
# Tuesday 1 December 2026
GOT = dt.datetime(2026, 12, 1, 9, 30, tzinfo=UTC)
D = dt.date

# (text, language, expected return day) for a reply received at GOT
RETURN_CASES: list[tuple[str, str, dt.date | None]] = [
    # --- English: until = back the next day
    ("I am out of the office until 18 December.", "en", D(2026, 12, 19)),
    ("I'm absent until 18 Dec with limited access to email.", "en", D(2026, 12, 19)),
    ("Out of office until Dec 18th.", "en", D(2026, 12, 19)),
    ("I am on annual leave until December 18, 2026.", "en", D(2026, 12, 19)),
    ("I'm away through Friday.", "en", D(2026, 12, 5)),
    ("Out of the office until 12/18.", "en", D(2026, 12, 19)),
    ("I am out until 12/18/2026 and will reply when I return.", "en", D(2026, 12, 19)),
    ("Thank you for your email. I am on vacation until the 18th of December.", "en",
     D(2026, 12, 19)),
    ("I'm on holiday till 2026-12-18.", "en", D(2026, 12, 19)),
    ("Away up to and including 18 December.", "en", D(2026, 12, 19)),
    ("I will be out of the office until Wednesday, December 9.", "en", D(2026, 12, 10)),
    ("I will return to the office after December 18.", "en", D(2026, 12, 19)),
    # --- English: back on = that day
    ("I'll be back on Monday.", "en", D(2026, 12, 7)),
    ("I am returning January 5.", "en", D(2027, 1, 5)),
    ("I will be back in the office on 7 December.", "en", D(2026, 12, 7)),
    ("Back on 12/21.", "en", D(2026, 12, 21)),
    ("I'm out this week, returning Monday 7th December.", "en", D(2026, 12, 7)),
    ("I will be available again from 14 December.", "en", D(2026, 12, 14)),
    ("Currently travelling, back tomorrow.", "en", D(2026, 12, 2)),
    ("I'm out of the office and will be back next week.", "en", D(2026, 12, 7)),
    ("I'm off for two weeks with no access to email.", "en", D(2026, 12, 15)),
    ("I'll be back in 3 days.", "en", D(2026, 12, 4)),
    ("I am on parental leave and will return on January 11th 2027.", "en", D(2027, 1, 11)),
    ("I'm out of office from 10 to 18 December.", "en", D(2026, 12, 19)),
    ("Out of office 10-18 Dec.", "en", D(2026, 12, 19)),
    ("Away Dec 10-18, back Dec 21.", "en", D(2026, 12, 21)),
    ("I am away from December 3 to December 11.", "en", D(2026, 12, 12)),
    ("I'm out of the office until 18/12.", "", D(2026, 12, 19)),
    ("I'm out of the office until 05/01 (5 January).", "en-GB", D(2027, 1, 6)),
    # --- German
    ("Ich bin bis 18.12. nicht im Büro.", "de", D(2026, 12, 19)),
    ("Ich bin bis zum 18. Dezember 2026 im Urlaub.", "de", D(2026, 12, 19)),
    ("Ab dem 19.12. bin ich wieder erreichbar.", "de", D(2026, 12, 19)),
    ("Ich bin ab dem 19.12. wieder erreichbar.", "de", D(2026, 12, 19)),
    ("Wieder im Büro am 5. Januar.", "de", D(2027, 1, 5)),
    ("Vielen Dank für Ihre Nachricht. Ich bin vom 10.12. bis 18.12. abwesend.", "de",
     D(2026, 12, 19)),
    ("Ich bin bis einschließlich 18.12.2026 im Urlaub.", "de", D(2026, 12, 19)),
    ("Ich bin bis Freitag außer Haus.", "de", D(2026, 12, 5)),
    ("Ab Montag bin ich wieder im Büro.", "de", D(2026, 12, 7)),
    ("Ich bin ab morgen wieder da.", "de", D(2026, 12, 2)),
    ("Ich bin für zwei Wochen im Urlaub.", "de", D(2026, 12, 15)),
    ("Ich bin nächste Woche wieder im Büro.", "de", D(2026, 12, 7)),
    ("Am 7. Dezember bin ich wieder zurück.", "de", D(2026, 12, 7)),
    ("Ich bin vom 10. bis 18. Dezember nicht erreichbar.", "de", D(2026, 12, 19)),
    ("Abwesend bis 4.1.2027, ab 5.1. wieder da.", "de", D(2027, 1, 5)),
    ("Ich bin bis zum 5. Januar im Urlaub.", "de", D(2027, 1, 6)),
    ("Bin bis 18.12 unterwegs.", "", D(2026, 12, 19)),
    # --- French
    ("Je suis absent jusqu'au 18 décembre.", "fr", D(2026, 12, 19)),
    ("De retour le 5 janvier.", "fr", D(2027, 1, 5)),
    ("Je serai de retour le lundi 7 décembre.", "fr", D(2026, 12, 7)),
    ("Absente du 10 au 18 décembre inclus.", "fr", D(2026, 12, 19)),
    ("Je suis en congés jusqu'au 18/12.", "fr", D(2026, 12, 19)),
    ("Je suis absent jusqu’au 4 janvier 2027.", "fr", D(2027, 1, 5)),
    ("Je serai de retour demain.", "fr", D(2026, 12, 2)),
    ("Je suis absent pendant deux semaines.", "fr", D(2026, 12, 15)),
    ("Je serai de nouveau disponible à partir du 14 décembre.", "fr", D(2026, 12, 14)),
    ("Je suis absent jusqu'à vendredi.", "fr", D(2026, 12, 5)),
    # --- Spanish
    ("Estoy fuera de la oficina hasta el 18 de diciembre.", "es", D(2026, 12, 19)),
    ("Estaré de vuelta el 5 de enero.", "es", D(2027, 1, 5)),
    ("Estoy de vacaciones hasta el 18/12.", "es", D(2026, 12, 19)),
    ("Estaré ausente del 10 al 18 de diciembre.", "es", D(2026, 12, 19)),
    ("Regreso el lunes.", "es", D(2026, 12, 7)),
    ("Estaré de vacaciones durante dos semanas.", "es", D(2026, 12, 15)),
    ("Volveré el 7 de diciembre de 2026.", "es", D(2026, 12, 7)),
    ("Estaré disponible a partir del 14 de diciembre.", "es", D(2026, 12, 14)),
    # --- Dutch
    ("Ik ben afwezig tot 18 december.", "nl", D(2026, 12, 19)),
    ("Vanaf 19 december ben ik weer aanwezig.", "nl", D(2026, 12, 19)),
    ("Ik ben vanaf 19 december weer aanwezig.", "nl", D(2026, 12, 19)),
    ("Ik ben met vakantie t/m 18 december.", "nl", D(2026, 12, 19)),
    ("Ik ben tot en met 18-12-2026 afwezig.", "nl", D(2026, 12, 19)),
    ("Ik ben maandag weer op kantoor.", "nl", D(2026, 12, 7)),
    ("Ik ben terug op 7 december.", "nl", D(2026, 12, 7)),
    ("Ik ben van 10 tot 18 december afwezig.", "nl", D(2026, 12, 19)),
    ("Ik ben morgen weer bereikbaar.", "nl", D(2026, 12, 2)),
    # --- ISO and signatures
    ("Out of office until 2026-12-18.\n\nSent: Monday, 1 December 2026\nTel +49 30 1234567",
     "en", D(2026, 12, 19)),
    ("Jane Doe\nSent: Monday, 30 November 2026 10:04\nI am out until 9 December.", "en",
     D(2026, 12, 10)),
    ("I am on leave until 18 December.\n--\nJane | +1 (555) 123-4567 | 12/01/2026", "en",
     D(2026, 12, 19)),
    # --- unknown: None
    ("I am out of the office with limited access to email.", "en", None),
    ("Thanks, we received your message.", "en", None),
    ("Ich bin ab dem 10.12. im Urlaub.", "de", None),
    ("Sent: Monday, 1 December 2026", "en", None),
    ("", "en", None),
    ("Our office hours are 9-17, Mon-Fri. Call 030 12.34.56.", "de", None),
]


@pytest.mark.parametrize("text,language,expected", RETURN_CASES)
def test_return_date_cases(text: str, language: str, expected: dt.date | None) -> None:
    assert return_date(text, GOT, language) == expected


def test_return_date_exact_share_on_own_set() -> None:
    right = sum(return_date(t, GOT, lang) == exp for t, lang, exp in RETURN_CASES)
    share = right / len(RETURN_CASES)
    print(f"return dates exact: {right}/{len(RETURN_CASES)} = {share:.1%}")
    assert share >= 0.9


# Longer, realistic notices (greetings, reasons, colleagues, ranges across the year end),
# received at GOT, language not given: the text alone decides.
REALISTIC_CASES: list[tuple[str, dt.date | None]] = [
    (
        "Hello,\n\nThank you for your message. I am currently out of the office with limited "
        "access to email and will return on Monday, December 14th. For urgent matters please "
        "contact my colleague.\n\nBest regards,\nJohn",
        D(2026, 12, 14),
    ),
    (
        "Automatic reply: I'm out of the office from Dec 2 through Dec 11 and will respond "
        "when I'm back.",
        D(2026, 12, 12),
    ),
    ("I am currently on leave and will be back in the office on 4th January 2027.", D(2027, 1, 4)),
    ("I'm OOO until Jan 4.", D(2027, 1, 5)),
    ("I'm on vacation Dec 21 - Jan 3. I'll respond after I return.", D(2027, 1, 4)),
    ("I'm out of the office December 21-January 3.", D(2027, 1, 4)),
    ("I am away on business travel until Thursday 3rd December.", D(2026, 12, 4)),
    ("I will be out of the office starting Dec 2 and returning Dec 9.", D(2026, 12, 9)),
    ("I'm out of the office today and tomorrow.", None),
    ("I'm out until next Monday.", D(2026, 12, 8)),
    (
        "Sehr geehrte Damen und Herren,\nvielen Dank für Ihre E-Mail. Ich bin bis "
        "einschließlich Freitag, 11.12.2026 nicht im Büro. Ihre E-Mail wird nicht "
        "weitergeleitet.\nMit freundlichen Grüßen",
        D(2026, 12, 12),
    ),
    (
        "Ich befinde mich bis zum 18.12.2026 im Urlaub. Ab dem 21.12.2026 bin ich wieder für "
        "Sie da.",
        D(2026, 12, 21),
    ),
    ("Ich bin in der Zeit vom 07.12. – 11.12.2026 nicht erreichbar.", D(2026, 12, 12)),
    ("Ich bin vom 7. bis einschließlich 11. Dezember abwesend.", D(2026, 12, 12)),
    ("Ich bin am 3.12. wieder im Büro.", D(2026, 12, 3)),
    ("Ich bin derzeit krank. Voraussichtlich bin ich am Montag wieder da.", D(2026, 12, 7)),
    ("Ich bin bis 4. Januar 2027 im Urlaub und ab dem 5. Januar wieder erreichbar.", D(2027, 1, 5)),
    (
        "Bonjour, je suis absente du lundi 7 au vendredi 11 décembre inclus. Je traiterai "
        "votre message à mon retour.",
        D(2026, 12, 12),
    ),
    ("Je suis actuellement en congé et serai de retour le 14/12.", D(2026, 12, 14)),
    ("Je suis en déplacement jusqu'au mercredi 9 décembre.", D(2026, 12, 10)),
    ("Je suis absent et de retour lundi.", D(2026, 12, 7)),
    ("Actuellement absent, je reviendrai le 7 décembre.", D(2026, 12, 7)),
    ("Gracias por su mensaje. Estoy de vacaciones hasta el lunes 7 de diciembre.", D(2026, 12, 8)),
    ("Me encuentro fuera de la oficina del 2 al 11 de diciembre.", D(2026, 12, 12)),
    ("Estaré fuera hasta el 11/12/2026.", D(2026, 12, 12)),
    ("Regresaré el 14 de diciembre.", D(2026, 12, 14)),
    ("Bedankt voor uw bericht. Ik ben afwezig tot en met vrijdag 11 december.", D(2026, 12, 12)),
    (
        "Ik ben op vakantie van 7 t/m 11 december. Vanaf maandag 14 december ben ik weer "
        "bereikbaar.",
        D(2026, 12, 14),
    ),
    ("Ik ben tot 11-12 afwezig.", D(2026, 12, 12)),
    ("Ik ben vanaf 14-12-2026 weer op kantoor.", D(2026, 12, 14)),
    ("I'm away until the 18th.", D(2026, 12, 19)),
    ("Out of office until 18th December 2026", D(2026, 12, 19)),
    ("I'm on holiday, returning on the 18th.", D(2026, 12, 18)),
    ("Back on Dec. 18", D(2026, 12, 18)),
    ("I will be out of the office until 2 p.m. today.", None),
    ("I'm out of office. I'll be back in two weeks.", D(2026, 12, 15)),
    ("Out sick today, back tomorrow hopefully.", D(2026, 12, 2)),
    ("I'm travelling for the next 3 days.", D(2026, 12, 4)),
    ("I'm out until the end of the week.", None),
    ("I'm on maternity leave until March 2027.", None),
    ("Hi, I'm on leave. Back 7/12.", D(2026, 12, 7)),
    ("I'm out of the office until Monday 12/7.", D(2026, 12, 8)),
    ("Ich bin bis zum 20. Dez. im Urlaub.", D(2026, 12, 21)),
    ("Ich bin bis KW 51 nicht erreichbar.", None),
    ("Je suis absent jusqu'au 1er janvier.", D(2027, 1, 2)),
    ("Bis zum 1. Januar bin ich nicht da.", D(2027, 1, 2)),
    ("On leave 14.12.2026 to 18.12.2026", D(2026, 12, 19)),
    ("Abwesend: 7.12.–11.12.", D(2026, 12, 12)),
    ("Out of office: 12/7 - 12/11", D(2026, 12, 12)),
    ("Ich bin ab dem 10.12. im Urlaub und ab dem 4.1. wieder zurück.", D(2027, 1, 4)),
    ("I'll be in the office on Thursday.", D(2026, 12, 3)),
    (
        "Thanks for reaching out! I'm currently on PTO and will be back Wednesday, Dec 9.",
        D(2026, 12, 9),
    ),
    ("I'm out of the office until Wed 12/9 with no access to email.", D(2026, 12, 10)),
    (
        "I'm currently out of the office and will return on Tuesday, the 8th of December.",
        D(2026, 12, 8),
    ),
    (
        "I will be out of the office Wednesday 2nd December to Friday 4th December inclusive.",
        D(2026, 12, 5),
    ),
    ("Please note I am on leave from 2/12 until 11/12.", D(2026, 12, 12)),
    ("I'm on annual leave returning 14.12.2026.", D(2026, 12, 14)),
    ("Out of office: back 14 Dec", D(2026, 12, 14)),
    (
        "I will have limited access to email until December 11th. I will respond upon my "
        "return on December 14th.",
        D(2026, 12, 14),
    ),
    ("I'm attending a conference until Thursday and will reply on Friday.", D(2026, 12, 4)),
    ("I'm out of office until Monday the 7th.", D(2026, 12, 8)),
    ("Ich bin ab sofort bis zum 11. Dezember nicht im Büro.", D(2026, 12, 12)),
    (
        "Derzeit bin ich im Urlaub. Ab Montag, den 14.12.2026 bin ich wieder im Büro.",
        D(2026, 12, 14),
    ),
    ("Ich bin vom 01.12. bis zum 04.12. auf Dienstreise.", D(2026, 12, 5)),
    ("Ich bin erst wieder am 7.12. im Büro.", D(2026, 12, 7)),
    ("Ich bin bis Mittwoch, 09.12., nicht erreichbar.", D(2026, 12, 10)),
    ("Ich bin in den nächsten zwei Wochen nicht erreichbar.", D(2026, 12, 15)),
    ("Ich bin bis Ende nächster Woche im Urlaub.", None),
    ("Am Montag bin ich zurück.", D(2026, 12, 7)),
    ("Je suis en congés du 7 au 18 décembre, je reprendrai le 21 décembre.", D(2026, 12, 21)),
    ("Je suis absent jusqu'au lundi 7 décembre inclus.", D(2026, 12, 8)),
    ("Je serai de retour au bureau le 14 décembre.", D(2026, 12, 14)),
    ("Je suis en congés jusqu'au 04/01/2027.", D(2027, 1, 5)),
    ("Je suis absent cette semaine, retour prévu le 7/12.", D(2026, 12, 7)),
    ("Estaré fuera de la oficina hasta el viernes 4 de diciembre.", D(2026, 12, 5)),
    ("Me reincorporo el 14 de diciembre.", D(2026, 12, 14)),
    ("Estoy de vacaciones del 7 al 18 de diciembre, ambos inclusive.", D(2026, 12, 19)),
    ("Volveré a la oficina el lunes 7 de diciembre.", D(2026, 12, 7)),
    ("Estaré ausente hasta el 04/01/2027.", D(2027, 1, 5)),
    ("Ik ben met vakantie tot en met 4 januari.", D(2027, 1, 5)),
    ("Ik ben afwezig van 7 tot en met 18 december.", D(2026, 12, 19)),
    ("Vanaf 5 januari ben ik weer op kantoor.", D(2027, 1, 5)),
    ("Ik ben op 14-12 weer aanwezig.", D(2026, 12, 14)),
    ("Ik ben tot maandag 7 december afwezig.", D(2026, 12, 8)),
    ("I'm out of office.\n\nOn Mon, Nov 30, 2026 at 10:00 AM Bob <bob@x.example> wrote:", None),
    ("I am away. Sent from my iPhone", None),
    ("I will be out of the office from December 7, returning December 14.", D(2026, 12, 14)),
    ("I'm on leave until 7 Jan 2027 inclusive.", D(2027, 1, 8)),
    ("I'm out of the office. I'll be back on the 14th.", D(2026, 12, 14)),
    ("Back in the office Jan 4th.", D(2027, 1, 4)),
    ("I'm off until after the new year - back January 4.", D(2027, 1, 4)),
    ("Ich bin bis 04.01. nicht im Haus.", D(2027, 1, 5)),
    ("I am out of office, returning 4th Jan.", D(2027, 1, 4)),
    ("Away 12/7-12/11.", D(2026, 12, 12)),
    ("I'll be back on 12.07.", D(2026, 12, 7)),
    (
        "Bonjour,\nJe suis absent(e) du bureau jusqu'au vendredi 11 décembre inclus et "
        "n'aurai pas accès à mes mails.\nCordialement",
        D(2026, 12, 12),
    ),
    ("Je suis en congé maternité jusqu'au 1er mars 2027.", D(2027, 3, 2)),
    ("Merci pour votre message. Je serai absent jusqu'au 11.12.2026.", D(2026, 12, 12)),
    ("Absent jusqu'à lundi.", D(2026, 12, 8)),
    ("Je reprendrai mes fonctions le 14 décembre.", D(2026, 12, 14)),
    ("Je suis en vacances et rentre le 14 décembre.", D(2026, 12, 14)),
    ("Hola, estoy de viaje y regresaré el próximo 14 de diciembre.", D(2026, 12, 14)),
    ("Estaré ausente hasta el día 11 de diciembre incluido.", D(2026, 12, 12)),
    ("Me encuentro de vacaciones. Vuelvo el lunes 14.", D(2026, 12, 14)),
    ("Estaré de vuelta mañana.", D(2026, 12, 2)),
    ("Estaré fuera de la oficina la próxima semana.", None),
    ("Ik ben afwezig en ben weer terug op maandag 14 december.", D(2026, 12, 14)),
    ("Ik ben met verlof tot 11/12/2026.", D(2026, 12, 12)),
    ("Ik ben de komende twee weken afwezig.", D(2026, 12, 15)),
    ("Ik ben vanaf maandag weer aan het werk.", D(2026, 12, 7)),
    ("Hi there, I'm out of office till 12/11.", D(2026, 12, 12)),
    (
        "I am out of the office until 11th Dec. and will have limited access to email.",
        D(2026, 12, 12),
    ),
    ("I'm OOO Dec 7-11.", D(2026, 12, 12)),
    ("Out 7th-11th December.", D(2026, 12, 12)),
    ("I will be returning to the office Monday, 14 December 2026.", D(2026, 12, 14)),
    ("I'm on leave and will be back in the new year on 4 January.", D(2027, 1, 4)),
    ("Currently out. I will be back on Monday, December 7, 2026.", D(2026, 12, 7)),
    ("Hello! I'm out of the office until Thursday, Dec. 3.", D(2026, 12, 4)),
    (
        "Ich bin bis zum 3. Dezember auf Geschäftsreise und habe nur eingeschränkten Zugriff "
        "auf E-Mails.",
        D(2026, 12, 4),
    ),
    (
        "Vielen Dank für Ihre Mail. Ich bin bis Mittwoch, den 9. Dezember 2026, nicht im "
        "Büro.",
        D(2026, 12, 10),
    ),
    ("Ich bin voraussichtlich ab dem 14.12.2026 wieder im Büro.", D(2026, 12, 14)),
    ("Ich bin ab 11.12. im Urlaub und ab 4.1.2027 wieder da.", D(2027, 1, 4)),
    ("Bis 11.12.2026 bin ich im Urlaub.", D(2026, 12, 12)),
    (
        "Ich bin bis zum 11.12. außer Haus. Ab Montag, 14.12., bin ich wieder für Sie da.",
        D(2026, 12, 14),
    ),
    ("Abwesenheitsnotiz: Ich bin bis 11.12.26 nicht erreichbar.", D(2026, 12, 12)),
    (
        "Thank you for your email. I am currently on annual leave, returning to the office on "
        "Monday 14th December. I will respond to your email on my return.",
        D(2026, 12, 14),
    ),
    ("I am out of the office with no access to email until January 4, 2027.", D(2027, 1, 5)),
    (
        "I'm away from the office until Thursday, 3 December and will reply as soon as I can.",
        D(2026, 12, 4),
    ),
    ("Please note that I am out of the office and will return on 12/14.", D(2026, 12, 14)),
    ("I'm out today (Tuesday), back Wednesday.", D(2026, 12, 2)),
    ("I'm on sick leave until further notice.", None),
    ("Our offices are closed from 24 December to 1 January inclusive.", D(2027, 1, 2)),
    ("I'll be out of the office Thursday 3rd and Friday 4th December.", None),
    ("I am on holiday until Sunday 6th December, returning Monday.", D(2026, 12, 7)),
    ("Office closed for the holidays; we reopen on January 4th.", D(2027, 1, 4)),
    (
        "Ich bin bis einschließlich 6. Dezember im Urlaub. Ab dem 7. Dezember bin ich wieder "
        "erreichbar.",
        D(2026, 12, 7),
    ),
    ("Ich bin in Elternzeit bis 31.03.2027.", D(2027, 4, 1)),
    ("Vielen Dank. Ich bin ab Montag wieder im Haus.", D(2026, 12, 7)),
    ("Ich bin heute nicht im Büro. Morgen bin ich wieder erreichbar.", D(2026, 12, 2)),
    ("Ich bin auf einer Messe und ab dem 04.12. zurück.", D(2026, 12, 4)),
    ("Je suis absent du bureau jusqu'au 4 décembre au soir.", D(2026, 12, 5)),
    ("Je suis actuellement en congés. Je serai de retour le mardi 8/12.", D(2026, 12, 8)),
    ("Je suis en formation jusqu'à jeudi 3 décembre.", D(2026, 12, 4)),
    ("Estaré de vacaciones desde el 2 hasta el 11 de diciembre.", D(2026, 12, 12)),
    ("Me encuentro fuera de la oficina. Regresaré el 9/12.", D(2026, 12, 9)),
    ("Ik ben tot en met 4 december met vakantie.", D(2026, 12, 5)),
    ("Ik ben vanaf 7 december weer bereikbaar.", D(2026, 12, 7)),
    ("Ik ben vandaag afwezig en morgen weer op kantoor.", D(2026, 12, 2)),
    ("Auto-reply: Out of Office until 12/4", D(2026, 12, 5)),
    ("OOO: back 12/7", D(2026, 12, 7)),
    ("I'm travelling and will be back on the 7th.", D(2026, 12, 7)),
    ("Back from 7 Dec.", D(2026, 12, 7)),
    ("Out of office. Returning 7.12.", D(2026, 12, 7)),
    ("I'm on leave until 7 December (inclusive).", D(2026, 12, 8)),
    ("Away this week. Back next Monday, 7 December.", D(2026, 12, 7)),
]


@pytest.mark.parametrize("text,expected", REALISTIC_CASES)
def test_return_date_realistic_notices(text: str, expected: dt.date | None) -> None:
    assert return_date(text, GOT) == expected


def test_return_date_exact_share_on_realistic_notices() -> None:
    right = sum(return_date(t, GOT) == exp for t, exp in REALISTIC_CASES)
    share = right / len(REALISTIC_CASES)
    print(f"realistic return dates exact: {right}/{len(REALISTIC_CASES)} = {share:.1%}")
    assert share >= 0.9


@pytest.mark.parametrize(
    "received,text,expected",
    [
        # a December reply saying "until 5 January" means next year
        (dt.datetime(2026, 12, 20, tzinfo=UTC), "I am out until 5 January.", D(2027, 1, 6)),
        (dt.datetime(2026, 12, 20, tzinfo=UTC), "Back on 4 Jan.", D(2027, 1, 4)),
        (dt.datetime(2026, 12, 30, tzinfo=UTC), "bis 2.1.", D(2027, 1, 3)),
        # until 31 December: back on 1 January of the next year
        (dt.datetime(2026, 12, 20, tzinfo=UTC), "Away until 31 December.", D(2027, 1, 1)),
        # same day counts as on or after
        (dt.datetime(2026, 12, 18, tzinfo=UTC), "Out until 18 December.", D(2026, 12, 19)),
        # a stale notice (the date is a week behind) is unsure, not a year away
        (dt.datetime(2026, 12, 20, tzinfo=UTC), "Out until 12 December.", None),
    ],
)
def test_year_rollover(received: dt.datetime, text: str, expected: dt.date | None) -> None:
    assert return_date(text, received, "en") == expected


@pytest.mark.parametrize(
    "text,expected",
    [
        ("until 18 December", D(2026, 12, 19)),
        ("back on 18 December", D(2026, 12, 18)),
        ("bis 18.12.", D(2026, 12, 19)),
        ("wieder da am 18.12.", D(2026, 12, 18)),
        ("jusqu'au 18 décembre", D(2026, 12, 19)),
        ("de retour le 18 décembre", D(2026, 12, 18)),
        ("hasta el 18 de diciembre", D(2026, 12, 19)),
        ("de vuelta el 18 de diciembre", D(2026, 12, 18)),
        ("tot 18 december", D(2026, 12, 19)),
        ("terug op 18 december", D(2026, 12, 18)),
    ],
)
def test_until_means_the_next_day_back_means_that_day(text: str, expected: dt.date) -> None:
    assert return_date(text, GOT) == expected


def test_back_wording_wins_over_until_wording() -> None:
    text = "I'm away until Friday 18 December. Back Monday 21 December."
    assert find_return(text, GOT).date == D(2026, 12, 21)


@pytest.mark.parametrize(
    "weekday,expected",
    [("Monday", 7), ("Tuesday", 8), ("Wednesday", 2), ("Sunday", 6)],
)
def test_weekday_is_the_next_such_day_strictly_after_received(weekday: str, expected: int) -> None:
    # received on a Tuesday: "back on Tuesday" is a week later
    assert return_date(f"Back on {weekday}.", GOT) == D(2026, 12, expected)


@pytest.mark.parametrize(
    "text,language,expected",
    [
        ("Out until 12/10.", "en", D(2026, 12, 11)),  # US: December 10
        ("Out until 12/10.", "en-US", D(2026, 12, 11)),
        ("Out until 12/10.", "en-GB", D(2026, 10, 13)),  # UK: 12 October
        ("Abwesend bis 12/10.", "de", D(2026, 10, 13)),
        ("Absent jusqu'au 12/10.", "fr", D(2026, 10, 13)),
        ("Out until 12/13.", "en-GB", D(2026, 12, 14)),  # day > 12: plain either way
        ("Out until 13/12.", "en", D(2026, 12, 14)),
        ("Out until 10.12.", "en", D(2026, 12, 11)),  # dotted is always day first
    ],
)
def test_us_and_european_numeric_dates(text: str, language: str, expected: dt.date) -> None:
    received = dt.datetime(2026, 10, 1, tzinfo=UTC) if expected.month == 10 else GOT
    assert return_date(text, received, language) == expected


def test_evidence_names_the_phrase_and_scrubs_long_digits() -> None:
    day, phrase = return_date_evidence("Ref 123456789: I am out until 18 December.", GOT)
    assert day == D(2026, 12, 19)
    assert phrase == "until 18 December"
    day, phrase = return_date_evidence("back on 2026-12-07", GOT)
    assert phrase == "back on 2026-12-07"
    got = find_return("Ich bin vom 10.12. bis 18.12. abwesend, Tel. 0301234567", GOT)
    assert got.rule == "range" and "0301234567" not in got.evidence
    assert return_date_evidence("nothing here", GOT) == (None, "")


def test_naive_and_other_zone_received_times() -> None:
    naive = dt.datetime(2026, 12, 1, 9, 30)
    assert return_date("until 18 December", naive) == D(2026, 12, 19)
    # 23:30 on 30 Nov in New York is 1 Dec in UTC
    ny = dt.datetime(2026, 11, 30, 23, 30, tzinfo=dt.timezone(dt.timedelta(hours=-5)))
    assert return_date("back tomorrow", ny) == D(2026, 12, 2)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "   ",
        "\x00\x01\x02",
        "until",
        "bis .. .. ..",
        "31/31/31 99.99.9999 2026-13-45 until 30 February",
        "until " + "9" * 10_000,
        "@" * 5000,
        "until 18 " + "December " * 3000,
        "ｕｎｔｉｌ　１８　Ｄｅｃｅｍｂｅｒ",
        "İİİ until ß 18 Dezember ﬁ",
        "\ud800 broken surrogate until 18 December",
    ],
)
def test_hostile_input_never_raises(text: str) -> None:
    return_date(text, GOT)
    return_date_evidence(text, GOT, "de")
    contacts(text)
    references(text)


def test_wrong_types_give_nothing() -> None:
    assert return_date(None, GOT) is None  # type: ignore[arg-type]
    assert return_date("until 18 December", None) is None  # type: ignore[arg-type]
    assert contacts(None) == []  # type: ignore[arg-type]
    assert references(None) == []  # type: ignore[arg-type]


def test_seeded_random_noise_never_raises() -> None:
    rng = random.Random(17)
    alphabet = "0123456789./-@ abcdefghijklmnopqrstuvwxyzäöüéñ:#\n'’ßİ"
    words = ["until", "bis", "back", "wieder", "ab", "18.12.", "12/18", "Dec", "-", "au"]
    for _ in range(300):
        parts = [
            rng.choice(words) if rng.random() < 0.4
            else "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 12)))
            for _ in range(rng.randint(0, 30))
        ]
        text = " ".join(parts)
        got = return_date(text, GOT, rng.choice(["", "en", "de", "fr"]))
        assert got is None or GOT.date() <= got <= GOT.date() + dt.timedelta(days=366)
        contacts(text)
        references(text)


def test_huge_text_is_read_and_the_answer_kept() -> None:
    # linear work: a long body after the notice changes nothing (no timing asserted)
    text = "I am out of the office until 18 December.\n" + ("lorem ipsum 12.5 x " * 50_000)
    assert return_date(text, GOT) == D(2026, 12, 19)
    big = ("a" * 100_000) + " please contact x@y.example"
    assert contacts(big) == []  # beyond the bound read: not seen, and no error


# --------------------------------------------------------------------- contacts

@pytest.mark.parametrize(
    "text,exclude,expected",
    [
        ("Please contact jane.doe@acme.example instead.", None, ["jane.doe@acme.example"]),
        ("I left the company, write to Support@Acme.example.", None, ["support@acme.example"]),
        ("Mein Kollege Max Muster übernimmt: max.muster@acme.example", None,
         ["max.muster@acme.example"]),
        ("In dringenden Fällen: notfall@acme.example", None, ["notfall@acme.example"]),
        ("For urgent matters please email a@acme.example or b@acme.example, "
         "or a@acme.example again.", None, ["a@acme.example", "b@acme.example"]),
        ("Pour toute urgence, contactez marie@acme.example.", None, ["marie@acme.example"]),
        ("En caso de urgencia, escriba a soporte@acme.example.", None, ["soporte@acme.example"]),
        ("Neem contact op met mijn collega piet@acme.example.", None, ["piet@acme.example"]),
        ("I'm not the right person, ask Jane (jane@acme.example).", None,
         ["jane@acme.example"]),
        ("My new address is me@new.example, please update your records.", None,
         ["me@new.example"]),
        ("Please contact me@acme.example or jane@acme.example.", "Me@Acme.example",
         ["jane@acme.example"]),
        ("Please contact jane@acme.example.\nFrom: bob@acme.example", None,
         ["jane@acme.example"]),
        ("Von: bob@acme.example\nGesendet: Montag", None, []),
        ("Please don't reply to noreply@acme.example, contact help@acme.example.", None,
         ["help@acme.example"]),
        ("Thanks!\n\nBob\nbob@acme.example", None, []),
        ("no address here", None, []),
    ],
)
def test_contacts(text: str, exclude: str | None, expected: list[str]) -> None:
    assert contacts(text, exclude=exclude) == expected


def test_contacts_exclude_accepts_many() -> None:
    text = "Please contact a@x.example, b@x.example or c@x.example."
    assert contacts(text, exclude=["A@x.example", "c@x.example"]) == ["b@x.example"]


# ------------------------------------------------------------------- references

@pytest.mark.parametrize(
    "text,expected",
    [
        ("Where is my order #12345?", ["12345"]),
        ("Bestellnummer 4711-0815 ist nicht angekommen.", ["4711-0815"]),
        ("Your ticket 98765 has been created.", ["98765"]),
        ("Case: 00123456", ["00123456"]),
        ("Ma commande n° 55521 n'est pas arrivée.", ["55521"]),
        ("Mi pedido 778899 no ha llegado.", ["778899"]),
        ("Mijn bestelling 443322 is beschadigd.", ["443322"]),
        ("[Ticket #98765] Re: your request", ["98765"]),
        ("Order number: A-99812, invoice no. INV-2026-0042", ["A-99812", "INV-2026-0042"]),
        ("Número de pedido: 123456 y pedido 123456", ["123456"]),
        ("Auftragsnummer 2026/00042", ["2026/00042"]),
        ("order of 12 books", []),
        ("I ordered it on Monday", []),
        ("", []),
    ],
)
def test_references(text: str, expected: list[str]) -> None:
    assert references(text) == expected


# left-the-company and wrong-person notices in five languages, signatures and quotes
MORE_CONTACT_CASES: list[tuple[str, list[str]]] = [
    (
        "I no longer work at Acme. Please direct all enquiries to sales@acme.example.",
        ["sales@acme.example"],
    ),
    (
        "John has left the company. His responsibilities have been taken over by Mary Smith "
        "(mary.smith@acme.example).",
        ["mary.smith@acme.example"],
    ),
    (
        "Ich bin nicht mehr bei der Firma tätig. Bitte richten Sie Ihre Anfrage an "
        "info@firma.example.",
        ["info@firma.example"],
    ),
    (
        "Meine Vertretung: Frau Müller, <mueller@firma.example>, Tel. 030 123456",
        ["mueller@firma.example"],
    ),
    (
        "I'm not the right contact for this – try marketing@acme.example.",
        ["marketing@acme.example"],
    ),
    ("Out of office. For anything urgent reach out to <ops@acme.example>.", ["ops@acme.example"]),
    (
        "Je ne fais plus partie de l'entreprise. Merci d'adresser vos messages à "
        "paul@societe.example.",
        ["paul@societe.example"],
    ),
    (
        "Ya no trabajo en la empresa. Por favor, envíe sus correos a ana@empresa.example.",
        ["ana@empresa.example"],
    ),
    (
        "Ik werk hier niet meer. Stuur uw e-mail naar info@bedrijf.example.",
        ["info@bedrijf.example"],
    ),
    ("Thanks!\n\n--\nJane Doe | Head of Sales\njane@acme.example | +1 555 0100", []),
    ("Please remove me.\n\nOn Mon, Nov 30, 2026 at 10:00 AM News <news@sender.example> wrote:", []),
    ("mailto:Bob@Acme.example please contact Bob@acme.example", ["bob@acme.example"]),
]


@pytest.mark.parametrize("text,expected", MORE_CONTACT_CASES)
def test_contacts_more_notices(text: str, expected: list[str]) -> None:
    assert contacts(text) == expected


MORE_REFERENCE_CASES: list[tuple[str, list[str]]] = [
    ("Re: Your order 100234 - where is it?", ["100234"]),
    ("Ticket-ID: TCK-554433", ["TCK-554433"]),
    ("Your request [#4521] has been received", ["4521"]),
    ("Ihre Anfrage wurde unter der Vorgangsnummer 2026120112 erfasst.", ["2026120112"]),
    ("Ich habe am 12.11. bestellt, Rechnung 88812 liegt bei.", ["88812"]),
    ("Votre demande n° 778812 a bien été reçue.", ["778812"]),
    ("Su solicitud número 445566 ha sido registrada.", ["445566"]),
    ("Uw zaaknummer is 992211.", ["992211"]),
    ("Case #00098765: we're on it", ["00098765"]),
    ("I ordered 3 items on 12 Nov", []),
    ("Call me at 555 123 4567", []),
]


@pytest.mark.parametrize("text,expected", MORE_REFERENCE_CASES)
def test_references_more(text: str, expected: list[str]) -> None:
    assert references(text) == expected


@pytest.mark.parametrize(
    "text,expected",
    [
        # the range began before the reply: its end still counts
        ("Je suis absente du 30/11 au 11/12.", D(2026, 12, 12)),
        ("Je suis absente du 30 novembre au 11 décembre.", D(2026, 12, 12)),
        ("Out 28.11.-4.12.", D(2026, 12, 5)),
        # "between ... and ..."
        ("I'm away between 7 and 11 December.", D(2026, 12, 12)),
        ("Ich bin zwischen dem 7. und 11. Dezember nicht da.", D(2026, 12, 12)),
        # a British date with its year: the US reading is in the past, the other weeks away
        ("Return date: 07/12/2026", D(2026, 12, 7)),
        ("I'm away for a week.", D(2026, 12, 8)),
        ("I'll be back in a week.", D(2026, 12, 8)),
        ("Ich bin bis inkl. 11.12. im Urlaub", D(2026, 12, 12)),
    ],
)
def test_ranges_begun_between_and_plausible_orders(text: str, expected: dt.date) -> None:
    assert return_date(text, GOT) == expected


def test_a_signature_label_is_no_contact_offer() -> None:
    assert contacts("Thanks\n--\nJane\nE-Mail: jane@acme.example") == []
    assert contacts("Please email jane@acme.example") == ["jane@acme.example"]


@pytest.mark.parametrize(
    "text,expected",
    [
        # "from / ab / vanaf / à partir du X" is a return only beside return words
        ("Ab dem 14. Dezember stehe ich Ihnen wieder zur Verfügung.", D(2026, 12, 14)),
        ("Ihre Nachricht wird ab dem 14.12. bearbeitet.", D(2026, 12, 14)),
        ("Your email will be answered from 14 December.", D(2026, 12, 14)),
        ("Vos messages seront traités à partir du 14 décembre.", D(2026, 12, 14)),
        ("Uw e-mail wordt vanaf 14 december behandeld.", D(2026, 12, 14)),
        ("Automatic reply: away from 3 December.", None),
        ("Ich bin ab dem 7.12. nicht erreichbar.", None),  # negated: the absence starts
        ("I'm currently out of the office until Monday (7 December).", D(2026, 12, 8)),
    ],
)
def test_from_means_back_only_beside_return_words(text: str, expected: dt.date | None) -> None:
    assert return_date(text, GOT) == expected


@pytest.mark.parametrize("text,expected", [
    # The dative ("ab nächster Woche") is next week too; "bis Ende nächster Woche" names no day.
    ("Ab nächster Woche wieder normal erreichbar.", D(2026, 12, 7)),
    ("Ich bin ab kommender Woche wieder im Büro.", D(2026, 12, 7)),
    ("Ich bin bis Freitag unterwegs. Ab nächster Woche wieder erreichbar.", D(2026, 12, 7)),
    ("Ich bin bis Ende nächster Woche im Urlaub.", None),
])
def test_next_week_in_the_dative(text: str, expected: dt.date | None) -> None:
    assert return_date(text, GOT, "de") == expected


@pytest.mark.parametrize("text,expected", [
    # A bare weekday after an absence with a date is the first such day after that absence.
    ("Ich bin bis einschließlich Mittwoch, 9. Dezember, im Urlaub. Ab Donnerstag bin ich "
     "wieder erreichbar.", D(2026, 12, 10)),
    ("I am on holiday until 18 December, back on Monday.", D(2026, 12, 21)),
    # ...but a weekday that already follows the absence stays as it is.
    ("Away until 3 December, back on Friday.", D(2026, 12, 4)),
])
def test_back_weekday_after_an_until_date(text: str, expected: dt.date) -> None:
    assert return_date(text, GOT, "") == expected
