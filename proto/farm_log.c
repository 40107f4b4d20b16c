/* farm_log: see farm_log.h. */
#include "farm_log.h"
#include "farm_err.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static farm_log_level_t s_level = FARM_LOG_INFO;
static const char *s_names[] = {"debug", "info", "warn", "error"};

void farm_log_set_level(farm_log_level_t level) { s_level = level; }

int farm_log_parse_level(const char *s, farm_log_level_t *out) {
    for (int i = 0; i < 4; i++)
        if (strcmp(s, s_names[i]) == 0) {
            *out = (farm_log_level_t)i;
            return 0;
        }
    return FARM_EBADREQ;
}

void farm_log(farm_log_level_t level, const char *component, const char *fmt, ...) {
    if (level < s_level)
        return;
    char line[2048];
    int n = snprintf(line, sizeof line, "%s %s ", s_names[level], component);
    if (n < 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    int m = vsnprintf(line + n, sizeof line - (size_t)n - 1, fmt, ap);
    va_end(ap);
    size_t len = (size_t)n + (m < 0 ? 0 : (size_t)m);
    if (len > sizeof line - 2)
        len = sizeof line - 2; /* long lines are cut, never split */
    line[len++] = '\n';
    ssize_t w = write(STDERR_FILENO, line, len);
    (void)w; /* nowhere to report a failure to write the log */
}
