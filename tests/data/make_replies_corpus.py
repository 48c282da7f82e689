"""Writes tests/data/replies_corpus.jsonl: the project's own labelled corpus of replies.

Run: ``.venv/bin/python tests/data/make_replies_corpus.py``. Deterministic (seed 17).

Every reply below was written by hand, one by one, in the style of real replies to
marketing and transactional mail (typos, one-liners, long rants, Outlook and Gmail
habits). A seeded pass then wraps a share of them the way mail clients do: a quoted
original newsletter (with its own "unsubscribe" link, in the language of the reply),
a signature with sign-off, a mobile footer, an HTML body; automatic replies come with
the headers their systems really set (Exchange, Gmail, Zendesk, vacation(1)) or none.
Labels (intent, auto, language) are the author's judgement of each reply.
"""

from __future__ import annotations

import html
import json
import random
from pathlib import Path

OUT = Path(__file__).with_name("replies_corpus.jsonl")

EXCH = {"Auto-Submitted": "auto-replied", "X-Auto-Response-Suppress": "All",
        "X-MS-Exchange-Inbox-Rules-Loop": "anna@firm.example"}
GMAIL_VAC = {"Auto-Submitted": "auto-replied", "Precedence": "bulk"}
VACATION = {"Precedence": "auto_reply", "X-Mailer": "vacation 1.2.7"}
XAUTO = {"X-Autoreply": "yes", "X-Autorespond": "yes"}
ZENDESK = {"Auto-Submitted": "auto-generated", "X-Mailer": "Zendesk Mailer"}
LIST = {"Precedence": "list", "List-Id": "<customers.lists.example>"}
BULK = {"Precedence": "bulk"}
NONE: dict[str, str] = {}

