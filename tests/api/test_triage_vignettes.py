"""Issue 14's acceptance table: clinical vignettes walked through the REST API and through the chat flow.

Each vignette is a patient as a pharmacist would describe them: the answers that differ from a calm adult with a
fungal rash on the trunk (no warning sign ticked), the expected level and the medicines expected on offer (first
choice first; ``()`` none). Every red flag alone and combined, by age group and body site, the conditions of the
review, OTC medicine sellers, and plain cases that must not escalate (over-referral has a cost too).

REST: ``POST /api/v1/consultations`` (multipart, the red flags as repeated parts or one comma-separated part),
the analysis job, ``GET`` the recommendation. Chat: the real engine and skin flow, answering every question with
Telegram buttons (the screen by toggling and Done) or WhatsApp typed numbers, then the recommendation as the job
writes it. Both must agree with the table, and every reply must fit 700 characters.
"""

from __future__ import annotations

import io
import itertools
import uuid
from functools import cache

import pytest
from sqlalchemy import select

from app.extensions import db
from app.messaging import inbox
from app.messaging.envelopes import InboundMessage, Media
from app.models import Consultation, Medication
from app.models.consultation import STATUS_QUEUED
from app.services import skin_advice, skin_questions, triage
from bots import engine
from tests.factories import bearer, make_user, sign_in
from tests.photos import encode, sample_photo
from workers.inference import analyse_consultation

# Run untraced: the vignettes check clinical outcomes, whose lines tests/services/test_triage.py covers rule by
# rule; under the coverage tracer the 172 walks through the API and the chat cost the suite about 20 s.
pytestmark = pytest.mark.untraced

CALM = {"condition": "fungal", "age_group": "y18_to_59", "pregnant": False, "duration": "w1_to_2",
        "body_site": "trunk_limbs", "itch": True, "pain": False, "spreading": False, "fever": False,
        "blisters": "none", "mole_change": False, "open_sore": "no", "treatment_failed": False, "red_flags": []}  # fmt: skip
NO = ()
ANTIFUNGALS = ("clotrimazole-cream", "miconazole-cream", "terbinafine-cream", "whitfields-ointment",
               "ketoconazole-shampoo")  # fmt: skip
ECZEMA = ("emulsifying-ointment", "hydrocortisone-cream")
SCABICIDES = ("permethrin-cream", "benzyl-benzoate-emulsion")
BITE = ("hydrocortisone-cream", "calamine-lotion", "cetirizine-tablets", "chlorphenamine-tablets")
CHILD = {"age_group": "y1_to_9", "pregnant": None}
INFANT = {"age_group": "m3_to_12", "pregnant": None}
OLDER = {"age_group": "y60_plus", "pregnant": None}

