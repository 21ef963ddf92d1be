/* autograd/nn.h: parameter sets, weight initialisation, Linear layers and
 * multi-layer perceptrons. Included by autograd.h; include that instead.
 *
 * A model lives in one arena (its parameters, their gradients and the
 * model's own bookkeeping); ag_arena_free() of that arena frees the model.
 * Forward passes build their graph in another arena, reset every step. */
#ifndef AUTOGRAD_NN_H
#define AUTOGRAD_NN_H

#include "../autograd.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------------ */
/* Parameter sets                                                      */
/* ------------------------------------------------------------------ */

/* ag_params (declared in autograd.h) is an ordered list of named tensors:
 * what optimizers update, checkpoints save and load, and users iterate
 * over. Names follow PyTorch's state_dict ("layers.0.weight"). */

/* The longest parameter name, in bytes without the terminating 0. */
#define AG_PARAM_NAME_MAX 127

/* Makes an empty parameter set in arena `a` (freed with it). Returns NULL
 * and an error when `a` is NULL or out of memory. */
AG_API ag_params *ag_params_new(ag_arena *a);

/* Appends tensor `t` under `name` (copied). `t` is not copied: the set
 * refers to it, so it must outlive the set (make both in one arena).
 * Returns 0, or -1 and an error for a NULL argument, an empty name or one
 * longer than AG_PARAM_NAME_MAX, a name or a tensor already in the set
 * (an optimizer would update it twice), an AG_I32 tensor, or no memory. */
AG_API int ag_params_add(ag_params *p, const char *name, ag_tensor *t);

/* Appends every tensor of `from`, each name prefixed with `prefix` and a
 * dot ("encoder" + "weight" -> "encoder.weight"; prefix NULL or "" adds
 * the names as they are). Returns 0, or -1 and an error as ag_params_add
 * (on error the set keeps the tensors added before the failing one). */
AG_API int ag_params_extend(ag_params *p, const char *prefix,
                            const ag_params *from);

/* Number of tensors in the set (0 for NULL). */
AG_API int ag_params_count(const ag_params *p);

/* Tensor `i` (0 <= i < count), or NULL when out of range. */
AG_API ag_tensor *ag_params_tensor(const ag_params *p, int i);

/* Name of tensor `i`, owned by the set, or NULL when out of range. */
AG_API const char *ag_params_name(const ag_params *p, int i);

/* The tensor named `name`, or NULL (without an error) when there is none. */
AG_API ag_tensor *ag_params_find(const ag_params *p, const char *name);

/* Total element count of all tensors. */
AG_API int64_t ag_params_numel(const ag_params *p);

/* Sets ag_requires_grad(t, on) for every tensor. */
AG_API void ag_params_requires_grad(ag_params *p, bool on);

/* Zeroes every tensor's gradient (ag_zero_grad). */
AG_API void ag_params_zero_grad(ag_params *p);

/* ------------------------------------------------------------------ */
/* Initialisation                                                      */
/* ------------------------------------------------------------------ */

/* Each fills a float tensor in place with draws from `rng` (which
 * advances) and returns 0, or -1 and an error (NULL, AG_I32, a 0-d or
 * 1-d tensor where fans are needed, bad bounds). fan_in and fan_out are
 * those of PyTorch: for a (out, in, ...) weight, fan_in = in * receptive
 * field and fan_out = out * receptive field. */

/* U(low, high). */
AG_API int ag_init_uniform(ag_tensor *t, double low, double high, ag_rng *rng);

/* N(mean, std^2). */
AG_API int ag_init_normal(ag_tensor *t, double mean, double std, ag_rng *rng);

/* Kaiming (He) uniform, U(-b, b) with b = gain * sqrt(3 / fan_in) and
 * gain = sqrt(2 / (1 + a^2)), as torch.nn.init.kaiming_uniform_(t, a) with
 * mode fan_in and a leaky_relu nonlinearity. nn.Linear's default weight
 * init is a = sqrt(5), which gives b = 1 / sqrt(fan_in). */
AG_API int ag_init_kaiming_uniform(ag_tensor *t, double a, ag_rng *rng);

/* Xavier (Glorot) uniform, U(-b, b) with
 * b = gain * sqrt(6 / (fan_in + fan_out)), as xavier_uniform_. */