# (intent, auto, language, subject, body, headers)
CORE: list[tuple[str, bool, str, str, str, dict[str, str]]] = [
    # ---------------------------------------------------------------- out of office, EN
    ("out_of_office", True, "en", "Automatic reply: Your December newsletter",
     "Thank you for your email. I am out of the office until 18 December with limited "
     "access to email. For urgent matters please contact my colleague.", EXCH),
    ("out_of_office", True, "en", "Out of Office: Spring sale",
     "I'm currently on annual leave and will be back on Monday 6th January. "
     "Your message will not be forwarded.", NONE),
    ("out_of_office", True, "en", "Re: Webinar invitation",
     "Hi, I am on parental leave until March 2027. I will not be checking my emails "
     "during this time. Thanks, Sam", GMAIL_VAC),
    ("out_of_office", True, "en", "Auto: Your order update",
     "I'm away from my desk travelling on business until Thursday and will respond when "
     "I return.", VACATION),
    ("out_of_office", True, "en", "Re: Product news",
     "Hello,\nI'm out of office today and tomorrow. Back on Friday.\nKind regards", XAUTO),
    ("out_of_office", True, "en", "Automatic reply: Webinar",
     "I am currently on holiday without access to e-mail. I will return on the 3rd. In "
     "urgent cases please call the front desk.", NONE),
    ("out_of_office", True, "en", "Away: Re: Catalogue 2027",
     "Thanks for your message. I'm on sick leave until further notice and not checking "
     "email. For anything urgent, contact the team inbox.", {"Auto-Submitted": "auto-replied"}),
    ("out_of_office", True, "en", "OOO",
     "OOO until Jan 2 - happy holidays!", {"X-Autoreply": "YES"}),
    ("out_of_office", True, "en", "Automatic reply: Black Friday starts now",
     "I'm out of the office at a conference (limited connectivity) and will be back in "
     "the office on 14 November.", EXCH),
    ("out_of_office", True, "en", "Re: Your quote",
     "Thank you for your message. I am on maternity leave and will return to the office "
     "in September. Please direct urgent enquiries to the office manager.", NONE),
    ("out_of_office", True, "en", "Out of office - back 5 Jan",
     "Our office is closed for the holidays. I will be back on 5 January.", NONE),
    ("out_of_office", True, "en", "Automatic reply: Hello",
     "I'm currently out and will be back tomorrow.", EXCH),
    # ---------------------------------------------------------------- out of office, DE
    ("out_of_office", True, "de", "Abwesenheitsnotiz: Ihr Newsletter Dezember",
     "Vielen Dank für Ihre Nachricht. Ich bin bis einschließlich 18.12. nicht im Büro "
     "und habe keinen Zugriff auf meine E-Mails. In dringenden Fällen wenden Sie sich "
     "bitte an meine Kollegin.", EXCH),
    ("out_of_office", True, "de", "Automatische Antwort: Frühjahrsaktion",
     "Guten Tag, ich bin im Urlaub und ab dem 7. Januar wieder erreichbar. Ihre E-Mail "
     "wird nicht weitergeleitet.", NONE),
    ("out_of_office", True, "de", "Re: Einladung zum Webinar",
     "Ich befinde mich in Elternzeit bis Ende März. Ihre Nachricht wird nicht gelesen.",
     GMAIL_VAC),
    ("out_of_office", True, "de", "Abwesend: Ihre Bestellung",
     "Hallo, ich bin derzeit abwesend und ab Montag wieder im Büro. Viele Grüße", XAUTO),
    ("out_of_office", True, "de", "AW: Produktneuheiten",
     "Sehr geehrte Damen und Herren,\nich bin auf Dienstreise und bis 12.11. nur "
     "eingeschränkt erreichbar. Ihre Mail wird danach bearbeitet.", VACATION),
    ("out_of_office", True, "de", "Automatische Antwort: Angebot",
     "Ich bin vom 22.12. bis 02.01. außer Haus. Ab dem 3. Januar bin ich wieder für Sie "
     "da.", EXCH),
    ("out_of_office", True, "de", "Abwesenheitsnotiz",
     "Aufgrund von Betriebsurlaub ist unser Büro bis zum 6. Januar geschlossen.", NONE),
    ("out_of_office", True, "de", "Automatische Antwort: Sommeraktion",
     "Danke für Ihre E-Mail. Ich bin krankheitsbedingt abwesend. Ihre Nachricht wird "
     "nach meiner Rückkehr bearbeitet.", {"auto-submitted": "auto-replied"}),
    ("out_of_office", True, "de", "Urlaub",
     "Bin im Urlaub bis 15.08., danach wieder da.", NONE),
    ("out_of_office", True, "de", "Automatische Antwort: Einladung",
     "Ich bin bis 4. Mai im Mutterschutz. Bitte wenden Sie sich an das Sekretariat.", EXCH),
    # ---------------------------------------------------------------- out of office, FR ES NL
    ("out_of_office", True, "fr", "Réponse automatique : Notre newsletter",
     "Bonjour, je suis absente du bureau jusqu'au 3 janvier. Pour toute urgence, merci de "
     "contacter l'accueil.", EXCH),
    ("out_of_office", True, "fr", "Absent(e) : Offre de printemps",
     "Je suis actuellement en congés et serai de retour le lundi 12 mai. Cordialement.",
     NONE),
    ("out_of_office", True, "fr", "Re: Invitation",
     "Merci pour votre message. Je suis en vacances jusqu'au 20 août avec un accès "
     "limité à mes mails.", GMAIL_VAC),
    ("out_of_office", True, "fr", "Réponse automatique",
     "Je suis hors du bureau cette semaine, de retour le 9.", NONE),
    ("out_of_office", True, "es", "Respuesta automática: Novedades",
     "Gracias por su mensaje. Estoy fuera de la oficina hasta el 7 de enero.", EXCH),
    ("out_of_office", True, "es", "Fuera de la oficina",
     "Estaré de vacaciones hasta el lunes 15 de julio. Regresaré a la oficina ese día.",
     NONE),
    ("out_of_office", True, "es", "Re: Oferta",
     "Hola, estaré ausente hasta el 30 de abril con acceso limitado al correo.", XAUTO),
    ("out_of_office", True, "nl", "Automatisch antwoord: Nieuwsbrief",
     "Bedankt voor uw bericht. Ik ben afwezig tot en met 5 januari en heb beperkt "
     "toegang tot mijn e-mail.", EXCH),
    ("out_of_office", True, "nl", "Afwezig",
     "Ik ben met vakantie en vanaf maandag 14 augustus weer terug op kantoor.", NONE),
    ("out_of_office", True, "nl", "Re: Aanbieding",
     "Ik ben niet op kantoor tot 2 juni. Uw e-mail wordt niet doorgestuurd.", VACATION),
    # ---------------------------------------------------------------- other auto replies
    ("auto_reply_other", True, "en", "[Ticket #48213] Re: Your invoice",
     "Hello,\n\nWe have received your request and a member of our support team will get "
     "back to you within 24 hours. Your ticket number is 48213.\n\nThis is an automated "
     "message.", ZENDESK),
    ("auto_reply_other", True, "en", "Re: Newsletter",
     "This mailbox is not monitored. Please do not reply to this email. For help visit "
     "our help centre.", {"Auto-Submitted": "auto-generated"}),
    ("auto_reply_other", True, "en", "Re: Partnership",
     "Thank you for your email. Please note that John is no longer with the company. "
     "Your message has not been forwarded.", NONE),
    ("auto_reply_other", True, "en", "Please verify your email",
     "I use a spam filter that requires senders to verify that you're human. Click the "
     "link below to confirm your address and your message will be delivered.",
     {"Auto-Submitted": "auto-replied"}),
    ("auto_reply_other", True, "en", "Re: Offer",
     "Thank you for contacting Acme Support. We've received your message and we will "
     "respond within 2 business days. Case number: 0098-221.", NONE),
    ("auto_reply_other", True, "en", "Automatic reply: Q3 update",
     "Hello, this address is no longer in use. Please update your records.", EXCH),
    ("auto_reply_other", True, "en", "Re: Hello",
     "Thanks for writing! This is an automatic reply to confirm we got your email. We "
     "answer all messages in the order received.", XAUTO),
    ("auto_reply_other", True, "en", "Received: Re: Summer sale", "Your message was "
     "received. This inbox is not checked regularly.", {"auto-submitted": "auto-generated"}),
    ("auto_reply_other", True, "de", "[#55612] Ihre Anfrage",
     "Guten Tag,\nwir haben Ihre Anfrage erhalten und melden uns innerhalb von 48 Stunden. "
     "Ihre Ticketnummer lautet 55612.\nDiese E-Mail wurde automatisch erstellt.",
     ZENDESK),
    ("auto_reply_other", True, "de", "Automatische Antwort: Newsletter",
     "Frau Berger ist nicht mehr in unserem Unternehmen tätig. Ihre E-Mail wird nicht "
     "weitergeleitet.", EXCH),
    ("auto_reply_other", True, "de", "Re: Angebot",
     "Dieses Postfach wird nicht überwacht. Bitte antworten Sie nicht auf diese E-Mail.",
     NONE),
    ("auto_reply_other", True, "de", "Eingangsbestätigung",
     "Vielen Dank für Ihre Nachricht. Wir werden uns schnellstmöglich bei Ihnen melden. "
     "Dies ist eine automatische Nachricht.", {"Auto-Submitted": "auto-replied"}),
    ("auto_reply_other", True, "de", "Re: Einladung",
     "Herr Keller hat das Unternehmen verlassen. Bitte wenden Sie sich an info@firma.example.",
     NONE),
    ("auto_reply_other", True, "fr", "Réponse automatique",
     "Nous avons bien reçu votre message et vous répondrons dans les meilleurs délais.",
     {"Auto-Submitted": "auto-replied"}),
    ("auto_reply_other", True, "fr", "Re: Offre",
     "Madame Petit ne fait plus partie de notre société. Message automatique.", NONE),
    ("auto_reply_other", True, "es", "Respuesta automática",
     "Hemos recibido su mensaje. Le responderemos lo antes posible.", XAUTO),
    ("auto_reply_other", True, "es", "Re: Novedades",
     "El señor Ruiz ya no trabaja en la empresa. Este es un mensaje automático.", NONE),
    ("auto_reply_other", True, "nl", "Automatisch antwoord",
     "We hebben uw bericht ontvangen en nemen zo snel mogelijk contact met u op.", EXCH),
    ("auto_reply_other", True, "nl", "Re: Nieuwsbrief",
     "Mevrouw de Vries is niet meer werkzaam bij ons bedrijf.", NONE),
    # header-only automatic replies (no telling words)
    ("auto_reply_other", True, "en", "Re: Your newsletter",
     "Your email has been delivered to the recipient's inbox and will be read soon.",
     {"Auto-Submitted": "auto-replied"}),
    ("auto_reply_other", True, "", "Re: News", "", {"X-Autoreply": "yes"}),
    ("auto_reply_other", True, "de", "Re: Ihre Bestellung",
     "Diese Nachricht wurde an die Poststelle weitergegeben.",
     {"Auto-Submitted": "auto-generated"}),
    # ---------------------------------------------------------------- unsubscribe, EN
    ("unsubscribe_request", False, "en", "Re: December deals",
     "Please remove me from your mailing list.", NONE),
    ("unsubscribe_request", False, "en", "unsubscribe", "unsubscribe", NONE),
    ("unsubscribe_request", False, "en", "Re: Weekly tips",
     "Hi, I'd like to unsubscribe from these emails please. Thanks", NONE),
    ("unsubscribe_request", False, "en", "Re: New arrivals",
     "Stop emailing me. I have asked twice already.", NONE),
    ("unsubscribe_request", False, "en", "Re: Last chance!",
     "take me off this list", NONE),
    ("unsubscribe_request", False, "en", "Re: Our summer collection",
     "Hello,\nI no longer want to receive these newsletters, please delete my email "
     "address from your database.\nRegards, Tom", NONE),
    ("unsubscribe_request", False, "en", "Re: Don't miss out",
     "Please unsubscribe me. The link in your mail doesn't work.", NONE),
    ("unsubscribe_request", False, "en", "Re: Invitation",
     "I moved abroad, no more emails please.", LIST),
    ("unsubscribe_request", False, "en", "Re: Hello from Acme",
     "Could you please take my address off your distribution list? Thank you.", NONE),
    ("unsubscribe_request", False, "en", "Remove",
     "Remove me from all lists. Thank you.", BULK),
    ("unsubscribe_request", False, "en", "Re: Flash sale",
     "Please opt me out of all marketing emails.", NONE),
    # ---------------------------------------------------------------- unsubscribe, DE
    ("unsubscribe_request", False, "de", "AW: Newsletter Dezember",
     "Bitte melden Sie mich von Ihrem Newsletter ab.", NONE),
    ("unsubscribe_request", False, "de", "Abmelden", "Abmelden bitte.", NONE),
    ("unsubscribe_request", False, "de", "AW: Angebote der Woche",
     "Guten Tag, ich möchte keine weiteren E-Mails von Ihnen erhalten. Bitte löschen Sie "
     "meine Adresse aus dem Verteiler.", NONE),
    ("unsubscribe_request", False, "de", "Re: Frühjahrsaktion",
     "Hallo, bitte nehmen Sie mich aus Ihrem Verteiler. Danke", NONE),
    ("unsubscribe_request", False, "de", "AW: Einladung",
     "Bitte tragen Sie mich aus Ihrer Mailingliste aus, ich bin umgezogen.", NONE),
    ("unsubscribe_request", False, "de", "Keine Newsletter mehr",
     "Ich will keine Newsletter mehr bekommen.", NONE),
    ("unsubscribe_request", False, "de", "AW: Sommer-Sale",
     "Bitte schicken Sie mir keine Werbung mehr.", NONE),
    ("unsubscribe_request", False, "de", "AW: Ihre Vorteile",
     "Hiermit bestelle ich den Newsletter ab.", NONE),
    # ---------------------------------------------------------------- unsubscribe, FR ES NL
    ("unsubscribe_request", False, "fr", "RE: Nouveautés",
     "Bonjour, merci de me désabonner de votre newsletter.", NONE),
    ("unsubscribe_request", False, "fr", "Désinscription",
     "Je ne souhaite plus recevoir vos mails. Merci de me retirer de votre liste.", NONE),
    ("unsubscribe_request", False, "es", "RE: Ofertas",
     "Por favor, darme de baja de su lista de correo.", NONE),
    ("unsubscribe_request", False, "es", "Baja",
     "No quiero recibir más correos de ustedes. Gracias.", NONE),
    ("unsubscribe_request", False, "nl", "RE: Nieuwsbrief",
     "Graag afmelden voor de nieuwsbrief, bedankt.", NONE),
    ("unsubscribe_request", False, "nl", "Uitschrijven",
     "Ik wil geen e-mails meer van jullie ontvangen. Verwijder mij uit het bestand.", NONE),
    # ---------------------------------------------------------------- complaint
    ("complaint", False, "en", "Re: Limited offer",
     "This is spam. I never signed up for your emails and I have reported you.", NONE),
    ("complaint", False, "en", "Re: Newsletter",
     "How did you get my email address? I did not give you permission to contact me. "
     "Under GDPR Article 15 I request all data you hold about me.", NONE),
    ("complaint", False, "en", "Re: Deals",
     "STOP SPAMMING ME!!! This is the fifth time. Remove me or I'm calling my lawyer.", NONE),
    ("complaint", False, "en", "Re: Hello",
     "I never subscribed to this. Unsolicited mail is illegal here. Delete my data now.",
     NONE),
    ("complaint", False, "en", "Re: Final reminder",
     "Your company keeps sending unsolicited email. I'll be reporting this to the data "
     "protection authority.", NONE),
    ("complaint", False, "en", "Re: Offer",
     "Absolutely ridiculous. I unsubscribed months ago and you are still spamming me.",
     NONE),
    ("complaint", False, "de", "AW: Newsletter",
     "Ich habe mich nie für Ihren Newsletter angemeldet. Woher haben Sie meine Adresse? "
     "Ich fordere Auskunft nach Art. 15 DSGVO.", NONE),
    ("complaint", False, "de", "AW: Werbung",
     "Das ist Spam! Unterlassen Sie das, sonst schalte ich meinen Anwalt ein.", NONE),
    ("complaint", False, "de", "AW: Angebot",
     "Unerwünschte Werbung ohne meine Einwilligung. Ich werde mich bei der "
     "Datenschutzbehörde beschweren.", NONE),
    ("complaint", False, "de", "AW: Nochmal",
     "Eine Frechheit. Ich habe mich dreimal abgemeldet und bekomme immer noch Spam von "
     "Ihnen.", NONE),
    ("complaint", False, "fr", "RE: Offre",
     "C'est du spam. Je ne me suis jamais inscrit. Conformément au RGPD, supprimez mes "
     "données.", NONE),
    ("complaint", False, "en", "Re: Spring sale",
     "Reported as spam. Who sold you my address?", NONE),
    # ---------------------------------------------------------------- interested, EN
    ("interested", False, "en", "Re: Meet our new analytics suite",
     "Sounds interesting - can you send me the pricing for a team of 20?", NONE),
    ("interested", False, "en", "Re: Quick question",
     "Yes, I'd love to see a demo. Are you free next Tuesday afternoon?", NONE),
    ("interested", False, "en", "Re: Partnership opportunity",
     "Hi Mark, thanks for reaching out. We're actually looking at this for Q1. Tell me "
     "more about the integration with Salesforce.", NONE),
    ("interested", False, "en", "Re: Following up",
     "Interested. Let's schedule a call this week.", NONE),
    ("interested", False, "en", "Re: Free trial",
     "Sounds good, please sign us up for the trial.", NONE),
    ("interested", False, "en", "Re: Our offer",
     "How much does the premium plan cost per year? We have about 50 seats.", NONE),
    ("interested", False, "en", "Re: Introduction",
     "Happy to chat. Could you send over a brochure and some more details first?", NONE),
    ("interested", False, "en", "Re: New service",
     "This is exactly what we need. Can we book a meeting with your sales team?", NONE),
    ("interested", False, "en", "Re: Catering offer",
     "Please send me a quote for 120 guests on the 14th.", NONE),
    ("interested", False, "en", "Re: Webinar",
     "Count me in! Looking forward to it.", NONE),
    ("interested", False, "en", "Re: Upgrade",
     "We are definitely interested in the enterprise tier, call me tomorrow morning.",
     NONE),
    # ---------------------------------------------------------------- interested, DE
    ("interested", False, "de", "AW: Neue Analyse-Software",
     "Klingt gut! Können Sie mir ein Angebot für 20 Nutzer schicken?", NONE),
    ("interested", False, "de", "AW: Kurze Frage",
     "Ja, gerne. Wir hätten Interesse an einer Demo nächste Woche.", NONE),
    ("interested", False, "de", "AW: Ihr Angebot",
     "Was kostet die Premium-Version im Jahr? Wir sind ca. 40 Mitarbeiter.", NONE),
    ("interested", False, "de", "AW: Einladung",
     "Das klingt spannend, ich würde gerne mehr erfahren. Rufen Sie mich gerne an.", NONE),
    ("interested", False, "de", "AW: Partnerschaft",
     "Hallo Herr Weber, wir sind interessiert. Lassen Sie uns einen Termin vereinbaren.",
     NONE),
    ("interested", False, "de", "AW: Testversion",
     "Gerne mehr Informationen zu den Preisen und der Einrichtung.", NONE),
    ("interested", False, "fr", "RE: Offre",
     "Je suis intéressé, pouvez-vous m'envoyer plus d'informations ?", NONE),
    ("interested", False, "es", "RE: Oferta",
     "Estoy interesado, ¿me pueden enviar más información?", NONE),
    # ---------------------------------------------------------------- not interested
    ("not_interested", False, "en", "Re: Meet our new analytics suite",
     "Not interested, thanks.", NONE),
    ("not_interested", False, "en", "Re: Quick question",
     "Thanks for reaching out but we're all set with our current provider.", NONE),
    ("not_interested", False, "en", "Re: Following up",
     "No thank you. We already use a competitor and are happy with it.", NONE),
    ("not_interested", False, "en", "Re: Partnership",
     "Appreciate it, but this isn't a good fit for us right now.", NONE),
    ("not_interested", False, "en", "Re: Demo?",
     "We're not looking for a new tool at the moment. Maybe next year.", NONE),
    ("not_interested", False, "en", "Re: Offer",
     "No.", NONE),
    ("not_interested", False, "en", "Re: Checking in",
     "I'm not really interested in this, but thanks for thinking of us.", NONE),
    ("not_interested", False, "en", "Re: Upgrade",
     "We'll pass on this one, thanks.", NONE),
    ("not_interested", False, "de", "AW: Neue Software",
     "Kein Interesse, danke.", NONE),
    ("not_interested", False, "de", "AW: Kurze Frage",
     "Vielen Dank, aber wir haben bereits eine Lösung im Einsatz.", NONE),
    ("not_interested", False, "de", "AW: Angebot",
     "Nein danke, brauchen wir derzeit nicht.", NONE),
    ("not_interested", False, "de", "AW: Nachfrage",
     "Das ist für uns leider nicht relevant.", NONE),
    ("not_interested", False, "de", "AW: Demo",
     "Zur Zeit kein Bedarf. Melden Sie sich gerne im nächsten Jahr wieder.", NONE),
    ("not_interested", False, "fr", "RE: Offre",
     "Merci, mais je ne suis pas intéressé.", NONE),
    # ---------------------------------------------------------------- wrong person
    ("wrong_person", False, "en", "Re: IT security audit",
     "I'm not the right person for this. Please contact our IT manager instead.", NONE),
    ("wrong_person", False, "en", "Re: Marketing tools",
     "You've got the wrong person - I work in finance. Sarah in marketing handles this.",
     NONE),
    ("wrong_person", False, "en", "Re: Partnership",
     "I've forwarded your email to our head of partnerships, she is responsible for this.",
     NONE),
    ("wrong_person", False, "en", "Re: Hello Mike",
     "Mike left us last year. You should talk to Priya, she is the right person now.", NONE),
    ("wrong_person", False, "en", "Re: Your proposal",
     "This is not my area. Try the procurement team.", NONE),
    ("wrong_person", False, "de", "AW: IT-Sicherheit",
     "Dafür bin ich nicht zuständig. Bitte wenden Sie sich an unsere IT-Abteilung.", NONE),
    ("wrong_person", False, "de", "AW: Einkauf",
     "Ich bin nicht der richtige Ansprechpartner. Zuständig ist Frau Schulz aus dem "
     "Einkauf.", NONE),
    ("wrong_person", False, "de", "AW: Ihre Anfrage",
     "Ich habe Ihre Mail an meinen Kollegen weitergeleitet, er meldet sich bei Ihnen.",
     NONE),
    ("wrong_person", False, "de", "AW: Marketing",
     "Sie haben die falsche Person erwischt. Mein Kollege Herr Braun ist zuständig.", NONE),
    # ---------------------------------------------------------------- support
    ("support_question", False, "en", "Re: Your order has shipped",
     "My order still hasn't arrived and the tracking link shows nothing. Can you check?",
     NONE),
    ("support_question", False, "en", "Re: Your receipt",
     "I was charged twice for the same order. Please refund the second payment.", NONE),
    ("support_question", False, "en", "Re: Welcome to Acme",
     "I can't log in to my account, the password reset email never comes.", NONE),
    ("support_question", False, "en", "Re: Invoice 2026-11",
     "Could you send me the invoice with our VAT number on it?", NONE),
    ("support_question", False, "en", "Re: Order confirmation",
     "I received the wrong size. How do I return the item?", NONE),
    ("support_question", False, "en", "Re: Your subscription",
     "How can I change the delivery address for my next parcel?", NONE),
    ("support_question", False, "en", "Re: Account update",
     "The app doesn't work since the update, I get an error message on login.", NONE),
    ("support_question", False, "en", "Re: Thanks for your purchase",
     "The package arrived damaged. What should I do?", NONE),
    ("support_question", False, "de", "AW: Ihre Bestellung wurde versandt",
     "Meine Bestellung ist noch nicht angekommen. Die Sendungsverfolgung zeigt seit "
     "einer Woche nichts an.", NONE),
    ("support_question", False, "de", "AW: Ihre Rechnung",
     "Mir wurde der Betrag doppelt abgebucht. Bitte um Rückerstattung.", NONE),
    ("support_question", False, "de", "AW: Willkommen",
     "Ich kann mich nicht anmelden, das Passwort wird nicht akzeptiert.", NONE),
    ("support_question", False, "de", "AW: Lieferung",
     "Ich habe die falsche Größe bekommen. Wie funktioniert der Umtausch?", NONE),
    ("support_question", False, "de", "AW: Ihr Konto",
     "Können Sie mir die Rechnung noch einmal als PDF schicken?", NONE),
    ("support_question", False, "fr", "RE: Votre commande",
     "Ma commande n'est toujours pas arrivée, pouvez-vous vérifier ?", NONE),
    ("support_question", False, "es", "RE: Su pedido",
     "Mi pedido no ha llegado todavía. ¿Pueden ayudarme?", NONE),
    # ---------------------------------------------------------------- other
    ("other", False, "en", "Re: Our story", "Thanks, nice article!", NONE),
    ("other", False, "en", "Re: Photos from the event",
     "Great pictures, I found myself in the third one :)", NONE),
    ("other", False, "en", "Re: Happy holidays",
     "Merry Christmas to you and the team as well!", NONE),
    ("other", False, "en", "Re: Survey",
     "Done, filled in the form just now.", NONE),
    ("other", False, "", "Re: Community update",
     "Ok", NONE),
    ("other", False, "de", "AW: Frohe Weihnachten",
     "Danke, Ihnen auch schöne Feiertage!", NONE),
    ("other", False, "de", "AW: Unser Magazin",
     "Sehr schöner Artikel über die Alpen, hat mir gefallen.", NONE),
    ("other", False, "de", "AW: Umfrage",
     "Habe den Fragebogen ausgefüllt. Gruß", NONE),
    # ---------------------------------------------------------------- tricky negatives
    ("other", False, "en", "Re: Weekly tips",
     "Please don't unsubscribe me, I love these tips! Keep them coming.", NONE),
    ("other", False, "en", "Re: Newsletter",
     "I almost clicked unsubscribe by accident, glad I didn't. Great issue this week.",
     NONE),
    ("other", False, "de", "AW: Newsletter",
     "Bitte melden Sie mich nicht ab, ich lese den Newsletter sehr gerne.", NONE),
    ("other", False, "en", "Re: Mailing list",
     "My colleague wants to receive this too - how do we add her?", LIST),
    ("other", False, "en", "Re: Weekly digest",
     "Nice list of resources, bookmarked.", LIST),
    ("other", False, "en", "Re: Weekly digest",
     "Thanks, forwarded it to the whole team, very useful.", BULK),
    ("not_interested", False, "en", "Re: Webinar invite",
     "I'm not interested in the webinar but keep sending the newsletter.", NONE),
    ("interested", False, "en", "Re: Product launch",
     "Not sure yet, but I'm interested - can you send more details?", NONE),
    ("other", False, "de", "AW: Aktion",
     "Ich war letzte Woche im Urlaub und habe die Aktion verpasst, schade!", NONE),
    ("support_question", False, "en", "Re: Vacation rentals",
     "I booked a vacation rental through you and haven't received the invoice yet.", NONE),
]

