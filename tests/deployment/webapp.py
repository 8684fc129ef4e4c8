"""A small Flask app that keeps its state in etcher, as a web developer would write it.

It opens its ``DB`` when the module is imported, which is what most apps do. Under
``gunicorn --preload`` that happens once in the master, before the workers are forked;
without it, every worker imports the module (and opens the store) after the fork.
The store and namespace are named by ``ETCHER_WEB_URL`` and ``ETCHER_WEB_PREFIX``.
"""

from __future__ import annotations

import os
from typing import Any

from flask import Flask, jsonify, request

from etcher import DB

db = DB(os.environ["ETCHER_WEB_URL"], prefix=os.environ["ETCHER_WEB_PREFIX"])
app = Flask(__name__)


def _user(uid: str) -> str:
    return f"user:{uid}"


@app.put("/users/<uid>")
def create_user(uid: str) -> Any:
    doc = request.get_json()
    doc["orders"] = []
    db[_user(uid)] = doc
    return jsonify(ok=True)


@app.get("/users/<uid>")
def read_user(uid: str) -> Any:
    return jsonify(db[_user(uid)]())


@app.post("/users/<uid>/orders")
def add_order(uid: str) -> Any:
    db[_user(uid)]["orders"].append(request.get_json())
    return jsonify(ok=True)


@app.post("/hits")
def hit() -> Any:
    return jsonify(hits=db.incr("hits"))


@app.post("/admin/maintenance")
def maintenance() -> Any:
    report = db.check()
    db.gc()
    return jsonify(ok=report.ok, problems=report.problems())