AG_API int ag_init_xavier_uniform(ag_tensor *t, double gain, ag_rng *rng);

/* ------------------------------------------------------------------ */
/* Linear layers and MLPs                                              */
/* ------------------------------------------------------------------ */

/* How weights are initialised. */
typedef enum {
    AG_INIT_DEFAULT, /* PyTorch nn.Linear: Kaiming uniform with a = sqrt(5)
                        for the weight, U(-1/sqrt(in), 1/sqrt(in)) bias */
    AG_INIT_XAVIER,  /* Xavier uniform (gain 1) weight, zero bias */
    AG_INIT_KAIMING, /* Kaiming uniform for ReLU (a = 0) weight, zero bias */
    AG_INIT_NORMAL,  /* N(0, 0.01^2) weight, zero bias */
} ag_init;

/* y = x W^T + b with W (out, in) and b (out), as PyTorch's nn.Linear. */
typedef struct {
    int64_t in;        /* input features */
    int64_t out;       /* output features */
    ag_tensor *weight; /* (out, in), requires a gradient */
    ag_tensor *bias;   /* (out), or NULL without a bias */
    ag_params *params; /* "weight" and "bias" */
} ag_linear_layer;

/* Makes a Linear layer in arena `a` with weights drawn from `rng`. Returns
 * NULL and an error for a NULL arena or rng, sizes < 1, an AG_I32 dtype,
 * an unknown init, a weight (out, in) whose element count or byte size
 * overflows (refused before anything is allocated), or no memory. */
AG_API ag_linear_layer *ag_linear_layer_new(ag_arena *a, ag_dtype dt,
                                            int64_t in, int64_t out, bool bias,
                                            ag_init init, ag_rng *rng);

/* ag_linear(step, x, layer->weight, layer->bias) in arena `step`. */
AG_API ag_tensor *ag_linear_layer_forward(ag_arena *step,
                                          const ag_linear_layer *layer,
                                          ag_tensor *x);

/* The activation placed between an MLP's layers. */
typedef enum {
    AG_ACT_RELU,
    AG_ACT_TANH,
    AG_ACT_SIGMOID,
    AG_ACT_GELU,
    AG_ACT_LEAKY_RELU, /* slope 0.01 */
    AG_ACT_NONE,
} ag_activation;

/* Applies activation `act` to x (AG_ACT_NONE returns x itself). */
AG_API ag_tensor *ag_activate(ag_arena *a, ag_tensor *x, ag_activation act);

/* The options of an MLP; all-zero gives PyTorch's defaults: f32, ReLU
 * between layers, biases, nn.Linear's init, no dropout, seed 0. */
typedef struct {
    ag_dtype dtype;           /* of the parameters (f32 or f64) */
    ag_activation activation; /* between layers, not after the last */
    bool no_bias;             /* layers without a bias */
    ag_init init;             /* how the weights are drawn */
    double dropout;           /* probability, after each hidden activation, in
                                 training mode only */
    uint64_t seed;            /* for the weights and the dropout masks */
} ag_mlp_options;

/* Layers sizes[0] -> sizes[1] -> ... -> sizes[n-1] with an activation (and
 * dropout, when set) between them and none after the last. Parameters are
 * named like a PyTorch module holding `self.layers = nn.ModuleList(...)`:
 * "layers.0.weight", "layers.0.bias", "layers.1.weight", ... */
typedef struct {
    int num_layers;           /* n - 1 */
    ag_linear_layer **layers; /* num_layers of them */
    ag_mlp_options options;   /* as given, NULL read as the defaults */
    bool training;            /* dropout applies only in training mode */
    ag_rng dropout_rng;       /* draws the dropout masks */
    ag_params *params;        /* every layer's, named as above */
} ag_mlp;

/* Makes an MLP in arena `a`, in training mode. `sizes` has n >= 2 entries,
 * each >= 1; `options` may be NULL for the defaults. Returns NULL and an
 * error for bad sizes (also a layer whose weight's element count or byte
 * size overflows: every layer is checked before anything is allocated),
 * options (dtype, activation, dropout outside [0, 1)) or no memory. */
