"""Catalog texts of skin triage: the reply's lines, the red-flag screen, and the reasons and advice the rules name.

The reply (app/services/skin_advice.py) must fit 700 characters in both languages, so every line here is short:
the level first in plain words, the reason, one first-choice medicine, what to watch for, and for ``urgent`` the
emergency step. Setswana carries the same content as the English, safety lines included (issue 14 found several
that dropped them). None of it is reviewed: docs/setswana-glossary.md has no skin or clinical words, so every
clinical term (letshoroma, dithuthuba, boladu ...) is built, and a native speaker (ideally a nurse) must check it.
Glossary numbers refer to docs/setswana-glossary.md section 1.
"""

from __future__ import annotations

from app.i18n.text import Text

_BUILT = "Clinical words are not in the glossary: built, needs review."
_SAFETY = "Safety content translated in full (issue 14); clinical words built, needs review."


def _chat(en: str, tn: str, note: str = _BUILT, **example) -> Text:
    return Text(en=en, tn=tn, channel="chat", example=example, note=note)


def _button(en: str, tn: str, note: str = _BUILT) -> Text:
    return Text(en=en, tn=tn, channel="button", note=note)


# The red-flag screen: (id, full description, button title), English then Setswana.
_FLAGS = {
    "numb_patch": (
        "A pale or red patch that feels numb (touch it lightly)",
        "Lebala le le sweu kgotsa le le hibidu le le sa utlweng sepe (le ame ka bonolo)",
        "Numb patch",
        "Lebala le le shwele",
    ),
    "airway_swelling": (
        "Swelling of the lips, tongue or throat, or hard breathing",
        "Go ruruga ga dipounama, loleme kgotsa mometso, kgotsa go hema ka bokete",
        "Lips/throat swelling",
        "Go ruruga molomo",
    ),
    "mucosal_sores": (
        "Sores in the mouth, eyes or genitals (not a cold sore on the lip)",
        "Dintho mo molomong, mo matlhong kgotsa mo dikarolong tsa sephiri (e seng cold sore mo pounameng)",
        "Mouth/eye sores",
        "Dintho tsa molomo",
    ),
    "new_medicine": (
        "Started a new medicine in the last 8 weeks",
        "O simolotse molemo o mosha mo dibekeng di le 8 tse di fetileng",
        "New medicine",
        "Molemo o mosha",
    ),
    "weak_immunity": (
        "Weak immunity: HIV, cancer treatment, a transplant or steroid tablets",
        "Mmele o o bokoa go lwantsha malwetse: HIV, kalafi ya kankere, go tsenngwa karolo ya mmele kgotsa "
        "dipilisi tsa steroid",
        "Weak immunity",
        "Mmele o bokoa",
    ),
    "black_scab": (
        "A painless black scab, e.g. after touching sick or dead animals",
        "Legogo le lentsho le le sa botlhoko, jaaka morago ga go tshwara diphologolo tse di lwalang kgotsa tse di sule",
        "Black scab",
        "Legogo le lentsho",
    ),
    "pus_or_crusts": (
        "Pus, oozing or yellow crusts on the rash",
        "Boladu, go elela kgotsa makgapetla a a serolwana mo lekgwapheng",
        "Pus or crusts",
        "Boladu/makgapetla",
    ),
    "painless_lump": (
        "A painless lump, or a swollen arm or leg",
        "Kgwata e e sa botlhoko, kgotsa letsogo kgotsa leoto le le rurugileng",
        "Painless lump",
        "Kgwata e sa botlhoko",
    ),
    "large_or_deep_burn": (
        "A burn bigger than the patient's palm, deep (white or charred), chemical or electrical",
        "Go sha go go golo go feta seatla sa molwetse, go go tseneletseng (go sweu kgotsa go fisitse), ka "
        "dikhemikale kgotsa ka motlakase",
        "Large/deep burn",
        "Go sha go go golo",
    ),
    "dark_spot_sole_palm_nail": (
        "A dark spot on a sole or palm, or a dark streak in a nail",
        "Lobadi lo lontsho mo bototong jwa lonao kgotsa mo seatleng, kgotsa mothalo o montsho mo nalaneng",
        "Dark spot sole/nail",
        "Lobadi lonao/nala",
    ),
    "bleaching_cream": (
        "Uses bleaching (lightening) or strong steroid creams",
        "O dirisa ditlolo tsa go sweufatsa letlalo kgotsa tsa steroid e e thata",
        "Bleaching cream",
        "Go sweufatsa",
    ),
    "many_lesions": (
        "Many spots or patches (more than 3), or a rash over a large area",
        "Mabala a mantsi (go feta 3), kgotsa lekgwaphe mo karolong e kgolo ya mmele",
        "Many spots",
        "Mabala a mantsi",
    ),
}

