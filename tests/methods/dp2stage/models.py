"""The tiny random-init GPT-2 the DP-2Stage tests train (both test modules use it)."""


def tiny_gpt2(vocab: int = 50, seed: int = 0):
    """A one-layer, 16-wide GPT-2 without dropout, initialised from ``seed`` without touching the
    global torch RNG."""
    import torch
    import transformers

    with torch.random.fork_rng():
        torch.manual_seed(seed)
        cfg = transformers.GPT2Config(vocab_size=vocab, n_positions=32, n_embd=16, n_layer=1,
                                      n_head=2, bos_token_id=0, eos_token_id=0,
                                      resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0)
        return transformers.GPT2LMHeadModel(cfg)