AG_API ag_mlp *ag_mlp_new(ag_arena *a, int n, const int64_t *sizes,
                          const ag_mlp_options *options);

/* The forward pass on x (..., sizes[0]) -> (..., sizes[n-1]) in arena
 * `step`; the output is the last layer's affine map (logits). Returns NULL
 * and an error naming the layer and the op that failed, for example
 * "ag_mlp_forward: layer 0 (2 -> 16): ag_linear: x (4,3) and weight (16,2)
 * do not match ..." (a NULL x keeps the pending message, as ops do). Draws
 * dropout masks in training mode. */
AG_API ag_tensor *ag_mlp_forward(ag_arena *step, ag_mlp *m, ag_tensor *x);

/* Switches training mode (dropout on) or evaluation mode (dropout off). */
AG_API void ag_mlp_set_training(ag_mlp *m, bool training);

/* ------------------------------------------------------------------ */
/* Modules (torch.nn.Module)                                           */
/* ------------------------------------------------------------------ */

/* A module is a piece of a model: its parameters (trainable), its buffers
 * (not trainable: BatchNorm's running statistics), its named sub-modules,
 * a forward function and a training flag. Parameter and buffer names are
 * those of the matching torch.nn module's state_dict(), so a checkpoint of
 * ag_module_state() loads into that PyTorch model with strict=True, and
 * back. A module and everything it holds live in the arena it was made in.
 *
 * A user writes a new module the way they would subclass nn.Module: a
 * struct of their own for its state (allocated with ag_arena_alloc), an
 * ag_module_type with its name and forward, ag_module_new, then
 * ag_module_add_parameter / _buffer / _child for its members (see
 * examples/custom_module.c). */
typedef struct ag_module ag_module;

/* What a kind of module is: its name and its forward pass. */
typedef struct {
    const char *name; /* the torch.nn class name: "Linear", "Sequential" */
    /* The forward pass on x in arena `step`: returns a new tensor or NULL
     * with an error. Reads the module's state with ag_module_self and its
     * mode with ag_module_is_training. */
    ag_tensor *(*forward)(ag_module *m, ag_arena *step, ag_tensor *x);
} ag_module_type;

/* `size` bytes of zeroed memory in arena `a`, aligned for any type (64
 * bytes), freed with the arena: for a user's own module structs. Returns
 * NULL with an error for a NULL arena or out of memory. */
AG_API void *ag_arena_alloc(ag_arena *a, size_t size);

/* Makes a module of `type` in arena `a` whose own state is `self` (the
 * caller's, may be NULL), in training mode, with no members. Returns NULL
 * with an error for a NULL arena, type, type name or forward, or out of
 * memory. */
AG_API ag_module *ag_module_new(ag_arena *a, const ag_module_type *type,
                                void *self);

/* Registers a member under `name` (no dots; unique among the module's
 * parameters, buffers and children): a parameter (it is made to require a
 * gradient; optimizers see it), a buffer (saved in checkpoints, never seen
 * by optimizers), or a sub-module (its members are named "name.member";
 * it takes the module's training mode). The tensor or module must live as
 * long as m (make it in m's arena). Returns 0, or -1 and an error for
 * NULLs, a bad or taken name, an i32 parameter (a buffer may be i32, as
 * BatchNorm's num_batches_tracked is), adding to a module whose
 * parameters were already listed (ag_module_parameters and the like make
 * the tree complete), or out of memory. */
AG_API int ag_module_add_parameter(ag_module *m, const char *name,
                                   ag_tensor *t);
AG_API int ag_module_add_buffer(ag_module *m, const char *name, ag_tensor *t);
AG_API int ag_module_add_child(ag_module *m, const char *name,
                               ag_module *child);

/* The forward pass, m's type's forward on x in arena `step`. A NULL x
 * keeps the pending message, as ops do. Returns NULL with an error naming
 * the module type (and, inside a Sequential, the failing child's index). */
AG_API ag_tensor *ag_module_forward(ag_module *m, ag_arena *step, ag_tensor *x);

/* A forward hook, as nn.Module.register_forward_hook: called by
 * ag_module_forward(m, step, x) with m, x and the output y after m's
 * forward succeeded (not after a failure), before y is returned; it may
 * read them, not replace y. `user` is the pointer given with the hook. */
