"""Catalog texts of second opinions and follow-up: asking a clinician, the answer, photo consent, the check-in.

Channel ``chat`` (Telegram and WhatsApp, 1,024 characters) for what the pharmacist reads, ``button`` (20
characters) for buttons, ``sms`` (one GSM-7 segment) for the overdue alert to clinicians. None of the Setswana is
reviewed: ``ngaka`` (doctor, glossary 16; it also means a traditional healer) stands for "clinician", and the skin
and clinical words are built, as in :mod:`.skin`.
"""

from __future__ import annotations

from app.i18n.text import Text

_BUILT = "ngaka (16) for clinician, which can also mean a traditional healer; the rest built, needs review."
_ADVICE = ("Apply the cream twice a day for 2 weeks and keep the skin dry. If the redness spreads, or fever starts, "
           "send the patient to the clinic the same day. Check the other children in the house.")  # fmt: skip


def _chat(en: str, tn: str, note: str = _BUILT, **example) -> Text:
    return Text(en=en, tn=tn, channel="chat", example=example, note=note)


def _button(en: str, tn: str, note: str = _BUILT) -> Text:
    return Text(en=en, tn=tn, channel="button", note=note)


def _sms(en: str, tn: str, note: str = _BUILT, **example) -> Text:
    return Text(en=en, tn=tn, channel="sms", example=example, note=note)


