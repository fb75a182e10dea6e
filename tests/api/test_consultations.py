"""REST of skin consultations: multipart upload with caps and retake, own records only, audited reads, re-triage
on PUT, the analysis endpoint, the formulary and the guidelines. The job runs for real where a result is read."""

from __future__ import annotations

import io

import pytest
from PIL import Image, ImageFile
from rq.registry import FailedJobRegistry
from sqlalchemy import select

from app.extensions import db
from app.jobs import QUEUE_INFERENCE, get_queue
from app.models import AuditLog, Consultation, ConsultationImage
from tests.conftest import bearer, login, make_user
from tests.photos import GPS_IFD, ORIENTATION, encode, gps_exif, jpeg_segments, png_bomb, sample_photo, solid_png
from workers.inference import analyse_consultation
from workers.runner import run_worker


def _form(data: bytes, name: str = "skin.jpg", **answers) -> dict:
    return {"image": (io.BytesIO(data), name), **{k: str(v).lower() if isinstance(v, bool) else v
                                                   for k, v in answers.items()}}  # fmt: skip


def _upload(client, token, data: bytes, path="/api/v1/consultations", **answers):
    return client.post(path, headers=bearer(token), data=_form(data, **answers), content_type="multipart/form-data")


@pytest.fixture
def pharmacist_token(people):
    return people["tokens"]["pharmacist"]


def _stored_data() -> bytes:
    db.session.expire_all()
    return db.session.scalar(select(ConsultationImage.data))


def test_upload_keeps_no_gps_and_the_job_stores_a_clean_jpeg(client, people, pharmacist_token):
    photo = encode(sample_photo(1600, 1200), "JPEG", quality=95, exif=gps_exif(orientation=6))
    response = _upload(client, pharmacist_token, photo, condition="fungal", age_group="y18_to_59", pregnant=False,
                       body_site="trunk_limbs", open_sore="no", fever=False)  # fmt: skip
    assert response.status_code == 201, response.get_json()
    body = response.get_json()
    assert body["status"] == "queued" and body["condition"] == "fungal" and body["pregnant"] is False
    assert body["user_id"] == str(people["users"]["pharmacist"].id)
    image = body["images"][0]
    assert image["status"] == "pending" and image["source_format"] == "JPEG" and image["source_bytes"] == len(photo)
    assert body["retake"] is None  # nothing decoded yet
    # What the request stored (for the job to decode) has no GPS already: only the orientation is left of the EXIF.
    waiting = _stored_data()
    exif = Image.open(io.BytesIO(waiting)).getexif()
    assert dict(exif) == {ORIENTATION: 6} and not exif.get_ifd(GPS_IFD)
    assert b"PhoneMaker" not in waiting and b"PhoneMaker" in photo

    assert analyse_consultation(body["id"]) == "done"
    image = client.get(f"/api/v1/consultations/{body['id']}", headers=bearer(pharmacist_token)).get_json()["images"][0]
    assert image["status"] == "stored" and image["ssim"] >= 0.85 and image["content_type"] == "image/jpeg"
    assert (image["width"], image["height"]) == (1200, 1600)  # EXIF orientation 6 applied
    stored = _stored_data()
    assert len(stored) <= 2 * 1024 * 1024
    assert not [marker for marker, _ in jpeg_segments(stored) if marker == 0xE1]  # no EXIF/XMP: no GPS
    assert not Image.open(io.BytesIO(stored)).getexif()


