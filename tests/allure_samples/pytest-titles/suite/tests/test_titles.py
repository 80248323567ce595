"""Tests renamed by @allure.title: Tomato must still see each as one test with its JUnit twin."""
import allure
import pytest


@allure.title("Checkout works")
def test_checkout():
    assert True


@allure.title("Pay with {method}")
@pytest.mark.parametrize("method", ["card", "cash"])
def test_pay(method):
    assert method != "cash", "cash is not accepted"


class TestLogin:
    @allure.title("Login with a good password")
    def test_login(self):
        pass


@pytest.mark.parametrize("n,s", [(1, "a b"), (2, "x")])
def test_untitled(n, s):
    pass
