/* test_json: unit tests of farm_json (JSON <-> MessagePack).
 *
 * Most tests go JSON -> MessagePack -> msgpack_object -> compact JSON and
 * compare the exact text; some also look at the packed types. Objects
 * JSON cannot produce (bin, ext, float32, NaN, non-str keys) are packed by
 * hand. Rejections check the code and the exact message, and that the
 * packer received nothing.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <locale.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "farm_err.h"
#include "farm_json.h"

/* ---- helpers ---- */

typedef struct {
    msgpack_sbuffer sb;
    msgpack_unpacked u;
} packed_t;

static char *write_json(const msgpack_object *o, int indent) {
    char *buf = NULL;
    size_t size = 0;
    FILE *f = open_memstream(&buf, &size);
    assert_non_null(f);
    assert_int_equal(farm_json_write(f, o, indent), 0);
    assert_int_equal(fclose(f), 0);
    assert_non_null(buf);
    assert_int_equal(strlen(buf), size);
    return buf;
}

/* Parse json[0..len) into p (must succeed) and unpack it. */
static void parse_n(packed_t *p, const char *json, size_t len) {
    msgpack_sbuffer_init(&p->sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &p->sb, msgpack_sbuffer_write);
    char err[256] = "junk";
    int rc = farm_json_to_msgpack(json, len, &pk, err, sizeof err);
    if (rc != 0)
        fail_msg("parse of '%.*s' failed (%d): %s", (int)len, json, rc, err);
    assert_string_equal(err, "");
    msgpack_unpacked_init(&p->u);
    size_t off = 0;
    assert_int_equal(msgpack_unpack_next(&p->u, p->sb.data, p->sb.size, &off), MSGPACK_UNPACK_SUCCESS);
    assert_int_equal(off, p->sb.size); /* exactly one object */
}

static void parse(packed_t *p, const char *json) {
    parse_n(p, json, strlen(json));
}

static void packed_free(packed_t *p) {
    msgpack_unpacked_destroy(&p->u);
    msgpack_sbuffer_destroy(&p->sb);
}

/* JSON -> msgpack -> JSON must give `want`. */
static void check_rt_indent(const char *in, size_t len, int indent, const char *want) {
    packed_t p;
    parse_n(&p, in, len);
    char *out = write_json(&p.u.data, indent);
    assert_string_equal(out, want);
    free(out);
    packed_free(&p);
}

static void check_rt(const char *in, const char *want) {
    check_rt_indent(in, strlen(in), 0, want);
}

/* JSON must be rejected with code and exactly this message, packing nothing. */
static void check_err_n(const char *in, size_t len, int code, const char *msg) {
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    char err[256];
    int rc = farm_json_to_msgpack(in, len, &pk, err, sizeof err);
    assert_int_equal(rc, code);
    assert_string_equal(err, msg);
    assert_int_equal(sb.size, 0);
    msgpack_sbuffer_destroy(&sb);
}

static void check_err(const char *in, int code, const char *msg) {
    check_err_n(in, strlen(in), code, msg);
}

/* Write a hand-packed object (from sb) as JSON and compare. */
static void check_packed(const msgpack_sbuffer *sb, int indent, const char *want) {
    msgpack_unpacked u;
    msgpack_unpacked_init(&u);
    size_t off = 0;
    assert_int_equal(msgpack_unpack_next(&u, sb->data, sb->size, &off), MSGPACK_UNPACK_SUCCESS);
    char *out = write_json(&u.data, indent);
    assert_string_equal(out, want);
    free(out);
    msgpack_unpacked_destroy(&u);
}

/* ---- round trips ---- */

