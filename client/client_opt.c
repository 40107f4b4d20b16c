/* client_opt: the flags of every command, from one table each.
 *
 * A command declares its flags as a cli_opt_t table; one parser reads
 * them, the global flags (accepted after the command too, so
 * `farm status 5 --json` works) and --help, whose text comes from the same
 * table, so a flag cannot exist without being documented. Only long
 * options exist: a task's own argv goes after "--", and short flags would
 * invite confusion with it. Values are checked here (integer, range,
 * endpoint), so a command only sees valid input; every rejection is a
 * usage error (exit 2) naming the flag and pointing to --help.
 */
#include "client.h"
#include "farm_err.h"

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

int cli_usage(const cli_t *cli, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "farm%s%s: ", cli->cmd ? " " : "", cli->cmd ? cli->cmd : "");
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\nTry 'farm%s%s --help'.\n", cli->cmd ? " " : "", cli->cmd ? cli->cmd : "");
    return CLI_USAGE;
}

static int s_int(const cli_t *cli, const char *flag, const char *s, int64_t min, int64_t max, int64_t *out) {
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (!*s || *end || errno == ERANGE || v < min || v > max) {
        if (max == INT64_MAX)
            return cli_usage(cli, "%s: expected an integer of at least %" PRId64 ", got '%s'", flag, min, s);
        return cli_usage(cli, "%s: expected an integer in %" PRId64 "..%" PRId64 ", got '%s'", flag, min, max, s);
    }
    *out = v;
    return 0;
}

int cli_parse_id(const cli_t *cli, const char *what, const char *s, int64_t *out) {
    return s_int(cli, what, s, 1, INT64_MAX, out);
}

/* The value of the option at argv[*i]: after '=' or the next argument. */
static int s_value(const cli_t *cli, int argc, char **argv, int *i, const char *eq, const char **val) {
    if (eq) {
        *val = eq + 1;
        return 0;
    }
    if (*i + 1 >= argc)
        return cli_usage(cli, "%s needs a value", argv[*i]);
    *val = argv[++*i];
    return 0;
}

/* Does argument a ("--name" or "--name=v") name option `name`? */
static bool s_is(const char *a, const char *name, const char **eq) {
    size_t n = strlen(name);
    if (strncmp(a + 2, name, n) != 0 || (a[2 + n] != '\0' && a[2 + n] != '='))
        return false;
    *eq = a[2 + n] == '=' ? a + 2 + n : NULL;
    return true;
}

int cli_parse_global(cli_t *cli, int argc, char **argv, int *i) {
    const char *a = argv[*i], *eq = NULL, *val = NULL;
    if (a[0] != '-' || a[1] != '-')
        return 0;
    if (s_is(a, "json", &eq)) {
        if (eq)
            return cli_usage(cli, "--json takes no value");
        cli->json = true;
        return 1;
    }
    if (s_is(a, "server", &eq)) {
        if (s_value(cli, argc, argv, i, eq, &val))
            return CLI_USAGE;
        if (farm_endpoint_set(cli->server, val) != 0)
            return cli_usage(cli, "--server: '%s' is not an endpoint (tcp://HOST:PORT, HOST:PORT or ipc://PATH)", val);
        return 1;
    }
    if (s_is(a, "feed", &eq)) {
        if (s_value(cli, argc, argv, i, eq, &val))
            return CLI_USAGE;
        if (strcmp(val, "none") == 0)
            snprintf(cli->feed, sizeof cli->feed, "none");
        else if (farm_endpoint_set(cli->feed, val) != 0)
            return cli_usage(cli, "--feed: '%s' is not an endpoint (tcp://HOST:PORT, HOST:PORT, ipc://PATH or none)", val);
        return 1;
    }
    if (s_is(a, "curve-server", &eq) || s_is(a, "curve-cert", &eq)) {
        bool server = strncmp(a, "--curve-server", 14) == 0;
        if (s_value(cli, argc, argv, i, eq, &val))
            return CLI_USAGE;
        *(server ? &cli->curve_server : &cli->curve_cert) = val;
        return 1;
    }
    if (s_is(a, "timeout", &eq)) {
        if (s_value(cli, argc, argv, i, eq, &val) || s_int(cli, "--timeout", val, 1, INT_MAX, &cli->timeout_ms))
            return CLI_USAGE;
        return 1;
    }
    if (s_is(a, "retries", &eq)) {
        if (s_value(cli, argc, argv, i, eq, &val) || s_int(cli, "--retries", val, 0, 100, &cli->retries))
            return CLI_USAGE;
        return 1;
    }
    return 0;
}

static void s_help_line(FILE *out, const char *name, const char *metavar, const char *help) {
    char left[64];
    snprintf(left, sizeof left, "--%s%s%s", name, metavar ? " " : "", metavar ? metavar : "");
    fprintf(out, "  %-22s %s\n", left, help);
}

