/* tui_input: what each key does.
 *
 * Keys are read in modes, innermost first: an open confirmation takes
 * only y or n; the filter prompt takes text; the help overlay closes on
 * any key; otherwise the key belongs to the screen shown (the three
 * panels, a job's tasks, or one task). Selection in the jobs panel is
 * kept by job id, not row, so a new job arriving at the top does not move
 * the cursor off the job a person is looking at; with no selection made
 * (or after Home) the cursor follows the newest job.
 *
 * Cancel and retry never act at once: they open a confirmation, and only
 * `y` sends the request; its outcome comes back on the status line.
 */
#include "tui.h"

#include "farm_time.h"

#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define S_KEY_ESC 27

void tui_msg(tui_t *t, bool err, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(t->msg, sizeof t->msg, fmt, ap);
    va_end(ap);
    t->msg_err = err;
    t->msg_mono = farm_mono_ms();
}

/* ---- opening and closing views ------------------------------------------ */

void tui_open_job(tui_t *t, int64_t job) {
    tui_jobview_t *v = &t->jv;
    int64_t *afters = realloc(v->afters, sizeof *afters);
    if (!afters) {
        tui_msg(t, true, "out of memory");
        return;
    }
    free(v->tasks);
    memset(v, 0, sizeof *v);
    v->afters = afters;
    v->afters[0] = 0;
    v->npages_known = 1;
    v->job = job;
    t->screen = TUI_S_JOB;
    tui_req_job_page(t);
}

void tui_close_job(tui_t *t) {
    free(t->jv.tasks);
    free(t->jv.afters);
    memset(&t->jv, 0, sizeof t->jv);
    t->screen = TUI_S_MAIN;
}

void tui_open_task(tui_t *t, int64_t task) {
    tui_taskview_t *v = &t->tv;
    tui_lines_clear(&v->status);
    tui_lines_clear(&v->result);
    memset(v, 0, sizeof *v);
    v->task = task;
    v->state = -1;
    t->screen = TUI_S_TASK;
    tui_req_task(t, true);
}

void tui_close_task(tui_t *t) {
    tui_lines_clear(&t->tv.status);
    tui_lines_clear(&t->tv.result);
    memset(&t->tv, 0, sizeof t->tv);
    t->screen = t->jv.job ? TUI_S_JOB : TUI_S_MAIN;
}

static void s_page(tui_t *t, bool next) {
    tui_jobview_t *v = &t->jv;
    if (next) {
        if (!v->next) {
            tui_msg(t, false, "this is the last page");
            return;
        }
        int64_t *a = realloc(v->afters, (v->page + 2) * sizeof *a);
        if (!a)
            return;
        v->afters = a;
        v->afters[++v->page] = v->next;
    } else {
        if (v->page == 0) {
            tui_msg(t, false, "this is the first page");
            return;
        }
        v->page--;
    }
    v->n = 0;
    v->next = 0;
    v->loaded = false;
    v->sel = v->top = 0;
    tui_req_job_page(t);
}

/* ---- moving -------------------------------------------------------------- */

/* New index for cur moved by delta in n rows (INT_MIN: first, INT_MAX: last). */
static int s_clamp(int cur, int delta, int n) {
    if (n <= 0)
        return 0;
    long v = delta == INT_MIN ? 0 : delta == INT_MAX ? n - 1 : (long)cur + delta;
    if (v < 0)
        v = 0;
    if (v >= n)
        v = n - 1;
    return (int)v;
}

