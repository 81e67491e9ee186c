"""Properties found by search: any token-endpoint answer, any interleaving of faults.

(a) Whatever ``/auth/api-key`` answers (served by ``responses``), ``get_token()`` returns a str
or raises ApiVideoAuthError, and no secret from the request or the answer shows up in the
error, the auth's repr or the log. (b) A state machine drives one ApiVideoAuth against
FakeApiVideo through expiry, revocation, failed token calls and clock moves.
"""

from __future__ import annotations

import io
import json
import logging
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import pytest
import requests
import responses
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from requests_apivideo import ApiVideoAuth, ApiVideoAuthError
from requests_apivideo.testing import FakeApiVideo, FakeClock, Fault

BASE = "https://ws.api.video"
API_KEY_URL = BASE + "/auth/api-key"
#: A realistic key: long enough that no message or repr contains it by chance.
KEY = "hyp" + "Q7vK2mX9pL4nR8sT1wY6zB3cD5fG0hJ"

# When an example fails, Hypothesis's pytest plugin imports libcst to suggest a patch, and
# libcst's import warns (mypy_extensions.TypedDict); with filterwarnings = error that turned
# a plain failure (or an expected one) into an INTERNALERROR.
pytestmark = pytest.mark.filterwarnings(
    "ignore:mypy_extensions.TypedDict is deprecated:DeprecationWarning"
)

# -- strategies -------------------------------------------------------------------------

#: What access and refresh tokens look like (JWT and urlsafe alphabets).
TOKENS = st.from_regex(r"[A-Za-z0-9_-]{20,40}", fullmatch=True)
SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**20), max_value=10**20)
    | st.floats()
    | st.text(max_size=12)
)
JSON_VALUES = st.recursive(
    SCALARS,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=10,
)
STATUSES = st.sampled_from([200, 400, 401, 403, 404, 408, 429, 500, 502, 503, 504]) | st.integers(
    min_value=200, max_value=599
)
HEADER_VALUES = {
    "Content-Type": [
        "application/json",
        "application/problem+json",
        "application/json; charset=utf-16",
        "application/json; charset=idna",
        "application/json; charset=no-such-charset",
        "text/html; charset=utf-8",
        "text/plain",
    ],
    "Content-Encoding": ["gzip", "deflate", "identity", "br", "zstd", "gzip, gzip"],
    "Retry-After": [
        "0",
        "1",
        "3600",
        "-1",
        "soon",
        "99999999999999999999",
        "Wed, 21 Oct 2015 07:28:00 GMT",
    ],
    "X-RateLimit-Retry-After": ["0", "2", "86400", "x"],
    "Location": ["/auth/api-key", "https://evil.example/steal", "//evil.example"],
    "WWW-Authenticate": ['Bearer error="invalid_token"', "Basic"],
    "Cache-Control": ["no-store"],
}
PRINTABLE_ASCII = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=30)


@st.composite
def headers(draw: st.DrawFn) -> dict[str, str]:
    names = draw(st.lists(st.sampled_from(sorted(HEADER_VALUES)), unique=True, max_size=4))
    return {name: draw(st.sampled_from(HEADER_VALUES[name]) | PRINTABLE_ASCII) for name in names}


def text_with(secret_values: list[str]) -> st.SearchStrategy[str]:
    """Server text that may quote secrets, amid arbitrary characters."""
    fragments = st.text(max_size=10) | st.sampled_from(secret_values)
    return st.lists(fragments, max_size=5).map("".join)


@dataclass(frozen=True)
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes
    tokens: tuple[str, ...]  # token-like values that the body may contain