# A second batch, written afterwards to check the rules on wording they had not seen.
CORE += [
    ('out_of_office', True, 'en', 'Automatic reply: Offer',
     "Hi there, thanks for your note. I'm taking some time off and will "
     'respond after the 10th.', {}),
    ('out_of_office', True, 'en', 'Re: Offer',
     'I am currently out of the country with intermittent access to email. '
     'I will reply upon my return on 4 Feb.', {}),
    ('out_of_office', True, 'en', 'Automatic reply: Your December offer',
     "I'm attending a trade show this week and will have limited access to "
     "email. I'll respond when I'm back.", {'Auto-Submitted': 'auto-replied'}),
    ('out_of_office', True, 'en', 'Out of Office Re: News',
     'Please note I no longer work Fridays. I will respond to your email on Monday.', {}),
    ('out_of_office', True, 'en', 'Autoreply',
     "I'm off work until the 2nd of January.", {'X-Autoreply': 'yes'}),
    ('out_of_office', True, 'en', 'Re: news',
     'I am out of office until 12/01/2027.', {}),
    ('out_of_office', True, 'en', 'Automatic reply: Your December offer',
     "Thank you for your email. I'm currently on leave returning 3 March.", {}),
    ('out_of_office', True, 'de', 'Automatische Antwort: Ihr Angebot',
     'Vielen Dank für Ihre E-Mail. Ich bin vom 20.12.2026 bis '
     'einschließlich 06.01.2027 nicht erreichbar. Ihre E-Mail wird nicht '
     'weitergeleitet.', {}),
    ('out_of_office', True, 'de', 'Abwesenheitsnotiz: Neu eingetroffen',
     'Guten Tag, ich bin zurzeit nicht im Hause. Ab dem 15.01. bin ich wieder für Sie da.', {}),
    ('out_of_office', True, 'de', 'AW: Ihr Dezember-Angebot',
     'Ich bin bis zum 3. März in Elternzeit. Bitte wenden Sie sich an '
     'meinen Kollegen.', {'Auto-Submitted': 'auto-replied'}),
    ('out_of_office', True, 'de', 'Automatische Antwort',
     'Ich bin derzeit auf einer Messe und nur eingeschränkt erreichbar.', {}),
    ('out_of_office', True, 'fr', 'Absence du bureau',
     "Bonjour, je suis en déplacement jusqu'au 15 mars. Je vous répondrai à mon retour.", {}),
    ('out_of_office', True, 'es', 'Ausencia',
     'Me encuentro de vacaciones hasta el 2 de septiembre.', {}),
    ('out_of_office', True, 'nl', 'Afwezigheidsbericht',
     'Ik ben tot en met vrijdag afwezig en lees mijn mail niet.', {}),
    ('auto_reply_other', True, 'en', 'Re: Sale',
     "Thank you for reaching out! We've got your message and will get back "
     'to you as soon as possible. Please allow 1-2 business days.',
     {'Auto-Submitted': 'auto-generated'}),
    ('auto_reply_other', True, 'en', 'Request received: Re: Offer',
     'Your request (12345) has been received and is being reviewed by our support staff.', {}),
    ('auto_reply_other', True, 'en', 'Re: Your December offer',
     'The email address you wrote to is no longer active. Please resend to info@x.example.', {}),
    ('auto_reply_other', True, 'de', 'Ihre Nachricht',
     'Vielen Dank für Ihre E-Mail. Wir bearbeiten Ihr Anliegen so schnell '
     'wie möglich. Bitte antworten Sie nicht auf diese automatisch '
     'generierte Nachricht.', {}),
    ('auto_reply_other', True, 'de', 'AW: Neu eingetroffen',
     'Diese E-Mail-Adresse ist nicht mehr aktiv.', {}),
    ('unsubscribe_request', False, 'en', 'Re: New in: winter collection',
     'Pls remove my email from your list', {}),
    ('unsubscribe_request', False, 'en', 'Re: Quick question',
     'Kindly unsubscribe this email address from your mailings.', {}),
    ('unsubscribe_request', False, 'en', 'Re: Following up on my last email',
     "I don't want to get these emails anymore.", {}),
    ('unsubscribe_request', False, 'en', 'Re: Webinar on Thursday',
     'Stop sending me these.', {}),
    ('unsubscribe_request', False, 'en', 'Re: Your account',
     'Please stop sending me emails.', {}),
    ('unsubscribe_request', False, 'en', 'Re: 20% off this weekend',
     'Can you take me off your mailing list please', {}),
    ('unsubscribe_request', False, 'en', 'Re: Your December offer',
     'Unsubscribe me please.', {}),
    ('unsubscribe_request', False, 'en', 'Re: New in: winter collection',
     'please cancel my newsletter subscription', {}),
    ('unsubscribe_request', False, 'de', 'AW: Kurze Frage',
     'Bitte entfernen Sie mich aus Ihrem Verteiler.', {}),
    ('unsubscribe_request', False, 'de', 'AW: Nachfassen',
     'Ich möchte mich vom Newsletter abmelden.', {}),
    ('unsubscribe_request', False, 'de', 'AW: Webinar am Donnerstag',
     'Bitte keine Mails mehr an diese Adresse.', {}),
    ('unsubscribe_request', False, 'de', 'AW: Ihr Dezember-Angebot',
     'Bitte streichen Sie meine Adresse aus Ihrer Liste.', {}),
    ('unsubscribe_request', False, 'de', 'AW: Neu eingetroffen',
     'Ich möchte diese E-Mails nicht mehr erhalten.', {}),
    ('unsubscribe_request', False, 'fr', 'RE: Nouveautés de décembre',
     'Veuillez me retirer de votre liste de diffusion.', {}),
    ('unsubscribe_request', False, 'es', 'RE: Ofertas de invierno',
     'Por favor, elimínenme de su lista de correos.', {}),
    ('unsubscribe_request', False, 'nl', 'RE: Nieuwsbrief december',
     'Haal mij alstublieft van de mailinglijst.', {}),
    ('complaint', False, 'en', 'Re: Quick question',
     'I have never done business with you. This is harassment. Stop.', {}),
    ('complaint', False, 'en', 'Re: Following up on my last email',
     'I will report this to the ICO if you email me again.', {}),
    ('complaint', False, 'de', 'AW: Kurze Frage',
     'Ich habe Ihnen nie meine Einwilligung gegeben. Das ist ein Verstoß gegen die DSGVO.', {}),
    ('interested', False, 'en', 'Re: Webinar on Thursday',
     'Yes please!', {}),
    ('interested', False, 'en', 'Re: Your account',
     'Could we jump on a quick call Thursday?', {}),
    ('interested', False, 'en', 'Re: 20% off this weekend',
     'What would the onboarding look like for a company our size?', {}),
    ('interested', False, 'en', 'Re: Your December offer',
     "Yes, I'd like to learn more.", {}),
    ('interested', False, 'de', 'AW: Nachfassen',
     'Ja, bitte melden Sie sich bei mir.', {}),
    ('interested', False, 'de', 'AW: Webinar am Donnerstag',
     'Schicken Sie mir gerne Unterlagen zu.', {}),
    ('not_interested', False, 'en', 'Re: New in: winter collection',
     'Thanks but no thanks.', {}),
    ('not_interested', False, 'en', 'Re: Quick question',
     'We have no budget for this.', {}),
    ('not_interested', False, 'en', 'Re: Following up on my last email',
     "Please don't follow up, we've decided to go another direction.", {}),
    ('not_interested', False, 'de', 'AW: Ihr Dezember-Angebot',
     'Danke, aber das passt nicht zu uns.', {}),
    ('not_interested', False, 'de', 'AW: Neu eingetroffen',
     'Wir haben uns für einen anderen Anbieter entschieden.', {}),
    ('wrong_person', False, 'en', 'Re: Webinar on Thursday',
     'I think you meant to email someone else.', {}),
    ('wrong_person', False, 'en', 'Re: Your account',
     "I'm not the one handling vendor relations, you'll want to reach out to our COO.", {}),
    ('wrong_person', False, 'de', 'AW: Kurze Frage',
     'Da sind Sie bei mir falsch, bitte an den Vertrieb wenden.', {}),
    ('support_question', False, 'en', 'Re: 20% off this weekend',
     'Hi, I ordered on the 3rd and nothing has shipped yet. When will it ship?', {}),
    ('support_question', False, 'en', 'Re: Your December offer',
     'How do I change my email preferences? I only want the monthly digest.', {}),
    ('support_question', False, 'en', 'Re: New in: winter collection',
     "The discount code from this email isn't working at checkout.", {}),
    ('support_question', False, 'de', 'AW: Nachfassen',
     'Der Gutscheincode funktioniert bei mir nicht.', {}),
    ('support_question', False, 'de', 'AW: Webinar am Donnerstag',
     'Wann wird meine Bestellung geliefert?', {}),
    ('other', False, 'en', 'Re: Quick question',
     'Haha love the new design', {}),
    ('other', False, 'en', 'Re: Following up on my last email',
     'Happy new year to you too!', {}),
    ('other', False, 'en', 'Re: Webinar on Thursday',
     'Cool, thanks for the update.', {}),
    ('other', False, 'de', 'AW: Ihr Dezember-Angebot',
     'Vielen Dank für die Info!', {}),
    ('other', False, 'en', 'Re: Your account',
     'I was out of the office last week, sorry for the delay. The photos look great.', {}),
    ('other', False, 'en', 'Re: 20% off this weekend',
     "I tried to unsubscribe a while ago but changed my mind, glad I'm still on the list.", {}),
]

