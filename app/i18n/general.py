"""Texts of the service as a whole: the password reset and phone proof codes, the STOP/START/HELP and language
keyword replies, the reply to a message nobody understood. Glossary numbers refer to docs/setswana-glossary.md
section 1.
"""

from __future__ import annotations

from app.i18n.text import Text

GENERAL_TEXTS: dict[str, Text] = {
    "password_reset_code": Text(
        en="Thusa: your password reset code is {code}. It expires in {minutes} minutes. Do not share it.",
        tn="Thusa: nomoro ya go fetola password ke {code}. E fela morago ga metsotso e le {minutes}. "
        "O se e romelele ope.",
        example={"code": "123456", "minutes": 15},
        note="nomoro (67), fetola (48), romela (52) from docs/setswana-glossary.md; 'metsotso' (minutes) and the "
        "expiry phrase are built, not sourced.",
    ),
    "phone_proof_code": Text(
        en="Thusa: your code to prove this phone number is {code}. It expires in {minutes} minutes. Do not share it.",
        tn="Thusa: nomoro ya go tlhomamisa nomoro ya mogala o ke {code}. E fela morago ga metsotso e le {minutes}. "
        "O se e romelele ope.",
        example={"code": "123456", "minutes": 10},
        note="tlhomamisa (45), nomoro ya mogala (67, 68), romela (52); the expiry phrase as in password_reset_code; "
        "'o ke' (this one is) is built.",
    ),
    "opt_out_confirmation": Text(
        en="Thusa: you will get no more messages from us. Reply START to get them again.",
        tn="Thusa: ga o kitla o amogela melaetsa gape. Araba ka START go e amogela gape.",
        note="amogela (71), melaetsa (23), araba (51); 'ga o kitla' (you will not) is built.",
    ),
    "opt_in_confirmation": Text(
        en="Thusa: welcome back. You will get our messages again. Reply STOP or EMISA to stop them.",
        tn="Thusa: o amogetswe gape. O tla amogela melaetsa gape. Araba ka STOP kgotsa EMISA go e emisa.",
        note="o amogetswe (12), emisa (53); EMISA named beside STOP (LANGUAGE.md section 4): reviewers' change (issue 17), awaiting native review.",
    ),
    "help": Text(
        en="Thusa: reply STOP or EMISA to stop messages, SETSWANA or ENGLISH to change language. For other help, "
        "call your clinic.",
        tn="Thusa: araba ka STOP kgotsa EMISA go emisa melaetsa, SETSWANA kgotsa ENGLISH go fetola puo. Thuso e "
        "nngwe: leletsa kokelwana.",
        note="fetola puo (48, 64), leletsa (57), kokelwana (13, uncertain); 'kgotsa' (or) is common but unsourced. "
        "EMISA named beside STOP: reviewers' change (issue 17), awaiting native review; 'ya gago' dropped to stay one segment.",
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
}