SKIN_TRIAGE_TEXTS: dict[str, Text] = {
    # --- the red-flag screen (one multi-select question) --------------------------------------------------------
    "skin_q_red_flags": _chat(
        "Warning signs: does the patient have any of these? Send every number that applies (e.g. 2 7), or 0 for none.",
        "Matshwao a kotsi: a molwetse o na le nngwe ya tse? Romela dinomoro tsotlhe tse di amegang (sk. 2 7), "
        "kgotsa 0 fa go se na sepe.",
        "molwetse (17), romela (52), nomoro (67); matshwao a kotsi (warning signs) built.",
    ),
    "skin_flags_picked": _chat(
        "Ticked: {numbers}. Tap more, or Done.",
        "Tse di tlhophilweng: {numbers}. Tobetsa tse dingwe, kgotsa Go fedile.",
        "Tlhopha (56), tobetsa (57), tse dingwe (60); built.",
        numbers="1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12",
    ),
    "skin_flags_invalid": _chat(
        "Send the numbers of the signs that apply (e.g. 2 7), or 0 if none applies.",
        "Romela dinomoro tsa matshwao a a amegang (sk. 2 7), kgotsa 0 fa go se na le lengwe.",
        "romela (52), nomoro (67); built.",
    ),
    "opt_red_flags_none": _button("0. None of these", "0. Ga go sepe", "Built."),
    "opt_red_flags_done": _button("Done", "Go fedile", "fela (75); built."),
    # --- the reply: level first, in plain words -----------------------------------------------------------------
    "skin_result_level_self_care": _chat(
        "Self-care: an over-the-counter medicine fits.",
        "Go itlhokomela: molemo o o rekiwang fela o a tshwanela.",
        "molemo (21); built.",
    ),
    "skin_result_level_pharmacy": _chat(
        "Pharmacy: the pharmacist supplies and explains the treatment.",
        "Khemisi: rakhemisi o neela kalafi mme o e tlhalosa.",
    ),
    "skin_result_level_pharmacy_otc": _chat(
        "Send to a pharmacy: a pharmacist must supply this.",
        "Romela kwa khemising: rakhemisi o tshwanetse go neela kalafi e.",
        "romela (52), tshwanetse (29); built.",
    ),
    "skin_result_level_clinic": _chat(
        "Refer to a clinic: to be seen within 3 days.",
        "Romela kwa kokelwaneng: a bonwe mo malatsing a le 3.",
        "romela (52), kokelwana (13, uncertain), mo malatsing a le 3 (33, built).",
    ),
    "skin_result_level_clinic_today": _chat(
        "Refer today: the patient must see a clinician today.",
        "Romela gompieno: molwetse o tshwanetse go bonwa ke ngaka gompieno.",
        "romela (52), gompieno (30), molwetse (17), ngaka (16), tshwanetse (29).",
    ),
    "skin_result_level_urgent": _chat(
        "Emergency: send to hospital now.",
        "Tshoganyetso: romela kwa kokelong jaanong.",
        "kokelo (14), jaanong (44), romela (52); tshoganyetso (emergency) built.",
    ),
    "skin_result_why": _chat(
        "Why: {reasons}",
        "Lebaka: {reasons}",
        "Built.",
        reasons="Swelling of the lips, tongue or throat (risk to breathing).",
    ),
    "skin_result_first_choice": _chat(
        "First choice: {name}. {dose}",
        "Sa ntlha: {name}. {dose}",
        "Medicine names and doses come from the formulary, in English.",
        name="Permethrin 5% cream",
        dose="Neck down (scalp and face too in young children and the elderly) on cool, dry skin; wash off after "
        "8-12 hours; repeat after 7 days.",
    ),
    "skin_result_alternatives": _chat(
        "Or: {names}.", "Kgotsa: {names}.", "Built.", names="Miconazole 2% cream, Terbinafine 1% cream"
    ),
    "skin_result_no_medicines": _chat(
        "Give no medicine here; write down what you saw for the clinician.",
        "O se neele molemo fa; kwala se o se boneng go isa kwa ngakeng.",
        "molemo (21), ngaka (16); built.",
    ),
    "skin_result_watch_self_care": _chat(
        "Refer if it spreads, fever starts, or it is no better in 2 weeks.",
        "Romela fa e anama, letshoroma le simologa, kgotsa e sa tokafale mo dibekeng di le 2.",
        "romela (52), dibeke di le 2 (34); built.",
    ),
    "skin_result_watch_pharmacy": _chat(
        "Refer if it spreads, fever starts, or it is no better in 2 weeks.",
        "Romela fa e anama, letshoroma le simologa, kgotsa e sa tokafale mo dibekeng di le 2.",
        "romela (52), dibeke di le 2 (34); built.",
    ),
    "skin_result_watch_clinic": _chat(
        "Send today instead if it spreads, fever starts or pain grows.",
        "Romela gompieno fa e anama, letshoroma le simologa kgotsa botlhoko bo oketsega.",
        "romela (52), gompieno (30); built.",
    ),
    "skin_result_watch_clinic_today": _chat(
        "Hospital now instead if breathing is hard, the face or throat swells, or the patient is drowsy.",
        "Kokelong jaanong fa go hema go le thata, sefatlhego kgotsa mometso o ruruga, kgotsa molwetse a otsela.",
        "kokelo (14), jaanong (44), molwetse (17); built.",
    ),
    "skin_result_emergency": _chat(
        "Call an ambulance ({number}; Ghana number, to be confirmed) or take the patient to hospital now.",
        "Leletsa ambulense ({number}; nomoro ya Ghana, e sa ntse e tla netefadiwa) kgotsa isa molwetse kwa "
        "kokelong jaanong.",
        "leletsa (57), nomoro (67), netefatsa (46), molwetse (17), kokelo (14), jaanong (44); built.",
        number="193",
    ),
    "skin_result_unreviewed": _chat(
        "Rules and doses are not yet checked against the Ghana STG.",
        "Melawana le ditekanyo tsa melemo ga di ise di tlhatlhobiwe kgatlhanong le Ghana STG.",
        "melemo (21); built.",
    ),
    "skin_result_photo_ok": _chat("Photo: good enough.", "Setshwantsho: se siame."),
    "skin_result_photo_retake": _chat(
        "Photo: please retake it closer, in daylight, with the phone still.",
        "Setshwantsho: tsweetswee tsaya se sengwe o atametse, mo leseding, o tshwere mogala o sa tshikinyege.",
        "Tsweetswee (6), mogala (68); built.",
    ),
    "skin_result_model_unvalidated": _chat(
        "The photo model is not validated on Ghanaian skin: this comes from your answers only.",
        "Mmotlele wa ditshwantsho ga o a netefadiwa mo letlalong la Ghana: se se tswa mo dikarabong tsa gago fela.",
        "netefatsa (46), karabo (51); built.",
    ),
    "skin_result_model_labels": _chat(
        "Photo model (validated): looks most like {label} ({percent}%), not a diagnosis.",
        "Mmotlele wa ditshwantsho (o netefaditswe): se lebega jaaka {label} ({percent}%), ga se tlhatlhobo.",
        "netefatsa (46); lebega jaaka (looks like) is built.",
        label="Cellulitis",
        percent=71,
    ),
    "skin_model_label_not_skin": _chat(
        "not skin (no skin problem seen)",
        "ga se letlalo (ga go bothata jwa letlalo jo bo bonwang)",
    ),
    "skin_disclaimer": _chat(
        "Thusa supports your judgement; this is not a diagnosis.",
        "Thusa e thusa tshekatsheko ya gago; se ga se tlhatlhobo ya bolwetse.",
        "thusa (54); built.",
    ),
    # --- reasons (triage_rules.toml) ---------------------------------------------------------------------------
    "triage_reason_model_referral": _chat(
        "the validated photo model finds it looks most like a condition a clinician should see.",
        "mmotlele wa ditshwantsho o o netefaditsweng o bona e lebega jaaka bolwetse jo ngaka e tshwanetseng go bo "
        "bona.",
        "netefatsa (46), ngaka (doctor); lebega jaaka is built.",
    ),
    "triage_reason_fever_spreading": _chat(
        "fever with spreading swelling, warmth or redness (possible cellulitis).",
        "letshoroma le go ruruga, go fisa kgotsa bohibidu jo bo anamang (e ka nna cellulitis).",
        _SAFETY,
    ),
    "triage_reason_eye": _chat(
        "it is on or near the eye (risk to sight).", "e mo leitlhong kgotsa gaufi le lone (kotsi mo go boneng)."
    ),
    "triage_reason_face_spreading": _chat(
        "spreading swelling on the face (possible facial cellulitis).",
        "go ruruga go go anamang mo sefatlhegong (e ka nna cellulitis ya sefatlhego).",
        _SAFETY,
    ),
    "triage_reason_widespread_blisters": _chat(
        "widespread blisters or peeling skin (possible SJS/TEN, an emergency).",
        "dithuthuba kgotsa letlalo le le obugang mo mmeleng otlhe (e ka nna SJS/TEN, tshoganyetso).",
        _SAFETY,
    ),
    "triage_reason_infant_fever": _chat(
        "a baby under 3 months with fever is high risk.",
        "lesea le le kwa tlase ga dikgwedi di le 3 le le nang le letshoroma le mo kotsing e kgolo.",
        "kgwedi (35), kwa tlase (74); built.",
    ),
    "triage_reason_young_infant": _chat(
        "babies under 3 months need a clinician for any skin problem.",
        "masea a a kwa tlase ga dikgwedi di le 3 a tlhoka ngaka ka bothata bongwe le bongwe jwa letlalo.",
        "ngaka (16), kgwedi (35); " + _SAFETY,
    ),
    "triage_reason_infant_infection": _chat(
        "skin infections in babies under 1 year are outside pharmacy care.",
        "malwetse a letlalo mo maseeng a a kwa tlase ga ngwaga e le 1 ga a alafiwe kwa khemising.",
        "ngwaga (36); built.",
    ),
    "triage_reason_scabies_young_infant": _chat(
        "scabies under 2 months: no permethrin; a specialist treats it.",
        "sekgwapha mo leseeng le le kwa tlase ga dikgwedi di le 2: ga go permethrin; ngaka e e ikgethileng e a "
        "se alafa.",
        _SAFETY,
    ),
    "triage_reason_eczema_herpeticum": _chat(
        "painful blisters in eczema (possible eczema herpeticum): no steroid.",
        "dithuthuba tse di botlhoko mo eczema (e ka nna eczema herpeticum): ga go steroid.",
        _SAFETY,
    ),
    "triage_reason_acne_fulminans": _chat(
        "painful acne with fever (possible acne fulminans).",
        "acne e e botlhoko e na le letshoroma (e ka nna acne fulminans).",
        _SAFETY,
    ),
    "triage_reason_burn_site": _chat(
        "a burn on the face, hands, feet, genitals or a joint needs specialist care.",
        "go sha mo sefatlhegong, diatleng, dinaong, dikarolong tsa sephiri kgotsa mo lekopanong go tlhoka "
        "kalafi ya ngaka e e ikgethileng.",
        _SAFETY,
    ),
    "triage_reason_burn_child": _chat(
        "a blistering burn in a young child.", "go sha go go nang le dithuthuba mo ngwaneng yo monnye."
    ),
    "triage_reason_burn_not_minor": _chat(
        "a blistering burn at 60 or over.",
        "go sha go go nang le dithuthuba mo mothong wa dingwaga di le 60 kgotsa go feta.",
        "ngwaga (36); " + _SAFETY,
    ),
    "triage_reason_burn_not_healed": _chat(
        "a burn not healed in 2 weeks.", "go sha go go sa fodang mo dibekeng di le 2.", "dibeke di le 2 (34); built."
    ),
    "triage_reason_mole": _chat(
        "a changing, bleeding or oozing mole must be checked quickly (possible skin cancer).",
        "lobadi lo lo fetogang, lo lo tswang madi kgotsa lo lo elelang lo tshwanetse go tlhatlhobiwa ka bonako "
        "(e ka nna kankere ya letlalo).",
        "tshwanetse (29), fetola (48); " + _SAFETY,
    ),
    "triage_reason_non_healing_ulcer": _chat(
        "an open sore for 2 weeks or more (possible Buruli ulcer, yaws or cancer).",
        "ntho e e bulegileng dibeke di le 2 kgotsa go feta (e ka nna Buruli ulcer, yaws kgotsa kankere).",
        "dibeke di le 2 (34); " + _SAFETY,
    ),
    "triage_reason_pregnancy_prescription": _chat(
        "pregnancy: the usual treatment needs a prescription medicine.",
        "boimana: kalafi e e tlwaelegileng e tlhoka molemo o o kwadiwang ke ngaka.",
        "molemo (21), ngaka (16); built.",
    ),
    "triage_reason_treatment_failed": _chat(
        "no better after treatment (the diagnosis may be wrong).",
        "ga e a tokafala morago ga kalafi (bolwetse bo ka tswa bo sa tlhaolwa sentle).",
        _SAFETY,
    ),
    "triage_reason_needs_prescription": _chat(
        "it needs a prescription medicine (e.g. an oral antibiotic).",
        "e tlhoka molemo o o kwadiwang ke ngaka (sk. pilisi ya antibiotic).",
        "molemo (21), ngaka (16), pilisi (22); " + _SAFETY,
    ),
    "triage_reason_chronic_urticaria": _chat(
        "hives for more than 6 weeks.", "hives go feta dibeke di le 6.", "beke (34)."
    ),
    "triage_reason_kerion": _chat(
        "a painful swelling with pus on the scalp (possible kerion).",
        "go ruruga go go botlhoko go na le boladu mo tlhogong (e ka nna kerion).",
        _SAFETY,
    ),
    "triage_reason_no_medicine_fits": _chat(
        "no pharmacy medicine suits this patient (age, pregnancy, body site or a warning sign).",
        "ga go molemo wa khemisi o o tshwanelang molwetse yo (dingwaga, boimana, lefelo la mmele kgotsa letshwao "
        "la kotsi).",
        "molemo (21), molwetse (17); " + _SAFETY,
    ),
    "triage_reason_otc_seller": _chat(
        "an OTC medicine seller sells only Class C medicines, and none confirmed Class C fits.",
        "morekisi wa melemo ya OTC o rekisa melemo ya Class C fela, mme ga go e e netefaditsweng e e tshwanelang.",
        "melemo (21), netefatsa (46); built.",
    ),
    "triage_reason_screen_not_asked": _chat(
        "the warning-sign question was not answered: ask it before selling.",
        "potso ya matshwao a kotsi ga e a arabiwa: e botse pele o rekisa.",
        "araba (51); built.",
    ),
    "triage_reason_base_self_care": _chat(
        "none of the warning signs asked about.",
        "ga go na le lengwe la matshwao a kotsi a a bodiwang.",
        "Replaces 'no red flag' (an overclaim: only the signs asked about are known).",
    ),
    "triage_reason_base_pharmacy": _chat(
        "none of the warning signs asked about.",
        "ga go na le lengwe la matshwao a kotsi a a bodiwang.",
        "The level line says that a pharmacist supplies the treatment.",
    ),
    "triage_reason_base_clinic": _chat(
        "this condition needs a clinician (a prescription, tests or a procedure).",
        "bolwetse jo bo tlhoka ngaka (molemo o o kwadiwang, diteko kgotsa kalafi e nngwe).",
        "ngaka (16), molemo (21); " + _SAFETY,
    ),
    "triage_reason_base_clinic_today": _chat(
        "this needs a clinician today.", "se se tlhoka ngaka gompieno.", "ngaka (16), gompieno (30)."
    ),
    "triage_reason_base_urgent": _chat(
        "this needs emergency care.", "se se tlhoka thuso ya tshoganyetso.", "thuso (54); built."
    ),
    "triage_reason_shingles": _chat(
        "shingles: the antiviral (prescription) must start within 72 hours of the rash.",
        "shingles: molemo wa mogare (o o kwadiwang ke ngaka) o tshwanetse go simolola mo diureng di le 72 tsa ntlha.",
        "molemo (21), ngaka (16), tshwanetse (29); built.",
    ),
    "triage_reason_cellulitis": _chat(
        "cellulitis always needs an antibiotic (prescription).",
        "cellulitis e tlhoka antibiotic (e e kwadiwang ke ngaka) ka metlha.",
        "ngaka (16); built.",
    ),
    "triage_reason_animal_bite": _chat(
        "a dog, animal or human bite: rabies and tetanus care is needed today.",
        "go longwa ke phologolo (jaaka ntja) kgotsa motho: kalafi ya rabies le tetanus e tlhokega gompieno.",
        "gompieno (30); built. 'ntja' (dog) avoids the s caron of Botswana 'ntsa' (glossary 3.3): review.",
    ),
    "triage_reason_airway": _chat(
        "swelling of the lips, tongue or throat (risk to breathing).",
        "go ruruga ga dipounama, loleme kgotsa mometso (kotsi mo go heng).",
    ),
    "triage_reason_blisters_fever": _chat(
        "blisters with fever (possible SJS/TEN, chickenpox or mpox): no steroid.",
        "dithuthuba le letshoroma (e ka nna SJS/TEN, chickenpox kgotsa mpox): ga go steroid.",
    ),
    "triage_reason_blisters_mucosal": _chat(
        "blisters with sores of the mouth, eyes or genitals (possible SJS/TEN).",
        "dithuthuba le dintho tsa molomo, matlho kgotsa dikarolo tsa sephiri (e ka nna SJS/TEN).",
    ),
    "triage_reason_blisters_new_medicine": _chat(
        "blisters after a new medicine (possible SJS/TEN, a drug reaction).",
        "dithuthuba morago ga molemo o mosha (e ka nna SJS/TEN, go tsibogela molemo).",
        "molemo (21); built.",
    ),
    "triage_reason_mucosal_fever": _chat(
        "sores of the mouth, eyes or genitals with fever (possible SJS or measles).",
        "dintho tsa molomo, matlho kgotsa dikarolo tsa sephiri le letshoroma (e ka nna SJS kgotsa measles).",
    ),
    "triage_reason_mucosal": _chat(
        "sores of the mouth, eyes or genitals.", "dintho tsa molomo, matlho kgotsa dikarolo tsa sephiri."
    ),
    "triage_reason_new_medicine_rash": _chat(
        "a widespread rash after a new medicine (possible drug reaction).",
        "lekgwaphe le le anameng morago ga molemo o mosha (e ka nna go tsibogela molemo).",
        "molemo (21); built.",
    ),
    "triage_reason_fever": _chat(
        "fever: a clinician must examine the patient; no steroid cream.",
        "letshoroma: ngaka e tshwanetse go tlhatlhoba molwetse; ga go setlolo sa steroid.",
        "ngaka (16), tshwanetse (29), molwetse (17); built.",
    ),
    "triage_reason_fever_under_1y": _chat(
        "a baby under 1 year with fever.",
        "lesea le le kwa tlase ga ngwaga e le 1 le na le letshoroma.",
        "ngwaga (36), kwa tlase (74); built.",
    ),
    "triage_reason_fever_rash": _chat(
        "fever with a widespread rash (possible measles, chickenpox or mpox): keep away from others.",
        "letshoroma le lekgwaphe le le anameng (e ka nna measles, chickenpox kgotsa mpox): a nne kgakala le ba bangwe.",
    ),
    "triage_reason_spreading": _chat(
        "spreading fast (on dark skin go by warmth, swelling and pain, not redness).",
        "e anama ka bonako (mo letlalong le lentsho leba go fisa, go ruruga le botlhoko, e seng bohibidu).",
    ),
    "triage_reason_spreading_pain": _chat(
        "spreading fast with pain (possible deep infection).",
        "e anama ka bonako e na le botlhoko (e ka nna tshwaetso e e tseneletseng).",
    ),
    "triage_reason_numb_patch": _chat(
        "a numb patch (possible leprosy): never treat it as fungal.",
        "lebala le le sa utlweng sepe (e ka nna lepero): o se ka wa le alafa jaaka lefero.",
    ),
    "triage_reason_weak_immunity": _chat(
        "weak immunity (HIV, cancer treatment, transplant, steroid tablets).",
        "mmele o o bokoa go lwantsha malwetse (HIV, kalafi ya kankere, go tsenngwa karolo, dipilisi tsa steroid).",
        "pilisi (22); built.",
    ),
    "triage_reason_weak_immunity_severe": _chat(
        "weak immunity with an infection, fever or a widespread rash.",
        "mmele o o bokoa o na le tshwaetso, letshoroma kgotsa lekgwaphe le le anameng.",
    ),
    "triage_reason_black_scab": _chat(
        "a painless black scab (possible anthrax).", "legogo le lentsho le le sa botlhoko (e ka nna anthrax)."
    ),
    "triage_reason_burn_large": _chat(
        "a large, deep, chemical or electrical burn.",
        "go sha go go golo, go go tseneletseng, ka dikhemikale kgotsa ka motlakase.",
    ),
    "triage_reason_painless_lump": _chat(
        "a painless lump or limb swelling (possible Buruli ulcer, mycetoma or lymphoedema).",
        "kgwata e e sa botlhoko kgotsa go ruruga ga leoto kgotsa letsogo (e ka nna Buruli ulcer, mycetoma kgotsa "
        "lymphoedema).",
    ),
    "triage_reason_ulcer_face_joint": _chat(
        "an ulcer on the face or over a joint (possible Buruli ulcer: risk of disability).",
        "ntho mo sefatlhegong kgotsa mo lekopanong (e ka nna Buruli ulcer: kotsi ya bogole).",
    ),
    "triage_reason_acral": _chat(
        "a dark spot on a sole or palm, or a nail streak (possible melanoma, the commonest kind on dark skin).",
        "lobadi lo lontsho mo bototong jwa lonao kgotsa seatleng, kgotsa mothalo mo nalaneng (e ka nna melanoma, "
        "e e tlwaelegileng mo letlalong le lentsho).",
    ),
    "triage_reason_infected": _chat(
        "pus or crusts: possible infection, so no steroid cream.",
        "boladu kgotsa makgapetla: e ka nna tshwaetso, ka jalo ga go setlolo sa steroid.",
    ),
    "triage_reason_infected_refer": _chat(
        "pus or crusts: an infection that may need a prescription; no steroid.",
        "boladu kgotsa makgapetla: tshwaetso e e ka tlhokang molemo o o kwadiwang ke ngaka; ga go steroid.",
        "molemo (21), ngaka (16); built.",
    ),
    "triage_reason_impetigo_many": _chat(
        "impetigo with many patches needs an oral antibiotic (prescription).",
        "impetigo e e nang le mabala a mantsi e tlhoka pilisi ya antibiotic (e e kwadiwang ke ngaka).",
        "pilisi (22), ngaka (16); built.",
    ),
    "triage_reason_fungal_extensive": _chat(
        "tinea over a large area needs an antifungal by mouth (prescription).",
        "lefero mo karolong e kgolo ya mmele le tlhoka molemo wa lefero o o nwewang (o o kwadiwang ke ngaka).",
        "molemo (21), ngaka (16); built.",
    ),
    "triage_reason_bleaching": _chat(
        "bleaching or strong steroid creams hide and spread fungal infection.",
        "ditlolo tsa go sweufatsa kgotsa tsa steroid e e thata di fitlha le go anamisa lefero.",
    ),
    # --- advice lines (conditions and rules) ---------------------------------------------------------------------
    "triage_advice_fungal": _chat(
        "Keep the area dry, do not share towels, and treat athlete's foot too. No steroid cream on a fungal rash.",
        "Boloka lefelo le omile, o se abelane ditoulo, alafa le dinao. O se tlotse setlolo sa steroid mo lefero.",
        f"{_BUILT} 'ditoulo' (towels) replaces 'ditaolo': reviewers' change (issue 17), awaiting native review.",
    ),
    "triage_advice_eczema": _chat(
        "Use an emollient often and instead of soap; avoid what triggers it.",
        "Dirisa setlolo ka gale le go emisetsa sesepa; tila se se e bakang.",
        _SAFETY,
    ),
    "triage_advice_acne": _chat(
        "Wash twice a day with a mild cleanser; no oily products; do not pick. No steroid or bleaching creams.",
        "Tlhapa gabedi ka letsatsi; o se dirise dilo tse di mafura; o se kgwale. O se dirise ditlolo tsa steroid "
        "kgotsa tsa go sweufatsa.",
    ),
    "triage_advice_scabies": _chat(
        "Treat everyone in the household on the same day; hot-wash bedding and clothes. Itch can last weeks "
        "after cure.",
        "Alafa botlhe mo lelapeng ka letsatsi le le lengwe; tlhatswa dikobo le diaparo ka metsi a a bothitho. "
        "Go baba go ka nna dibeke morago ga kalafi.",
        "letsatsi (32), beke (34); " + _SAFETY,
    ),
    "triage_advice_impetigo": _chat(
        "Wash off crusts gently, keep nails short, separate towels; stay away from school or work until crusted "
        "over or treated.",
        "Tlhatswa makgapetla ka bonolo, kgaola dinala, ditoulo di farologane; o se ye sekolong kgotsa kwa "
        "tirong go fitlha dintho di omile kgotsa di alafilwe.",
        f"{_SAFETY} 'ditoulo' (towels) replaces 'ditaolo': reviewers' change (issue 17), awaiting native review.",
    ),
    "triage_advice_urticaria": _chat(
        "Avoid known triggers. Swelling of lips, tongue or throat, or hard breathing, is an emergency.",
        "Tila dilo tse di e bakang. Go ruruga ga dipounama, loleme kgotsa mometso, kgotsa go hema ka bokete, ke "
        "tshoganyetso.",
        _SAFETY,
    ),
    "triage_advice_insect_bite": _chat(
        "Cold compress; do not scratch. A sting in the mouth or throat, or hard breathing, is an emergency.",
        "Dirisa selo se se tsididi; o se ngwaye. Go longwa mo molomong kgotsa mo mometsong, kgotsa go hema ka "
        "bokete, ke tshoganyetso.",
        _SAFETY,
    ),
    "triage_advice_burn": _chat(
        "Cool under running water for 20 minutes; no ice, butter, toothpaste or creams; cover loosely. No "
        "aspirin under 16.",
        "Tsholela metsi a a tsididi metsotso e le 20; o se dirise aese, botoro, sesepa sa meno kgotsa "
        "ditlolo; "
        "khurumetsa ka bonolo. Ga go aspirin kwa tlase ga dingwaga di le 16.",
        "ngwaga (36); " + _SAFETY,
    ),
    "triage_advice_burn_first_aid": _chat(
        "On the way: cool under running water for 20 minutes; no ice or creams; cover loosely.",
        "Mo tseleng: tsholela metsi a a tsididi metsotso e le 20; o se tlotse sepe; khurumetsa ka bonolo.",
    ),
    "triage_advice_cold_sore": _chat(
        "Start the cream at the first tingle; wash hands after touching; no kissing babies.",
        "Simolola setlolo fa o simolola go utlwa go baba; tlhapa diatla morago ga go ama; o se atle masea.",
        f"{_SAFETY} 'o se atle' replaces 'o se atlame': reviewers' change (issue 17), awaiting native review.",
    ),
    "triage_advice_shingles": _chat(
        "An antiviral works best within 72 hours of the rash: refer today. Paracetamol and calamine ease it meanwhile.",
        "Molemo wa mogare o bereka sentle mo diureng di le 72 tsa ntlha: romela gompieno. Paracetamol le calamine "
        "di a imolola fa o ntse o emetse.",
        "molemo (21), romela (52), gompieno (30); " + _SAFETY,
    ),
    "triage_advice_cellulitis": _chat(
        "Mark the edge of the swelling with a pen to see if it spreads (redness is hard to see on dark skin).",
        "Tshwaya molelwane wa go ruruga ka pene go bona fa e anama (bohibidu bo thata go bonwa mo letlalong le "
        "lentsho).",
    ),
    "triage_advice_animal_bite": _chat(
        "Wash the wound with soap and running water for 15 minutes now; do not close it.",
        "Tlhatswa ntho ka sesepa le metsi a a elelang metsotso e le 15 jaanong; o se e tswale.",
        "jaanong (44); built.",
    ),
    "triage_advice_black_scab": _chat(
        "Do not squeeze or cut it. Tell the district health office (possible anthrax).",
        "O se e gatelele kgotsa o e sege. Bolelela ofisi ya botsogo ya kgaolo (e ka nna anthrax).",
        "botsogo (18); kgaolo (district) built.",
    ),
    "triage_advice_bleaching": _chat(
        "Advise stopping bleaching and steroid creams: they thin the skin and hide infection.",
        "Gakolola molwetse go emisa ditlolo tsa go sweufatsa le tsa steroid: di dira letlalo bosesane mme di "
        "fitlha tshwaetso.",
        "emisa (53), molwetse (17); built.",
    ),
    "triage_advice_refer": _chat(
        "Do not treat in the pharmacy; write down what you saw for the clinic.",
        "O se alafe kwa khemising; kwala se o se boneng go isa kwa kokelwaneng.",
        "kokelwana (13, uncertain); built.",
    ),
}

for _id, (_en, _tn, _en_button, _tn_button) in _FLAGS.items():
    SKIN_TRIAGE_TEXTS[f"skin_flag_{_id}"] = _chat(_en, _tn, _SAFETY)
    SKIN_TRIAGE_TEXTS[f"opt_red_flags_{_id}"] = _button(_en_button, _tn_button)