typedef void (*ag_module_forward_hook)(ag_module *m, ag_tensor *input,
                                       ag_tensor *output, void *user);

/* Sets m's forward hook (one per module; a new one replaces the old, NULL
 * removes it). Only calls through ag_module_forward run it: a module's
 * full-call functions (ag_nn_lstm_forward and the like) do not. Not while
 * another thread runs m's forward. Nothing for a NULL module. */
AG_API void ag_module_set_forward_hook(ag_module *m,
                                       ag_module_forward_hook hook, void *user);

/* m's forward hook (NULL when none or m is NULL); its user pointer goes to
 * *user when user is not NULL. */
AG_API ag_module_forward_hook ag_module_get_forward_hook(const ag_module *m,
                                                         void **user);

/* Training mode (dropout active, batch statistics) or evaluation mode, for
 * m and every sub-module, as nn.Module.train() / eval(). */
AG_API void ag_module_set_training(ag_module *m, bool training);
AG_API bool ag_module_is_training(const ag_module *m);

/* Every parameter of m and its sub-modules, named by path ("0.weight",
 * "encoder.bias"), in state_dict() order; the set for optimizers, clipping
 * and gradient checks. ag_module_buffers lists the buffers the same way;
 * ag_module_state both (each module's parameters, then its buffers, then
 * its children's), the set to save and load checkpoints with. Each list is
 * made once, in m's arena, and owned by m; from then on the tree is
 * complete (nothing may be added). NULL with an error for a NULL module,
 * a path longer than AG_PARAM_NAME_MAX, or out of memory. */
AG_API ag_params *ag_module_parameters(ag_module *m);
AG_API ag_params *ag_module_buffers(ag_module *m);
AG_API ag_params *ag_module_state(ag_module *m);

/* m's own parameters (short names), its user state, type name, arena, and
 * its children (by index, or by name; NULL when absent). */
AG_API ag_params *ag_module_own_parameters(const ag_module *m);
AG_API void *ag_module_self(const ag_module *m);
AG_API const char *ag_module_type_name(const ag_module *m);
AG_API ag_arena *ag_module_arena(const ag_module *m);
AG_API int ag_module_child_count(const ag_module *m);
AG_API ag_module *ag_module_child_at(const ag_module *m, int i);
AG_API ag_module *ag_module_child(const ag_module *m, const char *name);

/* ---- the library's modules (each as torch.nn's, with its defaults and
 * initialisation; weights drawn from rng, which advances) ---- */

/* nn.Sequential: the n modules (children "0", "1", ...) applied in turn.
 * ag_nn_sequential_append adds one more at the end. */
AG_API ag_module *ag_nn_sequential(ag_arena *a, int n,
                                   ag_module *const *modules);
AG_API int ag_nn_sequential_append(ag_module *seq, ag_module *module);

/* nn.Linear(in, out, bias): "weight" (out, in), "bias" (out). */
AG_API ag_module *ag_nn_linear(ag_arena *a, ag_dtype dt, int64_t in,
                               int64_t out, bool bias, ag_rng *rng);

/* nn.Embedding(num_embeddings, embedding_dim): "weight" (V, C) from
 * N(0, 1); the forward takes i32 ids of any shape, each in [0, V) (else an
 * error naming the id, its position and V), and returns ids' shape + (C). */
AG_API ag_module *ag_nn_embedding(ag_arena *a, ag_dtype dt,
                                  int64_t num_embeddings, int64_t embedding_dim,
                                  ag_rng *rng);

/* nn.ReLU, nn.Tanh, nn.Sigmoid, nn.GELU, nn.LeakyReLU (slope 0.01),
 * nn.Identity, by activation. */
AG_API ag_module *ag_nn_activation(ag_arena *a, ag_activation act);

/* nn.Flatten(): (N, ...) -> (N, product of the rest). */
AG_API ag_module *ag_nn_flatten(ag_arena *a);

/* nn.Dropout(p): in training mode zeroes elements with probability p and
 * scales the rest by 1 / (1 - p), from a generator of its own seeded with
 * seed; the identity in evaluation mode. */