void cli_help_globals(FILE *out) {
    fprintf(out, "\nglobal options (before or after the command):\n");
    s_help_line(out, "server", "EP", "front door: tcp://HOST:PORT or HOST:PORT (env FARM_SERVER,");
    fprintf(out, "  %-22s %s\n", "", "default " CLI_DEFAULT_SERVER ")");
    s_help_line(out, "feed", "EP", "status feed, for wait and map (env FARM_FEED; default: the");
    fprintf(out, "  %-22s %s\n", "", "server's host, port 5559; none: poll only)");
    s_help_line(out, "curve-server", "KEY", "CURVE: the head's public key, Z85 text or its .cert");
    fprintf(out, "  %-22s %s\n", "", "file (env FARM_CURVE_SERVER)");
    s_help_line(out, "curve-cert", "FILE", "CURVE: this client's certificate (FILE_secret beside it),");
    fprintf(out, "  %-22s %s\n", "", "authorised in the head's DIR/clients/ (env FARM_CURVE_CERT)");
    s_help_line(out, "timeout", "MS", "wait this long for each reply (default 5000)");
    s_help_line(out, "retries", "N", "resend a request unanswered in time N times (default 2)");
    s_help_line(out, "json", NULL, "print the server's replies as JSON, one per line, nothing else");
    s_help_line(out, "help", NULL, "show help");
}

static void s_help(const cli_t *cli, const cli_help_t *h, const cli_opt_t *opts, size_t n) {
    printf("usage: farm %s %s\n%s\n", cli->cmd, h->usage, h->summary);
    if (h->details)
        printf("\n%s", h->details);
    if (n) {
        printf("\noptions:\n");
        for (size_t i = 0; i < n; i++)
            s_help_line(stdout, opts[i].name, opts[i].metavar, opts[i].help);
    }
    cli_help_globals(stdout);
    if (cli->exit_help)
        printf("\n%s", cli->exit_help);
    else
        printf("\nexit status: 0 ok, 1 the awaited task or job failed or was cancelled, 2 usage error,\n"
               "3 the farm answered with an error or not at all\n");
}

/* Every flag is read: set up CURVE (flags, else the environment) before
 * anything connects. Returns CLI_CONTINUE or CLI_USAGE. */
static int s_curve(cli_t *cli) {
    char why[600];
    if (cli->no_network)
        return CLI_CONTINUE;
    if (farm_curve_client_setup(cli->curve_server, cli->curve_cert, why, sizeof why) != 0)
        return cli_usage(cli, "%s", why);
    return CLI_CONTINUE;
}

int cli_parse(cli_t *cli, const cli_help_t *help, const cli_opt_t *opts, size_t n, int argc, char **argv,
              char **pos, int *npos, char ***rest, int *nrest) {
    *npos = 0;
    if (rest) {
        *rest = NULL;
        *nrest = 0;
    }
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *eq = NULL, *val = NULL;
        if (strcmp(a, "--") == 0) {
            if (rest) {
                *rest = argv + i + 1;
                *nrest = argc - i - 1;
            } else {
                for (int j = i + 1; j < argc; j++)
                    pos[(*npos)++] = argv[j];
            }
            return s_curve(cli);
        }
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            s_help(cli, help, opts, n);
            return CLI_OK;
        }
        if (a[0] != '-' || a[1] == '\0') { /* "-" alone is a positional (stdin) */
            pos[(*npos)++] = argv[i];
            continue;
        }
        if (a[1] != '-')
            return cli_usage(cli, "unknown option '%s' (options are long: --name)", a);
        size_t k;
        for (k = 0; k < n; k++)
            if (s_is(a, opts[k].name, &eq))
                break;
        if (k == n) {
            int g = cli_parse_global(cli, argc, argv, &i);
            if (g == 1)
                continue;
            if (g != 0)
                return g;
            return cli_usage(cli, "unknown option '%s'", a);
        }
        const cli_opt_t *o = &opts[k];
        char flag[80];
        snprintf(flag, sizeof flag, "--%s", o->name);
        switch (o->kind) {
        case CLI_OPT_FLAG:
            if (eq)
                return cli_usage(cli, "%s takes no value", flag);
            *(bool *)o->dst = true;
            break;
        case CLI_OPT_INT: {
            cli_int_t *d = o->dst;
            if (s_value(cli, argc, argv, &i, eq, &val) || s_int(cli, flag, val, o->min, o->max, &d->v))
                return CLI_USAGE;
            d->set = true;
            break;
        }
        case CLI_OPT_STR:
            if (s_value(cli, argc, argv, &i, eq, &val))
                return CLI_USAGE;
            *(const char **)o->dst = val;
            break;
        }
    }
    return s_curve(cli);
}

int cli_task_or_job(const cli_t *cli, char **pos, int npos, const cli_int_t *job, const cli_int_t *task,
                    int64_t *id, bool *is_job) {
    int given = (npos > 0) + (job && job->set) + (task && task->set);
    if (given == 0)
        return cli_usage(cli, "which task? give a task ID or --job ID");
    if (given > 1 || npos > 1)
        return cli_usage(cli, "give one task ID or one --job ID");
    *is_job = job && job->set;
    if (*is_job) {
        *id = job->v;
        return 0;
    }
    if (task && task->set) {
        *id = task->v;
        return 0;
    }
    return cli_parse_id(cli, "task ID", pos[0], id);
}
