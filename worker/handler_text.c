/* handler_text: word counts, case changes, top words and summaries (see
 * handler_text.h).
 *
 * Everything is one or two linear passes over the text. Words come from one
 * tokenizer (s_next_word), so words, title case, top_words and summary all
 * agree on what a word is. Word frequencies live in a small open-addressing
 * table over a stable vector of distinct words, so a summary can keep, per
 * token, the index of its word across rehashes. Case mapping uses the
 * C.UTF-8 locale through the *_l functions, never setlocale(): the worker
 * is multi-threaded and the process locale is shared. Memory is bounded by
 * the text: distinct words, tokens and sentences each number at most its
 * length, and every allocation is checked.
 */
#include "handler_text.h"

#include "farm_msg.h"
#include "worker_utf8.h"

#include <errno.h>
#include <inttypes.h>
#include <locale.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <wctype.h>

/* ---- characters --------------------------------------------------------- */

static pthread_once_t s_once = PTHREAD_ONCE_INIT;
static locale_t s_loc; /* C.UTF-8 for LC_CTYPE, or 0 when the system lacks it */

static void s_loc_init(void) {
    s_loc = newlocale(LC_CTYPE_MASK, "C.UTF-8", (locale_t)0);
    if (!s_loc)
        s_loc = newlocale(LC_CTYPE_MASK, "C.utf8", (locale_t)0);
}

static locale_t s_locale(void) {
    (void)pthread_once(&s_once, s_loc_init);
    return s_loc;
}

static bool s_word_cp(uint32_t cp, locale_t loc) {
    if (cp < 0x80)
        return (cp >= '0' && cp <= '9') || ((cp | 0x20) >= 'a' && (cp | 0x20) <= 'z');
    if (loc)
        return iswalnum_l((wint_t)cp, loc) != 0;
    /* No locale: non-ASCII counts as a letter except the obvious punctuation. */
    return !(cp >= 0x80 && cp <= 0xBF) && cp != 0xD7 && cp != 0xF7 && !(cp >= 0x2000 && cp <= 0x206F) &&
           !(cp >= 0x3000 && cp <= 0x303F);
}

static bool s_apos(uint32_t cp) { return cp == '\'' || cp == 0x2019; }

static uint32_t s_upper(uint32_t cp, locale_t loc) {
    if (cp < 0x80)
        return cp >= 'a' && cp <= 'z' ? cp - 32 : cp;
    return loc ? (uint32_t)towupper_l((wint_t)cp, loc) : cp;
}

static uint32_t s_lower(uint32_t cp, locale_t loc) {
    if (cp < 0x80)
        return cp >= 'A' && cp <= 'Z' ? cp + 32 : cp;
    return loc ? (uint32_t)towlower_l((wint_t)cp, loc) : cp;
}