# A third batch: out-of-office styles seen in the wild, unsubscribe look-alikes.
CORE += [
    ('out_of_office', True, 'en', 'Automatic reply: Winter sale',
     'Hello,\n\nThank you for your message. I am currently out of the office '
     'with no access to email, returning Monday 12 January 2027.\n\nIf your '
     'matter is urgent, please contact reception on 020 7946 0000.\n\nBest '
     'wishes,\nClaire',
     {'Auto-Submitted': 'auto-replied', 'X-Auto-Response-Suppress': 'All'}),
    ('out_of_office', True, 'en', 'Automatic reply: Winter sale',
     "Thanks for your email. I'm OOO from 23 Dec - 2 Jan. Responses will be "
     'delayed.',
     {'Auto-Submitted': 'auto-replied', 'X-Auto-Response-Suppress': 'All'}),
    ('out_of_office', True, 'en', 'Re: Winter sale',
     'I am away from the office until Wednesday 5th with no access to emails. '
     'I will respond to your email upon my return.',
     {}),
    ('out_of_office', True, 'en', 'Out of office',
     "Hi! I'm on holiday until the 14th and not reading email. If it can't "
     'wait, email support@x.example.',
     {}),
    ('out_of_office', True, 'en', 'Automatic reply: Winter sale',
     "I'm working remotely with limited availability this week and will reply "
     'next week.',
     {'Auto-Submitted': 'auto-replied', 'X-Auto-Response-Suppress': 'All'}),
    ('out_of_office', True, 'en', 'Re: Webinar',
     'Our offices are closed from 24 December to 1 January. We will reply to '
     'your message when we reopen.',
     {'Auto-Submitted': 'auto-replied'}),
    ('out_of_office', True, 'en', 'Automatic reply',
     'I am on bereavement leave and will be back on the 20th.',
     {'Auto-Submitted': 'auto-replied', 'X-Auto-Response-Suppress': 'All'}),
    ('out_of_office', True, 'en', 'Automatic reply',
     'Please note that I am currently on a reduced schedule (Mon-Wed). I will '
     'reply on my next working day.',
     {'Auto-Submitted': 'auto-replied', 'X-Auto-Response-Suppress': 'All'}),
    ('out_of_office', True, 'de', 'Automatische Antwort: Winteraktion',
     'Sehr geehrte Damen und Herren,\n\nvielen Dank für Ihre Nachricht. Ich bin '
     'bis zum 12.01.2027 nicht im Büro und kann Ihre E-Mail erst danach '
     'beantworten. In dringenden Fällen wenden Sie sich bitte an '
     'info@firma.example.\n\nMit freundlichen Grüßen\nThomas Meier',
     {'Auto-Submitted': 'auto-replied', 'X-Auto-Response-Suppress': 'All'}),
    ('out_of_office', True, 'de', 'Abwesend',
     'Hallo, ich bin vom 24.12. bis 02.01. im Weihnachtsurlaub. Ab 3.1. bin '
     'ich zurück.',
     {}),
    ('out_of_office', True, 'de', 'Automatische Antwort',
     'Ich bin leider bis Freitag krankgeschrieben. Ihre E-Mail wird nicht '
     'weitergeleitet.',
     {'Auto-Submitted': 'auto-replied', 'X-Auto-Response-Suppress': 'All'}),
    ('out_of_office', True, 'de', 'Automatische Antwort',
     'Unser Büro ist zwischen den Jahren geschlossen. Ab dem 5. Januar sind '
     'wir wieder für Sie da.',
     {'Auto-Submitted': 'auto-replied', 'X-Auto-Response-Suppress': 'All'}),
    ('out_of_office', True, 'de', 'Re: Winteraktion',
     'Vielen Dank für Ihre Mail. Ich bin aktuell im Homeoffice nur '
     'eingeschränkt erreichbar und melde mich nächste Woche.',
     {}),
    ('out_of_office', True, 'de', 'Automatische Antwort',
     'Ich befinde mich im Urlaub und bin ab dem 10.08. wieder im Haus.',
     {'Auto-Submitted': 'auto-replied', 'X-Auto-Response-Suppress': 'All'}),
    ('out_of_office', True, 'fr', 'Réponse automatique : Soldes',
     "Bonjour,\nJe suis en congé jusqu'au 6 janvier inclus. En cas d'urgence, "
     'vous pouvez contacter mon collègue.\nBien cordialement',
     {'Auto-Submitted': 'auto-replied', 'X-Auto-Response-Suppress': 'All'}),
    ('out_of_office', True, 'fr', 'Absence',
     'Je serai absent du 1er au 15 août. Je traiterai votre message à mon '
     'retour.',
     {}),
    ('out_of_office', True, 'es', 'Respuesta automática',
     'Estoy de vacaciones sin acceso al correo. Volveré el 8 de enero.',
     {'Auto-Submitted': 'auto-replied', 'X-Auto-Response-Suppress': 'All'}),
    ('out_of_office', True, 'nl', 'Automatisch antwoord',
     'Ik ben op vakantie tot en met 10 januari. Vanaf maandag 13 januari ben '
     'ik weer bereikbaar.',
     {'Auto-Submitted': 'auto-replied', 'X-Auto-Response-Suppress': 'All'}),
    ('out_of_office', True, 'nl', 'Automatisch antwoord',
     'Momenteel ben ik afwezig. Ik lees mijn e-mail na terugkomst.',
     {'Auto-Submitted': 'auto-replied', 'X-Auto-Response-Suppress': 'All'}),
    ('auto_reply_other', True, 'en', 'Re: Winter sale',
     'Hi, thanks for getting in touch! Our team typically replies within one '
     'business day. In the meantime, check out our FAQ.',
     {'Auto-Submitted': 'auto-replied'}),
    ('auto_reply_other', True, 'en', 'Undeliverable?',
     'This email address is no longer monitored. Please send your enquiry to '
     'hello@x.example.',
     {}),
    ('auto_reply_other', True, 'en', 'Re: Winter sale',
     'Sarah has left Northwind. For sales questions contact '
     'sales@northwind.example.',
     {'Auto-Submitted': 'auto-replied', 'X-Auto-Response-Suppress': 'All'}),
    ('auto_reply_other', True, 'de', 'AW: Winteraktion',
     'Diese E-Mail-Adresse wird nicht mehr genutzt. Bitte schreiben Sie an '
     'info@x.example.',
     {}),
    ('auto_reply_other', True, 'de', 'Ihre Anfrage #1234',
     'Danke für Ihre Nachricht! Ihr Ticket wurde angelegt. Wir antworten in '
     'der Regel innerhalb eines Werktages.',
     {'Auto-Submitted': 'auto-generated'}),
    ('unsubscribe_request', False, 'en', 'Re: Winter sale',
     'Unsubscribe',
     {}),
    ('unsubscribe_request', False, 'en', 'Re: Winter sale',
     'UNSUBSCRIBE!!',
     {}),
    ('unsubscribe_request', False, 'en', 'Re: Winter sale',
     "Please take me off your list, I'm not a customer anymore.",
     {}),
    ('unsubscribe_request', False, 'en', 'Re: Winter sale',
     'Delete me from your list.',
     {}),
    ('unsubscribe_request', False, 'en', 'Re: Winter sale',
     'please stop',
     {}),
    ('unsubscribe_request', False, 'de', 'AW: Winteraktion',
     'Abmelden!',
     {}),
    ('unsubscribe_request', False, 'de', 'AW: Winteraktion',
     'Bitte nehmen Sie mich von der Liste.',
     {}),
    ('unsubscribe_request', False, 'de', 'AW: Winteraktion',
     'Ich bitte um Löschung meiner E-Mail-Adresse aus Ihrem Verteiler.',
     {}),
    ('unsubscribe_request', False, 'de', 'AW: Winteraktion',
     'Newsletter abbestellen bitte',
     {}),
    ('unsubscribe_request', False, 'en', 'RE: Soldes',
     'STOP',
     {}),
    ('unsubscribe_request', False, 'fr', 'RE: Soldes',
     "Désinscrivez-moi s'il vous plaît.",
     {}),
    ('unsubscribe_request', False, 'es', 'RE: Rebajas',
     'Quiero darme de baja.',
     {}),
    ('unsubscribe_request', False, 'nl', 'RE: Uitverkoop',
     'Graag uitschrijven.',
     {}),
    ('support_question', False, 'en', 'Re: Winter sale',
     'How do I unsubscribe my colleague? She left last month.',
     {}),
    ('support_question', False, 'en', 'Re: Winter sale',
     'I unsubscribed but I still need order confirmation emails, will I still '
     'get those?',
     {}),
    ('other', False, 'en', 'Re: Winter sale',
     "Don't remove me please, I still want the deals!",
     {}),
    ('other', False, 'en', 'Re: Winter sale',
     'Love these, please keep me on the list.',
     {}),
    ('not_interested', False, 'en', 'Re: Winter sale',
     'No thanks, not this time.',
     {}),
    ('interested', False, 'en', 'Re: Winter sale',
     "Is the sale also valid in store? I'd like to buy the blue jacket.",
     {}),
    ('support_question', False, 'de', 'AW: Winteraktion',
     'Gilt der Rabatt auch für bereits bestellte Ware? Meine Bestellnummer '
     'ist 100234.',
     {}),
    ('other', False, 'de', 'AW: Winteraktion',
     'Ich lese Ihren Newsletter immer gerne, weiter so!',
     {}),
    ('other', False, 'de', 'AW: Winteraktion',
     'Bitte nicht abmelden, ich will den Newsletter weiter bekommen.',
     {}),
    ('complaint', False, 'en', 'Re: Winter sale',
     'This is the 4th email this week. This is harassment and I am reporting '
     'you as spam.',
     {}),
    ('complaint', False, 'de', 'AW: Winteraktion',
     'Sie belästigen mich seit Wochen mit Werbung. Ich habe dem nie '
     'zugestimmt!',
     {}),
    ('wrong_person', False, 'en', 'Re: Winter sale',
     "Hi, I think you have the wrong email address - I'm not Peter.",
     {}),
    ('wrong_person', False, 'de', 'AW: Winteraktion',
     'Sie haben die falsche E-Mail-Adresse, ich bin nicht Frau Müller.',
     {}),
]

# A fourth batch: quoting styles (Apple Mail, Outlook in EN/FR, Gmail HTML, bottom posting)
# around mixed intents.
CORE += [
    ('interested', False, 'en', 'Re: Winter sale',
     "Do you ship to Canada? If so I'd like to order two of the wool "
     'coats.\n\nOn 1 Dec 2026, at 09:14, Acme News <news@acme.example> '
     'wrote:\n\n> Winter sale: 30% off\n> Unsubscribe: https://acme.example/u/1\n',
     {}),
    ('other', False, 'en', 'Re: Winter sale',
     'Thanks!\n\n________________________________\nFrom: Acme News '
     '<news@acme.example>\nSent: 01 December 2026 09:14\nTo: Tom\nSubject: '
     'Winter sale\n\nWinter sale! To stop receiving these emails, unsubscribe '
     'here.\n',
     {}),
    ('other', False, 'fr', 'RE: Soldes',
     'Merci beaucoup, très belle collection.\n\nDe : Acme News '
     '<news@acme.example>\nEnvoyé : lundi 1 décembre 2026 09:14\nÀ : '
     'marie@x.example\nObjet : Soldes\n\nPour vous désabonner cliquez ici.\n',
     {}),
    ('unsubscribe_request', False, 'fr', 'RE: Soldes',
     "Merci de ne plus m'envoyer de mails.\n\nDe : Acme News "
     '<news@acme.example>\nEnvoyé : lundi 1 décembre 2026 09:14\nÀ : '
     'marie@x.example\nObjet : Soldes\n\nPour vous désabonner cliquez ici.\n',
     {}),
    ('other', False, 'de', 'AW: Winteraktion',
     'Super Angebot, danke!\n\nAm 01.12.2026 um 09:14 schrieb Acme News '
     '<news@acme.example>:\n\n> Winteraktion\n> Abmelden: '
     'https://acme.example/u/1\n',
     {}),
    ('unsubscribe_request', False, 'de', 'AW: Winteraktion',
     'Bitte abmelden. Danke.\n\nAm 01.12.2026 um 09:14 schrieb Acme News '
     '<news@acme.example>:\n\n> Winteraktion\n> Abmelden: '
     'https://acme.example/u/1\n',
     {}),
    ('support_question', False, 'en', 'Re: Winter sale',
     'Hi,\n\nI placed an order last Tuesday (confirmation attached) and it '
     'still shows as processing. Could someone look into it? I need it before '
     'Christmas.\n\nThanks,\nMaria\n\n________________________________\nFrom: Acme '
     'News <news@acme.example>\nSent: 01 December 2026 09:14\nTo: Tom\nSubject: '
     'Winter sale\n\nWinter sale! To stop receiving these emails, unsubscribe '
     'here.\n',
     {}),
    ('complaint', False, 'en', 'Re: Winter sale',
     'I have asked you FOUR times to stop. I never gave you my email. If I '
     'receive one more message I will file a complaint with the '
     'regulator.\n\nOn 1 Dec 2026, at 09:14, Acme News <news@acme.example> '
     'wrote:\n\n> Winter sale: 30% off\n> Unsubscribe: https://acme.example/u/1\n',
     {}),
    ('wrong_person', False, 'en', 'Re: Winter sale',
     'Hi - this is a shared inbox for accounts payable. Please direct '
     'marketing emails to our marketing team at marketing@x.example '
     'instead.\n\n________________________________\nFrom: Acme News '
     '<news@acme.example>\nSent: 01 December 2026 09:14\nTo: Tom\nSubject: '
     'Winter sale\n\nWinter sale! To stop receiving these emails, unsubscribe '
     'here.\n',
     {}),
    ('interested', False, 'de', 'AW: Winteraktion',
     'Hallo,\ngibt es den Mantel auch in Größe 52? Dann würde ich zwei '
     'bestellen.\nGruß Peter\n\nAm 01.12.2026 um 09:14 schrieb Acme News '
     '<news@acme.example>:\n\n> Winteraktion\n> Abmelden: '
     'https://acme.example/u/1\n',
     {}),
    ('not_interested', False, 'en', 'Re: Winter sale',
     "Thanks but we've already bought from another supplier this year.\n\nOn 1 "
     'Dec 2026, at 09:14, Acme News <news@acme.example> wrote:\n\n> Winter '
     'sale: 30% off\n> Unsubscribe: https://acme.example/u/1\n',
     {}),
    ('not_interested', False, 'de', 'AW: Winteraktion',
     'Danke, kein Bedarf.\n\nAm 01.12.2026 um 09:14 schrieb Acme News '
     '<news@acme.example>:\n\n> Winteraktion\n> Abmelden: '
     'https://acme.example/u/1\n',
     {}),
    ('out_of_office', True, 'en', 'Automatic reply: Winter sale',
     "I'm out until Monday.\n\n\n\n________________________________\nFrom: Acme "
     'News <news@acme.example>\nSent: 01 December 2026 09:14\nTo: Tom\nSubject: '
     'Winter sale\n\nWinter sale! To stop receiving these emails, unsubscribe '
     'here.\n',
     {'Auto-Submitted': 'auto-replied'}),
    ('out_of_office', True, 'de', 'Automatische Antwort: Winteraktion',
     'Ich bin bis 5.1. nicht da.\n\nAm 01.12.2026 um 09:14 schrieb Acme News '
     '<news@acme.example>:\n\n> Winteraktion\n> Abmelden: '
     'https://acme.example/u/1\n',
     {'Auto-Submitted': 'auto-replied'}),
    ('support_question', False, 'en', 'Re: Winter sale',
     'Your unsubscribe link gives a 404 error. Can you fix it?\n\nOn 1 Dec '
     '2026, at 09:14, Acme News <news@acme.example> wrote:\n\n> Winter sale: '
     '30% off\n> Unsubscribe: https://acme.example/u/1\n',
     {}),
    ('unsubscribe_request', False, 'en', 'Re: Winter sale',
     "Your unsubscribe link doesn't work, so please remove me manually.\n\nOn 1 "
     'Dec 2026, at 09:14, Acme News <news@acme.example> wrote:\n\n> Winter '
     'sale: 30% off\n> Unsubscribe: https://acme.example/u/1\n',
     {}),
    ('other', False, 'en', 'Re: Winter sale',
     '> Winter sale: 30% off\n\nLove it, shared with my sister!\n\n> Unsubscribe: '
     'https://acme.example/u/1',
     {}),
    ('interested', False, 'en', 'Re: Winter sale',
     "<div dir='ltr'>Yes, please send me the catalogue.</div><br><div "
     "class='gmail_quote'><div dir='ltr' class='gmail_attr'>On Mon, Dec 1, "
     '2026 at 9:14 AM Acme News &lt;news@acme.example&gt; '
     "wrote:<br></div><blockquote class='gmail_quote'>Winter "
     'sale<br>Unsubscribe here</blockquote></div>',
     {}),
    ('unsubscribe_request', False, 'en', 'Re: Winter sale',
     '<html><body><p>Remove me from this list.</p><div><b>From:</b> Acme '
     'News<br><b>Sent:</b> Monday<br><b>Subject:</b> Winter '
     'sale</div><p>Unsubscribe</p></body></html>',
     {}),
    ('other', False, 'en', 'Re: Winter sale',
     "<html><body><p>Nice offer.</p><div style='border-top:1px "
     "solid'><b>From:</b> Acme News<br><b>Sent:</b> Monday<br>Unsubscribe "
     'from this list</div></body></html>',
     {}),
    ('complaint', False, 'de', 'AW: Winteraktion',
     'Hören Sie auf, mir ständig Werbung zu schicken! Ich habe nie '
     'eingewilligt.\n\nAm 01.12.2026 um 09:14 schrieb Acme News '
     '<news@acme.example>:\n\n> Winteraktion\n> Abmelden: '
     'https://acme.example/u/1\n',
     {}),
    ('unsubscribe_request', False, 'es', 'RE: Rebajas',
     'Por favor no me envíen más correos.',
     {}),
    ('unsubscribe_request', False, 'nl', 'RE: Uitverkoop',
     'Stop met het sturen van deze mails aub.',
     {}),
    ('unsubscribe_request', False, 'en', 'Re: Winter sale',
     "I'd prefer not to receive these marketing emails. Thanks.",
     {}),
    ('unsubscribe_request', False, 'de', 'AW: Winteraktion',
     'Ich möchte keine Werbung mehr von Ihnen erhalten.',
     {}),
]