static void test_nested(void **state) {
    check_rt("{\"a\":[1,{\"b\":null}],\"c\":{\"d\":[[],{}],\"e\":[[[\"x\"]]]}}",
             "{\"a\":[1,{\"b\":null}],\"c\":{\"d\":[[],{}],\"e\":[[[\"x\"]]]}}");
    check_rt(" \t\r\n{ \"a\" :\n[ 1 , 2 ] , \"b\" : { } }\n ", "{\"a\":[1,2],\"b\":{}}");
    check_rt("[]", "[]");
    check_rt("{}", "{}");
    /* duplicate keys are kept, in order */
    check_rt("{\"k\":1,\"k\":2}", "{\"k\":1,\"k\":2}");
    /* more containers than the inline count vector holds */
    char big[4096];
    size_t n = 0;
    big[n++] = '[';
    for (int i = 0; i < 200; i++) {
        if (i > 0)
            big[n++] = ',';
        memcpy(big + n, "{\"a\":[]}", 8);
        n += 8;
    }
    big[n++] = ']';
    big[n] = '\0';
    check_rt(big, big);
}

static void test_scalars(void **state) {
    check_rt("[true,false,null,0,-1,42,\"x\",1.5,-0.25,\"\"]", "[true,false,null,0,-1,42,\"x\",1.5,-0.25,\"\"]");
    check_rt("true", "true");
    check_rt("null", "null");
    check_rt("  7  ", "7");
    check_rt("-0", "0");

    packed_t p;
    parse(&p, "[true,null,42,-1,1.5,\"s\",{}]");
    const msgpack_object_array *a = &p.u.data.via.array;
    assert_int_equal(p.u.data.type, MSGPACK_OBJECT_ARRAY);
    assert_int_equal(a->size, 7);
    assert_int_equal(a->ptr[0].type, MSGPACK_OBJECT_BOOLEAN);
    assert_true(a->ptr[0].via.boolean);
    assert_int_equal(a->ptr[1].type, MSGPACK_OBJECT_NIL);
    assert_int_equal(a->ptr[2].type, MSGPACK_OBJECT_POSITIVE_INTEGER);
    assert_int_equal(a->ptr[2].via.u64, 42);
    assert_int_equal(a->ptr[3].type, MSGPACK_OBJECT_NEGATIVE_INTEGER);
    assert_int_equal(a->ptr[3].via.i64, -1);
    assert_int_equal(a->ptr[4].type, MSGPACK_OBJECT_FLOAT64);
    assert_true(a->ptr[4].via.f64 == 1.5);
    assert_int_equal(a->ptr[5].type, MSGPACK_OBJECT_STR);
    assert_int_equal(a->ptr[6].type, MSGPACK_OBJECT_MAP);
    packed_free(&p);
}

static void test_int_limits(void **state) {
    check_rt("[-9223372036854775808,9223372036854775807,18446744073709551615]",
             "[-9223372036854775808,9223372036854775807,18446744073709551615]");
    packed_t p;
    parse(&p, "[-9223372036854775808,9223372036854775807,18446744073709551615,"
              "18446744073709551616,-9223372036854775809]");
    const msgpack_object *e = p.u.data.via.array.ptr;
    assert_int_equal(e[0].type, MSGPACK_OBJECT_NEGATIVE_INTEGER);
    assert_true(e[0].via.i64 == INT64_MIN);
    assert_int_equal(e[1].type, MSGPACK_OBJECT_POSITIVE_INTEGER);
    assert_true(e[1].via.u64 == (uint64_t)INT64_MAX);
    assert_int_equal(e[2].type, MSGPACK_OBJECT_POSITIVE_INTEGER);
    assert_true(e[2].via.u64 == UINT64_MAX);
    /* beyond uint64 / int64: doubles */
    assert_int_equal(e[3].type, MSGPACK_OBJECT_FLOAT64);
    assert_true(e[3].via.f64 == 18446744073709551616.0);
    assert_int_equal(e[4].type, MSGPACK_OBJECT_FLOAT64);
    assert_true(e[4].via.f64 == -9223372036854775808.0);
    packed_free(&p);
    check_rt("[18446744073709551616,-9223372036854775809,100000000000000000000000]",
             "[1.8446744073709552e+19,-9.223372036854776e+18,1e+23]");
}

