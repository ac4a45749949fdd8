#!/usr/bin/env python3
"""Writes a tiny llama-architecture GGUF model: random weights (deterministic from --seed) and the
real vocabulary of one of llama.cpp's vocab-only files. About 9 MB; real loading, tokenization and
generation in llama-server, meaningless text. Needs Debian's python3-numpy and llama.cpp's gguf-py.

Whatever it generates, greedy or sampled, is valid UTF-8, so llama-server never rejects an answer.
llama-server parses every answer (chat and /completion alike) with llama.cpp's chat output parser
(common/chat.cpp common_chat_peg_parse): for this chat template, which has no reasoning or tool
markers, that parser is content(rest()) + end(), and rest() fails on malformed UTF-8 only
(common/peg-parser.cpp, until parser): the stream ends with the error event "The model produced output
that does not match the expected peg-native format" (Content-only on /completion). A random-weight
model picks SentencePiece's byte-fallback tokens <0x80>..<0xFF> in any order, e.g. a lone
continuation byte 0xB7 after "Campe" in a temperature-0 answer to bank-intents.csv: malformed UTF-8.
So this model keeps the vocabulary (every token id, text and score: tokenization, and with it every
token count, is exactly the original's, and the tokenizer still falls back to <0xXX> for characters
outside the vocabulary) but changes what a token decodes to: the byte tokens of anything but
printable ASCII, tab, LF and CR are UNUSED, which llama.cpp decodes to nothing. Every token then
decodes to a complete UTF-8 string (a vocabulary piece, one ASCII character, nothing; <s>, </s> and
<unk> to nothing, or with --special to their ASCII text), and any
concatenation of complete UTF-8 strings is valid UTF-8. decodable_types() checks this of the vocabulary
it writes."""
import argparse
import os
import sys

# SentencePiece byte-fallback tokens that stay bytes: each is a whole UTF-8 character on its own.
PLAIN_BYTES = set(range(0x20, 0x7F)) | {0x09, 0x0A, 0x0D}


def decodable_types(tokens, types, token_type, special_ids):
    """The token types to write: byte tokens outside PLAIN_BYTES become UNUSED (decoded to nothing).
    Raises unless every token then decodes to a complete UTF-8 string."""
    out = []
    for i, (text, ty) in enumerate(zip(tokens, types)):
        ty = token_type(ty)
        if ty == token_type.BYTE:
            if not (len(text) == 6 and text.startswith("<0x") and text.endswith(">")):
                raise SystemExit(f"token {i}: byte token {text!r} is not <0xXX>")
            if int(text[3:5], 16) not in PLAIN_BYTES:
                ty = token_type.UNUSED
        elif ty in (token_type.CONTROL, token_type.UNKNOWN):
            if i not in special_ids:
                raise SystemExit(f"token {i}: unexpected special token {text!r}")
        elif ty in (token_type.NORMAL, token_type.USER_DEFINED):
            text.encode("utf-8")  # malformed UTF-8 (read as lone surrogates) cannot get past here
        elif ty != token_type.UNUSED:
            raise SystemExit(f"token {i}: unexpected token type {ty!r}")
        out.append(int(ty))
    return out


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
    from gguf import GGUFReader, GGUFWriter, TokenType

    vocab = GGUFReader(a.vocab)
    f = {k: v.contents() for k, v in vocab.fields.items()}
    tokens = f["tokenizer.ggml.tokens"]
    n_vocab = len(tokens)
    rng = np.random.default_rng(a.seed)

    special_ids = {f["tokenizer.ggml.bos_token_id"], f["tokenizer.ggml.eos_token_id"],
                   f["tokenizer.ggml.unknown_token_id"]}
    types = decodable_types(tokens, f["tokenizer.ggml.token_type"], TokenType, special_ids)

    tmp = a.out + ".tmp"
    w = GGUFWriter(tmp, "llama")
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
    w.add_token_types(types)
    w.add_bos_token_id(f["tokenizer.ggml.bos_token_id"])
    w.add_eos_token_id(f["tokenizer.ggml.eos_token_id"])
    w.add_unk_token_id(f["tokenizer.ggml.unknown_token_id"])
    w.add_add_bos_token(bool(f.get("tokenizer.ggml.add_bos_token", True)))
    w.add_add_eos_token(bool(f.get("tokenizer.ggml.add_eos_token", False)))
    # ChatML markers as plain text (no reasoning or tool-call markers): llama.cpp's parser for it is
    # content only (see above).
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
    os.replace(tmp, a.out)  # never a half-written model under the cached name
    print(a.out)


if __name__ == "__main__":
    main()
