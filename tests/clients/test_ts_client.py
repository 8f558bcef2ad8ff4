"""The TypeScript client's committed OpenAPI document is the one the service serves.

`clients/ts/src/vendor/schema.d.ts` is generated from `clients/ts/openapi.json` (openapi-typescript), so
a route or shape changed without regenerating the client fails here. To refresh:
`clients/ts/refresh.sh` (it rewrites the document through this test, then regenerates the types).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import identity
from chongjun.demo import NAMED_PEOPLE, seed_demo
from tests.support import live_server

PLAIN = dict(NAMED_PEOPLE)["plain veteran"]["id_number"]

COMMITTED = Path(__file__).resolve().parents[2] / "clients" / "ts" / "openapi.json"


def _canonical(document: dict) -> str:
    return json.dumps(document, ensure_ascii=False, indent=1, sort_keys=True) + "\n"


async def test_committed_schema_is_the_served_one(client):
    response = await client.get("/schema/openapi.json")
    assert response.status_code == 200
    served = _canonical(response.json())
    if os.environ.get("CHONGJUN_UPDATE_CLIENT_SCHEMA") == "1":
        COMMITTED.write_text(served, encoding="utf-8")
    assert COMMITTED.read_text(encoding="utf-8") == served, (
        "clients/ts/openapi.json differs from the served /schema/openapi.json: run clients/ts/refresh.sh"
    )


# --- the client itself: type-checked, and the veteran flow run in Node through the wx adapter ----

CLIENT = COMMITTED.parent


def _npm_ready() -> None:
    """node_modules from package-lock.json (npm ci), as `.ci/run` does; fails with the command."""
    assert shutil.which("node") and shutil.which("npm"), "node and npm are missing: apt-get install nodejs npm"
    if not (CLIENT / "node_modules" / ".package-lock.json").exists():
        subprocess.run(["npm", "ci", "--ignore-scripts", "--no-audit", "--no-fund"], cwd=CLIENT, check=True,
                       capture_output=True, timeout=300)


def test_client_type_checks():
    _npm_ready()
    result = subprocess.run(["npx", "--no-install", "tsc", "--noEmit", "-p", "."], cwd=CLIENT, capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr


_RUN = """
import { veteranFlow, wxTransport } from "./index.js";
// A stand-in for the mini-program's wx object: wx.request's contract over Node's fetch.
const wx = {
  request(o) {
    fetch(o.url, { method: o.method, headers: o.header, body: o.data })
      .then(async (r) => o.success({ statusCode: r.status, data: await r.text(), header: {} }))
      .catch((e) => o.fail({ errMsg: String(e) }));
  },
};
const [base, code] = process.argv.slice(2);
console.log(JSON.stringify(await veteranFlow(base, code, wxTransport(wx))));
"""


async def test_the_typed_veteran_flow_runs_through_the_wx_adapter(conn, redis, settings, tmp_path):
    _npm_ready()
    out = tmp_path / "dist"
    built = subprocess.run(["npx", "--no-install", "tsc", "-p", ".", "--outDir", str(out)], cwd=CLIENT,
                           capture_output=True, text=True, timeout=300)
    assert built.returncode == 0, built.stdout + built.stderr
    (out / "package.json").write_text('{"type": "module"}')
    (out / "run.js").write_text(_RUN)
    (out / "node_modules").symlink_to(CLIENT / "node_modules")
    await seed_demo(conn, redis, settings)
    suishen = identity.DevCityIssuer(settings, identity.pii_vault(settings)).issue(PLAIN)
    with live_server(settings, workers=1) as base_url:
        ran = subprocess.run(["node", "run.js", base_url, suishen], cwd=out, capture_output=True, text=True, timeout=60)
    assert ran.returncode == 0, ran.stderr
    result = json.loads(ran.stdout)
    assert result["person"]["name_masked"] == "李*"
    assert "C12" in {b["code"] for b in result["eligible"]}
    assert result["code"]["code"].startswith("CJ1:") and result["code"]["png_url"].endswith(".png")
