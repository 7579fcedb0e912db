/* Attention over packed rows on AVX-512 CPUs; rag_rerank/core/cpu_attention.py builds and loads it.

   One call runs every (pair, head) of a packed batch: the query, key and value products are
   [tokens, hidden] matrices (each pair's tokens end to end, rows `ld` elements apart, head h in
   columns h * d .. h * d + d), the context comes out in the same layout, so nothing around it
   transposes. Each (pair, head) is an exact softmax(q k^T * scale) v over the pair's own tokens:
   scores and their softmax in fp32; in bf16 the products are AVX-512 BF16 dot products with fp32
   sums and the probabilities are rounded to bf16 for the weighted sum of values, as torch's CPU
   flash attention does. Work is split over `threads` threads by (pair, head).

   rr_decoder_attention runs a decoder's attention as transformers calls it (strided [batch,
   heads, rows, d] views, grouped-query heads, a bool or additive mask and/or a causal limit)
   with the same per-head code. */
#include <immintrin.h>
#include <float.h>
#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>

#define ROWS 8 /* query rows per block */
#define F32 __attribute__((target("avx512f")))
#define BF16 __attribute__((target("avx512f,avx512bw,avx512bf16")))

F32 static inline __m512 exp_ps(__m512 x) {
    /* Cephes' expf: 2^n * p(r), x = n ln2 + r; about 1 ulp on [-87, 0] */
    x = _mm512_max_ps(x, _mm512_set1_ps(-87.3f));
    __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)),
                                    _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), x);
    r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), r);
    __m512 p = _mm512_set1_ps(1.9875691500E-4f);
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.3981999507E-3f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(8.3334519073E-3f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(4.1665795894E-2f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.6666665459E-1f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(5.0000001201E-1f));
    p = _mm512_fmadd_ps(p, _mm512_mul_ps(r, r), _mm512_add_ps(r, _mm512_set1_ps(1.0f)));
    return _mm512_scalef_ps(p, n);
}

/* 16 x 16 transpose of 32-bit elements, in registers */
F32 static inline void transpose16(__m512i r[16]) {
    __m512i t[16];
    for (int i = 0; i < 8; i++) {
        t[2 * i] = _mm512_unpacklo_epi32(r[2 * i], r[2 * i + 1]);
        t[2 * i + 1] = _mm512_unpackhi_epi32(r[2 * i], r[2 * i + 1]);
    }
    for (int i = 0; i < 4; i++) {
        r[4 * i + 0] = _mm512_unpacklo_epi64(t[4 * i + 0], t[4 * i + 2]);
        r[4 * i + 1] = _mm512_unpackhi_epi64(t[4 * i + 0], t[4 * i + 2]);
        r[4 * i + 2] = _mm512_unpacklo_epi64(t[4 * i + 1], t[4 * i + 3]);
        r[4 * i + 3] = _mm512_unpackhi_epi64(t[4 * i + 1], t[4 * i + 3]);
    }
    for (int i = 0; i < 2; i++)
        for (int j = 0; j < 4; j++) {
            t[8 * i + j] = _mm512_shuffle_i32x4(r[8 * i + j], r[8 * i + j + 4], 0x88);
            t[8 * i + j + 4] = _mm512_shuffle_i32x4(r[8 * i + j], r[8 * i + j + 4], 0xdd);
        }
    for (int j = 0; j < 8; j++) {
        r[j] = _mm512_shuffle_i32x4(t[j], t[j + 8], 0x88);
        r[j + 8] = _mm512_shuffle_i32x4(t[j], t[j + 8], 0xdd);
    }
}

/* dst[w * tp + n] = word w of row n (rows `ld` words apart), for t rows of `words` 32-bit words;
   rows t .. tp - 1 are zeros (tp: t rounded up to 16). */
