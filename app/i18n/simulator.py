"""Labels of the phone simulator page: channel ``web``, shown in the browser at /simulator, never sent."""

from __future__ import annotations

from app.i18n.text import Text

SIMULATOR_TEXTS: dict[str, Text] = {
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
    "sim_answer_review": Text(
        en="Answer as the clinician",
        tn="Araba jaaka ngaka",
        channel="web",
        note="ngaka (16) for clinician; built, needs review.",
    ),
    "sim_review_note": Text(
        en="Second opinion: after a triage reply, tap Ask a clinician; the demo clinician's answer then arrives here.",
        tn="Kakanyo ya bobedi: morago ga karabo, tobetsa Botsa ngaka; karabo ya ngaka ya teko e tla tla fano.",
        channel="web",
        note="ngaka (16); the rest is built, needs review.",
    ),
    "sim_review_answered": Text(
        en="The demo clinician answered; the answer is on its way to the pharmacist's chat.",
        tn="Ngaka ya teko e arabile; karabo e ya kwa puisanong ya rakhemisi.",
        channel="web",
        note="ngaka (16); rakhemisi, puisano built, needs review.",
    ),
    "sim_review_none": Text(
        en="No second opinion is waiting: ask a clinician from the pharmacist's chat first.",
        tn="Ga go na kakanyo ya bobedi e e emetseng: botsa ngaka go tswa mo puisanong ya rakhemisi pele.",
        channel="web",
        note="ngaka (16); the rest is built, needs review.",
    ),
}
