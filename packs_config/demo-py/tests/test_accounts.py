"""Account pages of the pytest example service."""


class TestProfile:
    def test_shows_name(self):
        print("rendering profile for qa-user")
        assert "qa-user".upper() == "QA-USER"

    def test_changes_avatar(self):
        print("uploading avatar.png")
        assert False, "avatar upload returned HTTP 500"
