"""A real SMTP server for Tomato's report tests: aiosmtpd, accepting every message.

Each message is written to the directory given as two files: `<n>.eml` (the message as
received) and then `<n>.json` (the envelope and the message parsed by Python's `email`
package: decoded subject, headers, and every part's content type and text). The JSON file is
written last, under a temporary name renamed into place, so a reader that sees it sees both.

With --reject ADDRESS (repeatable) it refuses that recipient with 550, as a server answers
for a mailbox that does not exist.

With --user, the server requires AUTH (PLAIN or LOGIN, without TLS, as a local relay may) and
accepts only that user and the password in the SINK_PASSWORD environment variable.

Prints "READY <port>" once it accepts connections; stops on SIGTERM or SIGINT.
"""

import argparse
import asyncio
import email
import email.policy
import json
import os
import signal
import warnings

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword


class Sink:
    def __init__(self, out, reject=()):
        self.out = out
        self.count = 0
        self.reject = {a.lower() for a in reject}

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        # A mailbox that does not exist, as a real server answers it.
        if address.lower() in self.reject:
            return f"550 5.1.1 <{address}>: Recipient address rejected: User unknown"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        self.count += 1
        base = os.path.join(self.out, f"{self.count:04d}")
        raw = envelope.original_content or envelope.content
        with open(base + ".eml", "wb") as f:
            f.write(raw)
        msg = email.message_from_bytes(raw, policy=email.policy.default)
        parts = []
        for part in msg.walk():
            if part.is_multipart():
                continue
            parts.append({"content_type": part.get_content_type(), "body": part.get_content()})
        record = {
            "mail_from": envelope.mail_from,
            "rcpt_tos": envelope.rcpt_tos,
            "auth_user": session.auth_data.login.decode()
            if isinstance(session.auth_data, LoginPassword)
            else None,
            "subject": str(msg["subject"]),
            "from": str(msg["from"]),
            "to": str(msg["to"]),
            "message_id": str(msg["message-id"]),
            "content_type": msg.get_content_type(),
            "parts": parts,
        }
        with open(base + ".json.tmp", "w", encoding="utf-8") as f:
            json.dump(record, f)
        os.rename(base + ".json.tmp", base + ".json")
        return "250 Message accepted for delivery"


def authenticator(user, password):
    def check(server, session, envelope, mechanism, auth_data):
        ok = (
            isinstance(auth_data, LoginPassword)
            and auth_data.login.decode() == user
            and auth_data.password.decode() == password
        )
        return AuthResult(success=ok, handled=False, auth_data=auth_data if ok else None)

    return check


async def main():
    # aiosmtpd warns that AUTH without TLS is unsafe: it is what the test means to do, locally.
    warnings.simplefilter("ignore")
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--dir", required=True)
    p.add_argument("--user")
    p.add_argument("--reject", action="append", default=[], help="a recipient to refuse (550)")
    args = p.parse_args()
    os.makedirs(args.dir, exist_ok=True)
    options = {}
    if args.user:
        options = {
            "authenticator": authenticator(args.user, os.environ["SINK_PASSWORD"]),
            "auth_required": True,
            "auth_require_tls": False,
        }
    controller = Controller(Sink(args.dir, args.reject), hostname="127.0.0.1", port=args.port, **options)
    controller.start()
    print(f"READY {args.port}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    controller.stop()


if __name__ == "__main__":
    asyncio.run(main())
