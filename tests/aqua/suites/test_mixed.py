"""The Aqua stand-in's "mixed" pack: a passing, a flaky (fails on the first launch, passes when
the launch is restarted) and a skipped test. The flaky one attaches a real PNG screenshot
when it fails, as UI suites in Aqua do."""

import os
import struct
import zlib

import allure
import pytest


def png(width=4, height=3, rgb=(200, 30, 30)):
    raw = b"".join(b"\x00" + bytes(rgb) * width for _ in range(height))

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")


def restarted():
    return int(os.environ.get("AQUA_RESTART", "0")) > 0


def test_passes():
    with allure.step("open the cart"):
        assert 2 + 2 == 4


def test_flaky():
    if not restarted():
        allure.attach(png(), name="screenshot", attachment_type=allure.attachment_type.PNG)
        assert False, "the cart badge did not update (first launch)"


@pytest.mark.skip(reason="needs the payment stand")
def test_skipped():
    pass