@st.composite
def answers(draw: st.DrawFn) -> Answer:
    tokens = draw(st.lists(TOKENS, min_size=2, max_size=3, unique=True))
    quotable = [KEY, *tokens]
    status = draw(STATUSES)
    kind = draw(st.sampled_from(["bytes", "json", "token", "problem", "text"]))
    if kind == "bytes":
        body = draw(st.binary(max_size=64))
    elif kind == "json":
        body = json.dumps(draw(JSON_VALUES)).encode()
    elif kind == "text":
        body = draw(text_with(quotable)).encode()
    elif kind == "token":  # near-valid: each field valid, absent or odd
        token_values = st.sampled_from(tokens) | text_with(quotable) | JSON_VALUES
        payload = draw(
            st.fixed_dictionaries(
                {},
                optional={
                    "access_token": token_values,
                    "refresh_token": token_values,
                    "token_type": st.sampled_from(["Bearer", "bearer", "BEARER", "MAC"])
                    | JSON_VALUES,
                    "expires_in": st.sampled_from([3600, 1, 0, -1, 10**12, 1e-9, 86400.5])
                    | st.integers()
                    | st.floats()
                    | JSON_VALUES,
                    "title": text_with(quotable),
                },
            )
        )
        body = json.dumps(payload).encode()
    else:  # an RFC 7807 problem that quotes secrets
        payload = {
            "type": draw(st.sampled_from(["about:blank", "https://docs.api.video/reference/x"])),
            "title": draw(text_with(quotable) | JSON_VALUES),
            "status": draw(st.just(status) | JSON_VALUES),
            "detail": draw(text_with(quotable)),
            "name": draw(st.sampled_from(["", "apiKey"])),
        }
        body = json.dumps(payload).encode()
    return Answer(status, draw(headers()), body, tuple(tokens))


class Collect(logging.Handler):
    """Keep every formatted record (with its traceback, if any)."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.texts: list[str] = []
        self.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        self.texts.append(self.format(record))


@contextmanager
def all_logs() -> Iterator[list[str]]:
    """Capture every log record of every logger at DEBUG, without pytest's caplog."""
    root = logging.getLogger()
    handler, level = Collect(), root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        yield handler.texts
    finally:
        root.removeHandler(handler)
        root.setLevel(level)


def serve(rsps: responses.RequestsMock, answer: Answer) -> None:
    extra = dict(answer.headers)
    content_type = extra.pop("Content-Type", "application/json")
    rsps.add(
        responses.Response(
            "POST",
            API_KEY_URL,
            body=answer.body,
            status=answer.status,
            headers=extra,
            content_type=content_type,
        )
    )


def outcome_of(answer: Answer) -> tuple[str | ApiVideoAuthError, list[str], ApiVideoAuth]:
    """Serve ``answer`` to a fresh token fetch; return the token or the error, and the logs."""
    auth = ApiVideoAuth(KEY)
    auth.invalidate()  # instances with one key share a token: start from none
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps, all_logs() as logs:
        serve(rsps, answer)
        try:
            result: str | ApiVideoAuthError = auth.get_token()
        except ApiVideoAuthError as exc:  # anything else fails the property
            result = exc
    return result, logs, auth


# -- (a) any answer ---------------------------------------------------------------------


@settings(max_examples=300, deadline=None)
@given(answer=answers())
def test_any_token_endpoint_answer_gives_a_token_or_a_typed_error_and_shows_no_secret(
    answer: Answer,
) -> None:
    result, logs, auth = outcome_of(answer)
    texts = [repr(auth), *logs]
    if isinstance(result, ApiVideoAuthError):
        texts += [str(result), repr(result), *map(str, result.args)]
        assert "/auth/api-key" in str(result)
        if result.response is not None:
            assert result.response.status_code == answer.status
            # The token call kept on the error does not carry the key either.
            body = result.response.request.body
            sent = body.encode() if isinstance(body, str) else body or b""
            assert isinstance(sent, bytes) and KEY.encode() not in sent
    else:
        assert isinstance(result, str) and result
        assert answer.status == 200
        assert result == json.loads(answer.body)["access_token"]
    for text in texts:
        for secret in (KEY, *answer.tokens):
            assert secret not in text


@pytest.mark.parametrize(("status", "invisible"), [(400, "\x00"), (401, "\u200b"), (500, "\xa0")])
def test_a_key_split_by_an_invisible_character_is_not_rejoined_in_the_message(
    status: int, invisible: str
) -> None:
    cut = len(KEY) // 2  # each half is too short to look like a token on its own
    title = f"bad key {KEY[:cut]}{invisible}{KEY[cut:]} here"
    answer = Answer(status, {}, json.dumps({"title": title, "status": status}).encode(), ())
    result, _, _ = outcome_of(answer)
    assert isinstance(result, ApiVideoAuthError)
    assert KEY not in str(result)


