"""Settings, read from the environment in one place.

Every setting has a documented default: the ``SETTING_GROUPS`` table below, from which ``make docs`` generates
``docs/configuration.md`` (``.env.example`` lists the same variables). ``THUSA_ENV`` picks the mode:
``development`` (default), ``test`` or ``production``. In production the secrets must be set explicitly; in
development they are generated once and kept under ``instance/`` so that tokens survive a restart of ``make run``;
in test they are random for each process.
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
ENVIRONMENTS = ("development", "test", "production")
REQUIRED_IN_PRODUCTION = ("SECRET_KEY", "JWT_SECRET_KEY")


class ConfigError(RuntimeError):
    """Raised when the settings cannot make a safe application."""


@dataclass(frozen=True)
class Setting:
    """One environment variable: its name, default and meaning (docs/configuration.md is generated from these)."""

    name: str
    default: str
    help: str


# The settings table, in groups: `make docs` (app/config_docs.py) writes docs/configuration.md from it, one table a
# group, and a test fails when that page is stale. An empty default means "computed", as the help says.
SETTING_GROUPS: tuple[tuple[str, tuple[Setting, ...]], ...] = (
    ("General", (
        Setting("THUSA_ENV", "development", "`development`, `test` or `production`. Production refuses to start "
                "without `SECRET_KEY` and `JWT_SECRET_KEY` (naming each missing one), with `RATELIMIT_ENABLED=false` "
                "and with `SIMULATOR_ENABLED=true`; `seed-demo` refuses to run and `make run` seeds no demo data"),
        Setting("SECRET_KEY", "", "Flask secret; required in production, otherwise generated once and kept in "
                "`instance/.secret_key` (random for each process in `test`). It also keys the password-reset and "
                "chat-link code hashes and peppers the staff USSD PINs: changing it invalidates every PIN"),
        Setting("JWT_SECRET_KEY", "", "JWT signing key; required in production, otherwise generated once and kept in "
                "`instance/.jwt_secret_key`. Changing it signs everybody out"),
        Setting("DATABASE_URL", "", "SQLAlchemy URL, e.g. `postgresql+psycopg://user@host/db`; unset: SQLite "
                "`instance/thusa.db` (WAL mode, 5 s busy timeout)"),
        Setting("DATABASE_PING_AFTER_IDLE_SECONDS", "1", "a pooled database connection idle this long is checked "
                "(a round trip) before use; 0 checks every time. One busier than that is not, so after a database "
                "restart each process may answer a request 503 (`Retry-After`; at most one a thread) before it "
                "reconnects"),
        Setting("REDIS_URL", "", "`redis://host:port/db`; unset: the embedded Redis under `instance/` (Unix socket "
                "`instance/redis.sock`)"),
        Setting("INSTANCE_PATH", "instance", "folder for the embedded SQLite file, embedded Redis and generated keys "
                "(a relative path is taken from the project folder)"),
        Setting("HOST", "127.0.0.1", "address the web server started by `make run` listens on"),
        Setting("PORT", "5000", "port of the web server started by `make run`"),
        Setting("WEB_CONCURRENCY", "2", "gunicorn worker processes started by `make run` (4 threads each)"),
        Setting("JWT_ACCESS_MINUTES", "15", "lifetime of an access token, in minutes"),
        Setting("JWT_REFRESH_DAYS", "30", "lifetime of a refresh token, in days"),
        Setting("RATELIMIT_DEFAULT", "100 per minute", "API limit per user (per address when anonymous), one budget "
                "across every endpoint"),
        Setting("RATELIMIT_AUTH", "10 per minute", "limit per address on login, register and password reset (request "
                "and confirm), each endpoint counted on its own"),
        Setting("RATELIMIT_REGISTER", "10 per hour", "limit per address on registrations that succeed or answer 409 "
                "(an email or phone already in use): what bounds probing for accounts through `register`"),
        Setting("LOGIN_BACKOFF_AFTER", "10", "failed logins in a row on one email (from any address) before it waits "
                "2 s, then 4, 8 ... between tries (429 `login_backoff`); forgotten an hour after the last failure "
                "and on a successful login"),
        Setting("LOGIN_BACKOFF_MAX_SECONDS", "900", "longest wait the login back-off imposes; addresses the account "
                "signed in from in the last 30 days are never made to wait"),
        Setting("RATELIMIT_ENABLED", "true", "`false` turns rate limiting off (refused in production)"),
        Setting("UPLOAD_RATE_LIMIT", "10 per minute", "photo uploads per user (`POST /api/v1/consultations` and "
                "`POST /api/v1/analysis/skin` together), on top of `RATELIMIT_DEFAULT`"),
        Setting("CORS_ORIGINS", "", "comma-separated origins allowed to call `/api` from a browser; empty: none"),
        Setting("MAX_CONTENT_LENGTH", str(16 * 1024 * 1024), "largest request body in bytes (413 above it)"),
        Setting("TRUST_PROXY_HOPS", "0", "number of reverse proxies in front of the app (`X-Forwarded-For`, "
                "`-Proto`, `-Host`, `-Port`); 1 behind one TLS proxy, 0 when clients reach gunicorn directly"),
        Setting("PASSWORD_RESET_MINUTES", "15", "lifetime of a password reset code, in minutes"),
        Setting("PASSWORD_RESET_MAX_ATTEMPTS", "5", "wrong codes before a reset code is spent"),
        Setting("PASSWORD_RESET_CODES_PER_HOUR", "3", "reset codes sent to one account per hour; further requests get "
                "the same 202 and send nothing"),
        Setting("USSD_SERVICE_CODE", "*384*2580#", "USSD service code shown in menus and accepted in requests"),
        Setting("LOG_LEVEL", "INFO", "root log level (`DEBUG`, `INFO`, `WARNING`, `ERROR`)"),
    )),
    ("Messaging", (
        Setting("PUBLIC_BASE_URL", "", "public https URL of this service (webhook signatures, status callbacks)"),
        Setting("SMS_PROVIDERS", "twilio,africastalking", "SMS providers in failover order (those with credentials; "
                "none: the console sender)"),
        Setting("SMS_CAP_PER_NUMBER_HOUR", "20", "non-reminder SMS to one number per hour, counted apart for sends "
                "on behalf of signed-in users and clinics and for unauthenticated ones (SMS pumping guard)"),
        Setting("SMS_BUDGET_UNAUTHENTICATED_HOUR", "300", "SMS per hour sent at the request of nobody signed in "
                "(password reset codes), all countries together; over it they are dropped, never other SMS"),
        Setting("SMS_BUDGET_UNAUTHENTICATED_COUNTRY_HOUR", "100", "the same, per destination country (from the "
                "number's country code)"),
        Setting("SEND_ATTEMPTS_PER_PROVIDER", "3", "tries per provider on timeouts, 5xx and 429 before the next one"),
        Setting("SEND_PROVIDER_SECONDS", "30", "time budget per provider for those tries"),
        Setting("SEND_RETRY_BACKOFF_SECONDS", "1", "pause before the 2nd try of a provider (doubles for the 3rd)"),
        Setting("TWILIO_ACCOUNT_SID", "", "Twilio account SID"),
        Setting("TWILIO_AUTH_TOKEN", "", "Twilio auth token (signs webhooks; a secret)"),
        Setting("TWILIO_FROM", "", "Twilio sender number or alphanumeric id for SMS"),
        Setting("TWILIO_WHATSAPP_FROM", "", "Twilio WhatsApp sender, e.g. +14155238886"),
        Setting("TWILIO_API_BASE_URL", "", "scheme://host[:port] of the Twilio API; unset: https://api.twilio.com"),
        Setting("TWILIO_WHATSAPP_CONTENT_SID", "", "approved Twilio template (ContentSid) for WhatsApp outside 24 h"),
        Setting("AT_USERNAME", "", "Africa's Talking username ('sandbox' for the sandbox)"),
        Setting("AT_API_KEY", "", "Africa's Talking API key (a secret)"),
        Setting("AT_SENDER_ID", "", "Africa's Talking sender id or short code"),
        Setting("AT_WEBHOOK_TOKEN", "", "secret path token in Africa's Talking callback URLs"),
        Setting("AT_API_BASE_URL", "", "scheme://host[:port] of the AT API; unset: https://api.africastalking.com"),
        Setting("TELEGRAM_BOT_TOKEN", "", "Telegram bot token (a secret)"),
        Setting("TELEGRAM_WEBHOOK_SECRET", "", "X-Telegram-Bot-Api-Secret-Token expected on Telegram webhooks"),
        Setting("TELEGRAM_API_BASE_URL", "", "scheme://host[:port] of the Bot API; unset: https://api.telegram.org"),
        Setting("WHATSAPP_TOKEN", "", "WhatsApp Cloud API access token (a secret)"),
        Setting("WHATSAPP_PHONE_NUMBER_ID", "", "WhatsApp Cloud API phone number id"),
        Setting("WHATSAPP_APP_SECRET", "", "Meta app secret (X-Hub-Signature-256)"),
        Setting("WHATSAPP_VERIFY_TOKEN", "", "token Meta sends when the webhook is registered (hub.verify_token)"),
        Setting("WHATSAPP_API_BASE_URL", "", "scheme://host[:port] of the Graph API; unset: "
                "https://graph.facebook.com"),
        Setting("WHATSAPP_API_VERSION", "v21.0", "Graph API version"),
        Setting("WHATSAPP_TEMPLATE_REMINDER", "", "approved WhatsApp template for reminders outside 24 h"),
    )),
    ("Appointments", (
        Setting("MESSAGE_RETENTION_DAYS", "365", "days before a message's contents (text, buttons, media "
                "references; any kind, in and out) and a skin photo are erased (daily job `erase-texts`; statuses, "
                "counts and triage outcomes are kept; at least 1)"),
    )),
    ("Phone simulator", (
        Setting("SIMULATOR_ENABLED", "", "the phone simulator at `/simulator`: `true` or `false`; empty: on in "
                "development only. `true` is refused in production: the simulator signs webhooks with the providers' "
                "secrets, so anyone who reaches it could forge them. In development it signs with "
                "`TWILIO_AUTH_TOKEN`, `AT_WEBHOOK_TOKEN`, `TELEGRAM_WEBHOOK_SECRET` and `WHATSAPP_APP_SECRET`, "
                "generating any that is unset under `instance/` (`TWILIO_AUTH_TOKEN` only while `TWILIO_ACCOUNT_SID` "
                "is unset)"),
    )),
    ("Skin pipeline: image caps and the ONNX model", (
        Setting("IMAGE_MAX_BYTES", str(15 * 1024 * 1024), "largest photo accepted, in bytes (REST upload or chat "
                "download; 413 above it)"),
        Setting("IMAGE_MAX_PIXELS", "40000000", "largest photo accepted, in pixels, read from the header before "
                "anything is decoded (decompression bombs; 413 above it)"),
        Setting("IMAGE_MAX_PIXELS_PER_BYTE", "100", "most pixels a byte of file for a photo over 4 megapixels, read "
                "from the header (phone photos hold 2-15, a one-colour PNG bomb ~240; 413 `too_compressed` above it)"),
        Setting("IMAGE_DECODE_MAX_BYTES", str(256 * 1024 * 1024), "memory one photo may take in the inference worker, "
                "estimated from its header before decoding (format, size, colour mode); above it the photo is "
                "rejected as `too_large_to_decode`"),
        Setting("SKIN_MODEL_DIR", "", "folder with `model.onnx` + `manifest.json`; unset: the shipped EfficientNet-Lite0 "
                "feature extractor `app/skin_model/default` (names no condition). A trained model's labels are shown "
                "only after `flask skin-model validate` (docs/skin-model.md)"),
    )),
    ("Skin second opinions and follow-up", (
        Setting("REVIEW_TARGET_MINUTES_URGENT", "60", "minutes an `urgent` consultation may wait in the clinicians' "
                "review queue; past it, the clinicians who cover it get one SMS (the job `review-alerts`, every "
                "minute), or the pharmacist hears that no clinician covers the queue"),
        Setting("REVIEW_TARGET_MINUTES", "1440", "the same target for every other level"),
        Setting("REVIEW_PHOTO_URL_SECONDS", "300", "lifetime of a photo link in `GET /api/v1/reviews/{id}` (a signed "
                "URL, readable without a token until it expires)"),
        Setting("FOLLOW_UP_MINUTES_REFERRED", "4320", "minutes after the triage reply before the check-in "
                "\"How is the patient?\" goes to the pharmacist's chat, for the levels `clinic`, `clinic_today` and "
                "`urgent` (the job `follow-ups`, every minute)"),
        Setting("FOLLOW_UP_MINUTES_SELF_CARE", "10080", "the same for `self_care` and `pharmacy`"),
    )),
)  # fmt: skip
SETTINGS: tuple[Setting, ...] = tuple(setting for _, group in SETTING_GROUPS for setting in group)

# Webhook secrets the simulator signs with. In development with the simulator on, an unset one is generated under
# instance/ like SECRET_KEY, so `make run` needs no hand steps. None of them makes an outbound sender "configured"
# (TWILIO_AUTH_TOKEN is generated only while TWILIO_ACCOUNT_SID is unset, see _simulator_settings).
SIMULATOR_SECRETS = ("TWILIO_AUTH_TOKEN", "AT_WEBHOOK_TOKEN", "TELEGRAM_WEBHOOK_SECRET", "WHATSAPP_APP_SECRET")

_INTEGERS = (
    "PORT", "WEB_CONCURRENCY", "DATABASE_PING_AFTER_IDLE_SECONDS", "JWT_ACCESS_MINUTES", "JWT_REFRESH_DAYS", "MAX_CONTENT_LENGTH", "TRUST_PROXY_HOPS",
    "PASSWORD_RESET_MINUTES", "PASSWORD_RESET_MAX_ATTEMPTS", "PASSWORD_RESET_CODES_PER_HOUR", "LOGIN_BACKOFF_AFTER",
    "LOGIN_BACKOFF_MAX_SECONDS", "SMS_CAP_PER_NUMBER_HOUR", "SMS_BUDGET_UNAUTHENTICATED_HOUR",
    "SMS_BUDGET_UNAUTHENTICATED_COUNTRY_HOUR",
    "SEND_ATTEMPTS_PER_PROVIDER", "SEND_PROVIDER_SECONDS", "MESSAGE_RETENTION_DAYS",
    "IMAGE_MAX_BYTES", "IMAGE_MAX_PIXELS", "IMAGE_MAX_PIXELS_PER_BYTE", "IMAGE_DECODE_MAX_BYTES",  # skin pipeline
    "REVIEW_TARGET_MINUTES_URGENT", "REVIEW_TARGET_MINUTES", "REVIEW_PHOTO_URL_SECONDS",  # second opinions
    "FOLLOW_UP_MINUTES_REFERRED", "FOLLOW_UP_MINUTES_SELF_CARE",
)  # fmt: skip


def _env(name: str) -> str:
    default = next(s.default for s in SETTINGS if s.name == name)
    return os.environ.get(name, default)


def _bool(value: str) -> bool:
    return value.strip().lower() in {"1", "true", "yes", "on"}


def _persistent_secret(instance: Path, name: str) -> str:
    """A random secret kept in ``instance/`` so development tokens outlive a restart."""
    path = instance / f".{name.lower()}"
    if path.exists():
        return path.read_text().strip()
    instance.mkdir(mode=0o700, parents=True, exist_ok=True)
    value = secrets.token_urlsafe(48)
    try:
        descriptor = os.open(
            path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600
        )  # never readable by others, not even briefly
    except FileExistsError:  # another process (a second gunicorn worker) made it first: use theirs
        return path.read_text().strip()
    with os.fdopen(descriptor, "w") as handle:
        handle.write(value)
    return value


def instance_path() -> Path:
    """The instance folder (absolute)."""
    path = Path(_env("INSTANCE_PATH"))
    return path if path.is_absolute() else PROJECT_ROOT / path


def load_config(overrides: dict | None = None) -> dict:
    """Build the Flask config mapping from the environment, then apply ``overrides`` (tests pass theirs here).

    Raises:
        ConfigError: unknown ``THUSA_ENV``, or production without every secret it needs (all named at once), with
            rate limits off or with the phone simulator on.
    """
    overrides = dict(overrides or {})
    env = overrides.get("THUSA_ENV", _env("THUSA_ENV"))
    if env not in ENVIRONMENTS:
        raise ConfigError(f"THUSA_ENV must be one of {', '.join(ENVIRONMENTS)}, not {env!r}")
    instance = Path(overrides.get("INSTANCE_PATH", instance_path()))

    if env == "production":
        missing = [n for n in REQUIRED_IN_PRODUCTION if not (overrides.get(n) or os.environ.get(n))]
        if missing:
            raise ConfigError(f"THUSA_ENV=production needs these secrets set in the environment: {', '.join(missing)}")

    def secret(name: str) -> str:
        return os.environ.get(name) or (
            secrets.token_urlsafe(48) if env == "test" else _persistent_secret(instance, name)
        )

    config: dict = {setting.name: _env(setting.name) for setting in SETTINGS}
    for name in _INTEGERS:
        try:
            config[name] = int(config[name])
        except ValueError as exc:
            raise ConfigError(f"{name} must be a whole number, not {config[name]!r}") from exc
    if config["MESSAGE_RETENTION_DAYS"] < 1:  # 0 or less would erase what a conversation still needs
        raise ConfigError(f"MESSAGE_RETENTION_DAYS must be at least 1, not {config['MESSAGE_RETENTION_DAYS']}")
    config.update({
        "THUSA_ENV": env,
        "DEBUG": False,
        "TESTING": env == "test",
        "INSTANCE_PATH": str(instance),
        "SECRET_KEY": overrides.get("SECRET_KEY") or secret("SECRET_KEY"),
        "JWT_SECRET_KEY": overrides.get("JWT_SECRET_KEY") or secret("JWT_SECRET_KEY"),
        "SQLALCHEMY_DATABASE_URI": _env("DATABASE_URL") or f"sqlite:///{instance / 'thusa.db'}",
        "REDIS_URL": _env("REDIS_URL"),
        "RATELIMIT_ENABLED": _bool(_env("RATELIMIT_ENABLED")),
        "CORS_ORIGINS": [o.strip() for o in _env("CORS_ORIGINS").split(",") if o.strip()],
        "SMS_PROVIDERS": [p.strip() for p in _env("SMS_PROVIDERS").split(",") if p.strip()],
    })  # fmt: skip
    if "DATABASE_URL" in overrides:
        overrides["SQLALCHEMY_DATABASE_URI"] = overrides.pop("DATABASE_URL")
    config.update(overrides)
    if env == "production" and not config["RATELIMIT_ENABLED"]:
        raise ConfigError("RATELIMIT_ENABLED=false is not allowed when THUSA_ENV=production")
    _simulator_settings(config, instance)
    if env == "production" and config["SIMULATOR_ENABLED"]:
        # It signs webhooks with the providers' real secrets: anyone who can reach it could forge them.
        raise ConfigError("SIMULATOR_ENABLED=true is not allowed when THUSA_ENV=production: the phone simulator "
                          "signs webhooks with the providers' real secrets")  # fmt: skip
    return config


def _simulator_settings(config: dict, instance: Path) -> None:
    """The simulator's switch (on by default in development only) and, in development, its webhook secrets."""
    enabled = config.get("SIMULATOR_ENABLED")
    if isinstance(enabled, str):
        enabled = _bool(enabled) if enabled.strip() else config["THUSA_ENV"] == "development"
    config["SIMULATOR_ENABLED"] = bool(enabled)
    if not config["SIMULATOR_ENABLED"] or config["THUSA_ENV"] != "development":
        return
    for name in SIMULATOR_SECRETS:
        if name == "TWILIO_AUTH_TOKEN" and config.get("TWILIO_ACCOUNT_SID"):
            continue  # a real account needs its real token; a generated one would only make its sends fail
        if not config.get(name):
            config[name] = _persistent_secret(instance, name)
