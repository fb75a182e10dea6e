"""Texts of appointments: reminders, bookings, changes, offers of new times and the patient's USSD menu.

``{clinic}`` is Clinic.sms_name (at most 30 GSM-7 characters); ``{when}`` comes from
app.services.appointments.format_when: weekday, dd/mm and 24-hour time (LANGUAGE.md 2.2's recommendation).
Answers are asked for by digits, never by CANCEL/STOP/YES (carrier keywords, LANGUAGE.md section 4).
"""

from __future__ import annotations

from app.i18n.text import Text

APPOINTMENT_TEXTS: dict[str, Text] = {
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
        tn="Dumela. Kgakololo ya Thusa: o tla etela {clinic} ka {when}. Araba 1 = Ee, 2 = Fetola letlha, 3 = Ga ke "
        "kgone go tla.",
        example={"clinic": "Tlokweng Main Clinic Extension", "when": "Labotlhano 31/12 ka 16:30"},
        note="Draft 'reminder with reply' of LANGUAGE.md section 5 without the order 'o tshwanetse' (a reminder must "
        "not sound like an order, 6.6): kgakololo (24), etela (27), araba (51), fetola letlha (49); 'Ga ke kgone go "
        "tla' (50) is built. A greeting and a statement ('o tla etela', you will visit) rather than a bare "
        "command to elders: reviewers' change (issue 17), awaiting native review.",
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
        tn="Thusa: o tla etela {clinic} ka {when}. Araba ka 1 = Ee, 2 = Fetola letlha, 3 = Ga ke kgone go tla.",
        example={"clinic": "Tlokweng Main Clinic Extension", "when": "Labotlhano 31/12 ka 16:30"},
        note="Same answer words as the reminder; 'o tla etela' (future visit): reviewers' change (issue 17), awaiting native review.",
    ),
    "ussd_patient_menu": Text(
        en="Your visit to {clinic}: {when}\n1 Confirm\n2 Change date\n3 I cannot come",
        tn="O tla etela {clinic} ka {when}\n1 Tlhomamisa\n2 Fetola letlha\n3 Ga ke kgone go tla",
        channel="ussd",
        example={"clinic": "Tlokweng Main Clinic Extension", "when": "Labotlhano 31/12 ka 16:30"},
        note="tlhomamisa (45), fetola letlha (49), 'Ga ke kgone go tla' (50, built); 'O tla etela' (future): reviewers' change (issue 17), awaiting native review.",
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
        en="Tell {clinic} you cannot come on {when}?\n1 Yes, I cannot come\n2 No, go back",
        tn="A o tlhomamisa gore ga o kgone go tla kwa {clinic} ka {when}?\n1 Ee, ga ke kgone\n2 Nnyaa, kwa morago",
        channel="ussd",
        example={"clinic": "Tlokweng Main Clinic Extension", "when": "Labotlhano 31/12 ka 16:30"},
        note="Ee (4), Nnyaa (5), tlhomamisa (45), Kwa morago (58); a positive question ('do you confirm that you "
        "cannot come') instead of a negative one that 'Yes' answers ambiguously: reviewers' change (issue 17), awaiting native review.",
    ),
    "appointment_recovery": Text(
        en="Thusa: we missed you at {clinic} on {day}. Reply 2 to choose a new time.",
        tn="Thusa: ga re a go bona kwa {clinic} ka {day}. Araba ka 2 go tlhopha nako e nngwe.",
        example={"clinic": "Tlokweng Main Clinic Extension", "day": "Labotlhano 31/12"},
        note="The recovery SMS after a missed visit (issue 17): araba (51), tlhopha (56), nako e nngwe as in "
        "ussd_slots_menu; 'ga re a go bona' (we did not see you) is built. Awaiting native review.",
    ),
    "appointment_recovery_help": Text(
        en="Thusa: you missed your visit to {clinic} on {day}. Reply 2 to choose a new time.",
        tn="Thusa: o tlhaetse go etela {clinic} ka {day}. Araba ka 2 go tlhopha nako e nngwe.",
        example={"clinic": "Tlokweng Main Clinic Extension", "day": "Labotlhano 31/12"},
        note="etela (27), araba (51), tlhopha (56); 'o tlhaetse' (you missed) is built. Awaiting native review.",
    ),
}
