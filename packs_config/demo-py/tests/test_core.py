"""Checkout rules of the pytest example service."""
import os

import pytest


def test_adds_vat():
    assert round(100 * 1.2, 2) == 120.0


def test_rounds_prices():
    assert f"{2.675:.2f}" in ("2.67", "2.68")


def test_applies_coupon():
    total = 100 - 10
    assert total == 85, f"expected total 85 but was {total}"


def test_flaky_payment_gateway():
    # Fails on the first attempt only (a slow gateway), passes when Tomato re-runs it.
    if os.environ.get("TOMATO_ATTEMPT", "1") == "1":
        raise TimeoutError("payment gateway did not answer within 3s")


@pytest.mark.skip(reason="gift cards are disabled on test stands")
def test_gift_cards():
    pass
