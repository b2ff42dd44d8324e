"""Local causal language models, shared by every family that trains or samples one.

``model`` (the :class:`~dparena.lm.model.LM` bundle, SmolLM2 / GPT-2 loading, LoRA, the frozen
reference scorer), ``smollm2`` and ``tiny`` (model folders: the SmolLM2 asset made plain, tiny
random-init models, built once through :func:`dparena.io.build_folder_once`), ``loss`` (batching and per-group
losses), ``train`` (non-private fine-tuning and DP-SGD through Opacus), ``sample`` (the decode loop
and the top-p samplers). Used by DP-2Stage, dp-finetune-lm, the perplexity metrics and the
transformers text backend (:mod:`dparena.llm.hf`). Heavy libraries are imported inside functions.
"""
