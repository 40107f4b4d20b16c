/* farm_log: one line per event on stderr, `level component key=value ...`.
 *
 * The level threshold is process-wide and set once from a flag. Lines are
 * written with a single write(2) so that lines of threads and processes
 * sharing a terminal do not interleave. Library code logs only through
 * this; it never prints.
 */
#ifndef FARM_LOG_H
#define FARM_LOG_H

typedef enum { FARM_LOG_DEBUG, FARM_LOG_INFO, FARM_LOG_WARN, FARM_LOG_ERROR } farm_log_level_t;

/* Set the threshold; lines below it are dropped. */
void farm_log_set_level(farm_log_level_t level);

/* Parse "debug", "info", "warn" or "error". Returns 0, or FARM_EBADREQ. */
int farm_log_parse_level(const char *s, farm_log_level_t *out);

/* Log one line: `<level> <component> <formatted text>`. The text should be
 * key=value pairs; values with spaces are quoted by the caller. */
void farm_log(farm_log_level_t level, const char *component, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif
