"""Two CPU processes through `nlp-transfer launch`: DDP, DeepSpeed ZeRO-2/3 (+ offload) and FSDP2.

Every mode is one real 2-process launch of tests/dist_scripts/train_tiny.py (a tiny BERT without
dropout, so one and two processes can agree to float precision). The run is killed at step 15 and
resumed in the same processes; the ranks record what they fetched, wrote and computed. From that:
disjoint shards, each evaluation example counted once, one writer, saved weights equal to the
in-memory (sharded) model, and the resumed 2-process run ending where an uninterrupted 1-process
run with the same global batch ends. Launches that come up wrong must fail loudly.
Each launch runs under a timeout (the first DeepSpeed launch on a fresh machine JIT-builds an op).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

# A test pays for its module fixture's launch (each bounded at TIMEOUT_S by run_bounded) and the in-process baseline.
pytestmark = [pytest.mark.distributed, pytest.mark.timeout(900)]

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "tests" / "dist_scripts" / "train_tiny.py"
CONFIGS = ROOT / "accelerate_configs"
SAMPLES = ["the cast was great and moving", "a dull and tedious plot", "really quite charming", "the script was awful"]
TIMEOUT_S = 420  # one launch; generous: first DeepSpeed use compiles an op, CI machines are slow
N_TRAIN, N_EVAL, BATCH, CRASH_AT = 192, 48, 8, 15
MODES = {  # config file -> (method, lr, Accelerate's distributed type)
    "cpu_ddp": ("full", 1e-2, "MULTI_CPU"),
    "deepspeed_zero2": ("full", 1e-2, "DEEPSPEED"),
    "deepspeed_zero3": ("lora", 2e-2, "DEEPSPEED"),
    "fsdp": ("lora", 2e-2, "FSDP"),
}


def run_bounded(cmd: list[str], timeout: float = TIMEOUT_S, env: dict | None = None) -> subprocess.CompletedProcess:
    """Run a launcher in its own process group; on timeout kill the whole group (no orphan ranks)."""
    full_env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false", **(env or {})}
    proc = subprocess.Popen(cmd, cwd=ROOT, env=full_env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, _ = proc.communicate()
        pytest.fail(f"{' '.join(cmd[:6])} ... did not finish in {timeout} s (hang?)\n{out[-4000:]}")
    return subprocess.CompletedProcess(cmd, proc.returncode, out, "")


def run_config(model: Path, data: Path, out: Path, method: str, lr: float, **extra) -> dict:
    cfg = dict(
        model=str(model), dataset=str(data), method=method, lr=lr, batch_size=BATCH, eval_batch_size=32,
        precision="fp32", report_to="none", max_length=32, max_steps=36, eval_every=6, save_every=12,
        keep_checkpoints=2, log_every=6, output_dir=str(out), seed=42,
    )  # fmt: skip
    if method == "lora":
        cfg["method_args"] = {"r": 4, "lora_dropout": 0.0}
    cfg.update(extra)
    return cfg


def launch(config: Path, record: Path, cfg: dict, crash_at: int = 0, **kw) -> subprocess.CompletedProcess:
    args = [str(SCRIPT), str(record), json.dumps({**cfg, "_n_train": N_TRAIN})] + ([str(crash_at)] if crash_at else [])
    return run_bounded([sys.executable, "-m", "nlp_transfer.launch", "--config_file", str(config), *args], **kw)


def ranks(record: Path) -> list[dict]:
    return [json.loads((record / f"rank{r}.json").read_text()) for r in (0, 1)]


@pytest.fixture(scope="module")
def nodrop_bert(tiny_models: dict, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny BERT without dropout: different ranks draw different masks than one process would."""
    import shutil

    path = tmp_path_factory.mktemp("nodrop") / "bert"
    shutil.copytree(tiny_models["bert"], path)
    config = json.loads((path / "config.json").read_text())
    config.update(hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    (path / "config.json").write_text(json.dumps(config))
    return path


@pytest.fixture(scope="module")
def one_process(nodrop_bert: Path, review_csv: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """method -> metrics of an uninterrupted 1-process run, global batch 2 x 8 by accumulation."""
    from nlp_transfer.pipeline import run
    from nlp_transfer.train_config import TrainConfig

    results = {}
    for method, lr in sorted({(m, lr) for m, lr, _ in MODES.values()}):
        cfg = TrainConfig(**run_config(nodrop_bert, review_csv, tmp_path_factory.mktemp("one") / method, method, lr), grad_accum=2)
        cfg.validate()
        results[method] = run(cfg)
    return results


@pytest.fixture(scope="module", params=list(MODES))
def dist_run(request: pytest.FixtureRequest, nodrop_bert: Path, review_csv: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """One 2-process launch per mode: killed at step 15, resumed in the same processes."""
    mode = request.param
    method, lr, dist_type = MODES[mode]
    root = tmp_path_factory.mktemp(mode)
    cfg = run_config(nodrop_bert, review_csv, root / "out", method, lr)
    result = launch(CONFIGS / f"{mode}.yaml", root / "record", cfg, crash_at=CRASH_AT)
    assert result.returncode == 0, result.stdout[-6000:]
    return {"mode": mode, "method": method, "type": dist_type, "out": root / "out", "ranks": ranks(root / "record"), "log": result.stdout}


def test_two_distinct_ranks_in_the_requested_mode(dist_run: dict) -> None:
    r0, r1 = dist_run["ranks"]
    assert (r0["process_index"], r1["process_index"]) == (0, 1)
    assert r0["num_processes"] == r1["num_processes"] == 2
    assert r0["distributed_type"] == r1["distributed_type"] == dist_run["type"]
    assert (r0["is_main"], r1["is_main"]) == (True, False)
    if dist_run["mode"] in ("deepspeed_zero3", "fsdp"):  # the weights really are sharded
        assert r0["sharded_trainable"] > 0 and r1["sharded_trainable"] > 0


def test_ranks_train_on_disjoint_shards(dist_run: dict) -> None:
    per_epoch = N_TRAIN // BATCH // 2  # batches each rank fetches in one epoch
    seen = [{i for batch in r["attempts"][0]["train_fetches"][:per_epoch] for i in batch} for r in dist_run["ranks"]]
    assert not seen[0] & seen[1], "both ranks trained on the same examples"
    assert seen[0] | seen[1] == set(range(N_TRAIN)), "an epoch must cover the whole training split"


def test_evaluation_counts_each_example_once(dist_run: dict) -> None:
    for r in dist_run["ranks"]:
        metrics = r["attempts"][-1]["metrics"]
        assert metrics["test"]["examples"] == N_EVAL
        assert {h["examples"] for h in metrics["history"]} == {N_EVAL}


def test_only_the_main_process_writes(dist_run: dict) -> None:
    main, other = (set(r["writes"]) for r in dist_run["ranks"])
    assert {"metrics.json", "nlp_transfer.json"} <= {Path(p).name for p in main}
    # the one exception: a collective save_state, where each rank writes its own shard/RNG state
    stray = sorted(p for p in other if not p.startswith("checkpoints/.tmp-step-"))
    assert not stray, f"rank 1 wrote {stray}"


def test_saved_weights_reproduce_the_distributed_model(dist_run: dict) -> None:
    from nlp_transfer.predict import load_predictor

    out = dist_run["out"]
    if dist_run["method"] == "lora":  # the adapter, with its head, complete (ZeRO-3: not placeholders)
        from safetensors import safe_open

        with safe_open(str(out / "adapter_model.safetensors"), "pt") as f:
            shapes = {k: f.get_slice(k).get_shape() for k in f.keys()}
        assert any("classifier" in k for k in shapes) and all(0 not in s for s in shapes.values())
    in_memory = torch.tensor(dist_run["ranks"][0]["in_memory_logits"])
    torch.testing.assert_close(load_predictor(str(out)).logits(SAMPLES), in_memory, rtol=0, atol=1e-5)


def test_resumed_two_process_run_matches_one_process(dist_run: dict, one_process: dict) -> None:
    crashed, resumed = dist_run["ranks"][0]["attempts"]
    assert "simulated kill" in crashed["error"]
    two, one = resumed["metrics"], one_process[dist_run["method"]]
    assert two["train"]["steps"] == one["train"]["steps"] == 36
    assert two["test"]["accuracy"] == pytest.approx(one["test"]["accuracy"], abs=1e-9)
    assert two["test"]["loss"] == pytest.approx(one["test"]["loss"], abs=1e-4)
    assert [h["loss"] for h in two["history"]] == pytest.approx([h["loss"] for h in one["history"]], abs=1e-4)
    other = dist_run["ranks"][1]["attempts"][1]["metrics"]["test"]
    assert (other["accuracy"], other["loss"]) == (two["test"]["accuracy"], two["test"]["loss"])


def test_zero3_offload_stops_early_on_every_rank(nodrop_bert: Path, review_csv: Path, tmp_path: Path) -> None:
    """Early stopping under ZeRO-3 + CPU offload: both ranks stop at the same step, none hangs."""
    cfg = run_config(nodrop_bert, review_csv, tmp_path / "out", "lora", 1e-9, metric_for_best="loss", early_stopping_patience=1, eval_every=3, save_every=0)
    result = launch(CONFIGS / "deepspeed_zero3_offload.yaml", tmp_path / "record", cfg)
    assert result.returncode == 0, result.stdout[-6000:]
    r0, r1 = ranks(tmp_path / "record")
    train = [r["attempts"][0]["metrics"]["train"] for r in (r0, r1)]
    assert train[0]["stopped_early"] and train[1]["stopped_early"]
    assert train[0]["steps"] == train[1]["steps"] < 36
    from nlp_transfer.predict import load_predictor

    torch.testing.assert_close(load_predictor(str(tmp_path / "out")).logits(SAMPLES), torch.tensor(r0["in_memory_logits"]), rtol=0, atol=1e-5)


@pytest.mark.parametrize(
    "how, accelerate_args, env",
    [
        # Accelerate runs a MULTI_CPU config through its single-process launcher: ONE process starts
        ("cpu_ddp.yaml without the launcher", ["--config_file", str(CONFIGS / "cpu_ddp.yaml")], {}),
        # without GPUs: two processes start, each believes it is alone (rank 0 of 1)
        ("--multi_gpu on CPU", ["--multi_gpu", "--num_processes", "2", "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port", "0"], {}),
    ],
)
def test_a_launch_with_the_wrong_world_size_fails_loudly(how: str, accelerate_args: list, env: dict, tiny_models: dict, review_csv: Path, tmp_path: Path) -> None:
    cfg = run_config(tiny_models["bert"], review_csv, tmp_path / "out", "full", 1e-2, max_steps=2)
    args = [str(SCRIPT), str(tmp_path / "record"), json.dumps({**cfg, "_n_train": N_TRAIN})]
    result = run_bounded([sys.executable, "-m", "accelerate.commands.launch", *accelerate_args, *args], env=env)
    assert result.returncode != 0, f"{how}: a degraded launch trained anyway"
    assert "LaunchError" in result.stdout or "not the distributed run that was asked for" in result.stdout, result.stdout[-3000:]
    assert not (tmp_path / "out").exists(), "nothing may be written by a refused launch"


# --- the launcher's plan, without starting processes ---------------------------------------------


def test_every_config_opens_with_its_command_and_loads_in_accelerate() -> None:
    from accelerate.commands.config.config_args import load_config_from_file

    for path in sorted(CONFIGS.glob("*.yaml")):
        first = path.read_text().splitlines()[0]
        assert first.startswith("# ") and ("launch" in first or "machine" in first), path.name
        assert path.name in path.read_text().split("\n\n")[0] or path.name == "multi_node.yaml", path.name
        load_config_from_file(str(path))  # unknown keys or bad values raise


def test_launcher_turns_cpu_ddp_into_real_ddp_and_tells_the_ranks() -> None:
    import yaml

    from nlp_transfer.launch import plan

    effective, env = plan(yaml.safe_load((CONFIGS / "cpu_ddp.yaml").read_text()), CONFIGS, gpus=0)
    assert effective["distributed_type"] == "MULTI_GPU" and not effective["use_cpu"]
    assert env == {"NLP_TRANSFER_EXPECTED_PROCESSES": "2", "NLP_TRANSFER_EXPECTED_MODE": "MULTI_CPU", "ACCELERATE_USE_CPU": "1"}


def test_launcher_resolves_deepspeed_json_from_anywhere(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import yaml

    from nlp_transfer.launch import plan

    monkeypatch.chdir(tmp_path)
    effective, env = plan(yaml.safe_load((CONFIGS / "deepspeed_zero3.yaml").read_text()), CONFIGS, gpus=0)
    assert Path(effective["deepspeed_config"]["deepspeed_config_file"]) == CONFIGS / "ds_zero3.json"
    assert env["NLP_TRANSFER_EXPECTED_MODE"] == "DEEPSPEED"


@pytest.mark.parametrize(
    "change, message",
    [
        ({"distributed_type": "MULTI_GPU"}, "GPU"),  # no GPUs here: refuse rather than start unsynchronised ranks
        ({"distributed_type": "FSDP", "fsdp_config": {"fsdp_version": 1}}, "FSDP2"),
        ({"num_processes": 3, "num_machines": 2}, "multiple of num_machines"),
        ({"distributed_type": "XLA"}, "not supported"),
    ],
)
def test_launcher_refuses_what_it_cannot_run(change: dict, message: str) -> None:
    import yaml

    from nlp_transfer.errors import ConfigError
    from nlp_transfer.launch import plan

    config = {**yaml.safe_load((CONFIGS / "cpu_ddp.yaml").read_text()), "use_cpu": False, **change}
    with pytest.raises(ConfigError, match=message):
        plan(config, CONFIGS, gpus=0)


def test_export_refuses_an_adapter_saved_from_zero3_placeholders(tmp_path: Path) -> None:
    """What saving without the gathered state dict writes under ZeRO-3: empty tensors."""
    from safetensors.torch import save_file

    from nlp_transfer.export import check_complete

    save_file({"lora_A.weight": torch.zeros(4, 32), "classifier.weight": torch.zeros(0)}, str(tmp_path / "adapter_model.safetensors"))
    assert "empty tensors" in check_complete(tmp_path, trainable=128)
    save_file({"lora_A.weight": torch.zeros(4, 32)}, str(tmp_path / "adapter_model.safetensors"))
    assert "weights were lost" in check_complete(tmp_path, trainable=200)  # e.g. the head went missing
    assert check_complete(tmp_path, trainable=128) is None
