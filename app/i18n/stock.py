"""Texts of clinic stock sent by SMS: low-stock and manual alerts, and the receipts of staff USSD actions.

``{item}`` is stock.display_name (at most 24 GSM-7 characters), ``{unit}`` stock.display_unit (at most
12), ``{clinic}`` Clinic.sms_name (30). LANGUAGE.md 1.6 warns Setswana has few stock words: "stock" and "PIN"
stay English (69, 76); every stock phrase here is built and waits for a nurse's review.
"""

from __future__ import annotations

from app.i18n.text import Text

STOCK_TEXTS: dict[str, Text] = {
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
}