@pytest.mark.parametrize("status", [200, 400, 503])
def test_deeply_nested_json_from_the_token_endpoint_is_a_typed_error(status: int) -> None:
    # Deeper than the interpreter's recursion limit, smaller than any size limit.
    result, _, _ = outcome_of(Answer(status, {}, b"[" * 10_000, ()))
    assert isinstance(result, ApiVideoAuthError)
    assert f"answered {status}" in str(result)


# -- (b) any interleaving ---------------------------------------------------------------

#: Token-call faults that the token session does not retry, so that each renewal makes at
#: most one /auth/refresh and one /auth/api-key (retried statuses are in test_faults).
FAULTS = [
    Fault(400),
    Fault(401),
    Fault(408),
    Fault(0),
    Fault(200, body="<html></html>", headers={"Content-Type": "text/html"}),
]


class Recorder(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.early_failures = 0

    def emit(self, record: logging.LogRecord) -> None:
        if "early token refresh failed" in record.getMessage():
            self.early_failures += 1


class AuthMachine(RuleBasedStateMachine):
    """One ApiVideoAuth, one emulator it trusts and one foreign server, through any story."""

    def __init__(self) -> None:
        super().__init__()
        self.clock = FakeClock()
        self.skew = 0.0  # how far the emulator's clock runs ahead of the client's
        self.key = "key_" + secrets.token_hex(12)
        self.fake = FakeApiVideo(api_keys=[self.key], clock=self.server_time).start()
        self.foreign = FakeApiVideo(api_keys=["other"]).start()
        self.auth = ApiVideoAuth(self.key, base_url=self.fake.url, clock=self.clock)
        self.session = requests.Session()
        self.session.auth = self.auth
        self.queue: list[Fault] = []  # injected faults not yet consumed, in order
        self.recorder = Recorder()
        self.logger = logging.getLogger("requests_apivideo")
        self.level = self.logger.level
        self.logger.setLevel(logging.INFO)
        self.logger.addHandler(self.recorder)

    def server_time(self) -> float:
        return self.clock.mono + self.skew

    def teardown(self) -> None:
        self.logger.removeHandler(self.recorder)
        self.logger.setLevel(self.level)
        self.session.close()
        self.fake.stop()
        self.foreign.stop()

    # -- what happens to the world --

    @rule()
    def expire_all(self) -> None:
        self.fake.expire_all()

    @rule()
    def revoke_all(self) -> None:
        self.fake.revoke_all()

    @precondition(lambda self: len(self.queue) < 2)
    @rule(fault=st.sampled_from(FAULTS))
    def fail_the_next_token_call(self, fault: Fault) -> None:
        self.fake.fail_token_calls(fault)
        self.queue.append(fault)

    @rule(seconds=st.floats(min_value=0, max_value=4000))
    def time_passes(self, seconds: float) -> None:
        self.clock.advance(seconds)

    @rule(left=st.sampled_from([55.0, 30.0, 16.0, 10.0]))
    def time_passes_until_the_token_has_little_left(self, left: float) -> None:
        # A peek at the store only steers time into the early-refresh window (the last
        # 60 s) or the mandatory one (the last 15 s), where random moves rarely land.
        token = self.auth._manager.token
        if token is not None:
            self.clock.advance(max(0.0, token.ttl(self.clock) - left))

    @rule(seconds=st.floats(min_value=1, max_value=4000))
    def the_server_clock_runs_ahead(self, seconds: float) -> None:
        self.skew += seconds

    @rule(seconds=st.floats(min_value=-7200, max_value=7200))
    def the_wall_clock_jumps(self, seconds: float) -> None:
        self.clock.wall += seconds

    # -- what the caller does --

    def send(self, method: str, path: str, **kwargs: Any) -> requests.Response | ApiVideoAuthError:
        """Send one request; check the token calls it caused, return its outcome."""
        fake = self.fake
        refresh, api_key, seen = fake.refresh_calls, fake.api_key_calls, len(fake.requests)
        early = self.recorder.early_failures
        try:
            outcome: requests.Response | ApiVideoAuthError = self.session.request(
                method, fake.url + path, **kwargs
            )
        except ApiVideoAuthError as exc:  # any other exception fails the test
            outcome = exc
        refreshes, keys = fake.refresh_calls - refresh, fake.api_key_calls - api_key
        consumed, self.queue = self.queue[: refreshes + keys], self.queue[refreshes + keys :]
        self.sent = [r for r in fake.requests[seen:] if not r.path.startswith("/auth/")]
        # Single flight: one renewal makes at most one refresh and one api-key call (plus
        # one more api-key call after a lost answer); a request renews at most twice: an
        # early refresh that failed, then after a 401.
        renewals = 1 + self.recorder.early_failures - early
        event(f"renewals tried: {renewals}, token calls: {refreshes} refresh + {keys} api-key")
        lost = sum(1 for f in consumed if f.status == 0)
        assert refreshes <= renewals and keys <= renewals + lost
        if isinstance(outcome, ApiVideoAuthError):
            event(f"outcome: {type(outcome).__name__}")
            assert consumed, "a token call failed with no fault injected"
            assert len(self.sent) <= 1  # never sent again without a new token
        else:
            event(f"outcome: {outcome.status_code} after {len(outcome.history)} earlier answers")
            # At most one replay: the server saw each path at most twice.
            assert len(outcome.history) <= 1
            paths = [r.path.split("?")[0] for r in self.sent]
            assert all(paths.count(p) <= 2 for p in paths)
        return outcome

    def check_current_token(self, response: requests.Response) -> None:
        """A successful answer carried the token that is current now (no token call)."""
        calls = self.fake.token_calls
        current = "Bearer " + self.auth.get_token()
        assert self.fake.token_calls == calls
        assert response.request.headers["Authorization"] == current
        assert self.sent[-1].headers["Authorization"] == current

    @rule(body=st.sampled_from(["none", "json", "file", "generator"]))
    def a_request(self, body: str) -> None:
        if body == "none":
            outcome = self.send("GET", "/videos")
        else:
            data = {
                "json": b'{"title": "t"}',
                "file": io.BytesIO(b'{"title": "t"}'),
                "generator": iter([b'{"title": "t"}']),
            }[body]
            headers = {"Content-Type": "application/json"}
            outcome = self.send("POST", "/videos", data=data, headers=headers)
        if isinstance(outcome, ApiVideoAuthError):
            return
        with outcome:
            if outcome.status_code == 401:
                # Only a body that cannot be rewound is not replayed, and the token was
                # renewed before the 401 came back.
                assert body == "generator" and outcome.history == []
                assert self.sent[0].headers["Authorization"] != "Bearer " + self.auth.get_token()
                return
            assert outcome.status_code == (200 if body == "none" else 201)
            assert len(self.sent) == 1 + len(outcome.history)
            if outcome.history:
                assert [h.status_code for h in outcome.history] == [401]
                assert body != "generator"
                assert (
                    self.sent[0].headers["Authorization"] != self.sent[1].headers["Authorization"]
                )
            self.check_current_token(outcome)

    @rule(status=st.sampled_from(["302", "307"]), elsewhere=st.booleans())
    def a_redirect(self, status: str, elsewhere: bool) -> None:
        to = self.foreign.url + "/videos" if elsewhere else "/videos"
        foreign_before = len(self.foreign.requests)
        outcome = self.send("GET", "/redirect", params={"to": to, "status": status})
        if isinstance(outcome, ApiVideoAuthError):
            return
        with outcome:
            arrived = self.foreign.requests[foreign_before:]
            if elsewhere:
                assert outcome.status_code == 401  # the foreign server wants its own key
                assert len(arrived) == 1 and "Authorization" not in arrived[0].headers
            else:
                assert outcome.status_code == 200 and arrived == []
                self.check_current_token(outcome)

    @invariant()
    def nothing_with_a_token_reached_another_origin(self) -> None:
        assert all("Authorization" not in r.headers for r in self.foreign.requests)
        assert self.foreign.token_calls == 0


AuthMachine.TestCase.settings = settings(
    max_examples=60,
    stateful_step_count=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestAnyStoryOfExpiryRevocationFaultsAndClocksKeepsTheInvariants = pytest.mark.integration(
    AuthMachine.TestCase
)
