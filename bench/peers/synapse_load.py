#!/usr/bin/env python3
"""Helper for bench/peers/synapse.sh: configure Synapse, set up users and a
room, load it with m.room.message events, and print the comparison table.

Subcommands (all run inside the Synapse venv, which has PyYAML and aiohttp):
  configure  rewrite a generated homeserver.yaml for benchmarking (SQLite,
             or PostgreSQL with --pg-port)
  setup      register two users (shared-secret admin API), log both in,
             create a room, join the second user; print JSON
  load       send messages at a fixed concurrency or a fixed rate; print one
             JSON line with the same fields as `careline bench ingest --json`
  table      print the careline/Synapse comparison from a JSON-lines results file

The load generator mirrors careline's: `concurrency` workers, each on its own
keep-alive connection, either back to back (closed loop) or, with --rate, on a
fixed schedule (open loop: latency counts from when a message was due).
"""

import argparse
import asyncio
import hashlib
import hmac
import json
import math
import sys
import time
import uuid

HIGH = {"per_second": 1_000_000, "burst_count": 1_000_000}

# Every rate limiter Synapse 1.16x knows about, raised out of the way.
RATE_LIMITS = {
    "rc_message": HIGH,
    "rc_registration": HIGH,
    "rc_registration_token_validity": HIGH,
    "rc_login": {"address": HIGH, "account": HIGH, "failed_attempts": HIGH},
    "rc_admin_redaction": HIGH,
    "rc_joins": {"local": HIGH, "remote": HIGH},
    "rc_joins_per_room": HIGH,
    "rc_key_requests": HIGH,
    "rc_3pid_validation": HIGH,
    "rc_invites": {"per_room": HIGH, "per_user": HIGH, "per_issuer": HIGH},
    "rc_third_party_invite": HIGH,
    "rc_media_create": HIGH,
    "rc_presence": {"per_user": HIGH},
    "rc_delayed_event_mgmt": HIGH,
    "rc_room_creation": HIGH,
    "rc_reports": HIGH,
    "rc_user_directory": HIGH,
    "rc_profile": HIGH,
}

TEXTS = [
    "Hi, could you send a refill of my blood pressure medication to the pharmacy on Main Street? Thanks.",
    "I need to reschedule my appointment next Tuesday, something came up at work.",
    "Question about my bill from the March visit, I think I was charged twice.",
    "My lab results came in the portal, can someone explain what the cholesterol numbers mean?",
    "I've had a mild cold for three days, stuffy nose, no fever. Anything I can take?",
    "Could I get a copy of my vaccination record for my new job?",
    "The rash on my arm is a bit better with the cream, just checking in.",
    "I have chest pressure going into my left arm and I'm sweating.",
    "My mom is slurring her words and her face looks droopy.",
    "My calf has been swollen and painful since my flight yesterday.",
]


def padded(base, size, n):
    """Same padding as careline's load generator."""
    s = f"{base} (ref {n})"
    while len(s) < size:
        s += " Thank you for your help."
    return s


def configure(a):
    import yaml

    with open(a.config) as f:
        cfg = yaml.safe_load(f)
    cfg["listeners"] = [
        {
            "port": a.port,
            "bind_addresses": ["127.0.0.1"],
            "type": "http",
            "tls": False,
            "x_forwarded": False,
            # Client API only: no federation resource is served.
            "resources": [{"names": ["client"], "compress": False}],
        }
    ]
    if a.pg_port:
        # PostgreSQL through psycopg2 (trust authentication on 127.0.0.1);
        # the database was created UTF8 with the C locale, as Synapse requires.
        cfg["database"] = {
            "name": "psycopg2",
            "args": {
                "user": a.pg_user,
                "database": a.pg_database,
                "host": a.pg_host,
                "port": a.pg_port,
                "cp_min": 5,
                "cp_max": 10,
            },
        }
    else:
        # SQLite, Synapse's default (Synapse recommends PostgreSQL in production).
        cfg["database"] = {"name": "sqlite3", "args": {"database": f"{a.data_dir}/homeserver.db"}}
    cfg["registration_shared_secret"] = a.secret
    cfg["enable_registration"] = False  # open registration off; the shared secret still registers
    cfg["federation_domain_whitelist"] = []  # no federation
    cfg["trusted_key_servers"] = []
    cfg["suppress_key_server_warning"] = True
    cfg["presence"] = {"enabled": False}
    cfg["report_stats"] = False
    cfg["enable_metrics"] = False
    cfg["url_preview_enabled"] = False
    cfg["user_directory"] = {"enabled": False}
    cfg.update(RATE_LIMITS)
    with open(a.config, "w") as f:
        yaml.safe_dump(cfg, f, sort_keys=False)
    # Quieter logging (INFO logs every request); careline's bench logs nothing.
    log_cfg = cfg.get("log_config")
    if log_cfg:
        with open(log_cfg) as f:
            lc = yaml.safe_load(f)
        lc.setdefault("root", {})["level"] = "WARNING"
        for lg in lc.get("loggers", {}).values():
            lg["level"] = "WARNING"
        with open(log_cfg, "w") as f:
            yaml.safe_dump(lc, f, sort_keys=False)


