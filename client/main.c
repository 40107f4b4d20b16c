/* farm: the command-line client of the task farm.
 *
 * main reads the global flags (FARM_SERVER supplies the default server),
 * picks the command and hands it the rest of argv; each command is a
 * function in client_cmd.c, client_submit.c or client_wait.c that parses
 * its own flags, so `farm CMD --help` is always the command's own help.
 * Nothing touches the network before every flag has been read. At the end
 * stdout is flushed and checked, so a full disk or a closed pipe is an
 * error rather than silently lost output.
 */
#include "client.h"
#include "farm_config.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef struct {
    const char *name;                       /* command word */
    int (*run)(cli_t *cli, int argc, char **argv);
    const char *summary;                    /* for `farm --help` */
} s_cmd_t;

static const s_cmd_t s_cmds[] = {
    {"submit", cli_cmd_submit, "submit a command, a task or a file of tasks as one job"},
    {"status", cli_cmd_status, "show a task (with its attempts) or a job"},
    {"result", cli_cmd_result, "show a task's result (an exec task's stdout and stderr)"},
    {"list", cli_cmd_list, "list tasks"},
    {"jobs", cli_cmd_jobs, "list jobs"},
    {"map", cli_cmd_map, "run a command once per input line, like GNU parallel"},
    {"wait", cli_cmd_wait, "wait until a task or job is final"},
    {"cancel", cli_cmd_cancel, "cancel a task or a job's tasks"},
    {"retry", cli_cmd_retry, "run failed or cancelled tasks again"},
    {"delete", cli_cmd_delete, "delete a finished job"},
    {"stats", cli_cmd_stats, "show counters, throughput and latency"},
    {"workers", cli_cmd_workers, "list workers"},
    {"health", cli_cmd_health, "check that the farm answers"},
    {"keygen", cli_cmd_keygen, "make a CURVE key pair (certificate) for the head, a client or a worker"},
    {"metrics", cli_cmd_metrics, "print the farm's figures in Prometheus text format"},
};
#define S_NCMDS (sizeof s_cmds / sizeof s_cmds[0])

static void s_help(FILE *out) {
    fprintf(out, "usage: farm [--server EP] [--timeout MS] [--json] COMMAND [ARGS...]\n"
                 "The client of a farm: submit work and watch it.\n\ncommands:\n");
    for (size_t i = 0; i < S_NCMDS; i++)
        fprintf(out, "  %-10s %s\n", s_cmds[i].name, s_cmds[i].summary);
    cli_help_globals(out);
    fprintf(out, "\n`farm COMMAND --help` shows a command's options.\n"
                 "exit status: 0 ok, 1 the awaited task or job failed or was cancelled, 2 usage error,\n"
                 "3 the farm answered with an error, did not answer, or answered nonsense;\n"
                 "`farm map` exits as GNU parallel does (see farm map --help)\n");
}

static const s_cmd_t *s_find(const char *name) {
    for (size_t i = 0; i < S_NCMDS; i++)
        if (strcmp(s_cmds[i].name, name) == 0)
            return &s_cmds[i];
    return NULL;
}

static int s_main(cli_t *cli, int argc, char **argv) {
    const char *env = getenv("FARM_SERVER");
    if (env && *env && farm_endpoint_set(cli->server, env) != 0)
        return cli_usage(cli, "FARM_SERVER='%s' is not an endpoint (tcp://HOST:PORT or HOST:PORT)", env);
    env = getenv("FARM_FEED");
    if (env && *env && strcmp(env, "none") == 0)
        snprintf(cli->feed, sizeof cli->feed, "none");
    else if (env && *env && farm_endpoint_set(cli->feed, env) != 0)
        return cli_usage(cli, "FARM_FEED='%s' is not an endpoint (tcp://HOST:PORT, HOST:PORT or none)", env);
    int i = 1;
    for (; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            s_help(stdout);
            return CLI_OK;
        }
        if (strcmp(a, "--version") == 0) {
            printf("farm %s\n", FARM_VERSION);
            return CLI_OK;
        }
        if (a[0] != '-')
            break;
        int g = cli_parse_global(cli, argc, argv, &i);
        if (g == CLI_USAGE)
            return g;
        if (g != 1)
            return cli_usage(cli, "unknown option '%s'", a);
    }
    if (i == argc)
        return cli_usage(cli, "no command given (submit, status, list, wait, ...)");
    const char *name = argv[i];
    if (strcmp(name, "help") == 0) {
        if (i + 1 < argc && s_find(argv[i + 1])) {
            const s_cmd_t *c = s_find(argv[i + 1]);
            char *hargv[] = {argv[i + 1], (char *)"--help", NULL};
            cli->cmd = c->name;
            return c->run(cli, 2, hargv);
        }
        s_help(stdout);
        return CLI_OK;
    }
    const s_cmd_t *c = s_find(name);
    if (!c)
        return cli_usage(cli, "unknown command '%s'", name);
    cli->cmd = c->name;
    return c->run(cli, argc - i, argv + i);
}

int main(int argc, char **argv) {
    cli_t cli = {.timeout_ms = CLI_DEFAULT_TIMEOUT_MS, .retries = CLI_DEFAULT_RETRIES};
    snprintf(cli.server, sizeof cli.server, "%s", CLI_DEFAULT_SERVER);
    cli.tty = isatty(STDOUT_FILENO) == 1;
    if (!msgpack_zone_init(&cli.zone, 8192)) {
        fprintf(stderr, "farm: out of memory\n");
        return CLI_FARM;
    }
    int rc = s_main(&cli, argc, argv);
    cli_close(&cli);
    if (fflush(stdout) != 0 || ferror(stdout)) {
        fprintf(stderr, "farm: writing to stdout: %s\n", strerror(errno ? errno : EIO));
        if (rc == CLI_OK)
            rc = CLI_FARM;
    }
    return rc;
}