static void s_move(tui_t *t, int delta, int page) {
    if (delta == 2 || delta == -2)
        delta = delta > 0 ? page : -page;
    if (t->screen == TUI_S_TASK) {
        t->tv.top = delta == INT_MIN ? 0 : delta == INT_MAX ? INT_MAX / 2 : t->tv.top + delta;
        if (t->tv.top < 0)
            t->tv.top = 0;
        return; /* the view clamps the bottom */
    }
    if (t->screen == TUI_S_JOB) {
        t->jv.sel = s_clamp(t->jv.sel, delta, (int)t->jv.n);
        return;
    }
    switch (t->panel) {
    case TUI_P_JOBS: {
        if (!t->m.njob)
            return;
        size_t *vis = malloc(t->m.njob * sizeof *vis);
        if (!vis)
            return;
        int n = (int)tui_view_jobs_visible(t, vis), cur = 0;
        for (int i = 0; i < n; i++)
            if (t->m.jobs[vis[i]].id == t->sel_job)
                cur = i;
        int nw = s_clamp(cur, delta, n);
        /* Home (or up to the first row) follows the newest job again. */
        t->sel_job = n == 0 || nw == 0 ? 0 : t->m.jobs[vis[nw]].id;
        free(vis);
        break;
    }
    case TUI_P_WORKERS: {
        int n = (int)t->m.nworker, cur = 0;
        for (int i = 0; i < n; i++)
            if (strcmp(t->m.workers[i].id, t->sel_worker) == 0)
                cur = i;
        int nw = s_clamp(cur, delta, n);
        if (n)
            snprintf(t->sel_worker, sizeof t->sel_worker, "%s", t->m.workers[nw].id);
        break;
    }
    default: t->sel_fail = s_clamp(t->sel_fail, delta, (int)t->m.nfail); break;
    }
}

/* The selected job of the jobs panel, or NULL. */
static const tui_job_t *s_sel_job(tui_t *t) {
    if (!t->m.njob)
        return NULL;
    size_t *vis = malloc(t->m.njob * sizeof *vis);
    if (!vis)
        return NULL;
    size_t n = tui_view_jobs_visible(t, vis);
    const tui_job_t *j = NULL;
    for (size_t i = 0; i < n && !j; i++)
        if (t->m.jobs[vis[i]].id == t->sel_job)
            j = &t->m.jobs[vis[i]];
    if (!j && n)
        j = &t->m.jobs[vis[0]];
    free(vis);
    return j;
}

static void s_confirm(tui_t *t, tui_act_t act, bool job, int64_t id, const char *name) {
    t->confirm.open = true;
    t->confirm.act = act;
    t->confirm.job = job;
    t->confirm.id = id;
    snprintf(t->confirm.what, sizeof t->confirm.what, "%s %s %lld%s%.60s%s", act == TUI_ACT_CANCEL ? "cancel" : "retry",
             job ? "job" : "task", (long long)id, name && name[0] ? " (" : "", name ? name : "",
             name && name[0] ? ")" : "");
}

/* c or r on whatever is selected. */
static void s_act(tui_t *t, tui_act_t act, bool whole_job) {
    if (t->screen == TUI_S_TASK) {
        s_confirm(t, act, false, t->tv.task, NULL);
        return;
    }
    if (t->screen == TUI_S_JOB) {
        if (whole_job) {
            const tui_job_t *j = tui_model_job_find(&t->m, t->jv.job);
            s_confirm(t, act, true, t->jv.job, j ? j->name : NULL);
        } else if (t->jv.n) {
            s_confirm(t, act, false, t->jv.tasks[t->jv.sel].id, NULL);
        }
        return;
    }
    if (t->panel == TUI_P_JOBS) {
        const tui_job_t *j = s_sel_job(t);
        if (j)
            s_confirm(t, act, true, j->id, j->name);
        else
            tui_msg(t, true, "no job selected");
    } else if (t->panel == TUI_P_FAILS) {
        if (t->m.nfail)
            s_confirm(t, act, false, t->m.fails[t->sel_fail].task, NULL);
        else
            tui_msg(t, true, "no failure selected");
    } else {
        tui_msg(t, true, "workers cannot be cancelled or retried: select a job (Tab)");
    }
}

static void s_enter(tui_t *t) {
    if (t->screen == TUI_S_JOB) {
        if (t->jv.n)
            tui_open_task(t, t->jv.tasks[t->jv.sel].id);
        return;
    }
    if (t->screen != TUI_S_MAIN)
        return;
    if (t->panel == TUI_P_JOBS) {
        const tui_job_t *j = s_sel_job(t);
        if (j)
            tui_open_job(t, j->id);
    } else if (t->panel == TUI_P_FAILS) {
        if (t->m.nfail)
            tui_open_task(t, t->m.fails[t->sel_fail].task);
    }
}

static void s_back(tui_t *t) {
    if (t->screen == TUI_S_TASK)
        tui_close_task(t);
    else if (t->screen == TUI_S_JOB)
        tui_close_job(t);
    else if (t->filter[0]) {
        t->filter[0] = '\0';
        tui_msg(t, false, "filter cleared");
    }
}

/* ---- keys ---------------------------------------------------------------- */

