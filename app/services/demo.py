"""Demo data for ``make run``: a clinic in Gaborone with staff, a clinic in Accra, a pharmacist, an admin.

Idempotent: run it any number of times; existing rows (matched by name or email) are left as they are.
The passwords are public (printed by ``make run``), so ``seed-demo`` refuses to run in production.
"""

from __future__ import annotations

from sqlalchemy import select

from app.extensions import db
from app.models import Clinic, User
from app.services.passwords import hash_password

CLINICS = (
    {"name": "Gaborone Main Clinic", "country": "BW", "timezone": "Africa/Gaborone", "default_language": "tn"},
    {"name": "Accra Central Clinic", "country": "GH", "timezone": "Africa/Accra", "default_language": "en"},
)
# (email, password, role, clinic name, phone, name, pharmacy, language)
ACCOUNTS = (
    ("admin@thusa.example", "thusa-admin-demo", "admin", None, None, "Demo Admin", None, "en"),
    ("staff@thusa.example", "thusa-staff-demo", "staff", "Gaborone Main Clinic", "+26771000001", "Neo Molefe",
     None, "tn"),
    ("viewer@thusa.example", "thusa-viewer-demo", "viewer", "Gaborone Main Clinic", None, "Kagiso Dube", None, "en"),
    ("accra.staff@thusa.example", "thusa-staff-demo", "staff", "Accra Central Clinic", "+233241000001", "Ama Mensah",
     None, "en"),
    ("pharmacist@thusa.example", "thusa-pharmacist-demo", "pharmacist", None, "+233241000002", "Kwame Asante",
     "Makola Pharmacy", "en"),
)  # fmt: skip


def seed_demo() -> list[str]:
    """Create whatever of the demo data is missing.

    Returns:
        Lines to print: each demo sign-in with its password.
    """
    clinics = {}
    for data in CLINICS:
        clinic = db.session.scalar(select(Clinic).where(Clinic.name == data["name"]))
        if clinic is None:
            clinic = Clinic(**data)
            db.session.add(clinic)
            db.session.flush()
        clinics[data["name"]] = clinic
    lines = ["Demo sign-ins (POST /api/v1/auth/login):"]
    for email, password, role, clinic_name, phone, name, pharmacy, language in ACCOUNTS:
        if db.session.scalar(select(User.id).where(User.email == email)) is None:
            db.session.add(
                User(
                    email=email,
                    password_hash=hash_password(password),
                    role=role,
                    name=name,
                    phone=phone,
                    clinic_id=clinics[clinic_name].id if clinic_name else None,
                    pharmacy_name=pharmacy,
                    language=language,
                    active=True,
                )  # fmt: skip
            )
        lines.append(f"  {role:<10} {email:<28} {password}")
    db.session.commit()
    return lines
