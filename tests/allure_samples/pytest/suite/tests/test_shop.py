import struct, zlib
import allure
import pytest


def png(w=4, h=3):
    raw = b"".join(b"\x00" + b"\xff\x00\x00" * w for _ in range(h))
    def chunk(t, d):
        return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d) & 0xffffffff)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")


@pytest.fixture
def broken_setup():
    raise RuntimeError("database is down")


@allure.feature("cart")
@allure.story("checkout")
@allure.severity(allure.severity_level.CRITICAL)
@pytest.mark.parametrize("qty", [1, 2])
def test_total(qty):
    with allure.step("add %d items" % qty):
        with allure.step("open the cart"):
            pass
    assert qty > 0


class TestPay:
    def test_card_declined(self):
        with allure.step("pay with a card"):
            allure.attach(png(), name="screenshot", attachment_type=allure.attachment_type.PNG)
            allure.attach("log line", name="server log", attachment_type=allure.attachment_type.TEXT)
            assert 1 == 2, "card declined"


def test_broken(broken_setup):
    pass


@pytest.mark.skip(reason="not today")
def test_skipped():
    pass


@pytest.fixture
def leaky_session():
    yield "session"
    raise RuntimeError("session did not close")


def test_teardown_fails(leaky_session):
    assert leaky_session == "session"
