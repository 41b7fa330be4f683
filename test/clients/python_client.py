"""A vecwal client written the way a Python user would write one: Debian's msgpack and numpy,
urllib, random float32 vectors. It posts entries and batches as plain msgpack float arrays (float64
and, with use_single_float, float32) and as bin of little-endian float32 bytes, then reads the log
back as NDJSON and as msgpack and checks every value, bit for bit.

Usage: python3 python_client.py BASE_URL SEED COUNT. Prints one JSON line: what it sent and found.
"""
import json
import sys
import urllib.error
import urllib.request

import msgpack
import numpy as np

BASE, SEED, COUNT = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
rng = np.random.default_rng(SEED)

# msgpackr's typed-array extension, in which the msgpack recovery form sends vectors: one byte
# naming the array type (7: Float32Array), then the values, little-endian.
TYPED_ARRAY_EXT = 0x74
FLOAT32_ARRAY = 7


def random_text(lo, hi):
    alphabet = "abcXYZ019 _-/~\"\\\n\té日本語Ωжπ😀𝄞\u2028\u0085"
    return "".join(rng.choice(list(alphabet), size=int(rng.integers(lo, hi + 1))))


def random_vector():
    dims = int(rng.choice([1, 3, 128, 768, 4096]))
    # Random bits, then the non-finite ones replaced: subnormals, -0 and huge values all occur.
    bits = rng.integers(0, 2**32, size=dims, dtype=np.uint64).astype(np.uint32)
    vector = bits.view("<f4").copy()
    vector[~np.isfinite(vector)] = np.float32(1.5)
    return vector


def random_entry(form):
    op = str(rng.choice(["insert", "update", "delete"], p=[0.5, 0.3, 0.2]))
    entry = {"op": op, "id": random_text(1, 30)}
    sent = dict(entry)
    if op != "delete":
        vector = random_vector()
        if form == "bin":
            entry["vector"] = vector.astype("<f4").tobytes()
        else:
            # Python floats: packed as float64, or float32 with use_single_float; -0.0 stays a float.
            entry["vector"] = [float(v) for v in vector]
        sent["bits"] = [int(b) for b in vector.view("<u4")]
        if rng.random() < 0.6:
            entry["metadata"] = {random_text(1, 12): random_text(0, 20) for _ in range(int(rng.integers(0, 8)))}
            sent["metadata"] = entry["metadata"]
    # Keys in a random order, as any client may write them.
    keys = list(entry.keys())
    rng.shuffle(keys)
    return {k: entry[k] for k in keys}, sent


def post(path, body, form):
    # A bin vector is taken as little-endian float32 only when the content type says so.
    content_type = "application/msgpack; bin=float32le" if form == "bin" else "application/msgpack"
    request = urllib.request.Request(BASE + path, data=body, method="POST", headers={"content-type": content_type})
    try:
        with urllib.request.urlopen(request) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def pack(value, form):
    return msgpack.packb(value, use_bin_type=True, use_single_float=(form == "float32"))


FORMS = ["float64", "float32", "bin"]
sent_by_seq = {}
refused = []
for i in range(COUNT):
    form = FORMS[i % len(FORMS)]
    if rng.random() < 0.5:
        body, sent = random_entry(form)
        status, answer = post("/v1/entries", pack(body, form), form)
        entries = [sent]
    else:
        pairs = [random_entry(form) for _ in range(int(rng.integers(1, 20)))]
        status, answer = post("/v1/batch", pack({"entries": [b for b, _ in pairs]}, form), form)
        entries = [s for _, s in pairs]
    if status != 201:
        refused.append({"form": form, "status": status, "answer": answer})
        continue
    sent_by_seq[answer["seq"]] = {"form": form, "entries": entries}


def check(records, read_vector, name):
    problems = []
    for record in records:
        want = sent_by_seq.get(record["seq"])
        if want is None:
            problems.append(f"{name}: unexpected seq {record['seq']}")
            continue
        got = record["entries"] if record["op"] == "batch" else [record]
        for g, w in zip(got, want["entries"]):
            if g["op"] != w["op"] or g["id"] != w["id"]:
                problems.append(f"{name}: seq {record['seq']}: op or id differs")
            elif w["op"] != "delete":
                bits = [int(b) for b in read_vector(g["vector"]).view("<u4")]
                if bits != w["bits"]:
                    problems.append(f"{name}: seq {record['seq']}: vector differs ({want['form']})")
                if g.get("metadata") != w.get("metadata"):
                    problems.append(f"{name}: seq {record['seq']}: metadata differs")
        if len(got) != len(want["entries"]):
            problems.append(f"{name}: seq {record['seq']}: {len(got)} entries for {len(want['entries'])}")
    if len(records) != len(sent_by_seq):
        problems.append(f"{name}: {len(records)} records for {len(sent_by_seq)} sent")
    return problems


with urllib.request.urlopen(BASE + "/v1/recovery?after=0") as response:
    lines = [json.loads(line) for line in response.read().decode("utf-8").splitlines() if line]
problems = check(lines, lambda v: np.array(v, dtype="<f4"), "NDJSON")


def ext_hook(code, data):
    if code == TYPED_ARRAY_EXT and data[0] == FLOAT32_ARRAY:
        return np.frombuffer(data[1:], dtype="<f4")
    return msgpack.ExtType(code, data)


request = urllib.request.Request(BASE + "/v1/recovery?after=0", headers={"accept": "application/msgpack"})
with urllib.request.urlopen(request) as response:
    unpacker = msgpack.Unpacker(raw=False, ext_hook=ext_hook)
    unpacker.feed(response.read())
    records = list(unpacker)
problems += check(records, lambda v: v, "msgpack")

print(json.dumps({"sent": len(sent_by_seq), "refused": refused, "problems": problems[:20]}))
