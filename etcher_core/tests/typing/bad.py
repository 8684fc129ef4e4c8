"""Wrong calls a user could make; each line marked ``# E`` must be a mypy error."""

from __future__ import annotations

from etcher import DB, RD, RL


class Custom:
    pass


def main(path: str) -> None:
    db = DB(path)
    db["set"] = {1, 2}  # E
    db["bytes"] = b"raw"  # E
    db["object"] = Custom()  # E
    db["tuple"] = (1, 2)  # E
    db["deep"] = {"a": [1, {"b": {3, 4}}]}  # E
    db[("a", "b")] = 1  # E
    db.update({"x": {1}})  # E
    handle = db["person"]
    handle.apend(1)  # E
    assert isinstance(handle, RL)
    handle.apend(1)  # E
    handle.append(b"x")  # E
    handle.extend([{1, 2}])  # E
    popped = handle.pop()
    popped.upper()  # E
    rd = RD(db, {"a": {1}})  # E
    rd.setdefault("k", object())  # E
    rl = RL(db, [b"x"])  # E
    with db.transaction() as t:
        t.comit()  # E
        t["x"] = {1, 2}  # E
    print(rl)