static void test_floats(void **state) {
    check_rt("[0.1,1e300,-2.5e-5,1.0,1E2,2.5e+3,0.30000000000000004,123456.789]",
             "[0.1,1e+300,-2.5e-05,1,100,2500,0.30000000000000004,123456.789]");
    check_rt("[1.7976931348623157e308,5e-324,2.2250738585072014e-308]",
             "[1.7976931348623157e+308,4.94065645841247e-324,2.2250738585072014e-308]");
    check_rt("0.1000000000000000055511151231257827", "0.1");
    check_rt("[1e400,-1e400]", "[null,null]"); /* overflow: Inf, written as null */
    check_rt("-0.0", "-0");
    /* a long mantissa (heap copy) */
    check_rt("3.14159265358979323846264338327950288419716939937510582097494459230781640628620899862803482534211706798",
             "3.141592653589793");

    /* NaN, Inf and float32, packed by hand */
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    assert_int_equal(msgpack_pack_array(&pk, 6), 0);
    assert_int_equal(msgpack_pack_double(&pk, NAN), 0);
    assert_int_equal(msgpack_pack_double(&pk, -INFINITY), 0);
    assert_int_equal(msgpack_pack_float(&pk, 0.1f), 0);
    assert_int_equal(msgpack_pack_float(&pk, 16777216.0f), 0);
    assert_int_equal(msgpack_pack_float(&pk, NAN), 0);
    assert_int_equal(msgpack_pack_float(&pk, 3.4028234663852886e38f), 0);
    check_packed(&sb, 0, "[null,null,0.1,16777216,null,3.4028235e+38]");
    msgpack_sbuffer_destroy(&sb);
}

static void test_unicode(void **state) {
    check_rt("\"\\u00e9\\u4E2D\\ud83d\\ude00 \\\"\\\\\\/\\b\\f\\n\\r\\t\\u0001\\u001F\\u007f\"",
             "\"\xc3\xa9\xe4\xb8\xad\xf0\x9f\x98\x80 \\\"\\\\/\\b\\f\\n\\r\\t\\u0001\\u001f\x7f\"");
    /* raw UTF-8 passes through unchanged */
    check_rt("\"h\xc3\xa9llo \xe2\x82\xac \xf0\x9f\x98\x80\"", "\"h\xc3\xa9llo \xe2\x82\xac \xf0\x9f\x98\x80\"");
    /* highest code point */
    check_rt("\"\\uDBFF\\uDFFF\"", "\"\xf4\x8f\xbf\xbf\"");
    check_rt("{\"\\u0041\\u00df\":\"a\\\"b\"}", "{\"A\xc3\x9f\":\"a\\\"b\"}");

    /* decoded bytes in the packed str, including an embedded NUL */
    packed_t p;
    parse(&p, "\"a\\u0000\\ud83d\\ude00\"");
    assert_int_equal(p.u.data.type, MSGPACK_OBJECT_STR);
    assert_int_equal(p.u.data.via.str.size, 6);
    assert_memory_equal(p.u.data.via.str.ptr, "a\0\xf0\x9f\x98\x80", 6);
    char *out = write_json(&p.u.data, 0);
    assert_string_equal(out, "\"a\\u0000\xf0\x9f\x98\x80\"");
    free(out);
    packed_free(&p);
}

static void test_not_terminated(void **state) {
    /* text need not be NUL terminated: only len bytes are read */
    static const char buf[] = {'1', '.', '5', '9', '9'};
    check_rt_indent(buf, 3, 0, "1.5");
    static const char buf2[] = {'-', '4', '2', '0', '0'};
    check_rt_indent(buf2, 3, 0, "-42");
    static const char buf3[] = {'[', 't', 'r', 'u', 'e', ']', 'x'};
    check_rt_indent(buf3, 6, 0, "[true]");
    check_err_n("truex", 3, FARM_EBADREQ, "invalid JSON at line 1 column 1: invalid literal");
}