@pytest.mark.parametrize("fmt", ["PNG", "WEBP", "HEIF"])
def test_every_accepted_format_is_stored_without_gps_then_as_jpeg(client, pharmacist_token, fmt):
    photo = encode(sample_photo(800, 600), fmt, exif=gps_exif(orientation=6).tobytes())
    response = _upload(client, pharmacist_token, photo, name=f"skin.{fmt.lower()}")
    assert response.status_code == 201, response.get_json()
    assert response.get_json()["images"][0]["source_format"] == fmt
    waiting = _stored_data()
    assert b"PhoneMaker" in photo and b"PhoneMaker" not in waiting
    assert not Image.open(io.BytesIO(waiting)).getexif().get_ifd(GPS_IFD)

    analyse_consultation(response.get_json()["id"])
    image = client.get(f"/api/v1/consultations/{response.get_json()['id']}",
                       headers=bearer(pharmacist_token)).get_json()["images"][0]  # fmt: skip
    assert image["status"] == "stored" and image["content_type"] == "image/jpeg"
    assert (image["width"], image["height"]) == (600, 800)  # the orientation survived the strip
    assert not Image.open(io.BytesIO(_stored_data())).getexif()


class DecodeSpy:
    """A spy on the real decoders: every ``load`` of any Pillow image file class (pillow-heif's included) is recorded
    before it runs, while the spy is entered. Opening a file reads its header only; decoding pixels always goes
    through ``load``."""

    def __init__(self, monkeypatch) -> None:
        self.calls: list[str] = []
        self.active = False
        classes, pending = [], [ImageFile.ImageFile]
        while pending:
            cls = pending.pop()
            classes.append(cls)
            pending.extend(cls.__subclasses__())
        for cls in classes:
            if "load" in vars(cls):
                monkeypatch.setattr(cls, "load", self._spy(vars(cls)["load"]))

    def _spy(self, original):
        def load(image, *args, **kwargs):
            if self.active:
                self.calls.append(image.format)
            return original(image, *args, **kwargs)

        return load

    def __enter__(self) -> list[str]:
        self.active = True
        return self.calls

    def __exit__(self, *exc) -> None:
        self.active = False


@pytest.fixture
def decodes(monkeypatch) -> DecodeSpy:
    return DecodeSpy(monkeypatch)


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP", "HEIF"])
def test_the_request_decodes_no_pixel_of_an_accepted_photo(client, pharmacist_token, decodes, fmt):
    photo = encode(sample_photo(800, 600), fmt, exif=gps_exif(orientation=6).tobytes())
    with decodes as calls:
        assert _upload(client, pharmacist_token, photo).status_code == 201
        assert _upload(client, pharmacist_token, photo, path="/api/v1/analysis/skin").status_code == 202
        assert calls == []
        Image.open(io.BytesIO(photo)).load()
        assert set(calls) == {fmt}  # the spy does see a decode


@pytest.mark.parametrize("path", ["/api/v1/consultations", "/api/v1/analysis/skin"])
def test_a_163_kb_png_of_40_megapixels_is_refused_from_its_header_naming_image(client, pharmacist_token, decodes,
                                                                               path):  # fmt: skip
    bomb = solid_png()  # 8000 x 5000 RGBA of one colour: under the pixel cap, 160 MB decoded
    assert len(bomb) < 200_000
    with decodes as calls:
        response = _upload(client, pharmacist_token, bomb, path=path)
    assert calls == []
    assert response.status_code == 413, response.get_json()
    error = response.get_json()["error"]
    assert error["code"] == "too_compressed"
    assert "a byte" in error["details"]["files"]["image"][0] and "100" in error["message"]
    assert db.session.scalar(select(Consultation.id)) is None


@pytest.mark.parametrize(
    ("data", "status", "code"),
    [
        (b"GIF89a" + b"\x00" * 100, 415, "unsupported_type"),
        (b"just some text, not a picture", 415, "unsupported_type"),
        (png_bomb(), 413, "too_many_pixels"),
        (b"\xff\xd8\xff\xe0" + b"\x00" * 64, 422, "unreadable"),
    ],
    ids=["gif", "text", "100-megapixel bomb", "broken jpeg"],
)
def test_refused_uploads_give_a_4xx_naming_image_and_store_nothing(client, pharmacist_token, data, status, code):
    response = _upload(client, pharmacist_token, data)
    assert response.status_code == status, response.get_json()
    error = response.get_json()["error"]
    assert error["code"] == code and "image" in error["details"]["files"]
    assert db.session.scalar(select(Consultation.id)) is None


