/* gpt_cache_kernels.h: the KV cache's inference pass (gpt_cache_feed),
 * written once and included twice by gpt.c, with REAL float (SUFFIX f32,
 * GEMM cblas_sgemm) and double (f64, cblas_dgemm). It reads the model's
 * weights in place, writes only the cache's buffers, records no graph and
 * allocates nothing. For n new tokens at positions p0 = len .. len + n - 1
 * it computes what gpt_forward computes for those rows, in eval mode:
 *   x = wte[id] + wpe[pos]
 *   per block: x += c_proj(attn(ln_1(x))); x += mlp(ln_2(x))
 *   logits = wte ln_f(x_last)
 * the attention of query row i over the cached keys 0 .. p0 + i (causal),
 * and every product over the n rows at once through BLAS. Not a header to
 * include elsewhere: it expects gpt.c's types. */

#define CAT_(a, b) a##_##b
#define CAT(a, b) CAT_(a, b)
#define FN(name) CAT(name, SUFFIX)

/* y = layer_norm(x) over rows of C: (x - mean) / sqrt(var + eps) w + b. */
static void FN(layer_norm_rows)(const REAL *x, REAL *y, int64_t n, int64_t C,
                                ag_tensor *w, ag_tensor *b)
{
    const REAL *wv = ag_data(w), *bv = b ? ag_data(b) : NULL;
    for (int64_t i = 0; i < n; i++) {
        const REAL *xi = x + i * C;
        double mean = 0, var = 0;
        for (int64_t j = 0; j < C; j++) mean += xi[j];
        mean /= (double)C;
        for (int64_t j = 0; j < C; j++)
            var += ((double)xi[j] - mean) * ((double)xi[j] - mean);
        const double rstd = 1 / sqrt(var / (double)C + LN_EPS);
        for (int64_t j = 0; j < C; j++)
            y[i * C + j] = (REAL)(((double)xi[j] - mean) * rstd * wv[j] +
                                  (bv ? bv[j] : 0));
    }
}

/* y (n, out) = x (n, in) w^T + b, w (out, in), b (out) or NULL. */
static void FN(linear_rows)(const REAL *x, REAL *y, int64_t n, int64_t in,
                            int64_t out, ag_tensor *w, ag_tensor *b)
{
    GEMM(CblasRowMajor, CblasNoTrans, CblasTrans, (int)n, (int)out, (int)in, 1,
         x, (int)in, ag_data(w), (int)in, 0, y, (int)out);
    if (!b) return;
    const REAL *bv = ag_data(b);
    for (int64_t i = 0; i < n; i++)
        for (int64_t j = 0; j < out; j++) y[i * out + j] += bv[j];
}

/* att (n, C) = each head's softmax(q k^T / sqrt(D), causal) v, the new
 * keys and values of layer l stored at positions p0 .. p0 + n - 1 first. */
static void FN(attention_rows)(gpt_cache *c, int64_t l, int64_t p0, int64_t n)
{
    const gpt_config *cfg = &c->m->config;
    const int64_t C = cfg->n_embd, H = cfg->n_head, D = C / H,
                  cap = c->capacity, S = p0 + n;
    const REAL *qkv = c->qkv;
    REAL *att = c->att, *scores = c->scores;
    for (int64_t hd = 0; hd < H; hd++) {
        REAL *K = (REAL *)c->k + (l * H + hd) * cap * D;
        REAL *V = (REAL *)c->v + (l * H + hd) * cap * D;
        for (int64_t i = 0; i < n; i++) {
            memcpy(K + (p0 + i) * D, qkv + i * 3 * C + C + hd * D,
                   (size_t)D * sizeof(REAL));
            memcpy(V + (p0 + i) * D, qkv + i * 3 * C + 2 * C + hd * D,
                   (size_t)D * sizeof(REAL));
        }
        /* scores (n, S) = q k^T / sqrt(D) */
        GEMM(CblasRowMajor, CblasNoTrans, CblasTrans, (int)n, (int)S, (int)D,
             (REAL)(1 / sqrt((double)D)), qkv + hd * D, (int)(3 * C), K, (int)D,
             0, scores, (int)S);
        /* row i sees keys 0 .. p0 + i: p = e^(s - max) / sum */
        for (int64_t i = 0; i < n; i++) {
            REAL *s = scores + i * S;
            const int64_t seen = p0 + i + 1;
            double mx = s[0], sum = 0;
            for (int64_t j = 1; j < seen; j++)
                if (s[j] > mx) mx = s[j];
            for (int64_t j = 0; j < seen; j++) {
                s[j] = (REAL)exp((double)s[j] - mx);
                sum += s[j];
            }
            for (int64_t j = 0; j < seen; j++) s[j] = (REAL)(s[j] / sum);
            for (int64_t j = seen; j < S; j++) s[j] = 0;
        }
        /* att[:, head] (n, D) = p v */
        GEMM(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)n, (int)D, (int)S,
             1, scores, (int)S, V, (int)D, 0, att + hd * D, (int)C);
    }
}

/* The pass over tokens[len .. len + n): keys and values into the cache,
 * the last token's logits into c->logits and c->logits_f32. */
static void FN(feed)(gpt_cache *c, int64_t n)
{
    gpt *m = c->m;
    const gpt_config *cfg = &m->config;
    const int64_t C = cfg->n_embd, V = cfg->vocab_size, p0 = c->len;
    REAL *x = c->x, *h = c->h, *fc = c->fc;
    const REAL *wte = ag_data(m->wte), *wpe = ag_data(m->wpe);
    for (int64_t i = 0; i < n; i++) { /* x = wte[id] + wpe[pos] */
        const REAL *te = wte + (int64_t)c->tokens[p0 + i] * C,
                   *pe = wpe + (p0 + i) * C;
        for (int64_t j = 0; j < C; j++) x[i * C + j] = te[j] + pe[j];
    }
    for (int64_t l = 0; l < cfg->n_layer; l++) {
        const gpt_block *b = &m->blocks[l];
        FN(layer_norm_rows)(x, h, n, C, b->ln1_w, b->ln1_b);
        FN(linear_rows)(h, c->qkv, n, C, 3 * C, b->attn_w, b->attn_b);
        FN(attention_rows)(c, l, p0, n);
        FN(linear_rows)(c->att, h, n, C, C, b->proj_w, b->proj_b);
        for (int64_t i = 0; i < n * C; i++) x[i] += h[i];
        FN(layer_norm_rows)(x, h, n, C, b->ln2_w, b->ln2_b);
        FN(linear_rows)(h, fc, n, C, 4 * C, b->fc_w, b->fc_b);
        for (int64_t i = 0; i < n * 4 * C; i++) /* exact GELU */
            fc[i] = (REAL)(0.5 * fc[i] * (1 + erf(fc[i] * GPT_SQRT1_2)));
        FN(linear_rows)(fc, h, n, 4 * C, C, b->mlp_w, b->mlp_b);
        for (int64_t i = 0; i < n * C; i++) x[i] += h[i];
    }
    FN(layer_norm_rows)(x + (n - 1) * C, h, 1, C, m->lnf_w, m->lnf_b);
    REAL *logits = c->logits;
    FN(linear_rows)(h, logits, 1, C, V, m->wte, NULL); /* lm_head = wte */
    for (int64_t j = 0; j < V; j++) c->logits_f32[j] = (float)logits[j];
}

#undef FN
#undef CAT
#undef CAT_
