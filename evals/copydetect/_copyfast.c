/* The copy detector's and repetition metric's inner loops, compiled (gen.evals.copydetect._copyfast).
 *
 * Optional: setuptools builds it where a C compiler is present ("optional" in pyproject.toml),
 * and evals/copydetect/compiled.py falls back to the numpy versions (evals/copydetect/grams.py, evals/copydetect/suffixes.py,
 * evals/copydetect/copying.py, evals/metrics.py) where it is absent. Each function computes exactly what
 * its numpy twin computes (tests/evals/test_compiled.py and test_copying.py run both); they
 * exist because the numpy versions pay a round of array calls per bisection step or probe: the
 * copy metric on LaTeX's 0.4 MB took 45 ms in numpy, 20 ms with these (evals/BENCHMARKS.md,
 * stop 24). Every function writes into arrays the caller allocated, so no numpy headers are
 * needed: plain buffers, read through the buffer protocol, with the GIL released.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* an index array of int32 or int64 (``isz``: its item size), element i */
static inline int64_t at(const char *base, Py_ssize_t i, Py_ssize_t isz) {
    return isz == 4 ? (int64_t)((const int32_t *)base)[i] : ((const int64_t *)base)[i];
}

static int check_size(Py_buffer *b, Py_ssize_t isz, const char *what) {
    if ((isz != 4 && isz != 8) || b->len % isz) {
        PyErr_Format(PyExc_ValueError, "%s: %zd bytes is not a whole number of %zd-byte (4 or 8) items", what,
                     b->len, isz);
        return 0;
    }
    return 1;
}

/* hashes(codes int64, n, base, mix, out uint64): the hash of every n-window of codes + 2,
 * Horner's rule mod 2^64, times mix (grams.window_hashes), by a rolling update. */
static PyObject *hashes(PyObject *self, PyObject *args) {
    Py_buffer codes, out;
    Py_ssize_t n;
    unsigned long long base, mix;
    if (!PyArg_ParseTuple(args, "y*nKKw*", &codes, &n, &base, &mix, &out)) return NULL;
    PyObject *ret = NULL;
    Py_ssize_t len = codes.len / 8, w = len - n + 1;
    if (!check_size(&codes, 8, "codes") || n < 1) {
        if (!PyErr_Occurred()) PyErr_SetString(PyExc_ValueError, "n must be >= 1");
        goto done;
    }
    if (w > 0 && out.len < w * 8) {
        PyErr_SetString(PyExc_ValueError, "out is too short");
        goto done;
    }
    Py_BEGIN_ALLOW_THREADS
    if (w > 0) {
        const int64_t *c = codes.buf;
        uint64_t *o = out.buf, h = 0, top = 1; /* top: base^(n-1), the first character's weight */
        for (Py_ssize_t j = 0; j < n; j++) h = h * base + (uint64_t)(c[j] + 2);
        for (Py_ssize_t j = 1; j < n; j++) top *= base;
        o[0] = h * mix;
        for (Py_ssize_t i = 1; i < w; i++) {
            h = (h - (uint64_t)(c[i - 1] + 2) * top) * base + (uint64_t)(c[i + n - 1] + 2);
            o[i] = h * mix;
        }
    }
    Py_END_ALLOW_THREADS
    ret = Py_None;
    Py_INCREF(ret);
done:
    PyBuffer_Release(&codes);
    PyBuffer_Release(&out);
    return ret;
}

/* lookup(codes, n, h, bits, bshift, starts, starts_isz, shift, grams, out int32): out[i] = the
 * index of h[i] (the hash of the n-window of codes at i) in the sorted table grams, or -1: the
 * presence bit of its top bits, then its slot grams[starts[s]:starts[s + 1]]; -1 without a
 * probe for a window holding a negative code, a character training lacks (CopyIndex._lookup). */