# A fifth batch: everyday German and English business replies.
CORE += [
    ('unsubscribe_request', False, 'de', 'AW: Newsletter',
     'Kein Interesse mehr an Ihrem Newsletter, bitte austragen.',
     {}),
    ('not_interested', False, 'de', 'AW: Unser Angebot für Sie',
     'Hallo Herr Schmidt, danke für die Nachricht, aber im Moment haben wir '
     'keinen Bedarf. Viele Grüße',
     {}),
    ('interested', False, 'de', 'AW: Unser Angebot für Sie',
     'Hallo Herr Schmidt, das passt gut, wir planen gerade genau so etwas. '
     'Können wir nächste Woche telefonieren?',
     {}),
    ('interested', False, 'de', 'AW: Software-Demo',
     'Ja, Donnerstag 14 Uhr passt mir gut.',
     {}),
    ('support_question', False, 'de', 'AW: Ihr Abo',
     'Wie kann ich mein Abo kündigen? Ich finde die Option nicht.',
     {}),
    ('support_question', False, 'de', 'AW: Versandbestätigung',
     'Hallo, das Paket wurde laut DHL zugestellt, ist aber nicht bei mir '
     'angekommen.',
     {}),
    ('wrong_person', False, 'de', 'AW: Kooperation',
     'Hallo, ich bin hier nur Praktikant. Am besten schreiben Sie direkt '
     'unserer Geschäftsführerin.',
     {}),
    ('complaint', False, 'de', 'AW: Gewinnspiel',
     'Ich verbitte mir diese Werbung. Ich werde das der Verbraucherzentrale '
     'melden.',
     {}),
    ('other', False, 'de', 'AW: Einladung Sommerfest',
     'Wir kommen gerne zu zweit!',
     {}),
    ('other', False, 'de', 'AW: Kundenumfrage',
     'Erledigt.',
     {}),
    ('out_of_office', True, 'de', 'Abwesenheit',
     'Guten Tag,\nich bin ab dem 23.12. im Weihnachtsurlaub. Ihre Nachricht '
     'wird ab dem 07.01. bearbeitet.\nFreundliche Grüße',
     {}),
    ('auto_reply_other', True, 'de', 'Ihre Nachricht an den Kundenservice',
     'Sehr geehrte Kundin, sehr geehrter Kunde, vielen Dank für Ihre E-Mail. '
     'Aufgrund des hohen Aufkommens kann die Bearbeitung bis zu 5 Werktage '
     'dauern.',
     {'Auto-Submitted': 'auto-generated'}),
    ('unsubscribe_request', False, 'en', 'Re: Our weekly digest',
     'Hey, can you unsubscribe me? Thanks!',
     {}),
    ('unsubscribe_request', False, 'en', 'Re: Our weekly digest',
     "I've unsubscribed three times now. Please just take me off.",
     {}),
    ('not_interested', False, 'en', 'Re: Intro call?',
     "Appreciate the persistence but we're going to pass for now.",
     {}),
    ('not_interested', False, 'en', 'Re: Intro call?',
     'Not a fit for us, sorry.',
     {}),
    ('interested', False, 'en', 'Re: Intro call?',
     'Sure, how about Wednesday at 3pm?',
     {}),
    ('interested', False, 'en', 'Re: Intro call?',
     "Send over a calendar link and I'll grab a slot.",
     {}),
    ('support_question', False, 'en', 'Re: Your order #4411',
     'Can I still change the shipping address? I moved last week.',
     {}),
    ('support_question', False, 'en', 'Re: Membership renewal',
     'I want to cancel my membership, it renewed automatically without asking.',
     {}),
    ('wrong_person', False, 'en', 'Re: Intro call?',
     "I don't handle purchasing - that would be Dan Smith, I've cc'd him here.",
     {}),
    ('complaint', False, 'en', 'Re: Last chance',
     'You people are relentless. I never asked for this garbage. Reporting to '
     'my provider as spam.',
     {}),
    ('other', False, 'en', 'Re: Team offsite photos',
     "lol that's me in the back",
     {}),
    ('other', False, 'en', 'Re: Your feedback matters',
     'I gave 5 stars, keep it up.',
     {}),
    ('out_of_office', True, 'en', 'Automatic reply: Intro call?',
     "Thanks for your email. I'm currently travelling with limited access to "
     'email and will respond as soon as possible.',
     {'Auto-Submitted': 'auto-replied', 'X-Auto-Response-Suppress': 'All'}),
    ('out_of_office', True, 'en', 'Re: Intro call?',
     "I am currently on paternity leave. I'll be back at work on 2 Feb.",
     {}),
    ('auto_reply_other', True, 'en', 'Auto-response',
     'Thank you for contacting Northwind. This is an auto-response confirming '
     'receipt of your email.',
     {}),
    ('auto_reply_other', True, 'en', 'Re: Intro call?',
     "Hi, I've moved on from Contoso and this inbox will be deactivated soon.",
     {'Auto-Submitted': 'auto-replied'}),
]

# A sixth batch: out-of-office notes in five languages (subject-only ones too), look-alikes.
CORE += [
    ('out_of_office', True, 'en', 'Automatic reply: Holiday gift guide',
     "I'm out of the office from Dec 22 through Jan 3 and will have no access "
     "to email. I'll get back to you when I'm back.",
     {'Auto-Submitted': 'auto-replied', 'X-Auto-Response-Suppress': 'All'}),
    ('out_of_office', True, 'en', 'Re: Holiday gift guide',
     "Hello, I'm away until 4 January. Speak soon!",
     {'Auto-Submitted': 'auto-replied'}),
    ('out_of_office', True, 'en', 'Automatic reply: Holiday gift guide',
     'Thank you for your message. I am currently out on medical leave.',
     {'Auto-Submitted': 'auto-replied', 'X-Auto-Response-Suppress': 'All'}),
    ('out_of_office', True, 'en', 'On vacation',
     'Gone fishing until Monday. Back then!',
     {'Auto-Submitted': 'auto-replied'}),
    ('out_of_office', True, 'en', 'Automatic reply',
     "I'm at the beach until 2 August with no laptop. Your email will not be "
     'forwarded.',
     {'Auto-Submitted': 'auto-replied', 'X-Auto-Response-Suppress': 'All'}),
    ('out_of_office', True, 'en', 'Out of the office until 9 Jan',
     'Happy holidays!',
     {}),
    ('out_of_office', True, 'en', 'Automatic reply: Holiday gift guide',
     'Please note: I will be unavailable from 23/12 to 02/01 inclusive.',
     {'Auto-Submitted': 'auto-replied', 'X-Auto-Response-Suppress': 'All'}),
    ('out_of_office', True, 'en', 'Re: Holiday gift guide',
     "I'm currently on a sabbatical and checking email only occasionally. "
     "I'll be back in April.",
     {'Auto-Submitted': 'auto-replied'}),
    ('out_of_office', True, 'de', 'Automatische Antwort: Geschenkideen',
     'Ich bin vom 22.12. bis 03.01. nicht erreichbar. Ab dem 4.1. bin ich '
     'wieder im Dienst.',
     {'Auto-Submitted': 'auto-replied', 'X-Auto-Response-Suppress': 'All'}),
    ('out_of_office', True, 'de', 'Abwesenheitsnotiz: Geschenkideen',
     'Hallo,\n\nich bin derzeit im Mutterschutz und anschließend in Elternzeit. '
     'Bitte wenden Sie sich an meine Vertretung.',
     {}),
    ('out_of_office', True, 'de', 'Automatische Antwort',
     'Ich nehme vom 1. bis 14. August Urlaub und lese meine Mails nicht.',
     {'Auto-Submitted': 'auto-replied', 'X-Auto-Response-Suppress': 'All'}),
    ('out_of_office', True, 'de', 'Re: Geschenkideen',
     'Ich bin bis einschließlich Freitag auf Geschäftsreise.',
     {'Auto-Submitted': 'auto-replied'}),
    ('out_of_office', True, 'de', 'Automatische Antwort: Geschenkideen',
     'Bin gerade unterwegs und erst Montag wieder am Schreibtisch.',
     {'Auto-Submitted': 'auto-replied', 'X-Auto-Response-Suppress': 'All'}),
    ('out_of_office', True, 'de', 'Abwesend bis 10.01.',
     'Frohe Feiertage!',
     {}),
    ('out_of_office', True, 'fr', 'Réponse automatique : Idées cadeaux',
     "Bonjour, je suis en congé maternité jusqu'au 1er mars. Merci de "
     'contacter ma collègue.',
     {'Auto-Submitted': 'auto-replied', 'X-Auto-Response-Suppress': 'All'}),
    ('out_of_office', True, 'fr', "Absent jusqu'au 5 janvier",
     'Bonnes fêtes !',
     {}),
    ('out_of_office', True, 'fr', 'Réponse automatique',
     'Je suis actuellement en vacances, je reviendrai le 3 septembre.',
     {'Auto-Submitted': 'auto-replied', 'X-Auto-Response-Suppress': 'All'}),
    ('out_of_office', True, 'es', 'Respuesta automática: Ideas de regalo',
     'Hola, estoy de baja por maternidad hasta marzo.',
     {'Auto-Submitted': 'auto-replied', 'X-Auto-Response-Suppress': 'All'}),
    ('out_of_office', True, 'es', 'Fuera de la oficina hasta el 7',
     'Felices fiestas.',
     {}),
    ('out_of_office', True, 'es', 'Respuesta automática',
     'Gracias por su correo. Me encuentro fuera de la oficina y volveré el 10 '
     'de enero.',
     {'Auto-Submitted': 'auto-replied', 'X-Auto-Response-Suppress': 'All'}),
    ('out_of_office', True, 'nl', 'Automatisch antwoord: Cadeau-ideeën',
     'Ik ben met ouderschapsverlof tot 1 maart.',
     {'Auto-Submitted': 'auto-replied', 'X-Auto-Response-Suppress': 'All'}),
    ('out_of_office', True, 'nl', 'Afwezig tot 6 januari',
     'Fijne feestdagen!',
     {}),
    ('out_of_office', True, 'nl', 'Automatisch antwoord',
     'Ik ben vandaag niet aanwezig. Morgen ben ik weer bereikbaar.',
     {'Auto-Submitted': 'auto-replied', 'X-Auto-Response-Suppress': 'All'}),
    ('auto_reply_other', True, 'fr', 'Accusé de réception',
     'Votre demande a bien été enregistrée sous le numéro 12345. Nous vous '
     'répondrons sous 48 heures.',
     {'Auto-Submitted': 'auto-generated'}),
    ('auto_reply_other', True, 'es', 'Hemos recibido tu mensaje',
     'Gracias por escribirnos. Te responderemos en un plazo de 24 horas.',
     {'Auto-Submitted': 'auto-generated'}),
    ('auto_reply_other', True, 'nl', 'Ontvangstbevestiging',
     'Bedankt voor uw e-mail. Wij reageren binnen twee werkdagen.',
     {'Auto-Submitted': 'auto-generated'}),
    ('auto_reply_other', True, 'de', 'Re: Geschenkideen',
     'Diese Adresse ist nicht mehr gültig. Bitte nutzen Sie künftig '
     'service@firma.example.',
     {}),
    ('other', False, 'en', 'Re: Holiday gift guide',
     'Got the gift guide, bought the scarf for my mum. Thanks for the idea!',
     {}),
    ('other', False, 'en', 'Re: Holiday gift guide',
     'Haha, my vacation budget is gone after this sale.',
     {}),
    ('other', False, 'de', 'AW: Geschenkideen',
     'Schöne Ideen! Ich war gerade im Urlaub und habe fast alles verpasst.',
     {}),
    ('not_interested', False, 'en', 'Re: Holiday gift guide',
     "We're closing the business next month so no need to send us offers.",
     {}),
    ('support_question', False, 'en', 'Re: Holiday gift guide',
     'Can I get a gift receipt with my order?',
     {}),
    ('support_question', False, 'de', 'AW: Geschenkideen',
     'Kann ich die Geschenkverpackung nachträglich zu meiner Bestellung '
     'hinzufügen?',
     {}),
    ('interested', False, 'en', 'Re: Holiday gift guide',
     "Do you offer corporate gifting? We'd need 200 boxes.",
     {}),
]

