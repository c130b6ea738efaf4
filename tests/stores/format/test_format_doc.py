"""docs/FORMAT.md is enough: read and check a store with json, hashlib and numpy only."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np

import rldata.stores as stores
from rldata.testing.ted_factory import ted_marked


def read_like_another_team(store) -> dict:
    """Sections 3-7 of FORMAT.md, implemented without rldata."""
    m = json.loads(Path(f"{store}/rldata.json").read_text())
    assert m["format"] == "rldata" and m["format_version"].split(".")[0] == "1"
    start, end, cap = m["written"] - m["length"], m["written"], m["capacity"]
    pos = np.arange(start, end) % cap if cap else np.arange(start, end)
    rows = end if cap is None else min(end, cap)
    once = m["payload"].get("next_stored_once", [])  # format 1.2: observations stored once
    full = {}
    for key, e in m["schema"].items():
        if key.startswith("next.") and key[len("next.") :] in once:
            continue
        dt = np.dtype(e["dtype"]).newbyteorder("<")
        path = f"{store}/{m['payload']['files'][key]}"
        full[key] = np.memmap(path, dtype=dt, mode="r", shape=(rows, *e["shape"]))
    for k in once:  # next.k[t] = k[t + 1], except the (position, row) records of next.k
        e = m["schema"][f"next.{k}"]
        dt = np.dtype(e["dtype"]).newbyteorder("<")
        rec = np.dtype([("pos", "<i8"), ("row", dt, tuple(e["shape"]))])
        n = m["payload"]["next_once_rows"][k]
        recs = np.fromfile(f"{store}/{m['payload']['files'][f'next.{k}']}", dtype=rec, count=n)
        nxt = np.zeros_like(np.asarray(full[k]))
        nxt[:-1] = full[k][1:]
        nxt[recs["pos"]] = recs["row"]
        full[f"next.{k}"] = nxt
    chunks = m["checksums"]["chunks"]
    log = m["checksums"].get("chunk_log")
    if log is not None:  # 1.6 (section 7): full chunks' raw digests in the sidecar, the tail here
        side = Path(f"{store}/{log['path']}").read_bytes()[: log["bytes"]] if log["bytes"] else b""
        assert hashlib.sha256(side).hexdigest() == log["sha256"] and chunks == {}
        keys, c_rows = log["keys"], m["checksums"]["chunk_rows"]
        for j, key in enumerate(keys):
            chunks[key] = [
                [c_rows, side[(i * len(keys) + j) * 32 :][:32].hex()] for i in range(log["chunks"])
            ]
            if log["tail"]:
                chunks[key].append([log["tail"]["rows"], log["tail"]["sha256"][key]])
    cols = {}
    for key, arr in full.items():
        cols[key] = np.asarray(arr[pos])
        raw = np.ascontiguousarray(arr).reshape(-1).view(np.uint8)
        row_bytes = raw.size // max(rows, 1)
        c_rows = m["checksums"]["chunk_rows"]
        for c, (n, digest) in enumerate(chunks[key]):
            a = c * c_rows * row_bytes
            assert hashlib.sha256(raw[a : a + n * row_bytes].tobytes()).hexdigest() == digest
    ref = m["episodes"]
    ep_bytes = Path(f"{store}/{ref['path']}").read_bytes()
    if "bytes" in ref:  # 1.4: the appended log, its committed bytes, one line a commit
        ep_bytes = ep_bytes[: ref["bytes"]]
    assert hashlib.sha256(ep_bytes).hexdigest() == ref["sha256"]
    if "bytes" in ref:
        segs = {c: [] for c in ("traj_id", "start", "length")}
        for line in ep_bytes.decode().splitlines():
            part = json.loads(line)
            for c, v in segs.items():
                v[part["from"] :] = part[c]
    else:
        segs = json.loads(ep_bytes)
    blocks = m["checksums"].get("blocks")
    if blocks is not None:  # 1.4 (section 7a): each full block's digest, and the tail's
        side = Path(f"{store}/{blocks['path']}").read_bytes()[
            : blocks["blocks"] * 32 * len(blocks["keys"])
        ]
        assert hashlib.sha256(side).hexdigest() == blocks["sha256"]
        b = blocks["block_rows"]
        for j, key in enumerate(blocks["keys"]):
            raw = np.ascontiguousarray(full[key]).reshape(-1).view(np.uint8)
            r = raw.size // max(rows, 1)
            for i in range(blocks["blocks"]):
                want = side[(i * len(blocks["keys"]) + j) * 32 :][:32]
                assert hashlib.sha256(raw[i * b * r : (i + 1) * b * r].tobytes()).digest() == want
            if blocks["tail"]:
                n = blocks["blocks"] * b
                got = hashlib.sha256(raw[n * r : rows * r].tobytes()).hexdigest()
                assert got == blocks["tail"]["sha256"][key]
    episodes = {}
    for t, s, n in zip(segs["traj_id"], segs["start"], segs["length"]):
        a, b = max(s, start), min(s + n, end)
        if a < b:
            episodes.setdefault(t, []).extend(range(a, b))
    return {"cols": cols, "episodes": episodes, "start": start}


def test_a_wrapped_ring_reads_without_rldata(tmp_path):
    with stores.create(tmp_path / "s", capacity=40) as w:
        for s in range(0, 95, 19):
            w.append(ted_marked(s, 19))
    got = read_like_another_team(tmp_path / "s")
    assert got["start"] == 55
    assert got["cols"]["observation"][:, 0].tolist() == list(range(55, 95))
    assert got["cols"]["collector.traj_ids"].tolist() == [s // 10 for s in range(55, 95)]
    assert got["episodes"][5] == list(range(55, 60))  # clipped at the readable start
    nxt, obs = got["cols"]["next.observation"], got["cols"]["observation"]
    assert (nxt[:-1] == obs[1:]).all()  # TED link holds within the stored trajectories
    done = got["cols"]["next.done"]
    assert (done == (got["cols"]["next.terminated"] | got["cols"]["next.truncated"])).all()


def test_an_append_only_dataset_reads_without_rldata(tmp_path):
    with stores.create(tmp_path / "s") as w:
        w.append(ted_marked(0, 33))
    got = read_like_another_team(tmp_path / "s")
    assert got["cols"]["next.reward"][:, 0].tolist() == list(range(33))
    assert sorted(got["episodes"]) == [0, 1, 2, 3]
    r = stores.open(tmp_path / "s")
    assert (
        got["cols"]["next.observation"] == r.get(r.readable())["next", "observation"].numpy()
    ).all()


def test_block_digests_and_the_episode_log_read_without_rldata(tmp_path):
    with stores.create(tmp_path / "s") as w:
        for a in range(0, 2500, 700):  # several commits: log lines, full blocks and a tail
            w.append(ted_marked(a, min(700, 2500 - a)))
            w.commit()
    m = json.loads((tmp_path / "s" / "rldata.json").read_text())
    assert m["checksums"]["blocks"]["blocks"] == 2 and m["episodes"]["path"] == "episodes.log"
    got = read_like_another_team(tmp_path / "s")  # asserts every digest on the way
    assert got["cols"]["next.reward"][:, 0].tolist() == list(range(2500))
    with stores.open(tmp_path / "s") as r:
        assert sorted(got["episodes"]) == r.episodes()["traj_id"].tolist()


def test_the_statistics_log_reads_without_rldata(tmp_path):
    with stores.create(tmp_path / "s") as w:
        for k in range(3):
            w.append(ted_marked(k * 15, 15))
            w.commit()
    with (tmp_path / "s" / "stats.log").open("ab") as f:
        f.write(b'{"7": ')  # a crashed writer's half line, past the committed bytes
    m = json.loads((tmp_path / "s" / "rldata.json").read_text())
    ref = m["stats"]  # 1.5 (section 8b): the appended log, its committed bytes
    data = (tmp_path / "s" / ref["path"]).read_bytes()[: ref["bytes"]]
    assert hashlib.sha256(data).hexdigest() == ref["sha256"]
    count, total = 0, 0.0
    for line in data.decode().splitlines():  # one commit's records a line; they add up
        for record in json.loads(line).values():
            n, s, _sq, _lo, _hi = record["next.reward"]
            count, total = count + n, total + s[0]
    assert count == 45 and total == float(sum(range(45)))
    assert stores.open(tmp_path / "s").stats()["next.reward"]["mean"] == [total / count]


def test_the_chunk_sidecar_reads_without_rldata(tmp_path):
    with stores.create(tmp_path / "s") as w:
        w.append(ted_marked(0, 70_000))  # one full chunk of 65,536 rows, then a tail
        w.commit()
        w.append(ted_marked(70_000, 70_000))
    m = json.loads((tmp_path / "s" / "rldata.json").read_text())
    log = m["checksums"]["chunk_log"]  # 1.6 (section 7): raw digests appended in a sidecar
    assert (log["chunks"], log["tail"]["rows"]) == (2, 140_000 - 2 * 65_536)
    got = read_like_another_team(tmp_path / "s")  # asserts every chunk's digest on the way
    assert got["cols"]["next.reward"][:, 0].tolist() == list(range(140_000))
