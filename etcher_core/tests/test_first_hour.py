"""Small things a newcomer notices: reprs, the import progress bar, ``help(DB)``."""

from __future__ import annotations

import pydoc
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from etcher import DB
from etcher._jsonio import import_json
from etcher._summary import MAX_CHARS


@pytest.fixture
def db(store_url: Callable[[str], str]) -> Iterator[DB]:
    store = DB(store_url("first"), prefix="first")
    yield store
    store.close()


def test_repr_of_a_db_names_its_store_and_namespace(db: DB, tmp_path: Any) -> None:
    db["a"] = 1
    text = repr(db)
    assert "'first'" in text
    assert "first-" in text  # the store's URL or path (store_url names it "first-<uuid>")
    assert str(db) == "@{'a': 1}"  # print(db) still shows the summary
    db["d"] = {"x": 1}
    nested = db["d"]
    db.close()
    assert "closed" in repr(db)
    assert repr(nested) == f"<RD {nested.uid} of a closed DB>"  # printing never raises


def test_repr_of_a_handle_caps_long_strings(db: DB) -> None:
    long = "x" * 1_000_000
    db["doc"] = {"body": long, long: 1, "short": "ok"}
    db["items"] = [long, "ok"]
    for handle in (db["doc"], db["items"]):
        text = repr(handle)
        assert len(text) < 4 * MAX_CHARS + 200, len(text)
        assert "(+999900 chars)" in text and "'ok'" in text


class Recorder:
    def __init__(self) -> None:
        self.stages: list[tuple[str, int]] = []

    def stage(self, name: str, total: int | None) -> None:
        self.stages.append((name, 0))

    def advance(self, n: int) -> None:
        name, count = self.stages[-1]
        self.stages[-1] = (name, count + n)


@pytest.mark.parametrize("where", [("doc",), ()])
def test_import_counts_while_it_stores(db: DB, where: tuple[str, ...]) -> None:
    doc = "{" + ", ".join(f'"k{i}": {{"i": {i}, "tags": [{i}]}}' for i in range(1000)) + "}"
    sink = Recorder()
    import_json(db, where, doc, progress=sink)
    stored = dict(sink.stages)["storing"]
    assert stored >= 2000, sink.stages  # 1000 dicts and 1000 lists were stored
    target = db["doc"] if where else db
    assert target["k999"]["tags"][0] == 999


def test_help_of_db_explains_retry_and_redis_kwargs() -> None:
    text = pydoc.render_doc(DB, renderer=pydoc.plaintext)
    for words in ("retry", "RetryPolicy", "ConflictTimeout", "redis_kwargs", "serverconfig"):
        assert words in text, words
    assert ":param retry:" in (DB.__doc__ or "")
    assert ":param redis_kwargs:" in (DB.__doc__ or "")
