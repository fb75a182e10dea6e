"""Catalog texts of skin consultations: chat linking, the triage questions and the analysis reply.

Channel ``chat`` (Telegram and WhatsApp): at most 1,024 characters (a WhatsApp interactive message body), no
GSM-7 requirement, but none of LANGUAGE.md's trap characters either. Button titles are at most 20 characters
(WhatsApp reply buttons). The pharmacists are in Ghana and work in English; Setswana is here because the catalog
rule is both languages, and none of it is reviewed: LANGUAGE.md's glossary is Botswana clinic vocabulary and has
no skin words, so ``letlalo`` (skin), ``setshwantsho`` (photo, picture) and every clinical term are built, not
sourced. Glossary numbers refer to docs/setswana-glossary.md section 1.
"""

from __future__ import annotations

from app.i18n.text import Text

_BUILT = "Skin and clinical words (letlalo, setshwantsho ...) are not in the glossary: built, needs review."


def _chat(en: str, tn: str, note: str = _BUILT, **example) -> Text:
    return Text(en=en, tn=tn, channel="chat", example=example, note=note)


def _button(en: str, tn: str, note: str = _BUILT) -> Text:
    return Text(en=en, tn=tn, channel="button", note=note)


SKIN_TEXTS: dict[str, Text] = {
    # --- linking -------------------------------------------------------------------------------------------------
    "skin_link_needed": _chat(
        "Thusa: to send skin photos, first link this chat to your pharmacist account. Ask Thusa for a link code "
        "(POST /api/v1/auth/chat-link) and send: {command} 123456",
        "Thusa: pele o romela ditshwantsho tsa letlalo, golaganya puisano e le akhaonto ya gago ya rakhemisi. "
        "Kopa nomoro ya kgolagano mo Thusa (POST /api/v1/auth/chat-link) mme o romele: {command} 123456",
        "romela (52), nomoro (67); golaganya, akhaonto, rakhemisi, puisano are built.",
        command="/link",
    ),
    "skin_link_done": _chat(
        "Thusa: this chat is now linked to the pharmacist account of {name}. Send a photo of the skin problem to "
        "start a consultation.",
        "Thusa: puisano e golaganngwe le akhaonto ya rakhemisi ya {name}. Romela setshwantsho sa bothata jwa "
        "letlalo go simolola.",
        "romela (52); the rest is built.",
        name="Akosua Mensah-Bonsu (Makola Pharmacy)",
    ),
    "skin_link_bad_code": _chat(
        "Thusa: that link code is wrong or has expired (codes last 15 minutes). Ask for a new one and try again.",
        "Thusa: nomoro ya kgolagano e fosagetse kgotsa nako ya yone e fetile (metsotso e le 15). Kopa e ntsha "
        "mme o leke gape.",
        "nomoro (67), e fosagetse (77), leka gape (78); the rest is built.",
    ),
    "skin_link_locked": _chat(
        "Thusa: too many wrong link codes were sent from this chat. No code works here for the next hour; then ask "
        "for a new one and try again.",
        "Thusa: go rometswe dinomoro tsa kgolagano tse di fosagetseng di le dintsi go tswa mo puisanong e. Ga go "
        "nomoro e e dirang fano mo oureng e e tlang; morago kopa e ntsha mme o leke gape.",
        "nomoro (67), e fosagetse (77), leka gape (78), oura (40); the rest is built.",
    ),
    "skin_send_photo": _chat(
        "Thusa: send a photo of the skin problem to start a consultation. Several photos are fine.",
        "Thusa: romela setshwantsho sa bothata jwa letlalo go simolola. O ka romela di le mmalwa.",
        "romela (52); the rest is built.",
    ),
    # --- questions -----------------------------------------------------------------------------------------------
    "skin_photo_added": _chat(
        "Photo {count} received.", "Setshwantsho sa {count} se amogetswe.", "amogela (71); built.", count=3
    ),
    "skin_question": _chat(
        "Question {number} of {total}: {question}",
        "Potso {number} ya {total}: {question}",
        "potso (question) is built.",
        number=12,
        total=12,
        question="Has it been treated for 2 weeks or more without getting better?",
    ),
    "skin_invalid_choice": _chat(
        "Please tap one of the buttons, or send its number.",
        "Tsweetswee tobetsa e nngwe ya dikonopo, kgotsa o romele nomoro ya yone.",
        "Tsweetswee (6), tobetsa (57), nomoro (67); dikonopo (buttons) is built.",
    ),
    "skin_q_condition": _chat(
        "What do you think it is? (Your impression; Thusa checks it against red flags.)",
        "O akanya gore ke eng? (Kakanyo ya gago; Thusa e tla e lekanya le matshwao a kotsi.)",
    ),
    "skin_q_age_group": _chat(
        "How old is the patient?", "Molwetse o na le dingwaga di le kae?", "molwetse (17), ngwaga (36); built."
    ),
    "skin_q_pregnant": _chat(
        "Is the patient pregnant, or could she be?",
        "A molwetse o imile, kgotsa a go ka nna jalo?",
        "molwetse (17); built.",
    ),
    "skin_q_duration": _chat("How long has it been there?", "E nnile teng sebaka se se kae?", "Built."),
    "skin_q_body_site": _chat(
        "Where is it? (If several places, choose the most serious.)",
        "E kae? (Fa e le mafelo a le mantsi, tlhopha le le masisi thata.)",
        "Tlhopha (56); built.",
    ),
    "skin_q_itch": _chat("Does it itch?", "A e a baba?"),
    "skin_q_pain": _chat("Is it painful?", "A e a botlhoko?"),
    "skin_q_spreading": _chat(
        "Is the redness or swelling spreading fast?", "A bohibidu kgotsa go ruruga go anama ka bonako?"
    ),
    "skin_q_fever": _chat(
        "Does the patient have a fever (38 C or more, or feels hot)?",
        "A molwetse o na le letshoroma (38 C kgotsa go feta, kgotsa o a fisa)?",
        "molwetse (17); built.",
    ),
    "skin_q_blisters": _chat("Are there blisters or peeling skin?", "A go na le dithuthuba kgotsa letlalo le a obuga?"),
    "skin_q_mole_change": _chat(
        "Is there a mole or dark spot that is changing, bleeding or oozing?",
        "A go na le lobadi lo lo fetogang, lo lo tswang madi kgotsa lo lo elelang?",
        "fetola (48); built.",
    ),
    "skin_q_open_sore": _chat(
        "Is there an open sore or ulcer? For how long?", "A go na le ntho e e bulegileng? Sebaka se se kae?"
    ),
    "skin_q_treatment_failed": _chat(
        "Has it been treated for 2 weeks or more without getting better?",
        "A e alafilwe dibeke di le 2 kgotsa go feta mme ga e a tokafala?",
        "dibeke di le 2 (34); built.",
    ),
    "skin_analysing": _chat(
        "Thank you. Thusa is checking the photo and your answers; the triage follows in a few seconds.",
        "Re a leboga. Thusa e sekaseka setshwantsho le dikarabo tsa gago; dipoelo di tla mo metsotswaneng.",
        "Re a leboga (7), karabo (51); built.",
    ),
    # --- buttons (at most 20 characters) -------------------------------------------------------------------------
    "opt_yes": _button("Yes", "Ee", "Ee (4)."),
    "opt_no": _button("No", "Nnyaa", "Nnyaa (5)."),
    "opt_condition_fungal": _button("Fungal/ringworm", "Lefero/ringworm"),
    "opt_condition_eczema": _button("Eczema/dermatitis", "Eczema"),
    "opt_condition_acne": _button("Acne", "Dipontshi/acne"),
    "opt_condition_scabies": _button("Scabies", "Sekgwapha/scabies"),
    "opt_condition_impetigo": _button("Impetigo", "Impetigo"),
    "opt_condition_urticaria": _button("Hives (urticaria)", "Hives"),
    "opt_condition_insect_bite": _button("Insect bite/sting", "Go lomiwa ke segokgo"),
    "opt_condition_burn": _button("Minor burn/scald", "Go sha"),
    "opt_condition_cold_sore": _button("Cold sore", "Cold sore"),
    "opt_condition_shingles": _button("Shingles", "Shingles"),
    "opt_condition_cellulitis": _button("Cellulitis", "Cellulitis"),
    "opt_condition_ulcer": _button("Ulcer/open sore", "Ntho e e bulegileng"),
    "opt_condition_mole": _button("Mole/dark spot", "Lobadi"),
    "opt_condition_unsure": _button("Not sure", "Ga ke itse"),
    "opt_age_under_2m": _button("Under 2 months", "Pele ga dikgwedi 2", "kgwedi (35), kwa tlase (74)."),
    "opt_age_m2_to_3": _button("2 to 3 months", "Dikgwedi 2 go 3", "kgwedi (35)."),
    "opt_age_m3_to_12": _button("3 to 12 months", "Dikgwedi 3 go 12", "kgwedi (35)."),
    "opt_age_y1_to_9": _button("1 to 9 years", "Dingwaga 1 go 9", "ngwaga (36)."),
    "opt_age_y10_to_15": _button("10 to 15 years", "Dingwaga 10 go 15", "ngwaga (36)."),
    "opt_age_y16_to_17": _button("16 to 17 years", "Dingwaga 16 go 17", "ngwaga (36)."),
    "opt_age_y18_to_59": _button("18 to 59 years", "Dingwaga 18 go 59", "ngwaga (36)."),
    "opt_age_y60_plus": _button("60 or older", "60 kgotsa go feta", "ngwaga (36)."),
    "opt_duration_under_1w": _button("Under 1 week", "Kwa tlase ga beke", "beke (34), kwa tlase (74)."),
    "opt_duration_w1_to_2": _button("1 to 2 weeks", "Dibeke 1 go 2", "beke (34)."),
    "opt_duration_w2_to_6": _button("2 to 6 weeks", "Dibeke 2 go 6", "beke (34)."),
    "opt_duration_over_6w": _button("Over 6 weeks", "Go feta dibeke 6", "beke (34)."),
    "opt_body_site_face": _button("Face", "Sefatlhego"),
    "opt_body_site_eye": _button("On/around the eye", "Gaufi le leitlho"),
    "opt_body_site_scalp": _button("Scalp", "Tlhogo"),
    "opt_body_site_hands_feet": _button("Hands or feet", "Diatla kgotsa dinao"),
    "opt_body_site_genitals": _button("Genital area", "Dikarolo tsa sephiri"),
    "opt_body_site_trunk_limbs": _button("Body, arms or legs", "Mmele/matsogo/maoto"),
    "opt_blisters_none": _button("No", "Nnyaa", "Nnyaa (5)."),
    "opt_blisters_local": _button("A few, in one place", "Di se kae"),
    "opt_blisters_widespread": _button("Widespread/peeling", "Di anametse"),
    "opt_open_sore_no": _button("No", "Nnyaa", "Nnyaa (5)."),
    "opt_open_sore_under_2w": _button("Yes, under 2 weeks", "Ee, pele ga beke 2", "Ee (4), beke (34)."),
    "opt_open_sore_w2_plus": _button("Yes, 2 weeks or more", "Ee, dibeke 2 +", "Ee (4), beke (34)."),
    # --- the analysis reply --------------------------------------------------------------------------------------
    "skin_result_quality_ok": _chat("Photo quality: good enough.", "Boleng jwa setshwantsho: bo siame."),
    "skin_result_retake": _chat(
        "Photo quality: please retake the photo. {tips}",
        "Boleng jwa setshwantsho: tsweetswee tsaya setshwantsho gape. {tips}",
        "Tsweetswee (6); built.",
        tips="Move closer so the problem fills the picture. Use daylight or a bright room. Hold the phone still "
        "and tap the screen to focus. Avoid direct sun or flash glare.",
    ),
    "skin_tip_too_small": _chat(
        "Move closer so the problem fills the picture.", "Atamela gore bothata bo tlale setshwantsho."
    ),
    "skin_tip_too_dark": _chat(
        "Use daylight or a bright room.", "Dirisa lesedi la motshegare kgotsa phaposi e e phatsimang."
    ),
    "skin_tip_too_bright": _chat("Avoid direct sun or flash glare.", "Tila letsatsi le le thamalang kgotsa flash."),
    "skin_tip_blurred": _chat(
        "Hold the phone still and tap the screen to focus.",
        "Tshwara mogala o sa tshikinyege mme o tobetse sekirini.",
        "mogala (68), tobetsa (57).",
    ),
    "skin_result_level_self_care": _chat(
        "Triage: SELF-CARE with an over-the-counter medicine.",
        "Tekolo: go itlhokomela ka molemo o o rekiwang fela.",
        "molemo (21); built.",
    ),
    "skin_result_level_pharmacy": _chat(
        "Triage: TREAT AT THE PHARMACY (pharmacist supplies and explains).",
        "Tekolo: alafa kwa khemising (rakhemisi o a neela le go tlhalosa).",
        "Built.",
    ),
    "skin_result_level_clinic": _chat(
        "Triage: REFER TO A CLINIC (soon).",
        "Tekolo: romela kwa kokelwaneng (ka bonako).",
        "romela (52), kokelwana (13, uncertain).",
    ),
    "skin_result_level_urgent": _chat(
        "Triage: URGENT REFERRAL - send to a clinic or hospital TODAY.",
        "Tekolo: KA BONAKO - romela kwa kokelwaneng kgotsa kokelong GOMPIENO.",
        "romela (52), kokelwana (13), kokelo (14), gompieno (30).",
    ),
    "skin_result_why": _chat(
        "Why: {reasons}",
        "Lebaka: {reasons}",
        "Built.",
        reasons="fever with spreading redness, heat or swelling (possible cellulitis).",
    ),
    "skin_result_medicines": _chat(
        "Medicines that fit:\n{medicines}",
        "Melemo e e tshwanelang:\n{medicines}",
        "melemo (21).",
        medicines="- Clotrimazole 1% cream: apply 2-3 times a day",
    ),
    "skin_result_no_medicines": _chat(
        "No medicine to give at the pharmacy: refer.",
        "Ga go na molemo o o ka neelwang kwa khemising: romela.",
        "molemo (21), romela (52).",
    ),
    "skin_result_refer_self_care": _chat(
        "Refer to a clinic if it spreads, fever starts, or it is no better after 2 weeks.",
        "Romela kwa kokelwaneng fa e anama, letshoroma le simologa, kgotsa e sa tokafale morago ga dibeke di le 2.",
        "romela (52), kokelwana (13), dibeke di le 2 (34).",
    ),
    "skin_result_refer_pharmacy": _chat(
        "Refer to a clinic if it spreads, fever starts, or it is no better after 2 weeks.",
        "Romela kwa kokelwaneng fa e anama, letshoroma le simologa, kgotsa e sa tokafale morago ga dibeke di le 2.",
        "romela (52), kokelwana (13), dibeke di le 2 (34).",
    ),
    "skin_result_refer_clinic": _chat(
        "Refer within a few days; sooner if it gets worse.",
        "Romela mo malatsing a se kae; ka bonako fa e nna maswe.",
        "romela (52), malatsi (32).",
    ),
    "skin_result_refer_urgent": _chat(
        "Refer now: do not wait to see if it improves.",
        "Romela jaanong: o se ka wa leta go bona fa e tokafala.",
        "romela (52), jaanong (44).",
    ),
    "skin_result_model_unvalidated": _chat(
        "The photo model is not validated on Ghanaian skin, so this triage comes from your answers only.",
        "Mmotlele wa ditshwantsho ga o a netefadiwa mo letlalong la Ghana; tekolo e e tswa mo dikarabong tsa gago fela.",
        "netefatsa (46), karabo (51); built.",
    ),
    "skin_result_model_labels": _chat(
        "Photo model (validated; not a diagnosis) suggests: {labels}",
        "Mmotlele wa ditshwantsho (o netefaditswe; ga se tlhatlhobo) o akantsha: {labels}",
        "netefatsa (46); built.",
        labels="tinea 62%, eczema 21%, psoriasis 9%",
    ),
    "skin_disclaimer": _chat(
        "Thusa supports, not replaces, your judgement; this is not a diagnosis.",
        "Thusa e thusa, ga e emele, tshekatsheko ya gago; se ga se tlhatlhobo ya bolwetse.",
        "thusa (54); built.",
    ),
    "skin_failed": _chat(
        "Thusa: sorry, no photo of this consultation could be analysed ({why}). Please send a new photo.",
        "Thusa: maswabi, ga go setshwantsho sa tekolo e se se ka sekasekwang ({why}). Tsweetswee romela se sentsha.",
        "maswabi (9), tsweetswee (6), romela (52); built.",
        why="the image has 100000000 pixels; the limit is 40000000",
    ),
    "skin_reject_unsupported_type": _chat(
        "not a JPEG, PNG, HEIC or WebP picture", "ga se setshwantsho sa JPEG, PNG, HEIC kgotsa WebP"
    ),
    "skin_reject_too_large": _chat("the file is too large", "faele e kgolo thata"),
    "skin_reject_too_many_pixels": _chat(
        "the picture has too many pixels", "setshwantsho se na le dipikselse di le dintsi thata"
    ),
    "skin_reject_too_compressed": _chat(
        "the picture has far more pixels than its file size allows for a photo",
        "setshwantsho se na le dipikselse di le dintsi thata go feta bogolo jwa faele",
    ),
    "skin_reject_too_large_to_decode": _chat(
        "the picture is too large to open", "setshwantsho se segolo thata go ka bulwa"
    ),
    "skin_reject_unreadable": _chat("the file could not be read", "faele ga e a balega"),
    "skin_reject_fetch_failed": _chat("the photo could not be downloaded", "setshwantsho ga se a kgona go tsenngwa"),
    # --- reasons (triage_rules.toml) -----------------------------------------------------------------------------
    "triage_reason_fever_spreading": _chat(
        "fever with spreading redness, heat or swelling (possible cellulitis).",
        "letshoroma le bohibidu kgotsa go ruruga go go anamang.",
    ),
    "triage_reason_eye": _chat("it is on or near the eye (risk to sight).", "e gaufi le leitlho (kotsi mo go boneng)."),
    "triage_reason_face_spreading": _chat(
        "spreading redness or swelling on the face (possible facial cellulitis).",
        "bohibidu kgotsa go ruruga go go anamang mo sefatlhegong.",
    ),
    "triage_reason_widespread_blisters": _chat(
        "widespread blisters or peeling skin (possible SJS/TEN, an emergency).",
        "dithuthuba kgotsa letlalo le le obugang mo mmeleng otlhe.",
    ),
    "triage_reason_infant_fever": _chat(
        "a baby under 3 months with fever is high risk.",
        "lesea le le kwa tlase ga dikgwedi di le 3 le le nang le letshoroma le mo kotsing.",
        "kgwedi (35), kwa tlase (74); built.",
    ),
    "triage_reason_young_infant": _chat(
        "babies under 3 months need a clinician for any skin problem.",
        "masea a a kwa tlase ga dikgwedi di le 3 a tlhoka ngaka.",
        "ngaka (16), kgwedi (35); built.",
    ),
    "triage_reason_infant_infection": _chat(
        "skin infections in babies under 1 year are outside pharmacy care.",
        "malwetse a letlalo mo maseeng a a kwa tlase ga ngwaga e le 1 ga a alafiwe kwa khemising.",
        "ngwaga (36); built.",
    ),
    "triage_reason_scabies_young_infant": _chat(
        "scabies under 2 months: no permethrin; a specialist treats it.",
        "sekgwapha mo leseeng le le kwa tlase ga dikgwedi di le 2: ga go permethrin.",
    ),
    "triage_reason_eczema_herpeticum": _chat(
        "painful blisters in eczema (possible eczema herpeticum).", "dithuthuba tse di botlhoko mo eczema."
    ),
    "triage_reason_acne_fulminans": _chat(
        "painful acne with fever (possible acne fulminans).", "acne e e botlhoko e na le letshoroma."
    ),
    "triage_reason_burn_site": _chat(
        "a burn on the face, hands, feet or genitals needs specialist care.",
        "go sha mo sefatlhegong, diatleng, dinaong kgotsa dikarolong tsa sephiri.",
    ),
    "triage_reason_burn_child": _chat(
        "a blistering burn in a young child.", "go sha go go nang le dithuthuba mo ngwaneng."
    ),
    "triage_reason_burn_not_minor": _chat(
        "a blistering burn at 60 or over.", "go sha go go nang le dithuthuba mo mogoloding."
    ),
    "triage_reason_burn_not_healed": _chat(
        "a burn not healed in 2 weeks.", "go sha go go sa fodang mo dibekeng di le 2.", "dibeke di le 2 (34); built."
    ),
    "triage_reason_mole": _chat(
        "a changing, bleeding or oozing mole must be checked quickly (possible skin cancer).",
        "lobadi lo lo fetogang kgotsa lo lo tswang madi lo tshwanetse go tlhatlhobiwa ka bonako.",
        "tshwanetse (29), fetola (48); built.",
    ),
    "triage_reason_non_healing_ulcer": _chat(
        "an open sore for 2 weeks or more (possible Buruli ulcer, yaws or cancer).",
        "ntho e e bulegileng dibeke di le 2 kgotsa go feta.",
        "dibeke di le 2 (34).",
    ),
    "triage_reason_pregnancy_prescription": _chat(
        "pregnancy: the usual treatment needs a prescription medicine.",
        "boimana: kalafi e e tlwaelegileng e tlhoka molemo wa ngaka.",
        "molemo (21), ngaka (16); built.",
    ),
    "triage_reason_treatment_failed": _chat(
        "no better after treatment (diagnosis may be wrong).", "ga e a tokafala morago ga kalafi."
    ),
    "triage_reason_needs_prescription": _chat(
        "it needs a prescription medicine (e.g. an oral antibiotic).",
        "e tlhoka molemo wa ngaka.",
        "molemo (21), ngaka (16).",
    ),
    "triage_reason_chronic_urticaria": _chat("hives for more than 6 weeks.", "hives dibeke di feta 6.", "beke (34)."),
    "triage_reason_kerion": _chat(
        "a painful swelling with pus on the scalp (possible kerion).", "go ruruga go go botlhoko mo tlhogong."
    ),
    "triage_reason_no_medicine_fits": _chat(
        "no pharmacy medicine suits this patient (age, pregnancy or body site).",
        "ga go molemo wa khemisi o o tshwanelang molwetse yo.",
        "molemo (21), molwetse (17).",
    ),
    "triage_reason_base_self_care": _chat(
        "no red flag in your answers.", "ga go letshwao la kotsi mo dikarabong tsa gago.", "karabo (51); built."
    ),
    "triage_reason_base_pharmacy": _chat(
        "no red flag; the usual treatment is supplied by a pharmacist.",
        "ga go letshwao la kotsi; kalafi e neelwa ke rakhemisi.",
    ),
    "triage_reason_base_clinic": _chat(
        "this condition needs a clinician (a prescription, tests or a procedure).",
        "bolwetse jo bo tlhoka ngaka.",
        "ngaka (16).",
    ),
    "triage_reason_base_urgent": _chat("this needs urgent care.", "se se tlhoka thuso ka bonako.", "thuso (54)."),
    # --- advice per condition ------------------------------------------------------------------------------------
    "triage_advice_fungal": _chat(
        "Keep the area dry, do not share towels, and treat athlete's foot too. No steroid cream on a fungal rash.",
        "Boloka lefelo le omile, o se abelane ditaolo, alafa le dinao. O se tlotse setlolo sa steroid mo lefero.",
    ),
    "triage_advice_eczema": _chat(
        "Use an emollient often and instead of soap; avoid what triggers it.",
        "Dirisa setlolo ka gale le go emisetsa sesepa.",
    ),
    "triage_advice_acne": _chat(
        "Wash twice a day with a mild cleanser; no oily products; do not pick. No steroid or bleaching creams.",
        "Tlhapa gabedi ka letsatsi; o se dirise dilo tse di mafura; o se kgwale. O se "
        "dirise ditlolo tsa steroid kgotsa tsa go sweufatsa.",
    ),
    "triage_advice_scabies": _chat(
        "Treat everyone in the household on the same day; hot-wash bedding and clothes. "
        "Itch can last weeks after cure.",
        "Alafa botlhe mo lelapeng ka letsatsi le le lengwe; tlhatswa dikobo ka metsi a a bothitho.",
        "letsatsi (32); built.",
    ),
    "triage_advice_impetigo": _chat(
        "Wash off crusts gently, keep nails short, separate towels; stay away from school "
        "or work until crusted over or treated.",
        "Tlhatswa makgapetla ka bonolo, kgaola dinala, ditaolo di farologane.",
    ),
    "triage_advice_urticaria": _chat(
        "Avoid known triggers. Swelling of lips, tongue or throat, or difficulty breathing is an emergency.",
        "Tila dilo tse di e bakang. Go ruruga ga dipounama, loleme kgotsa mometso ke tshoganyetso.",
    ),
    "triage_advice_insect_bite": _chat(
        "Cold compress; do not scratch. A sting in the mouth or throat, or breathing difficulty, is an emergency.",
        "Dirisa selo se se tsididi; o se ngwaye. Go longwa mo molomong kgotsa mo mometsong ke tshoganyetso.",
    ),
    "triage_advice_burn": _chat(
        "Cool under running water for 20 minutes; no ice, butter, toothpaste or creams; "
        "cover loosely. No aspirin under 16.",
        "Tsholela metsi a a tsididi metsotso e le 20; o se tlotse sepe; khurumetsa ka "
        "bonolo. Ga go aspirin kwa tlase ga dingwaga di le 16.",
        "ngwaga (36); built.",
    ),
    "triage_advice_cold_sore": _chat(
        "Start the cream at the first tingle; wash hands after touching; no kissing babies.",
        "Simolola setlolo fa o simolola go utlwa; tlhapa diatla; o se atlame masea.",
    ),
    "triage_advice_shingles": _chat(
        "An antiviral works best within 72 hours of the rash: refer today. Paracetamol and calamine ease it meanwhile.",
        "Molemo wa mogare o bereka sentle mo diureng di le 72: romela gompieno.",
        "molemo (21), romela (52), gompieno (30).",
    ),
    "triage_advice_refer": _chat(
        "Do not treat in the pharmacy; write down what you saw for the clinic.",
        "O se alafe kwa khemising; kwala se o se boneng go isa kwa kokelwaneng.",
        "kokelwana (13, uncertain); built.",
    ),
}
