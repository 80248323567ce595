"""Account pages of the pytest example service."""


class TestProfile:
    def test_shows_name(self):
        print("rendering profile for qa-user")
        assert "qa-user".upper() == "QA-USER"

    def test_changes_avatar(self):
        print("POST /api/profile/avatar avatar.png")
        print("<- HTTP 500 Internal Server Error (request id 7f3a)")
        assert False, "avatar upload failed"
