"""interp serve over HTTP: the real server in a subprocess on a free localhost port, every endpoint
and every refusal; the numbers it returns checked against the same model and SAE in this process."""

from __future__ import annotations

import http.client
import json
import socket
import threading
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlsplit

import pytest
import serve_helpers as sh
import torch

from interp.cli import main
from interp.models import load_model
from interp.server import RequestError, Worker
from interp.server.dashboard import build_dashboard_at_start
from sae import Add, Latent, generate, load_sae

MAX_TOKENS = 40  # --max-prompt-tokens of the server under test (the model reads 64 positions)


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    return sh.make_folders(tmp_path_factory.mktemp("serve"))


@pytest.fixture(scope="module")
def server(folders, tmp_path_factory):
    s = sh.Server(folders, tmp_path_factory.mktemp("home"), "--max-prompt-tokens", str(MAX_TOKENS),
                  "--max-new-tokens", "24", "--max-strength", "50", "--queue", "1")
    yield s
    s.stop()


@pytest.fixture(scope="module")
def local(folders):
    """The server's model and SAE, loaded here."""
    model = load_model(folders["model"], device="cpu")
    return model, load_sae(folders["sae"], device="cpu")


def test_info_and_openapi_schema(server):
    status, info = server.json("GET", "/api/info")
    assert status == 200 and info["hook"] == sh.HOOK and info["d_sae"] == sh.D_SAE
    assert info["dashboard"] == list(range(16)) and info["limits"]["max_prompt_tokens"] == MAX_TOKENS
    status, schema = server.json("GET", "/openapi.json")
    assert status == 200
    assert {"/api/activations", "/api/steer", "/api/features/{fid}", "/api/info"} <= set(schema["paths"])
    assert "SteerRequest" in schema["components"]["schemas"]


def test_activations_match_the_sae_on_the_same_tokens(server, local):
    model, sae = local
    prompt = "The whale rose from the sea, said <script>alert(1)</script>."
    status, got = server.json("POST", "/api/activations", {"prompt": prompt, "feature": 5, "top_k": 4})
    assert status == 200
    assert "".join(t["text"] for t in got["tokens"]) == prompt  # the HTML comes back as text
    ids = [model.tokenizer.bos_token_id] + model.tokenizer(prompt, add_special_tokens=False)["input_ids"]
    assert [t["id"] for t in got["tokens"]] == ids[1:] and got["n_tokens"] == len(ids) - 1
    _, cache = model.run_with_cache(torch.tensor([ids]), names_filter=[sh.HOOK])
    z = sae.encode(cache[sh.HOOK][0])[1:]  # [T, d_sae]
    assert got["feature"]["values"] == pytest.approx(z[:, 5].tolist(), rel=1e-3, abs=1e-9)
    for t, top in enumerate(got["top"]):
        v, i = z[t].topk(4)
        want = [(f, a) for f, a in zip(i.tolist(), v.tolist()) if a > 0]
        assert [f for f, _ in top] == [f for f, _ in want]
        assert [a for _, a in top] == pytest.approx([a for _, a in want], rel=1e-3)
    peak = z.max(0).values
    assert got["prompt_features"][0][0] == int(peak.argmax())
    assert got["prompt_features"][0][1] == pytest.approx(float(peak.max()), rel=1e-3)


def test_steer_streams_what_generate_gives(server, local):
    model, sae = local
    body = {"prompt": "The whale", "features": [3, 7], "mode": "add", "strength": 20.0, "max_new_tokens": 6,
            "seed": 4, "temperature": 0}
    status, headers, data = server.request("POST", "/api/steer", body)
    assert status == 200 and headers["content-type"].startswith("application/x-ndjson")
    events = [json.loads(line) for line in data.decode().splitlines()]
    assert [e["type"] for e in events] == ["start"] + ["step"] * 6 + ["done"]
    ids = [model.tokenizer.bos_token_id] + model.tokenizer("The whale", add_special_tokens=False)["input_ids"]
    g = generate(model, torch.tensor(ids), [Add(Latent(sh.HOOK, f, sae=sae), 20.0) for f in (3, 7)], seed=4,
                 max_new_tokens=6, temperature=0)
    steps = events[1:-1]
    assert [s["default"]["id"] for s in steps] == g.default.tokens
    assert [s["steered"]["id"] for s in steps] == g.steered.tokens
    assert g.default.tokens != g.steered.tokens  # the edit changed the text
    for s in steps:
        d = [abs(c["steered"] - c["default"]) for c in s["changes"]]
        assert all(a >= b * (1 - 1e-3) for a, b in zip(d, d[1:])) and d[0] > 0 and s["kl"] > 0  # 4 digits sent
    # step 0: both runs see the prompt alone, so its changes are the edit's effect there
    with torch.no_grad():
        p = model(torch.tensor([ids]))[0, -1].softmax(-1)
    c0 = steps[0]["changes"][0]
    assert c0["default"] == pytest.approx(float(p[c0["id"]]), rel=1e-3)