static void s_filter_key(tui_t *t, int key) {
    size_t len = strlen(t->filter_edit);
    if (key == '\n' || key == '\r' || key == KEY_ENTER) {
        snprintf(t->filter, sizeof t->filter, "%s", t->filter_edit);
        t->filtering = false;
        t->top[TUI_P_JOBS] = 0;
        t->sel_job = 0;
    } else if (key == S_KEY_ESC) {
        t->filtering = false;
    } else if (key == KEY_BACKSPACE || key == 127 || key == 8) {
        if (len) {
            /* Back over one UTF-8 character. */
            do
                len--;
            while (len && ((unsigned char)t->filter_edit[len] & 0xc0) == 0x80);
            t->filter_edit[len] = '\0';
        }
    } else if (key == 21) { /* ^U */
        t->filter_edit[0] = '\0';
    } else if (key >= 0x20 && key < 0x100 && key != 0x7f && len + 1 < sizeof t->filter_edit) {
        t->filter_edit[len] = (char)key;
        t->filter_edit[len + 1] = '\0';
    }
}

void tui_input_key(tui_t *t, int key) {
    if (key == KEY_RESIZE) {
        tui_view_layout(t);
        return;
    }
    if (t->confirm.open) {
        if (key == 'y' || key == 'Y') {
            t->confirm.open = false;
            tui_req_action(t, t->confirm.act, t->confirm.job, t->confirm.id, t->confirm.what);
        } else if (key == 'n' || key == 'N' || key == S_KEY_ESC || key == 'q') {
            t->confirm.open = false;
            tui_msg(t, false, "%s: not done", t->confirm.what);
        }
        return;
    }
    if (t->filtering) {
        s_filter_key(t, key);
        return;
    }
    if (t->help) {
        t->help = false;
        return;
    }
    if (t->lay.small) {
        if (key == 'q' || key == 'Q')
            t->quit = true;
        return;
    }
    int page = t->screen == TUI_S_MAIN ? tui_view_rows(t, t->panel) : tui_view_body_rows(t);
    switch (key) {
    case 'q':
    case 'Q': t->quit = true; break;
    case '?': t->help = true; break;
    case '\t':
    case KEY_RIGHT:
        if (t->screen == TUI_S_MAIN)
            t->panel = (tui_panel_t)((t->panel + 1) % TUI_P_COUNT);
        else if (key == KEY_RIGHT)
            s_enter(t);
        break;
    case KEY_BTAB:
        if (t->screen == TUI_S_MAIN)
            t->panel = (tui_panel_t)((t->panel + TUI_P_COUNT - 1) % TUI_P_COUNT);
        break;
    case KEY_LEFT:
        if (t->screen == TUI_S_MAIN)
            t->panel = (tui_panel_t)((t->panel + TUI_P_COUNT - 1) % TUI_P_COUNT);
        else
            s_back(t);
        break;
    case KEY_UP:
    case 'k': s_move(t, -1, page); break;
    case KEY_DOWN:
    case 'j': s_move(t, 1, page); break;
    case KEY_PPAGE: s_move(t, -2, page); break;
    case KEY_NPAGE:
    case ' ': s_move(t, 2, page); break;
    case KEY_HOME:
    case 'g': s_move(t, INT_MIN, page); break;
    case KEY_END:
    case 'G': s_move(t, INT_MAX, page); break;
    case '\n':
    case '\r':
    case KEY_ENTER: s_enter(t); break;
    case S_KEY_ESC:
    case KEY_BACKSPACE:
    case 127:
    case 8:
    case 'h': s_back(t); break;
    case 'c': s_act(t, TUI_ACT_CANCEL, false); break;
    case 'r': s_act(t, TUI_ACT_RETRY, false); break;
    case 'C':
        if (t->screen == TUI_S_JOB)
            s_act(t, TUI_ACT_CANCEL, true);
        break;
    case 'R':
        if (t->screen == TUI_S_JOB)
            s_act(t, TUI_ACT_RETRY, true);
        break;
    case 'n':
        if (t->screen == TUI_S_JOB)
            s_page(t, true);
        break;
    case 'p':
        if (t->screen == TUI_S_JOB)
            s_page(t, false);
        break;
    case '/':
        if (t->screen == TUI_S_MAIN) {
            t->filtering = true;
            snprintf(t->filter_edit, sizeof t->filter_edit, "%s", t->filter);
        }
        break;
    default: break;
    }
}
