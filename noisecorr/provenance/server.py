"""The provenance web service: a JSON API (OpenAPI at ``/openapi.json``) and a browser page.

``noisecorr prov serve [STORE] [--host 127.0.0.1] [--port N]``; :func:`make_app` builds
the Flask app for tests and WSGI servers. The page (``static/``) keeps its state in the URL
hash (``#/run/<id>``, ``#/entity/<id>``, ``#/lineage/<id>``; see ``static/app.js``), so the
server has one page route, ``/``.

Safety: ids are checked against :data:`~noisecorr.provenance.ids.ID_PATTERN` before any
query, depths and page sizes are bounded, request bodies are capped
(``MAX_CONTENT_LENGTH``), all SQL is parameterised, data products are database rows (no
client input ever names a file), static files come from the package's ``static/`` folder
through Flask's safe path join, and the server binds 127.0.0.1 unless told otherwise.
"""

from __future__ import annotations

import io
import json
import re
from pathlib import Path

from .ids import ID_PATTERN

STATIC = Path(__file__).with_name("static")
MAX_DEPTH = 25
MAX_PAGE = 200
MAX_BODY = 16 * 1024
MAX_POINTS = 200_000
_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
_NAME = re.compile(r"^[A-Za-z0-9_.<>:-]{1,128}$")


