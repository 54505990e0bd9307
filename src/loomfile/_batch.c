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

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_batch", NULL, -1, NULL};

PyMODINIT_FUNC PyInit__batch(void) { return PyModule_Create(&module); }
