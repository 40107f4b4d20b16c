/* farm_err: the error table (see farm_err.h). */
#include "farm_err.h"

#include <string.h>

static const struct {
    int code;
    const char *name;
    const char *msg;
} s_errs[] = {
#define XX(e, n, m) {FARM_E##e, n, m},
    FARM_ERR_MAP(XX)
#undef XX
};

const char *farm_strerror(int err) {
    if (err == 0)
        return "ok";
    for (size_t i = 0; i < sizeof s_errs / sizeof s_errs[0]; i++)
        if (s_errs[i].code == err)
            return s_errs[i].msg;
    if (err < 0 && err > -4096)
        return strerror(-err);
    return "unknown error";
}

const char *farm_err_name(int err) {
    for (size_t i = 0; i < sizeof s_errs / sizeof s_errs[0]; i++)
        if (s_errs[i].code == err)
            return s_errs[i].name;
    return "internal";
}

int farm_err_from_name(const char *name, size_t len) {
    for (size_t i = 0; i < sizeof s_errs / sizeof s_errs[0]; i++)
        if (strlen(s_errs[i].name) == len && memcmp(s_errs[i].name, name, len) == 0)
            return s_errs[i].code;
    return FARM_EINTERNAL;
}
