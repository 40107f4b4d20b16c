/* worker_outbox: queues towards the sink (see worker_outbox.h).
 *
 * Three intrusive lists, each message in exactly one: `notes` (start/prog
 * not sent yet), `unsent` (results never sent) and `waiting` (results sent
 * and not yet acknowledged, ordered by the time they are due again, because
 * a result is appended when sent and moved to the tail when sent again).
 * An ack looks through the held results from the oldest; acks mostly come
 * in the order results were made, so the scan is short in practice.
 *
 * A flush packs what it sends into frames of up to S_FRAME_BYTES, messages
 * one after another (the sink reads them so): under load one send carries
 * many results, and the per-message costs of the sockets are paid once.
 */
#include "worker_outbox.h"

#include "farm_log.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#define S_FRAME_BYTES (256 * 1024) /* a frame holds messages up to this size (a larger one goes alone) */

typedef struct s_entry {
    struct s_entry *prev, *next; /* neighbours in its list */
    int64_t task, attempt;       /* the result's key (0, 0 for notes) */
    int64_t due;                 /* waiting: when it is sent again */
    char *data;                  /* the packed message, owned */
    size_t len;                  /* bytes at data */
} s_entry_t;

typedef struct {
    s_entry_t *head, *tail; /* oldest first */
    size_t n;               /* entries */
} s_list_t;

struct worker_outbox {
    worker_outbox_cfg_t cfg; /* see worker_outbox_cfg_t */
    s_list_t notes;          /* notes not sent yet */
    s_list_t unsent;         /* results never sent */
    s_list_t waiting;        /* results sent, waiting for their ack */
    bool stalled;            /* the last send would have blocked */
    int64_t next_tick;       /* resends may run again from this time */
    uint64_t resent;         /* results sent again, ever */
    uint64_t dropped;        /* notes dropped, ever */
    char *frame;             /* scratch for packing a frame */
    size_t frame_cap;        /* bytes allocated at frame */
};

static void s_append(s_list_t *l, s_entry_t *e) {
    e->next = NULL;
    e->prev = l->tail;
    if (l->tail)
        l->tail->next = e;
    else
        l->head = e;
    l->tail = e;
    l->n++;
}

static void s_unlink(s_list_t *l, s_entry_t *e) {
    if (e->prev)
        e->prev->next = e->next;
    else
        l->head = e->next;
    if (e->next)
        e->next->prev = e->prev;
    else
        l->tail = e->prev;
    e->prev = e->next = NULL;
    l->n--;
}

static void s_free(s_entry_t *e) {
    free(e->data);
    free(e);
}

static void s_clear(s_list_t *l) {
    while (l->head) {
        s_entry_t *e = l->head;
        s_unlink(l, e);
        s_free(e);
    }
}

static s_entry_t *s_entry(int64_t task, int64_t attempt, char *data, size_t len) {
    s_entry_t *e = calloc(1, sizeof *e);
    if (!e)
        return NULL;
    e->task = task;
    e->attempt = attempt;
    e->data = data;
    e->len = len;
    return e;
}

worker_outbox_t *worker_outbox_new(const worker_outbox_cfg_t *cfg) {
    worker_outbox_t *ob = calloc(1, sizeof *ob);
    if (ob)
        ob->cfg = *cfg;
    return ob;
}

void worker_outbox_destroy(worker_outbox_t **p) {
    if (!p || !*p)
        return;
    worker_outbox_t *ob = *p;
    s_clear(&ob->notes);
    s_clear(&ob->unsent);
    s_clear(&ob->waiting);
    free(ob->frame);
    free(ob);
    *p = NULL;
}

/* What becomes of the entries of a frame that left. */
typedef enum { S_DONE_FREE, S_DONE_WAIT } s_done_t;

/* Send up to `max` entries from the head of list l (for resends, only those
 * due at now) in frames, then free them or move them to `waiting`, due
 * again after the resend interval. Returns how many left, or -EAGAIN when
 * the socket would block before all did (the outbox is then stalled). */
