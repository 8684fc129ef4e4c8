"""etcher's quick start: persistent dicts and lists in a SQLite file.

Run it from any directory; it writes ``state.db`` in a fresh temporary folder
(pass a path to use your own file instead) and prints each step::

    python examples/quickstart.py [path/to/state.db]
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from etcher import DB


def main(path: Path) -> None:
    print(f"opening {path}")
    with DB(path) as db:
        db["person"] = {"id": "123", "name": "Alice", "tags": ["a", "b"]}
        print('stored   db["person"] = {"id": "123", "name": "Alice", "tags": ["a", "b"]}')

        # Field and index access read just what they need from the store.
        assert db["person"]["name"] == "Alice"
        assert db["person"]["tags"][0] == "a"
        print(f'read     db["person"]["name"] -> {db["person"]["name"]!r}')
        print(f'read     db["person"]["tags"][0] -> {db["person"]["tags"][0]!r}')

        # Nested containers are stored by reference: edit them in place.
        db["person"]["tags"].append("c")
        print('appended db["person"]["tags"].append("c")')

        # A summary starts with '@': it is persisted data, not a plain dict.
        print(f'summary  print(db["person"]) -> {db["person"]}')

        # Calling a container materializes it into plain Python data.
        plain = db["person"]()
        assert plain == {"id": "123", "name": "Alice", "tags": ["a", "b", "c"]}
        print(f'plain    db["person"]() -> {plain!r}')

    # Everything is in the file: a new DB object sees the same data.
    with DB(path) as db:
        assert db["person"]["tags"]() == ["a", "b", "c"]
        print(f'reopened db["person"]["tags"]() -> {db["person"]["tags"]()!r}')
    print("quick start OK")


if __name__ == "__main__":
    if len(sys.argv) > 1:
        main(Path(sys.argv[1]))
    else:
        with tempfile.TemporaryDirectory(prefix="etcher-quickstart-") as folder:
            main(Path(folder) / "state.db")