@pytest.mark.parametrize("mode", ["clamp", "ablate"])
def test_steer_modes(server, mode):
    status, _, data = server.request("POST", "/api/steer", {"prompt": "Call me", "features": [1], "mode": mode,
                                                           "strength": 3, "max_new_tokens": 2})
    assert status == 200 and [json.loads(x)["type"] for x in data.decode().splitlines()][-1] == "done"


def test_feature_json(server):
    status, f = server.json("GET", "/api/features/3")
    assert status == 200 and f["in_dashboard"] and f["page"] == "/dashboard/features/3.html"
    assert 0 < f["stats"]["density"] <= 1 and len(f["logits_promoted"]) == 10 and f["top_examples"]
    assert server.get(f["page"])[0] == 200
    status, g = server.json("GET", "/api/features/20")  # in the SAE, not among the dashboard's features
    assert status == 200 and not g["in_dashboard"] and g["page"] is None and "stats" not in g
    assert len(g["neighbours"]) == 10


def over(n: int) -> str:
    return " the" * n


@pytest.mark.parametrize("method,path,body,status,words", [
    ("POST", "/api/activations", {"prompt": over(MAX_TOKENS + 1)}, 413, f"at most {MAX_TOKENS}"),
    ("POST", "/api/activations", {"prompt": "x" * (64 * MAX_TOKENS + 1)}, 413, "characters"),
    ("POST", "/api/steer", {"prompt": over(MAX_TOKENS), "features": [1], "max_new_tokens": 24}, 413, "does not fit"),
    ("POST", "/api/activations", {"prompt": "   "}, 422, "empty"),
    ("POST", "/api/activations", {"prompt": "a", "feature": sh.D_SAE}, 422, f"0..{sh.D_SAE - 1}"),
    ("POST", "/api/activations", {"prompt": "a", "top_k": 65}, 422, "cap"),
    ("POST", "/api/activations", {"prompt": "a", "path": "/etc/passwd"}, 422, "extra"),
    ("POST", "/api/steer", {"prompt": "a", "features": [1], "strength": 51}, 422, "cap of 50"),
    ("POST", "/api/steer", {"prompt": "a", "features": [1], "max_new_tokens": 25}, 422, "cap of 24"),
    ("POST", "/api/steer", {"prompt": "a", "features": list(range(9))}, 422, "at most 8"),
    ("POST", "/api/steer", {"prompt": "a", "features": []}, 422, "at least 1"),
    ("POST", "/api/steer", {"prompt": "a", "features": [1], "mode": "explode"}, 422, "add"),
    ("POST", "/api/steer", {"prompt": "a", "features": [1], "temperature": 5}, 422, "less than or equal"),
    ("GET", "/api/features/48", None, 404, "0..47"),
    ("GET", "/api/features/x", None, 422, "integer"),
    ("GET", "/dashboard/features/40.html", None, 404, "no page"),
    ("GET", "/dashboard/assets/..%2Fstats%2Fmeta.json", None, 404, ""),
    ("GET", "/static/..%2Fapp.py", None, 404, ""),
    ("GET", "/static/app.py", None, 404, "no such file"),
    ("GET", "/docs", None, 404, "Not Found"),  # Swagger UI would load scripts from a CDN
])
def test_refusals_are_one_clear_message(server, method, path, body, status, words):
    got, _, data = server.request(method, path, body)
    assert got == status, data
    assert words in json.dumps(json.loads(data)["detail"])