REVIEW_TEXTS: dict[str, Text] = {
    # --- asking a clinician ----------------------------------------------------------------------------------------
    "review_button_ask": _button("Ask a clinician", "Botsa ngaka"),
    "review_offer": _chat(
        "Thusa: want a clinician's second opinion on this consultation ({case})? Tap Ask a clinician.",
        "Thusa: a o batla kakanyo ya bobedi ya ngaka ka ga puisano e ({case})? Tobetsa Botsa ngaka.",
        case="2026-12-06, Eczema/dermatitis",
    ),
    "review_auto": _chat(
        "Thusa: this case ({case}) was sent to a clinician for a second opinion. The answer will come here within "
        "{hours} hour(s). Do not wait to act on the advice above.",
        "Thusa: kgang e ({case}) e romeletswe ngaka go bona kakanyo ya bobedi. Karabo e tla tla fano mo diureng "
        "di le {hours}. O se ka wa emela go dira se o se gakolotsweng fa godimo.",
        case="2026-12-06, Eczema/dermatitis",
        hours=24,
    ),
    "review_requested": _chat(
        "Thusa: a clinician will review this consultation ({case}); the answer will come here within {hours} "
        "hour(s). To add a note for the clinician, type it now.",
        "Thusa: ngaka e tla sekaseka puisano e ({case}); karabo e tla tla fano mo diureng di le {hours}. Go "
        "kwalela ngaka molaetsa, o kwale jaanong.",
        case="2026-12-06, Eczema/dermatitis",
        hours=24,
    ),
    "review_unstaffed": _chat(
        "Thusa: no clinician covers your pharmacy's queue at the moment, so the answer may be late. Follow the "
        "advice you were given; if the patient gets worse, send them to a clinic.",
        "Thusa: ga go na ngaka e e tlhokomelang lenaane la khemisi ya gago jaanong, karabo e ka diega. Latela "
        "kgakololo e o e neilweng; fa molwetse a nna maswe, mo romele kwa kokelwaneng.",
    ),
    "review_already": _chat(
        "Thusa: a clinician has already been asked about this consultation ({case}); the answer will come here.",
        "Thusa: ngaka e setse e botsitswe ka ga puisano e ({case}); karabo e tla tla fano.",
        case="2026-12-06, Eczema/dermatitis",
    ),
    "review_note_added": _chat(
        "Thusa: your note was added for the clinician.",
        "Thusa: molaetsa wa gago o okeleditswe go ngaka.",
    ),
    "review_not_found": _chat(
        "Thusa: that consultation cannot be reviewed: it is not yours, or its triage is not finished.",
        "Thusa: puisano eo ga e kgone go sekasekwa: ga se ya gago, kgotsa ga e ise e fele.",
    ),
    # --- the answer ------------------------------------------------------------------------------------------------
    "review_answer": _chat(
        "Thusa: a clinician answered about your consultation ({case}).\nDiagnosis: {diagnosis} ({confidence}).\n"
        "{level_line}\nAdvice: {advice}",
        "Thusa: ngaka e arabile ka ga puisano ya gago ({case}).\nBolwetse: {diagnosis} ({confidence}).\n"
        "{level_line}\nKgakololo: {advice}",
        case="2026-12-06, Eczema/dermatitis",
        diagnosis="Impetigo (L01.0)",
        confidence="likely",
        level_line="Level RAISED to: see a clinician today (the rules said: pharmacy treatment).",
        advice=_ADVICE,
    ),
    "review_level_same": _chat(
        "Level: {level} (as the rules said).",
        "Seemo: {level} (jaaka melao e buile).",
        level="hospital now, an emergency",
    ),
    "review_level_raised": _chat(
        "Level RAISED to: {level} (the rules said: {rules_level}).",
        "Seemo se OKEDITSWE go: {level} (melao e ne e re: {rules_level}).",
        level="hospital now, an emergency",
        rules_level="pharmacy treatment",
    ),
    "review_level_lowered": _chat(
        "Level lowered to: {level} (the rules said: {rules_level}).",
        "Seemo se fokoditswe go: {level} (melao e ne e re: {rules_level}).",
        level="pharmacy treatment",
        rules_level="hospital now, an emergency",
    ),
    "review_level_name_self_care": _sms("self-care", "go itlhokomela"),
    "review_level_name_pharmacy": _sms("pharmacy treatment", "kalafi ya khemisi"),
    "review_level_name_clinic": _sms("a clinic within 3 days", "kokelwana mo malatsing a 3"),
    "review_level_name_clinic_today": _sms("see a clinician today", "bona ngaka gompieno"),
    "review_level_name_urgent": _sms("hospital now, an emergency", "bookelong jaanong, tshoganyetso"),
    "review_confidence_confirmed": _sms("confirmed", "go netefaditswe"),
    "review_confidence_likely": _sms("likely", "go ka nna jalo"),
    "review_confidence_unsure": _sms("unsure", "ga go na bonnete"),
    # --- overdue ---------------------------------------------------------------------------------------------------
    "review_overdue_sms": _sms(
        "Thusa: a skin review ({level}) has waited {minutes} min, past its {target} min target. Please open the "
        "review queue.",
        "Thusa: tshekatsheko ya letlalo ({level}) e emetse metsotso e {minutes}, go feta {target}. Bula lenaane.",
        level="hospital now, an emergency",
        minutes=1440,
        target=1440,
    ),
    "review_overdue_unstaffed": _chat(
        "Thusa: no clinician has answered about the consultation ({case}) and none covers your queue now. Do not "
        "wait: follow the advice given; if the patient is worse, send them to a clinic or hospital now.",
        "Thusa: ga go ngaka e e arabileng ka ga puisano ({case}) e bile ga go na e e tlhokomelang lenaane jaanong. "
        "O se ka wa ema: latela kgakololo; fa molwetse a le maswe, mo romele kwa kokelwaneng kgotsa bookelong.",
        case="2026-12-06, Eczema/dermatitis",
    ),
    # --- consent ---------------------------------------------------------------------------------------------------
    "skin_consent_question": _chat(
        "While you wait: does the patient agree that these photos may be used to improve Thusa (kept without names "
        "or numbers)? Tap Yes or No. Without an answer, they are not used.",
        "Fa o ntse o emetse: a molwetse o dumela gore ditshwantsho tse di dirisiwe go tokafatsa Thusa (di bolokwa "
        "kwa ntle ga maina kgotsa dinomoro)? Tobetsa Ee kgotsa Nnyaa. Fa go sena karabo, ga di dirisiwe.",
    ),
    "skin_consent_yes": _chat(
        "Thusa: thank you; the patient's agreement is recorded.",
        "Thusa: re a leboga; tumelano ya molwetse e kwadilwe.",
    ),
    "skin_consent_no": _chat(
        "Thusa: recorded: these photos will not be used to improve the service.",
        "Thusa: go kwadilwe: ditshwantsho tse ga di kitla di dirisiwa go tokafatsa tirelo.",
    ),
    # --- follow-up -------------------------------------------------------------------------------------------------
    "follow_up_question": _chat(
        "Thusa: how is the patient from your consultation ({case})?",
        "Thusa: molwetse wa puisano ya gago ({case}) o tsogile jang?",
        case="2026-12-06, Eczema/dermatitis",
    ),
    "follow_up_better": _button("Better", "O botoka"),
    "follow_up_same": _button("Same", "O ntse jalo"),
    "follow_up_worse": _button("Worse", "O maswe go feta"),
    "follow_up_clinic": _button("Went to clinic", "O ile kokelwaneng"),
    "follow_up_thanks": _chat(
        "Thusa: thank you, recorded: {outcome}.",
        "Thusa: re a leboga, go kwadilwe: {outcome}.",
        outcome="Went to clinic",
    ),
    "follow_up_reopened": _chat(
        "Thusa: recorded: worse. The consultation ({case}) is open again. Ask a clinician for a second opinion? If "
        "the patient is very unwell, send them to a clinic or hospital now.",
        "Thusa: go kwadilwe: o maswe go feta. Puisano ({case}) e bulegile gape. A o botse ngaka? Fa molwetse a "
        "lwala thata, mo romele kwa kokelwaneng kgotsa bookelong jaanong.",
        case="2026-12-06, Eczema/dermatitis",
    ),
}
