"""A stand-in for Aqua, the team's test farm, for Tomato's tests: Aqua itself cannot run here.

It speaks Aqua's HTTP API as its public client code uses it (under /aqua-api/services/):
  GET launch/pack/{packId}?k=v...       launch a pack with properties  -> launch object
  GET launch/{id}                       poll                           -> launch object
  GET launch/{id}/restart?failed-only=true  restart the failed suites  -> launch object, new id
  GET launch/{id}/revoke                revoke (Aqua documents none; Tomato's revokePath points here)
  GET launch/page/simple?skip=&limit=&packId=   -> {"launches": [...]}, newest first
  GET pack/{packId}                     -> {"id", "name", "projects": [{"suites": [...]}]}
and, for each launch or restart, really runs a small pytest suite (tests/aqua/suites) with
allure-pytest, then builds a real Allure 2 report with the real Allure command line
(npm allure-commandline, on the machine's Java) and serves it at the launch's
reportRequestUrl (/reports/{id}/). A restart runs only the tests that failed before
(pytest --lf over the launch chain's own cache), with AQUA_RESTART=n in the environment.

Knobs for failure cases, POST /_control with JSON:
  {"poll_500": n}       the next n polls answer HTTP 500 (-1: all)
  {"poll_hang": n}      the next n polls hang (longer than any client waits) (-1: all)
  {"report_failed": b}  launches end REPORT_FAILED instead of REPORT_READY
  {"delay": s}          each launch waits s seconds before its tests run
  {"answer_delay": s}   a launch is made at once but answered only s seconds later (a client
                        that dies meanwhile never learns its id: Tomato's crash window)
GET /_control answers what happened: launches (with properties) and requests (path, auth seen).

Usage: aqua.py --work DIR [--token T]; prints "listening PORT" once it accepts requests.
"""

import argparse
import json
import os
import secrets
import shutil
import subprocess
import sys
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

HERE = Path(__file__).resolve().parent
AQUA_DIR = HERE.parent / "aqua"
SUITES = AQUA_DIR / "suites"
ALLURE = AQUA_DIR / "node_modules" / ".bin" / "allure"
API = "/aqua-api/services/"

# The farm's packs: Aqua ids (24 hex digits) -> name and suite file.
PACKS = {
    "5f0000000000000000000001": ("mixed", "test_mixed.py"),
    "5f0000000000000000000002": ("always", "test_always.py"),
}

lock = threading.Lock()
launches = {}  # id -> dict
requests_seen = []
knobs = {"poll_500": 0, "poll_hang": 0, "report_failed": False, "delay": 0.0, "answer_delay": 0.0}
args = None
base_url = ""


def launch_object(l):
    total = 1
    done = l["launchStatus"] in ("REPORT_READY", "REPORT_FAILED")
    return {
        "id": l["id"],
        "launchUrl": f"{base_url}/launch/{l['id']}",
        "pack": {
            "id": l["packId"],
            "name": PACKS[l["packId"]][0],
            "properties": [{"key": k, "value": v} for k, v in l["properties"]],
        },
        "launchStatus": l["launchStatus"],
        "totalSuites": total,
        "passedSuites": total if done and not l.get("failing") else 0,
        "failedSuites": total if done and l.get("failing") else 0,
        "revokedSuites": total if l["launchStatus"] == "REVOKED" else 0,
        "startTime": l["startTime"],
        "stopTime": l.get("stopTime"),
        "reportRequestUrl": f"{base_url}/reports/{l['id']}/index.html",
    }


def run_launch(l):
    """Runs the pack's pytest suite and builds the Allure report, as Aqua's farm would."""
    try:
        if knobs["delay"]:
            time.sleep(knobs["delay"])
        work = Path(args.work) / l["id"]
        results = work / "allure-results"
        work.mkdir(parents=True)
        chain = Path(args.work) / ("chain-" + l["chain"])
        chain.mkdir(exist_ok=True)
        env = dict(os.environ, AQUA_RESTART=str(l["restart"]), PYTHONDONTWRITEBYTECODE="1")
        for k, v in l["properties"]:
            env["AQUA_PROP_" + k.upper().replace(".", "_")] = v
        cmd = [sys.executable, "-m", "pytest", "-q", "-c", str(SUITES / "pytest.ini"),
               "--rootdir", str(SUITES), "-o", f"cache_dir={chain / 'cache'}",
               f"--alluredir={results}", str(SUITES / PACKS[l["packId"]][1])]
        if l["restart"]:
            cmd.append("--lf")
        out = subprocess.run(cmd, cwd=SUITES, env=env, capture_output=True, text=True, timeout=300)
        (work / "pytest.log").write_text(out.stdout + out.stderr)
        failing = 0
        for f in results.glob("*-result.json"):
            if json.loads(f.read_text()).get("status") in ("failed", "broken"):
                failing += 1
        status = "REPORT_FAILED"
        if not knobs["report_failed"]:
            gen = subprocess.run([str(ALLURE), "generate", str(results), "-o", str(work / "report"), "--clean"],
                                 capture_output=True, text=True, timeout=300)
            (work / "allure.log").write_text(gen.stdout + gen.stderr)
            if gen.returncode == 0:
                status = "REPORT_READY"
        with lock:
            if l["launchStatus"] != "REVOKED":
                l["failing"] = failing
                l["launchStatus"] = status
                l["stopTime"] = int(time.time() * 1000)
    except Exception as e:  # the launch fails as Aqua's would: REPORT_FAILED
        with lock:
            l["launchStatus"] = "REPORT_FAILED"
            l["error"] = repr(e)


