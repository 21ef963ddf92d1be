/* gpt.h: a GPT-2 language model as nanoGPT's model.py builds it (token and
 * learned position embeddings, pre-LayerNorm blocks of causal
 * self-attention and a GELU MLP, a final LayerNorm, the output head tied
 * to the token embedding), its loss, its checkpoints in nanoGPT's
 * state_dict names, and inference with a KV cache. Built from the
 * library's modules and ops (examples/gpt/gpt.c); the programs of
 * examples/gpt/ train, fine-tune and sample with it. */
#ifndef EXAMPLES_GPT_GPT_H
#define EXAMPLES_GPT_GPT_H

#include <autograd.h>

#include <stdbool.h>
#include <stdint.h>

/* The model's design, as nanoGPT's GPTConfig. */
typedef struct {
    int64_t vocab_size, block_size, n_layer, n_head, n_embd;
    double dropout; /* on embeddings, attention output projections and MLP
                       output, as nanoGPT (not on the attention weights) */
    bool bias;      /* biases in Linear and LayerNorm, as nanoGPT's bias=True */
} gpt_config;

/* The model (opaque). */
typedef struct gpt gpt;

/* Builds the model in arena a (freed with it), dtype AG_F32 or AG_F64, in
 * training mode, with nanoGPT's initialisation (normal std 0.02, c_proj
 * weights 0.02/sqrt(2*n_layer), zero biases, LayerNorm ones/zeros, lm_head
 * tied to transformer.wte), drawn from seed (which also seeds the dropout
 * masks). Returns the model, or NULL and an error "gpt_new: ..." for a
 * NULL arena or config, another dtype, a bad config (a non-positive size,
 * n_embd % n_head != 0, dropout outside [0, 1)) or no memory. */
gpt *gpt_new(ag_arena *a, ag_dtype dt, const gpt_config *c, uint64_t seed);

/* The config the model was built with (owned by the model); NULL for
 * NULL. */
const gpt_config *gpt_get_config(const gpt *m);

/* The model's dtype (AG_F32 for NULL). */
ag_dtype gpt_dtype(const gpt *m);

/* The module tree (ag_module, owned by the model): ag_module_parameters
 * for optimizers (transformer.wte.weight, transformer.wpe.weight,
 * transformer.h.N.{ln_1,attn.c_attn,attn.c_proj,ln_2,mlp.c_fc,mlp.c_proj}
 * .{weight,bias}, transformer.ln_f.{weight,bias}, in nanoGPT's order; no
 * bias entries without bias), ag_module_state (the parameters and each
 * block's causal-mask buffer transformer.h.N.attn.bias (1,1,block,block),
 * as nanoGPT's state_dict less lm_head.weight, the tied copy of
 * transformer.wte.weight), ag_module_set_training for train/eval (dropout
 * on or off). NULL for NULL. */
ag_module *gpt_module(gpt *m);

/* The generator of the model's dropout masks (owned by the model; seeded
 * by gpt_new from its seed), for a training program to save and restore
 * with a checkpoint, so that a resumed run draws the masks an
 * uninterrupted one would, and to seed apart on each process of a data
 * parallel run. NULL for NULL. */
ag_rng *gpt_dropout_rng(gpt *m);

/* Logits (B,T,V) in arena step for token ids (B,T) AG_I32, 1 <= T <=
 * block_size, every id in [0, vocab_size); recorded for ag_backward when
 * grad mode is on; dropout applies in training mode. Returns NULL and an
 * error "gpt_forward: ..." for a NULL argument (a NULL ids keeps the
 * pending message), ids not AG_I32 of 2 dimensions, T > block_size, an id
 * out of the vocabulary (its position (b, t) and value), or an op's error. */
ag_tensor *gpt_forward(gpt *m, ag_arena *step, ag_tensor *ids);

/* Mean next-token cross-entropy of the logits of ids against targets
 * (B,T) AG_I32 (targets -1 ignored), as nanoGPT's forward(idx, targets): a
 * scalar in arena step. Errors as gpt_forward's, "gpt_loss: ...", also
 * for targets of another shape or dtype, a target out of the vocabulary
 * that is not -1, or every target -1. */
ag_tensor *gpt_loss(gpt *m, ag_arena *step, ag_tensor *ids, ag_tensor *targets);

/* Checkpoint: safetensors (atomic, as ag_save_safetensors) with nanoGPT's
 * keys, what its model.state_dict() holds on PyTorch 1.13: ag_module_state's
 * tensors and lm_head.weight (a copy of transformer.wte.weight), so that
 * nanoGPT's model.load_state_dict(..., strict=True) takes it
 * (examples/gpt/torch_check.py); the config in the metadata (keys
 * vocab_size, block_size, n_layer, n_head, n_embd, dropout, bias, as
 * decimal text, and "format": "pt"). Returns 0, or -1 and an error
 * "gpt_save: ...". */