F32 static void transpose_words(const int32_t *src, long ld, int t, int words, int32_t *dst,
                                int tp) {
    for (int n0 = 0; n0 < tp; n0 += 16)
        for (int w0 = 0; w0 < words; w0 += 16) {
            __mmask16 cols = words - w0 >= 16 ? 0xFFFF : (__mmask16)((1u << (words - w0)) - 1);
            __m512i r[16];
            for (int i = 0; i < 16; i++)
                r[i] = n0 + i < t ? _mm512_maskz_loadu_epi32(cols, src + (n0 + i) * ld + w0)
                                  : _mm512_setzero_si512();
            transpose16(r);
            for (int i = 0; i < 16 && w0 + i < words; i++)
                _mm512_storeu_si512(dst + (long)(w0 + i) * tp + n0, r[i]);
        }
}

/* Softmax of each of `rows` score rows (tp apart, t scores each) in place: exp(s - max), and
   1 / sum in inv; the scores past t become 0. */
F32 static void softmax_rows(float *s, int rows, int t, int tp, float *inv) {
    __mmask16 last = (__mmask16)((t & 15) ? ((1u << (t & 15)) - 1) : 0xFFFF);
    for (int r = 0; r < rows; r++) {
        float *sr = s + (long)r * tp;
        __m512 m = _mm512_set1_ps(-INFINITY);
        for (int n = 0; n + 16 < tp; n += 16) m = _mm512_max_ps(m, _mm512_loadu_ps(sr + n));
        m = _mm512_mask_max_ps(m, last, m, _mm512_loadu_ps(sr + tp - 16));
        __m512 mx = _mm512_set1_ps(_mm512_reduce_max_ps(m));
        __m512 sum = _mm512_setzero_ps();
        for (int n = 0; n < tp; n += 16) {
            __m512 e = exp_ps(_mm512_sub_ps(_mm512_loadu_ps(sr + n), mx));
            if (n + 16 == tp) e = _mm512_maskz_mov_ps(last, e);
            _mm512_storeu_ps(sr + n, e);
            sum = _mm512_add_ps(sum, e);
        }
        inv[r] = 1.0f / _mm512_reduce_add_ps(sum);
    }
}

/* What one head reads besides q, k, v: row strides (elements) and which keys each query row
   sees. Query row i sees keys 0 .. i + offset when causal, all tk otherwise; a bool mask row
   (`allow`, 0: masked) or an additive fp32 row (`bias`), ldm apart, applies on top. A masked
   score becomes -FLT_MAX, not -inf: a row with every key masked averages the values, no NaN. */
typedef struct {
    long ldq, ldk, ldv, ldo, ldm;
    const uint8_t *allow;
    const float *bias;
    int causal, offset;
} view_t;

/* The keys query rows r0 .. r0 + rows - 1 see: all tk, or up to the last row's causal limit */
static inline int keys_seen(const view_t *g, int r0, int rows, int tk) {
    if (!g->causal) return tk;
    long limit = (long)r0 + rows + g->offset;
    return limit < 1 ? 1 : limit < tk ? (int)limit : tk;
}

/* Mask score rows r0 .. r0 + rows - 1 (sw apart, t scores each) */
F32 static void mask_scores(const view_t *g, float *s, int r0, int rows, int t, int sw) {
    if (!g->causal && !g->allow && !g->bias) return;
    const __m512 masked = _mm512_set1_ps(-FLT_MAX);
    for (int r = 0; r < rows; r++) {
        float *sr = s + (long)r * sw;
        long i = r0 + r, seen = g->causal ? i + g->offset + 1 : t; /* keys 0 .. seen - 1 */
        for (int n = 0; n < t; n += 16) {
            __mmask16 in = t - n >= 16 ? 0xFFFF : (__mmask16)((1u << (t - n)) - 1);
            __mmask16 keep = seen - n >= 16 ? 0xFFFF
                             : seen - n <= 0 ? 0
                                             : (__mmask16)((1u << (seen - n)) - 1);
            __m512 x = _mm512_loadu_ps(sr + n);
            if (g->bias)
                x = _mm512_add_ps(x, _mm512_maskz_loadu_ps(in, g->bias + i * g->ldm + n));
            if (g->allow) {
                const uint8_t *ar = g->allow + i * g->ldm + n;
                uint8_t tail[16] = {0};
                for (int j = 0; t - n < 16 && j < t - n; j++) tail[j] = ar[j];
                __m128i a = _mm_loadu_si128((const __m128i *)(t - n >= 16 ? ar : tail));
                keep &= _mm512_test_epi32_mask(_mm512_cvtepu8_epi32(a), _mm512_set1_epi32(0xFF));
            }
            _mm512_storeu_ps(sr + n, _mm512_mask_mov_ps(masked, keep, x));
        }
    }
}

