"""Core commits edits of small, fully read hashes whole where the backend takes that.

``capabilities.whole_hash_writes`` (``etcher.spec.WholeHashWrites``): a unit that
read a node header whole and changed a back-reference hands the backend the
header's new content (``hreplace``) instead of field edits; a backend without
the capability keeps getting field edits, and both end in the same store.
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

from etcher import DB
from etcher.spec import Capabilities
from etcher.testing.reference import ReferenceBackend, ReferencePipeline


class Spy:
    """Which write commands the units sent, per backend class."""

    calls: ClassVar[list[tuple[str, bytes]]] = []


class SpyPipeline(ReferencePipeline):
    def __getattr__(self, command: str) -> Any:
        call = super().__getattr__(command)
        if command in ("hreplace", "hset", "hdel"):

            def spied(*args: Any, **kwargs: Any) -> Any:
                Spy.calls.append((command, str(args[0]).encode()))
                return call(*args, **kwargs)

            return spied
        return call


class WholeBackend(ReferenceBackend):
    pipeline_class = SpyPipeline


class FieldBackend(ReferenceBackend):
    pipeline_class = SpyPipeline
    capabilities = dataclasses.replace(ReferenceBackend.capabilities, whole_hash_writes=False)


def _work(backend: ReferenceBackend) -> tuple[list[tuple[str, bytes]], Any, str]:
    db = DB(backend)
    db["kids"] = {f"k{i}": {"n": i} for i in range(4)}
    kids = [db["kids"][f"k{i}"] for i in range(4)]
    db["p1"] = {"kids": kids[:3]}
    db["p2"] = {"kids": kids[1:]}
    Spy.calls.clear()
    db["p1"] = {"kids": kids[2:]}  # k0, k1 lose a parent, k3 gains one
    del db["p2"]
    calls = list(Spy.calls)
    report = str(db.check())
    return calls, db(), report


def test_header_edits_go_whole_with_the_capability_and_as_fields_without() -> None:
    assert ReferenceBackend.capabilities.whole_hash_writes is True
    whole, state_w, report_w = _work(WholeBackend())
    fields, state_f, report_f = _work(FieldBackend())
    assert state_w == state_f
    assert report_w.endswith("OK") and report_f.endswith("OK")
    headers_w = [k for c, k in whole if c == "hreplace" and b":r:" in k]
    assert headers_w, whole  # the kids' headers went whole
    assert not [c for c, k in whole if c == "hdel" and b":r:" in k]
    assert not [c for c, _k in fields if c == "hreplace"]
    assert [c for c, k in fields if c == "hdel" and b":r:" in k]


def test_capabilities_default_to_field_edits() -> None:
    assert Capabilities().whole_hash_writes is False


def test_racing_replacements_keep_back_references_exact() -> None:
    """Whole headers are computed from what a unit read: on a watching backend a header
    changed meanwhile must make the unit retry, never overwrite the other unit's link."""
    import threading
    import uuid

    from etcher.testing.reference import drop_store, named_store

    name = f"whole-race-{uuid.uuid4().hex}"
    try:
        store = named_store(name)
        setup = DB(ReferenceBackend(store))
        setup["kids"] = {f"k{i}": {"n": i} for i in range(6)}
        start = threading.Barrier(3)
        errors: list[BaseException] = []

        def work(t: int) -> None:
            try:
                db = DB(ReferenceBackend(store))
                kids = [db["kids"][f"k{i}"] for i in range(6)]
                start.wait()
                for r in range(40):
                    db[f"t{t}p{r % 4}"] = {"kids": kids[(r + t) % 3 :][:4]}
                    if r % 5 == 4:
                        del db[f"t{t}p{r % 4}"]
            except BaseException as exc:  # reported by the main thread
                errors.append(exc)

        threads = [threading.Thread(target=work, args=(t,)) for t in range(3)]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        assert not errors, errors
        db = DB(ReferenceBackend(store))
        assert str(db.check()).endswith("OK"), db.check()
        for i in range(6):
            kid = db["kids"][f"k{i}"]
            holders = {db[k]["kids"].uid: 1 for k in db if k != "kids" and kid in db[k]["kids"]}
            assert kid.backrefs == {db["kids"].uid: 1, **holders}
    finally:
        drop_store(name)