def start(pack_id, properties, restart_of=None):
    prev = launches.get(restart_of) if restart_of else None
    l = {
        "id": secrets.token_hex(12),
        "packId": pack_id,
        "properties": properties,
        "launchStatus": "RUNNING",
        "startTime": int(time.time() * 1000),
        "chain": prev["chain"] if prev else secrets.token_hex(4),
        "restart": prev["restart"] + 1 if prev else 0,
        "restartOf": restart_of,
    }
    with lock:
        l["seq"] = len(launches)
        launches[l["id"]] = l
    threading.Thread(target=run_launch, args=(l,), daemon=True).start()
    return l


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *a):
        pass

    def answer(self, status, body, content_type="application/json"):
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self):
        if self.path != "/_control":
            return self.answer(404, {"error": "not found"})
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
        with lock:
            knobs.update(body)
        self.answer(200, knobs)

    def do_GET(self):
        url = urllib.parse.urlsplit(self.path)
        query = urllib.parse.parse_qsl(url.query, keep_blank_values=True)
        if url.path == "/_control":
            with lock:
                return self.answer(200, {"launches": list(launches.values()), "requests": requests_seen})
        if url.path.startswith("/reports/"):
            return self.report(url.path[len("/reports/"):])
        if not url.path.startswith(API):
            return self.answer(404, {"error": "not found"})
        auth = self.headers.get("Authorization")
        with lock:
            requests_seen.append({"path": url.path, "query": query, "auth": auth is not None})
        if args.token and auth != f"Bearer {args.token}":
            return self.answer(401, {"error": "unauthorized"})
        parts = url.path[len(API):].strip("/").split("/")
        if parts[:2] == ["launch", "pack"] and len(parts) == 3:
            if parts[2] not in PACKS:
                return self.answer(404, {"error": f"no pack {parts[2]}"})
            made = start(parts[2], query)
            if knobs["answer_delay"]:
                time.sleep(knobs["answer_delay"])
            return self.answer(200, launch_object(made))
        if parts[:2] == ["launch", "page"]:
            q = dict(query)
            pack = q.get("packId")
            try:
                skip, limit = int(q.get("skip", 0)), int(q.get("limit", 20))
            except ValueError:
                return self.answer(400, {"error": "skip and limit are numbers"})
            with lock:
                # Newest first, as Aqua lists them; a page of `limit` after `skip`.
                found = sorted((l for l in launches.values() if pack in (None, l["packId"])),
                               key=lambda l: (l["startTime"], l["seq"]), reverse=True)
                page = [launch_object(l) for l in found[skip:skip + limit]]
            return self.answer(200, {"launches": page})
        if parts[0] == "pack" and len(parts) == 2 and parts[1] in PACKS:
            name, file = PACKS[parts[1]]
            return self.answer(200, {"id": parts[1], "name": name, "projects": [{"suites": [{"name": file}]}]})
        if parts[0] == "launch" and len(parts) >= 2:
            with lock:
                l = launches.get(parts[1])
            if l is None:
                return self.answer(404, {"error": f"no launch {parts[1]}"})
            if len(parts) == 2:
                return self.poll(l)
            if parts[2:] == ["restart"]:
                if dict(query).get("failed-only") != "true":
                    return self.answer(400, {"error": "the stand-in restarts failed suites only"})
                return self.answer(200, launch_object(start(l["packId"], l["properties"], l["id"])))
            if parts[2:] == ["revoke"]:
                with lock:
                    l["launchStatus"] = "REVOKED"
                return self.answer(200, launch_object(l))
        return self.answer(404, {"error": "not found"})

    def poll(self, l):
        with lock:
            hang = knobs["poll_hang"] != 0
            fail = not hang and knobs["poll_500"] != 0
            if hang and knobs["poll_hang"] > 0:
                knobs["poll_hang"] -= 1
            if fail and knobs["poll_500"] > 0:
                knobs["poll_500"] -= 1
            body = launch_object(l)
        if hang:
            time.sleep(3600)
        if fail:
            return self.answer(500, {"error": "internal error (a knob of the stand-in)"})
        self.answer(200, body)

    def report(self, rest):
        launch, _, path = rest.partition("/")
        root = (Path(args.work) / launch / "report").resolve()
        target = (root / (path or "index.html")).resolve()
        if root not in target.parents or not target.is_file():
            return self.answer(404, {"error": "not found"})
        kind = "application/json" if target.suffix == ".json" else "application/octet-stream"
        self.answer(200, target.read_bytes(), kind)


def main():
    global args, base_url
    p = argparse.ArgumentParser()
    p.add_argument("--work", required=True)
    p.add_argument("--token")
    args = p.parse_args()
    if not ALLURE.exists() or shutil.which("java") is None:
        sys.exit(f"the Allure command line is missing: run `npm ci` in {AQUA_DIR} (and install Java)")
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    base_url = f"http://127.0.0.1:{server.server_port}"
    print(f"listening {server.server_port}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
