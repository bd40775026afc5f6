#!/usr/bin/env python3
"""What a conditional score such as IP Insights' dot_product can reach on simulate.py data.

  python3 ../shared/bench/simulate.py --users 10000 --seed 1 --truth --out /tmp/sim
  cut -d, -f1,2 /tmp/sim/test.csv | ipsight score --model model.ipsight > scores.jsonl
  python3 docs/research/dot-product-bounds.py /tmp/sim [scores.jsonl]

Every test login within 40 routed networks of the user's home or work network (the
simulator's hidden parameters, from truth.jsonl) is ranked as normal; the others get
an idealised score (table below). With a scores file, also where its lowest 1% of
normal logins lie and how its attack scores vary within and between users.
Python 3 standard library only; about a minute.
"""
import bisect
import collections
import gzip
import ipaddress
import json
import math
import os
import random
import statistics
import sys

SHARED = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "..", "shared")
sys.path.insert(0, os.path.join(SHARED, "bench"))
import evaluate  # noqa: E402  (the benchmark's own AUC and recall)

NEAR_ROWS = 40
TABLE = os.path.join(SHARED, "data", "ipasn.tsv.gz")


def load_rows(path):
    firsts, sizes = [], []
    with gzip.open(path, "rt") as f:
        for line in f:
            if line.startswith("#") or ":" in line:
                continue
            first, last, _ = line.split("\t")
            a, b = int(ipaddress.IPv4Address(first)), int(ipaddress.IPv4Address(last))
            firsts.append(a)
            sizes.append(b - a + 1)
    return firsts, sizes


def recalls_and_auc(rows, score):
    """AUC and recall at 1% and 0.1% FPR, computed as evaluate.py computes them."""
    labels = [r["label"] for r in rows]
    anomaly = [-score(r) for r in rows]
    return (evaluate.roc_auc(labels, anomaly), evaluate.recall_at_fpr(labels, anomaly, 0.01),
            evaluate.recall_at_fpr(labels, anomaly, 0.001))


def main():
    data = sys.argv[1]
    firsts, sizes = load_rows(TABLE)
    n_rows = len(firsts)
    truth = {}
    with open(os.path.join(data, "truth.jsonl")) as f:
        for line in f:
            t = json.loads(line)
            truth[t["user"]] = t

    def placement(user, ip):
        row = bisect.bisect_right(firsts, int(ipaddress.IPv4Address(ip))) - 1
        home, work = truth[user]["nets"]["4"]
        dist = min(min(abs(row - c), n_rows - abs(row - c)) for c in (home, work))
        return row, dist

    # The history as a detector sees it: logins and logins far from home and work.
    logins, far_logins = collections.Counter(), collections.Counter()
    with open(os.path.join(data, "train.csv")) as f:
        for line in f:
            user, ip = line.rstrip().split(",")
            logins[user] += 1
            far_logins[user] += placement(user, ip)[1] > NEAR_ROWS

    rows = []
    with open(os.path.join(data, "test.csv")) as f:
        for line in f:
            user, ip, label = line.rstrip().split(",")
            row, dist = placement(user, ip)
            t = truth[user]
            rows.append({"user": user, "label": int(label), "near": dist <= NEAR_ROWS, "size": sizes[row],
                         "travel": t["p_travel"], "activity": t["num_events"],
                         # Beta(1.11, 32.7): the prior ipsight fits to the travel rates (seed 1).
                         "posterior": (far_logins[user] + 1.11) / (logins[user] + 32.7)})

    tiebreak = random.Random(1)

    def far(f):
        return lambda r: 1e9 if r["near"] else f(r)

    print("| score for a login from an unrelated network | AUC | R@1% | R@0.1% |")
    print("|---|---|---|---|")
    for name, f in [
        # (ties broken at random, as any detector that ignores the user would)
        ("the same for every user", lambda r: tiebreak.random()),
        ("exact IP Insights log odds, travel rate from the history", lambda r: math.log(r["posterior"]) - math.log(r["size"])),
        ("exact IP Insights log odds, true travel rate", lambda r: math.log(r["travel"]) - math.log(r["size"])),
        ("true travel rate, no density term", lambda r: math.log(r["travel"])),
        ("travel rate from the history, no density term", lambda r: math.log(r["posterior"])),
        ("true travel rate x true activity", lambda r: math.log(r["travel"] * r["activity"])),
    ]:
        auc, r1, r01 = recalls_and_auc(rows, far(f))
        print(f"| {name} | {auc:.4f} | {r1:.3f} | {r01:.3f} |")

    if len(sys.argv) > 2:
        scores = evaluate.read_scores(sys.argv[2], "dot_product")
        for r, s in zip(rows, scores):
            r["score"] = s
        auc, r1, r01 = recalls_and_auc(rows, lambda r: r["score"])
        print(f"| {sys.argv[2]} | {auc:.4f} | {r1:.3f} | {r01:.3f} |")
        normal = sorted((r for r in rows if r["label"] == 0), key=lambda r: r["score"])
        lowest = normal[: len(normal) // 100]
        print(f"lowest 1% of normal logins: {sum(not r['near'] for r in lowest)} of {len(lowest)} far from home and work")
        by_user = collections.defaultdict(list)
        for r in rows:
            if r["label"] == 1:
                by_user[r["user"]].append(r["score"])
        every = [s for v in by_user.values() for s in v]
        repeated = [v for v in by_user.values() if len(v) > 1]
        within = sum(sum((s - statistics.mean(v)) ** 2 for s in v) for v in repeated) / sum(len(v) for v in repeated)
        total = statistics.pvariance(every)
        print(f"attack scores: variance {total:.2f}, within a user {within:.2f}, between users {total - within:.2f}")


if __name__ == "__main__":
    main()
