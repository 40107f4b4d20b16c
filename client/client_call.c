/* client_call: one request, one reply, and what the user is told.
 *
 * The connection is opened at the first request, after every flag has been
 * read, so a usage error never touches the network. The reply lives in
 * one zone that is cleared before each request: a command uses a reply
 * until its next request and copies (into table cells) what it keeps.
 * Every failure becomes exactly one line on stderr and exit code 3; an
 * error reply is also printed as JSON with --json, so a script gets the
 * structured error on stdout.
 */
#include "client.h"
#include "farm_err.h"
#include "farm_json.h"

#include <errno.h>
#include <string.h>
#include <time.h>

static int s_write(void *data, const char *buf, size_t len) {
    cli_req_t *q = data;
    if (q->oom || msgpack_sbuffer_write(&q->sb, buf, len) != 0) {
        q->oom = true;
        return -1;
    }
    return 0;
}

void cli_req_init(cli_req_t *q, size_t n, const char *op) {
    msgpack_sbuffer_init(&q->sb);
    msgpack_packer_init(&q->pk, q, s_write);
    q->oom = false;
    msgpack_pack_map(&q->pk, n);
    farm_pack_kv_str(&q->pk, "op", op);
    farm_pack_kv_int(&q->pk, "v", 1);
}

void cli_req_free(cli_req_t *q) { msgpack_sbuffer_destroy(&q->sb); }

int cli_send(cli_t *cli, const cli_req_t *q, const msgpack_object **reply, farm_error_t *e) {
    static const msgpack_object nil = {.type = MSGPACK_OBJECT_NIL};
    static msgpack_object r;
    *reply = &nil;
    if (q->oom)
        return farm_error_set(e, -ENOMEM, NULL, "building the request: %s", strerror(ENOMEM));
    if (!cli->client) {
        cli->client = farm_client_new(cli->server, (int)cli->timeout_ms, (int)cli->retries);
        if (!cli->client) {
            int err = errno ? errno : EINVAL;
            cli->bad_server = true;
            return farm_error_set(e, -err, NULL, "--server %s: %s", cli->server, strerror(err));
        }
    }
    msgpack_zone_clear(&cli->zone);
    int rc = farm_client_callv(cli->client, &q->sb, &cli->zone, &r, e);
    *reply = &r;
    return rc;
}

int cli_malformed(const char *why) {
    fprintf(stderr, "farm: malformed reply%s%s\n", why && *why ? ": " : "", why ? why : "");
    return CLI_FARM;
}

int cli_report(cli_t *cli, int rc, const farm_error_t *e, const msgpack_object *reply) {
    if (rc == 0)
        return CLI_OK;
    if (cli->bad_server)
        return cli_usage(cli, "%s", e->message);
    const msgpack_object *ok = farm_msg_get(reply, "ok");
    if (rc == FARM_EPROTO || !ok || ok->type != MSGPACK_OBJECT_BOOLEAN || ok->via.boolean) {
        /* no error reply: a timeout, garbage, or a local failure */
        fprintf(stderr, "farm: %s\n", e->message);
        return CLI_FARM;
    }
    if (cli->json)
        (void)cli_print_json(reply);
    /* The wire name as sent, so a code newer than this client still shows. */
    const msgpack_object *err = farm_msg_get(reply, "error");
    const msgpack_object *code = farm_msg_get(err, "code");
    char name[64], msg[300], field[160];
    if (code && code->type == MSGPACK_OBJECT_STR)
        cli_fmt_text(name, sizeof name, (farm_str_t){code->via.str.ptr, code->via.str.size}, 40);
    else
        snprintf(name, sizeof name, "%s", farm_err_name(rc));
    cli_fmt_text(msg, sizeof msg, (farm_str_t){e->message, (uint32_t)strlen(e->message)}, 0);
    if (e->field[0]) {
        cli_fmt_text(field, sizeof field, (farm_str_t){e->field, (uint32_t)strlen(e->field)}, 0);
        fprintf(stderr, "farm: error %s: %s (field %s)\n", name, msg, field);
    } else {
        fprintf(stderr, "farm: error %s: %s\n", name, msg);
    }
    return CLI_FARM;
}

int cli_call(cli_t *cli, const cli_req_t *q, const msgpack_object **reply) {
    farm_error_t e;
    int rc = cli_send(cli, q, reply, &e);
    return rc ? cli_report(cli, rc, &e, *reply) : CLI_OK;
}

int cli_print_json(const msgpack_object *o) {
    int rc = farm_json_write(stdout, o, 0);
    if (rc == 0 && (putchar('\n') == EOF || fflush(stdout) != 0))
        rc = -errno;
    if (rc) {
        fprintf(stderr, "farm: writing to stdout: %s\n", strerror(-rc));
        return CLI_FARM;
    }
    return CLI_OK;
}

void cli_sleep_ms(int64_t ms) {
    if (ms <= 0)
        return;
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

void cli_close(cli_t *cli) {
    farm_client_destroy(&cli->client);
    msgpack_zone_destroy(&cli->zone);
}