static PyObject *lookup(PyObject *self, PyObject *args) {
    Py_buffer codes, h, bits, starts, grams, out;
    int bshift, shift;
    Py_ssize_t n, sisz;
    if (!PyArg_ParseTuple(args, "y*ny*y*iy*niy*w*", &codes, &n, &h, &bits, &bshift, &starts, &sisz, &shift, &grams,
                          &out))
        return NULL;
    PyObject *ret = NULL;
    Py_ssize_t m = h.len / 8, slots = starts.len / (sisz > 0 ? sisz : 1);
    if (!check_size(&h, 8, "h") || !check_size(&starts, sisz, "starts") || !check_size(&grams, 8, "grams") ||
        !check_size(&codes, 8, "codes"))
        goto done;
    if (n < 1 || codes.len / 8 != m + n - 1 || out.len < m * 4 || bshift < 8 || bshift > 63 || shift < 8 || shift > 63 ||
        (Py_ssize_t)(bits.len * 8) < ((Py_ssize_t)1 << (64 - bshift)) || slots < ((Py_ssize_t)1 << (64 - shift)) + 1) {
        PyErr_SetString(PyExc_ValueError, "lookup: tables and shifts do not match");
        goto done;
    }
    Py_BEGIN_ALLOW_THREADS
    const uint64_t *hv = h.buf, *g = grams.buf;
    const uint8_t *bv = bits.buf;
    const char *sv = starts.buf;
    int32_t *o = out.buf;
    const int64_t *cv = codes.buf;
    int64_t ng = grams.len / 8, bad = -1; /* bad: the last negative code seen, up to i + n - 1 */
    for (Py_ssize_t j = 0; j < n - 1; j++)
        if (cv[j] < 0) bad = j;
    for (Py_ssize_t i = 0; i < m; i++) {
        /* three dependent reads per window, each likely a cache miss on a big corpus: fetched
         * ahead (the bit and the slot 32 windows ahead, the slot's hashes 16 ahead: LaTeX's
         * 0.4 MB 11 -> 7.5 ms) */
        if (i + 32 < m) {
            uint64_t y = hv[i + 32], t = y >> bshift;
            __builtin_prefetch(bv + (t >> 3));
            __builtin_prefetch(sv + (y >> shift) * sisz);
        }
        if (i + 16 < m) {
            uint64_t y = hv[i + 16], t = y >> bshift;
            if ((bv[t >> 3] >> (t & 7)) & 1) __builtin_prefetch(g + at(sv, (Py_ssize_t)(y >> shift), sisz));
        }
        if (cv[i + n - 1] < 0) bad = i + n - 1;
        uint64_t x = hv[i], top = x >> bshift;
        o[i] = -1;
        if (bad >= i || !((bv[top >> 3] >> (top & 7)) & 1)) continue;
        uint64_t s = x >> shift;
        int64_t lo = at(sv, (Py_ssize_t)s, sisz), hi = at(sv, (Py_ssize_t)s + 1, sisz);
        if (hi > ng) hi = ng;
        for (; lo < hi && g[lo] < x; lo++) {}
        if (lo < hi && g[lo] == x) o[i] = (int32_t)lo;
    }
    Py_END_ALLOW_THREADS
    ret = Py_None;
    Py_INCREF(ret);
done:
    PyBuffer_Release(&codes);
    PyBuffer_Release(&h);
    PyBuffer_Release(&bits);
    PyBuffer_Release(&starts);
    PyBuffer_Release(&grams);
    PyBuffer_Release(&out);
    return ret;
}

/* characters a[0:] and b[0:] share (width bytes each), 8 bytes at a time, at most ``limit``
 * (each buffer holds limit * width + 8 bytes); Matcher's padding ends every match before it */
static inline int64_t common(const uint8_t *a, const uint8_t *b, int width, int64_t limit) {
    int64_t k = 0;
    if (limit < 0) limit = 0;
    for (;;) {
        if (k >= limit * width) return limit;
        uint64_t x, y;
        memcpy(&x, a + k, 8);
        memcpy(&y, b + k, 8);
        if (x != y) {
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
            k += __builtin_clzll(x ^ y) / 8;
#else
            k += __builtin_ctzll(x ^ y) / 8;
#endif
            return k / width;
        }
        k += 8;
    }
}

/* longest(text, n, sa, sa_isz, query, pos, group, group_isz, shared, width, span_whole,
 * span_shared, best, where): per query position, the longest prefix of query[pos:] in the text
 * (suffixes.Matcher.longest). text and query are code buffers of ``width`` bytes per character
 * (big-endian), padded as Matcher lays them out; the lower bound of the query among the
 * suffixes is found by bisection (memcmp: byte order is character order) within the row's
 * group slice (start, size) where known (start >= 0), comparing span_shared characters from
 * character ``shared`` on, else within the whole array comparing span_whole from the first;
 * then the longer common prefix of the two suffixes beside that bound (ties: the first). */