def test_nan_strength_and_huge_body_are_refused(server):
    status, _, data = server.request("POST", "/api/steer", raw=b'{"prompt": "a", "features": [1], "strength": NaN}')
    assert status == 422 and b"finite" in data
    # a body announced as over 1 MiB is refused from its headers, before any of it is read
    conn = http.client.HTTPConnection(urlsplit(server.url).netloc, timeout=60)
    conn.putrequest("POST", "/api/activations")
    conn.putheader("Content-Type", "application/json")
    conn.putheader("Content-Length", str(2 << 20))
    conn.endheaders()
    r = conn.getresponse()
    assert r.status == 413 and b"cap" in r.read()
    conn.close()


def test_no_cors_and_no_other_origins(server):
    status, headers, _ = server.request("POST", "/api/activations", {"prompt": "a"},
                                        headers={"Origin": server.url})
    assert status == 200 and "access-control-allow-origin" not in {k.lower() for k in headers}
    status, _, data = server.request("POST", "/api/activations", {"prompt": "a"}, headers={"Origin": "https://evil.example"})
    assert status == 403 and b"cross-origin" in data
    status, _, _ = server.request("GET", "/api/info", headers={"Host": "evil.example"})  # DNS rebinding
    assert status == 400
    status, _, _ = server.request("POST", "/api/activations", raw=b'{"prompt": "a"}', headers={"Content-Type": "text/plain"})
    assert status == 422  # a form post from another page cannot send JSON


def test_pages_carry_their_content_security_policy(server):
    status, headers, html = server.get("/")
    assert status == 200 and "connect-src 'self'" in headers["content-security-policy"]
    assert b"/static/live.js" in html and b"cdn" not in html.lower()
    status, headers, _ = server.get("/dashboard/index.html")
    assert status == 200 and "connect-src 'none'" in headers["content-security-policy"]
    assert server.get("/dashboard/assets/plotly.min.js")[0] == 200


def test_a_burst_gets_answers_or_429_and_the_server_keeps_serving(server):
    # a long steer holds the worker while the burst arrives; the queue holds one more request
    long = threading.Thread(target=server.request, args=("POST", "/api/steer", {
        "prompt": "The whale", "features": [1], "max_new_tokens": 24}))
    long.start()
    with ThreadPoolExecutor(12) as pool:
        got = list(pool.map(lambda i: server.request("POST", "/api/activations", {"prompt": f"burst {i}"}), range(24)))
    long.join()
    statuses = [g[0] for g in got]
    assert set(statuses) <= {200, 429}, statuses
    for s, _, data in got:
        if s == 429:
            assert b"busy" in data
    assert server.json("POST", "/api/activations", {"prompt": "still there?"})[0] == 200


def test_a_full_queue_refuses_at_once():
    gate = threading.Event()
    w = Worker(queue_size=2)
    running = w.submit(gate.wait)
    while not running.running():
        pass
    queued = [w.submit(lambda: 1) for _ in range(2)]
    with pytest.raises(RequestError) as e:
        w.submit(lambda: 1)
    assert e.value.status == 429
    gate.set()
    assert [q.result(timeout=10) for q in queued] == [1, 1]
    w.close()


def test_start_errors_are_one_line(folders, tmp_path, capsys):
    base = ["serve", "--model", folders["model"], "--port", "0", "--dashboard", str(tmp_path)]
    assert main(base + [str(tmp_path / "nothing")]) == 2
    assert "no SAE folder" in capsys.readouterr().err
    assert main(base + [folders["wide"]]) == 2
    err = capsys.readouterr().err
    assert "d_in" in err or "24 numbers" in err
    assert main(base + [folders["sae"]]) == 2  # tmp_path holds no dashboard
    assert "not a dashboard folder" in capsys.readouterr().err
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert main(["serve", folders["sae"], "--model", folders["model"], "--port", str(port)]) == 2
        err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"port {port}" in err and "in use" in err


def test_a_built_dashboard_and_another_host(folders, local, tmp_path):
    model, sae = local
    build_dashboard_at_start(model, sae, tmp_path / "dash", folders["text"], 512, "2,5")
    s = sh.Server(folders, tmp_path / "home", "--dashboard", str(tmp_path / "dash"), "--host", "0.0.0.0")
    try:
        assert s.json("GET", "/api/info")[1]["dashboard"] == [2, 5]
        assert s.get("/dashboard/features/5.html")[0] == 200 and s.get("/dashboard/features/3.html")[0] == 404
    finally:
        err = s.stop()
    assert "warning: listening on 0.0.0.0" in err and err.count("warning") == 1
