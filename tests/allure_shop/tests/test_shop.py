"""A small shop suite writing Allure results through allure-pytest: nested steps, parameters,
labels, a failing test with its screenshot (a real PNG), and an attachment over the limit the
service sets (tests/allure_e2e.rs)."""
import os
import struct
import zlib

import allure
import pytest


def png(width=96, height=64):
    """A real PNG: a red box on white, made without any imaging library."""
    rows = []
    for y in range(height):
        row = bytearray([0])
        for x in range(width):
            inside = 16 <= x < width - 16 and 16 <= y < height - 16
            row += bytes([220, 30, 30]) if inside else bytes([255, 255, 255])
        rows.append(bytes(row))

    def chunk(kind, data):
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"".join(rows))) + chunk(b"IEND", b"")


@allure.feature("cart")
@allure.story("totals")
@allure.severity(allure.severity_level.CRITICAL)
@pytest.mark.parametrize("qty", [1, 3])
def test_total(qty):
    with allure.step(f"add {qty} items"):
        with allure.step("open the cart"):
            pass
        with allure.step("check the total"):
            assert qty * 10 == qty * 10


class TestCheckout:
    @allure.feature("checkout")
    @allure.label("owner", "payments-team")
    @allure.title("A declined card is refused")
    def test_declined_card(self):
        with allure.step("pay with the test card"):
            allure.attach("POST /pay -> 402 card_declined", name="server log",
                          attachment_type=allure.attachment_type.TEXT)
        allure.attach(png(), name="failure screenshot", attachment_type=allure.attachment_type.PNG)
        assert "card_declined" == "paid", "the payment was declined"

    def test_receipt_download(self):
        with allure.step("download the receipt"):
            allure.attach(os.urandom(96 * 1024), name="receipt.bin",
                          attachment_type=allure.attachment_type.TEXT)
