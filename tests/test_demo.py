"""The Gradio demo (demo/app.py) on tiny adapters trained here: discovery, multi-adapter switching,
refusals, and the served app through gradio_client (both endpoints, errors, 50 concurrent requests).

The app runs as users start it (`python demo/app.py --adapters DIR --port N`) in a subprocess on a
free 127.0.0.1 port; the trained runs are cached for the whole session, so the browser tests reuse them.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pandas as pd
import pytest

from conftest import synthetic_reviews, tiny_config

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ["the cast was great and moving", "a dull and tedious plot", "really quite charming"]
DOCUMENT = "the film was a really great story and the cast was superb . the plot was gripping and charming"


# --- tiny runs, trained once per session -----------------------------------------------------------


def _summary_csv(root: Path) -> Path:
    """document -> summary pairs a tiny decoder learns in a few dozen steps (a constant-ish summary)."""
    root.mkdir(parents=True, exist_ok=True)
    for split, n, seed in (("train", 48, 0), ("validation", 8, 1), ("test", 8, 2)):
        rows = synthetic_reviews(n, seed)
        docs = [f"{r['text']} . {r['text']}" for r in rows]
        pd.DataFrame({"document": docs, "summary": [f"the film was {r['label']}" for r in rows]}).to_csv(
            root / f"{split}.csv", index=False
        )
    return root


def _refused_copies(runs: Path) -> None:
    """Two runs the demo must refuse: an adapter whose base does not match, and pickle-only weights."""
    bad = runs / "wrong_base"
    shutil.copytree(runs / "sentiment_a", bad, ignore=shutil.ignore_patterns("checkpoints", "logs"))
    meta = json.loads((bad / "nlp_transfer.json").read_text())
    meta["base_fingerprint"]["hidden_size"] = 999  # as if trained on another base with the same name
    (bad / "nlp_transfer.json").write_text(json.dumps(meta))
    pickle = runs / "pickle_only"
    shutil.copytree(runs / "sentiment_b", pickle, ignore=shutil.ignore_patterns("checkpoints", "logs"))
    (pickle / "adapter_model.safetensors").rename(pickle / "adapter_model.bin")


def tiny_runs(tmp_path_factory: pytest.TempPathFactory, tiny_models: dict, review_csv: Path) -> Path:
    """runs/{sentiment_a, sentiment_b, summariser, wrong_base, pickle_only}, built once per session."""
    from nlp_transfer.pipeline import run

    runs = tmp_path_factory.getbasetemp() / "demo_runs"
    if (runs / ".complete").exists():
        return runs
    shutil.rmtree(runs, ignore_errors=True)
    bert, once = tiny_models["bert"], {"eval_every": 1000}  # one evaluation, at the end
    # fmt: off
    run(tiny_config(bert, review_csv, runs / "sentiment_a", method="lora", lr=2e-2, epochs=2, method_args={"r": 4}, **once))
    run(tiny_config(bert, review_csv, runs / "sentiment_b", method="lora", lr=5e-3, epochs=1, seed=7, method_args={"r": 4}, **once))
    run(tiny_config(
        tiny_models["llama"], _summary_csv(runs.parent / "demo_summaries"), runs / "summariser", task="summarisation",
        method="lora", lr=5e-2, epochs=6, batch_size=8, method_args={"r": 8}, text_column="document", max_source_tokens=48,
        max_target_tokens=16, max_new_tokens=12, eval_generate_samples=0, metric_for_best="loss", **once,
    ))
    # fmt: on
    _refused_copies(runs)
    (runs / ".complete").touch()
    return runs


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory, tiny_models: dict, review_csv: Path) -> Path:
    return tiny_runs(tmp_path_factory, tiny_models, review_csv)


# --- the served app ---------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until_up(url: str, proc: subprocess.Popen | None, log: Path | None, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            pytest.fail(f"the demo exited with {proc.returncode}:\n{log.read_text()[-3000:] if log else ''}")
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    pytest.fail(
        f"the demo did not answer at {url} within {timeout} s:\n{log.read_text()[-3000:] if log else ''}"
    )


def serve(runs: Path, log: Path, *extra: str) -> Iterator[str]:
    """Start `python demo/app.py --adapters RUNS` on a free port; yield its URL; stop it."""
    port = free_port()
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1"}
    cmd = [
        sys.executable,
        "demo/app.py",
        "--adapters",
        str(runs),
        "--port",
        str(port),
        "--zero-shot-base",
        "none",
        *extra,
    ]
    with open(log, "w") as out:
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/"
    try:
        wait_until_up(url, proc, log)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()


@pytest.fixture(scope="module")
def server(runs: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    log = tmp_path_factory.mktemp("demo_server") / "demo.log"
    for url in serve(runs, log, "--no-examples", "--max-chars", "500"):
        yield url, log


@pytest.fixture(scope="module")
def client(server: tuple[str, Path]):
    from gradio_client import Client

    return Client(server[0], verbose=False)


# --- the registry, in process ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def registry(runs: Path):
    from demo import registry as reg

    return reg.load_all(*reg.discover([str(runs)]))


def test_adapters_of_one_base_share_one_loaded_model_and_switch_exactly(runs: Path, registry) -> None:
    from demo.registry import classify
    from nlp_transfer.predict import load_predictor

    assert sorted(registry.adapters) == ["sentiment_a", "sentiment_b", "summariser"]
    group = registry.groups["sentiment_a"]
    assert registry.groups["sentiment_b"] is group, "two adapters of one base must share one loaded model"
    assert len(group.predictor.model.peft_config) == 2
    alone = {n: load_predictor(str(runs / n)) for n in ("sentiment_a", "sentiment_b")}
    for name in ("sentiment_a", "sentiment_b", "sentiment_a"):  # switch back and forth
        for text in SAMPLES:
            want = alone[name].predict([text])[0]["probs"]
            got = classify(registry, name, text)
            assert got == pytest.approx(want, abs=1e-6), name
    assert classify(registry, "sentiment_a", SAMPLES[0]) != pytest.approx(
        classify(registry, "sentiment_b", SAMPLES[0]), abs=1e-3
    )


def test_summariser_adapter_and_its_zero_shot_base_run_on_one_model(
    runs: Path, registry, tiny_models: dict
) -> None:
    from nlp_transfer.predict import load_predictor
    from nlp_transfer.tasks.summary_model import load_zero_shot_summariser

    base = str(tiny_models["llama"])
    assert registry.base_models("summarisation") == [base]
    with registry.use("summariser") as s:
        tuned = s.summarise([DOCUMENT], max_new_tokens=12)
    with registry.zero_shot(base) as s:
        untuned = s.summarise([DOCUMENT], max_new_tokens=12)
    assert tuned == load_predictor(str(runs / "summariser")).summarise([DOCUMENT], max_new_tokens=12)
    assert untuned == load_zero_shot_summariser(base).summarise([DOCUMENT], max_new_tokens=12)
    assert tuned[0].strip(), "the tiny summariser should produce some text"


def test_wrong_base_and_pickle_weights_are_refused_with_the_reason(registry) -> None:
    reasons = {Path(r.source).name: r.reason for r in registry.refused}
    assert set(reasons) == {"wrong_base", "pickle_only"}
    assert "another base model" in reasons["wrong_base"] and "hidden_size" in reasons["wrong_base"]
    assert "only safetensors" in reasons["pickle_only"] and "adapter_model.bin" in reasons["pickle_only"]


def test_cli_defaults_are_safe() -> None:
    from demo.app import parse_args

    s = parse_args([])
    assert (s.host, s.sources, s.concurrency) == ("127.0.0.1", ["runs"], 2)
    assert s.max_chars > 0 and s.max_queue >= 50
    assert os.environ["GRADIO_ANALYTICS_ENABLED"] == "False"


# --- the served app through gradio_client ------------------------------------------------------------


def test_server_binds_localhost_and_reports_refusals(server: tuple[str, Path]) -> None:
    url, log = server
    text = log.read_text()
    assert "Running on local URL:  http://127.0.0.1:" in text
    assert "refused" in text and "another base model" in text and "only safetensors" in text


def test_both_endpoints_through_gradio_client(client) -> None:
    endpoints = client.view_api(print_info=False, return_format="dict")["named_endpoints"]
    assert {"/classify", "/summarise", "/compare_sentiment", "/compare_summaries", "/adapters"} <= set(
        endpoints
    )

    label, info, latency = client.predict(SAMPLES[0], "sentiment_a", api_name="/classify")
    assert label["label"] in ("negative", "positive")
    assert sum(c["confidence"] for c in label["confidences"]) == pytest.approx(1, abs=1e-5)
    assert "sentiment_a" in info and "lora" in info and "accuracy" in info
    assert latency.startswith("Latency: ")

    job = client.submit(DOCUMENT, "summariser", 12, api_name="/summarise")
    summary, info, latency = job.result(timeout=120)
    partials = [o[0] for o in job.outputs()]
    assert summary.strip() and "ROUGE-L" in info and "first token" in latency
    assert len(partials) >= 2 and partials[-1] == summary, "the summary should arrive in several steps"

    names = {a["name"]: a for a in client.predict(api_name="/adapters")}
    zero = next(n for n in names if n.startswith("zero-shot:"))
    assert names["sentiment_a"]["test_metrics"]["accuracy"] >= 0
    a, b, text = client.predict(SAMPLES[1], "sentiment_a", "sentiment_b", api_name="/compare_sentiment")
    assert a["label"] and b["label"] and "sentiment_a" in text and "sentiment_b" in text
    tuned, untuned, text = client.predict(DOCUMENT, "summariser", zero, 12, api_name="/compare_summaries")
    assert tuned == summary and isinstance(untuned, str) and "zero-shot" in text


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("   ", "sentiment_a"), "input is empty"),
        (("x" * 501, "sentiment_a"), "at most 500"),
        (("fine", "no_such_adapter"), "not in the list of choices"),
    ],
)
def test_bad_requests_get_a_clear_error(client, args: tuple, message: str) -> None:
    from gradio_client.exceptions import AppError

    with pytest.raises(AppError, match=message):
        client.predict(*args, api_name="/classify")


def test_summary_length_is_bounded(client) -> None:
    from gradio_client.exceptions import AppError

    with pytest.raises(AppError, match="maximum value 256|between 1 and 256"):
        client.predict(DOCUMENT, "summariser", 10_000, api_name="/summarise")


def test_fifty_concurrent_sentiment_requests_all_succeed(client) -> None:
    texts = [f"{SAMPLES[i % 3]} {i}" for i in range(50)]
    jobs = [
        client.submit(t, ("sentiment_a", "sentiment_b")[i % 2], api_name="/classify")
        for i, t in enumerate(texts)
    ]
    results = [job.result(timeout=300) for job in jobs]
    assert len(results) == 50 and all(r[0]["label"] in ("negative", "positive") for r in results)


# --- no adapter yet ----------------------------------------------------------------------------------


def test_without_adapters_the_demo_starts_and_says_how_to_train(tmp_path: Path) -> None:
    from gradio_client import Client
    from gradio_client.exceptions import AppError

    from demo import app
    from demo import registry as reg

    empty = tmp_path / "runs"
    empty.mkdir()
    settings = app.Settings(sources=[str(empty)], examples=False)
    demo = app.build_app(reg.load_all(*reg.discover(settings.sources)), settings)
    demo.queue(default_concurrency_limit=1)
    port = free_port()
    demo.launch(
        server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True, ssr_mode=False
    )
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/config", timeout=10) as r:
            page = r.read().decode()
        assert "recipes/classify.py --config recipes/configs/sentiment_minilm_lora.yaml" in page
        assert "zero-shot" in page
        c = Client(f"http://127.0.0.1:{port}/", verbose=False)
        assert [a["name"] for a in c.predict(api_name="/adapters")] == [
            "zero-shot:smollm2-135m"
        ]  # offered, not loaded
        with pytest.raises(AppError, match="Train one with"):
            c.predict("a fine film", None, api_name="/classify")
    finally:
        demo.close()


def test_concurrent_in_process_switching_never_mixes_adapters(registry) -> None:
    """Requests for different adapters of one base, at once: each gets its own adapter's answer."""
    from demo.registry import classify

    want = {n: classify(registry, n, SAMPLES[0]) for n in ("sentiment_a", "sentiment_b")}
    names = ["sentiment_a", "sentiment_b"] * 20
    with ThreadPoolExecutor(8) as pool:
        got = list(pool.map(lambda n: classify(registry, n, SAMPLES[0]), names))
    for name, probs in zip(names, got, strict=True):
        assert probs == pytest.approx(want[name], abs=1e-6)


