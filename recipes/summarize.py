"""Summarisation by transfer learning: adapt a pretrained decoder (or T5/BART) to write summaries.

Run:
    python recipes/summarize.py --config recipes/configs/summarize_smollm2_lora.yaml [--key value ...]
    python recipes/summarize.py --config recipes/configs/summarize_smollm2_full.yaml --max_steps 5

Features
- models: built-in `smollm2-135m` (Llama-family decoder with a chat template), any local directory or Hub
  id of a GPT-2 / Llama / GPT-NeoX / OPT-style decoder (`AutoModelForCausalLM`) or a T5 / BART
  seq2seq model (`AutoModelForSeq2SeqLM`); decoders without a pad token pad with their eos token;
- prompt: one format everywhere (tasks/prompts.py): the tokenizer's chat template when it has one,
  else "Summarise:\\n{document}\\nSummary:"; training, evaluation, prediction and the zero-shot
  baseline all use it;
- training: loss on the summary tokens only (prompt tokens are -100 in the labels); the document is
  truncated to `max_source_tokens` and to fit the context, the summary is kept whole (up to
  `max_target_tokens`); optional `packing` of short examples; methods full, lora, dora, ia3, ...;
  bf16 autocast where supported (`precision: auto`); the shared Accelerate loop (checkpoints,
  `--resume`, early stopping, best-weight selection on `metric_for_best`);
- evaluation: teacher-forced loss, and batched greedy generation (KV cache, left padding, at most
  `max_new_tokens`) scored with ROUGE-1/2/L through the shipped offline `evaluate` module, with a
  bootstrap 95% CI, mean summary length and how many outputs hit the token cap. During training
  only the first `eval_generate_samples` validation examples are generated (CPU time); the test
  split is generated in full, for the tuned model and for the untouched base (zero-shot), and the
  gain comes with a paired-bootstrap CI;
- data: the built-in `wiki_lead` set (text_column: document), or CSV/JSONL/Parquet files and
  `save_to_disk` directories with configurable `text_column` / `summary_column`;
- output: adapter or model, tokenizer, metrics.json (test, zero_shot, gain_vs_zero_shot, history),
  samples.jsonl (first test examples: reference, tuned and zero-shot summaries), model card.
  `nlp-transfer merge RUN_DIR OUT_DIR` folds a LoRA adapter into a standalone model.

Limits
- ROUGE counts word overlap: it sees neither invented facts nor repetition loops (look at samples.jsonl);
- greedy decoding only (no beams or sampling at evaluation), single reference per example;
- documents longer than the budget are cut, not chunked: late content is never seen;
- packing is for decoders and needs a model that builds its attention mask from position ids
  (recent transformers Llama/GPT-2-style models); packed runs report tokens/s as 0;
- the built-in wiki_lead test split has 18 examples: read the CI, not just the mean.
"""

import sys

from nlp_transfer import log
from nlp_transfer.config import parse_config
from nlp_transfer.errors import NLPTransferError
from nlp_transfer.pipeline import run
from nlp_transfer.report import print_summary
from nlp_transfer.tasks.summarisation import SummarisationTask
from nlp_transfer.train_config import TrainConfig


def main(argv: list[str]) -> int:
    log.setup()
    try:
        cfg = parse_config(TrainConfig, argv)
        if cfg.task != SummarisationTask.name:
            raise NLPTransferError(
                f"recipes/summarize.py runs task {SummarisationTask.name}; this config has task {cfg.task!r}"
            )
        print_summary(cfg, run(cfg))
    except NLPTransferError as e:
        return log.report_error(e)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
