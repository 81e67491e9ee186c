"""FakeClock: the one controllable clock for ApiVideoAuth, FakeApiVideo and the demo."""

from __future__ import annotations

import pickle
import threading
from collections.abc import Callable

import pytest
import requests

from requests_apivideo import ApiVideoAuth
from requests_apivideo.testing import FakeApiVideo, FakeClock


def test_it_starts_at_the_given_readings_and_moves_only_when_told() -> None:
    clock = FakeClock(500.0, wall=1_700_000_000.0)
    assert (clock.monotonic(), clock.time()) == (500.0, 1_700_000_000.0)
    assert (clock.monotonic(), clock.time()) == (500.0, 1_700_000_000.0)
    clock.advance(2.5)
    assert (clock.monotonic(), clock.time()) == (502.5, 1_700_000_002.5)
    assert (clock.mono, clock.wall) == (502.5, 1_700_000_002.5)


def test_the_wall_clock_can_jump_either_way_alone() -> None:
    clock = FakeClock()
    mono = clock.monotonic()
    clock.wall += 7200  # the machine slept
    clock.wall -= 86400  # NTP stepped back
    assert clock.time() == FakeClock().time() - 79200
    assert clock.monotonic() == mono
    clock.mono += 10  # the monotonic clock alone, forward
    assert (clock.monotonic(), clock.time()) == (mono + 10, FakeClock().time() - 79200)


@pytest.mark.parametrize("move", [lambda c: c.advance(-1), lambda c: setattr(c, "mono", 0.0)])
def test_the_monotonic_clock_never_goes_back(move: Callable[[FakeClock], object]) -> None:
    clock = FakeClock()
    with pytest.raises(ValueError, match="back"):
        move(clock)
    assert clock.monotonic() == 1000.0


@pytest.mark.parametrize("seconds", [float("nan"), float("inf")])
def test_advance_refuses_what_is_not_a_finite_number(seconds: float) -> None:
    with pytest.raises(ValueError):
        FakeClock().advance(seconds)


def test_advance_is_thread_safe() -> None:
    clock = FakeClock(0.0, wall=0.0)
    barrier = threading.Barrier(8)

    def tick() -> None:
        barrier.wait()
        for _ in range(1000):
            clock.advance(1)

    threads = [threading.Thread(target=tick) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert (clock.monotonic(), clock.time()) == (8000.0, 8000.0)


@pytest.mark.integration
def test_one_clock_drives_both_the_auth_and_the_emulator(key: str) -> None:
    clock = FakeClock()
    with FakeApiVideo(api_keys=[key], token_ttl=3600, clock=clock) as fake:
        session = requests.Session()
        session.auth = ApiVideoAuth(key, base_url=fake.url, clock=clock)
        assert session.get(f"{fake.url}/videos").status_code == 200
        clock.advance(3590)  # inside the refresh margin: an early refresh, no 401
        assert session.get(f"{fake.url}/videos").status_code == 200
        assert (fake.api_key_calls, fake.refresh_calls, fake.unauthorized) == (1, 1, 0)
        clock.advance(7200)  # both sides agree the token is dead: renewed before sending
        assert session.get(f"{fake.url}/videos").status_code == 200
        assert fake.unauthorized == 0
        session.close()


@pytest.mark.integration
def test_the_emulator_reads_the_clock_object_for_expiry_and_still_takes_a_function(
    key: str
) -> None:
    clock = FakeClock()
    for given in (clock, clock.monotonic):
        with FakeApiVideo(api_keys=[key], token_ttl=10, clock=given) as fake:
            token = requests.post(f"{fake.url}/auth/api-key", json={"apiKey": key}).json()
            headers = {"Authorization": f"Bearer {token['access_token']}"}
            clock.advance(9.5)
            assert requests.get(f"{fake.url}/videos", headers=headers).status_code == 200
            clock.advance(0.5)
            assert requests.get(f"{fake.url}/videos", headers=headers).status_code == 401


@pytest.mark.integration
def test_video_timestamps_follow_the_clock_objects_wall_time(key: str) -> None:
    clock = FakeClock(wall=1_800_000_000.0)
    with FakeApiVideo(api_keys=[key], clock=clock) as fake:
        video = requests.post(f"{fake.url}/videos", json={"title": "t"}, auth=(key, "")).json()
    assert video["createdAt"] == "2027-01-15T08:00:00+00:00"


def test_it_pickles_with_its_readings_as_an_auth_that_holds_it_does() -> None:
    clock = FakeClock(5.0, wall=6.0)
    copy = pickle.loads(pickle.dumps(clock))
    assert (copy.monotonic(), copy.time()) == (5.0, 6.0)
    copy.advance(1)  # a lock of its own
    assert (clock.monotonic(), copy.monotonic()) == (5.0, 6.0)
    assert repr(copy) == "FakeClock(6.0, wall=7.0)"