static PyObject *longest(PyObject *self, PyObject *args) {
    Py_buffer text, sa, query, pos, group, best, where;
    Py_ssize_t n, sisz, gisz, shared, span_shared, span_whole;
    int width;
    if (!PyArg_ParseTuple(args, "y*ny*ny*y*y*nninnw*w*", &text, &n, &sa, &sisz, &query, &pos, &group, &gisz,
                          &shared, &width, &span_whole, &span_shared, &best, &where))
        return NULL;
    PyObject *ret = NULL;
    Py_ssize_t m = pos.len / 8, rows = gisz > 0 ? group.len / (2 * gisz) : 0;
    if (!check_size(&sa, sisz, "sa") || !check_size(&pos, 8, "pos") || (gisz && !check_size(&group, gisz, "group")))
        goto done;
    if ((width != 1 && width != 2) || sa.len / sisz < n || text.len < (n + 8) * width ||
        best.len < m * 8 || where.len < m * 8 || (rows && rows < m) || shared < 0) {
        PyErr_SetString(PyExc_ValueError, "longest: buffers do not match");
        goto done;
    }
    /* every read in bounds: a search step reads up to span_max characters from a position */
    Py_ssize_t span_max = span_whole > span_shared + shared ? span_whole : span_shared + shared;
    if (text.len < (n + span_max) * width) {
        PyErr_SetString(PyExc_ValueError, "longest: the text buffer lacks its padding");
        goto done;
    }
    for (Py_ssize_t k = 0; k < m; k++) {
        int64_t p = ((const int64_t *)pos.buf)[k], g = rows ? at(group.buf, 2 * k, gisz) : -1;
        if (p < 0 || (p + span_max) * width > query.len ||
            (g >= 0 && (g + at(group.buf, 2 * k + 1, gisz) > n || at(group.buf, 2 * k + 1, gisz) < 0))) {
            PyErr_SetString(PyExc_ValueError, "longest: a position or group out of bounds");
            goto done;
        }
    }
    Py_BEGIN_ALLOW_THREADS
    const uint8_t *t = text.buf, *q = query.buf;
    const char *sv = sa.buf, *gv = group.buf;
    const int64_t *pv = pos.buf;
    int64_t *bo = best.buf, *wo = where.buf;
    for (Py_ssize_t k = 0; k < m; k++) {
        int64_t lo = 0, hi = n, skip = 0, span = span_whole;
        if (rows && at(gv, 2 * k, gisz) >= 0) {
            lo = at(gv, 2 * k, gisz);
            hi = lo + at(gv, 2 * k + 1, gisz);
            skip = shared;
            span = span_shared;
        }
        const uint8_t *qk = q + pv[k] * width;
        while (lo < hi) {
            int64_t mid = (lo + hi) >> 1, p = at(sv, mid, sisz);
            if (memcmp(t + (p + skip) * width, qk + skip * width, (size_t)(span * width)) < 0) lo = mid + 1;
            else hi = mid;
        }
        int64_t b = 0, w = -1;
        for (int64_t j = lo - 1; j <= lo; j++) {
            if (j < 0 || j >= n) continue;
            int64_t p = at(sv, j, sisz), room = text.len / width - p, qroom = query.len / width - pv[k];
            int64_t c = common(t + p * width, qk, width, (room < qroom ? room : qroom) - 8 / width);
            if (c > b) { b = c; w = p; }
        }
        bo[k] = b;
        wo[k] = w;
    }
    Py_END_ALLOW_THREADS
    ret = Py_None;
    Py_INCREF(ret);
done:
    PyBuffer_Release(&text);
    PyBuffer_Release(&sa);
    PyBuffer_Release(&query);
    PyBuffer_Release(&pos);
    PyBuffer_Release(&group);
    PyBuffer_Release(&best);
    PyBuffer_Release(&where);
    return ret;
}

/* distinct(h uint64) -> int: how many distinct values (an open-addressing set of twice their
 * count, indexed by the top bits: the hashes are mixed), where the numpy twin sorts a copy */
static PyObject *distinct(PyObject *self, PyObject *args) {
    Py_buffer h;
    if (!PyArg_ParseTuple(args, "y*", &h)) return NULL;
    Py_ssize_t m = h.len / 8;
    int k = 4;
    while (((Py_ssize_t)1 << k) < 2 * m) k++;
    uint64_t *table = calloc((size_t)1 << k, 8);
    if (!table) {
        PyBuffer_Release(&h);
        return PyErr_NoMemory();
    }
    Py_ssize_t count = 0;
    Py_BEGIN_ALLOW_THREADS
    const uint64_t *hv = h.buf;
    uint64_t mask = ((uint64_t)1 << k) - 1;
    int zero = 0; /* 0 marks an empty slot, so the value 0 is counted apart */
    for (Py_ssize_t i = 0; i < m; i++) {
        uint64_t x = hv[i];
        if (!x) { count += !zero; zero = 1; continue; }
        uint64_t s = (x * 0x9E3779B97F4A7C15ULL) >> (64 - k);
        while (table[s] && table[s] != x) s = (s + 1) & mask;
        if (!table[s]) { table[s] = x; count++; }
    }
    Py_END_ALLOW_THREADS
    free(table);
    PyBuffer_Release(&h);
    return PyLong_FromSsize_t(count);
}

static PyMethodDef methods[] = {
    {"hashes", hashes, METH_VARARGS, "Rolling window hashes (grams.window_hashes)."},
    {"lookup", lookup, METH_VARARGS, "Window hashes looked up in the gram table (CopyIndex._lookup)."},
    {"longest", longest, METH_VARARGS, "Longest prefix of each query position in the text (Matcher.longest)."},
    {"distinct", distinct, METH_VARARGS, "Number of distinct uint64 values."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_copyfast", NULL, -1, methods};

PyMODINIT_FUNC PyInit__copyfast(void) { return PyModule_Create(&module); }