AG_API ag_module *ag_nn_dropout(ag_arena *a, double p, uint64_t seed);

/* nn.LayerNorm(shape, eps, elementwise_affine): normalises over the last
 * ndim axes, which must be `shape`; "weight" (ones) and "bias" (zeros) of
 * that shape when affine. PyTorch's eps is 1e-5. */
AG_API ag_module *ag_nn_layer_norm(ag_arena *a, ag_dtype dt, int ndim,
                                   const int64_t *shape, double eps,
                                   bool affine);

/* nn.RMSNorm(shape, eps, elementwise_affine): "weight" (ones) when affine;
 * eps 0 means PyTorch's eps=None, the dtype's machine epsilon. */
AG_API ag_module *ag_nn_rms_norm(ag_arena *a, ag_dtype dt, int ndim,
                                 const int64_t *shape, double eps, bool affine);

/* nn.BatchNorm1d (input (N,C) or (N,C,L)) and nn.BatchNorm2d ((N,C,H,W)):
 * "weight" (ones) and "bias" (zeros) when affine; buffers "running_mean"
 * (zeros), "running_var" (ones) and "num_batches_tracked" (i32, counting
 * training batches) when track_running_stats. Training mode normalises
 * with the batch's statistics and updates the running ones; evaluation
 * mode uses the running ones (the batch's without tracking). PyTorch's
 * defaults: eps 1e-5, momentum 0.1, affine and tracking on. An input of
 * another rank is an error naming the module and the shape. */
AG_API ag_module *ag_nn_batch_norm1d(ag_arena *a, ag_dtype dt, int64_t channels,
                                     double eps, double momentum, bool affine,
                                     bool track_running_stats);
AG_API ag_module *ag_nn_batch_norm2d(ag_arena *a, ag_dtype dt, int64_t channels,
                                     double eps, double momentum, bool affine,
                                     bool track_running_stats);

/* nn.Conv2d(in, out, (kernel_h, kernel_w), stride, padding, dilation,
 * groups, bias) and nn.Conv1d(in, out, kernel, ...): "weight" (out,
 * in/groups, kernel_h, kernel_w) or (out, in/groups, kernel) and "bias"
 * (out), initialised as PyTorch's; the options as ag_conv2d's (NULL: stride
 * 1, no padding, dilation 1, one group). Input (N,C,H,W) or (N,C,L); another
 * rank is an error naming the module. */
AG_API ag_module *ag_nn_conv2d(ag_arena *a, ag_dtype dt, int64_t in,
                               int64_t out, int64_t kernel_h, int64_t kernel_w,
                               const ag_conv_options *o, bool bias,
                               ag_rng *rng);
AG_API ag_module *ag_nn_conv1d(ag_arena *a, ag_dtype dt, int64_t in,
                               int64_t out, int64_t kernel,
                               const ag_conv_options *o, bool bias,
                               ag_rng *rng);

/* nn.MaxPool2d(kernel, stride, padding) and nn.AvgPool2d (count_include_pad
 * as PyTorch's default): square windows, stride 0 meaning the kernel (as
 * PyTorch's stride=None), on (N,C,H,W) input; no parameters. */
AG_API ag_module *ag_nn_max_pool2d(ag_arena *a, int64_t kernel, int64_t stride,
                                   int64_t padding);
AG_API ag_module *ag_nn_avg_pool2d(ag_arena *a, int64_t kernel, int64_t stride,
                                   int64_t padding);

/* nn.MultiheadAttention(embed_dim, num_heads, bias, batch_first) with an
 * optional causal mask: "in_proj_weight" (3E, E), "in_proj_bias" (3E), and
 * the child "out_proj" (a Linear: "out_proj.weight", "out_proj.bias"), as
 * PyTorch's names and initialisation (Xavier uniform in-projection, zero
 * biases). ag_module_forward is self-attention on x (N,T,E) when
 * batch_first, else (T,N,E). */
AG_API ag_module *ag_nn_multihead_attention(ag_arena *a, ag_dtype dt,
                                            int64_t embed_dim,
                                            int64_t num_heads, bool bias,
                                            bool batch_first, bool causal,
                                            ag_rng *rng);

