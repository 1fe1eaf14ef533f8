"""Render a transfer-report summary as Markdown and as a PNG learning curve."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from nlp_transfer.transfer.report import SCRATCH, budget_key


def _x(budget: str, n_train: int | None) -> float:
    return float(n_train) if budget == "all" and n_train else float(budget)


def plot(summary: dict[str, Any], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.5, 4.8), dpi=120)
    for method in summary["methods"]:
        rows = sorted((r for r in summary["table"] if r["method"] == method), key=lambda r: budget_key(r["budget"]))
        xs = [_x(r["budget"], r["n_train"]) for r in rows]
        style = {"linestyle": "--", "color": "black", "marker": "s"} if method == SCRATCH else {"marker": "o"}
        label = f"{method} (random init)" if method == SCRATCH else f"{method} (pretrained)"
        ax.errorbar(xs, [r["acc"] for r in rows], yerr=[r["sd"] for r in rows], capsize=3, label=label, **style)
    embed = [(b, v) for (m, b), v in summary["baselines"].items() if m == "embed_lr" and b != "0"]
    if embed:
        embed.sort(key=lambda t: budget_key(t[0]))
        n_by_budget = {r["budget"]: r["n_train"] for r in summary["table"]}
        ax.errorbar([_x(b, n_by_budget.get(b)) for b, _ in embed], [v[0] for _, v in embed], yerr=[v[1] for _, v in embed],
                    capsize=3, marker="^", linestyle=":", label="frozen mean-pooled embeddings + logistic regression")  # fmt: skip
    if ("zero_shot", "0") in summary["baselines"]:
        ax.axhline(summary["baselines"][("zero_shot", "0")][0], color="tab:gray", linestyle="-.", label="zero-shot (label descriptions)")
    if summary["majority"] is not None:
        ax.axhline(summary["majority"], color="tab:red", linestyle=":", label="majority class")
    ax.set_xscale("log", base=2)
    ticks = sorted({_x(r["budget"], r["n_train"]) for r in summary["table"]})
    ax.set_xticks(ticks, [f"{t:g}" for t in ticks])
    ax.minorticks_off()
    ax.set_xlabel("labelled training examples (log scale)")
    ax.set_ylabel("test accuracy (mean ± sd over seeds)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="best")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)


def markdown(summary: dict[str, Any], title: str, notes: list[str], image: str | None = "curve.png") -> str:
    lines = [f"# {title}", ""]
    lines += [f"- {n}" for n in notes]
    if notes:
        lines.append("")
    if image:
        lines += [f"![accuracy vs labelled examples]({image})", ""]
    lines += ["## Test accuracy by label budget", "",
              "| method | labels | test acc (mean ± sd) | seeds | vs scratch | verdict | early-stop effect | train-val gap | train s/run |",
              "|---|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for r in summary["table"]:
        delta = f"{r['delta']:+.3f} (SE {r['se']:.3f})" if "delta" in r else ""
        gap = f"{r['gap']:.2f}" + (" **overfit**" if r["overfit"] else "") if r["gap"] == r["gap"] else "n/a"
        last = f"{r['acc_selected']:.3f} vs {r['acc_last']:.3f}" if r["acc_last"] == r["acc_last"] else "n/a"
        lines.append(f"| {r['method']} | {r['n_train']} | {r['acc']:.3f} ± {r['sd']:.3f} | {r['seeds']} | {delta} | {r['verdict']} | {last} | {gap} | {r['time_s']:.0f} |")
    if summary["baselines"] or summary["majority"] is not None:
        lines += ["", "## Reference lines (no fine-tuning)", "", "| baseline | labels | test acc (mean ± sd) |", "|---|---|---|"]
        if summary["majority"] is not None:
            lines.append(f"| majority class | 0 | {summary['majority']:.3f} |")
        for (m, b), (acc, sd) in sorted(summary["baselines"].items(), key=lambda kv: (kv[0][0], budget_key(kv[0][1]))):
            name = {"zero_shot": "zero-shot: cosine to label descriptions", "embed_lr": "frozen embeddings + logistic regression"}[m]
            lines.append(f"| {name} | {b} | {acc:.3f} ± {sd:.3f} |")
    lines += ["", "## Flags", ""]
    lines += [f"- {f}" for f in summary["flags"]] or ["- none"]
    lines += ["", "Columns: *test acc* is on the whole test split, with the checkpoint that scored best on validation "
              "(best-weight selection, i.e. early stopping). *early-stop effect* compares, on the fixed test subset "
              "scored at every validation pass, that selected checkpoint with the last one: their difference is what "
              "early stopping bought. *train-val gap* is train minus validation accuracy at the end of training "
              "(training examples capped at 512).", ""]  # fmt: skip
    return "\n".join(lines)