int gpt_save(gpt *m, const char *path);

/* Loads a checkpoint written by gpt_save (or by nanoGPT with the same
 * keys and the config in the metadata) into m. The file is checked
 * completely before anything changes: its config against m's (every field
 * but dropout, which is a training choice), then names, dtypes and shapes
 * (ag_load_safetensors), lm_head.weight equal to transformer.wte.weight
 * (the head is tied) and the attn.bias masks lower-triangular ones.
 * Returns 0, or -1 and an error "gpt_load: <path>: ..." naming the config
 * field (both values), key, dtype or shape at fault, or the file's damage
 * (truncated, corrupt); m is then unchanged. */
int gpt_load(gpt *m, const char *path);

/* Copies every weight and buffer of `from` into `to`, two models of the
 * same config (dropout aside) and dtype, as gpt_load does from a file
 * (DPO's reference model takes the policy's weights this way). Returns 0,
 * or -1 and an error "gpt_copy: ..." for a NULL model, dtypes that differ
 * or the config field that differs (both values); `to` is then
 * unchanged. */
int gpt_copy(gpt *to, const gpt *from);

/* Reads just the config stored in a checkpoint's metadata into *out (so a
 * program can build the right model before gpt_load). Returns 0, or -1
 * and an error "gpt_read_config: <path>: ..." for a NULL argument, a file
 * that is not a valid safetensors file, a missing or malformed field. */
int gpt_read_config(const char *path, gpt_config *out);

/* ---- inference with a KV cache ---- */

/* A KV cache: every layer's keys and values of the tokens fed so far, for
 * one sequence (batch 1). Inference runs in evaluation mode (no dropout,
 * whatever the module's mode), records no graph, and allocates nothing on
 * the heap after gpt_cache_new: every buffer is made in its arena. The
 * products go through BLAS; the cache reads the model's weights as they
 * are at each call (train, then sample, with one cache). */
typedef struct gpt_cache gpt_cache;

/* A cache for one sequence of up to capacity tokens (1 <= capacity <=
 * block_size) in arena a (freed with it): 2 n_layer capacity n_embd
 * values of keys and values, and the working buffers of a prefill of
 * capacity tokens. Returns NULL and an error "gpt_cache_new: ..." for a
 * NULL argument, a capacity out of range, or no memory. */
gpt_cache *gpt_cache_new(ag_arena *a, gpt *m, int64_t capacity);

/* Empties the cache (length 0); NULL is ignored. */
void gpt_cache_reset(gpt_cache *c);

/* The number of tokens in the cache (0 for NULL). */
int64_t gpt_cache_len(const gpt_cache *c);

/* The capacity the cache was made with (0 for NULL). */
int64_t gpt_cache_capacity(const gpt_cache *c);

/* Feeds n >= 1 tokens after those already in the cache (positions len to
 * len + n - 1: one batched pass, its products over the n tokens at once)
 * and returns the logits of the last one: vocab_size floats (for an f64
 * model, its double logits rounded to float; gpt_cache_logits_f64 gives
 * them unrounded), owned by the cache, valid until the next call. Equal,
 * up to rounding, to the last row of gpt_forward over every token in the
 * cache. Returns NULL and an error "gpt_cache_feed: ..." for a NULL cache
 * or ids, n < 1, len + n > capacity, an id out of the vocabulary (its
 * index in ids and value); the cache is then unchanged. */
const float *gpt_cache_feed(gpt_cache *c, const int32_t *ids, int64_t n);

/* The context window as a FIFO: appends one token; when the window (the
 * capacity) is full, the oldest token leaves first. Returns the logits for
 * the next token (as gpt_cache_feed), equal (same argmax; values within
 * f32 rounding) to gpt_forward from scratch over the window's current
 * tokens. While the window is not full this is one token's step against
 * the cache (O(len) attention, the products of one token). With learned
 * absolute position embeddings every cached key depends on its position,
 * so once the window slides the cache is rebuilt from the window's tokens
 * by one batched prefill of capacity tokens: each push then costs a
 * forward pass over the whole window (capacity times a cached step's
 * products, and capacity^2 attention), as gpt_forward on the window does,
 * but without a graph or allocation. Returns NULL and an error
 * "gpt_cache_push: ..." for a NULL cache or an id out of the vocabulary
 * (the cache is then unchanged). */
const float *gpt_cache_push(gpt_cache *c, int32_t id);

/* The logits of the last call to gpt_cache_feed or gpt_cache_push as the
 * model's doubles, for an f64 model (vocab_size of them, owned by the
 * cache, valid until the next call); NULL for an f32 model, NULL, or no
 * call yet. */
const double *gpt_cache_logits_f64(const gpt_cache *c);

#endif /* EXAMPLES_GPT_GPT_H */
