/* One call decodes (or encodes) many chunks: the chunk engine's hot loops, run without the GIL.
 *
 * Python calls loomfile_decode_many through ctypes, which releases the GIL once for the whole
 * batch instead of once per chunk; with the per-chunk loop in Python, two decoding threads spend
 * much of their time handing the GIL back and forth. The deflate decoder itself is libdeflate's,
 * passed in as a function pointer, so this file links against nothing. The Python module is
 * empty: it exists so that the build puts this code next to the package. When no compiler was
 * available it is absent and loomfile runs the same loop in Python.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

typedef int (*decompress_fn)(void *, const void *, size_t, void *, size_t, size_t *);
typedef size_t (*compress_fn)(void *, const void *, size_t, void *, size_t);

/* Inflate chunk i from src + pos[i] (size[i] bytes) into dst + slot[i] * nbytes, for i < n.
 * Each must decode to exactly nbytes. Returns -1, or the first i that failed. */
PyMODINIT_FUNC PyInit__batch(void);

#if defined(_WIN32)
__declspec(dllexport)
#else
__attribute__((visibility("default")))
#endif
int64_t loomfile_decode_many(void *fn, void *decompressor, const uint8_t *src, const int64_t *pos,
                             const int64_t *size, uint8_t *dst, const int64_t *slot, int64_t nbytes,
                             int64_t n)
{
    decompress_fn decompress = (decompress_fn)fn;
    for (int64_t i = 0; i < n; i++) {
        if (decompress(decompressor, src + pos[i], (size_t)size[i], dst + slot[i] * nbytes,
                       (size_t)nbytes, NULL) != 0) {
            return i;
        }
    }
    return -1;
}

/* Deflate chunk i, nbytes at src + i * nbytes, into dst + i * stride, and store its compressed
 * size in size[i], for i < n. Returns -1, or the first i that did not fit in stride bytes. */
#if defined(_WIN32)
__declspec(dllexport)
#else
__attribute__((visibility("default")))
#endif
int64_t loomfile_encode_many(void *fn, void *compressor, const uint8_t *src, int64_t nbytes, uint8_t *dst,
                             int64_t stride, int64_t *size, int64_t n)
{
    compress_fn compress = (compress_fn)fn;
    for (int64_t i = 0; i < n; i++) {
        size[i] = (int64_t)compress(compressor, src + i * nbytes, (size_t)nbytes, dst + i * stride,
                                    (size_t)stride);
        if (size[i] == 0) {
            return i;
        }
    }
    return -1;
}

/* ISA-L's igzip, when the isal package is installed: about twice libdeflate's speed at the low
 * levels Loom files use. Its stream struct starts with these documented fields (igzip_lib.h, stable
 * since ISA-L 2.23); the internal state after them is never touched here, and the caller allocates
 * the whole struct (generously) plus the level buffer. loomfile checks the output against zlib
 * before using this path. */
struct isal_stream_head {
    uint8_t *next_in;
    uint32_t avail_in;
    uint32_t total_in;
    uint8_t *next_out;
    uint32_t avail_out;
    uint32_t total_out;
    void *hufftables;
    uint32_t level;
    uint32_t level_buf_size;
    uint8_t *level_buf;
    uint16_t end_of_stream;
    uint16_t flush;
    uint16_t gzip_flag;
    uint16_t hist_bits;
};

typedef void (*isal_init_fn)(void *);
typedef int (*isal_deflate_fn)(void *);