static void test_str_invalid_utf8(void **state) {
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    assert_int_equal(msgpack_pack_array(&pk, 4), 0);
    assert_int_equal(msgpack_pack_str_with_body(&pk, "a\xff" "b", 3), 0);
    assert_int_equal(msgpack_pack_str_with_body(&pk, "\xe2\x82", 2), 0);           /* truncated */
    assert_int_equal(msgpack_pack_str_with_body(&pk, "\xc0\xaf\xed\xa0\x80", 5), 0); /* overlong, surrogate */
    assert_int_equal(msgpack_pack_str_with_body(&pk, "x\x01\x1f\"\\", 5), 0);
    check_packed(&sb, 0,
                 "[\"a\\ufffdb\",\"\\ufffd\\ufffd\",\"\\ufffd\\ufffd\\ufffd\\ufffd\\ufffd\","
                 "\"x\\u0001\\u001f\\\"\\\\\"]");
    msgpack_sbuffer_destroy(&sb);
}

static void test_bin(void **state) {
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    assert_int_equal(msgpack_pack_array(&pk, 5), 0);
    assert_int_equal(msgpack_pack_bin_with_body(&pk, "h\xc3\xa9llo\n", 7), 0);
    assert_int_equal(msgpack_pack_bin_with_body(&pk, "\xff\x00\x41", 3), 0);
    assert_int_equal(msgpack_pack_bin_with_body(&pk, "\x80", 1), 0);
    assert_int_equal(msgpack_pack_bin_with_body(&pk, "\xfe\xff", 2), 0);
    assert_int_equal(msgpack_pack_bin_with_body(&pk, "", 0), 0);
    check_packed(&sb, 0,
                 "[\"h\xc3\xa9llo\\n\",{\"base64\":\"/wBB\"},{\"base64\":\"gA==\"},{\"base64\":\"/v8=\"},\"\"]");
    check_packed(&sb, 2,
                 "[\n  \"h\xc3\xa9llo\\n\",\n  {\n    \"base64\": \"/wBB\"\n  },\n"
                 "  {\n    \"base64\": \"gA==\"\n  },\n  {\n    \"base64\": \"/v8=\"\n  },\n  \"\"\n]");
    msgpack_sbuffer_destroy(&sb);

    /* a long one crosses the base64 chunk buffer */
    unsigned char big[300];
    for (size_t i = 0; i < sizeof big; i++)
        big[i] = (unsigned char)(0xff - (i % 3));
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    assert_int_equal(msgpack_pack_bin_with_body(&pk, big, sizeof big), 0);
    char want[512] = "{\"base64\":\"";
    for (int i = 0; i < 100; i++)
        strcat(want, "//79");
    strcat(want, "\"}");
    check_packed(&sb, 0, want);
    msgpack_sbuffer_destroy(&sb);
}

static void test_ext(void **state) {
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    assert_int_equal(msgpack_pack_array(&pk, 2), 0);
    assert_int_equal(msgpack_pack_ext_with_body(&pk, "\x01\x02\x03", 3, 5), 0);
    assert_int_equal(msgpack_pack_ext_with_body(&pk, "ab", 2, -1), 0);
    check_packed(&sb, 0, "[{\"ext\":5,\"base64\":\"AQID\"},{\"ext\":-1,\"base64\":\"YWI=\"}]");
    msgpack_sbuffer_destroy(&sb);
}

static void test_map_keys(void **state) {
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    assert_int_equal(msgpack_pack_map(&pk, 6), 0);
    assert_int_equal(msgpack_pack_int(&pk, 1), 0);
    assert_int_equal(msgpack_pack_str_with_body(&pk, "a", 1), 0);
    assert_int_equal(msgpack_pack_nil(&pk), 0);
    assert_int_equal(msgpack_pack_true(&pk), 0);
    assert_int_equal(msgpack_pack_array(&pk, 2), 0);
    assert_int_equal(msgpack_pack_int(&pk, -3), 0);
    assert_int_equal(msgpack_pack_str_with_body(&pk, "q\"", 2), 0);
    assert_int_equal(msgpack_pack_int(&pk, 0), 0);
    assert_int_equal(msgpack_pack_bin_with_body(&pk, "b", 1), 0);
    assert_int_equal(msgpack_pack_int(&pk, 2), 0);
    assert_int_equal(msgpack_pack_str_with_body(&pk, "k\n", 2), 0);
    assert_int_equal(msgpack_pack_int(&pk, 3), 0);
    assert_int_equal(msgpack_pack_double(&pk, 2.5), 0);
    assert_int_equal(msgpack_pack_int(&pk, 4), 0);
    check_packed(&sb, 0,
                 "{\"1\":\"a\",\"null\":true,\"[-3,\\\"q\\\\\\\"\\\"]\":0,\"\\\"b\\\"\":2,\"k\\n\":3,\"2.5\":4}");
    msgpack_sbuffer_destroy(&sb);
}

