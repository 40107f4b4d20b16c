/* tui_view: drawing, one frame at a time.
 *
 * The screen is a handful of curses windows (header, three panels or one
 * body for the detail views, a status line) made by tui_view_layout for
 * the terminal's size. A frame erases each window and draws it afresh,
 * then wnoutrefresh copies every window into curses' virtual screen and
 * one doupdate sends the terminal only the cells that differ from what it
 * shows: no clear() per frame, so nothing flickers and an idle screen costs
 * a few bytes a frame (the clock). Overlays (help, a confirmation) are
 * short-lived windows drawn last.
 *
 * Colours are used where the terminal has them; otherwise states are told
 * apart by bold, underline and reverse. Text goes through s_put, which
 * counts display columns (UTF-8 where the locale is UTF-8), so a long name
 * is cut at its column and never wraps into the next panel.
 */
#include "tui.h"

#include "farm_time.h"

#include <locale.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <wchar.h>

enum { S_C_GREEN = 1, S_C_YELLOW, S_C_RED, S_C_CYAN, S_C_MAGENTA, S_C_BLUE, S_C_TITLE };

static bool s_colors, s_utf8, s_started;

int tui_view_start(tui_t *t) {
    SCREEN *scr = newterm(NULL, stdout, stdin);
    if (!scr)
        return -1;
    s_started = true;
    set_term(scr);
    if (cbreak() == ERR || noecho() == ERR)
        return -1;
    nonl();
    curs_set(0);
    set_escdelay(25);
    s_colors = t->colors = has_colors() && start_color() == OK;
    if (s_colors) {
        use_default_colors();
        init_pair(S_C_GREEN, COLOR_GREEN, -1);
        init_pair(S_C_YELLOW, COLOR_YELLOW, -1);
        init_pair(S_C_RED, COLOR_RED, -1);
        init_pair(S_C_CYAN, COLOR_CYAN, -1);
        init_pair(S_C_MAGENTA, COLOR_MAGENTA, -1);
        init_pair(S_C_BLUE, COLOR_BLUE, -1);
        init_pair(S_C_TITLE, COLOR_BLACK, COLOR_CYAN);
    }
    s_utf8 = t->utf8;
    /* Keys are read from a window nothing is drawn into, so wgetch never
     * refreshes anything behind the frame's back. */
    t->lay.input = newwin(1, 1, 0, 0);
    if (!t->lay.input)
        return -1;
    keypad(t->lay.input, TRUE);
    nodelay(t->lay.input, TRUE);
    wnoutrefresh(t->lay.input);
    tui_view_layout(t);
    return 0;
}

void tui_view_end(void) {
    if (s_started && !isendwin())
        endwin();
}

static void s_del(WINDOW **w) {
    if (*w)
        delwin(*w);
    *w = NULL;
}

void tui_view_layout(tui_t *t) {
    tui_layout_t *l = &t->lay;
    s_del(&l->head);
    s_del(&l->jobs);
    s_del(&l->workers);
    s_del(&l->fails);
    s_del(&l->body);
    s_del(&l->status);
    int h, w;
    getmaxyx(stdscr, h, w);
    l->lines = h;
    l->cols = w;
    l->small = w < TUI_MIN_COLS || h < TUI_MIN_LINES;
    if (h < 1 || w < 1)
        return;
    if (l->small) {
        l->body = newwin(h, w, 0, 0);
    } else {
        int b = h - 5, y = 4;
        l->head = newwin(4, w, 0, 0);
        l->status = newwin(1, w, h - 1, 0);
        l->body = newwin(b, w, y, 0);
        if (w >= 150) {
            int jh = b * 55 / 100, rest = b - jh;
            l->jobs = newwin(jh, w, y, 0);
            l->workers = newwin(rest, w / 2, y + jh, 0);
            l->fails = newwin(rest, w - w / 2, y + jh, w / 2);
        } else {
            int jh = b * 9 / 20, wh = (b - jh + 1) / 2, fh = b - jh - wh;
            l->jobs = newwin(jh, w, y, 0);
            l->workers = newwin(wh, w, y + jh, 0);
            l->fails = newwin(fh, w, y + jh + wh, 0);
        }
    }
    /* Once after a resize the whole terminal is repainted. */
    clearok(curscr, TRUE);
}

int tui_view_rows(const tui_t *t, tui_panel_t p) {
    WINDOW *w = p == TUI_P_JOBS ? t->lay.jobs : p == TUI_P_WORKERS ? t->lay.workers : t->lay.fails;
    int r = w ? getmaxy(w) - 2 : 1;
    return r < 1 ? 1 : r;
}

int tui_view_body_rows(const tui_t *t) {
    int r = t->lay.body ? getmaxy(t->lay.body) - 3 : 1;
    return r < 1 ? 1 : r;
}

/* ---- text -------------------------------------------------------------- */

