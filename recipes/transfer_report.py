"""Transfer report: pretrained vs random-init over label budgets, with negative-transfer and overfitting flags.

Run:
    python recipes/transfer_report.py --config recipes/configs/transfer/report_rt_minilm.yaml [--key value ...]

Writes runs under `output_dir` (results.jsonl: a rerun skips finished runs, so an interrupted report
resumes) and `report.md` + `curve.png` under `report_dir`. See nlp_transfer/transfer/report.py.
"""

import sys
from pathlib import Path

from nlp_transfer.transfer.common import recipe_main
from nlp_transfer.transfer.report import ReportConfig, run_study, summarise
from nlp_transfer.transfer.report_render import markdown, plot
from nlp_transfer.transfer.study import read_rows


def report(cfg: ReportConfig) -> str:
    rows = read_rows(Path(cfg.output_dir) / "results.jsonl") if cfg.render_only else run_study(cfg)
    summary = summarise(rows, cfg.noise_z, cfg.overfit_gap)
    out = Path(cfg.report_dir)
    plot(summary, out / "curve.png", cfg.title)
    text = markdown(summary, cfg.title, cfg.notes)
    (out / "report.md").write_text(text)
    return text


if __name__ == "__main__":
    sys.exit(recipe_main(ReportConfig, report, sys.argv[1:]))