static void test_pretty(void **state) {
    const char *in = "{\"a\":[1,2],\"b\":{},\"c\":[],\"d\":{\"e\":null}}";
    check_rt_indent(in, strlen(in), 2,
                    "{\n  \"a\": [\n    1,\n    2\n  ],\n  \"b\": {},\n  \"c\": [],\n"
                    "  \"d\": {\n    \"e\": null\n  }\n}");
    check_rt_indent(in, strlen(in), 4,
                    "{\n    \"a\": [\n        1,\n        2\n    ],\n    \"b\": {},\n    \"c\": [],\n"
                    "    \"d\": {\n        \"e\": null\n    }\n}");
    check_rt_indent(in, strlen(in), -1, in);
    check_rt_indent("5", 1, 2, "5");

    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    assert_int_equal(msgpack_pack_ext_with_body(&pk, "\x01", 1, 7), 0);
    check_packed(&sb, 2, "{\n  \"ext\": 7,\n  \"base64\": \"AQ==\"\n}");
    msgpack_sbuffer_destroy(&sb);
}

static void test_depth(void **state) {
    char buf[200];
    /* 32 levels: the most msgpack-c's own unpacker takes back */
    memset(buf, '[', 32);
    memset(buf + 32, ']', 32);
    buf[64] = '\0';
    check_rt(buf, buf);
    /* 33 levels: too large, reported at the 33rd bracket */
    memset(buf, '[', 33);
    memset(buf + 33, ']', 33);
    buf[66] = '\0';
    check_err(buf, FARM_ETOOLARGE, "invalid JSON at line 1 column 33: nesting deeper than 32 levels");
    /* mixed objects and arrays count alike */
    size_t n = 0;
    for (int i = 0; i < 65; i++) {
        memcpy(buf + n, i % 2 ? "[" : "{\"a\":", i % 2 ? 1 : 5);
        n += i % 2 ? 1 : 5;
    }
    buf[n] = '\0';
    check_err(buf, FARM_ETOOLARGE, "invalid JSON at line 1 column 97: nesting deeper than 32 levels");
}