# (id, changes to CALM, level, medicines, site type). Levels: self_care < pharmacy < clinic < clinic_today < urgent.
VIGNETTES = [
    # --- plain cases: must not escalate ------------------------------------------------------------------------
    ("tinea-adult-trunk", {}, "self_care", ANTIFUNGALS, None),
    ("tinea-older-feet", {**OLDER, "body_site": "hands_feet"}, "self_care", ANTIFUNGALS, None),
    # 1-9 years includes 1-year-olds: nothing with a 2-year (Whitfield's, benzyl benzoate, chlorphenamine) or a
    # 16-year (terbinafine cream) limit.
    ("tinea-child-feet", {**CHILD, "body_site": "hands_feet"}, "self_care",
     ("clotrimazole-cream", "miconazole-cream", "ketoconazole-shampoo"), None),
    ("eczema-adult-arm", {"condition": "eczema"}, "self_care", ECZEMA, None),
    ("eczema-adult-face", {"condition": "eczema", "body_site": "face"}, "self_care", ("emulsifying-ointment",), None),
    ("acne-teen-face", {"condition": "acne", "age_group": "y16_to_17", "body_site": "face"}, "self_care",
     ("benzoyl-peroxide-gel",), None),
    ("scabies-adult", {"condition": "scabies"}, "pharmacy", SCABICIDES, None),
    ("scabies-child-many-spots", {"condition": "scabies", **CHILD, "red_flags": ["many_lesions"]}, "pharmacy",
     ("permethrin-cream",), None),
    ("impetigo-child-face-crusts", {"condition": "impetigo", **CHILD, "body_site": "face",
                                    "red_flags": ["pus_or_crusts"]}, "pharmacy", ("chlorhexidine-wash",), None),
    ("urticaria-adult", {"condition": "urticaria"}, "self_care", ("cetirizine-tablets", "chlorphenamine-tablets"),
     None),
    ("urticaria-60-plus-not-sedated", {"condition": "urticaria", **OLDER}, "self_care", ("cetirizine-tablets",),
     None),
    ("urticaria-pregnant", {"condition": "urticaria", "pregnant": True}, "self_care", ("chlorphenamine-tablets",),
     None),
    ("bite-adult-arm", {"condition": "insect_bite"}, "self_care", BITE, None),
    ("bite-child", {"condition": "insect_bite", **CHILD}, "self_care", ("calamine-lotion",), None),
    ("burn-small-adult", {"condition": "burn"}, "self_care", ("non-adherent-dressing", "paracetamol-tablets"), None),
    ("cold-sore-adult-lip", {"condition": "cold_sore", "body_site": "face"}, "self_care", ("aciclovir-cream",), None),
    ("new-medicine-alone", {"condition": "eczema", "red_flags": ["new_medicine"]}, "self_care", ECZEMA, None),
    ("acne-pustules", {"condition": "acne", "age_group": "y16_to_17", "body_site": "face",
                       "red_flags": ["pus_or_crusts"]}, "self_care", ("benzoyl-peroxide-gel",), None),
    # --- each red flag of the screen alone ------------------------------------------------------------------------
    ("numb-pale-patch-called-fungal", {"red_flags": ["numb_patch"]}, "clinic", NO, None),
    ("hives-swollen-lips", {"condition": "urticaria", "red_flags": ["airway_swelling"]}, "urgent", NO, None),
    ("mouth-sores-eczema", {"condition": "eczema", "red_flags": ["mucosal_sores"]}, "clinic", NO, None),
    ("weak-immunity-tinea", {"red_flags": ["weak_immunity"]}, "clinic", NO, None),
    ("black-scab-after-dead-goat", {"condition": "insect_bite", "red_flags": ["black_scab"]}, "urgent", NO, None),
    ("infected-eczema", {"condition": "eczema", "red_flags": ["pus_or_crusts"]}, "clinic", NO, None),
    ("painless-lump-leg", {"condition": "unsure", "red_flags": ["painless_lump"]}, "clinic", NO, None),
    ("deep-burn", {"condition": "burn", "red_flags": ["large_or_deep_burn"]}, "urgent", NO, None),
    ("dark-streak-in-nail", {"condition": "mole", "body_site": "hands_feet",
                             "red_flags": ["dark_spot_sole_palm_nail"]}, "clinic", NO, None),
    ("dark-spot-sole-called-fungal", {"body_site": "hands_feet", "red_flags": ["dark_spot_sole_palm_nail"]},
     "clinic", NO, None),
    ("bleaching-tinea-incognito", {"red_flags": ["bleaching_cream"]}, "pharmacy", ANTIFUNGALS, None),
    ("extensive-tinea", {"red_flags": ["many_lesions"]}, "clinic", NO, None),
    # --- combined, by age and site ----------------------------------------------------------------------------------
    ("chickenpox-like-child", {"condition": "unsure", **CHILD, "fever": True, "blisters": "local",
                               "red_flags": ["many_lesions"]}, "urgent", NO, None),
    ("measles-like-child", {"condition": "unsure", **CHILD, "fever": True, "red_flags": ["many_lesions"]},
     "clinic_today", NO, None),
    ("mpox-like-adult", {"condition": "unsure", "fever": True, "blisters": "local",
                         "red_flags": ["mucosal_sores", "many_lesions"]}, "urgent", NO, None),
    ("sjs-mouth-sores-blisters", {"condition": "unsure", "blisters": "local", "red_flags": ["mucosal_sores"]},
     "urgent", NO, None),
    ("sjs-new-medicine-blisters", {"condition": "eczema", "blisters": "local", "red_flags": ["new_medicine"]},
     "urgent", NO, None),
    ("mouth-sores-and-fever", {"condition": "unsure", "fever": True, "red_flags": ["mucosal_sores"]}, "urgent", NO,
     None),
    ("drug-rash-widespread", {"condition": "eczema", "red_flags": ["new_medicine", "many_lesions"]}, "clinic", NO,
     None),
    ("eczema-febrile-60", {"condition": "eczema", **OLDER, "fever": True}, "clinic", NO, None),
    ("febrile-baby-4-months", {"condition": "eczema", **INFANT, "fever": True}, "urgent", NO, None),
    ("febrile-baby-6-weeks", {"condition": "unsure", "age_group": "under_2m", "pregnant": None, "fever": True},
     "urgent", NO, None),
    ("eczema-spreading", {"condition": "eczema", "spreading": True}, "clinic", NO, None),
    ("eczema-spreading-painful", {"condition": "eczema", "spreading": True, "pain": True}, "urgent", NO, None),
    ("bite-spreading-feverish", {"condition": "insect_bite", "spreading": True, "fever": True}, "urgent", NO, None),
    ("infected-bite", {"condition": "insect_bite", "red_flags": ["pus_or_crusts"]}, "clinic", NO, None),
    ("infected-scabies", {"condition": "scabies", "red_flags": ["pus_or_crusts", "many_lesions"]}, "clinic", NO,
     None),
    ("impetigo-many-patches", {"condition": "impetigo", **CHILD, "red_flags": ["many_lesions"]}, "clinic", NO,
     None),
    ("hiv-shingles", {"condition": "shingles", "red_flags": ["weak_immunity"]}, "urgent", NO, None),
    ("hiv-infected-rash", {"condition": "eczema", "red_flags": ["weak_immunity", "pus_or_crusts"]}, "urgent", NO,
     None),
    ("chemo-fever", {"condition": "unsure", "fever": True, "red_flags": ["weak_immunity"]}, "urgent", NO, None),
    ("transplant-widespread", {"red_flags": ["weak_immunity", "many_lesions"]}, "urgent", NO, None),
    ("numb-patch-bleaching", {"red_flags": ["numb_patch", "bleaching_cream"]}, "clinic", NO, None),
    ("bleaching-eczema", {"condition": "eczema", "red_flags": ["bleaching_cream"]}, "pharmacy",
     ("emulsifying-ointment",), None),
    ("black-scab-and-fever", {"condition": "unsure", "fever": True, "red_flags": ["black_scab"]}, "urgent", NO, None),
    ("child-bee-sting-throat", {"condition": "insect_bite", **CHILD, "red_flags": ["airway_swelling"]}, "urgent", NO,
     None),
    ("painless-lump-over-knee", {"condition": "unsure", "body_site": "joint", "red_flags": ["painless_lump"]},
     "clinic_today", NO, None),
    ("ulcer-on-face", {"condition": "ulcer", "body_site": "face"}, "urgent", NO, None),
    ("ulcer-over-joint", {"condition": "ulcer", "body_site": "joint"}, "urgent", NO, None),
    ("old-sore-over-ankle", {"condition": "unsure", "body_site": "joint", "open_sore": "w2_plus"}, "urgent", NO, None),
    ("ulcer-leg", {"condition": "ulcer"}, "clinic", NO, None),
    ("dog-bite-child", {"condition": "animal_bite", **CHILD}, "urgent", NO, None),
    ("human-bite-hand", {"condition": "animal_bite", "body_site": "hands_feet"}, "urgent", NO, None),
    ("shingles-trunk", {"condition": "shingles", "pain": True}, "clinic_today", NO, None),
    ("shingles-face", {"condition": "shingles", "body_site": "face"}, "urgent", NO, None),
    ("shingles-pregnant", {"condition": "shingles", "pregnant": True}, "urgent", NO, None),
    ("cellulitis-leg", {"condition": "cellulitis"}, "clinic_today", NO, None),
    ("cellulitis-face", {"condition": "cellulitis", "body_site": "face"}, "urgent", NO, None),
    ("cellulitis-baby", {"condition": "cellulitis", **INFANT}, "urgent", NO, None),
    ("burn-hand", {"condition": "burn", "body_site": "hands_feet"}, "urgent", NO, None),
    ("burn-over-elbow", {"condition": "burn", "body_site": "joint"}, "urgent", NO, None),
    ("burn-child-blister", {"condition": "burn", **CHILD, "blisters": "local"}, "urgent", NO, None),
    ("burn-60-blister", {"condition": "burn", **OLDER, "blisters": "local"}, "clinic", NO, None),
    ("eczema-herpeticum", {"condition": "eczema", "blisters": "local", "pain": True}, "urgent", NO, None),
    ("kerion", {"body_site": "scalp", "pain": True, **CHILD}, "urgent", NO, None),
    ("scalp-ringworm", {"body_site": "scalp", **CHILD}, "clinic", NO, None),
    ("cold-sore-near-eye", {"condition": "cold_sore", "body_site": "eye"}, "urgent", NO, None),
    ("neonatal-cold-sore", {"condition": "cold_sore", "age_group": "under_2m", "pregnant": None}, "urgent", NO,
     None),
    ("scabies-6-weeks", {"condition": "scabies", "age_group": "under_2m", "pregnant": None}, "clinic", NO, None),
    ("hives-8-weeks", {"condition": "urticaria", "duration": "over_6w"}, "clinic", NO, None),
    ("changing-mole", {"condition": "mole", "mole_change": True}, "clinic", NO, None),
    ("tinea-pregnant", {"pregnant": True}, "clinic", NO, None),
    ("acne-child", {"condition": "acne", **CHILD}, "clinic", NO, None),
    # --- who is asking: an OTC medicine seller (class C only; nothing is confirmed class C yet) --------------------
    ("seller-plain-tinea", {}, "pharmacy", NO, "otc_seller"),
    ("seller-scabies", {"condition": "scabies"}, "pharmacy", NO, "otc_seller"),
    ("seller-febrile-eczema", {"condition": "eczema", "fever": True}, "clinic", NO, "otc_seller"),
    ("seller-swollen-lips", {"condition": "urticaria", "red_flags": ["airway_swelling"]}, "urgent", NO,
     "otc_seller"),
    ("pharmacy-site-plain-tinea", {}, "self_care", ANTIFUNGALS, "pharmacy"),
]  # fmt: skip
IDS = [vignette[0] for vignette in VIGNETTES]
_ids = itertools.count(1)


