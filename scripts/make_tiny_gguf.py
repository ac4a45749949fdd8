#!/usr/bin/env python3
"""Writes a tiny llama-architecture GGUF model: random weights (deterministic from --seed) and the
real vocabulary of one of llama.cpp's vocab-only files. About 5 MB; real loading, tokenization and
generation in llama-server, meaningless text. Needs Debian's python3-numpy and llama.cpp's gguf-py."""
import argparse
import sys


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--gguf-py", required=True, help="llama.cpp's gguf-py folder")
    ap.add_argument("--vocab", required=True, help="a models/ggml-vocab-*.gguf file (llama architecture)")
    ap.add_argument("--out", required=True)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--embd", type=int, default=64)
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--heads", type=int, default=4)
    ap.add_argument("--ff", type=int, default=128)
    ap.add_argument("--ctx", type=int, default=2048)
    a = ap.parse_args()
    sys.path.insert(0, a.gguf_py)
    import numpy as np
    from gguf import GGUFReader, GGUFWriter, GGUFValueType

    vocab = GGUFReader(a.vocab)
    f = {k: v.contents() for k, v in vocab.fields.items()}
    tokens = f["tokenizer.ggml.tokens"]
    n_vocab = len(tokens)
    rng = np.random.default_rng(a.seed)

    w = GGUFWriter(a.out, "llama")
    w.add_name("bench-proxy tiny llama (random weights)")
    w.add_context_length(a.ctx)
    w.add_embedding_length(a.embd)
    w.add_block_count(a.layers)
    w.add_feed_forward_length(a.ff)
    w.add_head_count(a.heads)
    w.add_head_count_kv(a.heads)
    w.add_rope_dimension_count(a.embd // a.heads)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_vocab_size(n_vocab)
    w.add_file_type(1)  # mostly F16
    w.add_tokenizer_model(f["tokenizer.ggml.model"])
    w.add_tokenizer_pre(f.get("tokenizer.ggml.pre", "default"))
    w.add_token_list(tokens)
    w.add_token_scores(f["tokenizer.ggml.scores"])
    w.add_token_types(f["tokenizer.ggml.token_type"])
    w.add_bos_token_id(f["tokenizer.ggml.bos_token_id"])
    w.add_eos_token_id(f["tokenizer.ggml.eos_token_id"])
    w.add_unk_token_id(f["tokenizer.ggml.unknown_token_id"])
    w.add_add_bos_token(bool(f.get("tokenizer.ggml.add_bos_token", True)))
    w.add_add_eos_token(bool(f.get("tokenizer.ggml.add_eos_token", False)))
    w.add_chat_template(
        "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
        "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")

    def mat(rows, cols):
        return (rng.standard_normal((rows, cols)) * 0.02).astype(np.float16)

    def norm(n):
        return np.ones(n, dtype=np.float32)

    e, ff = a.embd, a.ff
    w.add_tensor("token_embd.weight", mat(n_vocab, e))
    for i in range(a.layers):
        w.add_tensor(f"blk.{i}.attn_norm.weight", norm(e))
        for t in ("attn_q", "attn_k", "attn_v", "attn_output"):
            w.add_tensor(f"blk.{i}.{t}.weight", mat(e, e))
        w.add_tensor(f"blk.{i}.ffn_norm.weight", norm(e))
        w.add_tensor(f"blk.{i}.ffn_gate.weight", mat(ff, e))
        w.add_tensor(f"blk.{i}.ffn_up.weight", mat(ff, e))
        w.add_tensor(f"blk.{i}.ffn_down.weight", mat(e, ff))
    w.add_tensor("output_norm.weight", norm(e))
    w.add_tensor("output.weight", mat(n_vocab, e))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    print(a.out)


if __name__ == "__main__":
    main()