static void test_reject(void **state) {
    check_err("[1,2] x", FARM_EBADREQ, "invalid JSON at line 1 column 7: unexpected data after the value");
    check_err("1 2", FARM_EBADREQ, "invalid JSON at line 1 column 3: unexpected data after the value");
    check_err("{}}", FARM_EBADREQ, "invalid JSON at line 1 column 3: unexpected data after the value");
    check_err("\"abc", FARM_EBADREQ, "invalid JSON at line 1 column 1: unterminated string");
    check_err("[\"ab\\", FARM_EBADREQ, "invalid JSON at line 1 column 2: unterminated string");
    check_err("{\"a\":\n  \"b\\q\"}", FARM_EBADREQ, "invalid JSON at line 2 column 5: invalid escape '\\q'");
    check_err("\"\\x41\"", FARM_EBADREQ, "invalid JSON at line 1 column 2: invalid escape '\\x'");
    check_err("\"\\u12G4\"", FARM_EBADREQ, "invalid JSON at line 1 column 2: invalid \\u escape");
    check_err("\"\\u12", FARM_EBADREQ, "invalid JSON at line 1 column 2: invalid \\u escape");
    check_err("\"\\ud800\"", FARM_EBADREQ, "invalid JSON at line 1 column 2: lone surrogate \\uD800");
    check_err("\"x\\udc00\"", FARM_EBADREQ, "invalid JSON at line 1 column 3: lone surrogate \\uDC00");
    check_err("\"\\ud800\\u0041\"", FARM_EBADREQ, "invalid JSON at line 1 column 2: lone surrogate \\uD800");
    check_err("\"\\ud800\\ud800\"", FARM_EBADREQ, "invalid JSON at line 1 column 2: lone surrogate \\uD800");
    check_err("\"\\ud800", FARM_EBADREQ, "invalid JSON at line 1 column 2: lone surrogate \\uD800");
    check_err("", FARM_EBADREQ, "invalid JSON at line 1 column 1: empty input");
    check_err(" \n\t", FARM_EBADREQ, "invalid JSON at line 2 column 2: empty input");
    check_err_n(NULL, 0, FARM_EBADREQ, "invalid JSON at line 1 column 1: empty input");
    check_err("01", FARM_EBADREQ, "invalid JSON at line 1 column 1: invalid number: leading zero");
    check_err("[-007]", FARM_EBADREQ, "invalid JSON at line 1 column 2: invalid number: leading zero");
    check_err("-", FARM_EBADREQ, "invalid JSON at line 1 column 2: invalid number: expected a digit");
    check_err("-x", FARM_EBADREQ, "invalid JSON at line 1 column 2: invalid number: expected a digit");
    check_err("1.", FARM_EBADREQ, "invalid JSON at line 1 column 3: invalid number: expected a digit after '.'");
    check_err(".5", FARM_EBADREQ, "invalid JSON at line 1 column 1: unexpected character '.'");
    check_err("+1", FARM_EBADREQ, "invalid JSON at line 1 column 1: unexpected character '+'");
    check_err("1e+", FARM_EBADREQ,
              "invalid JSON at line 1 column 4: invalid number: expected a digit in the exponent");
    check_err("\"a\tb\"", FARM_EBADREQ,
              "invalid JSON at line 1 column 3: unescaped control character 0x09 in string");
    check_err("\"a\nb\"", FARM_EBADREQ,
              "invalid JSON at line 1 column 3: unescaped control character 0x0a in string");
    check_err_n("\"a\0\"", 4, FARM_EBADREQ,
                "invalid JSON at line 1 column 3: unescaped control character 0x00 in string");
    check_err("\"\xff\"", FARM_EBADREQ, "invalid JSON at line 1 column 2: invalid UTF-8 in string");
    check_err("\"\xed\xa0\x80\"", FARM_EBADREQ, "invalid JSON at line 1 column 2: invalid UTF-8 in string");
    check_err("\"\xc3\"", FARM_EBADREQ, "invalid JSON at line 1 column 2: invalid UTF-8 in string");
    check_err("{\"a\" 1}", FARM_EBADREQ, "invalid JSON at line 1 column 6: expected ':'");
    check_err("{\"a\"", FARM_EBADREQ, "invalid JSON at line 1 column 5: expected ':'");
    check_err("{\"a\":1,}", FARM_EBADREQ, "invalid JSON at line 1 column 8: expected a string key");
    check_err("{a:1}", FARM_EBADREQ, "invalid JSON at line 1 column 2: expected a string key");
    check_err("{\"a\":1 \"b\":2}", FARM_EBADREQ, "invalid JSON at line 1 column 8: expected ',' or '}'");
    check_err("[1,]", FARM_EBADREQ, "invalid JSON at line 1 column 4: unexpected character ']'");
    check_err("[1 2]", FARM_EBADREQ, "invalid JSON at line 1 column 4: expected ',' or ']'");
    check_err("[1,", FARM_EBADREQ, "invalid JSON at line 1 column 4: unexpected end of input");
    check_err("[", FARM_EBADREQ, "invalid JSON at line 1 column 2: unexpected end of input");
    check_err("tru", FARM_EBADREQ, "invalid JSON at line 1 column 1: invalid literal");
    check_err("[nul]", FARM_EBADREQ, "invalid JSON at line 1 column 2: invalid literal");
    check_err("True", FARM_EBADREQ, "invalid JSON at line 1 column 1: unexpected character 'T'");
    check_err("\x01", FARM_EBADREQ, "invalid JSON at line 1 column 1: unexpected byte 0x01");
    check_err("\xef\xbb\xbf{}", FARM_EBADREQ, "invalid JSON at line 1 column 1: unexpected byte 0xef");
    check_err("[NaN]", FARM_EBADREQ, "invalid JSON at line 1 column 2: unexpected character 'N'");
    /* columns count characters, not bytes */
    check_err("[\"\xc3\xa9\xe2\x82\xac\", x]", FARM_EBADREQ,
              "invalid JSON at line 1 column 8: unexpected character 'x'");
    check_err("{\n\"a\": 1,\n\"b\" 2\n}", FARM_EBADREQ, "invalid JSON at line 3 column 5: expected ':'");
}

