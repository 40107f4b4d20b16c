/* handler_text: the text task type.
 *
 *   text  args {"text": str (valid UTF-8, at most WORKER_TEXT_MAX bytes and
 *                the farm's max_args), "ops": [op, ...] (default
 *                ["words", "chars"]), "top": N 1..1000 (default 10),
 *                "sentences": N 1..100 (default 3), "skip_stopwords": bool
 *                (default false: top_words counts every word)}
 *         ops:  words      number of words
 *               chars      number of characters (Unicode code points)
 *               upper, lower, title   the text with its case changed
 *               top_words  the N most frequent words, case-folded:
 *                          [{"word", "count"}, ...], most frequent first,
 *                          ties in byte order of the word
 *               summary    the N best sentences, in text order, joined by
 *                          one space
 *         result: a map with one key per op asked, e.g. {"words": 12}.
 *
 * A word is a run of letters and digits (Unicode classes of the C.UTF-8
 * locale; ASCII only if the system lacks it), with inner apostrophes
 * ("don't" is one word). A sentence ends at '.', '!' or '?' (and any
 * closing quotes or brackets) followed by white space or the end, or at a
 * blank line. The summary scores each sentence by the summed frequency,
 * relative to the most frequent one, of its words that are not English
 * stop words ("the", "and", ...), and keeps the N highest (ties: the
 * earlier sentence).
 *
 * The operations are pure functions, callable from tests. They take text
 * that is valid UTF-8 (worker_utf8_count() >= 0); the handler checks that.
 */
#ifndef HANDLER_TEXT_H
#define HANDLER_TEXT_H

#include "farm_plugin.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define WORKER_TEXT_MAX (16 * 1024 * 1024) /* bytes of a text */
#define WORKER_TEXT_TOP_MAX 1000           /* N of top_words */
#define WORKER_TEXT_SENTENCES_MAX 100      /* N of summary */

typedef enum { WORKER_CASE_UPPER, WORKER_CASE_LOWER, WORKER_CASE_TITLE } worker_case_t;

/* One word of top_words. */
typedef struct {
    char *word;    /* case-folded UTF-8, NUL terminated; owned by the array */
    size_t len;    /* bytes of word */
    int64_t count; /* occurrences */
} worker_word_t;

/* The number of words of s[0..n). */
int64_t worker_text_words(const char *s, size_t n);

/* s[0..n) with its case changed, into *out (malloc'd, NUL terminated, the
 * caller's to free) and *outlen. Returns 0 or -ENOMEM. */
int worker_text_case(const char *s, size_t n, worker_case_t how, char **out, size_t *outlen);

/* The top (1..WORKER_TEXT_TOP_MAX) most frequent words of s[0..n), without
 * English stop words when skip_stop, into *out (malloc'd, *nout entries,
 * free with worker_text_words_free). Returns 0 or -ENOMEM. */
int worker_text_top(const char *s, size_t n, size_t top, bool skip_stop, worker_word_t **out, size_t *nout);

/* Free what worker_text_top() returned; safe on NULL. */
void worker_text_words_free(worker_word_t *w, size_t n);

/* The k (1..WORKER_TEXT_SENTENCES_MAX) best sentences of s[0..n) in text
 * order, white space inside each collapsed to single spaces, joined by one
 * space, into *out (malloc'd, NUL terminated, the caller's) and *outlen;
 * *nsent (may be NULL) gets the number of sentences found. Returns 0 or
 * -ENOMEM. */
int worker_text_summary(const char *s, size_t n, size_t k, char **out, size_t *outlen, int64_t *nsent);

/* The text handler (farm_plugin.h); registered by worker_handlers. */
int worker_text_run(farm_task_ctx_t *ctx, const msgpack_object *args, msgpack_packer *result);

#endif
