"""Texts of the USSD menus: what both menus share (errors, invalid choices, navigation) and the staff stock menu.

Every entry is channel ``ussd``: at most 160 characters after ``CON``/``END``. ``{item}`` is stock.display_name (at most 24 GSM-7 characters), ``{unit}`` stock.display_unit (at most
12), ``{clinic}`` Clinic.sms_name (30). LANGUAGE.md 1.6 warns Setswana has few stock words: "stock" and "PIN"
stay English (69, 76); every stock phrase here is built and waits for a nurse's review.
"""

from __future__ import annotations

from app.i18n.text import Text

USSD_TEXTS: dict[str, Text] = {
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
    "ussd_invalid_choice": Text(
        en="Please choose one of the numbers shown.\n{menu}",
        tn="Tsweetswee tlhopha nomoro e e bontshitsweng.\n{menu}",
        channel="ussd",
        example={"menu": "1 Confirm\n2 Change date\n3 I cannot come"},
        note="Tsweetswee (6), tlhopha (56), nomoro (67); 'e e bontshitsweng' (that is shown) is built.",
    ),
    "ussd_staff_pin": Text(
        en="Thusa staff menu.\nEnter your 4-digit PIN:",
        tn="Lenaneo la badiredi ba Thusa.\nTsenya PIN ya gago (dinomoro di le 4):",
        channel="ussd",
        note="lenaneo (62, uncertain), badiredi (20), Tsenya PIN (55, 76), nomoro (67) with 'di le 4' (3.2).",
    ),
    "ussd_staff_wrong_pin": Text(
        en="Wrong PIN. Tries left: {tries}.\nEnter your PIN:",
        tn="PIN e fosagetse. Diteko tse di setseng: {tries}.\nTsenya PIN:",
        channel="ussd",
        example={"tries": 4},
        note="e fosagetse (77), Tsenya (55); 'Diteko tse di setseng' (tries left) says what the number is: reviewers' change (issue 17), awaiting native review.",
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
        en="{clinic}\n1 Check stock\n2 Receive\n3 Dispense\n4 Count\n5 Low stock\n6 Today's visits\n7 Language\n8 Trace",
        tn="{clinic}\n1 Bona stock\n2 Amogela\n3 Aba\n4 Bala\n5 Stock e e kwa tlase\n6 Diketelo tsa gompieno\n7 Puo\n8 Batla",
        channel="ussd",
        example={"clinic": "Tlokweng Main Clinic Extension"},
        note="amogela (71), aba (72), bala (73, uncertain), kwa tlase (74), gompieno (30), puo (64); 'Bona' (see) "
        "and 'Diketelo' (visits, from etela 27; replaces 'Ditetelo': reviewers' change (issue 17), awaiting native review) are built; '8 Batla' (look for: "
        "tracing patients who missed a visit) is built, awaiting native review.",
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
        tn="Gompieno: diketelo {total}, ba tlile {attended}.\nTsenya dinomoro tse 4 tsa bofelo tsa mogala.\n0 Kwa "
        "morago",
        channel="ussd",
        example={"total": 999, "attended": 999},
        note="gompieno (30), tsenya (55), nomoro (67), mogala (68), Kwa morago (58); 'diketelo' (replaces "
        "'ditetelo': reviewers' change (issue 17), awaiting native review), 'ba tlile' (who came) and 'tsa bofelo' (the last) are built; shortened so that "
        "ussd_staff_no_visit fits above it (the screen was 191 characters and lost its menu).",
    ),
    "ussd_staff_four_digits": Text(
        en="Please enter 4 digits.",
        tn="Tsweetswee tsenya dinomoro di le 4.",
        channel="ussd",
        note="Tsweetswee (6), tsenya (55), nomoro (67), 'di le 4' (3.2).",
    ),
    "ussd_staff_no_visit": Text(
        en="No visit to mark today for a phone ending {digits}.",
        tn="Ga go na ketelo ya mogala o o felang ka {digits}.",
        channel="ussd",
        example={"digits": "4567"},
        note="mogala (68); 'ketelo' (visit, from etela 27) and 'o o felang ka' (that ends with, from fela 75) are "
        "built; shortened for the screen above (issue 17), awaiting native review.",
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
    "ussd_staff_trace": Text(
        en="To trace: {count} patients who missed a visit.\nEnter the last 4 digits of the phone.\n0 Back",
        tn="Go batlwa: ba le {count} ba ba tlhaetseng ketelo.\nTsenya dinomoro tse 4 tsa bofelo tsa "
        "mogala.\n0 Kwa morago",
        channel="ussd",
        example={"count": 9999},
        note="tsenya (55), nomoro (67), mogala (68), Kwa morago (58); 'go batlwa' (to be looked "
        "for), 'ba ba tlhaetseng ketelo' (who missed a visit) are built (issue 17), awaiting native review.",
    ),
    "ussd_staff_no_trace": Text(
        en="No one to trace with a phone ending {digits}.",
        tn="Ga go na ope yo mogala o felang ka {digits}.",
        channel="ussd",
        example={"digits": "4567"},
        note="mogala (68); 'o felang ka' (from fela 75) is built, awaiting native review.",
    ),
    "ussd_staff_trace_outcome": Text(
        en="{visit}\n1 Reached, rebooked\n2 Reached, declined\n3 Unreachable\n4 Transferred out\n5 Died\n0 Back",
        tn="{visit}\n1 O bonwe, o tla tla\n2 O bonwe, o gannye\n3 Ga a bonwe\n4 O fudugetse kwa kokelwana e nngwe"
        "\n5 O tlhokafetse\n0 Kwa morago",
        channel="ussd",
        example={"visit": "Missed 31/12 ...4567"},
        note="kokelwana (13, uncertain), Kwa morago (58); 'o bonwe' (was reached), 'o gannye' (refused), "
        "'o fudugetse' (moved) and 'o tlhokafetse' (passed away, the respectful word) are built (issue 17), "
        "awaiting native review.",
    ),
    "ussd_staff_trace_label": Text(
        en="Missed {date} ...{digits}",
        tn="Ga a tla {date} ...{digits}",
        channel="ussd",
        example={"date": "31/12", "digits": "4567"},
        note="'ga a tla' (did not come) is built from tla (28), awaiting native review.",
    ),
    "ussd_staff_traced": Text(
        en="Saved: {visit}.",
        tn="Go bolokilwe: {visit}.",
        channel="ussd",
        example={"visit": "Ga a tla 31/12 ...4567"},
        note="As ussd_staff_saved.",
    ),
    "ussd_staff_language": Text(
        en="Choose language:\n1 English\n2 Setswana\n0 Back",
        tn="Tlhopha puo:\n1 Sekgoa\n2 Setswana\n0 Kwa morago",
        channel="ussd",
        note="LANGUAGE.md section 5's 'Tlhopha puo' (56, 64), Sekgoa (65), Kwa morago (58).",
    ),
}
