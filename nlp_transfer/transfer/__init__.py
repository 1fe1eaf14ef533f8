"""Transfer learning beyond fine-tuning: each technique is a small wrapper around the shared pipeline.

The generic loop only calls `model(**batch).loss`, so a technique that changes the objective is a
model wrapper (plus, where it needs them, a sampler or an extra data stream) handed to
`pipeline.run` through a task object; the loop, checkpoints and export stay the same.

- mmd.py, grl.py: the two distances of domain adaptation (multi-kernel MMD, gradient reversal)
- domain_adapt.py: task loss on labelled source + lambda * distance to unlabelled target features
- distill.py: a frozen fine-tuned teacher's soft labels train a smaller or adapter student
- multitask.py: one shared encoder, one head per task, task-pure batches mixed by a sampling rule
- dapt.py: continued masked-/causal-LM pretraining on unlabelled in-domain text
- fewshot.py, zeroshot.py, embed.py: what k labels per class, and what no training, give
- report.py, report_render.py: pretrained vs scratch over label budgets, negative-transfer and
  overfitting flags; Markdown table and PNG curve
- tracked.py, study.py: budget-limited classification runs that also track train/test per evaluation
- derived_datasets.py: datasets derived from the shipped ones (subjectivity, a typo-shifted target domain)
- common.py: TrainConfig-backed recipe configs, run clean-up, statistics, head-feature capture

Pipeline hooks used (no-ops in `tasks.base.Task`, which every task here inherits): a task object
passed to `run(cfg, task=...)`, `task.wrap_prepared(prepared)` after the method prepared the model,
`task.train_sampler(train)`, `task.before_training(...)`, and `init: scratch` in TrainConfig for the
random-init baseline.
"""
