/* gen_corpus: writes the seed corpora of the fuzz targets.
 *
 *     gen_corpus DIR     -> DIR/decode, DIR/front, DIR/json, DIR/sink
 *
 * Every seed is built here from the farm's own packers and JSON reader, so
 * the seeds follow the protocol as declared in farm_proto.h: valid messages
 * of every kind, and a few dozen invalid ones (truncated, wrong types, over
 * limits, nested too deep, containers that claim more than they hold).
 * The output is committed under tests/fuzz/corpus; run this again after a
 * protocol change (crash inputs found by the fuzzers are added by hand, as
 * crash-<target>-<what>). Files are named seed-<n>-<what>.
 */
#include "farm_json.h"
#include "farm_msg.h"
#include "farm_proto.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static const char *s_root;
static int s_n;

static void s_write(const char *target, const char *what, const void *data, size_t len) {
    char path[512];
    snprintf(path, sizeof path, "%s/%s", s_root, target);
    if (mkdir(path, 0755) != 0 && errno != EEXIST) {
        perror(path);
        exit(1);
    }
    snprintf(path, sizeof path, "%s/%s/seed-%03d-%s", s_root, target, s_n++, what);
    FILE *f = fopen(path, "wb");
    if (!f || (len && fwrite(data, 1, len, f) != len) || fclose(f) != 0) {
        perror(path);
        exit(1);
    }
}

/* JSON text -> MessagePack, written to each target of the comma list. */
static void s_json(const char *targets, const char *what, const char *json) {
    msgpack_sbuffer b;
    msgpack_sbuffer_init(&b);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &b, msgpack_sbuffer_write);
    char err[200];
    if (farm_json_to_msgpack(json, strlen(json), &pk, err, sizeof err) != 0) {
        fprintf(stderr, "gen_corpus: %s: %s\n", what, err);
        exit(1);
    }
    char t[64];
    snprintf(t, sizeof t, "%s", targets);
    for (char *p = strtok(t, ","); p; p = strtok(NULL, ","))
        s_write(p, what, b.data, b.size);
    msgpack_sbuffer_destroy(&b);
}

static void s_raw(const char *targets, const char *what, const void *data, size_t len) {
    char t[64];
    snprintf(t, sizeof t, "%s", targets);
    for (char *p = strtok(t, ","); p; p = strtok(NULL, ","))
        s_write(p, what, data, len);
}

/* A string literal's bytes, without its NUL. */
#define S_RAW(targets, what, lit) s_raw(targets, what, lit, sizeof(lit) - 1)

typedef struct {
    msgpack_sbuffer b;
    msgpack_packer pk;
} s_pk_t;

static void s_pk_init(s_pk_t *p) {
    msgpack_sbuffer_init(&p->b);
    msgpack_packer_init(&p->pk, &p->b, msgpack_sbuffer_write);
}

static void s_pk_out(s_pk_t *p, const char *targets, const char *what) {
    s_raw(targets, what, p->b.data, p->b.size);
    p->b.size = 0;
}