/* ---- fp32 ---- */

/* One head: tq query rows against tk keys; q, k, v, out at their first row in this head's
   columns. kt: d * tp floats, s: ROWS * tp floats of scratch (tp: tk rounded up to 16). */
F32 static void head_f32(const float *q, const float *k, const float *v, float *out, int tq,
                         int tk, int d, const view_t *g, float scale, float *kt, float *s) {
    const long ldq = g->ldq, ldk = g->ldk, ldv = g->ldv, ldo = g->ldo;
    int tp = (tk + 15) & ~15;
    transpose_words((const int32_t *)k, ldk, tk, d, (int32_t *)kt, tp);
    __m512 vscale = _mm512_set1_ps(scale);
    for (int r0 = 0; r0 < tq; r0 += ROWS) {
        int rows = tq - r0 < ROWS ? tq - r0 : ROWS;
        int t = keys_seen(g, r0, rows, tk), sw = (t + 15) & ~15; /* score rows sw apart */
        const float *qr[ROWS];
        for (int r = 0; r < ROWS; r++) qr[r] = q + (long)(r0 + (r < rows ? r : 0)) * ldq;
        for (int nb = 0; nb < sw; nb += 32) {
            int two = nb + 32 <= sw;
            __m512 acc[ROWS][2];
            for (int r = 0; r < ROWS; r++) acc[r][0] = acc[r][1] = _mm512_setzero_ps();
            for (int j = 0; j < d; j++) {
                __m512 k0 = _mm512_loadu_ps(kt + (long)j * tp + nb);
                __m512 k1 = two ? _mm512_loadu_ps(kt + (long)j * tp + nb + 16) : k0;
                for (int r = 0; r < ROWS; r++) {
                    __m512 b = _mm512_set1_ps(qr[r][j]);
                    acc[r][0] = _mm512_fmadd_ps(b, k0, acc[r][0]);
                    acc[r][1] = _mm512_fmadd_ps(b, k1, acc[r][1]);
                }
            }
            for (int r = 0; r < ROWS; r++) {
                _mm512_storeu_ps(s + r * sw + nb, _mm512_mul_ps(acc[r][0], vscale));
                if (two) _mm512_storeu_ps(s + r * sw + nb + 16, _mm512_mul_ps(acc[r][1], vscale));
            }
        }
        mask_scores(g, s, r0, rows, t, sw);
        float inv[ROWS];
        softmax_rows(s, rows, t, sw, inv);
        for (int c = 0; c < d; c += 32) {
            int two = c + 32 <= d;
            __m512 acc[ROWS][2];
            for (int r = 0; r < ROWS; r++) acc[r][0] = acc[r][1] = _mm512_setzero_ps();
            for (int n = 0; n < t; n++) {
                const float *vr = v + (long)n * ldv + c;
                __m512 v0 = _mm512_loadu_ps(vr);
                __m512 v1 = two ? _mm512_loadu_ps(vr + 16) : v0;
                for (int r = 0; r < ROWS; r++) {
                    __m512 p = _mm512_set1_ps(s[r * sw + n]);
                    acc[r][0] = _mm512_fmadd_ps(p, v0, acc[r][0]);
                    acc[r][1] = _mm512_fmadd_ps(p, v1, acc[r][1]);
                }
            }
            for (int r = 0; r < rows; r++) {
                __m512 w = _mm512_set1_ps(inv[r]);
                float *o = out + (long)(r0 + r) * ldo + c;
                _mm512_storeu_ps(o, _mm512_mul_ps(acc[r][0], w));
                if (two) _mm512_storeu_ps(o + 16, _mm512_mul_ps(acc[r][1], w));
            }
        }
    }
}