def test_the_table_covers_every_red_flag_level_age_group_and_condition():
    for name, changes, *_ in VIGNETTES:  # the chat records the ticks in the screen's order
        ticked = changes.get("red_flags", [])
        assert ticked == [flag for flag in triage.RED_FLAGS if flag in ticked], name
    flags = {flag for _, changes, *_ in VIGNETTES for flag in changes.get("red_flags", [])}
    assert flags == set(triage.RED_FLAGS)
    assert {level for _, _, level, *_ in VIGNETTES} == set(triage.LEVELS)
    ages = {changes.get("age_group", CALM["age_group"]) for _, changes, *_ in VIGNETTES}
    assert {"under_2m", "m3_to_12", "y1_to_9", "y16_to_17", "y18_to_59", "y60_plus"} <= ages
    conditions = {changes.get("condition", CALM["condition"]) for _, changes, *_ in VIGNETTES}
    assert conditions == set(triage.CONDITIONS)
    assert len(VIGNETTES) >= 60 and len(set(IDS)) == len(IDS)


@cache
def _photo() -> bytes:
    return encode(sample_photo(400, 300), "JPEG")


def _user(site_type: str | None):
    user = make_user("pharmacist", phone=f"+2332440{next(_ids):05d}")
    user.site_type = site_type
    db.session.commit()
    return user