/* Write s at (y, x) using at most width columns. Returns columns used. */
static int s_put(WINDOW *w, int y, int x, int width, attr_t a, const char *s) {
    if (!w || width <= 0 || !s)
        return 0;
    wchar_t buf[512];
    int cols = 0;
    size_t k = 0;
    if (s_utf8) {
        mbstate_t st;
        memset(&st, 0, sizeof st);
        size_t len = strlen(s);
        for (size_t i = 0; i < len && k < sizeof buf / sizeof buf[0];) {
            wchar_t wc;
            size_t n = mbrtowc(&wc, s + i, len - i, &st);
            if (n == (size_t)-1 || n == (size_t)-2 || n == 0) {
                memset(&st, 0, sizeof st);
                wc = L'?';
                n = 1;
            }
            int cw = wcwidth(wc);
            if (cw < 0)
                wc = L'?', cw = 1;
            if (cols + cw > width)
                break;
            buf[k++] = wc;
            cols += cw;
            i += n;
        }
        wattr_on(w, a, NULL);
        mvwaddnwstr(w, y, x, buf, (int)k);
        wattr_off(w, a, NULL);
        return cols;
    }
    size_t len = strlen(s);
    cols = len > (size_t)width ? width : (int)len;
    wattr_on(w, a, NULL);
    mvwaddnstr(w, y, x, s, cols);
    wattr_off(w, a, NULL);
    return cols;
}

static int s_putf(WINDOW *w, int y, int x, int width, attr_t a, const char *fmt, ...)
    __attribute__((format(printf, 6, 7)));