/* ---- bf16 ---- */

/* v2[np * d + c] = the bf16 pair (v[2 np][c], v[2 np + 1][c]) as one 32-bit word, np < tp / 2;
   rows past t are zeros. */
BF16 static void interleave_rows(const uint16_t *v, long ld, int t, int d, int tp, int32_t *v2) {
    const __m512i lo = _mm512_set_epi16(47, 15, 46, 14, 45, 13, 44, 12, 43, 11, 42, 10, 41, 9,
                                        40, 8, 39, 7, 38, 6, 37, 5, 36, 4, 35, 3, 34, 2, 33, 1,
                                        32, 0);
    const __m512i hi = _mm512_set_epi16(63, 31, 62, 30, 61, 29, 60, 28, 59, 27, 58, 26, 57, 25,
                                        56, 24, 55, 23, 54, 22, 53, 21, 52, 20, 51, 19, 50, 18,
                                        49, 17, 48, 16);
    for (int np = 0; np < tp / 2; np++)
        for (int c = 0; c < d; c += 32) {
            __mmask32 cols = d - c >= 32 ? 0xFFFFFFFFu : (__mmask32)((1u << (d - c)) - 1);
            int n = 2 * np;
            __m512i a = n < t ? _mm512_maskz_loadu_epi16(cols, v + n * ld + c) : _mm512_setzero_si512();
            __m512i b = n + 1 < t ? _mm512_maskz_loadu_epi16(cols, v + (n + 1) * ld + c)
                                  : _mm512_setzero_si512();
            int32_t *dst = v2 + (long)np * d + c;
            _mm512_storeu_si512(dst, _mm512_permutex2var_epi16(a, lo, b));
            if (d - c > 16) _mm512_storeu_si512(dst + 16, _mm512_permutex2var_epi16(a, hi, b));
        }
}