def _codes(medication_ids) -> tuple[str, ...]:
    return tuple(db.session.get(Medication, uuid.UUID(str(m))).code for m in medication_ids)


def _form(answers: dict, as_one_part: bool) -> dict:
    form = {"image": (io.BytesIO(_photo()), "skin.jpg")}
    for name, value in answers.items():
        if value is None:
            continue
        if name == "red_flags":
            # Multipart has no list: repeat the part, or send one part with the ids separated by commas ("" = none).
            form[name] = ",".join(value) if as_one_part or not value else list(value)
        else:
            form[name] = str(value).lower() if isinstance(value, bool) else value
    return form


@pytest.mark.parametrize(("name", "changes", "level", "medicines", "site_type"), VIGNETTES, ids=IDS)
def test_rest(app, client, name, changes, level, medicines, site_type):
    user = _user(site_type)
    token = sign_in(app, user)["access_token"]
    answers = {**CALM, **changes}
    response = client.post("/api/v1/consultations", headers=bearer(token), content_type="multipart/form-data",
                           data=_form(answers, as_one_part=len(name) % 2 == 0))  # fmt: skip
    assert response.status_code == 201, response.get_json()
    created = response.get_json()
    assert created["red_flags"] == answers["red_flags"]
    assert analyse_consultation(created["id"]) == "done"
    recommendation = client.get(f"/api/v1/consultations/{created['id']}", headers=bearer(token)).get_json()[
        "recommendation"
    ]
    assert recommendation["level"] == level, recommendation["rule_ids"]
    assert _codes(recommendation["medication_ids"]) == medicines
    assert len(recommendation["advice"]) <= skin_advice.REPLY_MAX