static void s_front(void) {
    const char *F = "front,decode";
    s_json(F, "submit", "{\"op\":\"submit\",\"tasks\":[{\"type\":\"noop\"}]}");
    s_json(F, "submit-full", "{\"op\":\"submit\",\"v\":1,\"name\":\"nightly\",\"key\":\"k-1\",\"priority\":5,"
                             "\"max_attempts\":2,\"timeout_ms\":1000,\"tasks\":[{\"type\":\"noop\"},{\"type\":\"sleep\","
                             "\"args\":{\"ms\":5},\"priority\":-100,\"max_attempts\":100,\"timeout_ms\":0,\"delay_ms\":10}]}");
    s_json(F, "submit-exec", "{\"op\":\"submit\",\"tasks\":[{\"type\":\"exec\",\"args\":{\"argv\":[\"sh\",\"-c\",\"echo $A\"],"
                             "\"env\":{\"A\":\"b\"},\"cwd\":\"/tmp\",\"stdin\":\"in\"}}]}");
    s_json(F, "submit-ingest", "{\"op\":\"submit\",\"tasks\":[{\"type\":\"ingest\",\"args\":{\"schema\":\"student\","
                               "\"records\":[{\"id\":1,\"name\":\"a\",\"email\":\"a@b.c\",\"grade\":3}]}}]}");
    s_json(F, "submit-ingest-bad", "{\"op\":\"submit\",\"tasks\":[{\"type\":\"ingest\",\"args\":{\"records\":7}}]}");
    s_json(F, "submit-dup-key", "{\"op\":\"submit\",\"key\":\"k-1\",\"tasks\":[{\"type\":\"noop\"}]}");
    s_json(F, "submit-nil-fields", "{\"op\":\"submit\",\"name\":null,\"key\":null,\"tasks\":[{\"type\":\"noop\",\"args\":null}]}");
    s_json(F, "submit-bad-type", "{\"op\":\"submit\",\"tasks\":[{\"type\":\"No Op\"}]}");
    s_json(F, "submit-empty", "{\"op\":\"submit\",\"tasks\":[]}");
    s_json(F, "submit-prio-range", "{\"op\":\"submit\",\"tasks\":[{\"type\":\"noop\",\"priority\":101}]}");
    s_json(F, "submit-twice-key", "{\"op\":\"submit\",\"tasks\":[{\"type\":\"noop\"}],\"tasks\":[]}");
    char big[4096] = "{\"op\":\"submit\",\"tasks\":[";
    for (int i = 0; i < 70; i++)
        strcat(big, i ? ",{\"type\":\"noop\"}" : "{\"type\":\"noop\"}");
    strcat(big, "]}");
    s_json(F, "submit-batch", big);
    char name[600] = "{\"op\":\"submit\",\"name\":\"";
    for (int i = 0; i < 250; i++)
        strcat(name, "n");
    strcat(name, "\",\"tasks\":[{\"type\":\"noop\"}]}");
    s_json(F, "submit-long-name", name);
    s_json(F, "status-task", "{\"op\":\"status\",\"task\":1}");
    s_json(F, "status-job", "{\"op\":\"status\",\"job\":1}");
    s_json(F, "status-both", "{\"op\":\"status\",\"task\":1,\"job\":1}");
    s_json(F, "status-zero", "{\"op\":\"status\",\"task\":0}");
    s_json(F, "status-str", "{\"op\":\"status\",\"task\":\"1\"}");
    s_json(F, "result", "{\"op\":\"result\",\"task\":2}");
    s_json(F, "list", "{\"op\":\"list\",\"job\":1,\"state\":\"pending\",\"type\":\"noop\",\"after\":0,\"limit\":10}");
    s_json(F, "list-bad-state", "{\"op\":\"list\",\"state\":\"sleeping\",\"limit\":1001}");
    s_json(F, "jobs", "{\"op\":\"jobs\",\"state\":\"running\",\"after\":0,\"limit\":5}");
    s_json(F, "jobs-retrying", "{\"op\":\"jobs\",\"state\":\"retrying\"}");
    s_json(F, "cancel-task", "{\"op\":\"cancel\",\"task\":1}");
    s_json(F, "cancel-job", "{\"op\":\"cancel\",\"job\":1}");
    s_json(F, "retry-job", "{\"op\":\"retry\",\"job\":1}");
    s_json(F, "retry-task", "{\"op\":\"retry\",\"task\":2}");
    s_json(F, "delete", "{\"op\":\"delete\",\"job\":1}");
    s_json(F, "stats", "{\"op\":\"stats\"}");
    s_json(F, "workers", "{\"op\":\"workers\"}");
    s_json(F, "health", "{\"op\":\"health\",\"v\":1}");
    s_json(F, "version-2", "{\"op\":\"health\",\"v\":2}");
    s_json(F, "unknown-op", "{\"op\":\"frobnicate\"}");
    s_json(F, "no-op", "{\"v\":1}");
    s_json(F, "array", "[1,2,3]");
    s_json(F, "int-key", "{\"op\":\"health\",\"1\":2}");
    static const unsigned char intkey[] = {0x82, 0xa2, 'o', 'p', 0xa6, 'h', 'e', 'a', 'l', 't', 'h', 0x01, 0x02};
    s_raw(F, "map-int-key", intkey, sizeof intkey);
    S_RAW(F, "empty", "");
    S_RAW(F, "never-used-byte", "\xc1");
    S_RAW(F, "map32-huge", "\xdf\xff\xff\xff\xff");
    S_RAW(F, "array32-huge", "\xdd\x7f\xff\xff\xff\x00");
    S_RAW(F, "str32-huge", "\xdb\xff\xff\xff\xff" "abc");
    S_RAW(F, "truncated-map", "\x81\xa2op\xa6subm");
    S_RAW(F, "trailing", "\x80\x80");
    S_RAW(F, "ext", "\x81\xa2op\xd4\x01\x02");
    char deep[80];
    memset(deep, 0x91, 40);
    deep[40] = 0x01;
    s_raw(F, "deep", deep, 41);
    S_RAW(F, "float-task", "\x82\xa2op\xa6status\xa4task\xcb\x3f\xf0\x00\x00\x00\x00\x00\x00");
    S_RAW(F, "uint64-max", "\x82\xa2op\xa6status\xa4task\xcf\xff\xff\xff\xff\xff\xff\xff\xff");
}