/* As loomfile_encode_many, through isal_deflate_stateless in zlib format (gzip_flag 3). */
#if defined(_WIN32)
__declspec(dllexport)
#else
__attribute__((visibility("default")))
#endif
int64_t loomfile_isal_encode_many(void *init, void *deflate, void *stream, uint8_t *level_buf,
                                  int64_t level_buf_size, int64_t level, const uint8_t *src,
                                  int64_t nbytes, uint8_t *dst, int64_t stride, int64_t *size, int64_t n)
{
    struct isal_stream_head *s = (struct isal_stream_head *)stream;
    for (int64_t i = 0; i < n; i++) {
        ((isal_init_fn)init)(stream);
        s->next_in = (uint8_t *)src + i * nbytes;
        s->avail_in = (uint32_t)nbytes;
        s->next_out = dst + i * stride;
        s->avail_out = (uint32_t)stride;
        s->level = (uint32_t)level;
        s->level_buf = level_buf;
        s->level_buf_size = (uint32_t)level_buf_size;
        s->end_of_stream = 1;
        s->flush = 0;
        s->gzip_flag = 3;
        if (((isal_deflate_fn)deflate)(stream) != 0 || s->avail_in != 0) {
            return i;
        }
        size[i] = (int64_t)s->total_out;
    }
    return -1;
}

/* HDF5's H5Dwrite_chunk (hid_t is int64_t, hsize_t uint64_t since HDF5 1.10). */
typedef int (*h5_write_chunk_fn)(int64_t, int64_t, uint32_t, const uint64_t *, size_t, const void *);

/* Hand n stored chunks to HDF5: chunk i is size[i] bytes at src + pos[i], for the element offset
 * (offset[2i], offset[2i+1]), with filter mask mask[i]. Called with the GIL and h5py's lock held
 * (HDF5 is not thread-safe). Returns -1, or the first i HDF5 refused. */
#if defined(_WIN32)
__declspec(dllexport)
#else
__attribute__((visibility("default")))
#endif
int64_t loomfile_write_chunks(void *fn, int64_t dset, const uint8_t *src, const int64_t *pos,
                              const int64_t *size, const int64_t *mask, const uint64_t *offset, int64_t n)
{
    h5_write_chunk_fn write_chunk = (h5_write_chunk_fn)fn;
    for (int64_t i = 0; i < n; i++) {
        if (size[i] > 0 &&
            write_chunk(dset, 0, (uint32_t)mask[i], offset + 2 * i, (size_t)size[i], src + pos[i]) < 0) {
            return i;
        }
    }
    return -1;
}

/* sparse(): the nonzeros of a block in one pass, row-major, into the result arrays: value (converted
 * to U), row r0 + r, and column positions[c] (or c0 + c when positions is NULL). The block is laid out
 * as decoded chunks, (m, k, h, c1): block row r, column c is at chunk (r / h, c / c1), row r % h,
 * column c % c1; only its first `rows` rows and `cols` columns count (edge chunks hold more). A plain
 * C-ordered rows x cols array is the case k = h = 1, c1 = cols. Returns how many. */
#if defined(_WIN32)
#define EXPORT __declspec(dllexport)
#else
#define EXPORT __attribute__((visibility("default")))
#endif

/* Branch-free within a row (a data-dependent branch per element mispredicts at typical densities):
 * every element is written to the row's scratch space, the index advancing only past nonzeros; the
 * row's entries are then copied out. Scratch: cols + 1 entries of each array, allocated per call. */