async def setup(a):
    import aiohttp

    async with aiohttp.ClientSession(a.base) as s:

        async def call(method, path, token=None, body=None, ok=(200,)):
            headers = {"Authorization": f"Bearer {token}"} if token else {}
            async with s.request(method, path, json=body, headers=headers) as r:
                data = await r.json(content_type=None)
                if r.status not in ok:
                    raise SystemExit(f"{method} {path}: {r.status} {data}")
                return data

        tokens = []
        for user in ("alice", "bob"):
            nonce = (await call("GET", "/_synapse/admin/v1/register"))["nonce"]
            # HMAC-SHA1 over nonce NUL user NUL password NUL "notadmin".
            msg = b"\x00".join(x.encode() for x in (nonce, user, a.password, "notadmin"))
            mac = hmac.new(a.secret.encode(), msg, digestmod=hashlib.sha1)
            await call(
                "POST",
                "/_synapse/admin/v1/register",
                body={"nonce": nonce, "username": user, "password": a.password, "admin": False, "mac": mac.hexdigest()},
            )
            login = await call(
                "POST",
                "/_matrix/client/v3/login",
                body={"type": "m.login.password", "identifier": {"type": "m.id.user", "user": user}, "password": a.password},
            )
            tokens.append(login["access_token"])
        server = a.server_name
        room = (await call("POST", "/_matrix/client/v3/createRoom", tokens[0], {"preset": "private_chat", "invite": [f"@bob:{server}"]}))["room_id"]
        await call("POST", f"/_matrix/client/v3/rooms/{room}/join", tokens[1], {})
        print(json.dumps({"room": room, "tokens": tokens}))


def pct(sorted_us, p):
    if not sorted_us:
        return 0.0
    return sorted_us[round((len(sorted_us) - 1) * p)] / 1000.0


async def load(a):
    import aiohttp

    st = json.load(open(a.setup))
    room, tokens = st["room"], st["tokens"]
    run = uuid.uuid4().hex[:8]
    started = time.monotonic()
    deadline = started + a.duration
    # Open loop against a server slower than the rate: stop draining the
    # backlog `grace` seconds after the end; what was due and not sent is "missed".
    give_up = deadline + a.grace
    interval = a.concurrency / a.rate if a.rate > 0 else None

    async def worker(w):
        lat, errors, missed = [], 0, 0
        token = tokens[w % len(tokens)]
        headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
        # One keep-alive connection per worker, as careline's generator does.
        conn = aiohttp.TCPConnector(limit=1, force_close=False)
        async with aiohttp.ClientSession(a.base, connector=conn, timeout=aiohttp.ClientTimeout(total=60)) as s:
            offset = interval * min(w / 64.0, 1.0) if interval else 0.0
            k = 0
            while True:
                due = started + offset + interval * k if interval else time.monotonic()
                if due >= deadline:
                    break
                if time.monotonic() > give_up:
                    missed = max(0, math.ceil((deadline - started - offset) / interval) - k) if interval else 0
                    break
                wait = due - time.monotonic()
                if wait > 0:
                    await asyncio.sleep(wait)
                body = json.dumps({"msgtype": "m.text", "body": padded(TEXTS[(k + w) % len(TEXTS)], a.size, k)})
                path = f"/_matrix/client/v3/rooms/{room}/send/m.room.message/{run}-{w}-{k}"
                try:
                    async with s.put(path, data=body, headers=headers) as r:
                        await r.read()
                        if r.status == 200:
                            lat.append(int((time.monotonic() - due) * 1e6))
                        else:
                            errors += 1
                except Exception:
                    errors += 1
                k += 1
        return lat, errors, missed

    results = await asyncio.gather(*(worker(w) for w in range(a.concurrency)))
    seconds = time.monotonic() - started
    lat = sorted(x for l, _, _ in results for x in l)
    errors = sum(e for _, e, _ in results)
    missed = sum(m for _, _, m in results)
    print(
        json.dumps(
            {
                "mode": "fixed-rate" if a.rate > 0 else "fixed-concurrency",
                "concurrency": a.concurrency,
                "target_rate": a.rate,
                "sent": len(lat),
                "errors": errors,
                "missed": missed,
                "seconds": seconds,
                "msgs_per_sec": len(lat) / seconds,
                "p50_ms": pct(lat, 0.50),
                "p90_ms": pct(lat, 0.90),
                "p99_ms": pct(lat, 0.99),
                "max_ms": lat[-1] / 1000.0 if lat else 0.0,
            }
        )
    )