/* kt: d / 2 * tp words, v2: tp / 2 * d words, s: ROWS * tp floats, p2: ROWS * tp / 2 words */
BF16 static void head_bf16(const uint16_t *q, const uint16_t *k, const uint16_t *v, uint16_t *out,
                           int tq, int tk, int d, const view_t *g, float scale, int32_t *kt,
                           int32_t *v2, float *s, int32_t *p2) {
    const long ldq = g->ldq, ldk = g->ldk, ldv = g->ldv, ldo = g->ldo;
    int tp = (tk + 15) & ~15, words = d / 2;
    transpose_words((const int32_t *)k, ldk / 2, tk, words, kt, tp);
    interleave_rows(v, ldv, tk, d, tp, v2);
    __m512 vscale = _mm512_set1_ps(scale);
    for (int r0 = 0; r0 < tq; r0 += ROWS) {
        int rows = tq - r0 < ROWS ? tq - r0 : ROWS;
        int t = keys_seen(g, r0, rows, tk), sw = (t + 15) & ~15; /* score rows sw apart */
        const int32_t *qr[ROWS];
        for (int r = 0; r < ROWS; r++)
            qr[r] = (const int32_t *)(q + (long)(r0 + (r < rows ? r : 0)) * ldq);
        for (int nb = 0; nb < sw; nb += 32) {
            int two = nb + 32 <= sw;
            __m512 acc[ROWS][2];
            for (int r = 0; r < ROWS; r++) acc[r][0] = acc[r][1] = _mm512_setzero_ps();
            for (int w = 0; w < words; w++) {
                __m512bh k0 = (__m512bh)_mm512_loadu_si512(kt + (long)w * tp + nb);
                __m512bh k1 = two ? (__m512bh)_mm512_loadu_si512(kt + (long)w * tp + nb + 16) : k0;
                for (int r = 0; r < ROWS; r++) {
                    __m512bh b = (__m512bh)_mm512_set1_epi32(qr[r][w]);
                    acc[r][0] = _mm512_dpbf16_ps(acc[r][0], b, k0);
                    acc[r][1] = _mm512_dpbf16_ps(acc[r][1], b, k1);
                }
            }
            for (int r = 0; r < ROWS; r++) {
                _mm512_storeu_ps(s + r * sw + nb, _mm512_mul_ps(acc[r][0], vscale));
                if (two) _mm512_storeu_ps(s + r * sw + nb + 16, _mm512_mul_ps(acc[r][1], vscale));
            }
        }
        mask_scores(g, s, r0, rows, t, sw);
        float inv[ROWS];
        softmax_rows(s, rows, t, sw, inv);
        for (int r = 0; r < rows; r++)
            for (int n = 0; n < sw; n += 32) {
                __m512 a = _mm512_loadu_ps(s + r * sw + n);
                __m512 b = n + 16 < sw ? _mm512_loadu_ps(s + r * sw + n + 16) : _mm512_setzero_ps();
                __m512bh pb = _mm512_cvtne2ps_pbh(b, a);
                if (n + 32 <= sw)
                    _mm512_storeu_si512(p2 + (r * sw + n) / 2, (__m512i)pb);
                else
                    _mm256_storeu_si256((__m256i *)(p2 + (r * sw + n) / 2),
                                        _mm512_castsi512_si256((__m512i)pb));
            }
        for (int c = 0; c < d; c += 32) {
            int two = c + 32 <= d;
            __m512 acc[ROWS][2];
            for (int r = 0; r < ROWS; r++) acc[r][0] = acc[r][1] = _mm512_setzero_ps();
            for (int np = 0; np < (t + 1) / 2; np++) {
                const int32_t *vr = v2 + (long)np * d + c;
                __m512bh v0 = (__m512bh)_mm512_loadu_si512(vr);
                __m512bh v1 = two ? (__m512bh)_mm512_loadu_si512(vr + 16) : v0;
                for (int r = 0; r < ROWS; r++) {
                    __m512bh p = (__m512bh)_mm512_set1_epi32(r < rows ? p2[r * sw / 2 + np] : 0);
                    acc[r][0] = _mm512_dpbf16_ps(acc[r][0], p, v0);
                    acc[r][1] = _mm512_dpbf16_ps(acc[r][1], p, v1);
                }
            }
            for (int r = 0; r < rows; r++) {
                __m512 w = _mm512_set1_ps(inv[r]);
                uint16_t *o = out + (long)(r0 + r) * ldo + c;
                _mm256_storeu_si256((__m256i *)o, (__m256i)_mm512_cvtneps_pbh(_mm512_mul_ps(acc[r][0], w)));
                if (two)
                    _mm256_storeu_si256((__m256i *)(o + 16),
                                        (__m256i)_mm512_cvtneps_pbh(_mm512_mul_ps(acc[r][1], w)));
            }
        }
    }
}

/* ---- what both entry points share ---- */

/* One thread's scratch for heads of up to `keys` keys: kt (d * tp floats), v2 (tp * d / 2
   words), s (ROWS * tp floats), p2 (ROWS * tp / 2 words); tp: keys rounded up to 16. */
typedef struct {
    char *base;
    float *kt, *s;
    int32_t *v2, *p2;
} scratch_t;

/* 1 on success, 0 when out of memory. */
static int scratch_alloc(scratch_t *sc, long keys, long d) {
    long tp = (keys + 15) & ~15;
    size_t bytes = 4 * (d * tp + tp * d / 2 + ROWS * tp + ROWS * tp / 2);
    sc->base = aligned_alloc(64, (bytes + 63) / 64 * 64);
    if (!sc->base) return 0;
    sc->kt = (float *)sc->base;
    sc->s = sc->kt + d * tp;
    sc->v2 = (int32_t *)(sc->s + ROWS * tp);
    sc->p2 = sc->v2 + tp * d / 2;
    return 1;
}