static void s_internal(void) {
    s_pk_t p;
    s_pk_init(&p);
    const char *types[] = {"noop", "sleep", "exec"};
    int64_t held[] = {1, 2, 3};
    farm_msg_hb_t hb = {.m = {"hb", 2}, .id = {"fake-1", 6}, .host = {"h", 1}, .pid = 42, .slots = 4, .free = 4,
                        .epoch = 1, .seq = 0, .state = {"alive", 5}, .completed = 3, .failed = 1};
    farm_pack_hb(&p.pk, &hb, types, 3, held, 3);
    s_pk_out(&p, "decode", "hb");
    hb.state = (farm_str_t){"draining", 8};
    farm_pack_hb(&p.pk, &hb, types, 1, NULL, 0);
    s_pk_out(&p, "decode", "hb-draining");
    farm_pack_ready(&p.pk, 2, 1, 5, 1, 1, 3);
    s_pk_out(&p, "decode", "ready");
    farm_pack_give(&p.pk, held, 2, 1, 6, 2, 2, 0);
    s_pk_out(&p, "decode", "give");
    farm_pack_revoke(&p.pk, 2);
    s_pk_out(&p, "decode", "revoke");
    farm_pack_welcome(&p.pk, 1234);
    s_pk_out(&p, "decode", "welcome");
    farm_msg_task_t t = {.m = {"task", 4}, .epoch = 1, .seq = 1, .id = 7, .job = 1, .type = {"exec", 4}, .attempt = 1,
                         .timeout_ms = 100};
    static const char args[] = "\x81\xa4" "argv\x91\xa4true";
    farm_pack_task(&p.pk, &t, args, sizeof args - 1);
    s_pk_out(&p, "decode", "task");
    farm_pack_cancel(&p.pk, 7);
    s_pk_out(&p, "decode", "cancel");
    const char *R = "decode,sink";
    farm_pack_start(&p.pk, 1, 1, "fake-1", 1000);
    s_pk_out(&p, R, "start");
    farm_pack_prog(&p.pk, 1, 1, 50, "half way", 1001);
    s_pk_out(&p, R, "prog");
    farm_pack_prog(&p.pk, 2, 1, 101, NULL, 1001);
    s_pk_out(&p, R, "prog-over");
    static const char result[] = "\x81\xa1x\x01";
    farm_pack_result(&p.pk, 1, 1, "fake-1", true, false, result, sizeof result - 1, NULL, 1000, 1002);
    s_pk_out(&p, R, "result-ok");
    farm_pack_result(&p.pk, 2, 1, "fake-1", false, false, NULL, 0, "exit code 1", 1000, 1002);
    s_pk_out(&p, R, "result-failed");
    farm_pack_result(&p.pk, 3, 1, "fake-1", false, true, NULL, 0, "stopped", 1000, 1002);
    s_pk_out(&p, R, "result-cancelled");
    farm_pack_result(&p.pk, 5, 1, "fake-1", true, false, NULL, 0, NULL, 1000, 1002);
    s_pk_out(&p, R, "result-other-worker");
    farm_pack_result(&p.pk, 7, 1, "w1", true, false, NULL, 0, NULL, 1000, 1002);
    s_pk_out(&p, R, "result-pending-task");
    farm_pack_result(&p.pk, 99, 1, "w1", true, false, NULL, 0, NULL, 1000, 1002);
    s_pk_out(&p, R, "result-no-task");
    static const char records[] = "\x92\x92\x00\xc4\x02\x81\x00\x92\x01\xa1x";
    farm_pack_result_records(&p.pk, 4, 1, "fake-1", true, false, NULL, 0, NULL, 1, 2, records, sizeof records - 1);
    s_pk_out(&p, R, "result-records");
    static const char bad_records[] = "\x91\x92\xff\xc4\x00";
    farm_pack_result_records(&p.pk, 4, 1, "fake-1", true, false, NULL, 0, NULL, 1, 2, bad_records,
                             sizeof bad_records - 1);
    s_pk_out(&p, R, "result-bad-records");
    static const char ev[] = "\x81\xa6" "events\x91\x82\xa2id\x01\xa3job\x01";
    farm_pack_pub(&p.pk, "task", ev, sizeof ev - 1);
    s_pk_out(&p, R, "pub-task");
    static const char body[] = "\x81\xa2id\x01";
    farm_pack_pub(&p.pk, "job", body, sizeof body - 1);
    s_pk_out(&p, R, "pub-job");
    farm_pack_pub(&p.pk, "ack/w1", body, sizeof body - 1);
    s_pk_out(&p, R, "pub-ack");
    s_json(R, "report-no-m", "{\"task\":1,\"attempt\":1}");
    s_json(R, "report-unknown-m", "{\"m\":\"boom\",\"task\":1}");
    s_json(R, "acks", "{\"acks\":[[1,1],[2,1]]}");
    s_json("decode", "acks-bad", "{\"acks\":[[1],[\"x\",1]]}");
    msgpack_sbuffer_destroy(&p.b);
}

