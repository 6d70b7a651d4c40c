"""The LLM explainer and simulator, against a fake OpenAI-compatible server on localhost."""

import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import synthetic_scoring as ss
import torch

from analyses.scoring import ScoringConfig, score_features
from analyses.scoring.llm import CachedLLM, LocalHF, make_llm
from analyses.scoring.llm_explain import LLMExplainer, LLMSimulator, parse_explanation, parse_simulation
from interp.errors import InterpError


class FakeOpenAI(BaseHTTPRequestHandler):
    """Explains every feature as token w7; simulates 10 on ' w7' and 0 elsewhere."""

    requests: list = []

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        prompt = body["messages"][0]["content"]
        type(self).requests.append({"path": self.path, "model": body["model"], "prompt": prompt})
        if "In one short sentence" in prompt:
            answer = 'Explanation: "the word w7"'
        else:
            rows = re.findall(r'^(\d+)\t"(.*)"$', prompt, flags=re.M)
            answer = "\n".join(f"{i}\t{10 if tok == ' w7' else 0}" for i, tok in rows)
        reply = json.dumps({"choices": [{"message": {"role": "assistant", "content": answer}}]}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(reply)))
        self.end_headers()
        self.wfile.write(reply)

    def log_message(self, *args):
        pass


@pytest.fixture
def server():
    FakeOpenAI.requests = []
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), FakeOpenAI)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/v1"
    httpd.shutdown()
    httpd.server_close()


def llm_run(url, cache, out):
    tt, ta, ht, ha = ss.split(lambda t, s: ss.on_token(t, 7, seed=s).unsqueeze(-1), n_train=60, n_heldout=60)
    llm = make_llm("openai", "fake-model", base_url=url, cache_dir=cache)
    tok = ss.Tokenizer()
    cfg = ScoringConfig(n_top_train=4, n_random_train=2, n_top_heldout=4, n_random_heldout=4, bands=None)  # no band examples: 8 simulations
    result = score_features(ss.neurons(1), ss.batches(tt, ta), ss.batches(ht, ha), cfg=cfg, tokenizer=tok,
                            explainer=LLMExplainer(llm, tok, n_examples=3), simulator=LLMSimulator(llm, tok), out=out)
    return result, llm


def test_the_llm_path_keeps_its_prompts_parses_answers_and_caches_them(server, tmp_path):
    result, llm = llm_run(server, tmp_path / "cache", tmp_path / "a")
    s = result.scores[0]
    asked = len(FakeOpenAI.requests)
    assert asked == 1 + 8 and llm.requests == 9 and llm.hits == 0  # one explanation, one simulation per held-out example
    assert FakeOpenAI.requests[0]["path"] == "/v1/chat/completions" and FakeOpenAI.requests[0]["model"] == "fake-model"
    assert s.explanation.text == "the word w7"  # parsed out of 'Explanation: "..."'
    assert s.explanation.prompt == FakeOpenAI.requests[0]["prompt"] and '" w7"\t10' in s.explanation.prompt
    assert s.score >= 0.95 and s.detection_auroc == 1.0
    kept = [json.loads(line) for line in (tmp_path / "a" / "llm_prompts.jsonl").read_text().splitlines()]
    assert [k["kind"] for k in kept] == ["explain"] + ["simulate"] * 8
    assert all(k["prompt"] and k["answer"] for k in kept)
    assert json.loads((tmp_path / "a" / "explanations.json").read_text())["0"]["text"] == "the word w7"

    again, llm2 = llm_run(server, tmp_path / "cache", tmp_path / "b")
    assert len(FakeOpenAI.requests) == asked and llm2.requests == 0 and llm2.hits == 9  # all from the cache
    assert again.scores[0].score == s.score


def test_an_unreachable_endpoint_is_one_clear_error(tmp_path):
    llm = make_llm("openai", "m", base_url="http://127.0.0.1:9/v1", cache_dir=tmp_path)
    with pytest.raises(InterpError, match="could not reach the LLM endpoint"):
        llm.complete("hello")


def test_simulation_answers_are_read_in_several_shapes():
    values, n = parse_simulation("0\t3\n1\t\" cat\"\t10\n3: 7\nnoise\n", 5)
    assert values.tolist() == [3, 10, 0, 7, 0] and n == 3
    values, n = parse_simulation("2\n12\n", 3)  # bare numbers fill tokens in order, clipped to 0-10
    assert values.tolist() == [2, 10, 0] and n == 2
    assert parse_explanation("\n  Answer: 'dates' \nmore") == "'dates'"


def test_a_local_hugging_face_model_answers_and_is_cached(tmp_path):
    from transformers import GPT2Config, GPT2LMHeadModel

    from interp.gpt2_tokenizer import gpt2_tokenizer

    torch.manual_seed(0)
    GPT2LMHeadModel(GPT2Config(n_layer=1, n_embd=16, n_head=2, n_positions=128)).save_pretrained(tmp_path / "lm")
    gpt2_tokenizer().save_pretrained(tmp_path / "lm")
    llm = CachedLLM(LocalHF(str(tmp_path / "lm"), device="cpu", max_new_tokens=4), tmp_path / "cache")
    first = llm.complete("The feature fires on")
    assert isinstance(first, str) and llm.requests == 1
    assert llm.complete("The feature fires on") == first and llm.requests == 1 and llm.hits == 1


def test_explainers_and_simulators_are_chosen_by_name(tmp_path):
    from analyses.scoring import make_scorers

    llm = make_llm("openai", "m", base_url="http://127.0.0.1:9/v1", cache_dir=tmp_path)
    ex, sim = make_scorers("tokens", "llm", llm=llm)
    assert ex.name == "tokens" and isinstance(sim, LLMSimulator)
    with pytest.raises(InterpError, match="cannot read an LLM's sentence"):
        make_scorers("llm", "tokens", llm=llm)
    with pytest.raises(InterpError, match="needs a language model"):
        make_scorers("llm", "llm")
    with pytest.raises(InterpError, match="unknown LLM backend"):
        make_llm("claude-direct", "m")