# A seventh batch: more ways to ask to stop (five languages), fan mail, polite refusals.
CORE += [
    ('other', False, 'en', 'Re: Your weekly recipes',
     'Made the lasagne last night, the kids loved it!',
     {}),
    ('other', False, 'en', 'Re: Your weekly recipes',
     'Could you add more vegetarian options in future issues?',
     {}),
    ('other', False, 'en', 'Re: Your weekly recipes',
     "I'm not going to unsubscribe, relax :) just wanted to say the new "
     'layout is hard to read.',
     {}),
    ('other', False, 'en', 'Re: Your weekly recipes',
     'Stop the press, this is the best newsletter ever.',
     {}),
    ('other', False, 'de', 'AW: Rezepte der Woche',
     'Das Rezept war super, meine Familie war begeistert.',
     {}),
    ('other', False, 'de', 'AW: Rezepte der Woche',
     'Könnten Sie mehr vegetarische Rezepte bringen?',
     {}),
    ('other', False, 'en', 'Re: Your weekly recipes',
     'Who writes these? Hilarious intro this week.',
     {}),
    ('unsubscribe_request', False, 'en', 'Re: Your weekly recipes',
     "I've tried to unsubscribe online but it keeps failing - please "
     'unsubscribe me manually.',
     {}),
    ('unsubscribe_request', False, 'en', 'Re: Your weekly recipes',
     'I am no longer interested in receiving this newsletter.',
     {}),
    ('unsubscribe_request', False, 'en', 'Re: Your weekly recipes',
     'please remove',
     {}),
    ('unsubscribe_request', False, 'en', 'Re: Your weekly recipes',
     'Please discontinue sending me these emails.',
     {}),
    ('unsubscribe_request', False, 'de', 'AW: Rezepte der Woche',
     'Bitte von der Liste nehmen.',
     {}),
    ('unsubscribe_request', False, 'de', 'AW: Rezepte der Woche',
     'Ich möchte den Newsletter nicht mehr beziehen.',
     {}),
    ('unsubscribe_request', False, 'de', 'AW: Rezepte der Woche',
     'Bitte stellen Sie die Zusendung ein.',
     {}),
    ('unsubscribe_request', False, 'fr', 'RE: Recettes',
     'Je souhaite me désinscrire de cette liste.',
     {}),
    ('unsubscribe_request', False, 'fr', 'RE: Recettes',
     "Arrêtez de m'envoyer des emails s'il vous plaît.",
     {}),
    ('unsubscribe_request', False, 'es', 'RE: Recetas',
     'Quiero cancelar la suscripción al boletín.',
     {}),
    ('unsubscribe_request', False, 'es', 'RE: Recetas',
     'Dejen de enviarme correos, por favor.',
     {}),
    ('unsubscribe_request', False, 'nl', 'RE: Recepten',
     'Wilt u mij uit uw mailinglijst verwijderen?',
     {}),
    ('unsubscribe_request', False, 'nl', 'RE: Recepten',
     'Ik wil me afmelden voor deze nieuwsbrief.',
     {}),
    ('complaint', False, 'en', 'Re: Your weekly recipes',
     "I did not consent to this. You're violating GDPR. I'll be filing a "
     'complaint.',
     {}),
    ('complaint', False, 'en', 'Re: Your weekly recipes',
     "This is unsolicited commercial email and it's illegal under CAN-SPAM.",
     {}),
    ('complaint', False, 'fr', 'RE: Recettes',
     "Je n'ai jamais donné mon accord. C'est illégal, je vais porter plainte "
     'à la CNIL.',
     {}),
    ('complaint', False, 'es', 'RE: Recetas',
     'Esto es spam. Nunca me suscribí.',
     {}),
    ('complaint', False, 'nl', 'RE: Recepten',
     'Dit is spam, ik heb me nooit aangemeld.',
     {}),
    ('not_interested', False, 'en', 'Re: Catering for your team',
     "We don't do events anymore, thanks anyway.",
     {}),
    ('not_interested', False, 'en', 'Re: Catering for your team',
     'Nope.',
     {}),
    ('not_interested', False, 'de', 'AW: Catering für Ihr Team',
     'Danke, aber wir machen das intern.',
     {}),
    ('interested', False, 'en', 'Re: Catering for your team',
     'Great timing! We have an event on the 12th for 40 people, what would '
     'that cost?',
     {}),
    ('interested', False, 'de', 'AW: Catering für Ihr Team',
     'Wir hätten Bedarf für 30 Personen am 12.12. Was würde das kosten?',
     {}),
    ('wrong_person', False, 'en', 'Re: Catering for your team',
     "I'm the receptionist, I'll pass this on to our office manager.",
     {}),
    ('support_question', False, 'en', 'Re: Your weekly recipes',
     "I paid for the premium recipes but can't see them in my account.",
     {}),
    ('support_question', False, 'de', 'AW: Rezepte der Woche',
     'Ich habe das Kochbuch bezahlt, aber keine Bestätigung erhalten.',
     {}),
]

# An eighth batch, written before the rules for it: sales replies, shop questions.
CORE += [
    ('out_of_office', True, 'en', 'Automatic reply: New arrivals',
     "Hi,\nThanks for your email! I'm currently out of the office on a family "
     "holiday, returning 28 August. I'll have sporadic access to email.\nBest, "
     'Kim',
     {'Auto-Submitted': 'auto-replied', 'X-Auto-Response-Suppress': 'All'}),
    ('out_of_office', True, 'en', 'Automatic reply: New arrivals',
     'I will be out of the office starting Friday, 19 December, and will '
     'return on Monday, 5 January.',
     {'Auto-Submitted': 'auto-replied', 'X-Auto-Response-Suppress': 'All'}),
    ('out_of_office', True, 'en', 'Re: New arrivals',
     "I'm currently working reduced hours and will respond to your email "
     'within 3 working days.',
     {'Auto-Submitted': 'auto-replied'}),
    ('out_of_office', True, 'de', 'Automatische Antwort: Neuheiten',
     'Vielen Dank für Ihre E-Mail. Ich bin am 24. und 31.12. nicht im Büro. '
     'Ab dem 2. Januar bin ich wieder erreichbar.',
     {'Auto-Submitted': 'auto-replied', 'X-Auto-Response-Suppress': 'All'}),
    ('out_of_office', True, 'de', 'Automatische Antwort: Neuheiten',
     'Ich bin vom 10. bis 21. Juli im Sommerurlaub. Ihre E-Mail wird nicht '
     'automatisch weitergeleitet.',
     {'Auto-Submitted': 'auto-replied', 'X-Auto-Response-Suppress': 'All'}),
    ('auto_reply_other', True, 'en', 'Thanks for contacting us',
     'Hi there,\n\nThanks for getting in touch! This is just a quick note to '
     "let you know we've received your email. One of our team will be in "
     'touch shortly.\n\nThe Northwind Team',
     {'Auto-Submitted': 'auto-generated'}),
    ('auto_reply_other', True, 'de', 'Eingang Ihrer Nachricht',
     'Guten Tag, hiermit bestätigen wir den Eingang Ihrer Nachricht. Wir '
     'melden uns so schnell wie möglich.',
     {'Auto-Submitted': 'auto-replied'}),
    ('unsubscribe_request', False, 'en', 'Re: New arrivals',
     'hi please unsubscribe me from all your emails thx',
     {}),
    ('unsubscribe_request', False, 'en', 'Re: New arrivals',
     'Kindly stop sending me promotional emails.',
     {}),
    ('unsubscribe_request', False, 'en', 'Re: New arrivals',
     "I'd like to be removed from your mailing list.",
     {}),
    ('unsubscribe_request', False, 'en', 'Re: New arrivals',
     'Take my email off your list please.',
     {}),
    ('unsubscribe_request', False, 'de', 'AW: Neuheiten',
     'Bitte löschen Sie meine E-Mail-Adresse aus Ihrem System.',
     {}),
    ('unsubscribe_request', False, 'de', 'AW: Neuheiten',
     'Ich wünsche keine weitere Zusendung von Newslettern.',
     {}),
    ('unsubscribe_request', False, 'de', 'AW: Neuheiten',
     'Hallo, bitte schicken Sie mir nichts mehr. Danke',
     {}),
    ('complaint', False, 'en', 'Re: New arrivals',
     'How many times do I have to ask? Stop emailing me or I will report you.',
     {}),
    ('complaint', False, 'de', 'AW: Neuheiten',
     'Ich habe Ihnen keine Erlaubnis gegeben, mir Werbung zu schicken. '
     'Löschen Sie sofort meine Daten gemäß DSGVO.',
     {}),
    ('interested', False, 'en', 'Re: New arrivals',
     'Hi! Is the green sofa still available? Would love to order it.',
     {}),
    ('interested', False, 'en', 'Re: Partnership',
     'Hi Tom, good timing actually. Can you share a deck and some case '
     'studies?',
     {}),
    ('interested', False, 'en', 'Re: Partnership',
     "Let me loop in my CTO, we'd like to explore this further.",
     {}),
    ('interested', False, 'de', 'AW: Partnerschaft',
     'Hallo, das hört sich interessant an. Schicken Sie mir gern eine '
     'Präsentation.',
     {}),
    ('interested', False, 'de', 'AW: Partnerschaft',
     'Gerne können wir uns dazu austauschen. Wann passt es Ihnen?',
     {}),
    ('unsubscribe_request', False, 'en', 'Re: Partnership',
     "Please take us off your prospect list, we're not a buyer for this.",
     {}),
    ('not_interested', False, 'en', 'Re: Partnership',
     "Thank you for the offer, but we'll have to decline.",
     {}),
    ('not_interested', False, 'de', 'AW: Partnerschaft',
     'Danke für das Angebot, wir verzichten.',
     {}),
    ('not_interested', False, 'de', 'AW: Partnerschaft',
     'Ist bei uns aktuell kein Thema.',
     {}),
    ('wrong_person', False, 'en', 'Re: Partnership',
     "Wrong Tom I'm afraid - I work at a bakery!",
     {}),
    ('wrong_person', False, 'de', 'AW: Partnerschaft',
     'Hallo, dafür ist meine Kollegin Frau Lang verantwortlich, ich habe sie '
     'in Kopie gesetzt.',
     {}),
    ('support_question', False, 'en', 'Re: New arrivals',
     'Ordered a lamp 2 weeks ago, still no shipping confirmation. Order 55121.',
     {}),
    ('support_question', False, 'en', 'Re: New arrivals',
     'The size chart on your site seems wrong, which size should I get for 90 '
     'cm chest?',
     {}),
    ('support_question', False, 'de', 'AW: Neuheiten',
     'Ich möchte meine Bestellung stornieren, geht das noch?',
     {}),
    ('support_question', False, 'de', 'AW: Neuheiten',
     'Mein Gutschein ist abgelaufen, können Sie ihn verlängern?',
     {}),
    ('other', False, 'en', 'Re: New arrivals',
     'Gorgeous collection this season.',
     {}),
    ('other', False, 'en', 'Re: New arrivals',
     'Thanks, will have a look at the weekend.',
     {}),
    ('other', False, 'de', 'AW: Neuheiten',
     'Danke, schaue ich mir am Wochenende an.',
     {}),
    ('other', False, 'de', 'AW: Neuheiten',
     'Schöne Sachen dabei!',
     {}),
]

# A ninth batch: out-of-office notes without any machine header, and look-alikes from people.
CORE += [
    ('out_of_office', True, 'en', 'Re: Spring catalogue',
     'Thank you for your e-mail. I am out of the office until Tuesday 14 '
     'April and will reply on my return.',
     {}),
    ('out_of_office', True, 'en', 'Re: Spring catalogue',
     "Hi, I'm on annual leave returning 22/04. For urgent queries please "
     'email the team.',
     {}),
    ('out_of_office', True, 'en', 'Re: Spring catalogue',
     'I am currently away on leave. I will be back in the office on 3 May.',
     {}),
    ('out_of_office', True, 'en', 'Re: Spring catalogue',
     "Thanks for your message. I'm travelling for work this week with limited "
     'email access.',
     {}),
    ('out_of_office', True, 'en', 'Re: Spring catalogue',
     "I'm off until Monday.",
     {}),
    ('out_of_office', True, 'en', 'Re: Spring catalogue',
     "I'm currently out of office on vacation.",
     {}),
    ('out_of_office', True, 'en', 'Re: Spring catalogue',
     "Please note that I'm on leave from 1-15 April inclusive.",
     {}),
    ('out_of_office', True, 'en', 'Re: Spring catalogue',
     "I'm on a leave of absence until further notice.",
     {}),
    ('out_of_office', True, 'de', 'AW: Frühjahrskatalog',
     'Vielen Dank für Ihre Nachricht. Ich bin bis zum 14.04. im Urlaub.',
     {}),
    ('out_of_office', True, 'de', 'AW: Frühjahrskatalog',
     'Ich bin ab dem 20.04. wieder im Büro und beantworte dann Ihre E-Mail.',
     {}),
    ('out_of_office', True, 'de', 'AW: Frühjahrskatalog',
     'Guten Tag, ich bin momentan nicht im Haus. Ihre Nachricht wird nach '
     'meiner Rückkehr bearbeitet.',
     {}),
    ('out_of_office', True, 'de', 'AW: Frühjahrskatalog',
     'Ich habe Urlaub bis 18.4.',
     {}),
    ('out_of_office', True, 'de', 'AW: Frühjahrskatalog',
     'Bin bis Montag krank.',
     {}),
    ('out_of_office', True, 'fr', 'RE: Catalogue',
     "Bonjour, je suis absent jusqu'au 14 avril inclus.",
     {}),
    ('out_of_office', True, 'fr', 'RE: Catalogue',
     'Je suis en congé, je reviens le 22 avril.',
     {}),
    ('out_of_office', True, 'es', 'RE: Catálogo',
     'Estoy fuera hasta el 14 de abril.',
     {}),
    ('out_of_office', True, 'es', 'RE: Catálogo',
     'Hola, estoy de vacaciones, vuelvo el lunes.',
     {}),
    ('out_of_office', True, 'nl', 'RE: Catalogus',
     'Ik ben afwezig tot 14 april.',
     {}),
    ('out_of_office', True, 'nl', 'RE: Catalogus',
     'Ik ben op vakantie tot maandag.',
     {}),
    ('other', False, 'en', 'Re: Spring catalogue',
     "I'll be away next week so please send the catalogue to my home address.",
     {}),
    ('other', False, 'en', 'Re: Spring catalogue',
     'Enjoy your holiday, see you in May!',
     {}),
    ('other', False, 'de', 'AW: Frühjahrskatalog',
     'Schönen Urlaub!',
     {}),
    ('other', False, 'en', 'Re: Spring catalogue',
     'Whoever wrote the unsubscribe page copy deserves a raise, it made me '
     'laugh.',
     {}),
    ('other', False, 'en', 'Re: Spring catalogue',
     'I was going to unsubscribe but this issue changed my mind.',
     {}),
    ('support_question', False, 'en', 'Re: Spring catalogue',
     'When I click unsubscribe it asks me to log in. Why?',
     {}),
]