static void s_jsons(void) {
    static const char *const texts[][2] = {
        {"object", "{\"op\":\"submit\",\"tasks\":[{\"type\":\"noop\",\"args\":{\"a\":[1,2.5,-3,true,false,null]}}]}"},
        {"unicode", "\"caf\\u00e9 \\ud83d\\ude00 \xe2\x82\xac\""},
        {"escapes", "\"\\b\\f\\n\\r\\t\\\"\\\\\\/\\u0000\""},
        {"numbers", "[0,-0,1e3,1.5E-3,-1.25e+2,9223372036854775807,18446744073709551615,18446744073709551616,1e999]"},
        {"nested", "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]"},
        {"too-deep", "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]"},
        {"whitespace", " \t\r\n{ \"a\" : [ ] , \"b\" : { } } \n"},
        {"dup-keys", "{\"a\":1,\"a\":2}"},
        {"trailing-comma", "[1,2,]"},
        {"lone-surrogate", "\"\\ud800\""},
        {"bad-escape", "\"\\x41\""},
        {"control", "\"a\tb\""},
        {"bad-utf8", "\"\xc3\x28\""},
        {"leading-zero", "012"},
        {"garbage-after", "{} x"},
        {"empty", ""},
        {"bare-minus", "-"},
        {"unclosed", "{\"a\":[1,2"},
        {"literals", "[true,false,null]"},
        {"bad-literal", "tru"},
    };
    for (size_t i = 0; i < sizeof texts / sizeof texts[0]; i++)
        s_raw("json", texts[i][0], texts[i][1], strlen(texts[i][1]));
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: gen_corpus DIR\n");
        return 2;
    }
    s_root = argv[1];
    if (mkdir(s_root, 0755) != 0 && errno != EEXIST) {
        perror(s_root);
        return 1;
    }
    farm_limits_t l;
    farm_limits_default(&l);
    farm_proto_set_limits(&l);
    s_front();
    s_internal();
    s_jsons();
    return 0;
}
