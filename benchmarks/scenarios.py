#!/usr/bin/env python3
"""Scenarios for the detector on top of a simulated login history.

The IP Insights tutorial's simulator (shared/bench/simulate.py, run with --truth)
gives every user a home and a work network and occasional trips; real
organisations also share networks, and careful attackers come from near their
victims. This adds both, from the same routed-network table.

history.csv (timestamp,user,ip in time order): the simulated events of the
training and validation days, plus
  * a VPN: 20 egress addresses in three routed networks of one AS, through which
    30% of the users also log in (a fifth of their logins);
  * an office /24 that 10% of the users also use (three tenths of their logins);
  * a mobile carrier: 10% of the users also log in from many networks of one large AS;
  * 20 service accounts logging in from many networks of one cloud AS;
  * 300 IPv6 users whose addresses rotate inside their /64 (privacy addresses).

scenarios.csv (scenario,label,user,ip,outcome,learn): label 0 benign, 1 attack, -1
a failed attempt that only sets up the next row; learn 1 marks a login an analyst
confirmed as the user's, which the detector learns before the next row.
  benign   normal (the simulator's held-out logins), vpn-first, vpn-new-account,
           office-first, ipv6-privacy, ipv6-new-64, mobile-pool, dhcp-churn,
           service-cloud, moved-house, moved-house-after, new-account-home
  attacks  random-network (the tutorial's), near-victim (16 to 4,096 routed
           networks from the victim's home or work), adjacent-victim (2 to 16),
           same-as (another network of the victim's home AS), compromised-vpn,
           stuffing, spraying

Usage: scenarios.py --sim DIR --out DIR [--table ipasn.tsv.gz] [--seed N]
"""
import argparse
import datetime as dt
import gzip
import ipaddress
import json
import math
import os
import random

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_TABLE = os.path.join(HERE, "..", "..", "shared", "data", "ipasn.tsv.gz")


def load_rows(path):
    v4, v6 = [], []
    with gzip.open(path, "rt") as f:
        for line in f:
            if line.startswith("#"):
                continue
            first, last, asn = line.rstrip("\n").split("\t")
            a, b = ipaddress.ip_address(first), ipaddress.ip_address(last)
            (v4 if a.version == 4 else v6).append((int(a), int(b), int(asn)))
    return v4, v6


def v4(n):
    return str(ipaddress.IPv4Address(n))


def v6(n):
    return str(ipaddress.IPv6Address(n))