static long s_send_list(worker_outbox_t *ob, s_list_t *l, size_t max, bool only_due, s_done_t done, int64_t now) {
    size_t sent = 0;
    while (l->head && sent < max && (!only_due || l->head->due <= now)) {
        /* The run of entries that fits one frame (at least one). */
        size_t k = 0, bytes = 0;
        for (s_entry_t *e = l->head; e && sent + k < max && (!only_due || e->due <= now); e = e->next) {
            if (k && bytes + e->len > S_FRAME_BYTES)
                break;
            bytes += e->len;
            k++;
        }
        const char *data = l->head->data;
        if (k > 1) {
            if (bytes > ob->frame_cap) {
                char *p = realloc(ob->frame, bytes);
                if (!p) {
                    k = 1; /* no room to pack: one message per send */
                    bytes = l->head->len;
                } else {
                    ob->frame = p;
                    ob->frame_cap = bytes;
                }
            }
            if (k > 1) {
                size_t off = 0, i = 0;
                for (s_entry_t *e = l->head; i < k; e = e->next, i++) {
                    memcpy(ob->frame + off, e->data, e->len);
                    off += e->len;
                }
                data = ob->frame;
            }
        }
        int rc = ob->cfg.send(ob->cfg.ud, data, bytes);
        if (rc == -EAGAIN) {
            ob->stalled = true;
            return -EAGAIN;
        }
        if (rc < 0) /* dropped; the resend timer tries a result again */
            farm_log(FARM_LOG_WARN, "worker", "event=send-failed to=sink task=%" PRId64 " messages=%zu err=\"%s\"",
                     l->head->task, k, strerror(-rc));
        for (size_t i = 0; i < k; i++) {
            s_entry_t *e = l->head;
            s_unlink(l, e);
            if (done == S_DONE_FREE) {
                s_free(e);
            } else {
                e->due = now + ob->cfg.resend_ms;
                s_append(&ob->waiting, e);
            }
        }
        sent += k;
    }
    return (long)sent;
}

void worker_outbox_flush(worker_outbox_t *ob, int64_t now) {
    if (s_send_list(ob, &ob->notes, SIZE_MAX, false, S_DONE_FREE, now) < 0 ||
        s_send_list(ob, &ob->unsent, SIZE_MAX, false, S_DONE_WAIT, now) < 0)
        return;
    if (now >= ob->next_tick && ob->waiting.head && ob->waiting.head->due <= now) {
        /* The tick starts now, sent or not: a sink that is away must not
         * turn due resends into a busy loop. */
        ob->next_tick = now + ob->cfg.tick_ms;
        long n = s_send_list(ob, &ob->waiting, ob->cfg.resend_burst, true, S_DONE_WAIT, now);
        if (n > 0) {
            ob->resent += (uint64_t)n;
            farm_log(FARM_LOG_DEBUG, "worker", "event=resend results=%ld held=%zu", n, ob->waiting.n);
        }
        if (n < 0)
            return;
    }
    ob->stalled = false;
}

void worker_outbox_result(worker_outbox_t *ob, int64_t task, int64_t attempt, char *data, size_t len, int64_t now) {
    s_entry_t *e = s_entry(task, attempt, data, len);
    if (!e) {
        /* Keep the promise as far as memory allows: send it once now. */
        farm_log(FARM_LOG_ERROR, "worker", "event=result-unqueued task=%" PRId64 " err=\"out of memory\"", task);
        if (ob->cfg.send(ob->cfg.ud, data, len) < 0)
            farm_log(FARM_LOG_ERROR, "worker", "event=result-lost task=%" PRId64, task);
        free(data);
        return;
    }
    (void)now;
    s_append(&ob->unsent, e);
}

void worker_outbox_note(worker_outbox_t *ob, char *data, size_t len, int64_t now) {
    s_entry_t *e = s_entry(0, 0, data, len);
    if (!e) {
        free(data);
        ob->dropped++;
        return;
    }
    if (ob->notes.n >= ob->cfg.notes_max) {
        s_entry_t *old = ob->notes.head;
        s_unlink(&ob->notes, old);
        s_free(old);
        ob->dropped++;
    }
    (void)now;
    s_append(&ob->notes, e);
}

static s_entry_t *s_find(const s_list_t *l, int64_t task, int64_t attempt) {
    for (s_entry_t *e = l->head; e; e = e->next)
        if (e->task == task && e->attempt == attempt)
            return e;
    return NULL;
}

bool worker_outbox_ack(worker_outbox_t *ob, int64_t task, int64_t attempt) {
    s_list_t *l = &ob->waiting;
    s_entry_t *e = s_find(l, task, attempt);
    if (!e) {
        l = &ob->unsent;
        e = s_find(l, task, attempt);
    }
    if (!e)
        return false;
    s_unlink(l, e);
    s_free(e);
    return true;
}

bool worker_outbox_stalled(const worker_outbox_t *ob) {
    return ob->stalled && (ob->notes.n || ob->unsent.n || ob->waiting.n);
}

int64_t worker_outbox_next_due(const worker_outbox_t *ob) {
    if (!ob->waiting.head)
        return 0;
    int64_t due = ob->waiting.head->due;
    return due > ob->next_tick ? due : ob->next_tick;
}

size_t worker_outbox_count(const worker_outbox_t *ob) { return ob->unsent.n + ob->waiting.n; }

size_t worker_outbox_held(const worker_outbox_t *ob, int64_t *ids, size_t max) {
    size_t n = 0;
    for (const s_entry_t *e = ob->unsent.head; e && n < max; e = e->next)
        ids[n++] = e->task;
    for (const s_entry_t *e = ob->waiting.head; e && n < max; e = e->next)
        ids[n++] = e->task;
    return n;
}

uint64_t worker_outbox_resent(const worker_outbox_t *ob) { return ob->resent; }
uint64_t worker_outbox_dropped(const worker_outbox_t *ob) { return ob->dropped; }