# A tenth batch, written before the rules for it: B2B sales replies and account questions.
CORE += [
    ('interested', False, 'en', 'Re: Accounting software for agencies',
     "We're currently evaluating options. What integrations do you support?",
     {}),
    ('interested', False, 'en', 'Re: Accounting software for agencies',
     'Could you give me a rough idea of the cost for 3 users?',
     {}),
    ('interested', False, 'en', 'Re: Accounting software for agencies',
     "OK, I'm listening. What's the catch?",
     {}),
    ('interested', False, 'en', 'Re: Accounting software for agencies',
     "Please get in touch with me next week, I'm keen.",
     {}),
    ('interested', False, 'de', 'AW: Buchhaltungssoftware',
     'Wir evaluieren gerade Alternativen. Welche Schnittstellen gibt es?',
     {}),
    ('interested', False, 'de', 'AW: Buchhaltungssoftware',
     'Können Sie mir ein unverbindliches Angebot machen?',
     {}),
    ('interested', False, 'de', 'AW: Buchhaltungssoftware',
     'Rufen Sie mich bitte morgen Vormittag an.',
     {}),
    ('not_interested', False, 'en', 'Re: Accounting software for agencies',
     'We just signed a 3-year contract with another vendor.',
     {}),
    ('not_interested', False, 'en', 'Re: Accounting software for agencies',
     'Not something we need, thanks.',
     {}),
    ('unsubscribe_request', False, 'en', 'Re: Accounting software for agencies',
     "Please don't contact me about this again, not interested.",
     {}),
    ('not_interested', False, 'de', 'AW: Buchhaltungssoftware',
     'Wir sind mit unserer jetzigen Lösung zufrieden.',
     {}),
    ('not_interested', False, 'de', 'AW: Buchhaltungssoftware',
     'Danke, wir haben gerade erst gewechselt.',
     {}),
    ('wrong_person', False, 'en', 'Re: Accounting software for agencies',
     "I'm in sales, not finance. Try accounts@ instead.",
     {}),
    ('wrong_person', False, 'en', 'Re: Accounting software for agencies',
     'I retired last year, please update your records. My successor is Jo '
     'Park.',
     {}),
    ('wrong_person', False, 'de', 'AW: Buchhaltungssoftware',
     'Ich bin seit Juni nicht mehr für die Buchhaltung zuständig.',
     {}),
    ('support_question', False, 'en', 'Re: Your invoice is ready',
     'The invoice shows the wrong company name, can you reissue it?',
     {}),
    ('support_question', False, 'en', 'Re: Your trial ends soon',
     'How do I export my data before the trial ends?',
     {}),
    ('support_question', False, 'de', 'AW: Ihre Rechnung',
     'Die Rechnung hat eine falsche Adresse, bitte korrigieren.',
     {}),
    ('support_question', False, 'de', 'AW: Ihr Testzeitraum',
     'Wie exportiere ich meine Daten?',
     {}),
    ('complaint', False, 'en', 'Re: Accounting software for agencies',
     'Third cold email this week. This is spam and you know it.',
     {}),
    ('complaint', False, 'de', 'AW: Buchhaltungssoftware',
     'Unverlangte Werbung ist in Deutschland verboten. Ich behalte mir '
     'rechtliche Schritte vor.',
     {}),
    ('other', False, 'en', 'Re: Accounting software for agencies',
     'Who is this?',
     {}),
    ('other', False, 'en', 'Re: Accounting software for agencies',
     'Did you mean to send this to me?',
     {}),
    ('other', False, 'de', 'AW: Buchhaltungssoftware',
     'Wer sind Sie?',
     {}),
    ('unsubscribe_request', False, 'en', 'Re: Accounting software for agencies',
     'Remove me from your sequence.',
     {}),
    ('unsubscribe_request', False, 'de', 'AW: Buchhaltungssoftware',
     'Bitte nehmen Sie mich aus Ihrem Verteiler und kontaktieren Sie mich '
     'nicht mehr.',
     {}),
]

# An eleventh batch: helpdesk receipts, challenge-response, left-the-company notices in
# five languages.
CORE += [
    ('auto_reply_other', True, 'en', '[Auto-Reply] Re: Launch week',
     "Thanks for reaching out. Our support hours are Mon-Fri 9-5. We'll reply "
     'as soon as we can.',
     {}),
    ('auto_reply_other', True, 'en', 'Re: Launch week',
     'Boxbe: Your message to Dana is waiting for approval. Dana uses Boxbe to '
     'prioritize messages from known senders. Click here to add yourself to '
     'the guest list.',
     {'Auto-Submitted': 'auto-generated'}),
    ('auto_reply_other', True, 'en', 'Please confirm your message',
     "Hi, I'm protected by SpamArrest. To confirm your email reaches me, "
     'please click the link below to verify you are a real person.',
     {}),
    ('auto_reply_other', True, 'en', 'Re: Launch week',
     'Hello! We got your note. A ticket has been opened for you (#77812). You '
     'can reply to this email to add comments.',
     {'Auto-Submitted': 'auto-generated'}),
    ('auto_reply_other', True, 'en', 'Re: Launch week',
     'Please note: Alex Turner no longer works at Globex. Please direct all '
     'enquiries to hello@globex.example.',
     {}),
    ('auto_reply_other', True, 'en', 'Re: Launch week',
     'This employee has left the organisation. Your email has not been '
     'delivered to anyone.',
     {}),
    ('auto_reply_other', True, 'de', 'Re: Launchwoche',
     'Frau Roth ist nicht mehr bei uns beschäftigt. Ihre Nachricht wurde '
     'nicht weitergeleitet.',
     {}),
    ('auto_reply_other', True, 'de', 'Ticket erstellt',
     'Vielen Dank! Ihr Anliegen wurde unter der Nummer 4410 erfasst. Wir '
     'melden uns in Kürze.',
     {'Auto-Submitted': 'auto-generated'}),
    ('auto_reply_other', True, 'fr', 'Re: Semaine de lancement',
     "M. Bernard a quitté l'entreprise. Merci d'écrire à contact@x.example.",
     {}),
    ('auto_reply_other', True, 'fr', 'Accusé de réception',
     'Ceci est une réponse automatique : nous avons bien reçu votre e-mail.',
     {}),
    ('auto_reply_other', True, 'es', 'Re: Semana de lanzamiento',
     'La persona a la que escribe ya no forma parte de la empresa.',
     {}),
    ('auto_reply_other', True, 'es', 'Acuse de recibo',
     'Su mensaje ha sido recibido. Este es un mensaje generado '
     'automáticamente, no responda.',
     {}),
    ('auto_reply_other', True, 'nl', 'Re: Lanceerweek',
     'Deze medewerker is niet langer in dienst. Uw bericht wordt niet '
     'doorgestuurd.',
     {}),
    ('auto_reply_other', True, 'nl', 'Ontvangstbevestiging',
     'Dit is een automatisch gegenereerd bericht. Wij hebben uw vraag '
     'ontvangen.',
     {}),
    ('out_of_office', True, 'en', 'Auto Reply: Launch week',
     "I'm on PTO until Monday the 9th.",
     {}),
    ('out_of_office', True, 'en', 'Re: Launch week',
     "Thanks for your message! I'm currently out of office for the Easter "
     'break and will be back on 22 April.',
     {'X-Autoreply': 'yes'}),
    ('out_of_office', True, 'de', 'Automatische Antwort: Launchwoche',
     'Ich bin heute ganztägig in Meetings und kann erst morgen antworten.',
     {'Auto-Submitted': 'auto-replied'}),
]

# A twelfth batch, written before the rules for it: consultation offers, deliveries, activation.
CORE += [
    ('interested', False, 'en', 'Re: Your free consultation',
     "Yes, I'd like to take you up on the free consultation.",
     {}),
    ('interested', False, 'en', 'Re: Your free consultation',
     "Can you do a call on Friday morning? I'm free after 10.",
     {}),
    ('interested', False, 'en', 'Re: Your free consultation',
     'This could be useful for us. Who would I speak to about pricing?',
     {}),
    ('interested', False, 'en', 'Re: Your free consultation',
     'We might be interested, depending on the price.',
     {}),
    ('interested', False, 'de', 'AW: Ihre kostenlose Beratung',
     'Ja, ich nehme das Angebot der kostenlosen Beratung gerne an.',
     {}),
    ('interested', False, 'de', 'AW: Ihre kostenlose Beratung',
     'Passt Freitag um 10 Uhr für ein kurzes Gespräch?',
     {}),
    ('interested', False, 'de', 'AW: Ihre kostenlose Beratung',
     'Wir wären grundsätzlich interessiert. Was würde das kosten?',
     {}),
    ('not_interested', False, 'en', 'Re: Your free consultation',
     "Thanks, but we don't need any consulting at the moment.",
     {}),
    ('not_interested', False, 'en', 'Re: Your free consultation',
     'No thank you, we handle this internally.',
     {}),
    ('not_interested', False, 'en', 'Re: Your free consultation',
     "Please close my file, we won't be proceeding.",
     {}),
    ('not_interested', False, 'de', 'AW: Ihre kostenlose Beratung',
     'Vielen Dank, aber wir benötigen aktuell keine Beratung.',
     {}),
    ('not_interested', False, 'de', 'AW: Ihre kostenlose Beratung',
     'Wir möchten das Angebot nicht wahrnehmen.',
     {}),
    ('wrong_person', False, 'en', 'Re: Your free consultation',
     "You have the wrong Mike Brown, I've never heard of your company.",
     {}),
    ('wrong_person', False, 'en', 'Re: Your free consultation',
     "Hi, I'm just an assistant here. The owner, Lisa, makes these decisions "
     '- lisa@x.example.',
     {}),
    ('wrong_person', False, 'de', 'AW: Ihre kostenlose Beratung',
     'Ich leite das an die Geschäftsführung weiter, die entscheidet darüber.',
     {}),
    ('support_question', False, 'en', 'Re: Your order is on its way',
     "The tracking number doesn't work on the courier website.",
     {}),
    ('support_question', False, 'en', 'Re: Your order is on its way',
     'Can you deliver to a pickup point instead?',
     {}),
    ('support_question', False, 'en', 'Re: Welcome aboard',
     'I never received the activation email, can you resend it?',
     {}),
    ('support_question', False, 'de', 'AW: Ihre Bestellung ist unterwegs',
     'Kann ich das Paket an eine Packstation liefern lassen?',
     {}),
    ('support_question', False, 'de', 'AW: Willkommen',
     'Ich habe keine Aktivierungs-E-Mail bekommen.',
     {}),
    ('complaint', False, 'en', 'Re: Your free consultation',
     'Your sales team called me 5 times today. This is harassment, stop it '
     'now.',
     {}),
    ('complaint', False, 'de', 'AW: Ihre kostenlose Beratung',
     'Das ist jetzt die vierte Mail. Ich werde Sie wegen unerlaubter Werbung '
     'abmahnen.',
     {}),
    ('other', False, 'en', 'Re: Your free consultation',
     'Thanks for the reminder.',
     {}),
    ('other', False, 'en', 'Re: Your free consultation',
     '👍',
     {}),
    ('other', False, 'de', 'AW: Ihre kostenlose Beratung',
     'Danke für die Erinnerung.',
     {}),
]