def stamp(t):
    return dt.datetime.fromtimestamp(t, dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sim", required=True, help="simulate.py output directory (run with --truth)")
    ap.add_argument("--out", required=True)
    ap.add_argument("--table", default=DEFAULT_TABLE)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()

    rng = random.Random(args.seed * 7919 + 17)
    rows4, rows6 = load_rows(args.table)
    sim = json.load(open(os.path.join(args.sim, "manifest.json")))
    truth = {}
    with open(os.path.join(args.sim, "truth.jsonl")) as f:
        for line in f:
            t = json.loads(line)
            truth[t["user"]] = t

    # The simulated events of the training and validation days, in time order.
    events = []
    with open(os.path.join(args.sim, "events.csv")) as f:
        for line in f:
            when, user, ip = line.rstrip("\n").split(",")
            t = dt.datetime.strptime(when, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.timezone.utc).timestamp()
            events.append((t, user, ip))
    start = min(t for t, _, _ in events)
    history_end = start + (sim["train_days"] + 1) * 86400
    history = [e for e in events if e[0] < history_end]
    counts = {}
    for _, user, _ in history:
        counts[user] = counts.get(user, 0) + 1
    users = sorted(counts)
    simulated = [u for u in users if u in truth]

    def when():
        return rng.uniform(start, history_end)

    def in_row(index):
        row = rows4[index % len(rows4)]
        return v4(rng.randint(row[0], row[1]))

    by_asn = {}
    for i, row in enumerate(rows4):
        by_asn.setdefault(row[2], []).append(i)

    # The organisation's shared networks.
    vpn_asn = rng.choice(sorted(a for a, r in by_asn.items() if 3 <= len(r) <= 20))
    vpn_rows = rng.sample(by_asn[vpn_asn], 3)
    vpn = [in_row(rng.choice(vpn_rows)) for _ in range(20)]
    office_row = rows4[rng.randrange(len(rows4))]
    office_base = (rng.randint(office_row[0], office_row[1]) >> 8) << 8

    def office():
        return v4(office_base + rng.randrange(1, 255))

    carrier_asn, cloud_asn = rng.sample(sorted(a for a, r in by_asn.items() if len(r) >= 200), 2)

    def carrier():
        return in_row(rng.choice(by_asn[carrier_asn]))

    def cloud():
        return in_row(rng.choice(by_asn[cloud_asn]))

    shuffled = simulated[:]
    rng.shuffle(shuffled)
    n = len(shuffled)
    vpn_users = set(shuffled[: int(0.3 * n)])
    office_users = set(shuffled[int(0.3 * n): int(0.4 * n)])
    mobile_users = set(shuffled[int(0.4 * n): int(0.5 * n)])
    extra = []
    for user in sorted(vpn_users):
        extra += [(when(), user, rng.choice(vpn)) for _ in range(max(1, round(0.2 * counts[user])))]
    for user in sorted(office_users):
        extra += [(when(), user, office()) for _ in range(max(1, round(0.3 * counts[user])))]
    for user in sorted(mobile_users):
        extra += [(when(), user, carrier()) for _ in range(max(1, round(0.2 * counts[user])))]
    services = [f"svc_{k}" for k in range(20)]
    for user in services:
        extra += [(when(), user, cloud()) for _ in range(300)]
    v6_users = {}
    for k in range(300):
        row = rows6[rng.randrange(len(rows6))]
        prefix = (rng.randint(row[0], row[1]) >> 64) << 64
        v6_users[f"v6user_{k}"] = prefix
        extra += [(when(), f"v6user_{k}", v6(prefix | rng.getrandbits(64))) for _ in range(rng.randint(20, 80))]
    history = sorted(history + extra)

    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "history.csv"), "w") as f:
        for t, user, ip in history:
            f.write(f"{stamp(t)},{user},{ip}\n")

    rows = []

    def add(scenario, label, user, ip, outcome="success", learn=0):
        rows.append((scenario, label, user, ip, outcome, learn))

    with open(os.path.join(args.sim, "test.csv")) as f:
        for line in f:
            user, ip, label = line.rstrip("\n").split(",")
            add("normal" if label == "0" else "random-network", int(label), user, ip)

    non_vpn = sorted(set(simulated) - vpn_users)
    for _ in range(2000):
        add("vpn-first", 0, rng.choice(non_vpn), rng.choice(vpn))
    for k in range(500):
        add("vpn-new-account", 0, f"newvpn_{k}", rng.choice(vpn))
    non_office = sorted(set(simulated) - office_users)
    for _ in range(2000):
        add("office-first", 0, rng.choice(non_office), office())
    v6_names = sorted(v6_users)
    for _ in range(1000):
        user = rng.choice(v6_names)
        add("ipv6-privacy", 0, user, v6(v6_users[user] | rng.getrandbits(64)))
    for _ in range(1000):
        user = rng.choice(v6_names)
        p48 = (v6_users[user] >> 80) << 80
        add("ipv6-new-64", 0, user, v6(p48 | rng.getrandbits(16) << 64 | rng.getrandbits(64)))
    mobile = sorted(mobile_users)
    for _ in range(1000):
        add("mobile-pool", 0, rng.choice(mobile), carrier())
    for _ in range(1000):
        user = rng.choice(simulated)
        add("dhcp-churn", 0, user, in_row(truth[user]["nets"]["4"][0]))
    for _ in range(500):
        add("service-cloud", 0, rng.choice(services), cloud())
    for _ in range(500):
        user = rng.choice(simulated)
        new_home = rng.randrange(len(rows4))
        add("moved-house", 0, user, in_row(new_home), learn=1)
        add("moved-house-after", 0, user, in_row(new_home))
    for k in range(500):
        add("new-account-home", 0, f"newhome_{k}", in_row(rng.randrange(len(rows4))))

    # Near the victim: 16 to 4,096 routed networks from its home or work (the same
    # region of the table, log-uniformly), and as near as its own drift (2 to 16).
    bands = {"near-victim-16-64": (16, 64), "near-victim-64-512": (64, 512), "near-victim-512-4096": (512, 4096)}
    for name, low, high in (("near-victim", 16, 4096), ("adjacent-victim", 2, 16)):
        for _ in range(2000):
            user = rng.choice(simulated)
            centre = truth[user]["nets"]["4"][rng.randrange(2)]
            offset = int(round(math.exp(rng.uniform(math.log(low), math.log(high)))))
            add(name, 1, user, in_row(centre + offset * rng.choice((-1, 1))))
            if name == "near-victim":
                # The same login again, named by its distance, to show where recall is lost.
                band = next(b for b, (lo, hi) in bands.items() if lo <= offset <= hi)
                rows.append((band,) + rows[-1][1:])
    same_as = []
    for user in simulated:
        home = truth[user]["nets"]["4"][0]
        candidates = [i for i in by_asn[rows4[home][2]] if abs(i - home) > 1]
        if candidates:
            same_as.append((user, candidates))
    for _ in range(2000):
        user, candidates = rng.choice(same_as)
        add("same-as", 1, user, in_row(rng.choice(candidates)))
    for _ in range(1000):
        add("compromised-vpn", 1, rng.choice(non_vpn), rng.choice(vpn))
    for _ in range(50):
        ip = in_row(rng.randrange(len(rows4)))
        for target in rng.sample(simulated, 8):
            add("stuffing-failures", -1, target, ip, outcome="failure")
        add("stuffing", 1, rng.choice(simulated), ip)
    for _ in range(20):
        row = rng.randrange(len(rows4))
        ips = [in_row(row) for _ in range(3)]
        for ip in ips:
            for target in rng.sample(simulated, 10):
                add("spraying-failures", -1, target, ip, outcome="failure")
        add("spraying", 1, rng.choice(simulated), rng.choice(ips))

    with open(os.path.join(args.out, "scenarios.csv"), "w") as f:
        for row in rows:
            f.write(",".join(str(x) for x in row) + "\n")
    summary = {"seed": args.seed, "history": len(history), "users": len(users), "vpn_users": len(vpn_users),
               "office_users": len(office_users), "mobile_users": len(mobile_users), "vpn_asn": vpn_asn,
               "carrier_asn": carrier_asn, "cloud_asn": cloud_asn, "rows": len(rows)}
    with open(os.path.join(args.out, "manifest.json"), "w") as f:
        json.dump(summary, f, indent=2)
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