static void test_err_buffer(void **state) {
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    char err[8];
    memset(err, 'x', sizeof err);
    assert_int_equal(farm_json_to_msgpack("[", 1, &pk, err, sizeof err), FARM_EBADREQ);
    assert_string_equal(err, "invalid");
    assert_int_equal(farm_json_to_msgpack("[", 1, &pk, NULL, 0), FARM_EBADREQ);
    assert_int_equal(farm_json_to_msgpack("[]", 2, &pk, NULL, 0), 0);
    assert_int_equal(sb.size, 1);
    msgpack_sbuffer_destroy(&sb);
}

static int failing_write(void *data, const char *buf, size_t len) {
    return -1;
}

static void test_packer_failure(void **state) {
    msgpack_packer pk;
    msgpack_packer_init(&pk, NULL, failing_write);
    char err[128];
    assert_int_equal(farm_json_to_msgpack("{\"a\":1}", 7, &pk, err, sizeof err), FARM_EINTERNAL);
    assert_string_equal(err, "could not write MessagePack output");
}

static void test_write_failure(void **state) {
    FILE *f = fopen("/dev/full", "w");
    if (f == NULL)
        skip();
    assert_int_equal(setvbuf(f, NULL, _IONBF, 0), 0);
    msgpack_object o = {.type = MSGPACK_OBJECT_POSITIVE_INTEGER, .via.u64 = 1};
    assert_int_equal(farm_json_write(f, &o, 0), -ENOSPC);
    o.type = MSGPACK_OBJECT_NIL;
    assert_true(farm_json_write(f, &o, 0) < 0);
    assert_int_equal(fclose(f), 0);
}

static void test_locale(void **state) {
    static const char *const names[] = {"de_DE.UTF-8", "de_DE.utf8", "fr_FR.UTF-8", "fr_FR.utf8", "ru_RU.UTF-8"};
    const char *got = NULL;
    for (size_t i = 0; i < sizeof names / sizeof names[0] && got == NULL; i++)
        got = setlocale(LC_NUMERIC, names[i]);
    if (got == NULL)
        skip(); /* no locale with a ',' decimal point installed */
    check_rt("[1.5,-2.25e-3,0.1]", "[1.5,-0.00225,0.1]");
    assert_non_null(setlocale(LC_NUMERIC, "C"));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_nested),
        cmocka_unit_test(test_scalars),
        cmocka_unit_test(test_int_limits),
        cmocka_unit_test(test_floats),
        cmocka_unit_test(test_unicode),
        cmocka_unit_test(test_not_terminated),
        cmocka_unit_test(test_str_invalid_utf8),
        cmocka_unit_test(test_bin),
        cmocka_unit_test(test_ext),
        cmocka_unit_test(test_map_keys),
        cmocka_unit_test(test_pretty),
        cmocka_unit_test(test_depth),
        cmocka_unit_test(test_reject),
        cmocka_unit_test(test_err_buffer),
        cmocka_unit_test(test_packer_failure),
        cmocka_unit_test(test_write_failure),
        cmocka_unit_test(test_locale),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
