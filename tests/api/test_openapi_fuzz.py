"""Fuzz the whole OpenAPI document with schemathesis, as an admin and as a viewer.

Every operation, on PostgreSQL: no 500, and every answer (status, content type, headers, body) as the
document says. Rate limits are off here so the fuzzer explores the API instead of the limiter.
"""

from __future__ import annotations

import copy
import functools
import inspect

import pytest
import schemathesis
from flask_smorest.spec.plugins import FlaskPlugin
from hypothesis import HealthCheck, settings
from schemathesis.pytest import _test_builder

from app import create_app
from tests.conftest import TEST_REDIS_URL, bearer, login, make_clinic, make_user

# Run untraced: the fuzz looks for 500s and undocumented answers, not for lines run (the API's own tests cover
# those), and under the coverage tracer its thousands of requests cost the suite about a minute.
pytestmark = pytest.mark.untraced

# Per operation and role: 2,800 generated requests in all. schemathesis adds its coverage phase (boundary and negative
# values of each parameter, not limited by max_examples) and the documented examples: 5,389 requests as admin (counted).
MAX_EXAMPLES = 20
# Business rules the document cannot express (a staff account needs a clinic; a password must not be a common one)
# reject some schema-valid bodies with 422 by design, so "every schema-valid request succeeds" is not a property here.
# And the fuzzer's "request without its Authorization header" cases get our bearer header added back by this test,
# so "negative data was accepted" would blame the API for the test's own header. Negative cases still run, and
# must still never give a 500 or an undocumented answer.
EXCLUDED = [schemathesis.checks.positive_data_acceptance, schemathesis.checks.negative_data_rejection]

fuzz = settings(max_examples=MAX_EXAMPLES, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
# An operation whose roles leave viewers out refuses them before it reads the request (``requires`` is each view's
# outermost decorator), so every viewer's case there gets the same 403: a few cases show it, and that the answer is
# documented. The full fuzz of those operations runs as admin. (All of them at MAX_EXAMPLES with the coverage phase
# cost the viewer's fuzz 28 of its 100 CPU-s, on a slow host.)
REFUSED_EXAMPLES = 3
refused = settings(fuzz, max_examples=REFUSED_EXAMPLES)


class Dispatcher:
    """A WSGI app that forwards to this test's app: the document is read once, the calls reach each backend."""

    def __init__(self) -> None:
        self.target = create_app({"THUSA_ENV": "test", "DATABASE_URL": "sqlite://", "REDIS_URL": TEST_REDIS_URL})

    def __call__(self, environ, start_response):
        return self.target(environ, start_response)


dispatcher = Dispatcher()
schema = schemathesis.openapi.from_wsgi("/api/v1/openapi.json", dispatcher)


def _refused_to_viewers(app) -> frozenset[str]:
    """The operations (``"POST /api/v1/clinics"``) whose ``roles_required`` roles leave viewers out."""
    labels = set()
    for rule in app.url_map.iter_rules():
        view = app.view_functions[rule.endpoint]
        view_class = getattr(view, "view_class", None)
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            handler = getattr(view_class, method.lower(), None) if view_class is not None else view
            roles = getattr(handler, "roles", None)
            if roles and "viewer" not in roles:
                labels.add(f"{method} {FlaskPlugin.flaskpath2openapi(rule.rule)}")
    return frozenset(labels)


REFUSED_TO_VIEWERS = _refused_to_viewers(dispatcher.target)


def _refuses_viewers(ctx) -> bool:
    return ctx.operation.label in REFUSED_TO_VIEWERS


viewer_schema = schema.exclude(func=_refuses_viewers)
refusing_schema = schema.include(func=_refuses_viewers)
# Without the coverage phase, which sends each parameter's boundary and negative values: the answer depends on none.
refusing_schema.config = copy.copy(schema.config)
refusing_schema.config.phases = copy.copy(schema.config.phases)
refusing_schema.config.phases.coverage = copy.copy(schema.config.phases.coverage)
refusing_schema.config.phases.coverage.enabled = False


def _stand_in(test_func, build):
    """What collection gets instead of an operation's test: the signature and markers of the test that ``build``
    makes (``case`` is the one argument schemathesis fills), and ``build_when_run`` for tests/conftest.py, which
    swaps the real test in when the test is set up."""

    def stand_in(*_args, **_kwargs):
        raise RuntimeError("tests/conftest.py builds this test when it runs; pytest_runtest_setup did not")

    parameters = inspect.signature(test_func).parameters.values()
    stand_in.__signature__ = inspect.Signature([p for p in parameters if p.name != "case"])
    stand_in.__name__, stand_in.__qualname__ = test_func.__name__, test_func.__qualname__
    stand_in.__module__ = test_func.__module__
    if hasattr(test_func, "pytestmark"):
        stand_in.pytestmark = test_func.pytestmark
    stand_in.is_hypothesis_test = True  # hypothesis's plugin marks the item "hypothesis", as it would the real test
    stand_in.build_when_run = functools.cache(build)
    return stand_in


def _build_when_run(*, test_func, **kwargs):
    """Each operation's test of this module is built by the process that runs it, when it runs.

    schemathesis builds every operation's test while collecting (its strategies, and every case of the coverage
    phase): each xdist process collects the whole suite, so each built all 140 tests (about 4.5 s a process) to
    run about a third of them. The test built later is the same: same inputs, and ``derandomize`` makes its cases
    the same.
    """
    if test_func.__module__ != __name__:
        return _build_at_collection(test_func=test_func, **kwargs)
    return _stand_in(test_func, lambda: _build_at_collection(test_func=test_func, **kwargs))


_build_at_collection = _test_builder.build_operation_test
_test_builder.build_operation_test = _build_when_run


@pytest.fixture
def fuzz_app(shared_app):
    app = shared_app(RATELIMIT_ENABLED=False)
    dispatcher.target = app
    with app.app_context():
        yield app


def _headers_for(role: str, app) -> dict:
    user = make_user(role, clinic=make_clinic() if role == "viewer" else None)
    return bearer(login(app.test_client(), user)["access_token"])


@pytest.fixture
def admin_headers(fuzz_app):
    return _headers_for("admin", fuzz_app)


@pytest.fixture
def viewer_headers(fuzz_app):
    return _headers_for("viewer", fuzz_app)


@schema.parametrize()
@fuzz
def test_as_admin(case, admin_headers):
    case.call_and_validate(headers=admin_headers, excluded_checks=EXCLUDED)


@viewer_schema.parametrize()
@fuzz
def test_as_viewer(case, viewer_headers):
    case.call_and_validate(headers=viewer_headers, excluded_checks=EXCLUDED)


@refusing_schema.parametrize()
@refused
def test_as_viewer_where_viewers_are_refused(case, viewer_headers):
    response = case.call_and_validate(headers=viewer_headers, excluded_checks=EXCLUDED)
    # Never served. 401: a case that sends a broken or no Authorization header of its own; 404: a path parameter the
    # route's converter does not take (a malformed id) never reaches the view.
    assert response.status_code in (401, 403, 404), (case.operation.label, response.status_code, response.text[:200])