#define EXTRACT(NAME, T, U)                                                                           \
    EXPORT int64_t NAME(const T *v, int64_t k, int64_t h, int64_t c1, int64_t rows, int64_t cols,     \
                        U *data, int32_t *row, int32_t *col, int64_t r0, const int64_t *positions,    \
                        int64_t c0)                                                                   \
    {                                                                                                 \
        U *sd = (U *)malloc((size_t)(cols + 1) * sizeof(U));                                          \
        int32_t *sc = (int32_t *)malloc((size_t)(cols + 1) * sizeof(int32_t));                       \
        if (sd == NULL || sc == NULL) {                                                               \
            free(sd);                                                                                 \
            free(sc);                                                                                 \
            return -1;                                                                                \
        }                                                                                             \
        int64_t out = 0;                                                                              \
        for (int64_t r = 0; r < rows; r++) {                                                          \
            const T *first_chunk = v + ((r / h) * k * h + r % h) * c1;                                \
            int64_t n = 0;                                                                            \
            for (int64_t first = 0, j = 0; first < cols; first += c1, j++) {                          \
                const T *line = first_chunk + j * h * c1;                                             \
                int64_t width = cols - first < c1 ? cols - first : c1;                                \
                if (positions) {                                                                      \
                    for (int64_t c = 0; c < width; c++) {                                             \
                        T x = line[c];                                                                \
                        sd[n] = (U)x;                                                                 \
                        sc[n] = (int32_t)positions[first + c];                                        \
                        n += (x != 0);                                                                \
                    }                                                                                 \
                } else {                                                                              \
                    int32_t base = (int32_t)(c0 + first);                                             \
                    for (int64_t c = 0; c < width; c++) {                                             \
                        T x = line[c];                                                                \
                        sd[n] = (U)x;                                                                 \
                        sc[n] = base + (int32_t)c;                                                    \
                        n += (x != 0);                                                                \
                    }                                                                                 \
                }                                                                                     \
            }                                                                                         \
            memcpy(data + out, sd, (size_t)n * sizeof(U));                                            \
            memcpy(col + out, sc, (size_t)n * sizeof(int32_t));                                       \
            for (int64_t q = 0; q < n; q++) {                                                         \
                row[out + q] = (int32_t)(r0 + r);                                                     \
            }                                                                                         \
            out += n;                                                                                 \
        }                                                                                             \
        free(sd);                                                                                     \
        free(sc);                                                                                     \
        return out;                                                                                   \
    }

/* How many values of such a block are not zero (the size of its range in the result, before filling). */
#define COUNT(NAME, T)                                                                                \
    EXPORT int64_t NAME(const T *v, int64_t k, int64_t h, int64_t c1, int64_t rows, int64_t cols)     \
    {                                                                                                 \
        int64_t n = 0;                                                                                \
        for (int64_t r = 0; r < rows; r++) {                                                          \
            const T *first_chunk = v + ((r / h) * k * h + r % h) * c1;                                \
            for (int64_t first = 0, j = 0; first < cols; first += c1, j++) {                          \
                const T *line = first_chunk + j * h * c1;                                             \
                int64_t width = cols - first < c1 ? cols - first : c1;                                \
                for (int64_t c = 0; c < width; c++) {                                                 \
                    n += (line[c] != 0);                                                              \
                }                                                                                     \
            }                                                                                         \
        }                                                                                             \
        return n;                                                                                     \
    }