def test_hub_ids_are_downloaded_and_share_the_base_with_local_runs(
    runs: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`--adapters user/repo` for users with internet; here a local Hub stand-in on 127.0.0.1."""
    from huggingface_hub import constants as hf_constants

    from demo import registry as reg
    from hub_standin import HubStandin
    from nlp_transfer import hub

    standin = HubStandin()
    standin.start(lifetime=60)
    try:
        monkeypatch.setattr(hf_constants, "HF_HUB_OFFLINE", False)
        monkeypatch.setenv("HF_HOME", str(tmp_path / "hf_home"))
        monkeypatch.setenv("HF_ENDPOINT", standin.endpoint)
        hub.push(
            runs / "sentiment_a", "tester/demo-sentiment", token=standin.token, endpoint=standin.endpoint
        )
        found, refused = reg.discover(["tester/demo-sentiment", str(runs / "sentiment_b"), "tester/missing"])
        assert [a.name for a in found] == ["tester/demo-sentiment", "sentiment_b"]
        assert [r.source for r in refused] == ["tester/missing"]
        registry = reg.load_all(found, refused)
    finally:
        standin.stop()
    assert registry.groups["tester/demo-sentiment"] is registry.groups["sentiment_b"]
    local = reg.load_all(*reg.discover([str(runs / "sentiment_a")]))
    assert reg.classify(registry, "tester/demo-sentiment", SAMPLES[0]) == pytest.approx(
        reg.classify(local, "sentiment_a", SAMPLES[0]), abs=1e-6
    )