static int s_putf(WINDOW *w, int y, int x, int width, attr_t a, const char *fmt, ...) {
    char buf[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    return s_put(w, y, x, width, a, buf);
}

/* Right-aligned in a column of width. */
static void s_putr(WINDOW *w, int y, int x, int width, attr_t a, const char *s) {
    int len = (int)strlen(s); /* right-aligned columns hold ASCII only */
    if (len > width)
        len = width;
    s_put(w, y, x + width - len, width, a, s);
}

static attr_t s_color(int pair, attr_t plain) { return s_colors ? COLOR_PAIR(pair) : plain; }

static attr_t s_state_attr(int st) {
    switch (st) {
    case FARM_TASK_PENDING: return s_color(S_C_CYAN, A_NORMAL);
    case FARM_TASK_RUNNING: return s_color(S_C_YELLOW, A_BOLD) | A_BOLD;
    case FARM_TASK_RETRYING: return s_color(S_C_YELLOW, A_UNDERLINE);
    case FARM_TASK_COMPLETED: return s_color(S_C_GREEN, A_NORMAL);
    case FARM_TASK_FAILED: return s_color(S_C_RED, A_BOLD | A_UNDERLINE) | A_BOLD;
    case FARM_TASK_CANCELLED: return s_color(S_C_MAGENTA, A_DIM);
    default: return A_NORMAL;
    }
}

static const char *s_state_name(int st) { return st < 0 ? "?" : farm_state_name(st); }

/* A title rule across row y of w: "── Title ───". */
static void s_title(WINDOW *w, int y, bool active, const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static void s_title(WINDOW *w, int y, bool active, const char *fmt, ...) {
    char buf[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    int width = getmaxx(w);
    mvwhline(w, y, 0, ACS_HLINE, width);
    attr_t a = active ? (s_colors ? COLOR_PAIR(S_C_TITLE) | A_BOLD : A_REVERSE | A_BOLD) : A_BOLD;
    char t[520];
    snprintf(t, sizeof t, " %s ", buf);
    s_put(w, y, 2, width - 4, a, t);
}

/* A progress bar of width columns for pct. */
static void s_bar(WINDOW *w, int y, int x, int width, int64_t pct, attr_t fill) {
    if (width <= 0)
        return;
    if (pct < 0)
        pct = 0;
    if (pct > 100)
        pct = 100;
    int full = (int)(pct * width / 100);
    for (int i = 0; i < width; i++) {
        bool on = i < full;
        if (s_utf8) {
            wattr_on(w, on ? fill : A_DIM, NULL);
            mvwaddwstr(w, y, x + i, on ? L"\u2588" : L"\u2591");
            wattr_off(w, on ? fill : A_DIM, NULL);
        } else {
            wattr_on(w, on ? fill : A_NORMAL, NULL);
            mvwaddch(w, y, x + i, on ? '#' : '.');
            wattr_off(w, on ? fill : A_NORMAL, NULL);
        }
    }
}

static const char *s_age(char *buf, size_t n, int64_t ms_wall, int64_t now_wall) {
    if (ms_wall <= 0)
        return "-";
    return tui_fmt_dur(buf, n, now_wall - ms_wall < 0 ? 0 : now_wall - ms_wall);
}

/* ---- header ------------------------------------------------------------ */

static bool s_feed_ok(const tui_t *t, int64_t now) {
    return t->m.feed_stats_mono && now - t->m.feed_stats_mono <= TUI_FEED_STALE_MS;
}

static void s_sparkline(const tui_t *t, WINDOW *w, int y, int x, int width) {
    const tui_model_t *m = &t->m;
    int n = (int)m->spark_n < width ? (int)m->spark_n : width;
    if (n <= 0) {
        s_put(w, y, x, width, A_DIM, "(waiting for the feed)");
        return;
    }
    double max = 1;
    for (int i = 0; i < n; i++) {
        size_t k = (m->spark_head + TUI_SPARK_MAX - (size_t)n + (size_t)i) % TUI_SPARK_MAX;
        if (m->spark[k] > max)
            max = m->spark[k];
    }
    static const wchar_t *const bars[] = {L" ", L"\u2581", L"\u2582", L"\u2583", L"\u2584",
                                          L"\u2585", L"\u2586", L"\u2587", L"\u2588"};
    static const char ascii[] = " .:-=+*#@";
    attr_t a = s_color(S_C_GREEN, A_NORMAL);
    wattr_on(w, a, NULL);
    for (int i = 0; i < n; i++) {
        size_t k = (m->spark_head + TUI_SPARK_MAX - (size_t)n + (size_t)i) % TUI_SPARK_MAX;
        double v = m->spark[k];
        int lvl = v <= 0 ? 0 : (int)(v / max * 8 + 0.999);
        if (lvl > 8)
            lvl = 8;
        if (lvl < 1 && v > 0)
            lvl = 1;
        int cx = x + width - n + i; /* newest at the right */
        if (s_utf8)
            mvwaddwstr(w, y, cx, bars[lvl]);
        else
            mvwaddch(w, y, cx, (chtype)(unsigned char)ascii[lvl]);
    }
    wattr_off(w, a, NULL);
}

static void s_draw_head(tui_t *t, int64_t now) {
    WINDOW *w = t->lay.head;
    const tui_model_t *m = &t->m;
    int width = getmaxx(w);
    werase(w);
    char b[64], c[64], d[64];
    /* Line 0: who and the connections, the clock at the right. */
    int x = s_put(w, 0, 0, width, A_BOLD, "farm-tui");
    x += s_put(w, 0, x, width - x, A_NORMAL, "  front door ");
    if (m->door_state > 0)
        x += s_put(w, 0, x, width - x, s_color(S_C_GREEN, A_NORMAL), "ok");
    else if (m->door_state < 0)
        x += s_put(w, 0, x, width - x, s_color(S_C_RED, A_BOLD) | A_BOLD, "no reply");
    else
        x += s_put(w, 0, x, width - x, s_color(S_C_YELLOW, A_NORMAL), "connecting");
    x += s_putf(w, 0, x, width - x, A_DIM, " %s", t->ep.front);
    x += s_put(w, 0, x, width - x, A_NORMAL, "  feed ");
    if (s_feed_ok(t, now))
        x += s_put(w, 0, x, width - x, s_color(S_C_GREEN, A_NORMAL), "ok");
    else if (m->feed_stats_mono || now - m->feed_open_mono > TUI_FEED_STALE_MS)
        x += s_put(w, 0, x, width - x, s_color(S_C_YELLOW, A_BOLD) | A_BOLD, "reconnecting");
    else
        x += s_put(w, 0, x, width - x, s_color(S_C_YELLOW, A_NORMAL), "connecting");
    if (m->uptime_s > 0)
        x += s_putf(w, 0, x, width - x, A_NORMAL, "  up %s", tui_fmt_dur(b, sizeof b, m->uptime_s * 1000));
    time_t secs = time(NULL);
    struct tm tm;
    char clock[16] = "";
    if (localtime_r(&secs, &tm))
        strftime(clock, sizeof clock, "%H:%M:%S", &tm);
    if (width - x > 10)
        s_putr(w, 0, width - 9, 9, A_NORMAL, clock);

    /* Line 1: totals by state. */
    x = s_put(w, 1, 0, width, A_BOLD, "tasks ");
    for (int i = 0; i < FARM_STATE_COUNT; i++) {
        x += s_putf(w, 1, x, width - x, A_NORMAL, " %s ", farm_state_name(i));
        x += s_put(w, 1, x, width - x, s_state_attr(i), tui_fmt_count(b, sizeof b, m->counts[i]));
    }
    x += s_putf(w, 1, x, width - x, A_NORMAL, "   jobs %s", tui_fmt_count(b, sizeof b, m->njobs));

    /* Line 2: throughput now, means, then the sparkline to the right edge. */
    x = s_put(w, 2, 0, width, A_BOLD, "done/s ");
    x += s_putf(w, 2, x, width - x, A_BOLD, "%.0f", m->rate_now);
    x += s_putf(w, 2, x, width - x, A_NORMAL, " now  %.0f 10s  %.0f 60s  ", m->tp10, m->tp60);
    if (width - x > 4)
        s_sparkline(t, w, 2, x, width - x - 1);

    /* Line 3: workers and latency. */
    int alive = 0, draining = 0, lost = 0;
    for (size_t i = 0; i < m->nworker; i++) {
        alive += m->workers[i].state == TUI_W_ALIVE;
        draining += m->workers[i].state == TUI_W_DRAINING;
        lost += m->workers[i].state == TUI_W_LOST;
    }
    x = s_put(w, 3, 0, width, A_BOLD, "workers ");
    x += s_putf(w, 3, x, width - x, A_NORMAL, "%d alive", alive);
    if (draining)
        x += s_putf(w, 3, x, width - x, s_color(S_C_YELLOW, A_BOLD), " %d draining", draining);
    if (lost)
        x += s_putf(w, 3, x, width - x, s_color(S_C_RED, A_BOLD), " %d lost", lost);
    x += s_putf(w, 3, x, width - x, A_NORMAL, " / %s slots / %s busy", tui_fmt_count(b, sizeof b, m->slots),
                tui_fmt_count(c, sizeof c, m->busy));
    x += s_putf(w, 3, x, width - x, A_NORMAL, "   latency p50 %s p99 %s", tui_fmt_dur(b, sizeof b, m->p50),
                tui_fmt_dur(d, sizeof d, m->p99));
    (void)x;
}

/* ---- panels ------------------------------------------------------------ */

/* Keep row sel visible in a list of n rows shown rows at a time. */
static int s_scroll(int *top, int sel, int rows, int n) {
    if (sel < *top)
        *top = sel;
    if (sel >= *top + rows)
        *top = sel - rows + 1;
    if (*top > n - rows)
        *top = n - rows;
    if (*top < 0)
        *top = 0;
    return *top;
}

static bool s_ieq(const char *a, const char *b) { return strcasecmp(a, b) == 0; }

static bool s_job_passes(const tui_t *t, const tui_job_t *j) {
    const char *f = t->filter;
    if (!f[0])
        return true;
    if (s_ieq(f, s_state_name(j->state)))
        return true;
    char id[24];
    snprintf(id, sizeof id, "%lld", (long long)j->id);
    if (strcmp(f, id) == 0)
        return true;
    return strcasestr(j->name, f) != NULL;
}

size_t tui_view_jobs_visible(const tui_t *t, size_t *out) {
    size_t n = 0;
    for (size_t i = 0; i < t->m.njob; i++)
        if (s_job_passes(t, &t->m.jobs[i]))
            out[n++] = i;
    return n;
}

/* Index (in the visible list) of the selected job. */
static int s_job_sel(const tui_t *t, const size_t *vis, size_t n) {
    if (t->sel_job)
        for (size_t i = 0; i < n; i++)
            if (t->m.jobs[vis[i]].id == t->sel_job)
                return (int)i;
    return 0;
}

static void s_draw_jobs(tui_t *t, int64_t now_wall) {
    WINDOW *w = t->lay.jobs;
    werase(w);
    int width = getmaxx(w), rows = tui_view_rows(t, TUI_P_JOBS);
    bool active = t->panel == TUI_P_JOBS;
    size_t *vis = t->m.njob ? malloc(t->m.njob * sizeof *vis) : NULL;
    size_t n = vis ? tui_view_jobs_visible(t, vis) : 0;
    if (t->filter[0])
        s_title(w, 0, active, "Jobs %zu of %zu  filter: %s", n, t->m.njob, t->filter);
    else
        s_title(w, 0, active, "Jobs %zu", t->m.njob);
    bool wide = width >= 100;
    int wid = 7, wst = 9, wdone = wide ? 13 : 11, wrun = wide ? 6 : 0, wfail = 5, wage = 6;
    int fixed = wid + 1 + wst + 1 + 5 + 1 + wdone + 1 + (wrun ? wrun + 1 : 0) + wfail + 1 + wage;
    int wbar = (width - fixed) / 3;
    if (wbar < 10)
        wbar = 10;
    if (wbar > 40)
        wbar = 40;
    int wname = width - fixed - wbar - 2;
    if (wname < 8)
        wname = 8;
    int xid = 0, xname = wid + 1, xst = xname + wname + 1, xbar = xst + wst + 1, xpct = xbar + wbar + 1,
        xdone = xpct + 5 + 1, xrun = xdone + wdone + 1, xfail = xrun + (wrun ? wrun + 1 : 0),
        xage = xfail + wfail + 1;
    attr_t h = A_BOLD;
    s_putr(w, 1, xid, wid, h, "ID");
    s_put(w, 1, xname, wname, h, "NAME");
    s_put(w, 1, xst, wst, h, "STATE");
    s_put(w, 1, xbar, wbar, h, "PROGRESS");
    s_putr(w, 1, xdone, wdone, h, "DONE/TOTAL");
    if (wrun)
        s_putr(w, 1, xrun, wrun, h, "RUN");
    s_putr(w, 1, xfail, wfail, h, "FAIL");
    s_putr(w, 1, xage, wage, h, "AGE");
    if (n == 0) {
        s_put(w, 2, 2, width - 2, A_DIM,
              t->m.njob ? "no job matches the filter (/ to change it)"
                        : t->m.jobs_loaded ? "no jobs yet: submit some with `farm submit`" : "loading jobs ...");
        free(vis);
        return;
    }
    int sel = s_job_sel(t, vis, n);
    int top = s_scroll(&t->top[TUI_P_JOBS], sel, rows, (int)n);
    char b[64], c[64];
    for (int r = 0; r < rows && top + r < (int)n; r++) {
        const tui_job_t *j = &t->m.jobs[vis[top + r]];
        int y = 2 + r;
        bool on = active && top + r == sel;
        if (on)
            mvwhline(w, y, 0, ' ' | A_REVERSE, width);
        attr_t base = on ? A_REVERSE : A_NORMAL;
        snprintf(b, sizeof b, "%lld", (long long)j->id);
        s_putr(w, y, xid, wid, base, b);
        s_put(w, y, xname, wname, base | (j->name[0] ? A_NORMAL : A_DIM), j->name[0] ? j->name : "(no name)");
        s_put(w, y, xst, wst, base | s_state_attr(j->state), s_state_name(j->state));
        s_bar(w, y, xbar, wbar, j->progress, base | s_color(S_C_GREEN, A_BOLD));
        snprintf(b, sizeof b, "%3lld%%", (long long)j->progress);
        s_putr(w, y, xpct, 5, base | A_BOLD, b);
        int64_t done = j->counts[FARM_TASK_COMPLETED] + j->counts[FARM_TASK_FAILED] + j->counts[FARM_TASK_CANCELLED];
        char d1[24], d2[24];
        snprintf(c, sizeof c, "%s/%s", tui_fmt_count(d1, sizeof d1, done), tui_fmt_count(d2, sizeof d2, j->total));
        s_putr(w, y, xdone, wdone, base, c);
        if (wrun)
            s_putr(w, y, xrun, wrun, base,
                   tui_fmt_count(b, sizeof b, j->counts[FARM_TASK_RUNNING] + j->counts[FARM_TASK_RETRYING]));
        s_putr(w, y, xfail, wfail,
               base | (j->counts[FARM_TASK_FAILED] ? s_state_attr(FARM_TASK_FAILED) : A_NORMAL),
               tui_fmt_count(b, sizeof b, j->counts[FARM_TASK_FAILED]));
        s_putr(w, y, xage, wage, base, s_age(b, sizeof b, j->created_ms, now_wall));
    }
    free(vis);
}

static int s_worker_sel(const tui_t *t) {
    for (size_t i = 0; i < t->m.nworker; i++)
        if (strcmp(t->m.workers[i].id, t->sel_worker) == 0)
            return (int)i;
    return 0;
}

static const char *const s_wnames[] = {
#define XX(e, s) s,
    TUI_WSTATE_MAP(XX)
#undef XX
    "?"};

static void s_draw_workers(tui_t *t, int64_t now_wall) {
    WINDOW *w = t->lay.workers;
    werase(w);
    int width = getmaxx(w), rows = tui_view_rows(t, TUI_P_WORKERS);
    bool active = t->panel == TUI_P_WORKERS;
    s_title(w, 0, active, "Workers %zu", t->m.nworker);
    int wslots = 5, wbusy = 5, whb = 9, wdone = 8, wfail = 7, wst = 9;
    int fixed = wslots + wbusy + whb + wdone + wfail + wst + 6;
    int flex = width - fixed - 2;
    int wname = flex / 2, whost = flex - wname;
    int xname = 0, xhost = wname + 1, xslots = xhost + whost + 1, xbusy = xslots + wslots + 1,
        xhb = xbusy + wbusy + 1, xdone = xhb + whb + 1, xfail = xdone + wdone + 1, xst = xfail + wfail + 1;
    attr_t h = A_BOLD;
    s_put(w, 1, xname, wname, h, "NAME");
    s_put(w, 1, xhost, whost, h, "HOST");
    s_putr(w, 1, xslots, wslots, h, "SLOTS");
    s_putr(w, 1, xbusy, wbusy, h, "BUSY");
    s_putr(w, 1, xhb, whb, h, "HEARTBEAT");
    s_putr(w, 1, xdone, wdone, h, "DONE");
    s_putr(w, 1, xfail, wfail, h, "FAILED");
    s_put(w, 1, xst + 1, wst, h, "STATE");
    int n = (int)t->m.nworker;
    if (n == 0) {
        s_put(w, 2, 2, width - 2, A_DIM, "no workers");
        return;
    }
    int sel = s_worker_sel(t);
    int top = s_scroll(&t->top[TUI_P_WORKERS], sel, rows, n);
    char b[64];
    for (int r = 0; r < rows && top + r < n; r++) {
        const tui_worker_t *k = &t->m.workers[top + r];
        int y = 2 + r;
        bool on = active && top + r == sel;
        attr_t base = on ? A_REVERSE : A_NORMAL;
        if (on)
            mvwhline(w, y, 0, ' ' | A_REVERSE, width);
        s_put(w, y, xname, wname, base | A_BOLD, k->id);
        s_put(w, y, xhost, whost, base, k->host);
        s_putr(w, y, xslots, wslots, base, tui_fmt_count(b, sizeof b, k->slots));
        s_putr(w, y, xbusy, wbusy, base, tui_fmt_count(b, sizeof b, k->busy));
        s_putr(w, y, xhb, whb, base, s_age(b, sizeof b, k->last_seen_ms, now_wall));
        s_putr(w, y, xdone, wdone, base, tui_fmt_count(b, sizeof b, k->completed));
        s_putr(w, y, xfail, wfail, base | (k->failed ? s_color(S_C_RED, A_NORMAL) : A_NORMAL),
               tui_fmt_count(b, sizeof b, k->failed));
        attr_t sa = k->state == TUI_W_ALIVE      ? s_color(S_C_GREEN, A_NORMAL)
                    : k->state == TUI_W_DRAINING ? s_color(S_C_YELLOW, A_BOLD)
                                                 : s_color(S_C_RED, A_BOLD | A_UNDERLINE) | A_BOLD;
        s_put(w, y, xst + 1, wst, base | sa, s_wnames[k->state]);
    }
}

static void s_draw_fails(tui_t *t, int64_t now_wall) {
    WINDOW *w = t->lay.fails;
    werase(w);
    int width = getmaxx(w), rows = tui_view_rows(t, TUI_P_FAILS);
    bool active = t->panel == TUI_P_FAILS;
    s_title(w, 0, active, "Latest failures %zu", t->m.nfail);
    int wwhen = 6, wtask = 9, wjob = 6, wworker = 12, wst = 8;
    int xwhen = 0, xtask = wwhen + 1, xjob = xtask + wtask + 1, xworker = xjob + wjob + 1, xst = xworker + wworker + 1,
        xwhy = xst + wst + 1;
    attr_t h = A_BOLD;
    s_putr(w, 1, xwhen, wwhen, h, "AGO");
    s_putr(w, 1, xtask, wtask, h, "TASK");
    s_putr(w, 1, xjob, wjob, h, "JOB");
    s_put(w, 1, xworker, wworker, h, "WORKER");
    s_put(w, 1, xst, wst, h, "STATE");
    s_put(w, 1, xwhy, width - xwhy, h, "REASON");
    int n = (int)t->m.nfail;
    if (n == 0) {
        s_put(w, 2, 2, width - 2, A_DIM, "no failures");
        return;
    }
    if (t->sel_fail >= n)
        t->sel_fail = n - 1;
    int sel = t->sel_fail;
    int top = s_scroll(&t->top[TUI_P_FAILS], sel, rows, n);
    char b[64];
    for (int r = 0; r < rows && top + r < n; r++) {
        const tui_fail_t *f = &t->m.fails[top + r];
        int y = 2 + r;
        bool on = active && top + r == sel;
        attr_t base = on ? A_REVERSE : A_NORMAL;
        if (on)
            mvwhline(w, y, 0, ' ' | A_REVERSE, width);
        s_putr(w, y, xwhen, wwhen, base, s_age(b, sizeof b, f->ms, now_wall));
        snprintf(b, sizeof b, "%lld", (long long)f->task);
        s_putr(w, y, xtask, wtask, base, b);
        snprintf(b, sizeof b, "%lld", (long long)f->job);
        s_putr(w, y, xjob, wjob, base, b);
        s_put(w, y, xworker, wworker, base, f->worker[0] ? f->worker : "-");
        s_put(w, y, xst, wst, base | s_state_attr(f->state), f->state == FARM_TASK_RETRYING ? "retrying" : "failed");
        s_put(w, y, xwhy, width - xwhy, base | (f->has_error ? A_NORMAL : A_DIM), f->has_error ? f->error : "...");
    }
}

/* ---- detail views ------------------------------------------------------ */

static void s_draw_job(tui_t *t) {
    WINDOW *w = t->lay.body;
    werase(w);
    int width = getmaxx(w), rows = tui_view_body_rows(t);
    tui_jobview_t *v = &t->jv;
    const tui_job_t *j = tui_model_job_find(&t->m, v->job);
    int64_t first = v->n ? v->tasks[0].id : 0, last = v->n ? v->tasks[v->n - 1].id : 0;
    s_title(w, 0, true, "Job %lld %s  page %zu%s  tasks %lld-%lld", (long long)v->job, j && j->name[0] ? j->name : "",
            v->page + 1, v->next ? " (n: next)" : "", (long long)first, (long long)last);
    if (j) {
        int x = s_put(w, 1, 1, width - 1, s_state_attr(j->state), s_state_name(j->state));
        int bw = width / 4;
        s_bar(w, 1, x + 2, bw, j->progress, s_color(S_C_GREEN, A_BOLD));
        x += 2 + bw;
        x += s_putf(w, 1, x, width - x, A_BOLD, " %lld%%", (long long)j->progress);
        for (int i = 0; i < FARM_STATE_COUNT; i++)
            x += s_putf(w, 1, x, width - x, A_NORMAL, "  %s %lld", farm_state_name(i), (long long)j->counts[i]);
    }
    int xid = 0, wid = 9, xtype = 10, wtype = 10, xst = 21, wst = 9, xpr = 31, wpr = 4, xatt = 37, watt = 5,
        xwk = 43, wwk = 12, xnote = 56;
    attr_t h = A_BOLD;
    s_putr(w, 2, xid, wid, h, "TASK");
    s_put(w, 2, xtype, wtype, h, "TYPE");
    s_put(w, 2, xst, wst, h, "STATE");
    s_putr(w, 2, xpr, wpr, h, "PROG");
    s_putr(w, 2, xatt, watt, h, "TRIES");
    s_put(w, 2, xwk, wwk, h, "WORKER");
    s_put(w, 2, xnote, width - xnote, h, "ERROR / MESSAGE");
    if (!v->loaded) {
        s_put(w, 3, 2, width - 2, A_DIM, "loading tasks ...");
        return;
    }
    int n = (int)v->n;
    if (n == 0) {
        s_put(w, 3, 2, width - 2, A_DIM, "no tasks on this page");
        return;
    }
    if (v->sel >= n)
        v->sel = n - 1;
    int top = s_scroll(&v->top, v->sel, rows, n);
    char b[64];
    for (int r = 0; r < rows && top + r < n; r++) {
        const tui_task_t *k = &v->tasks[top + r];
        int y = 3 + r;
        bool on = top + r == v->sel;
        attr_t base = on ? A_REVERSE : A_NORMAL;
        if (on)
            mvwhline(w, y, 0, ' ' | A_REVERSE, width);
        snprintf(b, sizeof b, "%lld", (long long)k->id);
        s_putr(w, y, xid, wid, base, b);
        s_put(w, y, xtype, wtype, base, k->type);
        s_put(w, y, xst, wst, base | s_state_attr(k->state), s_state_name(k->state));
        snprintf(b, sizeof b, "%lld%%", (long long)k->progress);
        s_putr(w, y, xpr, wpr, base, b);
        snprintf(b, sizeof b, "%lld/%lld", (long long)k->attempts, (long long)k->max_attempts);
        s_putr(w, y, xatt, watt, base, b);
        s_put(w, y, xwk, wwk, base, k->worker[0] ? k->worker : "-");
        s_put(w, y, xnote, width - xnote, base, k->note);
    }
}

static void s_draw_task(tui_t *t) {
    WINDOW *w = t->lay.body;
    werase(w);
    int width = getmaxx(w), rows = getmaxy(w) - 1;
    tui_taskview_t *v = &t->tv;
    s_title(w, 0, true, "Task %lld  %s", (long long)v->task, v->state >= 0 ? s_state_name(v->state) : "");
    size_t n = v->status.n + (v->result.n ? v->result.n + 1 : 0);
    if (!v->status_loaded) {
        s_put(w, 1, 1, width - 1, A_DIM, "loading ...");
        return;
    }
    if (v->top > (int)n - rows)
        v->top = (int)n - rows;
    if (v->top < 0)
        v->top = 0;
    for (int r = 0; r < rows && (size_t)(v->top + r) < n; r++) {
        size_t i = (size_t)(v->top + r);
        const char *line;
        if (i < v->status.n)
            line = v->status.v[i];
        else if (i == v->status.n)
            line = "";
        else
            line = v->result.v[i - v->status.n - 1];
        attr_t a = A_NORMAL;
        if (strncmp(line, "error:", 6) == 0)
            a = s_color(S_C_RED, A_BOLD) | A_BOLD;
        else if (line[0] && line[0] != ' ' && strchr(line, ':') && strchr(line, ':')[1] == '\0')
            a = A_BOLD; /* section headings end with ':' */
        s_put(w, 1 + r, 1, width - 1, a, line);
    }
}

/* ---- overlays and the status line ---------------------------------------- */

static WINDOW *s_box(tui_t *t, int h, int w) {
    int H = t->lay.lines, W = t->lay.cols;
    if (h > H)
        h = H;
    if (w > W)
        w = W;
    WINDOW *b = newwin(h, w, (H - h) / 2, (W - w) / 2);
    if (!b)
        return NULL;
    werase(b);
    box(b, 0, 0);
    return b;
}

static void s_draw_help(tui_t *t) {
    static const char *const lines[] = {
        "Keys",
        "",
        "Tab / Shift-Tab     next / previous panel",
        "Up Down  j k        move in the list",
        "PgUp PgDn  g G      page / first / last",
        "Enter               open the job (its tasks) or the task",
        "Esc  Backspace  h   back",
        "c                   cancel the selected job or task (asks first)",
        "r                   retry its failed and cancelled tasks (asks first)",
        "C / R               in a job's view: cancel / retry the whole job",
        "n / p               in a job's view: next / previous page of tasks",
        "/                   filter jobs by name, state or id (empty: all)",
        "?                   this help",
        "q                   quit",
        "",
        "Every action goes to the front door; its outcome shows below.",
        "Press any key to close.",
    };
    int n = (int)(sizeof lines / sizeof lines[0]);
    WINDOW *b = s_box(t, n + 2, 74);
    if (!b)
        return;
    for (int i = 0; i < n; i++)
        s_put(b, 1 + i, 2, getmaxx(b) - 4, i == 0 ? A_BOLD : A_NORMAL, lines[i]);
    wnoutrefresh(b);
    delwin(b);
}

static void s_draw_confirm(tui_t *t) {
    WINDOW *b = s_box(t, 5, 64);
    if (!b)
        return;
    int w = getmaxx(b) - 4;
    char q[200];
    snprintf(q, sizeof q, "%s?", t->confirm.what);
    if (q[0] >= 'a' && q[0] <= 'z')
        q[0] = (char)(q[0] - 'a' + 'A');
    s_put(b, 1, 2, w, A_BOLD, q);
    s_put(b, 3, 2, w, A_NORMAL, "y: yes      n or Esc: no");
    wnoutrefresh(b);
    delwin(b);
}

static void s_draw_status(tui_t *t, int64_t now) {
    WINDOW *w = t->lay.status;
    werase(w);
    int width = getmaxx(w);
    if (t->filtering) {
        int x = s_put(w, 0, 0, width, A_BOLD, "filter: ");
        x += s_put(w, 0, x, width - x, A_NORMAL, t->filter_edit);
        x += s_put(w, 0, x, width - x, A_REVERSE, " ");
        s_put(w, 0, x, width - x, A_DIM, "  name, state or id; Enter applies, Esc cancels");
        return;
    }
    if (t->msg[0] && now - t->msg_mono < TUI_MSG_MS) {
        s_put(w, 0, 0, width, t->msg_err ? s_color(S_C_RED, A_BOLD) | A_BOLD : s_color(S_C_GREEN, A_BOLD) | A_BOLD,
              t->msg);
        return;
    }
    const char *hint = t->screen == TUI_S_MAIN ? "Tab panel  j/k move  Enter open  c cancel  r retry  / filter  ? help  q quit"
                       : t->screen == TUI_S_JOB ? "Enter task  c/r task  C/R job  n/p page  Esc back  ? help  q quit"
                                                : "j/k scroll  c cancel  r retry  Esc back  ? help  q quit";
    s_put(w, 0, 0, width, A_DIM, hint);
}

void tui_view_draw(tui_t *t) {
    tui_layout_t *l = &t->lay;
    int64_t now = farm_mono_ms(), wall = farm_now_ms();
    if (l->small) {
        if (!l->body)
            return;
        werase(l->body);
        char msg[128];
        snprintf(msg, sizeof msg, "window too small: %dx%d, farm-tui needs %dx%d", l->cols, l->lines, TUI_MIN_COLS,
                 TUI_MIN_LINES);
        int y = l->lines / 2, len = (int)strlen(msg);
        s_put(l->body, y > 0 ? y - 1 : 0, len < l->cols ? (l->cols - len) / 2 : 0, l->cols, A_BOLD, msg);
        if (l->lines > 2)
            s_put(l->body, y + 1, l->cols > 12 ? (l->cols - 12) / 2 : 0, l->cols, A_DIM, "q to quit");
        wnoutrefresh(l->body);
        doupdate();
        return;
    }
    if (!l->head || !l->status || !l->body || !l->jobs || !l->workers || !l->fails)
        return;
    s_draw_head(t, now);
    wnoutrefresh(l->head);
    if (t->screen == TUI_S_MAIN) {
        s_draw_jobs(t, wall);
        s_draw_workers(t, wall);
        s_draw_fails(t, wall);
        wnoutrefresh(l->jobs);
        wnoutrefresh(l->workers);
        wnoutrefresh(l->fails);
    } else {
        if (t->screen == TUI_S_JOB)
            s_draw_job(t);
        else
            s_draw_task(t);
        wnoutrefresh(l->body);
    }
    s_draw_status(t, now);
    wnoutrefresh(l->status);
    if (t->confirm.open)
        s_draw_confirm(t);
    else if (t->help)
        s_draw_help(t);
    doupdate();
}
