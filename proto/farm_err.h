/* farm_err: one table of error codes for the whole farm.
 *
 * Functions return 0 on success or a negative code: either one of the
 * FARM_E* codes below, or -errno for a failure of the operating system.
 * The codes of the front-door protocol (bad_request, not_found, ...) are
 * the first entries, so a code travels from the store to the wire without
 * a second mapping. The list is an X-macro so that the enum, the wire
 * names and the messages can never disagree.
 */
#ifndef FARM_ERR_H
#define FARM_ERR_H

#include <stddef.h>

/* XX(ENUM, wire-name, message) */
#define FARM_ERR_MAP(XX)                                                     \
    XX(BADREQ,      "bad_request",         "bad request")                     \
    XX(UNKNOWNOP,   "unknown_op",          "unknown op")                      \
    XX(VERSION,     "unsupported_version", "unsupported protocol version")    \
    XX(TOOLARGE,    "too_large",           "over a configured limit")         \
    XX(NOTFOUND,    "not_found",           "no such job or task")             \
    XX(CONFLICT,    "conflict",            "not possible in the current state") \
    XX(BUSY,        "busy",                "the farm refuses new work for now") \
    XX(UNAUTH,      "unauthorized",        "unauthorized")                    \
    XX(INTERNAL,    "internal",            "internal error")                  \
    XX(TIMEOUT,     "timeout",             "no reply within the timeout")     \
    XX(STORE,       "store",               "database error")                  \
    XX(PROTO,       "protocol",            "malformed message")

typedef enum {
    FARM_OK = 0,
#define XX(e, n, m) FARM_E##e,
    FARM_E__FIRST = -1000,
    FARM_ERR_MAP(XX)
#undef XX
    FARM_E__LAST
} farm_err_code_t;

/* The message of code `err` (a FARM_E* code or -errno). Never NULL;
 * the string is static. */
const char *farm_strerror(int err);

/* The wire name of a FARM_E* code ("bad_request", ...); "internal" for
 * -errno and anything unknown. Static string. */
const char *farm_err_name(int err);

/* The FARM_E* code of a wire name, or FARM_EINTERNAL if unknown. */
int farm_err_from_name(const char *name, size_t len);

#endif
