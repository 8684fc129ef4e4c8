"""A small user script that uses etcher as documented; mypy --strict must accept it."""

from __future__ import annotations

from etcher import DB, RD, RL
from etcher._transactions import Transactor
from etcher.types import Plain, Storable, Stored


def main(path: str) -> None:
    db = DB(path)
    tags: list[str] = ["a", "b"]
    db["person"] = {"id": "123", "name": "Alice", "tags": tags, "age": 30, "score": 1.5}
    db["empty"] = None
    db["task"] = {"owner": db["person"], "status": "waiting", 1: "int keys too"}
    nested: dict[str, list[dict[str, int]]] = {"rows": [{"x": 1}]}
    db["nested"] = nested
    db.update({"a": 1}, b=[True, None])

    person: Stored = db["person"]
    assert isinstance(person, RD)
    name = person["name"]
    assert isinstance(name, str)
    print(name.upper())
    stored_tags = person["tags"]
    assert isinstance(stored_tags, RL)
    stored_tags.append("c")
    stored_tags.extend(["d", "e"])
    stored_tags.insert(0, {"any": ["json", 1]})
    last: Plain = stored_tags.pop()
    print(last, len(stored_tags), stored_tags[0], stored_tags[1:])
    snapshot: dict[str | int, Plain] = person()
    print(snapshot["name"], person.get("missing", 0), person.uid, person.refcount)
    for key, value in person.items():
        print(key, value)
    removed: Plain = db.pop("empty")
    print(removed, db.get("nope"), list(db.keys()))

    with db.transaction() as t:
        counter = t.get("n", 0)
        assert isinstance(counter, int)
        t["n"] = counter + 1

    def bump(t: Transactor) -> int:
        value = t.get("n", 0)
        assert isinstance(value, int)
        t["n"] = value + 1
        return value + 1

    n: int = db.transact(bump)
    fresh = RD(db, {"made": "unlinked"})
    db["fresh"] = fresh
    items = RL(db, [1, 2, 3])
    db["items"] = items
    doc: Storable = {"k": [1, "two", 3.0, None, {"deep": [False]}]}
    db["value"] = doc
    print(n, repr(db))
    db.close()
