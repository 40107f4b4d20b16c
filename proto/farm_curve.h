/* farm_curve: CURVE security for the farm (DESIGN.md §6).
 *
 * The head (ventilator and sink) is started with `--curve DIR`:
 *
 *     DIR/server.cert, DIR/server.cert_secret   the head's key pair
 *     DIR/clients/NAME.cert                     public keys that may use the
 *                                               front door and the status feed
 *     DIR/workers/NAME.cert                     public keys that may take tasks
 *                                               (dispatch) and report (results)
 *
 * all in czmq's certificate format (`farm keygen NAME` writes a pair). Every
 * socket the head binds is then a CURVE server, and each carries a ZAP domain
 * naming who may connect: "clients" (front door), "workers" (dispatch and
 * results) or "feed" (status feed: clients and workers, since a worker reads
 * the acknowledgements of its results there). The head's own key is accepted
 * in every domain: the ventilator reports to the sink with it.
 *
 * Authentication is our own small ZAP handler (RFC 27, ZAP 1.0) rather than
 * czmq's zauth: zauth has one set of keys per process, and the head needs two
 * folders with different rights. The handler is a REP socket on
 * inproc://zeromq.zap.01 of the program's context, served by one thread. It
 * re-reads a folder when it changed (every *.cert's name, size and mtime, and
 * the folder's own mtime, looked at no more than once a second, and at once
 * when an unknown key arrives and the folder's mtime moved), so keys can be
 * added and removed without a restart. Every refusal is logged (warn, with
 * the domain, the peer's address and its key in Z85), at most once per 10 s
 * per key and domain with a count of the repeats, so a refused peer that
 * keeps reconnecting cannot flood the log.
 *
 * Clients and workers name the head's public key (a Z85 text or a
 * certificate file) and their own certificate (with its secret half):
 * `--curve-server KEY|FILE --curve-cert FILE`, or FARM_CURVE_SERVER and
 * FARM_CURVE_CERT. farm_curve_client_setup reads them once at start into a
 * process-wide setting that farm_client and the programs' sockets apply
 * before every connect.
 *
 * czmq is used only for its certificate files (zcert, zconfig); nothing here
 * starts czmq's sockets or its signal handling.
 */
#ifndef FARM_CURVE_H
#define FARM_CURVE_H

#include <stdbool.h>
#include <stddef.h>

#define FARM_CURVE_Z85 41 /* a key in Z85: 40 characters and a NUL */

/* ZAP domains of the head's sockets. */
#define FARM_CURVE_CLIENTS "clients" /* front door */
#define FARM_CURVE_WORKERS "workers" /* dispatch, results */
#define FARM_CURVE_FEED "feed"       /* status feed: clients and workers */

/* The keys one connecting socket needs, all Z85. */
typedef struct {
    char server_key[FARM_CURVE_Z85]; /* the head's public key */
    char public_key[FARM_CURVE_Z85]; /* ours */
    char secret_key[FARM_CURVE_Z85]; /* ours */
} farm_curve_keys_t;

/* ---- certificates ------------------------------------------------------- */

/* Read the certificate at path (czmq format). With need_secret, the secret
 * half must be there too: path is either NAME.cert with NAME.cert_secret
 * beside it, or the NAME.cert_secret file itself. Fills pub (and sec when
 * non-NULL; "" when the file has no secret half). Returns 0, or FARM_EBADREQ
 * with why (n bytes) saying what is wrong. */
int farm_curve_cert_read(const char *path, bool need_secret, char pub[FARM_CURVE_Z85], char sec[FARM_CURVE_Z85],
                         char *why, size_t n);

/* Write a new key pair as dir/name.cert and dir/name.cert_secret (mode
 * 0600), creating dir (and missing parents, mode 0755) when needed. name is
 * 1..64 bytes of [A-Za-z0-9_.-] and is recorded in the certificate's
 * metadata. Existing files are an error unless force. Fills pub with the
 * public key. Returns 0, or FARM_EBADREQ / -errno with why filled. */
int farm_curve_keygen(const char *dir, const char *name, bool force, char pub[FARM_CURVE_Z85], char *why, size_t n);

/* ---- the connecting side ------------------------------------------------ */

/* Fill k from server (a 40-character Z85 key, or the path of a certificate
 * whose public key is the head's) and cert (our certificate with its secret
 * half). Returns 0 or FARM_EBADREQ with why. */
int farm_curve_keys_load(farm_curve_keys_t *k, const char *server, const char *cert, char *why, size_t n);

/* Make socket s a CURVE client with k. Call before zmq_connect. Returns 0 or
 * -errno. */
int farm_curve_keys_apply(const farm_curve_keys_t *k, void *s);

/* Set up this process's client keys from flags, or where a flag is NULL from
 * the environment (FARM_CURVE_SERVER, FARM_CURVE_CERT). Both or neither must
 * be given: neither leaves CURVE off. Call once at start, before any thread
 * or client exists. Returns 0, or FARM_EBADREQ with why (the text names the
 * flag or variable at fault). */
int farm_curve_client_setup(const char *server, const char *cert, char *why, size_t n);

/* The keys set up by farm_curve_client_setup, or NULL when CURVE is off.
 * Borrowed, static. */
const farm_curve_keys_t *farm_curve_client_keys(void);

/* farm_curve_keys_apply with this process's keys; 0 and nothing done when
 * CURVE is off. */
int farm_curve_client_apply(void *s);

/* Watch socket s (of context ctx) for the head refusing our key, and log it
 * (warn, naming peer and the endpoint, at most once per 30 s) and the first
 * success after a refusal (info). A detached thread reads a monitor socket;
 * it ends when s is closed or ctx terminated. Call after the socket's keys
 * are set. Returns 0 or -errno. */
int farm_curve_client_watch(void *ctx, void *s, const char *peer);

/* ---- the head ----------------------------------------------------------- */

typedef struct farm_curve_server_t farm_curve_server_t;

/* Load dir/server.cert (with its secret) and start the ZAP handler on ctx.
 * component names the program in log lines ("vent", "sink"). Must be called
 * before any socket of ctx binds. Returns NULL with why filled when the
 * certificate is missing or bad, or the handler cannot start (for example a
 * second handler on the same context). The caller owns the result. */
farm_curve_server_t *farm_curve_server_new(void *ctx, const char *dir, const char *component, char *why, size_t n);

/* Stop the handler and free; *p becomes NULL. Safe with NULL and twice.
 * Call before or after zmq_ctx_term of the context. */
void farm_curve_server_destroy(farm_curve_server_t **p);

/* Make s a CURVE server in ZAP domain `domain` (FARM_CURVE_CLIENTS,
 * FARM_CURVE_WORKERS or FARM_CURVE_FEED), and watch its handshakes: a peer
 * that fails before showing a key (no CURVE, or the wrong server key) is
 * logged too (warn "event=curve-refused domain=D endpoint=EP", at most once
 * per 10 s per socket; libzmq does not say who it was). Call before
 * zmq_bind. Returns 0 or -errno (-EINVAL for an unknown domain). */
int farm_curve_server_apply(const farm_curve_server_t *a, void *s, const char *domain);

/* Keys for a socket the head connects to itself (the ventilator's reports
 * to the sink): the server's own pair, which every domain accepts. */
const farm_curve_keys_t *farm_curve_server_self(const farm_curve_server_t *a);

#endif
