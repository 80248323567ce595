"""Tomato's pytest preset suite: every kind of outcome a rerun must handle."""
import os

import pytest


def first_attempt():
    return os.environ.get("TOMATO_ATTEMPT", "1") == "1"


def test_passes():
    print("output of test_passes")


def test_always_fails():
    print("output of test_always_fails")
    assert 1 == 2, "expected 1 but was 2"


def test_flaky():
    print("output of test_flaky")
    assert not first_attempt(), "fails on the first attempt only"


@pytest.mark.skip(reason="not today")
def test_skipped():
    pass


@pytest.fixture
def broken_setup():
    raise RuntimeError("the fixture could not connect")


def test_setup_error(broken_setup):
    pass


class TestCheckout:
    def test_refund_passes(self):
        pass

    def test_refund_flaky(self):
        assert not first_attempt()

    class TestNested:
        def test_deep_flaky(self):
            assert not first_attempt()


@pytest.mark.parametrize(
    "value",
    ["with space", 'quote " and \' too', "brackets [x]", "slash/and\\back", "кириллица", "a::b"],
)
def test_odd_params(value):
    assert not first_attempt(), value