/* The full call, attn(query, key, value, attn_mask)[0]: query (N,T,E),
 * key and value (N,S,E) (or time first), mask additive, broadcastable to
 * (N,H,T,S), or NULL. Returns (N,T,E) (or (T,N,E)), or NULL with an error
 * naming the module for inputs of the wrong rank, features or dtype. */
AG_API ag_tensor *
ag_nn_multihead_attention_forward(ag_module *m, ag_arena *step,
                                  ag_tensor *query, ag_tensor *key,
                                  ag_tensor *value, ag_tensor *mask);

/* nn.LSTM and nn.GRU(input_size, hidden_size, num_layers, batch_first):
 * per layer l, "weight_ih_l<l>" (G H, I or H), "weight_hh_l<l>" (G H, H),
 * "bias_ih_l<l>" and "bias_hh_l<l>" (G H), G = 4 gates (i, f, g, o) for the
 * LSTM and 3 (r, z, n) for the GRU, all U(-1/sqrt(H), 1/sqrt(H)) as
 * PyTorch's. ag_module_forward takes x (N,T,I) when batch_first, else
 * (T,N,I), and returns every step's last-layer hidden state, (N,T,H) or
 * (T,N,H), from zero initial states. Another rank, feature count or dtype
 * is an error naming the module. */
AG_API ag_module *ag_nn_lstm(ag_arena *a, ag_dtype dt, int64_t input_size,
                             int64_t hidden_size, int num_layers,
                             bool batch_first, ag_rng *rng);
AG_API ag_module *ag_nn_gru(ag_arena *a, ag_dtype dt, int64_t input_size,
                            int64_t hidden_size, int num_layers,
                            bool batch_first, ag_rng *rng);

/* The full calls, as lstm(x, (h0, c0)) and gru(x, h0): initial states
 * h0, c0 (L,N,H) (NULL: zeros); when hn (cn) is not NULL it receives the
 * last step's states of every layer, (L,N,H). Returns the output as
 * ag_module_forward does, or NULL with an error (also for a module that is
 * not an LSTM, or a GRU, and states of the wrong shape or dtype). */
AG_API ag_tensor *ag_nn_lstm_forward(ag_module *m, ag_arena *step, ag_tensor *x,
                                     ag_tensor *h0, ag_tensor *c0,
                                     ag_tensor **hn, ag_tensor **cn);
AG_API ag_tensor *ag_nn_gru_forward(ag_module *m, ag_arena *step, ag_tensor *x,
                                    ag_tensor *h0, ag_tensor **hn);

/* ------------------------------------------------------------------ */
/* Model summary (torchinfo.summary)                                   */
/* ------------------------------------------------------------------ */

/* Prints to `out` a table of m's module tree as torchinfo.summary(m,
 * input_data=input) does: one row per module in tree order (the module,
 * then its children, drawn with "├─", "└─" and "│"), named "Type:
 * depth-idx" (idx counting the modules at that depth, from 1), with the
 * shape of its output in one forward of m on `input` ("--" for a module
 * that forward did not run; the last call's for one run several times) and
 * the count of its own parameters ("--" for none; a container's are its
 * children's rows); then "Total params", "Trainable params" (those that
 * require a gradient) and "Non-trainable params", and the sizes in MB
 * (10^6 bytes): the input, the forward/backward pass (twice the outputs of
 * the modules without children: the values and their gradients), the
 * parameters, and their sum. Buffers are not counted, as torchinfo
 * counts none; nor are multiply-adds.
 *
 * The forward runs in a scratch arena of its own (freed before returning),
 * with grad mode off and every module in evaluation mode, as torchinfo's
 * default: nothing is recorded, no gradient is kept, BatchNorm's running
 * statistics and Dropout's generators do not change. Each module's
 * training flag and forward hook (ag_module_set_forward_hook: the summary
 * sets its own for the forward, which also calls the user's) are as before
 * when it returns. Not while another thread uses m. Returns 0, or -1 with
 * an error for a NULL argument, no memory, or a failing forward (whose
 * error is kept, naming the module); nothing is printed then. */
AG_API int ag_nn_summary(ag_module *m, ag_tensor *input, FILE *out);

#ifdef __cplusplus
}
#endif

#endif /* AUTOGRAD_NN_H */