def _chat_messages(answers: dict, channel: str) -> list[str]:
    """What the pharmacist sends for each question the flow asks: button ids, or typed numbers on WhatsApp."""
    messages = []
    for question in skin_questions.questions_for(answers["age_group"]):
        value = answers[question.field]
        if question.kind == skin_questions.MULTI:
            flags = [flag for flag, _ in question.options]
            if channel == "whatsapp":
                messages.append(" ".join(str(flags.index(flag) + 1) for flag in value) or "0")
            elif value:
                messages.extend([f"skin:red_flags:{flag}" for flag in value] + ["skin:red_flags:done"])
            else:
                messages.append("skin:red_flags:none")
        else:
            word = {True: "yes", False: "no"}.get(value, value) if isinstance(value, bool) else value
            messages.append(f"skin:{question.field}:{word}")
    return messages


@pytest.mark.parametrize(("name", "changes", "level", "medicines", "site_type"), VIGNETTES, ids=IDS)
def test_chat(app, name, changes, level, medicines, site_type):
    channel = "whatsapp" if len(name) % 2 else "telegram"
    address = f"+2332000{next(_ids):05d}" if channel == "whatsapp" else str(7700000 + next(_ids))
    user = _user(site_type)
    contact = inbox.contact_for(address)
    contact.user_id = user.id
    db.session.commit()
    answers = {**CALM, **changes}
    photo = (Media(content_type="image/jpeg", provider_media_id=f"file-{next(_ids)}"),)
    for number, text in enumerate(["", *_chat_messages(answers, channel)]):
        message, _ = inbox.store_inbound(InboundMessage(channel=channel, provider=channel,
                                                        provider_id=f"v-{next(_ids)}", sender=address, text=text,
                                                        media=photo if number == 0 else ()))  # fmt: skip
        db.session.commit()
        engine.handle_message(str(message.id))
    db.session.expire_all()
    consultation = db.session.scalar(select(Consultation).where(Consultation.contact_id == contact.id))
    assert consultation.status == STATUS_QUEUED, "the flow did not reach the end of the questions"
    assert consultation.red_flags == answers["red_flags"]
    recommendation = skin_advice.recommend(consultation)  # what the analysis job writes and sends
    assert recommendation.level == level, recommendation.rule_ids
    assert _codes(recommendation.medication_ids) == medicines
    assert len(recommendation.advice) <= skin_advice.REPLY_MAX
