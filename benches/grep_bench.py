#!/usr/bin/env python3
"""Benchmark `tomato grep` against ripgrep, GNU grep and a Python `re` loop on a realistic 1 GiB test log.

Usage: python3 benches/grep_bench.py [--tomato target/release/tomato] [--size-mib 1024] [--repeat 3]

It builds nothing: pass a release build of the tomato binary. The log and the rules are generated once
(deterministic seed) and cached in --data-dir (default: $TMPDIR/tomato-grep-bench). Every tool gets the
same 50 patterns, written in the subset that Rust regex, ripgrep, GNU `grep -E` and Python `re` all read
the same way ([0-9] rather than \\d, no \\b, no (?i) in the shared file: case-insensitive rules are spelled
with bracket pairs there, while tomato's rules file uses `(?i)` / the `caseInsensitive` flag).

Measured, in one run and on the same file (page cache warm, best of --repeat):
  * tomato grep --rules R.json --json LOG   (per-rule counts; the others count lines matching any pattern)
  * rg -c -f PATTERNS LOG                   (all patterns in one pass)
  * grep -E -c -f PATTERNS LOG              (GNU grep, LC_ALL=C, its fastest locale)
  * Python re: for each line, try each compiled pattern (the old tool) — on a 64 MiB prefix only.
Then, on that prefix, tomato's per-rule counts are checked against the Python loop's.
Standard library only (Python 3.11).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

GENERATOR_VERSION = 3
PREFIX_MIB = 64

# (name, tomato logRegex, flags, shared pattern for rg / grep -E / Python). The shared pattern is the
# tomato one unless given.
RULES: list[tuple[str, str, list[str], str | None]] = [
    ("Connection refused", r"Connection refused", [], None),
    ("Selenium wait timeout", r"TimeoutException.*waiting for", [], None),
    ("HTTP 5xx", r'HTTP/1\.1" 5[0-9][0-9]', [], None),
    ("Out of memory", r"OutOfMemoryError", [], None),
    ("No such element", r"NoSuchElementException", [], None),
    ("Deadlock", r"(?i)deadlock", [], "[Dd][Ee][Aa][Dd][Ll][Oo][Cc][Kk]"),
    ("Assertion mismatch", r"AssertionError: expected .* but was", [], None),
    ("Stale element", r"StaleElementReferenceException", [], None),
    ("Not interactable", r"ElementNotInteractableException", [], None),
    ("Click intercepted", r"ElementClickInterceptedException", [], None),
    ("Session not created", r"SessionNotCreatedException", [], None),
    ("Browser unreachable", r"UnreachableBrowserException|chrome not reachable", [], None),
    ("Socket timeout", r"SocketTimeoutException: (Read|Connect) timed out", [], None),
    ("Connect timeout", r"ConnectTimeoutException", [], None),
    ("Unknown host", r"UnknownHostException", [], None),
    ("TLS", r"SSLHandshakeException|PKIX path building failed", [], None),
    ("NPE", r"java\.lang\.NullPointerException", [], None),
    ("Python assert", r"^AssertionError: assert [0-9]+ == [0-9]+", [], None),
    ("Python KeyError", r"^KeyError: '", [], None),
    ("requests ConnectionError", r"requests\.exceptions\.ConnectionError", [], None),
    ("Postgres down", r"psycopg2\.OperationalError", [], None),
    ("DB pool exhausted", r"HikariPool-[0-9]+ - Connection is not available", [], None),
    ("Kafka timeout", r"org\.apache\.kafka\.common\.errors\.TimeoutException", [], None),
    ("Redis", r"RedisConnectionFailureException|Could not connect to Redis", [], None),
    ("Envoy upstream reset", r"upstream connect error or disconnect/reset before headers", [], None),
    ("Gateway timeout", r"504 Gateway Time-out", [], None),
    ("Too many open files", r"Too many open files", [], None),
    ("Disk full", r"No space left on device", [], None),
    ("OOM killer", r"Killed process [0-9]+", [], None),
    ("Segfault", r"SIGSEGV|Segmentation fault", [], None),
    ("Registry rate limit", r"toomanyrequests: You have reached your pull rate limit", [], None),
    ("Pod OOMKilled", r"OOMKilled", [], None),
    ("Liquibase lock", r"Waiting for changelog lock", [], None),
    ("Retry storm", r"Retrying \([0-9]+/[0-9]+\) after", [], None),
    ("Port in use", r"Address already in use", [], None),
    ("Bad JSON", r"JsonParseException|JSONDecodeError", [], None),
    ("HTTP 401", r'HTTP/1\.1" 401 ', [], None),
    ("JUnit timeout", r"TestTimedOutException: test timed out after [0-9]+ milliseconds", [], None),
    ("Undefined step", r"Undefined step: ", [], None),
    ("JS console error", r"SEVERE.*Uncaught (TypeError|ReferenceError)", [], None),
    ("Tab crashed", r"tab crashed", ["caseInsensitive"], "[Tt][Aa][Bb] [Cc][Rr][Aa][Ss][Hh][Ee][Dd]"),
    ("Lock wait timeout", r"Lock wait timeout exceeded", [], None),
    ("Broken pipe", r"Broken pipe", [], None),
    ("Certificate expired", r"certificate has expired", [], None),
    ("GC overhead", r"GC overhead limit exceeded", [], None),
    ("Jetty starvation", r"Thread starvation or clock leap detected", [], None),
    ("Service ERROR line", r"^[0-9]{4}-[0-9]{2}-[0-9]{2} [0-9:.]+ ERROR \[", [], None),
    # No usable literal at all: these force a full automaton pass in every tool.
    ("Shouting constant", r"^[A-Z][A-Z_]{24,}$", [], None),
    ("Odd IPv4", r"[0-9]{3}\.[0-9]{3}\.[0-9]{3}\.[0-9]{3}", [], None),
    ("Slow call", r"[0-9]{5,}ms", [], None),
]


# ----------------------------------------------------------------------------------------------- data


def _ts(r: random.Random) -> str:
    return f"2024-05-{r.randint(1, 28):02d} {r.randint(0, 23):02d}:{r.randint(0, 59):02d}:{r.randint(0, 59):02d}.{r.randint(0, 999):03d}"


PKGS = ["com.acme.orders", "com.acme.billing", "com.acme.auth", "org.springframework.web", "io.netty.channel"]
CLASSES = ["OrderService", "PaymentController", "UserRepository", "TokenFilter", "CartManager", "Scheduler"]
METHODS = ["process", "handle", "doFilter", "findById", "execute", "run", "apply", "invoke"]
USERS = ["alice", "bob", "carol", "dave", "erin", "José", "Müller", "Łukasz"]
PATHS = ["/api/v1/orders", "/api/v1/users", "/api/v2/cart/items", "/static/app.js", "/health", "/login"]


def normal_event(r: random.Random) -> str:
    """One everyday log event (one or several lines)."""
    k = r.random()
    if k < 0.30:
        lvl = r.choices(["INFO ", "DEBUG", "WARN ", "ERROR", "TRACE"], [50, 40, 6, 0.3, 4])[0]
        return (
            f"{_ts(r)} {lvl} [{r.choice(['main', 'http-nio-8080-exec-' + str(r.randint(1, 200)), 'scheduler-1'])}] "
            f"{r.choice(PKGS)}.{r.choice(CLASSES)} - {r.choice(['Processing', 'Loaded', 'Saved', 'Validated'])} "
            f"order {r.randint(1, 10**6)} for user {r.choice(USERS)} in {r.randint(1, 9999)}ms\n"
        )
    if k < 0.55:
        status = r.choices([200, 201, 204, 301, 304, 400, 401, 404, 500, 503], [70, 5, 5, 2, 8, 3, 0.02, 6, 0.01, 0.01])[0]
        return (
            f"10.{r.randint(0, 255)}.{r.randint(0, 255)}.{r.randint(0, 255)} - - [12/May/2024:{r.randint(0, 23):02d}:"
            f'{r.randint(0, 59):02d}:{r.randint(0, 59):02d} +0000] "{r.choice(["GET", "POST", "PUT"])} '
            f'{r.choice(PATHS)}/{r.randint(1, 99999)} HTTP/1.1" {status} {r.randint(0, 60000)} "-" '
            f'"Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 Chrome/124.0.{r.randint(0, 9999)}.0"\n'
        )
    if k < 0.75:
        sid = "%032x" % r.getrandbits(128)
        cmd = r.choice(["FindElement", "ClickElement", "GetElementText", "ExecuteScript", "GetTitle"])
        return (
            f"[{1715509425 + r.randint(0, 10**5)}.{r.randint(0, 999):03d}][INFO]: [{sid}] COMMAND {cmd} {{\n"
            f'   "using": "css selector",\n   "value": "#{r.choice(["login", "submit", "cart", "menu"])}-{r.randint(1, 99)}"\n}}\n'
            f"[{1715509425 + r.randint(0, 10**5)}.{r.randint(0, 999):03d}][INFO]: [{sid}] RESPONSE {cmd}\n"
            f"DEBUG selenium.webdriver.remote.remote_connection: POST http://localhost:4444/session/{sid}/element "
            f'{{"using": "css selector", "value": "#x{r.randint(1, 999)}"}}\n'
            f"DEBUG selenium.webdriver.remote.remote_connection: Finished Request\n"
        )
    if k < 0.90:
        exc = r.choice(["IllegalStateException", "IllegalArgumentException", "UnsupportedOperationException"])
        lines = [f"{_ts(r)} WARN  [main] {r.choice(PKGS)}.{r.choice(CLASSES)} - Recoverable problem, retrying\n",
                 f"java.lang.{exc}: invalid state {r.randint(1, 1000)}\n"]
        for _ in range(r.randint(5, 25)):
            c = r.choice(CLASSES)
            lines.append(f"\tat {r.choice(PKGS)}.{c}.{r.choice(METHODS)}({c}.java:{r.randint(10, 900)})\n")
        lines.append(f"\t... {r.randint(3, 60)} more\n")
        return "".join(lines)
    lines = ["Traceback (most recent call last):\n"]
    for _ in range(r.randint(2, 8)):
        lines.append(f'  File "/app/tests/test_{r.choice(METHODS)}.py", line {r.randint(1, 400)}, in test_{r.choice(METHODS)}\n')
        lines.append(f"    result = client.{r.choice(METHODS)}(payload, timeout={r.randint(1, 30)})\n")
    lines.append(f"ValueError: invalid literal for int() with base 10: '{r.choice(USERS)}'\n")
    return "".join(lines)


FAILURES = [
    "java.net.ConnectException: Connection refused (Connection refused)",
    "org.openqa.selenium.TimeoutException: Expected condition failed: waiting for visibility of element located by By.id: submit (tried for 10 second(s))",
    '10.0.0.7 - - [12/May/2024:10:00:01 +0000] "POST /api/v1/orders HTTP/1.1" 502 0 "-" "curl/8.0"',
    "java.lang.OutOfMemoryError: Java heap space",
    "org.openqa.selenium.NoSuchElementException: no such element: Unable to locate element",
    "com.mysql.cj.jdbc.exceptions.MySQLTransactionRollbackException: Deadlock found when trying to get lock",
    "java.lang.AssertionError: expected:<200> but was:<500>",
    "org.openqa.selenium.StaleElementReferenceException: stale element reference",
    "java.net.SocketTimeoutException: Read timed out",
    "Caused by: java.lang.NullPointerException: Cannot invoke \"String.length()\" because \"s\" is null",
    "AssertionError: assert 200 == 503",
    "KeyError: 'order_id'",
    "requests.exceptions.ConnectionError: HTTPSConnectionPool(host='api', port=443)",
    "psycopg2.OperationalError: could not connect to server",
    "java.sql.SQLTransientConnectionException: HikariPool-1 - Connection is not available, request timed out after 30000ms.",
    "upstream connect error or disconnect/reset before headers. reset reason: connection failure",
    "<html><head><title>504 Gateway Time-out</title></head></html>",
    "java.io.IOException: Too many open files",
    "OSError: [Errno 28] No space left on device",
    "kernel: Out of memory: Killed process 4242 (java)",
    "Last State: Terminated Reason: OOMKilled Exit Code: 137",
    "WARNING urllib3.connectionpool: Retrying (Retry(total=2)) after connection broken; Retrying (1/3) after 0.5s",
    "java.net.BindException: Address already in use",
    "json.decoder.JSONDecodeError: Expecting value: line 1 column 1 (char 0)",
    "org.junit.runners.model.TestTimedOutException: test timed out after 60000 milliseconds",
    "[1715509425.123][SEVERE]: Uncaught TypeError: Cannot read properties of undefined",
    "FATAL: Tab crashed while loading https://shop.local/cart",
    "Lock wait timeout exceeded; try restarting transaction",
    "java.lang.OutOfMemoryError: GC overhead limit exceeded",
    "2024-05-12 10:00:00.000 ERROR [main] com.acme.orders.OrderService - Order pipeline failed",
    "CONNECTION_POOL_EXHAUSTED_FATAL_ERROR",
    "Resolved upstream to 192.168.100.200 for shard 7",
    "Slow call to payment gateway: 123456ms",
]


def generate_log(path: Path, size: int, seed: int = 42) -> None:
    r = random.Random(seed)
    print(f"generating {size >> 20} MiB test log at {path} (once; cached) ...", file=sys.stderr)
    pool = [normal_event(r) for _ in range(60_000)]
    written = 0
    tmp = path.with_suffix(".tmp")
    with open(tmp, "wb", buffering=1 << 20) as f:
        while written < size:
            block = r.choices(pool, k=3000)
            # Rare failures: about one line in 20 000.
            for _ in range(r.choice([0, 0, 0, 1])):
                block.insert(r.randrange(len(block)), r.choice(FAILURES) + "\n")
            data = "".join(block).encode()
            data = data[: size - written] if written + len(data) > size else data
            f.write(data)
            written += len(data)
    os.replace(tmp, path)


def write_rules(d: Path) -> tuple[Path, Path]:
    rules = [{"name": n, "matchedStatuses": ["failed", "broken"], "logRegex": rx, **({"flags": fl} if fl else {})}
             for n, rx, fl, _ in RULES]
    rules_path = d / "rules.json"
    rules_path.write_text(json.dumps(rules, indent=1))
    pats_path = d / "patterns.txt"
    pats_path.write_text("".join((shared or rx) + "\n" for _, rx, _, shared in RULES))
    return rules_path, pats_path


def make_prefix(log: Path, prefix: Path, size: int) -> None:
    if prefix.exists() and prefix.stat().st_size > 0:
        return
    with open(log, "rb") as f:
        data = f.read(size)
    cut = data.rfind(b"\n") + 1
    prefix.write_bytes(data[:cut])


# ---------------------------------------------------------------------------------------------- timing


GNU_TIME = "/usr/bin/time"


def run_with_rusage(cmd: list[str], env: dict | None = None) -> tuple[float, int, bytes]:
    """Run cmd; return (wall seconds, the child's peak RSS in KiB, stdout).

    The peak RSS comes from GNU time when installed: a child forked straight from this (large) Python
    process inherits its resident size in ru_maxrss, while GNU time's own child starts small. Without it,
    os.wait4's figure is reported, which is then only an upper bound.
    """
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err, \
            tempfile.NamedTemporaryFile(mode="r") as rss_file:
        wrapped = [GNU_TIME, "-f", "%M", "-o", rss_file.name, *cmd] if os.path.exists(GNU_TIME) else cmd
        start = time.perf_counter()
        p = subprocess.Popen(wrapped, stdout=out, stderr=err, env=env)
        _, status, usage = os.wait4(p.pid, 0)
        wall = time.perf_counter() - start
        p.returncode = os.waitstatus_to_exitcode(status)
        if p.returncode not in (0, 1):
            err.seek(0)
            raise RuntimeError(f"{cmd[0]} failed ({p.returncode}): {err.read().decode(errors='replace')[:500]}")
        out.seek(0)
        text = rss_file.read().strip().splitlines()
        rss = int(text[-1]) if text and text[-1].isdigit() else usage.ru_maxrss
        return wall, rss, out.read()


def best_of(n: int, cmd: list[str], env: dict | None = None) -> tuple[float, int, bytes]:
    runs = [run_with_rusage(cmd, env) for _ in range(n)]
    return min(runs, key=lambda t: t[0])


def python_baseline(path: Path, patterns: list[str]) -> tuple[float, list[int]]:
    """The old tool: for every line, try every compiled pattern."""
    compiled = [re.compile(p.encode()) for p in patterns]
    counts = [0] * len(compiled)
    start = time.perf_counter()
    with open(path, "rb") as f:
        for line in f:
            for i, rx in enumerate(compiled):
                if rx.search(line):
                    counts[i] += 1
    return time.perf_counter() - start, counts


def warm(path: Path) -> None:
    with open(path, "rb") as f:
        while f.read(16 << 20):
            pass


def fmt_rate(nbytes: int, secs: float) -> str:
    rate = nbytes / secs
    return f"{rate / 1e9:6.2f} GB/s" if rate >= 1e9 else f"{rate / 1e6:6.0f} MB/s"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tomato", default="target/release/tomato", help="tomato binary (default: %(default)s)")
    ap.add_argument("--size-mib", type=int, default=1024, help="log size (default: %(default)s)")
    ap.add_argument("--repeat", type=int, default=3, help="runs per tool, best kept (default: %(default)s)")
    ap.add_argument("--data-dir", type=Path, default=Path(tempfile.gettempdir()) / "tomato-grep-bench")
    ap.add_argument("--skip-python", action="store_true", help="skip the Python baseline and the cross-check")
    ap.add_argument("--threads", type=int, help="pass --threads N to tomato grep")
    args = ap.parse_args()

    tomato = Path(args.tomato)
    if not tomato.is_file():
        print(f"no tomato binary at {tomato}: run `cargo build --release` first or pass --tomato", file=sys.stderr)
        return 2
    d = args.data_dir
    d.mkdir(parents=True, exist_ok=True)
    size = args.size_mib << 20
    log = d / f"test-v{GENERATOR_VERSION}-{args.size_mib}MiB.log"
    if not log.exists() or log.stat().st_size != size:
        generate_log(log, size)
    prefix = d / f"test-v{GENERATOR_VERSION}-{args.size_mib}MiB.prefix{PREFIX_MIB}.log"
    make_prefix(log, prefix, PREFIX_MIB << 20)
    rules_path, pats_path = write_rules(d)
    nbytes = log.stat().st_size
    warm(log)
    print(f"log: {log} ({nbytes / 2**30:.2f} GiB), {len(RULES)} rules, best of {args.repeat}\n")

    results: dict[str, tuple[float, int]] = {}
    tcmd = [str(tomato), "grep", "--rules", str(rules_path), "--json"]
    if args.threads:
        tcmd += ["--threads", str(args.threads)]
    wall, rss, out = best_of(args.repeat, tcmd + [str(log)])
    report = json.loads(out)
    assert report["bytes"] == nbytes, "tomato read a different number of bytes"
    results["tomato grep --json"] = (wall, rss)
    tomato_hits = sum(c["lines"] for c in report["categories"])

    rg_total = grep_total = None
    if shutil.which("rg"):
        wall, rss, out = best_of(args.repeat, ["rg", "--no-config", "-c", "-f", str(pats_path), str(log)])
        results["rg -c -f"] = (wall, rss)
        rg_total = int(out.strip() or 0)
    else:
        print("rg not found: skipping ripgrep (apt-get install ripgrep)")
    if shutil.which("grep"):
        env = dict(os.environ, LC_ALL="C")
        wall, rss, out = best_of(args.repeat, ["grep", "-E", "-c", "-f", str(pats_path), str(log)], env)
        results["grep -E -c -f (LC_ALL=C)"] = (wall, rss)
        grep_total = int(out.strip() or 0)

    print(f"{'tool':<28} {'seconds':>8} {'throughput':>12} {'peak RSS':>10}")
    for name, (wall, rss) in results.items():
        print(f"{name:<28} {wall:8.3f} {fmt_rate(nbytes, wall):>12} {rss / 1024:7.1f} MiB")

    py_counts = None
    if not args.skip_python:
        pbytes = prefix.stat().st_size
        warm(prefix)
        secs, py_counts = python_baseline(prefix, [(s or rx) for _, rx, _, s in RULES])
        print(f"{'python re loop (64 MiB prefix)':<28} {secs:8.3f} {fmt_rate(pbytes, secs):>12}"
              f"   <- measured on the first {pbytes / 2**20:.0f} MiB only")
        results["python"] = (secs * nbytes / pbytes, 0)

    tw = results["tomato grep --json"][0]
    print()
    for name, key in [("rg", "rg -c -f"), ("grep", "grep -E -c -f (LC_ALL=C)"), ("python re", "python")]:
        if key in results:
            print(f"speed tomato / {name}: {results[key][0] / tw:6.2f}x")
    print(f"\nmatching lines: tomato {tomato_hits} (sum over rules), rg {rg_total}, grep {grep_total} (lines matching any)")
    top = sorted(report["categories"], key=lambda c: -c["lines"])[:5]
    print("top categories: " + ", ".join(f"{c['name']}={c['lines']}" for c in top))

    if py_counts is not None:
        _, _, out = run_with_rusage(tcmd + [str(prefix)])
        prefix_counts = [c["lines"] for c in json.loads(out)["categories"]]
        bad = [(RULES[i][0], t, p) for i, (t, p) in enumerate(zip(prefix_counts, py_counts)) if t != p]
        if bad:
            print(f"MISMATCH tomato vs python on the prefix: {bad}")
            return 1
        print(f"cross-check on the {PREFIX_MIB} MiB prefix: tomato's per-rule counts equal the Python loop's "
              f"({sum(py_counts)} matching lines)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
