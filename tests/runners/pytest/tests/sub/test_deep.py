import os


def test_in_sub_package_flaky():
    assert os.environ.get("TOMATO_ATTEMPT", "1") != "1"


def test_in_sub_package_passes():
    pass