def openapi():
    """The OpenAPI 3.0 description of the API (served at ``/openapi.json``)."""
    idp = {"in": "path", "required": True, "schema": {"type": "string", "pattern": ID_PATTERN.pattern}}
    page = [{"name": "page", "in": "query", "schema": {"type": "integer", "minimum": 1, "default": 1}},
            {"name": "page_size", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": MAX_PAGE, "default": 50}}]
    depth = {"name": "depth", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": MAX_DEPTH, "default": 3}}
    err = {"description": "invalid input", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
    nf = {"description": "not found", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}

    def ok(desc, schema=None, media="application/json"):
        return {"description": desc, "content": {media: {"schema": schema or {"type": "object"}}}}

    graph = {"$ref": "#/components/schemas/Lineage"}
    return {
        "openapi": "3.0.3",
        "info": {"title": "noisecorr provenance API", "version": "1",
                 "description": "W3C-PROV lineage of noisecorr runs: runs, entities (items written by PEs), "
                                "their ancestors and descendants, metadata search and stored data products."},
        "paths": {
            "/api/runs": {"get": {"summary": "List runs, newest first", "parameters": page,
                                  "responses": {"200": ok("runs", {"$ref": "#/components/schemas/Page"}), "400": err}}},
            "/api/runs/{run_id}": {"get": {"summary": "Run detail: bundle, agents, configuration, counts per PE",
                                           "parameters": [dict(idp, name="run_id")],
                                           "responses": {"200": ok("run"), "400": err, "404": nf}}},
            "/api/runs/{run_id}/entities": {"get": {
                "summary": "Entities of a run (filter by PE, port, stored)",
                "parameters": [dict(idp, name="run_id"),
                               {"name": "pe", "in": "query", "schema": {"type": "string"}},
                               {"name": "port", "in": "query", "schema": {"type": "string"}},
                               {"name": "stored", "in": "query", "schema": {"type": "boolean"}}] + page,
                "responses": {"200": ok("entities", {"$ref": "#/components/schemas/Page"}), "400": err, "404": nf}}},
            "/api/runs/{run_id}/export": {"get": {
                "summary": "The run as a PROV document",
                "parameters": [dict(idp, name="run_id"),
                               {"name": "format", "in": "query", "schema": {"type": "string", "enum": ["json", "provn", "xml"]}}],
                "responses": {"200": ok("PROV-JSON, PROV-N or PROV-XML", {"type": "string"}, "text/plain"), "400": err, "404": nf}}},
            "/api/entities/{entity_id}": {"get": {"summary": "An entity: metadata, generating activity, derived-from ids",
                                                  "parameters": [dict(idp, name="entity_id")],
                                                  "responses": {"200": ok("entity"), "400": err, "404": nf}}},
            "/api/entities/{entity_id}/ancestors": {"get": {"summary": "Entities it was derived from, to a depth",
                                                            "parameters": [dict(idp, name="entity_id"), depth],
                                                            "responses": {"200": ok("lineage", graph), "400": err, "404": nf}}},
            "/api/entities/{entity_id}/descendants": {"get": {"summary": "Entities derived from it, to a depth",
                                                              "parameters": [dict(idp, name="entity_id"), depth],
                                                              "responses": {"200": ok("lineage", graph), "400": err, "404": nf}}},
            "/api/entities/{entity_id}/product": {"get": {"summary": "Fields of a stored data product (arrays: dtype and shape; scalars)",
                                                          "parameters": [dict(idp, name="entity_id")],
                                                          "responses": {"200": ok("product"), "400": err, "404": nf}}},
            "/api/entities/{entity_id}/product/{field}": {"get": {
                "summary": "One array of a stored product as JSON (1-D, at most 200000 values)",
                "parameters": [dict(idp, name="entity_id"),
                               {"name": "field", "in": "path", "required": True, "schema": {"type": "string", "pattern": _KEY.pattern}}],
                "responses": {"200": ok("values"), "400": err, "404": nf}}},
            "/api/entities/{entity_id}/download": {"get": {"summary": "Download a stored product (.npz)",
                                                           "parameters": [dict(idp, name="entity_id")],
                                                           "responses": {"200": ok("npz file", {"type": "string", "format": "binary"}, "application/octet-stream"),
                                                                         "400": err, "404": nf}}},
            "/api/search": {
                "get": {"summary": "Entities whose metadata key equals value",
                        "parameters": [{"name": "run", "in": "query", "schema": {"type": "string"}},
                                       {"name": "pe", "in": "query", "schema": {"type": "string"}},
                                       {"name": "key", "in": "query", "required": True, "schema": {"type": "string"}},
                                       {"name": "value", "in": "query", "required": True, "schema": {"type": "string"}}] + page,
                        "responses": {"200": ok("entities", {"$ref": "#/components/schemas/Page"}), "400": err}},
                "post": {"summary": "Entities matching every metadata condition (body at most 16 KiB)",
                         "requestBody": {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/Search"}}}},
                         "responses": {"200": ok("entities", {"$ref": "#/components/schemas/Page"}), "400": err, "413": err}},
            },
        },
        "components": {"schemas": {
            "Error": {"type": "object", "properties": {"error": {"type": "string"}}},
            "Page": {"type": "object", "properties": {"items": {"type": "array", "items": {"type": "object"}},
                                                      "total": {"type": "integer"}, "page": {"type": "integer"},
                                                      "page_size": {"type": "integer"}}},
            "Lineage": {"type": "object", "properties": {
                "root": {"type": "string"}, "nodes": {"type": "array", "items": {"type": "object"}},
                "edges": {"type": "array", "items": {"type": "array", "items": {"type": "string"}},
                          "description": "[entity, derived_from] pairs"},
                "truncated": {"type": "boolean"}}},
            "Search": {"type": "object", "required": ["where"], "properties": {
                "run": {"type": "string"}, "pe": {"type": "string"},
                "where": {"type": "object", "additionalProperties": {"type": ["string", "number"]}, "maxProperties": 8},
                "page": {"type": "integer"}, "page_size": {"type": "integer", "maximum": MAX_PAGE}}},
        }},
    }


class BadRequest(ValueError):
    pass


def make_app(store_url):
    """The Flask app serving the store at ``store_url`` (see the module docstring)."""
    from flask import Flask, Response, jsonify, request, send_from_directory

    from .export import FORMATS, export
    from .store import Store

    app = Flask(__name__, static_folder=None)
    app.config["MAX_CONTENT_LENGTH"] = MAX_BODY
    app.json.sort_keys = False
    store = Store(store_url, create=False)

    def check_id(value, what="id"):
        if not isinstance(value, str) or not ID_PATTERN.match(value):
            raise BadRequest(f"invalid {what}: expected 8 to 40 lowercase hex digits")
        return value

    def check_name(value, what):
        if value is None:
            return None
        if not _NAME.match(value):
            raise BadRequest(f"invalid {what}")
        return value

    def int_arg(name, default, lo, hi, source=None):
        raw = (source or request.args).get(name, default)
        try:
            v = int(raw)
        except (TypeError, ValueError):
            raise BadRequest(f"{name} must be an integer") from None
        if not lo <= v <= hi:
            raise BadRequest(f"{name} must be between {lo} and {hi}")
        return v

    def paging(source=None):
        page = int_arg("page", 1, 1, 10**6, source)
        size = int_arg("page_size", 50, 1, MAX_PAGE, source)
        return page, size, (page - 1) * size

    def not_found(what):
        return jsonify(error=f"{what} not found"), 404

    @app.errorhandler(BadRequest)
    def bad_request(exc):
        return jsonify(error=str(exc)), 400

    @app.errorhandler(413)
    def too_large(exc):
        return jsonify(error=f"request body larger than {MAX_BODY} bytes"), 413

    @app.errorhandler(404)
    def missing(exc):
        return jsonify(error="not found"), 404

    @app.get("/openapi.json")
    def openapi_json():
        return jsonify(openapi())

    @app.get("/")
    def index():
        return send_from_directory(STATIC, "index.html")

    @app.get("/favicon.ico")
    def favicon():
        # the page links static/favicon.svg; this answers clients that ask for /favicon.ico anyway
        return send_from_directory(STATIC, "favicon.svg", mimetype="image/svg+xml")

    @app.get("/static/<path:name>")
    def static_file(name):
        return send_from_directory(STATIC, name)  # safe_join: never outside static/

    @app.get("/api/runs")
    def runs():
        page, size, offset = paging()
        items, total = store.runs(offset, size)
        return jsonify(items=items, total=total, page=page, page_size=size)

    @app.get("/api/runs/<run_id>")
    def run_detail(run_id):
        run = store.run(check_id(run_id, "run id"))
        if run is None:
            return not_found("run")
        run["agents"] = [
            {"id": f"user-{run['user_name']}", "type": "prov:Person", "name": run["user_name"]},
            {"id": f"software-{run['software']}-{run['version']}", "type": "prov:SoftwareAgent",
             "name": run["software"], "version": run["version"]},
            {"id": f"mapping-{run['mapping']}", "type": "prov:SoftwareAgent", "mapping": run["mapping"],
             "processes": run["processes"], "host": run["host"]},
        ]
        run["counts"] = store.run_counts(run_id)
        return jsonify(run)

    @app.get("/api/runs/<run_id>/entities")
    def run_entities(run_id):
        check_id(run_id, "run id")
        if store.run(run_id) is None:
            return not_found("run")
        page, size, offset = paging()
        stored = request.args.get("stored")
        if stored not in (None, "true", "false", "1", "0"):
            raise BadRequest("stored must be true or false")
        items, total = store.entities(run_id, pe=check_name(request.args.get("pe"), "pe"),
                                      port=check_name(request.args.get("port"), "port"),
                                      stored=None if stored is None else stored in ("true", "1"),
                                      limit=size, offset=offset)
        return jsonify(items=items, total=total, page=page, page_size=size)

    @app.get("/api/runs/<run_id>/export")
    def run_export(run_id):
        check_id(run_id, "run id")
        fmt = request.args.get("format", "json")
        if fmt not in FORMATS:
            raise BadRequest(f"format must be one of {', '.join(FORMATS)}")
        if store.run(run_id) is None:
            return not_found("run")
        media = {"json": "application/json", "xml": "application/xml", "provn": "text/provenance-notation"}[fmt]
        return Response(export(store, run_id, fmt), mimetype=media, headers={
            "Content-Disposition": f"attachment; filename=run-{run_id}.{ {'json': 'json', 'xml': 'xml', 'provn': 'provn'}[fmt] }"})

    @app.get("/api/entities/<entity_id>")
    def entity(entity_id):
        e = store.entity(check_id(entity_id, "entity id"))
        return jsonify(e) if e is not None else not_found("entity")

    def lineage(entity_id, direction):
        check_id(entity_id, "entity id")
        depth = int_arg("depth", 3, 1, MAX_DEPTH)
        if store.entity(entity_id) is None:
            return not_found("entity")
        nodes, edges, truncated = store.lineage(entity_id, direction, depth)
        return jsonify(root=entity_id, direction=direction, depth=depth, nodes=nodes,
                       edges=[list(e) for e in edges], truncated=truncated)

    @app.get("/api/entities/<entity_id>/ancestors")
    def ancestors(entity_id):
        return lineage(entity_id, "ancestors")

    @app.get("/api/entities/<entity_id>/descendants")
    def descendants(entity_id):
        return lineage(entity_id, "descendants")

    def load_product(entity_id):
        import numpy as np

        found = store.product(check_id(entity_id, "entity id"))
        if found is None:
            return None, None
        fmt, blob = found
        return blob, np.load(io.BytesIO(blob), allow_pickle=False)

    @app.get("/api/entities/<entity_id>/product")
    def product(entity_id):
        blob, npz = load_product(entity_id)
        if blob is None:
            return not_found("stored product")
        with npz:
            meta = json.loads(str(npz["__meta__"])) if "__meta__" in npz.files else {}
            arrays = {k: {"dtype": str(npz[k].dtype), "shape": list(npz[k].shape)} for k in npz.files if k != "__meta__"}
        return jsonify(entity_id=entity_id, format="npz", nbytes=len(blob), arrays=arrays, fields=meta)

    @app.get("/api/entities/<entity_id>/product/<field>")
    def product_field(entity_id, field):
        if not _KEY.match(field):
            raise BadRequest("invalid field name")
        blob, npz = load_product(entity_id)
        if blob is None:
            return not_found("stored product")
        with npz:
            if field == "__meta__" or field not in npz.files:
                return not_found("array")
            a = npz[field]
        if a.ndim != 1 or a.size > MAX_POINTS or a.dtype.kind not in "biuf":
            raise BadRequest(f"field {field} is not a real 1-D array of at most {MAX_POINTS} values")
        return jsonify(field=field, dtype=str(a.dtype), values=[float(x) for x in a])

    @app.get("/api/entities/<entity_id>/download")
    def download(entity_id):
        blob, npz = load_product(entity_id)
        if blob is None:
            return not_found("stored product")
        npz.close()
        return Response(blob, mimetype="application/octet-stream",
                        headers={"Content-Disposition": f"attachment; filename={entity_id}.npz"})

    def search(where, run=None, pe=None, source=None):
        if run is not None:
            check_id(run, "run id")
        check_name(pe, "pe")
        if not isinstance(where, dict) or not 1 <= len(where) <= 8:
            raise BadRequest("give 1 to 8 metadata conditions")
        conds = []
        for k, v in where.items():
            if not isinstance(k, str) or not _KEY.match(k):
                raise BadRequest(f"invalid metadata key {k!r}")
            if isinstance(v, bool) or not isinstance(v, (str, int, float)) or len(str(v)) > 256:
                raise BadRequest(f"metadata value of {k} must be a string or number of at most 256 characters")
            conds.append((k, v if isinstance(v, str) else json.dumps(v)))
        page, size, offset = paging(source)
        items, total = store.search(run, conds, pe, size, offset)
        return jsonify(items=items, total=total, page=page, page_size=size)

    @app.get("/api/search")
    def search_get():
        key, value = request.args.get("key"), request.args.get("value")
        if key is None or value is None:
            raise BadRequest("key and value are required")
        return search({key: value}, request.args.get("run"), request.args.get("pe"))

    @app.post("/api/search")
    def search_post():
        body = request.get_json(silent=True)
        if not isinstance(body, dict):
            raise BadRequest("expected a JSON object {\"where\": {key: value}, ...}")
        return search(body.get("where"), body.get("run"), body.get("pe"),
                      source={k: body[k] for k in ("page", "page_size") if k in body})

    return app


def serve(store_url, host="127.0.0.1", port=8765):
    """Serve until interrupted (Werkzeug's threaded server: one user, a laptop or a login node)."""
    from werkzeug.serving import make_server

    server = make_server(host, port, make_app(store_url), threaded=True)
    return server
