/* farm_utf8: one strict UTF-8 decoder and encoder for the whole farm.
 *
 * Strict: no overlong forms, no surrogates, nothing above U+10FFFF. The JSON
 * module (proto) and the text-reading handlers (worker) use the same two
 * functions, so what one accepts the other does. Header-only.
 */
#ifndef FARM_UTF8_H
#define FARM_UTF8_H

#include <stddef.h>
#include <stdint.h>

/* Decode the code point at p[0..n) into *cp. Returns the bytes it takes
 * (1..4), or 0 when p does not start with a valid UTF-8 sequence (or n is 0).
 * NUL is a valid one-byte sequence here. */
static inline size_t farm_utf8_next(const unsigned char *p, size_t n, uint32_t *cp) {
    if (n == 0)
        return 0;
    unsigned char c = p[0];
    if (c < 0x80) {
        *cp = c;
        return 1;
    }
    size_t len;
    uint32_t v, min;
    if ((c & 0xE0) == 0xC0) {
        len = 2, v = c & 0x1F, min = 0x80;
    } else if ((c & 0xF0) == 0xE0) {
        len = 3, v = c & 0x0F, min = 0x800;
    } else if ((c & 0xF8) == 0xF0) {
        len = 4, v = c & 0x07, min = 0x10000;
    } else {
        return 0;
    }
    if (n < len)
        return 0;
    for (size_t i = 1; i < len; i++) {
        if ((p[i] & 0xC0) != 0x80)
            return 0;
        v = (v << 6) | (p[i] & 0x3F);
    }
    if (v < min || v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF))
        return 0;
    *cp = v;
    return len;
}

/* Encode cp (a valid code point) at out, which has room for 4 bytes.
 * Returns the bytes written. */
static inline size_t farm_utf8_put(unsigned char *out, uint32_t cp) {
    if (cp < 0x80) {
        out[0] = (unsigned char)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (unsigned char)(0xC0 | (cp >> 6));
        out[1] = (unsigned char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (unsigned char)(0xE0 | (cp >> 12));
        out[1] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
        out[2] = (unsigned char)(0x80 | (cp & 0x3F));
        return 3;
    }
    out[0] = (unsigned char)(0xF0 | (cp >> 18));
    out[1] = (unsigned char)(0x80 | ((cp >> 12) & 0x3F));
    out[2] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
    out[3] = (unsigned char)(0x80 | (cp & 0x3F));
    return 4;
}

#endif