/* One head in fp32 or bf16 (see head_f32, head_bf16). */
static void head(int bf16, const char *q, const char *k, const char *v, char *out, int tq, int tk,
                 int d, const view_t *g, float scale, const scratch_t *sc) {
    if (bf16)
        head_bf16((const uint16_t *)q, (const uint16_t *)k, (const uint16_t *)v, (uint16_t *)out,
                  tq, tk, d, g, scale, (int32_t *)sc->kt, sc->v2, sc->s, sc->p2);
    else
        head_f32((const float *)q, (const float *)k, (const float *)v, (float *)out, tq, tk, d, g,
                 scale, sc->kt, sc->s);
}

/* worker(job) on this thread and up to threads - 1 more, no more threads than `items` and each
   with 4 MFLOP or more of `flops` (a thread costs tens of microseconds to start). 0 on success,
   -2 when a worker had no memory for its scratch. */
static int run_threads(void *(*worker)(void *), void *job, double flops, int items, int threads) {
    if (threads > flops / 4e6) threads = (int)(flops / 4e6);
    if (threads > items) threads = items;
    if (threads < 1) threads = 1;
    pthread_t ids[threads];
    int started = 1, failed = 0;
    for (; started < threads; started++)
        if (pthread_create(&ids[started], NULL, worker, job)) break;
    failed |= worker(job) != NULL;
    for (int i = 1; i < started; i++) {
        void *result;
        pthread_join(ids[i], &result);
        failed |= result != NULL;
    }
    return failed ? -2 : 0;
}

/* ---- the batch ---- */

typedef struct {
    const void *q, *k, *v;
    void *out;
    const int64_t *starts, *lengths;
    int pairs, heads, d, maxlen, bf16;
    long ld;
    float scale;
    int next;
} job_t;

static void *worker(void *arg) {
    job_t *job = (job_t *)arg;
    scratch_t sc;
    if (!scratch_alloc(&sc, job->maxlen, job->d)) return (void *)1;
    int total = job->pairs * job->heads, size = job->bf16 ? 2 : 4;
    for (;;) {
        int item = __atomic_fetch_add(&job->next, 1, __ATOMIC_RELAXED);
        if (item >= total) break;
        int p = item / job->heads, h = item % job->heads;
        long off = (job->starts[p] * job->ld + (long)h * job->d) * size;
        int t = (int)job->lengths[p];
        if (t <= 0) continue;
        view_t g = {job->ld, job->ld, job->ld, job->ld, 0, NULL, NULL, 0, 0};
        head(job->bf16, (const char *)job->q + off, (const char *)job->k + off,
             (const char *)job->v + off, (char *)job->out + off, t, t, job->d, &g, job->scale,
             &sc);
    }
    free(sc.base);
    return NULL;
}

/* 1: fp32 runs here (AVX-512F); 2: bf16 too (AVX-512 BF16 and BW). */
int rr_supported(void) {
    __builtin_cpu_init();
    if (!__builtin_cpu_supports("avx512f")) return 0;
    return __builtin_cpu_supports("avx512bf16") && __builtin_cpu_supports("avx512bw") ? 2 : 1;
}

/* 0 on success; -1: a shape it does not take (head_dim not a multiple of 16, or ld odd in bf16);
   -2: out of memory. */
int rr_attention(const void *q, const void *k, const void *v, void *out, const int64_t *starts,
                 const int64_t *lengths, int pairs, int heads, int d, long ld, float scale,
                 int bf16, int threads) {
    if (d % 16 || d <= 0 || (bf16 && ld % 2) || rr_supported() < (bf16 ? 2 : 1)) return -1;
    job_t job = {q, k, v, out, starts, lengths, pairs, heads, d, 0, bf16, ld, scale, 0};
    double flops = 0;
    for (int p = 0; p < pairs; p++) {
        if (lengths[p] > job.maxlen) job.maxlen = (int)lengths[p];
        flops += 4.0 * heads * d * (double)lengths[p] * (double)lengths[p];
    }
    return run_threads(worker, &job, flops, pairs * heads, threads);
}