static bool s_space(unsigned char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f'; }

typedef struct {
    size_t start, end; /* bytes [start, end) */
} s_span_t;

/* The next word at or after *pos: true with its span, *pos after it. */
static bool s_next_word(const unsigned char *p, size_t n, size_t *pos, s_span_t *w, locale_t loc) {
    size_t i = *pos, k;
    uint32_t cp;
    while (i < n) {
        k = worker_utf8_next(p + i, n - i, &cp);
        if (k == 0) {
            i++;
            continue;
        }
        if (s_word_cp(cp, loc))
            break;
        i += k;
    }
    if (i >= n) {
        *pos = n;
        return false;
    }
    w->start = i;
    while (i < n) {
        k = worker_utf8_next(p + i, n - i, &cp);
        if (k == 0)
            break;
        if (s_word_cp(cp, loc)) {
            i += k;
            continue;
        }
        uint32_t c2;
        size_t k2 = s_apos(cp) ? worker_utf8_next(p + i + k, n - i - k, &c2) : 0;
        if (k2 && s_word_cp(c2, loc)) {
            i += k + k2;
            continue;
        }
        break;
    }
    w->end = i;
    *pos = i;
    return true;
}

/* ---- a growing byte buffer ---------------------------------------------- */

typedef struct {
    unsigned char *p;
    size_t len, cap;
    bool oom; /* a grow failed: the content is incomplete */
} s_buf_t;

static bool s_reserve(s_buf_t *b, size_t more) {
    if (b->oom)
        return false;
    if (b->len + more <= b->cap)
        return true;
    size_t cap = b->cap ? b->cap : 64;
    while (cap < b->len + more)
        cap *= 2;
    unsigned char *q = realloc(b->p, cap);
    if (!q) {
        b->oom = true;
        return false;
    }
    b->p = q;
    b->cap = cap;
    return true;
}

static void s_put_cp(s_buf_t *b, uint32_t cp) {
    if (s_reserve(b, 4))
        b->len += worker_utf8_put(b->p + b->len, cp);
}

static void s_put(s_buf_t *b, const void *p, size_t n) {
    if (n && s_reserve(b, n)) {
        memcpy(b->p + b->len, p, n);
        b->len += n;
    }
}

/* Hand the buffer over as a NUL-terminated string. Returns 0 or -ENOMEM
 * (the buffer is freed either way). */
static int s_finish(s_buf_t *b, char **out, size_t *outlen) {
    if (!s_reserve(b, 1)) {
        free(b->p);
        return -ENOMEM;
    }
    b->p[b->len] = '\0';
    *out = (char *)b->p;
    *outlen = b->len;
    return 0;
}

/* Append the case-folded form of word p[0..n) (lower case, ’ as '). */
static void s_fold(s_buf_t *b, const unsigned char *p, size_t n, locale_t loc) {
    uint32_t cp;
    for (size_t i = 0, k; i < n; i += k) {
        k = worker_utf8_next(p + i, n - i, &cp);
        if (k == 0)
            return; /* cannot happen inside a word */
        s_put_cp(b, cp == 0x2019 ? '\'' : s_lower(cp, loc));
    }
}

/* ---- counts and case ---------------------------------------------------- */

int64_t worker_text_words(const char *s, size_t n) {
    locale_t loc = s_locale();
    size_t pos = 0;
    s_span_t w;
    int64_t count = 0;
    while (s_next_word((const unsigned char *)s, n, &pos, &w, loc))
        count++;
    return count;
}

int worker_text_case(const char *s, size_t n, worker_case_t how, char **out, size_t *outlen) {
    locale_t loc = s_locale();
    const unsigned char *p = (const unsigned char *)s;
    s_buf_t b = {0};
    if (!s_reserve(&b, n + n / 2 + 8))
        return -ENOMEM;
    if (how == WORKER_CASE_TITLE) {
        size_t pos = 0, last = 0;
        s_span_t w;
        while (s_next_word(p, n, &pos, &w, loc)) {
            s_put(&b, p + last, w.start - last);
            uint32_t cp;
            bool first = true;
            for (size_t i = w.start, k; i < w.end; i += k) {
                k = worker_utf8_next(p + i, w.end - i, &cp);
                if (k == 0)
                    break;
                s_put_cp(&b, first ? s_upper(cp, loc) : s_lower(cp, loc));
                first = false;
            }
            last = w.end;
        }
        s_put(&b, p + last, n - last);
    } else {
        uint32_t cp;
        for (size_t i = 0, k; i < n; i += k) {
            k = worker_utf8_next(p + i, n - i, &cp);
            if (k == 0) { /* not UTF-8: copy the byte as it is */
                s_put(&b, p + i, 1);
                k = 1;
                continue;
            }
            s_put_cp(&b, how == WORKER_CASE_UPPER ? s_upper(cp, loc) : s_lower(cp, loc));
        }
    }
    return s_finish(&b, out, outlen);
}

/* ---- word frequencies --------------------------------------------------- */

/* English stop words, sorted by bytes (for bsearch). */
static const char *const s_stop[] = {
    "a", "about", "above", "after", "again", "against", "all", "am", "an", "and", "any", "are", "aren't",
    "as", "at", "be", "because", "been", "before", "being", "below", "between", "both", "but", "by", "can",
    "can't", "cannot", "could", "couldn't", "did", "didn't", "do", "does", "doesn't", "doing", "don't",
    "down", "during", "each", "few", "for", "from", "further", "had", "hadn't", "has", "hasn't", "have",
    "haven't", "having", "he", "he'd", "he'll", "he's", "her", "here", "here's", "hers", "herself", "him",
    "himself", "his", "how", "how's", "i", "i'd", "i'll", "i'm", "i've", "if", "in", "into", "is", "isn't",
    "it", "it's", "its", "itself", "let's", "me", "more", "most", "mustn't", "my", "myself", "no", "nor",
    "not", "of", "off", "on", "once", "only", "or", "other", "ought", "our", "ours", "ourselves", "out",
    "over", "own", "same", "shan't", "she", "she'd", "she'll", "she's", "should", "shouldn't", "so", "some",
    "such", "than", "that", "that's", "the", "their", "theirs", "them", "themselves", "then", "there",
    "there's", "these", "they", "they'd", "they'll", "they're", "they've", "this", "those", "through", "to",
    "too", "under", "until", "up", "very", "was", "wasn't", "we", "we'd", "we'll", "we're", "we've", "were",
    "weren't", "what", "what's", "when", "when's", "where", "where's", "which", "while", "who", "who's",
    "whom", "why", "why's", "will", "with", "won't", "would", "wouldn't", "you", "you'd", "you'll", "you're",
    "you've", "your", "yours", "yourself", "yourselves",
};

typedef struct {
    const unsigned char *p;
    size_t n;
} s_key_t;

static int s_stop_cmp(const void *key, const void *elem) {
    const s_key_t *k = key;
    const char *w = *(const char *const *)elem;
    size_t wn = strlen(w);
    int c = memcmp(k->p, w, k->n < wn ? k->n : wn);
    return c ? c : (k->n > wn) - (k->n < wn);
}

static bool s_is_stop(const unsigned char *p, size_t n) {
    s_key_t k = {p, n};
    return bsearch(&k, s_stop, sizeof s_stop / sizeof s_stop[0], sizeof s_stop[0], s_stop_cmp) != NULL;
}

/* A distinct word; its bytes are in the map's arena. */
typedef struct {
    size_t off, len;
    uint64_t hash;
    int64_t count;
    bool stop;
} s_word_t;

typedef struct {
    s_word_t *w;     /* distinct words, in order of first appearance (stable) */
    size_t nw, capw;
    uint32_t *slot;  /* hash table of index+1 into w; 0 empty */
    size_t cap;      /* slots, a power of two */
    s_buf_t arena;   /* the words' bytes */
    s_buf_t tmp;     /* the word being folded */
} s_map_t;

static uint64_t s_hash(const unsigned char *p, size_t n) {
    uint64_t h = 0xcbf29ce484222325ULL;
    for (size_t i = 0; i < n; i++)
        h = (h ^ p[i]) * 0x100000001b3ULL;
    return h;
}

static void s_map_free(s_map_t *m) {
    free(m->w);
    free(m->slot);
    free(m->arena.p);
    free(m->tmp.p);
    memset(m, 0, sizeof *m);
}

static bool s_map_grow(s_map_t *m) {
    size_t cap = m->cap ? m->cap * 2 : 1024;
    uint32_t *slot = calloc(cap, sizeof *slot);
    if (!slot)
        return false;
    for (size_t i = 0; i < m->nw; i++) {
        size_t j = m->w[i].hash & (cap - 1);
        while (slot[j])
            j = (j + 1) & (cap - 1);
        slot[j] = (uint32_t)(i + 1);
    }
    free(m->slot);
    m->slot = slot;
    m->cap = cap;
    return true;
}

/* Count word p[0..n) of the text. Returns its index in m->w, or -1 when
 * out of memory. */
static int64_t s_map_add(s_map_t *m, const unsigned char *p, size_t n, locale_t loc) {
    m->tmp.len = 0;
    s_fold(&m->tmp, p, n, loc);
    if (m->tmp.oom)
        return -1;
    const unsigned char *k = m->tmp.p;
    size_t kn = m->tmp.len;
    uint64_t h = s_hash(k, kn);
    if ((m->nw + 1) * 2 > m->cap && !s_map_grow(m))
        return -1;
    size_t j = h & (m->cap - 1);
    while (m->slot[j]) {
        s_word_t *w = &m->w[m->slot[j] - 1];
        if (w->hash == h && w->len == kn && memcmp(m->arena.p + w->off, k, kn) == 0) {
            w->count++;
            return m->slot[j] - 1;
        }
        j = (j + 1) & (m->cap - 1);
    }
    if (m->nw == m->capw) {
        size_t capw = m->capw ? m->capw * 2 : 256;
        s_word_t *nwv = realloc(m->w, capw * sizeof *nwv);
        if (!nwv)
            return -1;
        m->w = nwv;
        m->capw = capw;
    }
    if (m->nw >= UINT32_MAX - 1)
        return -1;
    size_t off = m->arena.len;
    s_put(&m->arena, k, kn);
    if (m->arena.oom)
        return -1;
    m->w[m->nw] = (s_word_t){off, kn, h, 1, false};
    m->slot[j] = (uint32_t)(m->nw + 1);
    return (int64_t)m->nw++;
}

/* After counting: flag the stop words. */
static void s_map_mark_stops(s_map_t *m) {
    for (size_t i = 0; i < m->nw; i++)
        m->w[i].stop = s_is_stop(m->arena.p + m->w[i].off, m->w[i].len);
}

/* A word as sorted for top_words: self-contained, so qsort needs no context. */
typedef struct {
    int64_t count;
    const unsigned char *p;
    size_t len;
} s_ranked_t;

/* Most frequent first, then the word's bytes. */
static int s_top_cmp(const void *a, const void *b) {
    const s_ranked_t *x = a, *y = b;
    if (x->count != y->count)
        return x->count > y->count ? -1 : 1;
    int c = memcmp(x->p, y->p, x->len < y->len ? x->len : y->len);
    return c ? c : (x->len > y->len) - (x->len < y->len);
}

void worker_text_words_free(worker_word_t *w, size_t n) {
    for (size_t i = 0; w && i < n; i++)
        free(w[i].word);
    free(w);
}

/* Select the top words of a counted map. */
static int s_top_of(s_map_t *m, size_t top, bool skip_stop, worker_word_t **out, size_t *nout) {
    *out = NULL;
    *nout = 0;
    s_ranked_t *idx = malloc((m->nw ? m->nw : 1) * sizeof *idx);
    if (!idx)
        return -ENOMEM;
    size_t k = 0;
    for (size_t i = 0; i < m->nw; i++)
        if (!skip_stop || !m->w[i].stop)
            idx[k++] = (s_ranked_t){m->w[i].count, m->arena.p + m->w[i].off, m->w[i].len};
    qsort(idx, k, sizeof *idx, s_top_cmp);
    size_t nt = k < top ? k : top;
    worker_word_t *w = calloc(nt ? nt : 1, sizeof *w);
    if (!w) {
        free(idx);
        return -ENOMEM;
    }
    for (size_t i = 0; i < nt; i++) {
        const s_ranked_t *x = &idx[i];
        w[i].word = malloc(x->len + 1);
        if (!w[i].word) {
            worker_text_words_free(w, i);
            free(idx);
            return -ENOMEM;
        }
        memcpy(w[i].word, x->p, x->len);
        w[i].word[x->len] = '\0';
        w[i].len = x->len;
        w[i].count = x->count;
    }
    free(idx);
    *out = w;
    *nout = nt;
    return 0;
}

int worker_text_top(const char *s, size_t n, size_t top, bool skip_stop, worker_word_t **out, size_t *nout) {
    locale_t loc = s_locale();
    const unsigned char *p = (const unsigned char *)s;
    s_map_t m = {0};
    size_t pos = 0;
    s_span_t w;
    while (s_next_word(p, n, &pos, &w, loc))
        if (s_map_add(&m, p + w.start, w.end - w.start, loc) < 0) {
            s_map_free(&m);
            return -ENOMEM;
        }
    s_map_mark_stops(&m);
    int rc = s_top_of(&m, top, skip_stop, out, nout);
    s_map_free(&m);
    return rc;
}

/* ---- summary ------------------------------------------------------------ */

typedef struct {
    size_t start, end;  /* word bytes */
    uint32_t word;      /* index in the map */
} s_token_t;

typedef struct {
    size_t start, end; /* bytes, trimmed */
    double score;
} s_sentence_t;

/* Bytes of a closing quote or bracket at p[0..n), 0 if none. */
static size_t s_closer(const unsigned char *p, size_t n) {
    if (n >= 1 && (p[0] == '"' || p[0] == '\'' || p[0] == ')' || p[0] == ']'))
        return 1;
    if (n >= 3 && p[0] == 0xE2 && p[1] == 0x80 && (p[2] == 0x9D || p[2] == 0x99)) /* ” ’ */
        return 3;
    if (n >= 2 && p[0] == 0xC2 && p[1] == 0xBB) /* » */
        return 2;
    return 0;
}

/* Where the sentence starting at i ends (exclusive), and *next where the
 * search for the following one resumes. */
static size_t s_sentence_end(const unsigned char *p, size_t n, size_t i, size_t *next) {
    for (; i < n; i++) {
        if (p[i] == '.' || p[i] == '!' || p[i] == '?') {
            size_t j = i + 1, c;
            while (j < n && (c = s_closer(p + j, n - j)) > 0)
                j += c;
            if (j == n || s_space(p[j])) {
                *next = j;
                return j;
            }
        } else if (p[i] == '\n') {
            size_t j = i + 1;
            while (j < n && (p[j] == ' ' || p[j] == '\t' || p[j] == '\r'))
                j++;
            if (j < n && p[j] == '\n') {
                *next = j;
                return i;
            }
        }
    }
    *next = n;
    return n;
}

/* Best score first; the earlier sentence on ties. */
static int s_cmp_score(const void *a, const void *b) {
    const s_sentence_t *x = a, *y = b;
    if (x->score != y->score)
        return x->score > y->score ? -1 : 1;
    return (x->start > y->start) - (x->start < y->start);
}

/* Text order. */
static int s_cmp_start(const void *a, const void *b) {
    const s_sentence_t *x = a, *y = b;
    return (x->start > y->start) - (x->start < y->start);
}

int worker_text_summary(const char *s, size_t n, size_t k, char **out, size_t *outlen, int64_t *nsent) {
    locale_t loc = s_locale();
    const unsigned char *p = (const unsigned char *)s;
    s_map_t m = {0};
    s_token_t *tok = NULL;
    size_t ntok = 0, captok = 0;
    s_sentence_t *sen = NULL;
    size_t nsen = 0, capsen = 0;
    int rc = -ENOMEM;
    s_buf_t b = {0};
    /* Words, with the index of each token's distinct word. */
    size_t pos = 0;
    s_span_t w;
    while (s_next_word(p, n, &pos, &w, loc)) {
        int64_t id = s_map_add(&m, p + w.start, w.end - w.start, loc);
        if (id < 0)
            goto out;
        if (ntok == captok) {
            size_t cap = captok ? captok * 2 : 256;
            s_token_t *t = realloc(tok, cap * sizeof *t);
            if (!t)
                goto out;
            tok = t;
            captok = cap;
        }
        tok[ntok++] = (s_token_t){w.start, w.end, (uint32_t)id};
    }
    s_map_mark_stops(&m);
    int64_t maxf = 0;
    for (size_t i = 0; i < m.nw; i++)
        if (!m.w[i].stop && m.w[i].count > maxf)
            maxf = m.w[i].count;
    /* Sentences, scored by their content words; those without words are dropped. */
    size_t t = 0;
    for (size_t i = 0; i < n;) {
        while (i < n && s_space(p[i]))
            i++;
        if (i >= n)
            break;
        size_t next, end = s_sentence_end(p, n, i, &next);
        size_t e = end;
        while (e > i && s_space(p[e - 1]))
            e--;
        double score = 0;
        size_t words = 0;
        while (t < ntok && tok[t].start < i)
            t++;
        for (; t < ntok && tok[t].end <= e; t++) {
            words++;
            const s_word_t *x = &m.w[tok[t].word];
            if (!x->stop && maxf > 0)
                score += (double)x->count / (double)maxf;
        }
        if (words > 0) {
            if (nsen == capsen) {
                size_t cap = capsen ? capsen * 2 : 64;
                s_sentence_t *q = realloc(sen, cap * sizeof *q);
                if (!q)
                    goto out;
                sen = q;
                capsen = cap;
            }
            sen[nsen++] = (s_sentence_t){i, e, score};
        }
        i = next > i ? next : i + 1;
    }
    /* The k best, then back in text order. */
    size_t nk = nsen < k ? nsen : k;
    if (nsen)
        qsort(sen, nsen, sizeof *sen, s_cmp_score);
    if (nk)
        qsort(sen, nk, sizeof *sen, s_cmp_start);
    for (size_t j = 0; j < nk; j++) {
        const s_sentence_t *x = &sen[j];
        if (j)
            s_put(&b, " ", 1);
        bool space = false;
        for (size_t i = x->start; i < x->end; i++) {
            if (s_space(p[i])) {
                space = true;
                continue;
            }
            if (space)
                s_put(&b, " ", 1);
            space = false;
            s_put(&b, p + i, 1);
        }
    }
    if (b.oom)
        goto out;
    if (nsent)
        *nsent = (int64_t)nsen;
    rc = s_finish(&b, out, outlen);
    b.p = NULL;
out:
    free(b.p);
    free(sen);
    free(tok);
    s_map_free(&m);
    return rc;
}

/* ---- the handler -------------------------------------------------------- */

#define S_OP_MAP(XX)          \
    XX(WORDS, "words")        \
    XX(CHARS, "chars")        \
    XX(UPPER, "upper")        \
    XX(LOWER, "lower")        \
    XX(TITLE, "title")        \
    XX(TOP_WORDS, "top_words") \
    XX(SUMMARY, "summary")

typedef enum {
#define XX(e, s) S_OP_##e,
    S_OP_MAP(XX)
#undef XX
    S_OP__COUNT
} s_op_t;

static const char *const s_op_names[] = {
#define XX(e, s) s,
    S_OP_MAP(XX)
#undef XX
};

typedef struct {
    farm_str_t text;
    const msgpack_object *ops;
    int64_t top, sentences;
    bool skip_stopwords;
} s_args_t;

static const farm_field_t s_fields[] = {
    {"text", FARM_T_STR, true, 0, WORKER_TEXT_MAX, 0, offsetof(s_args_t, text), "max_text"},
    {"ops", FARM_T_ARRAY, false, 1, S_OP__COUNT, 0, offsetof(s_args_t, ops), NULL},
    {"top", FARM_T_INT, false, 1, WORKER_TEXT_TOP_MAX, 10, offsetof(s_args_t, top), NULL},
    {"sentences", FARM_T_INT, false, 1, WORKER_TEXT_SENTENCES_MAX, 3, offsetof(s_args_t, sentences), NULL},
    {"skip_stopwords", FARM_T_BOOL, false, 0, 0, 0, offsetof(s_args_t, skip_stopwords), NULL},
};

/* The ops asked, in order, into ops; returns their number or -1 after
 * setting the failure. */
static int s_ops_parse(farm_task_ctx_t *ctx, const msgpack_object *o, s_op_t ops[S_OP__COUNT]) {
    if (!o) {
        ops[0] = S_OP_WORDS;
        ops[1] = S_OP_CHARS;
        return 2;
    }
    bool seen[S_OP__COUNT] = {0};
    for (uint32_t i = 0; i < o->via.array.size; i++) {
        const msgpack_object *v = &o->via.array.ptr[i];
        int k = -1;
        if (v->type == MSGPACK_OBJECT_STR)
            for (int j = 0; j < S_OP__COUNT; j++)
                if (farm_str_eq((farm_str_t){v->via.str.ptr, v->via.str.size}, s_op_names[j]))
                    k = j;
        if (k < 0) {
            farm_task_fail(ctx, "text: args.ops[%" PRIu32 "] must be one of words, chars, upper, lower, title, "
                                "top_words, summary", i);
            return -1;
        }
        if (seen[k]) {
            farm_task_fail(ctx, "text: args.ops[%" PRIu32 "]: %s is asked twice", i, s_op_names[k]);
            return -1;
        }
        seen[k] = true;
        ops[i] = (s_op_t)k;
    }
    return (int)o->via.array.size;
}

int worker_text_run(farm_task_ctx_t *ctx, const msgpack_object *args, msgpack_packer *result) {
    s_args_t a;
    farm_error_t e;
    if (args->type == MSGPACK_OBJECT_NIL) {
        farm_task_fail(ctx, "text: args must be a map with text");
        return -1;
    }
    if (farm_msg_decode(s_fields, sizeof s_fields / sizeof s_fields[0], args, &a, NULL, "args", &e) != 0) {
        farm_task_fail(ctx, "text: %s", e.message);
        return -1;
    }
    s_op_t ops[S_OP__COUNT];
    int nops = s_ops_parse(ctx, a.ops, ops);
    if (nops < 0)
        return -1;
    const char *text = a.text.ptr ? a.text.ptr : "";
    size_t n = a.text.len;
    int64_t chars = worker_utf8_count(text, n);
    if (chars < 0) {
        farm_task_fail(ctx, "text: args.text must be valid UTF-8 without NUL bytes");
        return -1;
    }
    /* Everything is computed before anything is packed, so a failure
     * leaves the result empty. */
    msgpack_sbuffer buf;
    msgpack_sbuffer_init(&buf);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &buf, msgpack_sbuffer_write);
    int rc = 0;
    for (int i = 0; i < nops && rc == 0; i++) {
        if (farm_task_stopping(ctx)) {
            farm_task_fail(ctx, "text: stopped");
            rc = -1;
            break;
        }
        farm_pack_str(&pk, s_op_names[ops[i]]);
        char *s = NULL;
        size_t len = 0;
        switch (ops[i]) {
        case S_OP_WORDS: msgpack_pack_int64(&pk, worker_text_words(text, n)); break;
        case S_OP_CHARS: msgpack_pack_int64(&pk, chars); break;
        case S_OP_UPPER:
        case S_OP_LOWER:
        case S_OP_TITLE: {
            worker_case_t how = ops[i] == S_OP_UPPER   ? WORKER_CASE_UPPER
                                : ops[i] == S_OP_LOWER ? WORKER_CASE_LOWER
                                                       : WORKER_CASE_TITLE;
            rc = worker_text_case(text, n, how, &s, &len);
            if (rc == 0)
                farm_pack_strn(&pk, s, len);
            free(s);
            break;
        }
        case S_OP_TOP_WORDS: {
            worker_word_t *w = NULL;
            size_t nw = 0;
            rc = worker_text_top(text, n, (size_t)a.top, a.skip_stopwords, &w, &nw);
            if (rc == 0) {
                msgpack_pack_array(&pk, nw);
                for (size_t j = 0; j < nw; j++) {
                    msgpack_pack_map(&pk, 2);
                    farm_pack_kv_strn(&pk, "word", w[j].word, w[j].len);
                    farm_pack_kv_int(&pk, "count", w[j].count);
                }
            }
            worker_text_words_free(w, nw);
            break;
        }
        case S_OP_SUMMARY:
            rc = worker_text_summary(text, n, (size_t)a.sentences, &s, &len, NULL);
            if (rc == 0)
                farm_pack_strn(&pk, s, len);
            free(s);
            break;
        case S_OP__COUNT: break;
        }
        if (rc != 0)
            farm_task_fail(ctx, "text: %s: worker out of memory", s_op_names[ops[i]]);
    }
    if (rc == 0) {
        msgpack_pack_map(result, (uint32_t)nops);
        farm_pack_raw(result, buf.data, buf.size);
        farm_task_progress(ctx, 100, NULL);
    }
    msgpack_sbuffer_destroy(&buf);
    return rc == 0 ? 0 : -1;
}