/* the values as they are stored, and as float64 (sparse()'s default, as in loompy) */
#define EXTRACT_BOTH(CODE, T)                                                                         \
    COUNT(loomfile_count_nonzero_##CODE, T)                                                           \
    EXTRACT(loomfile_nonzeros_##CODE, T, T)                                                           \
    EXTRACT(loomfile_nonzeros_##CODE##_f8, T, double)

EXTRACT_BOTH(f4, float)
EXTRACT_BOTH(f8, double)
EXTRACT_BOTH(i1, int8_t)
EXTRACT_BOTH(u1, uint8_t)
EXTRACT_BOTH(i2, int16_t)
EXTRACT_BOTH(u2, uint16_t)
EXTRACT_BOTH(i4, int32_t)
EXTRACT_BOTH(u4, uint32_t)
EXTRACT_BOTH(i8, int64_t)
EXTRACT_BOTH(u8, uint64_t)

/* map() down the columns: numpy's pairwise summation (loops_utils.h.src: 8 accumulators over blocks
 * of at most 128, halves split on multiples of 8, the reduction starting from 0) applied down each
 * column of an h x w block of T (row stride lda elements), TILE columns at a time so that every step
 * is a run of contiguous values: out[c] is bit for bit what np.add.reduce gives on column c alone.
 * With mean (not NULL), the values summed are (x - mean[c])^2, rounded as numpy rounds x - m, then
 * d * d: the sum inside np.var and np.std. The build must not contract d * d + r into one fused
 * multiply-add (setup.py passes -ffp-contract=off). */
#define TILE 256
#define PW_BLOCKSIZE 128
#define TERM(T, x, m, c) ((m) ? (T)(((x)[c] - (m)[c]) * ((x)[c] - (m)[c])) : (x)[c])

#define PAIRWISE(CODE, T)                                                                             \
    /* res[c] += the terms of rows [lo, hi), one row after the other */                               \
    static void add_rows_##CODE(const T *a, int64_t lo, int64_t hi, int64_t lda, int w, const T *m,   \
                                T *res)                                                               \
    {                                                                                                 \
        for (int64_t i = lo; i < hi; i++) {                                                           \
            const T *x = a + i * lda;                                                                 \
            for (int c = 0; c < w; c++) {                                                             \
                T d = TERM(T, x, m, c);                                                               \
                res[c] += d;                                                                          \
            }                                                                                         \
        }                                                                                             \
    }                                                                                                 \
    static void pairwise_##CODE(const T *a, int64_t n, int64_t lda, int w, const T *m, T *res)        \
    {                                                                                                 \
        if (n < 8) {                                                                                  \
            for (int c = 0; c < w; c++) {                                                             \
                res[c] = (T)0;                                                                        \
            }                                                                                         \
            add_rows_##CODE(a, 0, n, lda, w, m, res);                                                 \
            return;                                                                                   \
        }                                                                                             \
        if (n > PW_BLOCKSIZE) {                                                                       \
            int64_t n2 = n / 2;                                                                       \
            n2 -= n2 % 8;                                                                             \
            T right[TILE];                                                                            \
            pairwise_##CODE(a, n2, lda, w, m, res);                                                   \
            pairwise_##CODE(a + n2 * lda, n - n2, lda, w, m, right);                                  \
            for (int c = 0; c < w; c++) {                                                             \
                res[c] += right[c];                                                                   \
            }                                                                                         \
            return;                                                                                   \
        }                                                                                             \
        T r[8][TILE];                                                                                 \
        for (int j = 0; j < 8; j++) {                                                                 \
            const T *x = a + j * lda;                                                                 \
            for (int c = 0; c < w; c++) {                                                             \
                r[j][c] = TERM(T, x, m, c);                                                           \
            }                                                                                         \
        }                                                                                             \
        int64_t i = 8;                                                                                \
        for (; i < n - (n % 8); i += 8) {                                                             \
            for (int j = 0; j < 8; j++) {                                                             \
                add_rows_##CODE(a + j * lda, i, i + 1, lda, w, m, r[j]);                              \
            }                                                                                         \
        }                                                                                             \
        for (int c = 0; c < w; c++) {                                                                 \
            res[c] = ((r[0][c] + r[1][c]) + (r[2][c] + r[3][c])) + ((r[4][c] + r[5][c]) + (r[6][c] + r[7][c])); \
        }                                                                                             \
        add_rows_##CODE(a, i, n, lda, w, m, res);                                                     \
    }                                                                                                 \
    EXPORT int64_t loomfile_column_sums_##CODE(const T *a, int64_t h, int64_t w, int64_t lda,           \
                                               const T *mean, T *out)                                 \
    {                                                                                                 \
        for (int64_t c0 = 0; c0 < w; c0 += TILE) {                                                    \
            int tw = (int)(w - c0 < TILE ? w - c0 : TILE);                                            \
            pairwise_##CODE(a + c0, h, lda, tw, mean ? mean + c0 : NULL, out + c0);                   \
            for (int c = 0; c < tw; c++) {                                                            \
                out[c0 + c] = (T)0 + out[c0 + c]; /* the reduction's start (and -0.0 becomes 0.0) */ \
            }                                                                                         \
        }                                                                                             \
        return 0;                                                                                     \
    }

PAIRWISE(f4, float)
PAIRWISE(f8, double)

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_batch", NULL, -1, NULL};

PyMODINIT_FUNC PyInit__batch(void) { return PyModule_Create(&module); }