/* ---- a decoder's attention, as transformers calls it ---- */

typedef struct {
    const void *q, *k, *v, *mask;
    void *out;
    const int64_t *st; /* strides: q, k, v (batch, head, row each), mask (batch, row) */
    int batch, heads, group, tq, tk, d, mask_kind, causal, bf16;
    float scale;
    int next;
} decoder_job_t;

static void *decoder_worker(void *arg) {
    decoder_job_t *job = (decoder_job_t *)arg;
    long d = job->d;
    scratch_t sc;
    if (!scratch_alloc(&sc, job->tk, d)) return (void *)1;
    const int64_t *st = job->st;
    long size = job->bf16 ? 2 : 4;
    for (;;) {
        int item = __atomic_fetch_add(&job->next, 1, __ATOMIC_RELAXED);
        if (item >= job->batch * job->heads) break;
        long b = item / job->heads, h = item % job->heads, kh = h / job->group;
        const char *q = (const char *)job->q + (b * st[0] + h * st[1]) * size;
        const char *k = (const char *)job->k + (b * st[3] + kh * st[4]) * size;
        const char *v = (const char *)job->v + (b * st[6] + kh * st[7]) * size;
        /* out: [batch, tq, heads, d] */
        char *out = (char *)job->out + ((b * job->tq * job->heads + h) * d) * size;
        const char *mask = job->mask ? (const char *)job->mask + b * st[9] * (job->mask_kind == 1 ? 1 : 4) : NULL;
        view_t g = {st[2], st[5], st[8], (long)job->heads * d, st[10],
                    job->mask_kind == 1 ? (const uint8_t *)mask : NULL,
                    job->mask_kind == 2 ? (const float *)mask : NULL, job->causal,
                    job->tk - job->tq};
        head(job->bf16, q, k, v, out, job->tq, job->tk, job->d, &g, job->scale, &sc);
    }
    free(sc.base);
    return NULL;
}

/* softmax(q k^T * scale + mask) v for q [batch, heads, tq, d] and k, v [batch, kv_heads, tk, d]
   (head h reads kv head h / (heads / kv_heads)), each a strided view whose rows are contiguous:
   `strides` holds 11 element strides, q's, k's and v's (batch, head, row) and the mask's (batch,
   row). mask_kind 0: no mask; 1: bool [batch, tq, tk] (nonzero: attend); 2: additive fp32.
   causal: query row i sees keys up to i + tk - tq. out: [batch, tq, heads, d], contiguous.
   0 on success; -1: a shape it does not take; -2: out of memory. */
int rr_decoder_attention(const void *q, const void *k, const void *v, void *out, const void *mask,
                         int mask_kind, const int64_t *strides, int batch, int heads, int kv_heads,
                         int tq, int tk, int d, int causal, float scale, int bf16, int threads) {
    if (d % 16 || d <= 0 || kv_heads <= 0 || heads % kv_heads || tq <= 0 || tk <= 0 ||
        batch <= 0 || mask_kind < 0 || mask_kind > 2 || (mask_kind && !mask) ||
        rr_supported() < (bf16 ? 2 : 1))
        return -1;
    for (int i = 0; bf16 && i < 9; i++)
        if (strides[i] % 2) return -1; /* bf16 rows are read as pairs of 16-bit words */
    decoder_job_t job = {q,  k,     v,    mask_kind ? mask : NULL, out, strides, batch, heads,
                         heads / kv_heads, tq, tk, d, mask_kind, causal, bf16, scale, 0};
    double flops = 4.0 * batch * heads * d * (double)tq * (double)tk;
    return run_threads(decoder_worker, &job, flops, batch * heads, threads);
}