# A thirteenth batch: people who mention unsubscribing, spam or stopping without asking for it.
CORE += [
    ('support_question', False, 'en', 'Re: Weekly update',
     'I accidentally unsubscribed, can you add me back?',
     {}),
    ('other', False, 'en', 'Re: Weekly update',
     "Glad I didn't unsubscribe, this was a great read.",
     {}),
    ('other', False, 'en', 'Re: Weekly update',
     "I'd never unsubscribe from this, best newsletter around.",
     {}),
    ('support_question', False, 'en', 'Re: Weekly update',
     'Can I reduce the frequency instead of unsubscribing? Once a month would '
     'be ideal.',
     {}),
    ('other', False, 'en', 'Re: Weekly update',
     'My wife wants to subscribe too, how does she sign up?',
     {}),
    ('other', False, 'en', 'Re: Weekly update',
     'Please keep sending these, my team loves them.',
     {}),
    ('other', False, 'en', 'Re: Weekly update',
     "Don't stop sending these tips!",
     {}),
    ('support_question', False, 'en', 'Re: Weekly update',
     'I stopped getting the newsletter in October, can you check?',
     {}),
    ('support_question', False, 'en', 'Re: Weekly update',
     'Please remove the old address from my account and use this one instead.',
     {}),
    ('other', False, 'en', 'Re: Weekly update',
     'The section on spam filters was really helpful for our team.',
     {}),
    ('other', False, 'en', 'Re: Weekly update',
     'Your email went to my spam folder, you might want to check your setup.',
     {}),
    ('other', False, 'en', 'Re: Weekly update',
     "I'll stop by your store on Saturday!",
     {}),
    ('interested', False, 'en', 'Re: Weekly update',
     'Remove the guesswork - yes, I want the demo.',
     {}),
    ('other', False, 'de', 'AW: Wochenupdate',
     'Ich möchte mich auf keinen Fall abmelden, weiter so!',
     {}),
    ('support_question', False, 'de', 'AW: Wochenupdate',
     'Ich habe mich versehentlich abgemeldet, können Sie mich wieder '
     'eintragen?',
     {}),
    ('other', False, 'de', 'AW: Wochenupdate',
     'Mein Mann möchte den Newsletter auch bekommen.',
     {}),
    ('other', False, 'de', 'AW: Wochenupdate',
     'Ihre Mail landete im Spam-Ordner.',
     {}),
    ('other', False, 'de', 'AW: Wochenupdate',
     'Bitte weiter so, tolle Tipps!',
     {}),
    ('other', False, 'de', 'AW: Wochenupdate',
     'Der Artikel über Spam-Filter war sehr hilfreich.',
     {}),
    ('support_question', False, 'de', 'AW: Wochenupdate',
     'Kann ich statt wöchentlich nur monatlich Mails bekommen?',
     {}),
]

# A fourteenth batch: long business replies with greetings and signatures around the point.
CORE += [
    ('interested', False, 'en', 'Re: Warehouse automation',
     "Hi Sam,\n\nThanks for the email and sorry for the slow reply, it's been a "
     "busy quarter. We've been talking internally about automating our "
     'picking process and your robots came up in the discussion.\n\nWould you '
     'be able to put together a rough proposal for a 5,000 m2 warehouse? '
     'Happy to jump on a call to walk you through our setup.\n\nBest,\nKaren '
     'Lee\nOperations Director\nAcme Logistics | +1 555 0100',
     {}),
    ('not_interested', False, 'en', 'Re: Warehouse automation',
     'Hi Sam,\n\nI appreciate you following up. We looked at automation last '
     "year and decided it doesn't make sense for a site our size. I don't see "
     'that changing anytime soon.\n\nAll the best,\nKaren',
     {}),
    ('support_question', False, 'en', 'Re: Your order 4471 has shipped',
     'Hello,\n\nI received the parcel today but one of the two chairs is '
     'missing. The box was also dented. Could you send the missing chair or '
     'refund it?\n\nThank you\nPeter Novak\n12 High Street\nLondon',
     {}),
    ('interested', False, 'de', 'AW: Lagerautomatisierung',
     'Hallo Herr Sommer,\n\nvielen Dank für Ihre Nachricht. Wir denken '
     'tatsächlich gerade über eine Automatisierung unseres Lagers nach. '
     'Könnten Sie uns ein grobes Angebot für ca. 5.000 m² erstellen?\n\nMit '
     'freundlichen Grüßen\nKarin Lehmann\nLeitung Logistik',
     {}),
    ('not_interested', False, 'de', 'AW: Lagerautomatisierung',
     'Hallo Herr Sommer,\n\ndanke für die Nachfrage. Wir haben das Thema intern '
     'geprüft und uns dagegen entschieden.\n\nBeste Grüße\nK. Lehmann',
     {}),
    ('support_question', False, 'de', 'AW: Ihre Bestellung 4471',
     'Guten Tag,\n\nheute kam das Paket an, aber einer der beiden Stühle fehlt. '
     'Bitte schicken Sie den fehlenden Stuhl nach oder erstatten Sie mir den '
     'Betrag.\n\nMfG\nPeter Novak',
     {}),
    ('wrong_person', False, 'en', 'Re: Warehouse automation',
     'Hi Sam - I moved to the finance team in March. My colleague Raj now '
     'runs operations and would be the one to speak to.\n\nCheers,\nKaren',
     {}),
    ('unsubscribe_request', False, 'en', 'Re: Warehouse automation',
     "Sam, I've replied to three of these already. Please remove me from your "
     "sequence and don't email me again.\n\nKaren",
     {}),
]

# A fifteenth batch, written before the rules for it: travel, events and recruiting replies.
CORE += [
    ('interested', False, 'en', 'Re: Early-bird tickets for DevConf',
     'Do you have group discounts for 8 people?',
     {}),
    ('interested', False, 'en', 'Re: Early-bird tickets for DevConf',
     "I'll take two tickets, how do I pay?",
     {}),
    ('interested', False, 'en', 'Re: Recruiting services',
     "We're hiring 3 engineers this quarter, let's set up a time to discuss.",
     {}),
    ('interested', False, 'en', 'Re: Summer in Lisbon',
     "Is the hotel package still available for the first week of July? We'd "
     'be 2 adults and a child.',
     {}),
    ('interested', False, 'de', 'AW: Frühbucher-Tickets',
     'Gibt es Gruppenrabatte für 8 Personen?',
     {}),
    ('interested', False, 'de', 'AW: Sommer in Lissabon',
     'Ist das Angebot für die erste Juliwoche noch verfügbar? Wir wären zwei '
     'Erwachsene.',
     {}),
    ('interested', False, 'de', 'AW: Recruiting',
     'Wir suchen aktuell drei Entwickler, lassen Sie uns sprechen.',
     {}),
    ('not_interested', False, 'en', 'Re: Recruiting services',
     'We have a hiring freeze until next year.',
     {}),
    ('not_interested', False, 'en', 'Re: Summer in Lisbon',
     "We've already booked our holiday this year, thanks.",
     {}),
    ('not_interested', False, 'de', 'AW: Recruiting',
     'Wir haben derzeit einen Einstellungsstopp.',
     {}),
    ('not_interested', False, 'de', 'AW: Sommer in Lissabon',
     'Wir haben unseren Urlaub schon gebucht, danke.',
     {}),
    ('support_question', False, 'en', 'Re: Your booking confirmation',
     'Can I change the dates of my booking to 12-19 July?',
     {}),
    ('support_question', False, 'en', 'Re: Your booking confirmation',
     'The confirmation shows the wrong name, it should be Anna not Ana.',
     {}),
    ('support_question', False, 'en', 'Re: Your tickets',
     "I didn't get my tickets, the email must have got lost.",
     {}),
    ('support_question', False, 'de', 'AW: Ihre Buchungsbestätigung',
     'Kann ich die Buchung auf den 12.-19. Juli umbuchen?',
     {}),
    ('support_question', False, 'de', 'AW: Ihre Tickets',
     'Ich habe meine Tickets nicht erhalten.',
     {}),
    ('wrong_person', False, 'en', 'Re: Recruiting services',
     "Hiring isn't my remit - HR handles that, try hr@x.example.",
     {}),
    ('wrong_person', False, 'de', 'AW: Recruiting',
     'Für Personalthemen ist unsere HR-Abteilung zuständig.',
     {}),
    ('complaint', False, 'en', 'Re: Summer in Lisbon',
     'I asked to be removed in May and you keep emailing me. This is a breach '
     'of data protection law.',
     {}),
    ('unsubscribe_request', False, 'en', 'Re: Summer in Lisbon',
     "We're not travelling anymore, please unsubscribe us.",
     {}),
    ('unsubscribe_request', False, 'de', 'AW: Sommer in Lissabon',
     'Bitte keine Reiseangebote mehr schicken.',
     {}),
    ('other', False, 'en', 'Re: Summer in Lisbon',
     'Lisbon was amazing last year, highly recommend the food tour!',
     {}),
    ('other', False, 'de', 'AW: Sommer in Lissabon',
     'Wir waren letztes Jahr mit Ihnen in Lissabon, war toll!',
     {}),
    ('other', False, 'en', 'Re: DevConf',
     'See you there!',
     {}),
]

SIGNATURES = {
    "en": ["\n\nBest regards,\nJane Miller\nHead of Operations | Northwind Ltd\n"
           "+44 20 7946 0958", "\n\nThanks,\nRob\n\n-- \nRobert Chen\nwww.example.com",
           "\n\nCheers\nAl", "\n\nKind regards\n\nDavid Smith\nSenior Buyer"],
    "de": ["\n\nMit freundlichen Grüßen\nAnna Schmidt\nEinkauf\nMusterfirma GmbH\n"
           "Tel. +49 30 1234567", "\n\nViele Grüße\nJörg", "\n\nBeste Grüße\n\nK. Becker\n"
           "-- \nBecker & Partner, Hauptstraße 5, 10115 Berlin"],
    "fr": ["\n\nCordialement,\nMarie Dupont", "\n\nBien à vous,\nLuc"],
    "es": ["\n\nSaludos,\nCarlos", "\n\nUn saludo,\nLucía Gómez"],
    "nl": ["\n\nMet vriendelijke groet,\nJan de Boer", "\n\nGroeten,\nSanne"],
}
FOOTERS = {
    "en": ["\n\nSent from my iPhone", "\n\nGet Outlook for Android", "\n\nSent from my Galaxy"],
    "de": ["\n\nVon meinem iPhone gesendet", "\n\nGesendet von Outlook für Android"],
    "fr": ["\n\nEnvoyé de mon iPhone"],
    "es": ["\n\nEnviado desde mi iPhone"],
    "nl": ["\n\nVerzonden vanaf mijn iPhone"],
}
QUOTE_HEADS = {
    "en": ["On Mon, 1 Dec 2026 at 09:14, Acme News <news@acme.example> wrote:",
           "On 12/01/2026 9:14 AM, Acme News wrote:",
           "-----Original Message-----\nFrom: Acme News <news@acme.example>\n"
           "Sent: Monday, December 1, 2026 9:14 AM\nTo: jane@northwind.example\n"
           "Subject: December deals"],
    "de": ["Am Mo., 1. Dez. 2026 um 09:14 Uhr schrieb Acme News <news@acme.example>:",
           "Von: Acme News <news@acme.example>\nGesendet: Montag, 1. Dezember 2026 09:14\n"
           "An: anna@musterfirma.example\nBetreff: Angebote der Woche"],
    "fr": ["Le lun. 1 déc. 2026 à 09:14, Acme News <news@acme.example> a écrit :"],
    "es": ["El lun, 1 dic 2026 a las 9:14, Acme News (<news@acme.example>) escribió:"],
    "nl": ["Op ma 1 dec. 2026 om 09:14 schreef Acme News <news@acme.example>:"],
}
NEWSLETTER = {
    "en": "Our December deals are here! Save 30% on everything.\nDon't want these emails? "
          "Unsubscribe here: https://acme.example/u/8812\nYou can stop receiving our "
          "newsletter at any time.",
    "de": "Unsere Angebote der Woche sind da! Jetzt 30 % sparen.\nSie möchten keine "
          "E-Mails mehr? Hier abmelden: https://acme.example/u/8812",
    "fr": "Nos offres de décembre sont là !\nPour vous désabonner, cliquez ici : "
          "https://acme.example/u/8812",
    "es": "¡Nuestras ofertas de diciembre ya están aquí!\nPara darse de baja haga clic "
          "aquí: https://acme.example/u/8812",
    "nl": "Onze decemberaanbiedingen zijn er!\nAfmelden voor deze nieuwsbrief? "
          "https://acme.example/u/8812",
}


def _quote(lang: str, rng: random.Random) -> str:
    head = rng.choice(QUOTE_HEADS[lang])
    text = NEWSLETTER[lang]
    if head.startswith(("-----", "Von:")):
        return "\n\n" + head + "\n\n" + text
    return "\n\n" + head + "\n" + "\n".join("> " + line for line in text.split("\n"))


def _html(body: str, quote: str) -> str:
    paras = "".join(f"<p>{html.escape(p)}</p>" for p in body.split("\n") if p.strip())
    q = ""
    if quote:
        q = "<blockquote>" + "<br>".join(html.escape(x.lstrip("> ")) for x in
                                         quote.strip().split("\n")) + "</blockquote>"
    return f"<html><head><style>p{{margin:0}}</style></head><body>{paras}{q}</body></html>"


def build() -> list[dict]:
    rng = random.Random(17)
    rows = []
    for n, (intent, auto, lang, subject, body, headers) in enumerate(CORE):
        rows.append({"subject": subject, "body": body, "headers": headers, "intent": intent,
                     "auto": auto, "language": lang, "variant": "plain"})
        if auto or not body:
            continue
        # A human reply arrives again the way a mail client sends it: quoted newsletter
        # (its own unsubscribe link), a signature, a mobile footer, sometimes as HTML.
        lang_q = lang or "en"
        sig = rng.choice(SIGNATURES[lang_q]) if rng.random() < 0.6 else ""
        foot = rng.choice(FOOTERS[lang_q]) if rng.random() < 0.35 else ""
        quote = _quote(lang_q, rng)
        variant = "quoted"
        text = body + sig + foot + quote
        if n % 5 == 0:
            text = _html(body + sig, quote)
            variant = "html"
        rows.append({"subject": subject, "body": text, "headers": headers, "intent": intent,
                     "auto": auto, "language": lang, "variant": variant})
    return rows


if __name__ == "__main__":
    rows = build()
    with OUT.open("w", encoding="utf-8") as f:
        for i, row in enumerate(rows):
            f.write(json.dumps({"id": i, **row}, ensure_ascii=False) + "\n")
    print(f"{len(rows)} replies -> {OUT}")
