"""Container conformance: summaries print as documented (:class:`PrintingConformance`)."""

from __future__ import annotations

import math
from typing import Any

from etcher._db import DB
from etcher.testing.containers._common import (
    ContainerFixtures,
    DBFactory,
)

# --------------------------------------------------------------------------- printing


class PrintingConformance(ContainerFixtures):
    """Summaries: ``@{...}``/``@[...]``, scalars as reprs, nested nodes as unquoted tokens."""

    def test_user_guide_summary(self, db: DB) -> None:
        db["person"] = {"id": "123", "name": "Alice"}
        db["task"] = {"owner": db["person"], "status": "waiting"}
        uid = db["person"].uid
        assert str(db["task"]) == f"@{{'owner': {uid}, 'status': 'waiting'}}"
        assert repr(db["task"]) == str(db["task"])

    def test_link_field_summary(self, db: DB, db_factory: DBFactory) -> None:
        db["person"] = {"id": "123", "name": "Alice"}
        db["task"] = {"owner": db["person"], "status": "waiting"}
        linked = db_factory(db.prefix, link_field="id")
        assert str(linked["task"]) == "@{'owner': 123, 'status': 'waiting'}"
        assert str(db["task"]) != str(linked["task"]), "link_field only affects printing"
        assert linked["task"]() == db["task"]()

    def test_star_shorthand(self, db: DB, db_factory: DBFactory) -> None:
        linked = db_factory(db.prefix, link_field="id")
        linked["alice"] = {"id": "alice"}
        assert str(linked) == "@{'alice': *}"
        linked["bob"] = {"id": "robert"}
        linked[5] = {"id": 5}
        linked["6"] = {"id": 6}
        linked["n"] = {"id": 7}
        linked["noid"] = {"name": "x"}
        uid = linked["noid"].uid
        assert str(linked) == (
            f"@{{'alice': *, 'bob': robert, 5: *, '6': 6, 'n': 7, 'noid': {uid}}}"
        )

    def test_token_like_strings_print_quoted(self, db: DB) -> None:
        db["child"] = {"a": 1}
        uid = db["child"].uid
        db["s"] = {"looks": uid, "star": "*", "at": "@{}", "link": db["child"]}
        assert str(db["s"]) == f"@{{'looks': {uid!r}, 'star': '*', 'at': '@{{}}', 'link': {uid}}}"

    def test_scalars_print_as_reprs(self, db: DB) -> None:
        values: list[Any] = [1, -0.0, math.inf, math.nan, None, True, "q'uote", 2**70, "", "\x00"]
        db["l"] = values
        assert str(db["l"]) == "@[" + ", ".join(repr(v) for v in values) + "]"
        db["d"] = {1: "int", "1": "str"}
        assert str(db["d"]) == "@{1: 'int', '1': 'str'}"
        db["e"] = {}
        db["f"] = []
        assert str(db["e"]) == "@{}" and str(db["f"]) == "@[]"

    def test_summaries_never_expand_children(self, db: DB) -> None:
        db["x"] = {"inner": {"secret": "not shown"}, "list": [[1]]}
        x = db["x"]
        text = str(x)
        assert "secret" not in text and "not shown" not in text
        assert text == f"@{{'inner': {x['inner'].uid}, 'list': {x['list'].uid}}}"
        assert str(x["list"]) == f"@[{x['list'][0].uid}]"

    def test_self_containing_structures_print_without_recursion(self, db: DB) -> None:
        lst: list[Any] = [1]
        lst.append(lst)
        db["l"] = lst
        rl = db["l"]
        assert str(rl) == f"@[1, {rl.uid}]"
        d: dict[str, Any] = {}
        d["me"] = d
        db["d"] = d
        assert str(db["d"]) == f"@{{'me': {db['d'].uid}}}"

    def test_list_children_use_link_field(self, db: DB, db_factory: DBFactory) -> None:
        linked = db_factory(db.prefix, link_field="id")
        linked["people"] = [{"id": "alice-42"}, {"id": 3}, [1], {"x": 1}]
        people = linked["people"]
        assert str(people) == f"@[alice-42, 3, {people[2].uid}, {people[3].uid}]"

    def test_db_prints_its_root(self, db: DB) -> None:
        db["a"] = 1
        db["b"] = [2]
        assert str(db) == f"@{{'a': 1, 'b': {db['b'].uid}}}"
        assert repr(db).startswith("<DB ") and repr(db.prefix) in repr(db)

    def test_materialized_values_print_plainly(self, db: DB) -> None:
        db["person"] = {"id": "123", "tags": ["a"]}
        assert str(db["person"]).startswith("@")
        assert str(db["person"]()) == "{'id': '123', 'tags': ['a']}"
