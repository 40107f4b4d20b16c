/* client_keygen: `farm keygen NAME`, a CURVE key pair in czmq's format.
 *
 * The one command that never talks to a farm: it writes DIR/NAME.cert (the
 * public half, to copy to the head) and DIR/NAME.cert_secret (both halves,
 * mode 0600, to keep) through farm_curve_keygen, and prints the public key.
 * It refuses to overwrite a pair unless --force, since a lost secret key
 * locks its owner out of the farm.
 */
#include "client.h"
#include "farm_curve.h"
#include "farm_err.h"

#include <stdio.h>
#include <string.h>

static const char s_details[] =
    "A head started with --curve DIR (farm-ventilator and farm-sink) needs:\n"
    "  DIR/server.cert, DIR/server.cert_secret  its own pair: farm keygen server --dir DIR\n"
    "  DIR/clients/NAME.cert   public halves of clients (farm, farm-tui, scripts):\n"
    "                          they may use the front door and read the status feed\n"
    "  DIR/workers/NAME.cert   public halves of workers: they may take tasks, report\n"
    "                          results and read the feed (where their acks are)\n"
    "Copy only NAME.cert (never NAME.cert_secret) into clients/ or workers/: the head\n"
    "notices added and removed files within about a second, without a restart. Each\n"
    "client or worker keeps its own pair and names the head's public key:\n"
    "  farm --curve-server DIR/server.cert --curve-cert alice.cert health\n"
    "  farm-worker --connect HEAD --curve-server KEY --curve-cert w1.cert\n"
    "(or FARM_CURVE_SERVER and FARM_CURVE_CERT in the environment). A key the head\n"
    "does not know gets nothing through, and the head logs the refusal.\n";

int cli_cmd_keygen(cli_t *cli, int argc, char **argv) {
    const char *dir = ".";
    bool force = false;
    const cli_opt_t opts[] = {
        {"dir", CLI_OPT_STR, &dir, 0, 0, "DIR", "write the files into DIR, created if missing (default .)"},
        {"force", CLI_OPT_FLAG, &force, 0, 0, NULL, "replace an existing pair of that name"},
    };
    const cli_help_t help = {"[--dir DIR] [--force] NAME",
                             "write a CURVE key pair: DIR/NAME.cert (public) and DIR/NAME.cert_secret", s_details};
    char *pos[argc > 0 ? argc : 1];
    int npos = 0;
    cli->no_network = true;
    int rc = cli_parse(cli, &help, opts, sizeof opts / sizeof opts[0], argc, argv, pos, &npos, NULL, NULL);
    if (rc != CLI_CONTINUE)
        return rc;
    if (npos != 1)
        return cli_usage(cli, npos ? "give one NAME" : "which NAME? (e.g. server, alice, worker-3)");
    char pub[FARM_CURVE_Z85], why[600];
    if (farm_curve_keygen(dir, pos[0], force, pub, why, sizeof why) != 0)
        return cli_usage(cli, "%s", why);
    char cert[FARM_EP_MAX * 8];
    snprintf(cert, sizeof cert, "%s/%s.cert", dir, pos[0]);
    if (cli->json) {
        msgpack_sbuffer b;
        msgpack_sbuffer_init(&b);
        msgpack_packer pk;
        msgpack_packer_init(&pk, &b, msgpack_sbuffer_write);
        char secret[sizeof cert + 8];
        snprintf(secret, sizeof secret, "%s_secret", cert);
        msgpack_pack_map(&pk, 4);
        farm_pack_kv_str(&pk, "name", pos[0]);
        farm_pack_kv_str(&pk, "public_key", pub);
        farm_pack_kv_str(&pk, "cert", cert);
        farm_pack_kv_str(&pk, "secret", secret);
        msgpack_zone z;
        msgpack_object o;
        farm_error_t e;
        rc = CLI_FARM;
        if (msgpack_zone_init(&z, 1024)) {
            if (farm_msg_unpack(b.data, b.size, &z, &o, &e) == 0)
                rc = cli_print_json(&o);
            msgpack_zone_destroy(&z);
        }
        msgpack_sbuffer_destroy(&b);
        return rc;
    }
    printf("public-key: %s\ncertificate: %s (public: copy it to the head)\nsecret: %s_secret (keep it here, mode 0600)\n",
           pub, cert, cert);
    return CLI_OK;
}
