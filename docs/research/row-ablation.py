#!/usr/bin/env python3
"""Which rows of the IP table make an IPv4 model's scores of unrelated addresses vary by user.

  python3 docs/research/row-ablation.py model.ipsight /tmp/sim/test.csv [ROWS ...]

Reads the model file (one residual layer, the default layout: IPv4 /8 /12 /16 /20
/24 prefix rows, four byte rows and, in models that have it, the family row shared
by every IPv4 address) and gets entity embeddings from
`ipsight embed`. It then:
1. scores 200 users × 300 attack addresses of the test file and splits the score's
   variance into user, address and user × address parts; then again with each kind
   of row replaced by its mean over the 300 addresses;
2. with ROWS (comma-separated kinds: 8 12 16 20 24 b0 b1 b2 b3), scores the whole
   test file with those kinds of rows flattened the same way, and prints AUC and
   recall at 1% and 0.1% false positives (`../shared/bench/evaluate.py`'s figures).
This changes a trained model after the fact, to locate the noise; it is not a
way to train. Needs numpy.
"""
import ipaddress
import json
import os
import subprocess
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "..", "shared", "bench"))
import evaluate  # noqa: E402

KINDS = ["8", "12", "16", "20", "24", "b0", "b1", "b2", "b3"]
M64 = (1 << 64) - 1


def load(path):
    raw = open(path, "rb").read()
    length = int.from_bytes(raw[12:16], "little")
    header = dict(line.split("=", 1) for line in raw[16:16 + length].decode().splitlines())
    if header.get("ipv4_prefixes") != "8,12,16,20,24" or header.get("num_ip_encoder_layers") != "1":
        sys.exit(f"{path}: this script reads models with the default layout and one encoder layer")
    offset = (16 + length + 63) // 64 * 64
    tensors = {}
    for item in header["tensors"].split(","):
        name, count = item.split(":")
        tensors[name] = np.frombuffer(raw, dtype="<f4", count=int(count), offset=offset)
        offset += 4 * int(count)
    d = int(header["vector_dim"])
    family = int(header.get("family_rows", "0"))   # how many times the family row counts
    prior = header.get("activity_prior") == "1"    # the last dimension is the entity's activity prior
    return (tensors["ip"].reshape(-1, d), tensors["w0"].reshape(d, d), tensors["b0"], int(header["ip_buckets"]), family,
            prior)


def mix(x):  # StableHash.mix (splitmix64's finaliser)
    z = (x + 0x9E3779B97F4A7C15) & M64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & M64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & M64
    return z ^ (z >> 31)


def token_rows(ip, buckets, family):  # IPEncoderLayout.tokens for IPv4, the family rows last here
    v = int(ipaddress.IPv4Address(ip))
    rows = [mix((v >> (32 - n)) ^ (n << 40) ^ 0x4000000000000000) & (buckets - 1) for n in (8, 12, 16, 20, 24)]
    rows += [buckets + (12 + k) * 256 + ((v >> (24 - 8 * k)) & 255) for k in range(4)]
    return rows + [buckets + 16 * 256] * family


def embeddings(binary, model, users):
    out = subprocess.run([binary, "embed", "--model", model, "--entities", "-"], input="\n".join(users) + "\n",
                         capture_output=True, text=True, check=True).stdout
    return np.array([json.loads(line)["entity_embedding"] for line in out.splitlines()])


def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    model, test = sys.argv[1], sys.argv[2]
    binary = os.environ.get("IPSIGHT", os.path.join(HERE, "..", "..", ".build", "release", "ipsight"))
    table, w, b, buckets, family, prior = load(model)
    rows = [line.strip().split(",") for line in open(test)]

    def encode(x_rows):  # n × rows × d table rows → n × d IP embeddings
        x = x_rows.sum(1)
        y = x + np.tanh(x @ w.T + b)
        if prior:
            y[:, -1] = 1
        return y

    # 1. Variance of attack scores on a users × addresses grid.
    attacks = [r for r in rows if r[2] == "1"]
    users = list(dict.fromkeys(r[0] for r in attacks))[:200]
    ips = list(dict.fromkeys(r[1] for r in attacks))[:300]
    e = embeddings(binary, model, users)
    grid = table[np.array([token_rows(ip, buckets, family) for ip in ips])]

    def split(r):
        s = e @ encode(r).T
        g = s.mean()
        user, address = s.mean(1) - g, s.mean(0) - g
        inter = s - g - user[:, None] - address[None, :]
        return f"total {s.var():.2f}  user {user.var():.2f}  address {address.var():.2f}  user × address {inter.var():.2f}"

    print(f"{len(users)} users × {len(ips)} attack addresses, all rows:  {split(grid)}")
    for k, kind in enumerate(KINDS):
        flat = grid.copy()
        flat[:, k, :] = grid[:, k, :].mean(0)
        print(f"  row {kind:>3} flattened:  {split(flat)}")

    # 2. The whole test file with some kinds of rows flattened.
    if len(sys.argv) > 3:
        names = list(dict.fromkeys(r[0] for r in rows))
        index = {u: i for i, u in enumerate(names)}
        e_all = embeddings(binary, model, names)[[index[r[0]] for r in rows]]
        tokens = np.array([token_rows(r[1], buckets, family) for r in rows])
        labels = [int(r[2]) for r in rows]
        for spec in ["none"] + sys.argv[3:]:
            x_rows = table[tokens]
            for kind in ([] if spec == "none" else spec.split(",")):
                k = KINDS.index(kind)
                x_rows[:, k, :] = table[tokens[:, k]].mean(0)
            s = (e_all * encode(x_rows)).sum(1)
            attack_scores = (-s).tolist()   # higher = more anomalous, as evaluate.py expects
            auc = evaluate.roc_auc(labels, attack_scores)
            r1, r01 = (evaluate.recall_at_fpr(labels, attack_scores, f) for f in (0.01, 0.001))
            print(f"test file, flattened {spec:>12}: AUC {auc:.4f}  R@1% {r1:.3f}  R@0.1% {r01:.3f}")


if __name__ == "__main__":
    main()
