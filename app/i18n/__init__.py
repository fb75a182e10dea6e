"""Every patient- and staff-facing text, in English (``en``) and Setswana (``tn``).

``t(key, language, **params)`` is the one way to get a text. The catalog is typed data so a test can check that
every entry exists in both languages, stays inside its channel's limits (GSM-7, one SMS segment where it must)
and that Setswana still waiting for a native speaker's review is marked ``tn_reviewed=False``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

LANGUAGES = ("en", "tn")
DEFAULT_LANGUAGE = "en"


@dataclass(frozen=True)
class Text:
    """One catalog entry.

    Attributes:
        en: English text, a ``str.format`` template.
        tn: Setswana text, same placeholders.
        channel: ``sms`` (one GSM-7 segment, 160 characters), ``ussd`` (160 characters after ``CON``/``END``),
            ``chat`` (Telegram/WhatsApp, 1,024 characters), ``button`` (a chat button title, 20 characters) or
            ``web`` (a label of the phone simulator page, never sent to a phone).
        example: the longest realistic values of the placeholders; the limits are checked with these.
        tn_reviewed: False until a native Setswana speaker from Botswana has approved ``tn``.
        note: why the wording is what it is (glossary entries used, doubts).
    """

    en: str
    tn: str
    channel: str = "sms"
    example: dict = field(default_factory=dict)
    tn_reviewed: bool = False
    note: str = ""


CATALOG: dict[str, Text] = {
    "password_reset_code": Text(
        en="Thusa: your password reset code is {code}. It expires in {minutes} minutes. Do not share it.",
        tn="Thusa: nomoro ya go fetola password ke {code}. E fela morago ga metsotso e le {minutes}. "
        "O se e romelele ope.",
        example={"code": "123456", "minutes": 15},
        note="nomoro (67), fetola (48), romela (52) from docs/setswana-glossary.md; 'metsotso' (minutes) and the "
        "expiry phrase are built, not sourced.",
    ),
    "opt_out_confirmation": Text(
        en="Thusa: you will get no more messages from us. Reply START to get them again.",
        tn="Thusa: ga o kitla o amogela melaetsa gape. Araba ka START go e amogela gape.",
        note="amogela (71), melaetsa (23), araba (51); 'ga o kitla' (you will not) is built.",
    ),
    "opt_in_confirmation": Text(
        en="Thusa: welcome back. You will get our messages again. Reply STOP to stop them.",
        tn="Thusa: o amogetswe gape. O tla amogela melaetsa gape. Araba ka STOP go e emisa.",
        note="o amogetswe (12), emisa (53).",
    ),
    "help": Text(
        en="Thusa: reply STOP to stop messages, SETSWANA or ENGLISH to change language. For other help, call your "
        "clinic.",
        tn="Thusa: araba ka STOP go emisa melaetsa, SETSWANA kgotsa ENGLISH go fetola puo. Thuso e nngwe: leletsa "
        "kokelwana ya gago.",
        note="fetola puo (48, 64), leletsa (57), kokelwana (13, uncertain); 'kgotsa' (or) is common but unsourced.",
    ),
    "language_set": Text(
        en="Thusa: we will write to you in English. Reply SETSWANA for Setswana.",
        tn="Thusa: re tla go kwalela ka Setswana. Araba ka ENGLISH go bona Sekgoa.",
        note="Sekgoa (65); 're tla go kwalela' (we will write to you) is built.",
    ),
    "default_reply": Text(
        en="Thusa: sorry, we did not understand your message. For help, call your clinic.",
        tn="Thusa: maswabi, ga re a tlhaloganya molaetsa wa gago. Go bona thuso, leletsa kokelwana ya gago.",
        note="maswabi (9), molaetsa (23), thuso (54), leletsa (57), kokelwana (13, uncertain); 'tlhaloganya' "
        "(understand) is not in the glossary. No 'Reply HELP': Twilio answers HELP itself (LANGUAGE.md section 4).",
    ),
    "ussd_unavailable": Text(
        en="Thusa: this menu is not available yet. Please try again later.",
        tn="Thusa: lenaneo le ga le ise le nne teng. Tsweetswee leka gape moragonyana.",
        channel="ussd",
        note="lenaneo (62, uncertain), leka gape (78); the rest is built.",
    ),
    "ussd_error": Text(
        en="Thusa: sorry, something went wrong. Please dial again.",
        tn="Thusa: maswabi, go nnile le phoso. Tsweetswee leletsa gape.",
        channel="ussd",
        note="maswabi (9), phoso (77), leletsa (57); 'go nnile le' (there was) is built.",
    ),
    # Appointments. {clinic} is Clinic.sms_name (at most 30 GSM-7 characters); {when} comes from
    # app.services.appointments.format_when: weekday, dd/mm and 24-hour time (LANGUAGE.md 2.2's recommendation).
    # Answers are asked for by digits, never by CANCEL/STOP/YES (carrier keywords, LANGUAGE.md section 4).
    "weekdays": Text(
        en="Monday,Tuesday,Wednesday,Thursday,Friday,Saturday,Sunday",
        tn="Mosupologo,Labobedi,Laboraro,Labone,Labotlhano,Matlhatso,Tshipi",
        note="Weekday names, comma-separated, Monday first (LANGUAGE.md 2.1/2.2: Babel tn_BW; Monday to Friday "
        "agree in every source, Saturday/Sunday have variants).",
    ),
    "when": Text(
        en="{weekday} {date} at {time}",
        tn="{weekday} {date} ka {time}",
        example={"weekday": "Wednesday", "date": "31/12", "time": "16:30"},
        note="'Labobedi 04/03 ka 09:00' is LANGUAGE.md 2.2's recommended pattern (ka = at, 39).",
    ),
    "word_or": Text(en="or", tn="kgotsa", note="'kgotsa' (or) is common but not in the glossary."),
    "appointment_reminder": Text(
        en="Thusa reminder: your visit to {clinic} is on {when}. Reply 1 to confirm, 2 to change the date, 3 if "
        "you cannot come.",
        tn="Thusa kgakololo: etela {clinic} ka {when}. Araba ka 1 = Ee, 2 = Fetola letlha, 3 = Ga ke kgone go tla.",
        example={"clinic": "Tlokweng Main Clinic Extension", "when": "Labotlhano 31/12 ka 16:30"},
        note="Draft 'reminder with reply' of LANGUAGE.md section 5 without the order 'o tshwanetse' (a reminder must "
        "not sound like an order, 6.6): kgakololo (24), etela (27), araba (51), fetola letlha (49); 'Ga ke kgone go "
        "tla' (50) is built.",
    ),
    "appointment_booked": Text(
        en="Thusa: your visit to {clinic} is booked for {when}. We will send you a reminder before it.",
        tn="Thusa: o tla etela {clinic} ka {when}. Re tla go romelela kgakololo pele ga letlha leo.",
        example={"clinic": "Tlokweng Main Clinic Extension", "when": "Labotlhano 31/12 ka 16:30"},
        note="etela (27), romela (52), kgakololo (24), letlha (37); 'pele ga letlha leo' (before that date) is built.",
    ),
    "appointment_confirmed": Text(
        en="Thusa: thank you. Your visit to {clinic} on {when} is confirmed.",
        tn="Thusa: re a leboga. Re tlhomamisitse gore o tla etela {clinic} ka {when}.",
        example={"clinic": "Tlokweng Main Clinic Extension", "when": "Labotlhano 31/12 ka 16:30"},
        note="re a leboga (7), tlhomamisa (45); the perfect 'tlhomamisitse' is built by grammar.",
    ),
    "appointment_cancelled_by_patient": Text(
        en="Thusa: thank you for telling us. You will not come to {clinic} on {when}. Call the clinic to book "
        "another date.",
        tn="Thusa: re a leboga. Re kwadile gore ga o kgone go tla kwa {clinic} ka {when}. Leletsa go bona letlha le "
        "lengwe.",
        example={"clinic": "Tlokweng Main Clinic Extension", "when": "Labotlhano 31/12 ka 16:30"},
        note="Ga ke kgone go tla (50) turned to 'you'; leletsa (57); 'letlha le lengwe' (another date) follows "
        "LANGUAGE.md 3.3 rule 2; 're kwadile gore' (we have written that) is built.",
    ),
    "appointment_cancelled_by_clinic": Text(
        en="Thusa: sorry, your visit to {clinic} on {when} is called off. Call the clinic to book another date.",
        tn="Thusa: maswabi, ga o sa tlhole o etela {clinic} ka {when}. Leletsa kokelwana go bona letlha le lengwe.",
        example={"clinic": "Tlokweng Main Clinic Extension", "when": "Labotlhano 31/12 ka 16:30"},
        note="maswabi (9), etela (27), leletsa (57); 'ga o sa tlhole' (you no longer) is built. English avoids the "
        "word CANCEL on purpose (a carrier opt-out keyword).",
    ),
    "appointment_moved": Text(
        en="Thusa: your visit to {clinic} has moved to {when}. Reply 1 to confirm, 2 to change the date, 3 if you "
        "cannot come.",
        tn="Thusa: letlha la go etela {clinic} le fetotswe: {when}. Araba ka 1 = Ee, 2 = Fetola letlha, 3 = Ga ke "
        "kgone go tla.",
        example={"clinic": "Tlokweng Main Clinic Extension", "when": "Labotlhano 31/12 ka 16:30"},
        note="letlha (37), fetola (48); the passive 'fetotswe' is built by grammar.",
    ),
    "appointment_rescheduled": Text(
        en="Thusa: thank you. Your visit to {clinic} is now on {when}.",
        tn="Thusa: re a leboga. Jaanong o tla etela {clinic} ka {when}.",
        example={"clinic": "Tlokweng Main Clinic Extension", "when": "Labotlhano 31/12 ka 16:30"},
        note="re a leboga (7), jaanong (44), etela (27).",
    ),
    "appointment_offer": Text(
        en="Thusa: free times: {slots}. Reply {letters}.",
        tn="Thusa: dinako tse di leng teng: {slots}. Araba ka {letters}.",
        example={
            "slots": "A Labotlhano 31/12 ka 16:30, B Labotlhano 31/12 ka 16:30, C Labotlhano 31/12 ka 16:30",
            "letters": "A, B kgotsa C",
        },
        note="nako (38) in the plural 'dinako'; 'tse di leng teng' (that are there) is built, like 'melemo e e leng "
        "teng' (69).",
    ),
    "appointment_no_slots": Text(
        en="Thusa: sorry, {clinic} has no free time soon. The clinic will call you to change the date.",
        tn="Thusa: maswabi, ga go na nako kwa {clinic}. {clinic} e tla go leletsa go fetola letlha.",
        example={"clinic": "Tlokweng Main Clinic Extension"},
        note="The second sentence is LANGUAGE.md section 5's draft 'after reply 2' ('tla' kept, as elsewhere here); "
        "'ga go na nako' (there is no time) is built.",
    ),
    "appointment_help": Text(
        en="Thusa: about your visit to {clinic} on {when}: reply 1 to confirm, 2 to change the date, 3 if you "
        "cannot come.",
        tn="Thusa: o etela {clinic} ka {when}. Araba ka 1 = Ee, 2 = Fetola letlha, 3 = Ga ke kgone go tla.",
        example={"clinic": "Tlokweng Main Clinic Extension", "when": "Labotlhano 31/12 ka 16:30"},
        note="Same answer words as the reminder.",
    ),
    "ussd_patient_menu": Text(
        en="Your visit to {clinic}: {when}\n1 Confirm\n2 Change date\n3 I cannot come",
        tn="O etela {clinic} ka {when}\n1 Tlhomamisa\n2 Fetola letlha\n3 Ga ke kgone go tla",
        channel="ussd",
        example={"clinic": "Tlokweng Main Clinic Extension", "when": "Labotlhano 31/12 ka 16:30"},
        note="tlhomamisa (45), fetola letlha (49), 'Ga ke kgone go tla' (50, built).",
    ),
    "ussd_patient_none": Text(
        en="Thusa: no visit is booked for this number. Call your clinic to book one.",
        tn="Thusa: ga go na letlha la go etela kokelwana mo nomorong e. Leletsa kokelwana ya gago.",
        channel="ussd",
        note="letlha (37), nomoro (67), leletsa (57), kokelwana (13, uncertain); the sentence is built.",
    ),
    "ussd_slots_menu": Text(
        en="Choose a new time:\n{slots}\n0 Back",
        tn="Tlhopha nako e nngwe:\n{slots}\n0 Kwa morago",
        channel="ussd",
        example={"slots": "1 Labotlhano 31/12 ka 16:30\n2 Labotlhano 31/12 ka 16:30\n3 Labotlhano 31/12 ka 16:30"},
        note="Tlhopha (56), nako (38), Kwa morago (58); 'nako e nngwe' (another time) follows 'nomoro e nngwe' "
        "(LANGUAGE.md 3.3 rule 2).",
    ),
    "ussd_cancel_check": Text(
        en="You will not come to {clinic} on {when}?\n1 Yes\n2 No",
        tn="Ga o kgone go tla kwa {clinic} ka {when}?\n1 Ee\n2 Nnyaa",
        channel="ussd",
        example={"clinic": "Tlokweng Main Clinic Extension", "when": "Labotlhano 31/12 ka 16:30"},
        note="Ee (4), Nnyaa (5); the question is built from 'Ga ke kgone go tla' (50).",
    ),
    "ussd_invalid_choice": Text(
        en="Please choose one of the numbers shown.\n{menu}",
        tn="Tsweetswee tlhopha nomoro e e bontshitsweng.\n{menu}",
        channel="ussd",
        example={"menu": "1 Confirm\n2 Change date\n3 I cannot come"},
        note="Tsweetswee (6), tlhopha (56), nomoro (67); 'e e bontshitsweng' (that is shown) is built.",
    ),
    # --- Clinic stock and the staff USSD menu (issue 5) ---------------------------------------------------------
    # {item} is stock.display_name (at most 24 GSM-7 characters), {unit} stock.display_unit (at most 12), {clinic}
    # Clinic.sms_name (30). LANGUAGE.md 1.6 warns Setswana has few stock words: "stock" and "PIN" stay English
    # (69, 76); every stock phrase below is built and waits for a nurse's review.
    "stock_low_alert": Text(
        en="Thusa stock alert, {clinic}: {item} is low: {level} {unit} left (reorder level {reorder}). Please order "
        "more.",
        tn="Thusa, {clinic}: {item} di a tlhaela: go setse {level} {unit} (reorder level {reorder}). Tsweetswee "
        "kopa tse dingwe.",
        example={
            "clinic": "Tlokweng Main Clinic Extension",
            "item": "Amoxicillin 250mg capsu",
            "level": 99999,
            "unit": "test kits 25",
            "reorder": 99999,
        },
        note="di a tlhaela (74), Tsweetswee (6), tse dingwe (60); 'go setse' (there remain) and 'kopa' (ask for) are "
        "built; 'reorder level' kept in English like 'stock' (69).",
    ),
    # --- phone simulator page (issue 7): channel "web", shown in the browser at /simulator, never sent --------
    "sim_title": Text(
        en="Thusa phone simulator",
        tn="Thusa: megala ya go leka",
        channel="web",
        note="mogala (68) in the plural 'megala'; leka (78). Built.",
    ),
    "sim_intro": Text(
        en="Try every Thusa conversation on three pretend phones. What you send goes through the real webhooks; "
        "the answers come from the console sender, so nothing leaves this computer.",
        tn="Leka dipuisano tsotlhe tsa Thusa ka megala e meraro ya go leka. Se o se romelang se feta ka tsela ya "
        "nnete; dikarabo di tswa mo khomputareng e, ga go sepe se se tswang.",
        channel="web",
        note="leka (78), romela (52), karabo (51) in the plural; the rest is built and needs a native reader.",
    ),
    "sim_language": Text(en="Language", tn="Puo", channel="web", note="puo (64)."),
    "sim_clinic": Text(en="Clinic", tn="Kokelwana", channel="web", note="kokelwana (13, uncertain)."),
    "sim_patient": Text(en="Patient", tn="Molwetse", channel="web", note="molwetse (17)."),
    "sim_send_reminders": Text(
        en="Send due reminders now",
        tn="Romela dikgakololo jaanong",
        channel="web",
        note="romela (52), kgakololo (24) in the plural, jaanong (44).",
    ),
    "sim_reset": Text(
        en="Reset demo data",
        tn="Simolola gape ka data ya teko",
        channel="web",
        note="'simolola gape' (start again) and 'data ya teko' (test data) are built.",
    ),
    "sim_sms_phone": Text(
        en="Patient's SMS phone", tn="Mogala wa molwetse (SMS)", channel="web", note="mogala (68), molwetse (17)."
    ),
    "sim_ussd_phone": Text(en="USSD phone", tn="Mogala wa USSD", channel="web", note="mogala (68)."),
    "sim_chat_phone": Text(
        en="Pharmacist's chat",
        tn="Chat ya pharmacist",
        channel="web",
        note="No glossary word for pharmacist or chat: the loan words are kept. Built.",
    ),
    "sim_message": Text(en="Message", tn="Molaetsa", channel="web", note="molaetsa (23)."),
    "sim_send": Text(en="Send", tn="Romela", channel="web", note="romela (52)."),
    "sim_messages": Text(
        en="Messages on this phone",
        tn="Melaetsa mo mogaleng o",
        channel="web",
        note="melaetsa (23), mogala (68); the locative is built.",
    ),
    "sim_no_messages": Text(
        en="No messages yet.",
        tn="Ga go ise go nne le melaetsa.",
        channel="web",
        note="melaetsa (23); 'ga go ise go nne le' (there is not yet) is built.",
    ),
    "sim_staff": Text(en="staff", tn="badiredi", channel="web", note="badiredi (20)."),
    "sim_dial_as": Text(en="Phone number", tn="Nomoro ya mogala", channel="web", note="'nomoro ya mogala' (67)."),
    "sim_service_code": Text(
        en="Service code", tn="Khoutu ya tirelo", channel="web", note="'khoutu ya tirelo' (service code) is built."
    ),
    "sim_dial": Text(en="Dial", tn="Leletsa", channel="web", note="leletsa (57)."),
    "sim_answer": Text(en="Answer", tn="Araba", channel="web", note="araba (51)."),
    "sim_hang_up": Text(en="Hang up", tn="Tswa", channel="web", note="Tswa (63, uncertain) = exit."),
    "sim_ussd_idle": Text(
        en="Dial the service code to start.",
        tn="Leletsa khoutu ya tirelo go simolola.",
        channel="web",
        note="leletsa (57); the rest is built.",
    ),
    "sim_ussd_ended": Text(
        en="The session has ended.",
        tn="Puisano e fedile.",
        channel="web",
        note="fedile (75); puisano (conversation) is built.",
    ),
    "sim_chat_app": Text(en="Chat app", tn="App ya chat", channel="web", note="Loan words kept. Built."),
    "sim_photo": Text(
        en="Photo",
        tn="Setshwantsho",
        channel="web",
        note="'setshwantsho' (picture) is not in the glossary; a native reader must check it.",
    ),
    "sim_send_photo": Text(
        en="Send photo", tn="Romela setshwantsho", channel="web", note="romela (52); setshwantsho unsourced."
    ),
    "sim_share_contact": Text(
        en="Share my number", tn="Romela nomoro ya me", channel="web", note="romela (52), nomoro (67)."
    ),
    "sim_staff_note": Text(
        en="Staff numbers get the staff menu; the demo PIN is {pin}.",
        tn="Dinomoro tsa badiredi di bona lenaneo la badiredi; PIN ya teko ke {pin}.",
        channel="web",
        example={"pin": "2580"},
        note="nomoro (67) in the plural, badiredi (20), lenaneo (62, uncertain), PIN (76).",
    ),
    "sim_reminder_queued": Text(
        en="Reminder for {name} is in the outbox; it appears on the SMS phone in a moment.",
        tn="Kgakololo ya ga {name} e mo tseleng; e tla bonala mo mogaleng wa SMS ka bonako.",
        channel="web",
        example={"name": "Onalenna Seretse"},
        note="kgakololo (24), mogala (68); the rest is built.",
    ),
    "sim_reminder_none": Text(
        en="{name} has no visit ahead to remind about.",
        tn="{name} ga a na letlha la go etela kokelwana.",
        channel="web",
        example={"name": "Onalenna Seretse"},
        note="letlha (37), etela (27), kokelwana (13, uncertain); built.",
    ),
    "sim_reminder_sent_before": Text(
        en="This reminder for {name} was already sent: reset the demo data to send it again.",
        tn="Kgakololo e ya ga {name} e setse e romelwa: simolola gape ka data ya teko go e romela gape.",
        channel="web",
        example={"name": "Onalenna Seretse"},
        note="kgakololo (24), romela (52); 'e setse e romelwa' (has already been sent) is built.",
    ),
    "sim_reset_done": Text(
        en="The demo data is back to where it started.",
        tn="Data ya teko e boetse kwa tshimologong.",
        channel="web",
        note="Built; 'boetse' from 'boela' (58).",
    ),
    "sim_hours_note": Text(
        en="For the demo, {clinic} sends reminders at any hour; reset puts its hours back to {start}-{end}.",
        tn="Mo tekong, {clinic} e romela dikgakololo ka nako nngwe le nngwe; simolola gape go busa {start}-{end}.",
        channel="web",
        example={"clinic": "Gaborone Main Clinic", "start": "07:00", "end": "20:00"},
        note="romela (52), kgakololo (24), nako (38); the rest is built.",
    ),
    "sim_failed": Text(
        en="That did not work: {error}",
        tn="Ga go a dira: {error}",
        channel="web",
        example={"error": "the server did not answer"},
        note="Built.",
    ),
    "sim_outbound_note": Text(
        en="Outbound messages: the console sender, as read from the message log.",
        tn="Melaetsa e e tswang: e romelwa ke console, jaaka e kwadilwe mo lenaneong la melaetsa.",
        channel="web",
        note="melaetsa (23); the rest is built.",
    ),
    "stock_manual_alert": Text(
        en="Thusa stock alert, {clinic}: {item} ({level} {unit}): {note}",
        tn="Thusa, {clinic}: {item} ({level} {unit}): {note}",
        example={
            "clinic": "Tlokweng Main Clinic Extension",
            "item": "Amoxicillin 250mg capsu",
            "level": 99999,
            "unit": "test kits 25",
            "note": "x" * 60,
        },
        note="The staff member's own note (at most 60 characters) carries the message; only names and numbers around "
        "it.",
    ),
    "stock_receipt_received": Text(
        en="Thusa: received {quantity} {unit} of {item}. Level now {level} {unit}.",
        tn="Thusa: o amogetse {unit} di le {quantity} tsa {item}. Jaanong go na le {level} {unit}.",
        example={"quantity": 99999, "unit": "test kits 25", "item": "Amoxicillin 250mg capsu", "level": 99999},
        note="amogetse (71, form built), di le + number (3.2), jaanong (44); 'tsa' agreement and 'go na le' built.",
    ),
    "stock_receipt_dispensed": Text(
        en="Thusa: dispensed {quantity} {unit} of {item}. Level now {level} {unit}.",
        tn="Thusa: o abile {unit} di le {quantity} tsa {item}. Jaanong go na le {level} {unit}.",
        example={"quantity": 99999, "unit": "test kits 25", "item": "Amoxicillin 250mg capsu", "level": 99999},
        note="abile (72, pharmacy sense unchecked), jaanong (44); the rest as stock_receipt_received.",
    ),
    "stock_receipt_counted": Text(
        en="Thusa: count of {item} saved: {level} {unit}.",
        tn="Thusa: palo ya {item} e bolokilwe: {level} {unit}.",
        example={"item": "Amoxicillin 250mg capsu", "level": 99999, "unit": "test kits 25"},
        note="palo (73); 'e bolokilwe' (is saved) is built.",
    ),
    "visit_receipt_attended": Text(
        en="Thusa: the visit at {visit} is marked attended.",
        tn="Thusa: molwetse wa {visit} o kwadilwe gore o tlile.",
        example={"visit": "16:30 ...4567"},
        note="molwetse (17), tla (28) in the perfect 'o tlile' (built); 'o kwadilwe gore' (it is written that) built.",
    ),
    "ussd_staff_pin": Text(
        en="Thusa staff menu.\nEnter your 4-digit PIN:",
        tn="Lenaneo la badiredi ba Thusa.\nTsenya PIN ya gago (dinomoro di le 4):",
        channel="ussd",
        note="lenaneo (62, uncertain), badiredi (20), Tsenya PIN (55, 76), nomoro (67) with 'di le 4' (3.2).",
    ),
    "ussd_staff_wrong_pin": Text(
        en="Wrong PIN. Tries left: {tries}.\nEnter your PIN:",
        tn="PIN e fosagetse. Leka gape ({tries}).\nTsenya PIN:",
        channel="ussd",
        example={"tries": 4},
        note="LANGUAGE.md section 5's 'PIN e fosagetse. Leka gape.' (77, 78), Tsenya (55).",
    ),
    "ussd_staff_locked": Text(
        en="Too many wrong PINs. The staff menu is locked for {minutes} minutes.",
        tn="PIN e fosagetse gantsi. Leka gape morago ga metsotso e le {minutes}.",
        channel="ussd",
        example={"minutes": 30},
        note="e fosagetse (77), Leka gape (78); 'gantsi' (often) and 'morago ga metsotso' (after minutes) are built.",
    ),
    "ussd_staff_no_pin": Text(
        en="No USSD PIN is set for you yet. Ask your clinic's admin to set one.",
        tn="Ga o na PIN ya USSD. Kopa motsamaisi wa kokelwana go e tsenya.",
        channel="ussd",
        note="PIN (76), kokelwana (13, uncertain), tsenya (55); 'motsamaisi' (administrator) and 'kopa' are built.",
    ),
    "ussd_staff_resume": Text(
        en="Continue where you left off?\n{summary}\n1 Yes 2 No",
        tn="A o batla go tswelela?\n{summary}\n1 Ee 2 Nnyaa",
        channel="ussd",
        example={"summary": "Dispense Amoxicillin 250mg capsu 99999 test kits 25"},
        note="Tswelela (61), Ee (4), Nnyaa (5), yes/no question with 'A' (3.1); 'batla' (want) is common, unsourced.",
    ),
    "ussd_staff_menu": Text(
        en="{clinic}\n1 Check stock\n2 Receive\n3 Dispense\n4 Count\n5 Low stock\n6 Today's visits\n7 Language",
        tn="{clinic}\n1 Bona stock\n2 Amogela\n3 Aba\n4 Bala\n5 Stock e e kwa tlase\n6 Ditetelo tsa gompieno\n7 Puo",
        channel="ussd",
        example={"clinic": "Tlokweng Main Clinic Extension"},
        note="amogela (71), aba (72), bala (73, uncertain), kwa tlase (74), gompieno (30), puo (64); 'Bona' (see) "
        "and 'Ditetelo' (visits, from etela 27) are built.",
    ),
    "ussd_staff_action_receive": Text(en="Receive", tn="Amogela", channel="ussd", note="amogela (71)."),
    "ussd_staff_action_dispense": Text(en="Dispense", tn="Aba", channel="ussd", note="aba (72, sense unchecked)."),
    "ussd_staff_action_count": Text(en="Count", tn="Bala", channel="ussd", note="bala (73, uncertain as 'count')."),
    "ussd_staff_action_attend": Text(
        en="Attended", tn="O tlile", channel="ussd", note="tla (28) in the perfect, built."
    ),
    "ussd_staff_stock": Text(
        en="Stock {page}/{pages}:",
        tn="Stock {page}/{pages}:",
        channel="ussd",
        example={"page": 99, "pages": 99},
        note="'stock' stays English (69).",
    ),
    "ussd_staff_low": Text(
        en="Low stock {page}/{pages}:",
        tn="Stock e e kwa tlase {page}/{pages}:",
        channel="ussd",
        example={"page": 99, "pages": 99},
        note="kwa tlase (74); 'e e' agreement built.",
    ),
    "ussd_staff_pick": Text(
        en="{action}: choose an item {page}/{pages}",
        tn="{action}: tlhopha {page}/{pages}",
        channel="ussd",
        example={"action": "Dispense", "page": 99, "pages": 99},
        note="Tlhopha (56).",
    ),
    "ussd_staff_stock_none": Text(
        en="No stock items yet.",
        tn="Ga go na stock.",
        channel="ussd",
        note="'ga go na' (there is none) as in ussd_patient_none.",
    ),
    "ussd_staff_low_none": Text(
        en="Nothing is at or below its reorder level.",
        tn="Ga go na stock e e kwa tlase.",
        channel="ussd",
        note="kwa tlase (74).",
    ),
    "ussd_nav_more": Text(en="9 More", tn="9 Tse dingwe", channel="ussd", note="Tse dingwe (60)."),
    "ussd_nav_back": Text(en="0 Back", tn="0 Kwa morago", channel="ussd", note="Kwa morago (58)."),
    "ussd_nav_main": Text(en="00 Main menu", tn="00 Lenaneo", channel="ussd", note="Lenaneo (62, uncertain)."),
    "ussd_staff_quantity": Text(
        en="{action} {item}\nNow {level} {unit}. How many {unit}?\n0 Back",
        tn="{action} {item}\nJaanong {level} {unit}. {unit} di le kae?\n0 Kwa morago",
        channel="ussd",
        example={"action": "Dispense", "item": "Amoxicillin 250mg capsu", "level": 99999, "unit": "test kits 25"},
        note="jaanong (44), Kwa morago (58); 'di le kae' (how many) is built from 'di le' (3.2).",
    ),
    "ussd_staff_count_prompt": Text(
        en="Count {item}\nHow many {unit} are there now? (was {level})\n0 Back",
        tn="Bala {item}\n{unit} di le kae jaanong? (e ne e le {level})\n0 Kwa morago",
        channel="ussd",
        example={"item": "Amoxicillin 250mg capsu", "level": 99999, "unit": "test kits 25"},
        note="bala (73, uncertain), jaanong (44); 'e ne e le' (it was) is built.",
    ),
    "ussd_staff_enter_number": Text(
        en="Please enter a number.",
        tn="Tsweetswee tsenya nomoro.",
        channel="ussd",
        note="Tsweetswee (6), tsenya (55), nomoro (67).",
    ),
    "ussd_staff_try_again": Text(en="Try again.", tn="Leka gape.", channel="ussd", note="Leka gape (78)."),
    "ussd_staff_not_enough": Text(
        en="Only {level} {unit} in stock.",
        tn="Go na le {level} {unit} fela.",
        channel="ussd",
        example={"level": 99999, "unit": "test kits 25"},
        note="'go na le ... fela' (there are only) is built.",
    ),
    "ussd_staff_confirm_receive": Text(
        en="Receive {quantity} {unit} of {item}?\nLevel {before} -> {after}\n1 Yes 2 No",
        tn="A o amogetse {unit} di le {quantity} tsa {item}?\nPalo {before} -> {after}\n1 Ee 2 Nnyaa",
        channel="ussd",
        example={
            "quantity": 99999,
            "unit": "test kits 25",
            "item": "Amoxicillin 250mg capsu",
            "before": 99999,
            "after": 199998,
        },
        note="amogetse (71), palo (73), Ee (4), Nnyaa (5); the question with 'A' (3.1) and 'tsa' agreement built.",
    ),
    "ussd_staff_confirm_dispense": Text(
        en="Dispense {quantity} {unit} of {item}?\nLevel {before} -> {after}\n1 Yes 2 No",
        tn="A o abile {unit} di le {quantity} tsa {item}?\nPalo {before} -> {after}\n1 Ee 2 Nnyaa",
        channel="ussd",
        example={
            "quantity": 99999,
            "unit": "test kits 25",
            "item": "Amoxicillin 250mg capsu",
            "before": 99999,
            "after": 99999,
        },
        note="abile (72), palo (73), Ee (4), Nnyaa (5); built like ussd_staff_confirm_receive.",
    ),
    "ussd_staff_confirm_count": Text(
        en="Set {item} to the counted {quantity} {unit}?\nLevel {before} -> {after}\n1 Yes 2 No",
        tn="A palo ya {item} ke {unit} di le {quantity}?\nPalo {before} -> {after}\n1 Ee 2 Nnyaa",
        channel="ussd",
        example={
            "quantity": 99999,
            "unit": "test kits 25",
            "item": "Amoxicillin 250mg capsu",
            "before": 99999,
            "after": 99999,
        },
        note="palo (73), Ee (4), Nnyaa (5); 'A palo ... ke ...?' (is the count ...?) is built.",
    ),
    "ussd_staff_saved": Text(
        en="Saved. {item}: {level} {unit} now. An SMS receipt is on its way.",
        tn="Go bolokilwe. {item}: {level} {unit} jaanong. O tla amogela SMS.",
        channel="ussd",
        example={"item": "Amoxicillin 250mg capsu", "level": 199998, "unit": "test kits 25"},
        note="jaanong (44), amogela (71), SMS (3.2 loan words); 'Go bolokilwe' (it is saved) is built.",
    ),
    "ussd_staff_visits": Text(
        en="Today: {total} visits, {attended} attended.\nTo mark one attended, enter the last 4 digits of the "
        "patient's phone.\n0 Back",
        tn="Gompieno: ditetelo di le {total}, ba ba tlileng ba le {attended}.\nTsenya dinomoro tse 4 tsa bofelo tsa "
        "mogala wa molwetse.\n0 Kwa morago",
        channel="ussd",
        example={"total": 999, "attended": 999},
        note="gompieno (30), tsenya (55), nomoro (67), mogala (68), molwetse (17), Kwa morago (58); 'ditetelo', "
        "'ba ba tlileng' (who came) and 'tsa bofelo' (the last) are built.",
    ),
    "ussd_staff_four_digits": Text(
        en="Please enter 4 digits.",
        tn="Tsweetswee tsenya dinomoro di le 4.",
        channel="ussd",
        note="Tsweetswee (6), tsenya (55), nomoro (67), 'di le 4' (3.2).",
    ),
    "ussd_staff_no_visit": Text(
        en="No visit to mark today for a phone ending {digits}.",
        tn="Ga go na molwetse wa gompieno yo mogala wa gagwe o felang ka {digits}.",
        channel="ussd",
        example={"digits": "4567"},
        note="molwetse (17), gompieno (30), mogala (68); 'o felang ka' (that ends with, from fela 75) is built.",
    ),
    "ussd_staff_which_visit": Text(
        en="Which visit?", tn="Ke ofe?", channel="ussd", note="'Ke ofe?' (which one?) is built."
    ),
    "ussd_staff_confirm_attend": Text(
        en="Mark the visit at {visit} attended?\n1 Yes 2 No",
        tn="A molwetse wa {visit} o tlile?\n1 Ee 2 Nnyaa",
        channel="ussd",
        example={"visit": "16:30 ...4567"},
        note="molwetse (17), tla (28, perfect built), Ee (4), Nnyaa (5).",
    ),
    "ussd_staff_attended": Text(
        en="Saved: the visit at {visit} is marked attended. An SMS receipt is on its way.",
        tn="Go bolokilwe: molwetse wa {visit} o tlile. O tla amogela SMS.",
        channel="ussd",
        example={"visit": "16:30 ...4567"},
        note="As ussd_staff_saved and visit_receipt_attended.",
    ),
    "ussd_staff_language": Text(
        en="Choose language:\n1 English\n2 Setswana\n0 Back",
        tn="Tlhopha puo:\n1 Sekgoa\n2 Setswana\n0 Kwa morago",
        channel="ussd",
        note="LANGUAGE.md section 5's 'Tlhopha puo' (56, 64), Sekgoa (65), Kwa morago (58).",
    ),
    # --- end of clinic stock (issue 5) ------------------------------------------------------------------------------
}


def t(key: str, language: str | None, **params) -> str:
    """The text ``key`` in ``language`` (English when the language is unknown), filled with ``params``.

    Raises:
        KeyError: no such catalog entry (a programming error, caught by the catalog test).
    """
    entry = CATALOG[key]
    template = entry.tn if language == "tn" else entry.en
    return template.format(**params)


# Skin consultations (issue 6): chat texts live in their own module, merged into the one catalog.
from app.i18n.skin import SKIN_TEXTS  # noqa: E402

CATALOG.update(SKIN_TEXTS)
