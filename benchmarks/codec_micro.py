"""Microseconds per call of etcher's codec on typical tiny values (timeit, best of 5).

    python benchmarks/codec_micro.py            # prints one line per (function, value)
    python benchmarks/codec_micro.py --json out.json
    git show HEAD~1:etcher_core/src/etcher/_codec.py > /tmp/old_codec.py
    python benchmarks/codec_micro.py --against /tmp/old_codec.py   # old and new, interleaved

Values are what real documents hold: short strings, small ints, floats, booleans,
None, node links, dict keys and stored dict items (``seq|value``). Run it before
and after a codec change on the same machine; docs/performance.md quotes it.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import timeit
from types import ModuleType
from typing import Any

from etcher import _codec as current

SCALARS: dict[str, Any] = {
    "str": "Oslo",
    "int": 42,
    "float": 0.5,
    "bool": True,
    "None": None,
}
KEYS: dict[str, Any] = {"str key": "address", "int key": 7}


def cases(codec: ModuleType) -> list[tuple[str, str, Any, Any]]:
    """(function, value label, callable, argument) for every measured call."""
    out: list[tuple[str, str, Any, Any]] = []
    for label, value in SCALARS.items():
        out.append(("encode_scalar", label, codec.encode_scalar, value))
    for label, value in KEYS.items():
        out.append(("encode_key", label, codec.encode_key, value))
    out.append(("encode_link", "link", codec.encode_link, "D1k3x9"))
    stored = {label: codec.encode_scalar(v) for label, v in SCALARS.items()}
    stored["link"] = codec.encode_link("D1k3x9")
    for label, raw in stored.items():
        out.append(("safe_decode", label, codec.safe_decode, raw))
        out.append(("link_target", label, codec.link_target, raw))
    for label, value in KEYS.items():
        out.append(("decode_key", label, codec.decode_key, codec.encode_key(value)))
    item = b"12|" + stored["str"]
    out.append(("split_item", "12|sOslo", codec.split_item, item))
    out.append(("item_value", "12|sOslo", codec.item_value, item))
    # A dict node's items in order with decoded keys, per node: the per-field calls a
    # reader makes today, and the one-call helper where this codec version has it.
    node = {
        codec.encode_key(k): b"%d|" % seq + codec.encode_scalar(v)
        for seq, (k, v) in enumerate(
            {"name": "user3", "age": 3, "zip": "00003", "on": True}.items()
        )
    }

    def per_field(content: dict[bytes, bytes]) -> list[tuple[Any, bytes]]:
        items = sorted((*codec.split_item(raw), field) for field, raw in content.items())
        return [(codec.decode_key(field), raw) for _seq, raw, field in items]

    out.append(("node items", "4 fields", per_field, node))
    if hasattr(codec, "decoded_items"):
        out.append(("decoded_items", "4 fields", codec.decoded_items, node))
    return out


def load(path: str) -> ModuleType:
    """Another version of codec.py (e.g. the previous commit's) as a module of its own."""
    spec = importlib.util.spec_from_file_location("codec_other", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def measure(
    codecs: dict[str, ModuleType], number: int = 200_000, repeat: int = 7
) -> list[dict[str, Any]]:
    """Best-of-``repeat`` µs per call; versions alternate per round so load drift hits all."""
    table = {name: cases(mod) for name, mod in codecs.items()}
    codecs = dict(sorted(codecs.items(), key=lambda kv: -len(table[kv[0]])))  # longest first
    rows = []
    for j, (fname, label, _, _) in enumerate(table[next(iter(codecs))]):
        best = dict.fromkeys(codecs, float("inf"))
        for _ in range(repeat):
            for name in codecs:
                if j >= len(table[name]):  # a helper only the newer version has
                    continue
                _, _, fn, arg = table[name][j]
                t = timeit.timeit(lambda fn=fn, arg=arg: fn(arg), number=number)
                best[name] = min(best[name], t / number * 1e6)
        rows.append({"function": fname, "value": label, **{f"us_{n}": b for n, b in best.items()}})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--json", default=None)
    parser.add_argument("--number", type=int, default=200_000)
    parser.add_argument("--against", default=None, help="another codec.py to time alongside")
    args = parser.parse_args()
    codecs = {"current": current}
    if args.against:
        codecs = {"other": load(args.against), "current": current}
    rows = measure(codecs, args.number)
    print(f"{'function':14} {'value':10} " + " ".join(f"{n:>9}" for n in codecs) + "  (us/call)")
    for r in rows:
        times = " ".join(f"{r[f'us_{n}']:9.3f}" for n in codecs)
        ratio = f"  x{r['us_other'] / r['us_current']:.2f}" if args.against else ""
        ratio = "" if "inf" in times else ratio
        print(f"{r['function']:14} {r['value']:10} {times}{ratio}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)


if __name__ == "__main__":
    main()