def table(a):
    rows = {}
    order = []
    for line in open(a.results):
        line = line.strip()
        if not line:
            continue
        r = json.loads(line)
        key = r["level"]
        if key not in rows:
            rows[key] = {}
            order.append(key)
        rows[key][r["system"]] = r
    hdr = f"{'level':<18} {'careline msg/s':>14} {'p50 ms':>8} {'p99 ms':>8} {'err':>5} | {'synapse msg/s':>13} {'p50 ms':>8} {'p99 ms':>8} {'err':>5} | {'ratio':>7}"
    print(hdr)
    print("-" * len(hdr))

    def cell(r, w):
        if not r:
            return f"{'-':>{w}} {'-':>8} {'-':>8} {'-':>5}"
        return f"{r['msgs_per_sec']:>{w}.0f} {r['p50_ms']:>8.2f} {r['p99_ms']:>8.2f} {r['errors'] + r.get('missed', 0):>5}"

    for k in order:
        c, s = rows[k].get("careline"), rows[k].get("synapse")
        ratio = f"{c['msgs_per_sec'] / s['msgs_per_sec']:>6.1f}x" if c and s and s["msgs_per_sec"] > 0 else f"{'-':>7}"
        print(f"{k:<18} {cell(c, 14)} | {cell(s, 13)} | {ratio}")
    print("err = failed requests + (Synapse, open loop) messages still unsent 5 s after the end.")
    print("ratio = careline msgs/s / Synapse msgs/s. At a fixed rate both should equal the target if they keep up;")
    print("there the comparison is the latency (counted from when each message was due).")


def main():
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("configure")
    c.add_argument("--config", required=True)
    c.add_argument("--port", type=int, required=True)
    c.add_argument("--data-dir", required=True)
    c.add_argument("--secret", required=True)
    c.add_argument("--pg-port", type=int, default=0, help="use PostgreSQL on this port instead of SQLite")
    c.add_argument("--pg-host", default="127.0.0.1")
    c.add_argument("--pg-user", default="postgres")
    c.add_argument("--pg-database", default="synapse")
    s = sub.add_parser("setup")
    s.add_argument("--base", required=True)
    s.add_argument("--secret", required=True)
    s.add_argument("--server-name", default="localhost")
    s.add_argument("--password", default="bench-password-1")
    l = sub.add_parser("load")
    l.add_argument("--base", required=True)
    l.add_argument("--setup", required=True)
    l.add_argument("--concurrency", type=int, default=16)
    l.add_argument("--rate", type=float, default=0)
    l.add_argument("--duration", type=float, default=10)
    l.add_argument("--size", type=int, default=200)
    l.add_argument("--grace", type=float, default=5, help="seconds to keep draining an open-loop backlog after --duration")
    t = sub.add_parser("table")
    t.add_argument("--results", required=True)
    a = p.parse_args()
    if a.cmd == "configure":
        configure(a)
    elif a.cmd == "setup":
        asyncio.run(setup(a))
    elif a.cmd == "load":
        asyncio.run(load(a))
    else:
        table(a)


if __name__ == "__main__":
    sys.exit(main())
