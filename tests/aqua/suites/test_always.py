"""The Aqua stand-in's "always" pack: one test that fails on every launch, one broken (an
error outside an assertion) on every launch, one passing."""


def test_always_fails():
    assert 1 + 1 == 3, "expected 3 but was 2"


def test_broken():
    raise ConnectionError("the stand refused the connection")


def test_fine():
    assert True