def test_a_dark_photo_is_kept_and_a_retake_is_asked_for(client, pharmacist_token):
    dark = Image.eval(sample_photo(800, 600), lambda v: v // 12)
    response = _upload(client, pharmacist_token, encode(dark, "JPEG"))
    assert response.status_code == 201
    analyse_consultation(response.get_json()["id"])
    body = client.get(f"/api/v1/consultations/{response.get_json()['id']}", headers=bearer(pharmacist_token)).get_json()
    assert "too_dark" in body["retake"]["problems"] and "daylight" in body["retake"]["message"]


def test_a_photo_over_the_decode_budget_is_rejected_by_the_job_and_the_worker_carries_on(app, client,
                                                                                        pharmacist_token,
                                                                                        monkeypatch):  # fmt: skip
    # 60 MiB: a 1600 x 1200 PNG is estimated at ~78 MiB, a 320 x 240 JPEG at ~49 MiB (images.decode_cost).
    monkeypatch.setitem(app.config, "IMAGE_DECODE_MAX_BYTES", 60 << 20)
    big = _upload(client, pharmacist_token, encode(sample_photo(1600, 1200), "PNG"), path="/api/v1/analysis/skin")
    assert big.status_code == 202  # the header is fine: only the worker knows its memory budget
    small = _upload(client, pharmacist_token, encode(sample_photo(320, 240), "JPEG"))

    run_worker(app, burst=True, with_scheduler=False)  # the real worker, jobs in its own process

    token = bearer(pharmacist_token)
    analysis = client.get(f"/api/v1/analysis/{big.get_json()['id']}", headers=token).get_json()
    assert (analysis["status"], analysis["error_code"]) == ("failed", "too_large_to_decode")
    refused = client.get(f"/api/v1/consultations/{big.get_json()['consultation_id']}", headers=token).get_json()
    assert refused["status"] == "completed" and refused["recommendation"] is not None  # triage from the answers
    assert (refused["images"][0]["status"], refused["images"][0]["error_code"]) == ("rejected", "too_large_to_decode")
    assert refused["retake"] is not None
    assert client.get(f"/api/v1/consultations/{small.get_json()['id']}",
                      headers=token).get_json()["images"][0]["status"] == "stored"  # fmt: skip
    assert FailedJobRegistry(queue=get_queue(QUEUE_INFERENCE)).count == 0


def test_eleven_uploads_a_minute_are_one_too_many_and_another_user_is_not_affected(client, pharmacist_token):
    photo = encode(sample_photo(320, 240), "JPEG")
    statuses = [_upload(client, pharmacist_token, photo, path=path).status_code
                for path in ["/api/v1/consultations", "/api/v1/analysis/skin"] * 5]  # fmt: skip
    assert statuses == [201, 202] * 5  # one budget across both endpoints
    for path in ("/api/v1/consultations", "/api/v1/analysis/skin"):
        response = _upload(client, pharmacist_token, photo, path=path)
        assert response.status_code == 429
        assert response.get_json()["error"]["code"] == "rate_limited" and int(response.headers["Retry-After"]) > 0
    other = make_user("pharmacist", phone="+233241888888")
    assert _upload(client, login(client, other)["access_token"], photo).status_code == 201
    # Other endpoints are not part of the upload budget.
    assert client.get("/api/v1/consultations", headers=bearer(pharmacist_token)).status_code == 200


def test_missing_image_or_a_text_part_instead_of_a_file_is_a_422(client, pharmacist_token):
    response = client.post("/api/v1/consultations", headers=bearer(pharmacist_token), data={"itch": "true"},
                           content_type="multipart/form-data")  # fmt: skip
    assert response.status_code == 422 and "image" in str(response.get_json()["error"]["details"])
    response = client.post("/api/v1/consultations", headers=bearer(pharmacist_token), data={"image": "not a file"},
                           content_type="multipart/form-data")  # fmt: skip
    assert response.status_code == 422


def test_bad_answers_are_a_422_naming_the_field(client, pharmacist_token):
    response = _upload(client, pharmacist_token, encode(sample_photo(640, 480), "JPEG"), body_site="elbow")
    assert response.status_code == 422 and "body_site" in str(response.get_json()["error"]["details"])
    assert db.session.scalar(select(Consultation.id)) is None


def test_pharmacists_see_only_their_own_and_reads_are_audited(app, client, people, pharmacist_token):
    mine = _upload(client, pharmacist_token, encode(sample_photo(640, 480), "JPEG")).get_json()["id"]
    other = make_user("pharmacist", phone="+233241999999")
    other_token = login(client, other)["access_token"]
    theirs = _upload(client, other_token, encode(sample_photo(640, 480), "JPEG")).get_json()["id"]
    listed = client.get("/api/v1/consultations", headers=bearer(pharmacist_token)).get_json()
    assert [item["id"] for item in listed["items"]] == [mine]
    assert client.get(f"/api/v1/consultations/{theirs}", headers=bearer(pharmacist_token)).status_code == 404
    admin = client.get("/api/v1/consultations", headers=bearer(people["tokens"]["admin"])).get_json()
    assert {item["id"] for item in admin["items"]} == {mine, theirs}
    assert client.get(f"/api/v1/consultations/{mine}", headers=bearer(pharmacist_token)).status_code == 200
    reads = db.session.scalars(select(AuditLog).where(AuditLog.action == "consultation.read")).all()
    assert [(row.entity_id, row.actor_id) for row in reads] == [(mine, people["users"]["pharmacist"].id)]


def test_the_job_triages_an_upload_and_put_triages_again(client, pharmacist_token):
    created = _upload(client, pharmacist_token, encode(sample_photo(640, 480), "JPEG"), condition="eczema",
                      age_group="y18_to_59", pregnant=False, body_site="trunk_limbs", open_sore="no").get_json()  # fmt: skip
    assert analyse_consultation(created["id"]) == "done"
    assert analyse_consultation(created["id"]) == "already done"
    body = client.get(f"/api/v1/consultations/{created['id']}", headers=bearer(pharmacist_token)).get_json()
    assert body["status"] == "completed" and body["recommendation"]["level"] == "self_care"
    assert body["recommendation"]["medication_ids"] and "not a diagnosis" in body["recommendation"]["advice"]
    # The unvalidated default model's labels are recorded but not shown to the pharmacist.
    assert body["analyses"][0]["status"] == "completed" and body["analyses"][0]["top"] == []
    assert body["analyses"][0]["model_validated"] is False
    changed = client.put(f"/api/v1/consultations/{created['id']}", headers=bearer(pharmacist_token),
                         json={"fever": True, "spreading": True})  # fmt: skip
    assert changed.status_code == 200
    recommendation = changed.get_json()["recommendation"]
    assert recommendation["level"] == "urgent" and "fever_with_spreading_redness" in recommendation["rule_ids"]
    assert recommendation["medication_ids"] == []


def test_analysis_endpoint_answers_202_then_the_result(client, people, pharmacist_token):
    response = _upload(client, pharmacist_token, encode(sample_photo(640, 480), "JPEG"), path="/api/v1/analysis/skin")
    assert response.status_code == 202, response.get_json()
    accepted = response.get_json()
    assert accepted["status"] == "queued"
    analyse_consultation(accepted["consultation_id"])
    result = client.get(f"/api/v1/analysis/{accepted['id']}", headers=bearer(pharmacist_token)).get_json()
    assert result["status"] == "completed" and result["model_name"] and result["top"] == []
    admin = client.get(f"/api/v1/analysis/{accepted['id']}", headers=bearer(people["tokens"]["admin"])).get_json()
    assert len(admin["top"]) == 3  # admins audit the raw output of the unvalidated model
    assert _upload(client, pharmacist_token, png_bomb(), path="/api/v1/analysis/skin").status_code == 413


def test_medications_list_search_and_one(client, people):
    token = people["tokens"]["viewer"]
    listed = client.get("/api/v1/medications?per_page=100", headers=bearer(token)).get_json()
    names = [item["name"] for item in listed["items"]]
    assert names == sorted(names) and any("Clotrimazole" in name for name in names)
    assert all(item["ghana_class"] == "unknown" for item in listed["items"])
    found = client.get("/api/v1/medications/search?q=SCABIES", headers=bearer(token)).get_json()
    assert {"Permethrin 5% cream", "Benzyl benzoate 25% emulsion"} <= {item["name"] for item in found["items"]}
    one = client.get(f"/api/v1/medications/{listed['items'][0]['id']}", headers=bearer(token))
    assert one.status_code == 200 and one.get_json()["dose_guidance"]
    assert client.get("/api/v1/medications/search", headers=bearer(token)).status_code == 422  # q is required
    assert client.get("/api/v1/medications?availability=shop", headers=bearer(token)).status_code == 422


def test_guidelines_show_every_rule_with_its_evidence(client, people):
    from app.services import triage

    body = client.get("/api/v1/triage/guidelines", headers=bearer(people["tokens"]["pharmacist"])).get_json()
    by_code = {item["code"]: item for item in body["items"]}
    assert {rule.id for rule in triage.rules().rules} <= set(by_code)
    assert by_code["non_healing_ulcer"]["verified"] is False and by_code["non_healing_ulcer"]["evidence"] == "U"
    assert by_code["infant_fever"]["level"] == "urgent"
    urgent = client.get("/api/v1/triage/guidelines?level=urgent&kind=red_flag",
                        headers=bearer(people["tokens"]["pharmacist"])).get_json()["items"]  # fmt: skip
    assert urgent and all(item["level"] == "urgent" and item["kind"] == "red_flag" for item in urgent)


def test_chat_link_code_is_six_digits_for_fifteen_minutes(client, pharmacist_token):
    from datetime import datetime, timedelta

    response = client.post("/api/v1/auth/chat-link", headers=bearer(pharmacist_token))
    assert response.status_code == 201
    body = response.get_json()
    assert len(body["code"]) == 6 and body["code"].isdigit()
    expires = datetime.fromisoformat(body["expires_at"])
    assert timedelta(minutes=14) < expires - datetime.now(expires.tzinfo) <= timedelta(minutes=15)


# --- triage v2 (issue 14): the screen over REST, the questions, the guidelines, the site type ---------------------


def test_the_questions_endpoint_lists_every_question_with_both_languages(client, people):
    from app.services import skin_questions, triage

    body = client.get("/api/v1/triage/questions", headers=bearer(people["tokens"]["viewer"])).get_json()
    items = body["items"]
    assert [item["id"] for item in items] == [question.field for question in skin_questions.ALL]
    assert [item["id"] for item in items][:4] == ["condition", "age_group", "pregnant", "red_flags"]  # early
    screen = next(item for item in items if item["id"] == "red_flags")
    assert screen["kind"] == "multi" and screen["none_value"] == []
    assert [option["value"] for option in screen["options"]] == list(triage.RED_FLAGS)
    for option in screen["options"]:
        assert option["label"]["en"] and option["label"]["tn"] and option["description"]["tn"]
    pregnant = next(item for item in items if item["id"] == "pregnant")
    assert pregnant["asked_when"] == {"age_from_months": 120, "age_below_months": 720}
    assert [option["value"] for option in pregnant["options"]] == [True, False]
    condition = next(item for item in items if item["id"] == "condition")
    assert "animal_bite" in [option["value"] for option in condition["options"]]
    body_site = next(item for item in items if item["id"] == "body_site")
    assert "joint" in [option["value"] for option in body_site["options"]]


@pytest.mark.parametrize(
    ("sent", "stored"),
    [([], []), (["numb_patch"], ["numb_patch"]), (None, None), (["many_lesions", "weak_immunity"],
                                                                 ["many_lesions", "weak_immunity"])],
)  # fmt: skip
def test_put_sets_the_screen_empty_list_none_and_null_not_asked(client, pharmacist_token, sent, stored):
    created = _upload(client, pharmacist_token, encode(sample_photo(640, 480), "JPEG")).get_json()
    assert created["red_flags"] is None  # absent: not asked
    changed = client.put(f"/api/v1/consultations/{created['id']}", headers=bearer(pharmacist_token),
                         json={"red_flags": sent})  # fmt: skip
    assert changed.status_code == 200 and changed.get_json()["red_flags"] == stored


@pytest.mark.parametrize("bad", [["itchy_feet"], ["numb_patch", "numb_patch"], "numb_patch", [1]])
def test_an_unknown_or_repeated_red_flag_is_a_422_naming_the_field(client, pharmacist_token, bad):
    created = _upload(client, pharmacist_token, encode(sample_photo(640, 480), "JPEG")).get_json()
    response = client.put(f"/api/v1/consultations/{created['id']}", headers=bearer(pharmacist_token),
                          json={"red_flags": bad})  # fmt: skip
    if bad == "numb_patch":  # one id as a string is read as a list of one (the multipart form of a single tick)
        assert response.status_code == 200 and response.get_json()["red_flags"] == ["numb_patch"]
        return
    assert response.status_code == 422 and "red_flags" in str(response.get_json()["error"]["details"])


def test_a_multipart_upload_takes_the_screen_repeated_or_comma_separated(client, pharmacist_token):
    photo = encode(sample_photo(640, 480), "JPEG")
    for value, stored in (("", []), ("numb_patch, black_scab", ["numb_patch", "black_scab"]),
                          (["pus_or_crusts", "many_lesions"], ["pus_or_crusts", "many_lesions"])):  # fmt: skip
        body = _upload(client, pharmacist_token, photo, red_flags=value).get_json()
        assert body["red_flags"] == stored, value
    response = _upload(client, pharmacist_token, photo, red_flags="numb_patch,sunburn")
    assert response.status_code == 422 and "red_flags" in str(response.get_json()["error"]["details"])


def test_an_analysed_consultation_is_triaged_again_when_a_red_flag_is_ticked(client, pharmacist_token):
    created = _upload(client, pharmacist_token, encode(sample_photo(640, 480), "JPEG"), condition="eczema",
                      age_group="y18_to_59", pregnant=False, body_site="trunk_limbs", open_sore="no",
                      red_flags="").get_json()  # fmt: skip
    analyse_consultation(created["id"])
    changed = client.put(f"/api/v1/consultations/{created['id']}", headers=bearer(pharmacist_token),
                         json={"red_flags": ["airway_swelling"]}).get_json()["recommendation"]  # fmt: skip
    assert changed["level"] == "urgent" and changed["rule_ids"] == ["airway_swelling"]
    assert changed["medication_ids"] == [] and changed["advice"].startswith("Emergency: send to hospital now.")
    assert len(changed["advice"]) <= 700


def test_the_guidelines_show_the_new_rules_levels_and_effects(client, people):
    token = people["tokens"]["pharmacist"]
    items = client.get("/api/v1/triage/guidelines", headers=bearer(token)).get_json()["items"]
    by_code = {item["code"]: item for item in items}
    assert by_code["black_scab"]["effects"] == {"withhold": ["steroid"], "advice": ["triage_advice_black_scab"]}
    assert by_code["numb_patch"]["effects"]["withhold"] == ["antifungal", "steroid"]
    assert by_code["black_scab"]["evidence"] == "U" and by_code["black_scab"]["verified"] is False
    assert by_code["condition:animal_bite"]["level"] == "urgent"
    assert by_code["condition:shingles"]["effects"]["advice"] == ["triage_advice_shingles"]
    today = client.get("/api/v1/triage/guidelines?level=clinic_today", headers=bearer(token)).get_json()["items"]
    assert {"condition:shingles", "condition:cellulitis", "fever_widespread_rash"} <= {i["code"] for i in today}


def test_the_openapi_document_knows_the_new_level_the_screen_and_the_questions(client):
    spec = client.get("/api/v1/openapi.json").get_json()
    assert "/api/v1/triage/questions" in spec["paths"]
    schemas = spec["components"]["schemas"]
    assert schemas["Recommendation"]["properties"]["level"]["enum"] == ["self_care", "pharmacy", "clinic",
                                                                        "clinic_today", "urgent"]  # fmt: skip
    guideline_query = spec["paths"]["/api/v1/triage/guidelines"]["get"]["parameters"]
    level = next(parameter for parameter in guideline_query if parameter["name"] == "level")
    assert "clinic_today" in level["schema"]["enum"]
    assert "red_flags" in schemas["ConsultationUpdate"]["properties"]


def test_a_pharmacist_registers_as_an_otc_seller_and_is_answered_as_one(client):
    form = {"name": "Kofi Mensah", "email": "kofi@example.org", "phone": "+233241555001",
            "password": "mixing-kenkey-2026", "pharmacy_name": "Kofi Chemicals", "site_type": "otc_seller"}  # fmt: skip
    registered = client.post("/api/v1/auth/register", json=form)
    assert registered.status_code == 201, registered.get_json()
    assert registered.get_json()["site_type"] == "otc_seller"
    token = client.post("/api/v1/auth/login", json={"email": form["email"], "password": form["password"]}).get_json()[
        "access_token"
    ]
    created = _upload(client, token, encode(sample_photo(640, 480), "JPEG"), condition="fungal",
                      age_group="y18_to_59", pregnant=False, body_site="trunk_limbs", open_sore="no",
                      red_flags="").get_json()  # fmt: skip
    analyse_consultation(created["id"])
    recommendation = client.get(f"/api/v1/consultations/{created['id']}", headers=bearer(token)).get_json()[
        "recommendation"
    ]
    assert recommendation["level"] == "pharmacy" and recommendation["medication_ids"] == []
    assert recommendation["advice"].startswith("Send to a pharmacy")
    default = client.post("/api/v1/auth/register", json={**form, "email": "ama@example.org", "phone": "+233241555002",
                                                          "site_type": None})  # fmt: skip
    assert default.status_code == 201 and default.get_json()["site_type"] == "pharmacy"  # null: the default
    plain = client.post("/api/v1/auth/register", json={k: v for k, v in {**form, "email": "esi@example.org",
                                                                          "phone": "+233241555003"}.items()
                                                       if k != "site_type"})  # fmt: skip
    assert plain.status_code == 201 and plain.get_json()["site_type"] == "pharmacy"
    bad = client.post("/api/v1/auth/register", json={**form, "email": "yaw@example.org", "phone": "+233241555004",
                                                      "site_type": "kiosk"})  # fmt: skip
    assert bad.status_code == 422 and "site_type" in str(bad.get_json()["error"]["details"])


def test_only_a_pharmacist_account_has_a_site_type(client, people):
    admin = people["tokens"]["admin"]
    body = {"email": "staff2@example.org", "password": "mixing-kenkey-2026", "role": "staff",
            "clinic_id": str(people["home"].id), "site_type": "pharmacy"}  # fmt: skip
    response = client.post("/api/v1/users", headers=bearer(admin), json=body)
    assert response.status_code == 422 and "site_type" in str(response.get_json()["error"]["details"])
