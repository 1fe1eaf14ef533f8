"""Few-shot (k labelled examples per class, several seeds) and zero-shot baselines.

Run:
    python recipes/fewshot.py --config recipes/configs/transfer/fewshot_rt_minilm.yaml [--key value ...]

Writes `results.jsonl` (a rerun skips finished runs) and `report.md` under `output_dir`.
"""

import sys
from pathlib import Path

from nlp_transfer.transfer.common import recipe_main
from nlp_transfer.transfer.fewshot import FewShotConfig, markdown, run_study


def study(cfg: FewShotConfig) -> str:
    text = markdown(run_study(cfg))
    (Path(cfg.output_dir) / "report.md").write_text(text)
    return text


if __name__ == "__main__":
    sys.exit(recipe_main(FewShotConfig, study, sys.argv[1:]))
