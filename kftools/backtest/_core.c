/* The backtest's inner loop in C: the event queue, the simulated exchange, both accounts and the records.
 *
 * The rules are engine.py's and exchange.py's (the Python twin, which the tests run alike and compare
 * byte for byte); docs/backtest.md states them. Only strategy code stays in Python: the loop calls the
 * strategy's callbacks with the same frame and answer tuples the twin builds, and the context's hot methods
 * (send_order, cancel, modify, position, orders) are methods of this object.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "../journal/cursor.h"

/* numbers of journal/format.py's enums; engine_c.py checks them against the declaration at import */
enum { BUY = 0, SELL = 1, UNKNOWN_SIDE = -1 };
enum { T_LIMIT = 0, T_MARKET = 1, T_IOC = 2, T_FOK = 3, T_POST = 4 };
enum { S_PENDING = -1, S_ACCEPTED = 0, S_PARTIAL = 1, S_FILLED = 2, S_CANCELED = 3, S_REJECTED = 4,
       S_CANCEL_REJECTED = 5, S_EXPIRED = 6, S_MODIFIED = 7, S_MODIFY_REJECTED = 8, N_STATUS = 9 };
enum { R_NONE = 0, R_BAD_QUANTITY = 1, R_BAD_PRICE = 2, R_UNKNOWN_SYMBOL = 3, R_UNKNOWN_ORDER = 4, R_TOO_LATE = 5,
       R_NO_MARKET = 6, R_POST_ONLY = 8, R_NOT_FINITE = 9 };
enum { MAKER = 0, TAKER = 1 };
enum { NO_QUOTE = 1 };
enum { MT_TICK = 1, MT_TRADE = 3, MT_DEPTH = 9 };
enum { ARRIVE = 0, DELIVER = 1, TIMER = 2 };
enum { A_NEW = 0, A_CANCEL = 1, A_MODIFY = 2 };
enum { D_UPDATE = 0, D_FILL = 1 };
enum { M_TOUCH = 0, M_THROUGH = 1, M_QUEUE = 2, M_PROB = 3 };
#define MAXLV 16
#define KEYW 64 /* the widest symbol field held (Kungfu instrument_id: 32) */
#define NCB 64
#define NEVER_SAMPLED (-(((int64_t)1) << 62))

static int is_done(int s) { return s == S_FILLED || s == S_CANCELED || s == S_REJECTED || s == S_EXPIRED; }
static int is_open(int s) { return s == S_PENDING || s == S_ACCEPTED || s == S_PARTIAL || s == S_MODIFIED; }
static int is_price(double x) { return 0.0 < x && x < INFINITY; }

typedef struct { double p, v; } Level;

typedef struct {
    double bid, ask, last, last_size;
    int exists, has_depth, nb, na;
    Level bids[MAXLV], asks[MAXLV];
} Book;

typedef struct {
    int64_t id, sent, arrival, priority;
    int32_t sym, side, type, status, reason, aggressive, has_view, v_status;
    double price, quantity, filled, notional, queue, cum_trade, fee;
    double v_filled, v_avg, v_price, v_qty;
    PyObject *coid; /* str, or NULL for "bt-<id>" */
} Order;

typedef struct { int64_t *a; Py_ssize_t n, cap; } IVec;

typedef struct { double qty, avg, realized, volume, turnover; int seen; } SymAcc;

typedef struct {
    double start_cash, cash, fees;
    SymAcc *s; Py_ssize_t ns;   /* by symbol index */
    IVec order;                 /* symbols in the order of their first fill */
} Account;

typedef struct { int64_t time; int32_t kind, what; int64_t n, ref; double px, qty; } Event;

/* records: the layouts engine_c.py reads with numpy (aligned, checked by size at import) */
typedef struct {
    int64_t time, order_id; int32_t sym, status, reason, side, order_type, pad;
    double price, quantity, filled, remaining, avg;
} Update;
typedef struct {
    int64_t time, fill_id, order_id; int32_t sym, side, liquidity, flags; double price, quantity, fee;
} Fill;
typedef struct {
    int64_t time; double equity, cash, realized, unrealized, fees; int64_t pos_start; int32_t npos, bar;
} Sample;
typedef struct { int32_t sym, pad; double qty; } Pos;
typedef struct { int64_t sent, arrival, order_id; } Req;
typedef struct {
    int64_t order_id, sent, arrival; int32_t sym, side, order_type, status, reason, pad;
    double price, quantity, filled, notional, fee;
} OrderRec;

#define VEC(T) struct { T *a; Py_ssize_t n, cap; }
typedef VEC(Update) UVec;
typedef VEC(Fill) FVec;
typedef VEC(Sample) SVec;
typedef VEC(Pos) PVec;
typedef VEC(Req) RVec;
typedef VEC(Event) EVec;

static int grow(void **a, Py_ssize_t *cap, Py_ssize_t need, size_t item) {
    if (need <= *cap) return 0;
    Py_ssize_t c = *cap ? *cap : 64;
    while (c < need) c *= 2;
    void *p = PyMem_Realloc(*a, (size_t)c * item);
    if (!p) { PyErr_NoMemory(); return -1; }
    *a = p; *cap = c;
    return 0;
}
#define PUSH(v, x) (grow((void **)&(v).a, &(v).cap, (v).n + 1, sizeof(*(v).a)) ? -1 : ((v).a[(v).n++] = (x), 0))

typedef struct {
    PyObject_HEAD
    /* config */
    int model; double prob_n; int64_t latency, rlat; double maker_bps, taker_bps, per_order; int cap;
    int64_t bar_ns; int depth_levels;
    /* symbols: 16-byte keys -> index (open addressing), names, books, per-symbol order lists */
    Py_ssize_t nsym, symcap; PyObject **names; Book *books; IVec *resting, *aggr;
    unsigned char (*keys)[KEYW]; int32_t *key_sym; Py_ssize_t htcap; /* key_sym -1: empty */
    PyObject *by_name; /* str -> int */
    IVec book_order;
    /* orders */
    Order *orders; Py_ssize_t norders, ordcap; PyObject *by_id; /* int -> index, when ids are not 1..n */
    int64_t priority, orders_sent, timers, nviews; /* nviews: orders sent through the context (ctx.orders) */
    /* queue */
    EVec heap; int64_t seq;
    /* records */
    UVec updates; FVec fills; SVec samples; PVec pos; RVec cancels, modifies;
    int64_t no_quote_fills;
    Account ex, st; /* the exchange's account, and the strategy's (from delivered fills) */
    /* clock */
    int64_t time, market_time, first_time, next_bar; int has_market_time, has_first_time;
    int64_t frames_seen, timers_fired, timers_dropped;
    /* python side */
    PyObject *t_update, *t_fill, *t_ticker, *ctx, *on_update, *on_fill, *on_timer, *sink, *on_frame, *timers_list;
    PyObject *cb[NCB]; int market_cb;
    PyObject *status_names[N_STATUS + 1], *s_frame, *s_update, *s_fill, *s_timer, *usage_error;
} Core;

/* ---------------------------------------------------------------------------------------------- symbols */
static uint64_t hash_key(const unsigned char *k) {
    uint64_t h = 0;
    for (int i = 0; i < KEYW; i += 8) {
        uint64_t w;
        memcpy(&w, k + i, 8);
        h = (h ^ w) * 0x9E3779B97F4A7C15ULL;
        h ^= h >> 29;
    }
    return h;
}

static int acc_grow(Account *acc, Py_ssize_t n) {
    if (n <= acc->ns) return 0;
    SymAcc *p = PyMem_Realloc(acc->s, (size_t)n * sizeof(SymAcc));
    if (!p) { PyErr_NoMemory(); return -1; }
    memset(p + acc->ns, 0, (size_t)(n - acc->ns) * sizeof(SymAcc));
    acc->s = p; acc->ns = n;
    return 0;
}

/* a new symbol named ``name`` (a new reference is taken); returns its index */
static int32_t add_symbol(Core *c, PyObject *name) {
    if (c->nsym == c->symcap) {
        Py_ssize_t n = c->symcap ? c->symcap * 2 : 16;
        PyObject **nm = PyMem_Realloc(c->names, n * sizeof(PyObject *));
        if (!nm) { PyErr_NoMemory(); return -1; }
        c->names = nm;
        Book *b = PyMem_Realloc(c->books, n * sizeof(Book));
        if (!b) { PyErr_NoMemory(); return -1; }
        c->books = b;
        IVec *r = PyMem_Realloc(c->resting, n * sizeof(IVec));
        if (!r) { PyErr_NoMemory(); return -1; }
        c->resting = r;
        IVec *g = PyMem_Realloc(c->aggr, n * sizeof(IVec));
        if (!g) { PyErr_NoMemory(); return -1; }
        c->aggr = g;
        c->symcap = n;
    }
    if (acc_grow(&c->ex, c->nsym + 1) || acc_grow(&c->st, c->nsym + 1)) return -1;
    int32_t s = (int32_t)c->nsym;
    PyObject *idx = PyLong_FromLong(s);
    if (!idx || PyDict_SetItem(c->by_name, name, idx) < 0) { Py_XDECREF(idx); return -1; }
    Py_DECREF(idx);
    Py_INCREF(name);
    c->names[s] = name;
    Book *b = &c->books[s];
    memset(b, 0, sizeof(Book));
    b->bid = b->ask = b->last = NAN;
    memset(&c->resting[s], 0, sizeof(IVec));
    memset(&c->aggr[s], 0, sizeof(IVec));
    c->nsym++;
    return s;
}

static int ht_rehash(Core *c) {
    Py_ssize_t n = c->htcap ? c->htcap * 2 : 64;
    unsigned char (*keys)[KEYW] = PyMem_Malloc(n * KEYW);
    int32_t *ks = PyMem_Malloc(n * sizeof(int32_t));
    if (!keys || !ks) { PyMem_Free(keys); PyMem_Free(ks); PyErr_NoMemory(); return -1; }
    for (Py_ssize_t i = 0; i < n; i++) ks[i] = -1;
    for (Py_ssize_t i = 0; i < c->htcap; i++) {
        if (c->key_sym[i] < 0) continue;
        Py_ssize_t h = (Py_ssize_t)(hash_key(c->keys[i]) & (uint64_t)(n - 1));
        while (ks[h] >= 0) h = (h + 1) & (n - 1);
        memcpy(keys[h], c->keys[i], KEYW); ks[h] = c->key_sym[i];
    }
    PyMem_Free(c->keys); PyMem_Free(c->key_sym);
    c->keys = keys; c->key_sym = ks; c->htcap = n;
    return 0;
}

/* the symbol of a frame's ``w`` NUL-padded bytes (as the twin's _Symbols: up to the first NUL, UTF-8, replace) */
static int32_t sym_of_key(Core *c, const unsigned char *raw, Py_ssize_t w) {
    unsigned char k[KEYW] = {0};
    memcpy(k, raw, (size_t)w);  /* held zero-padded: one symbol has one key whatever its field's width */
    Py_ssize_t mask = c->htcap - 1;
    Py_ssize_t h = (Py_ssize_t)(hash_key(k) & (uint64_t)mask);
    while (c->key_sym[h] >= 0) {
        if (memcmp(c->keys[h], k, KEYW) == 0) return c->key_sym[h];
        h = (h + 1) & mask;
    }
    size_t len = 0;
    while (len < (size_t)w && k[len]) len++;
    PyObject *name = PyUnicode_DecodeUTF8((const char *)k, (Py_ssize_t)len, "replace");
    if (!name) return -1;
    int32_t s;
    PyObject *have = PyDict_GetItemWithError(c->by_name, name);
    if (have) s = (int32_t)PyLong_AsLong(have);
    else if (PyErr_Occurred()) { Py_DECREF(name); return -1; }
    else s = add_symbol(c, name);
    Py_DECREF(name);
    if (s < 0) return -1;
    if ((c->nsym + 1) * 2 > c->htcap) {  /* keep the table at most half full */
        if (ht_rehash(c)) return -1;
        mask = c->htcap - 1;
        h = (Py_ssize_t)(hash_key(k) & (uint64_t)mask);
        while (c->key_sym[h] >= 0) h = (h + 1) & mask;
    }
    memcpy(c->keys[h], k, KEYW); c->key_sym[h] = s;
    return s;
}

/* the symbol named ``name``; -1 with no error when unknown */
static int32_t sym_of_name(Core *c, PyObject *name) {
    PyObject *have = PyDict_GetItemWithError(c->by_name, name);
    if (!have) return -1;
    return (int32_t)PyLong_AsLong(have);
}

static Book *book_of(Core *c, int32_t s) {
    Book *b = &c->books[s];
    if (!b->exists) { b->exists = 1; if (PUSH(c->book_order, s)) return NULL; }
    return b;
}

static double book_mark(Book *b) {
    if (b->bid > 0 && b->ask > 0) return (b->bid + b->ask) / 2;
    return b->last;
}

static void book_quote(Book *b, double bid, double ask) {
    if (is_price(bid)) b->bid = bid;
    if (is_price(ask)) b->ask = ask;
}

static int book_print(Book *b, double price, double volume) {
    if (is_price(price) && 0.0 < volume && volume < INFINITY) { b->last = price; b->last_size = volume; return 1; }
    return 0;
}

static double level_get(const Level *lv, int n, double p) {
    for (int i = 0; i < n; i++) if (lv[i].p == p) return lv[i].v;
    return 0.0;
}

/* ---------------------------------------------------------------------------------------------- queue */
static int ev_less(const Event *a, const Event *b) {
    if (a->time != b->time) return a->time < b->time;
    if (a->kind != b->kind) return a->kind < b->kind;
    return a->n < b->n;
}

static int push_event(Core *c, int64_t t, int kind, int what, int64_t ref, double px, double qty) {
    Event e = {t, kind, what, ++c->seq, ref, px, qty};
    if (PUSH(c->heap, e)) return -1;
    Event *h = c->heap.a;
    Py_ssize_t i = c->heap.n - 1;
    while (i > 0) {
        Py_ssize_t p = (i - 1) / 2;
        if (!ev_less(&h[i], &h[p])) break;
        Event tmp = h[i]; h[i] = h[p]; h[p] = tmp; i = p;
    }
    return 0;
}

static Event pop_event(Core *c) {
    Event *h = c->heap.a;
    Event top = h[0];
    Py_ssize_t n = --c->heap.n;
    if (n > 0) {
        h[0] = h[n];
        Py_ssize_t i = 0;
        for (;;) {
            Py_ssize_t l = 2 * i + 1, r = l + 1, m = i;
            if (l < n && ev_less(&h[l], &h[m])) m = l;
            if (r < n && ev_less(&h[r], &h[m])) m = r;
            if (m == i) break;
            Event tmp = h[i]; h[i] = h[m]; h[m] = tmp; i = m;
        }
    }
    return top;
}

/* ---------------------------------------------------------------------------------------------- accounts */
static int acc_apply(Account *acc, int32_t s, int side, double price, double qty, double fee) {
    double d = side == BUY ? 1.0 : -1.0;
    SymAcc *a = &acc->s[s];
    acc->cash -= d * qty * price + fee;
    acc->fees += fee;
    if (!a->seen) { a->seen = 1; if (PUSH(acc->order, s)) return -1; }
    a->volume += qty;
    a->turnover += qty * price;
    double pos = a->qty, avg = a->avg, nw;
    if (pos == 0.0 || (pos > 0) == (d > 0)) {
        nw = pos + d * qty;
        a->avg = (fabs(pos) * avg + qty * price) / fabs(nw);
    } else {
        double closing = qty < fabs(pos) ? qty : fabs(pos);
        a->realized = a->realized + closing * (price - avg) * (pos > 0 ? 1.0 : -1.0);
        nw = pos + d * qty;
        double one = qty > 1.0 ? qty : 1.0;
        if (fabs(nw) < 1e-12 * one) { nw = 0.0; a->avg = 0.0; }
        else if ((nw > 0) != (pos > 0)) a->avg = price;
    }
    a->qty = nw;
    return 0;
}

static double acc_realized(Account *acc) {
    double t = 0.0;  /* Python's sum() over the symbols in first-fill order */
    for (Py_ssize_t i = 0; i < acc->order.n; i++) t += acc->s[acc->order.a[i]].realized;
    return t;
}

/* unrealized P&L and equity at the books' marks (a symbol without a mark: not in unrealized, at its avg in
 * equity), over the symbols held, in first-fill order */
static void acc_value(Core *c, Account *acc, double *unreal, double *equity) {
    double u = 0.0, e = acc->cash;
    for (Py_ssize_t i = 0; i < acc->order.n; i++) {
        int32_t s = (int32_t)acc->order.a[i];
        double q = acc->s[s].qty;
        if (!q) continue;
        double m = c->books[s].exists ? book_mark(&c->books[s]) : NAN;
        if (m == m) u += q * (m - acc->s[s].avg);
        e += q * (m == m ? m : acc->s[s].avg);
    }
    *unreal = u; *equity = e;
}

static int sample(Core *c, int64_t t, int bar) {
    double unreal, equity;
    acc_value(c, &c->ex, &unreal, &equity);
    Sample sm = {t, equity, c->ex.cash, acc_realized(&c->ex), unreal, c->ex.fees, c->pos.n, 0, bar};
    for (Py_ssize_t i = 0; i < c->ex.order.n; i++) {
        int32_t s = (int32_t)c->ex.order.a[i];
        Pos p = {s, 0, c->ex.s[s].qty};
        if (PUSH(c->pos, p)) return -1;
        sm.npos++;
    }
    return PUSH(c->samples, sm);
}

static int do_bar(Core *c, int64_t t) {
    if (c->next_bar != NEVER_SAMPLED) { if (sample(c, c->next_bar, 1)) return -1; }
    else if (!c->has_first_time) { c->first_time = t; c->has_first_time = 1; }
    int64_t r = t % c->bar_ns;
    if (r < 0) r += c->bar_ns;
    c->next_bar = t - r + c->bar_ns;
    return 0;
}

/* ---------------------------------------------------------------------------------------------- exchange */
static int ivec_remove(IVec *v, int64_t x) {
    for (Py_ssize_t i = 0; i < v->n; i++)
        if (v->a[i] == x) { memmove(v->a + i, v->a + i + 1, (size_t)(v->n - i - 1) * sizeof(int64_t)); v->n--; return 1; }
    return 0;
}

static int answer(Core *c, int64_t t, int what, Py_ssize_t ref) {
    return push_event(c, t + c->rlat, DELIVER, what, ref, 0.0, 0.0);
}

static int update(Core *c, int64_t t, Order *o, int status, int reason) {
    double filled = o->filled;
    Update u = {t, o->id, o->sym, status, reason, o->side, o->type, 0, o->price, o->quantity, filled,
                is_done(o->status) ? 0.0 : o->quantity - filled, filled ? o->notional / filled : 0.0};
    if (PUSH(c->updates, u)) return -1;
    return answer(c, t, D_UPDATE, c->updates.n - 1);
}

static int answer_reject(Core *c, int64_t t, int64_t oid, Order *o, int status, int reason) {
    if (o) return update(c, t, o, status, reason);
    Update u = {t, oid, -1, status, reason, 0, 0, 0, 0.0, 0.0, 0.0, 0.0, 0.0};
    if (PUSH(c->updates, u)) return -1;
    return answer(c, t, D_UPDATE, c->updates.n - 1);
}

static void unrest(Core *c, Order *o) {
    int64_t idx = o - c->orders;
    ivec_remove(&c->resting[o->sym], idx);
    ivec_remove(&c->aggr[o->sym], idx);
}

static int close_order(Core *c, int64_t t, Order *o, int status) {
    o->status = status;
    unrest(c, o);
    return update(c, t, o, status, 0);
}

static int reject(Core *c, int64_t t, Order *o, int reason) {
    o->status = S_REJECTED;
    o->reason = reason;
    return update(c, t, o, S_REJECTED, reason);
}

static int fill(Core *c, int64_t t, Order *o, double price, double q, int liq, int flags) {
    double rate = liq == MAKER ? c->maker_bps : c->taker_bps;
    double fee = q * price * rate / 1e4;
    if (o->filled == 0.0) fee += c->per_order;
    o->filled += q;
    o->notional += q * price;
    o->fee += fee;
    if (flags) c->no_quote_fills++;
    Fill f = {t, c->fills.n + 1, o->id, o->sym, o->side, liq, flags, price, q, fee};
    if (PUSH(c->fills, f)) return -1;
    if (acc_apply(&c->ex, o->sym, o->side, price, q, fee)) return -1;
    if (answer(c, t, D_FILL, c->fills.n - 1)) return -1;
    if (o->quantity - o->filled <= 1e-9 * o->quantity) {
        o->filled = o->quantity;
        return close_order(c, t, o, S_FILLED);
    }
    o->status = S_PARTIAL;
    return update(c, t, o, S_PARTIAL, 0);
}

static int take_top(Core *c, int64_t t, Order *o, Book *b, double opp) {
    int flags = 0;
    if (!is_price(opp)) { opp = b->last; flags = NO_QUOTE; }
    double q = o->quantity - o->filled;
    if (c->cap && b->last_size < q) q = b->last_size;
    if (o->type == T_FOK && q < o->quantity - o->filled) return 0;
    if (q > 0) return fill(c, t, o, opp, q, TAKER, flags);
    return 0;
}

static int cmp_up(const void *a, const void *b) {
    double x = ((const Level *)a)->p, y = ((const Level *)b)->p;
    return (x > y) - (x < y);
}
static int cmp_down(const void *a, const void *b) { return cmp_up(b, a); }

static int take_levels(Core *c, int64_t t, Order *o, const Level *levels, int n) {
    int buy = o->side == BUY;
    Level usable[MAXLV];
    int nu = 0;
    double lim = o->type != T_MARKET ? o->price : (buy ? INFINITY : -INFINITY);
    Level sorted[MAXLV];
    memcpy(sorted, levels, (size_t)n * sizeof(Level));
    qsort(sorted, (size_t)n, sizeof(Level), buy ? cmp_up : cmp_down);
    for (int i = 0; i < n; i++)
        if (sorted[i].v > 0 && (buy ? sorted[i].p <= lim : sorted[i].p >= lim)) usable[nu++] = sorted[i];
    double want = o->quantity - o->filled;
    if (o->type == T_FOK) {
        double tot = 0.0;  /* sum() from 0 */
        for (int i = 0; i < nu; i++) tot += usable[i].v;
        if (tot < want * (1 - 1e-12)) return 0;
    }
    for (int i = 0; i < nu; i++) {
        double rem = o->quantity - o->filled;
        double q = usable[i].v < rem ? usable[i].v : rem;
        if (q <= 0) break;
        if (fill(c, t, o, usable[i].p, q, TAKER, 0)) return -1;
        if (!is_open(o->status)) break;
    }
    return 0;
}

static void model_new_order(Core *c, Order *o, Book *b) {
    if (c->model == M_TOUCH || c->model == M_THROUGH) { o->queue = 0.0; return; }
    if (b->has_depth) {
        o->queue = o->side == BUY ? level_get(b->bids, b->nb, o->price) : level_get(b->asks, b->na, o->price);
        return;
    }
    double same = o->side == BUY ? b->bid : b->ask;
    int improves = !(same > 0) || (o->side == BUY ? o->price > same : o->price < same);
    o->queue = improves ? 0.0 : b->last_size;
}

static double model_at_limit(Core *c, Order *o, double volume) {
    switch (c->model) {
    case M_TOUCH: return volume;
    case M_THROUGH: return 0.0;
    case M_PROB: o->cum_trade += volume; /* fall through */
    default:
        o->queue -= volume;
        if (o->queue < 0.0) { double q = -o->queue; o->queue = 0.0; return q; }
        return 0.0;
    }
}

static void model_depth(Core *c, Order *o, double prev_qty, double new_qty) {
    if (c->model == M_QUEUE) { if (new_qty < o->queue) o->queue = new_qty; return; }
    if (c->model != M_PROB) return;
    double chg = prev_qty - new_qty - o->cum_trade;
    o->cum_trade = 0.0;
    if (chg < 0.0) { if (new_qty < o->queue) o->queue = new_qty; return; }
    double front = o->queue, back = prev_qty - front;  /* as hftbacktest: NaN and inf as f64 gives them */
    double fb = pow(back, c->prob_n), ff = pow(front, c->prob_n);
    double prob = fb / (fb + ff);
    if (isinf(prob)) prob = 1.0;
    double est = front - (1.0 - prob) * chg + fmin(back - prob * chg, 0.0);
    o->queue = fmin(est, new_qty);
}

static int rest(Core *c, Order *o, Book *b) {
    o->priority = ++c->priority;
    o->cum_trade = 0.0;
    model_new_order(c, o, b);
    return PUSH(c->resting[o->sym], (int64_t)(o - c->orders));
}

static Order *order_by_id(Core *c, int64_t oid) {
    if (oid >= 1 && oid <= c->norders && c->orders[oid - 1].id == oid) return &c->orders[oid - 1];
    if (!c->by_id) return NULL;
    PyObject *k = PyLong_FromLongLong(oid);
    if (!k) return NULL;
    PyObject *v = PyDict_GetItemWithError(c->by_id, k);
    Py_DECREF(k);
    return v ? &c->orders[PyLong_AsSsize_t(v)] : NULL;
}

static int arrive_order(Core *c, int64_t t, Order *o) {
    Book *b = &c->books[o->sym];
    if (!b->exists) return reject(c, t, o, R_UNKNOWN_SYMBOL);
    if (!isfinite(o->quantity * (o->price ? o->price : 1.0))) return reject(c, t, o, R_NOT_FINITE);
    int buy = o->side == BUY, ot = o->type, marketable;
    double opp = buy ? b->ask : b->bid;
    if (ot == T_MARKET) {
        marketable = 1;
        if (!is_price(opp) && !is_price(b->last)) return reject(c, t, o, R_NO_MARKET);
    } else marketable = is_price(opp) && (buy ? opp <= o->price : opp >= o->price);
    if (marketable && ot == T_POST) return reject(c, t, o, R_POST_ONLY);
    o->status = S_ACCEPTED;
    if (update(c, t, o, S_ACCEPTED, 0)) return -1;
    if (marketable) {
        int nl = buy ? b->na : b->nb;
        if (b->has_depth && nl && is_price(opp)) { if (take_levels(c, t, o, buy ? b->asks : b->bids, nl)) return -1; }
        else if (take_top(c, t, o, b, opp)) return -1;
        if (!is_open(o->status)) return 0;
        if (ot == T_MARKET || ot == T_IOC || ot == T_FOK) {
            if (ot == T_MARKET && c->cap && !b->has_depth) {
                o->aggressive = 1;
                return PUSH(c->aggr[o->sym], (int64_t)(o - c->orders));
            }
            return close_order(c, t, o, S_EXPIRED);
        }
    } else if (ot == T_MARKET || ot == T_IOC || ot == T_FOK) return close_order(c, t, o, S_EXPIRED);
    return rest(c, o, b);
}

static int arrive_cancel(Core *c, int64_t t, int64_t oid) {
    Order *o = order_by_id(c, oid);
    if (!o && PyErr_Occurred()) return -1;
    if (!o || o->status == S_PENDING) return answer_reject(c, t, oid, o, S_CANCEL_REJECTED, R_UNKNOWN_ORDER);
    if (!is_open(o->status)) return answer_reject(c, t, oid, o, S_CANCEL_REJECTED, R_TOO_LATE);
    return close_order(c, t, o, S_CANCELED);
}

static int arrive_modify(Core *c, int64_t t, int64_t oid, double price, double quantity) {
    Order *o = order_by_id(c, oid);
    if (!o && PyErr_Occurred()) return -1;
    int rej = S_MODIFY_REJECTED;
    if (!o || o->status == S_PENDING) return answer_reject(c, t, oid, o, rej, R_UNKNOWN_ORDER);
    if (!is_open(o->status) || o->aggressive) return answer_reject(c, t, oid, o, rej, R_TOO_LATE);
    if (!(quantity > o->filled && quantity < INFINITY)) return answer_reject(c, t, oid, o, rej, R_BAD_QUANTITY);
    if (!is_price(price)) return answer_reject(c, t, oid, o, rej, R_BAD_PRICE);
    Book *b = &c->books[o->sym];
    int buy = o->side == BUY;
    double opp = buy ? b->ask : b->bid;
    int marketable = is_price(opp) && (buy ? opp <= price : opp >= price);
    if (marketable && o->type == T_POST) return answer_reject(c, t, oid, o, rej, R_POST_ONLY);
    int requeue = price != o->price || quantity > o->quantity;
    o->price = price;
    o->quantity = quantity;
    o->status = S_MODIFIED;
    if (update(c, t, o, S_MODIFIED, 0)) return -1;
    if (!requeue) return 0;
    unrest(c, o);
    if (marketable) {
        int nl = buy ? b->na : b->nb;
        if (b->has_depth && nl) { if (take_levels(c, t, o, buy ? b->asks : b->bids, nl)) return -1; }
        else if (take_top(c, t, o, b, opp)) return -1;
        if (!is_open(o->status)) return 0;
    }
    return rest(c, o, b);
}

/* our resting orders of a symbol, best price first (buys high, sells low: the twin's key), then time */
typedef struct { double key; int64_t prio, idx; } Pri;
static int cmp_pri(const void *a, const void *b) {
    const Pri *x = a, *y = b;
    if (x->key != y->key) return x->key < y->key ? -1 : 1;
    return (x->prio > y->prio) - (x->prio < y->prio);
}

static Py_ssize_t by_priority(Core *c, int32_t s, Pri **out, Pri *small, Py_ssize_t nsmall) {
    IVec *r = &c->resting[s];
    Pri *p = r->n <= nsmall ? small : PyMem_Malloc((size_t)r->n * sizeof(Pri));
    if (!p) { PyErr_NoMemory(); return -1; }
    for (Py_ssize_t i = 0; i < r->n; i++) {
        Order *o = &c->orders[r->a[i]];
        p[i].key = o->side == BUY ? -o->price : o->price;
        p[i].prio = o->priority;
        p[i].idx = r->a[i];
    }
    if (r->n > 1) qsort(p, (size_t)r->n, sizeof(Pri), cmp_pri);
    *out = p;
    return r->n;
}

static int crossed(Core *c, int64_t t, int32_t s, Book *b, double *budget) {
    Pri small[16], *p;
    Py_ssize_t n = by_priority(c, s, &p, small, 16);
    if (n < 0) return -1;
    double ask = b->ask, bid = b->bid;
    int rc = 0;
    for (Py_ssize_t i = 0; i < n && !rc; i++) {
        Order *o = &c->orders[p[i].idx];
        if (!is_open(o->status)) continue;
        if ((o->side == BUY && is_price(ask) && ask <= o->price) || (o->side == SELL && is_price(bid) && bid >= o->price)) {
            double rem = o->quantity - o->filled;
            double q = rem < *budget ? rem : *budget;
            if (q > 0) { *budget -= q; rc = fill(c, t, o, o->price, q, MAKER, 0); }
        }
    }
    if (p != small) PyMem_Free(p);
    return rc;
}

static int print_(Core *c, int64_t t, int32_t s, double price, double volume, int aggressor, double budget) {
    if (c->cap) budget = budget < volume ? budget : volume;
    double at_budget = volume < budget ? volume : budget;
    Pri small[16], *p;
    Py_ssize_t n = by_priority(c, s, &p, small, 16);
    if (n < 0) return -1;
    int rc = 0;
    for (Py_ssize_t i = 0; i < n && !rc; i++) {
        Order *o = &c->orders[p[i].idx];
        if (!is_open(o->status)) continue;
        int through, at;
        if (o->side == BUY) {
            if (aggressor == BUY) continue;
            through = price < o->price; at = price == o->price;
        } else {
            if (aggressor == SELL) continue;
            through = price > o->price; at = price == o->price;
        }
        double rem = o->quantity - o->filled;
        if (through) {
            double q = rem < budget ? rem : budget;
            if (q > 0) { budget -= q; rc = fill(c, t, o, o->price, q, MAKER, 0); }
        } else if (at) {
            double q = model_at_limit(c, o, volume);
            if (rem < q) q = rem;
            if (at_budget < q) q = at_budget;
            if (budget < q) q = budget;
            if (q > 0) { at_budget -= q; budget -= q; rc = fill(c, t, o, o->price, q, MAKER, 0); }
        }
    }
    if (p != small) PyMem_Free(p);
    return rc;
}

static int take_aggressive(Core *c, int64_t t, int32_t s, Book *b) {
    IVec *g = &c->aggr[s];
    Py_ssize_t n = g->n;
    int64_t small[16], *snap = n <= 16 ? small : PyMem_Malloc((size_t)n * sizeof(int64_t));
    if (!snap) { PyErr_NoMemory(); return -1; }
    memcpy(snap, g->a, (size_t)n * sizeof(int64_t));
    double budget = b->last_size;
    int rc = 0;
    for (Py_ssize_t i = 0; i < n && !rc; i++) {
        Order *o = &c->orders[snap[i]];
        int buy = o->side == BUY, flags = 0;
        double opp = buy ? b->ask : b->bid;
        if (!is_price(opp)) { opp = b->last; flags = NO_QUOTE; }
        double rem = o->quantity - o->filled;
        double q = rem < budget ? rem : budget;
        if (q > 0 && is_price(opp)) { rc = fill(c, t, o, opp, q, TAKER, flags); budget -= q; }
    }
    if (snap != small) PyMem_Free(snap);
    return rc;
}

static int on_ticker(Core *c, int64_t t, int32_t s, double last, double bid, double ask, double volume) {
    Book *b = book_of(c, s);
    if (!b) return -1;
    double pb = b->bid, pa = b->ask;
    book_quote(b, bid, ask);
    int printed = book_print(b, last, volume);
    double budget = c->cap ? (printed ? volume : 0.0) : INFINITY;
    /* != as in the twin: NaN != NaN, so a side that never had a price counts as changed */
    if (c->resting[s].n && (b->bid != pb || b->ask != pa)) { if (crossed(c, t, s, b, &budget)) return -1; }
    if (printed) {
        if (c->aggr[s].n && take_aggressive(c, t, s, b)) return -1;
        if (c->resting[s].n && print_(c, t, s, last, volume, UNKNOWN_SIDE, budget)) return -1;
    }
    return 0;
}

static int on_trade(Core *c, int64_t t, int32_t s, double price, double volume, int aggressor) {
    Book *b = book_of(c, s);
    if (!b) return -1;
    if (!book_print(b, price, volume)) return 0;
    if (c->aggr[s].n && take_aggressive(c, t, s, b)) return -1;
    if (c->resting[s].n && print_(c, t, s, price, volume, aggressor, INFINITY)) return -1;
    return 0;
}

/* a Depth frame's levels: those with a price and a size, a repeated price keeping its last size (a dict) */
static int read_levels(Level *out, const double *p, const double *v, int n) {
    int k = 0;
    for (int i = 0; i < n; i++) {
        if (!(0 < p[i] && p[i] < INFINITY && 0 < v[i] && v[i] < INFINITY)) continue;
        int j = 0;
        while (j < k && out[j].p != p[i]) j++;
        out[j].p = p[i]; out[j].v = v[i];
        if (j == k) k++;
    }
    return k;
}

static int on_depth(Core *c, int64_t t, int32_t s, const double *bp, const double *bv, const double *ap,
                    const double *av) {
    Book *b = book_of(c, s);
    if (!b) return -1;
    Level nb[MAXLV], na[MAXLV];
    int nbn = read_levels(nb, bp, bv, c->depth_levels), nan_ = read_levels(na, ap, av, c->depth_levels);
    Level pbids[MAXLV], pasks[MAXLV];
    int had = b->has_depth, pnb = b->nb, pna = b->na;
    memcpy(pbids, b->bids, sizeof(pbids)); memcpy(pasks, b->asks, sizeof(pasks));
    memcpy(b->bids, nb, sizeof(nb)); memcpy(b->asks, na, sizeof(na));
    b->nb = nbn; b->na = nan_; b->has_depth = 1;
    double pb = b->bid, pa = b->ask;
    /* max()/min() of the dict's keys: the first of equal ones, NaN-free by construction */
    if (nbn) { double m = nb[0].p; for (int i = 1; i < nbn; i++) if (nb[i].p > m) m = nb[i].p; b->bid = m; }
    else b->bid = NAN;
    if (nan_) { double m = na[0].p; for (int i = 1; i < nan_; i++) if (na[i].p < m) m = na[i].p; b->ask = m; }
    else b->ask = NAN;
    IVec *r = &c->resting[s];
    if (!r->n) return 0;
    for (Py_ssize_t i = 0; i < r->n; i++) {
        Order *o = &c->orders[r->a[i]];
        double before, now;
        if (o->side == BUY) { before = had ? level_get(pbids, pnb, o->price) : 0.0; now = level_get(nb, nbn, o->price); }
        else { before = had ? level_get(pasks, pna, o->price) : 0.0; now = level_get(na, nan_, o->price); }
        if (now != before) model_depth(c, o, before, now);
    }
    if (b->bid != pb || b->ask != pa) { double inf = INFINITY; return crossed(c, t, s, b, &inf); }
    return 0;
}

/* ---------------------------------------------------------------------------------------------- delivery */
static PyObject *f2(double x) { return PyFloat_FromDouble(x); }

static PyObject *new_tuple(PyObject *type, Py_ssize_t n) {
    PyObject *t = ((PyTypeObject *)type)->tp_alloc((PyTypeObject *)type, n);
    return t;
}

static PyObject *sym_name(Core *c, int32_t s) {
    if (s < 0) return PyUnicode_FromStringAndSize("", 0);
    Py_INCREF(c->names[s]);
    return c->names[s];
}

static PyObject *update_tuple(Core *c, const Update *u) {
    PyObject *t = new_tuple(c->t_update, 12);
    if (!t) return NULL;
    PyObject *items[12] = {PyLong_FromLongLong(u->time), PyLong_FromLongLong(u->order_id), sym_name(c, u->sym),
                           PyLong_FromLong(u->status), PyLong_FromLong(u->reason), PyLong_FromLong(u->side),
                           PyLong_FromLong(u->order_type), f2(u->price), f2(u->quantity), f2(u->filled),
                           f2(u->remaining), f2(u->avg)};
    for (int i = 0; i < 12; i++) {
        if (!items[i]) { for (int j = i; j < 12; j++) Py_XDECREF(items[j]); Py_DECREF(t); return NULL; }
        PyTuple_SET_ITEM(t, i, items[i]);
    }
    return t;
}

static PyObject *fill_tuple(Core *c, const Fill *f) {
    PyObject *t = new_tuple(c->t_fill, 10);
    if (!t) return NULL;
    PyObject *items[10] = {PyLong_FromLongLong(f->time), PyLong_FromLongLong(f->fill_id),
                           PyLong_FromLongLong(f->order_id), sym_name(c, f->sym), PyLong_FromLong(f->side),
                           PyLong_FromLong(f->liquidity), f2(f->price), f2(f->quantity), f2(f->fee),
                           PyLong_FromLong(f->flags)};
    for (int i = 0; i < 10; i++) {
        if (!items[i]) { for (int j = i; j < 10; j++) Py_XDECREF(items[j]); Py_DECREF(t); return NULL; }
        PyTuple_SET_ITEM(t, i, items[i]);
    }
    return t;
}

static int call2(PyObject *fn, PyObject *a, PyObject *b) {
    PyObject *args[2] = {a, b};
    PyObject *r = PyObject_Vectorcall(fn, args, 2, NULL);
    if (!r) return -1;
    Py_DECREF(r);
    return 0;
}

static int deliver(Core *c, const Event *e) {
    if (e->what == D_FILL) {
        const Fill *f = &c->fills.a[e->ref];
        PyObject *t = (c->sink != Py_None || c->on_fill != Py_None) ? fill_tuple(c, f) : NULL;
        if ((c->sink != Py_None || c->on_fill != Py_None) && !t) return -1;
        if (c->sink != Py_None && call2(c->sink, c->s_fill, t)) { Py_DECREF(t); return -1; }
        if (acc_apply(&c->st, f->sym, f->side, f->price, f->quantity, f->fee)) { Py_XDECREF(t); return -1; }
        int rc = c->on_fill != Py_None ? call2(c->on_fill, c->ctx, t) : 0;
        Py_XDECREF(t);
        return rc;
    }
    const Update *u = &c->updates.a[e->ref];
    PyObject *t = (c->sink != Py_None || c->on_update != Py_None) ? update_tuple(c, u) : NULL;
    if ((c->sink != Py_None || c->on_update != Py_None) && !t) return -1;
    if (c->sink != Py_None && call2(c->sink, c->s_update, t)) { Py_DECREF(t); return -1; }
    Order *o = order_by_id(c, u->order_id);
    if (!o && PyErr_Occurred()) { Py_XDECREF(t); return -1; }
    if (o && o->has_view && u->status != S_CANCEL_REJECTED && u->status != S_MODIFY_REJECTED) {
        o->v_status = u->status;
        o->v_filled = u->filled;
        o->v_avg = u->avg;
        if (u->status == S_MODIFIED) { o->v_price = u->price; o->v_qty = u->quantity; }
    }
    int rc = c->on_update != Py_None ? call2(c->on_update, c->ctx, t) : 0;
    Py_XDECREF(t);
    return rc;
}

/* every queued event before t (all when !has_t), in order; timers after timers_until dropped; step: return 1
 * after the first that reaches the strategy */
static int run_until(Core *c, int has_t, int64_t t, int has_tu, int64_t tu, int step) {
    while (c->heap.n && (!has_t || c->heap.a[0].time < t)) {
        Event e = pop_event(c);
        if (e.time > c->time) c->time = e.time;
        if (e.kind == ARRIVE) {
            int rc;
            if (e.what == A_NEW) rc = arrive_order(c, e.time, &c->orders[e.ref]);
            else if (e.what == A_CANCEL) rc = arrive_cancel(c, e.time, e.ref);
            else rc = arrive_modify(c, e.time, e.ref, e.px, e.qty);
            if (rc) return -1;
            if (c->fills.n && c->fills.a[c->fills.n - 1].time == e.time && sample(c, e.time, 0)) return -1;
        } else if (e.kind == DELIVER) {
            if (deliver(c, &e)) return -1;
            if (step) return 1;
        } else if (has_tu && e.time > tu) {
            c->timers_dropped++;
        } else {
            c->timers_fired++;
            PyObject *tm = PyList_GET_ITEM(c->timers_list, e.ref);
            if (c->sink != Py_None && call2(c->sink, c->s_timer, tm)) return -1;
            if (c->on_timer != Py_None && call2(c->on_timer, c->ctx, tm)) return -1;
            if (step) return 1;
        }
    }
    return 0;
}

/* ---------------------------------------------------------------------------------------------- the loop */
typedef struct { Py_buffer b; int ok; } Buf;

static int getbuf(PyObject *o, Buf *b, Py_ssize_t item, Py_ssize_t n, const char *what) {
    b->ok = 0;
    if (o == Py_None) return 0;
    if (PyObject_GetBuffer(o, &b->b, PyBUF_C_CONTIGUOUS) < 0) return -1;
    b->ok = 1;
    if (b->b.len < n * item) { PyErr_Format(PyExc_ValueError, "%s: %zd bytes, need %zd", what, b->b.len, n * item); return -1; }
    return 0;
}
static void relbuf(Buf *b) { if (b->ok) PyBuffer_Release(&b->b); b->ok = 0; }

/* A batch's columns, as Core_frames and Core_lockstep take them (the market's roles: market.py). */
typedef struct {
    Buf b[13];
    const uint32_t *mts; const int32_t *roles; const int64_t *gens; const unsigned char *syms;
    const double *last, *bid, *ask, *vol; const int64_t *side; const uint32_t *src, *dst; const int64_t *dpos;
    const double *depth; Py_ssize_t symw, n;
} Cols;

static void cols_release(Cols *k) { for (int q = 0; q < 13; q++) relbuf(&k->b[q]); }

/* o: the 13 column objects (msg_type, role, gen_time, symbol bytes, last, bid, ask, volume, side, source, dest,
 * depth row per frame, depth rows); 0 or -1 with an exception (the buffers released). */
static int cols_get(Cols *k, PyObject *const *o, Py_ssize_t n) {
    static const Py_ssize_t item[13] = {4, 4, 8, 1, 8, 8, 8, 8, 8, 4, 4, 8, 1};
    static const char *what[13] = {"msg_type", "role", "gen_time", "symbol", "last", "bid", "ask", "vol", "side",
                                   "source", "dest", "depth_pos", "depth"};
    for (int q = 0; q < 13; q++) k->b[q].ok = 0;
    for (int q = 0; q < 13; q++)
        if (getbuf(o[q], &k->b[q], item[q], q == 12 ? 0 : n, what[q])) { cols_release(k); return -1; }
    k->n = n;
    k->symw = n ? k->b[3].b.len / n : 1;
    if (k->symw < 1 || k->symw > KEYW || k->symw * n != k->b[3].b.len) {
        PyErr_Format(PyExc_ValueError, "frames: symbols of %zd bytes (at most %d)", k->symw, KEYW);
        cols_release(k);
        return -1;
    }
    k->mts = k->b[0].b.buf; k->roles = k->b[1].b.buf; k->gens = k->b[2].b.buf; k->syms = k->b[3].b.buf;
    k->last = k->b[4].b.buf; k->bid = k->b[5].b.buf; k->ask = k->b[6].b.buf; k->vol = k->b[7].b.buf;
    k->side = k->b[8].b.buf; k->src = k->b[9].b.buf; k->dst = k->b[10].b.buf;
    k->dpos = k->b[11].ok ? k->b[11].b.buf : NULL;
    k->depth = k->b[12].ok ? k->b[12].b.buf : NULL;
    return 0;
}

/* Frames i..j-1 reach the exchange and the callbacks (wall_o: their wall-clock time); 0 or -1. */
static int frames_range(Core *c, const Cols *k_, Py_ssize_t i, Py_ssize_t j, PyObject *wall_o, PyObject *builder) {
    const Cols *K = k_;
    Py_ssize_t L = c->depth_levels, drow = 4 * L, symw = K->symw;
    for (Py_ssize_t k = i; k < j; k++) {
        int64_t t = K->gens[k];
        if (t < c->time) t = c->time;
        if (c->heap.n && c->heap.a[0].time < t && run_until(c, 1, t, 0, 0, 0) < 0) return -1;
        c->time = c->market_time = t;
        c->has_market_time = 1;
        if (t >= c->next_bar && do_bar(c, t)) return -1;
        uint32_t mt = K->mts[k];
        int32_t role = K->roles[k], s = -1;  /* role: what the exchange reads (market.py), mt: the callback */
        if (role == MT_TICK || role == MT_TRADE || role == MT_DEPTH || mt == MT_TICK) {
            s = sym_of_key(c, K->syms + symw * k, symw);
            if (s < 0) return -1;
        }
        if (role == MT_TICK || role == MT_TRADE) {
            if (c->resting[s].n || c->aggr[s].n) {
                Py_ssize_t nf = c->fills.n;
                int rc = role == MT_TICK ? on_ticker(c, t, s, K->last[k], K->bid[k], K->ask[k], K->vol[k])
                                       : on_trade(c, t, s, K->last[k], K->vol[k], (int)K->side[k]);
                if (rc || (c->fills.n != nf && sample(c, t, 0))) return -1;
            } else {
                Book *b = book_of(c, s);
                if (!b) return -1;
                if (role == MT_TICK) book_quote(b, K->bid[k], K->ask[k]);
                book_print(b, K->last[k], K->vol[k]);
            }
        } else if (role == MT_DEPTH) {
            if (!K->depth || !K->dpos) { PyErr_SetString(PyExc_ValueError, "frames: depth rows missing"); return -1; }
            const double *row = K->depth + K->dpos[k] * drow;
            Py_ssize_t nf = c->fills.n;
            if (on_depth(c, t, s, row, row + L, row + 2 * L, row + 3 * L) || (c->fills.n != nf && sample(c, t, 0)))
                return -1;
        }
        PyObject *fn = mt < NCB ? c->cb[mt] : c->on_frame;
        if (fn != Py_None) {
            PyObject *f;
            if (mt == MT_TICK) {
                f = new_tuple(c->t_ticker, 9);
                if (f) {
                    PyObject *it[9] = {sym_name(c, s), f2(K->last[k]), f2(K->bid[k]), f2(K->ask[k]), f2(K->vol[k]),
                                       (Py_INCREF(wall_o), wall_o), PyLong_FromLongLong(K->gens[k]),
                                       PyLong_FromUnsignedLong(K->src[k]), PyLong_FromUnsignedLong(K->dst[k])};
                    for (int q = 0; q < 9; q++) {
                        if (!it[q]) { for (int z = q; z < 9; z++) Py_XDECREF(it[z]); Py_CLEAR(f); break; }
                        PyTuple_SET_ITEM(f, q, it[q]);
                    }
                }
            } else {
                f = PyObject_CallFunction(builder, "nI", k, (unsigned int)mt);
            }
            if (!f) return -1;
            int rc = PyObject_SetAttr(c->ctx, c->s_frame, f);
            if (!rc) rc = call2(fn, c->ctx, f);
            Py_DECREF(f);
            if (rc) return -1;
        } else if (((k - i) & 0xFFFF) == 0xFFFF && PyErr_CheckSignals()) return -1;
    }
    c->frames_seen += j - i;
    return 0;
}

static PyObject *Core_frames(Core *c, PyObject *args) {
    PyObject *o[13], *builder;
    Py_ssize_t i, j, n;
    long long wall;
    if (!PyArg_ParseTuple(args, "OOOOOOOOOOOOOnnnLO", &o[0], &o[1], &o[2], &o[3], &o[4], &o[5], &o[6], &o[7], &o[8],
                          &o[9], &o[10], &o[11], &o[12], &n, &i, &j, &wall, &builder))
        return NULL;
    if (i < 0 || j > n || i > j) { PyErr_SetString(PyExc_ValueError, "frames: bad range"); return NULL; }
    Cols K;
    if (cols_get(&K, o, n)) return NULL;
    PyObject *wall_o = PyLong_FromLongLong(wall);
    int rc = wall_o ? frames_range(c, &K, i, j, wall_o, builder) : -1;
    Py_XDECREF(wall_o);
    cols_release(&K);
    if (rc) return NULL;
    Py_RETURN_NONE;
}

/* ---------------------------------------------------------------------------------------------- lockstep */
/* The out-of-process gateway's hot loop (gateway.py's Gateway._emit for the frames nothing of Python's is needed
 * for): each step reads the strategies' Ack frames, lets through the frames the lockstep rule allows, runs them
 * through the exchange, copies them into the output page and publishes its cursor. It returns to Python for
 * anything else: a request or any frame but an Ack in an order journal (or a sealed page), an event due before the
 * next frame (answers, timers: Python publishes them), an output page without room, too long a wait, the end. */
enum { LS_DONE, LS_REQUEST, LS_SETTLE, LS_ROOM, LS_WAIT };

/* where things are, from format.py's layouts (gateway.py passes them) */
typedef struct {
    Py_ssize_t hdr, len_off, type_off, gen_off, cursor_off, waiters_off, flags_off, ack_value_off;
    uint32_t ack_type, ack_size, sealed;
} LsSpec;

/* The Ack frames committed in one order journal since *pos: 0 when all were read (or none was new), 1 when
 * something else is there (Python's poll reads and validates it; nothing of it is consumed here). */
static int ls_acks(const LsSpec *sp, const unsigned char *mm, Py_ssize_t mlen, int64_t *pos, int64_t *acked,
                   int64_t *nread, int64_t written) {
    if (__atomic_load_n((const uint32_t *)(mm + sp->flags_off), __ATOMIC_ACQUIRE) & sp->sealed) return 1;
    int64_t cur = __atomic_load_n((const uint32_t *)(mm + sp->cursor_off), __ATOMIC_ACQUIRE), off = *pos;
    if (cur <= off) return 0;
    if (cur > mlen) return 1;
    while (off < cur) {
        if (off + sp->hdr > cur) return 1;
        uint32_t len, mt;
        memcpy(&len, mm + off + sp->len_off, 4);
        memcpy(&mt, mm + off + sp->type_off, 4);
        int64_t end = off + sp->hdr + (int64_t)len;
        if (mt != sp->ack_type || len < sp->ack_size || end > cur) return 1;
        uint64_t v;
        memcpy(&v, mm + off + sp->hdr + sp->ack_value_off, 8);
        if (v > (uint64_t)written) return 1;  /* Python names the frame in its error */
        if ((int64_t)v > *acked) *acked = (int64_t)v;
        (*nread)++;
        off = *pos = end;
    }
    return 0;
}

static int core_busy(const Core *c) {
    if (c->heap.n) return 1;
    for (Py_ssize_t s = 0; s < c->nsym; s++) if (c->resting[s].n || c->aggr[s].n) return 1;
    return 0;
}

/* lockstep(cols, n, builder, times, base, data, starts, k, j, out_page, out_pos, out_cap, journal_pages, jpos,
 *          acked, nread, units, written, latency, wall, spec, max_spins)
 *   -> (k, out_pos, frames_out, written, units, reason)
 * times[q - base]: recording time of frame q (never decreasing); data/starts: the batch's raw frames;
 * journal_pages: each order journal's current page mapping; jpos/acked/nread (int64 arrays, updated in place):
 * read offset, frames acknowledged, frames read; units: [(output frames written after it, its first frame's
 * time)] not acknowledged by every strategy yet, oldest first. */
static PyObject *Core_lockstep(Core *c, PyObject *args) {
    PyObject *cols_o, *builder, *times_o, *data_o, *starts_o, *page_o, *jpages_o, *jpos_o, *acked_o, *nread_o,
        *units_o, *wall_f, *spec_o;
    Py_ssize_t n, base, k, j, pos, cap, max_spins;
    long long written, latency;
    if (!PyArg_ParseTuple(args, "O!nOOnOOnnOnnO!OOOO!LLOO!n", &PyTuple_Type, &cols_o, &n, &builder, &times_o, &base,
                          &data_o, &starts_o, &k, &j, &page_o, &pos, &cap, &PyTuple_Type, &jpages_o, &jpos_o,
                          &acked_o, &nread_o, &PyList_Type, &units_o, &written, &latency, &wall_f, &PyTuple_Type,
                          &spec_o, &max_spins))
        return NULL;
    LsSpec sp;
    if (!PyArg_ParseTuple(spec_o, "nnnnnnnnIII", &sp.hdr, &sp.len_off, &sp.type_off, &sp.gen_off, &sp.cursor_off,
                          &sp.waiters_off, &sp.flags_off, &sp.ack_value_off, &sp.ack_type, &sp.ack_size, &sp.sealed))
        return NULL;
    if (PyTuple_GET_SIZE(cols_o) != 13) { PyErr_SetString(PyExc_ValueError, "lockstep: 13 columns"); return NULL; }
    Py_ssize_t nj = PyTuple_GET_SIZE(jpages_o);
    if (k < base || j > n || k > j || nj < 1 || nj > 64) {
        PyErr_SetString(PyExc_ValueError, "lockstep: bad range");
        return NULL;
    }
    Cols K;
    if (cols_get(&K, &PyTuple_GET_ITEM(cols_o, 0), n)) return NULL;
    Buf bt, bd, bs, bp, bjp, bak, bnr, bj[64];
    Buf *mine[] = {&bt, &bd, &bs, &bp, &bjp, &bak, &bnr};
    for (int q = 0; q < 7; q++) mine[q]->ok = 0;
    for (Py_ssize_t q = 0; q < nj; q++) bj[q].ok = 0;
    PyObject *ret = NULL, *units = NULL;
    int64_t *ucount = NULL, *utime = NULL;
    if (getbuf(times_o, &bt, 8, j - base, "times") || getbuf(data_o, &bd, 1, 0, "data") ||
        getbuf(starts_o, &bs, 8, j + 1, "starts") || getbuf(jpos_o, &bjp, 8, nj, "jpos") ||
        getbuf(acked_o, &bak, 8, nj, "acked") || getbuf(nread_o, &bnr, 8, nj, "nread"))
        goto done;
    if (PyObject_GetBuffer(page_o, &bp.b, PyBUF_WRITABLE) < 0) goto done;
    bp.ok = 1;
    if (cap > bp.b.len || pos < 0 || pos > cap || sp.cursor_off + 4 > bp.b.len || sp.waiters_off + 4 > bp.b.len) {
        PyErr_SetString(PyExc_ValueError, "lockstep: bad output page");
        goto done;
    }
    for (Py_ssize_t q = 0; q < nj; q++) {
        if (PyObject_GetBuffer(PyTuple_GET_ITEM(jpages_o, q), &bj[q].b, PyBUF_SIMPLE) < 0) goto done;
        bj[q].ok = 1;
        if (sp.cursor_off + 4 > bj[q].b.len || sp.flags_off + 4 > bj[q].b.len) {
            PyErr_SetString(PyExc_ValueError, "lockstep: bad journal page");
            goto done;
        }
    }
    {
        const int64_t *times = bt.b.buf, *starts = bs.b.buf;
        const unsigned char *data = bd.b.buf;
        unsigned char *out = bp.b.buf;
        int64_t *jpos = bjp.b.buf, *acked = bak.b.buf, *nread = bnr.b.buf;
        if (starts[j] > bd.b.len || starts[k] < 0) { PyErr_SetString(PyExc_ValueError, "lockstep: bad starts"); goto done; }
        Py_ssize_t nu0 = PyList_GET_SIZE(units_o), ucap = nu0 + (j - k) + 1, uh = 0, ut = 0;
        ucount = PyMem_Malloc(ucap * sizeof(int64_t));
        utime = PyMem_Malloc(ucap * sizeof(int64_t));
        if (!ucount || !utime) { PyErr_NoMemory(); goto done; }
        for (Py_ssize_t q = 0; q < nu0; q++) {
            if (!PyArg_ParseTuple(PyList_GET_ITEM(units_o, q), "LL", (long long *)&ucount[ut], (long long *)&utime[ut]))
                goto done;
            ut++;
        }
        int reason = LS_DONE;
        Py_ssize_t spins = 0, frames_out = 0;
        while (k < j) {
            int64_t least = INT64_MAX;
            for (Py_ssize_t q = 0; q < nj; q++) {
                if (ls_acks(&sp, bj[q].b.buf, bj[q].b.len, &jpos[q], &acked[q], &nread[q], written)) {
                    reason = LS_REQUEST;
                    break;
                }
                if (acked[q] < least) least = acked[q];
            }
            if (reason != LS_DONE) break;
            while (uh < ut && ucount[uh] <= least) uh++;
            int64_t t = times[k - base];
            Py_ssize_t r;
            if (uh < ut) {  /* before the oldest unacknowledged frame's time plus the latency */
                int64_t horizon = utime[uh] + latency;
                for (r = k; r < j && times[r - base] < horizon; r++) {}
            } else {  /* the next frame, and those a request sent at it cannot reach */
                for (r = k + 1; r < j && times[r - base] < t + latency; r++) {}
            }
            if (r == k) {
                if (++spins > max_spins) { reason = LS_WAIT; break; }
                continue;
            }
            spins = 0;
            if (core_busy(c)) {  /* one frame at a time, after what is due before it (Python settles that) */
                if (c->heap.n && c->heap.a[0].time < t) { reason = LS_SETTLE; break; }
                r = k + 1;
            }
            int64_t a = starts[k], b = starts[r];
            if (b - a > cap - pos) { reason = LS_ROOM; break; }
            PyObject *wall_o = PyObject_CallNoArgs(wall_f);
            long long wall = wall_o ? PyLong_AsLongLong(wall_o) : -1;
            if (!wall_o || (wall == -1 && PyErr_Occurred()) || frames_range(c, &K, k, r, wall_o, builder)) {
                Py_XDECREF(wall_o);
                goto done;
            }
            Py_DECREF(wall_o);
            memcpy(out + pos, data + a, (size_t)(b - a));
            int64_t w = wall;
            for (Py_ssize_t q = k; q < r; q++) memcpy(out + pos + (starts[q] - a) + sp.gen_off, &w, 8);
            pos += b - a;
            kf_publish_cursor(out, sp.cursor_off, sp.waiters_off, (uint32_t)pos);
            written += r - k;
            frames_out += r - k;
            ucount[ut] = written;
            utime[ut] = t;
            ut++;
            k = r;
        }
        units = PyList_New(ut - uh);
        if (!units) goto done;
        for (Py_ssize_t q = uh; q < ut; q++) {
            PyObject *u = Py_BuildValue("(LL)", (long long)ucount[q], (long long)utime[q]);
            if (!u) goto done;
            PyList_SET_ITEM(units, q - uh, u);
        }
        ret = Py_BuildValue("(nnnLOi)", k, pos, frames_out, written, units, reason);
    }
done:
    Py_XDECREF(units);
    PyMem_Free(ucount);
    PyMem_Free(utime);
    cols_release(&K);
    for (int q = 0; q < 7; q++) relbuf(mine[q]);
    for (Py_ssize_t q = 0; q < nj; q++) relbuf(&bj[q]);
    return ret;
}

/* ---------------------------------------------------------------------------------------------- requests */
static Order *new_order(Core *c, int64_t oid, int32_t s, int side, int type, double price, double qty, int64_t sent,
                        int64_t arrival, PyObject *coid, int keep_empty) {
    if (grow((void **)&c->orders, &c->ordcap, c->norders + 1, sizeof(Order))) return NULL;
    Py_ssize_t idx = c->norders;
    if (oid != idx + 1 || c->by_id) {  /* ids not 1..n (a gateway's): look them up in a dict from now on */
        if (!c->by_id) {
            c->by_id = PyDict_New();
            if (!c->by_id) return NULL;
            for (Py_ssize_t k = 0; k < idx; k++) {
                PyObject *kk = PyLong_FromLongLong(c->orders[k].id), *vv = PyLong_FromSsize_t(k);
                int rc = kk && vv ? PyDict_SetItem(c->by_id, kk, vv) : -1;
                Py_XDECREF(kk); Py_XDECREF(vv);
                if (rc) return NULL;
            }
        }
        PyObject *kk = PyLong_FromLongLong(oid), *vv = PyLong_FromSsize_t(idx);
        int rc = kk && vv ? PyDict_SetItem(c->by_id, kk, vv) : -1;
        Py_XDECREF(kk); Py_XDECREF(vv);
        if (rc) return NULL;
    }
    Order *o = &c->orders[idx];
    memset(o, 0, sizeof(Order));
    o->id = oid; o->sym = s; o->side = side; o->type = type; o->price = price; o->quantity = qty;
    o->status = S_PENDING; o->sent = sent; o->arrival = arrival;
    o->v_status = S_PENDING; o->v_price = price; o->v_qty = qty;
    /* the context's orders without one get bt-<id>; a gateway's keep what their journal said, '' too */
    if (coid && PyUnicode_Check(coid) && (keep_empty || PyUnicode_GET_LENGTH(coid))) { Py_INCREF(coid); o->coid = coid; }
    c->norders++;
    if (push_event(c, arrival, ARRIVE, A_NEW, idx, 0.0, 0.0)) return NULL;
    return o;
}

static int32_t sym_for_order(Core *c, PyObject *symbol) {
    int32_t s = sym_of_name(c, symbol);
    if (s >= 0 || PyErr_Occurred()) return s;
    return add_symbol(c, symbol);  /* known to no frame: no book, so the order is rejected on arrival */
}

/* submit(order_id, symbol, side, order_type, price, quantity, sent, arrival, client_order_id) */
static PyObject *Core_submit(Core *c, PyObject *args) {
    long long oid, sent, arrival;
    PyObject *symbol, *coid;
    int side, type;
    double price, qty;
    if (!PyArg_ParseTuple(args, "LUiiddLLO", &oid, &symbol, &side, &type, &price, &qty, &sent, &arrival, &coid))
        return NULL;
    int32_t s = sym_for_order(c, symbol);
    if (s < 0) return NULL;
    if (!new_order(c, oid, s, side, type, price, qty, sent, arrival, coid, 1)) return NULL;
    Py_RETURN_NONE;
}

static int req(RVec *v, int64_t sent, int64_t arrival, int64_t oid) {
    Req r = {sent, arrival, oid};
    return PUSH(*v, r);
}

static PyObject *Core_request_cancel(Core *c, PyObject *args) {
    long long oid, sent;
    if (!PyArg_ParseTuple(args, "LL", &oid, &sent)) return NULL;
    int64_t arrival = sent + c->latency;
    if (req(&c->cancels, sent, arrival, oid) || push_event(c, arrival, ARRIVE, A_CANCEL, oid, 0.0, 0.0)) return NULL;
    Py_RETURN_NONE;
}

static PyObject *Core_request_modify(Core *c, PyObject *args) {
    long long oid, sent;
    double price, qty;
    if (!PyArg_ParseTuple(args, "LddL", &oid, &price, &qty, &sent)) return NULL;
    int64_t arrival = sent + c->latency;
    if (req(&c->modifies, sent, arrival, oid) || push_event(c, arrival, ARRIVE, A_MODIFY, oid, price, qty)) return NULL;
    Py_RETURN_NONE;
}

static PyObject *Core_schedule_timer(Core *c, PyObject *args) {
    long long due;
    PyObject *timer;
    if (!PyArg_ParseTuple(args, "LO", &due, &timer)) return NULL;
    if (PyList_Append(c->timers_list, timer) < 0) return NULL;
    if (push_event(c, due, TIMER, 0, PyList_GET_SIZE(c->timers_list) - 1, 0.0, 0.0)) return NULL;
    Py_RETURN_NONE;
}

/* the context's checks (engine.py _check_order): '' when the order is fine */
static int usage(Core *c, const char *fmt, PyObject *x) {
    PyObject *r = x ? PyObject_Repr(x) : NULL;
    if (x && !r) return -1;
    PyErr_Format(c->usage_error, fmt, r);
    Py_XDECREF(r);
    return -1;
}

static int is_number(PyObject *x) { return (PyFloat_Check(x) || PyLong_Check(x)) && !PyBool_Check(x); }

static PyObject *Core_send_order(Core *c, PyObject *args, PyObject *kw) {
    static char *kwl[] = {"symbol", "side", "price", "quantity", "order_type", "client_order_id", NULL};
    PyObject *symbol, *o_side, *o_price = NULL, *o_qty = NULL, *o_type = NULL, *coid = NULL;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "OO|OO$OO", kwl, &symbol, &o_side, &o_price, &o_qty, &o_type, &coid))
        return NULL;
    PyObject *zero = PyFloat_FromDouble(0.0);
    if (!zero) return NULL;
    if (!o_price) o_price = zero;
    if (!o_qty) o_qty = zero;
    int side = -1, type = -1;
    for (int v = 0; v < 2 && side < 0; v++) {
        PyObject *num = PyLong_FromLong(v);
        int eq = num ? PyObject_RichCompareBool(o_side, num, Py_EQ) : -1;
        Py_XDECREF(num);
        if (eq < 0) { Py_DECREF(zero); return NULL; }
        if (eq) side = v;
    }
    PyObject *ret = NULL;
    if (side < 0) { usage(c, "send_order: side must be Side.BUY or Side.SELL, not %U", o_side); goto out; }
    if (!o_type) type = T_LIMIT;
    else {
        for (int v = 0; v <= T_POST && type < 0; v++) {
            PyObject *num = PyLong_FromLong(v);
            int eq = num ? PyObject_RichCompareBool(o_type, num, Py_EQ) : -1;
            Py_XDECREF(num);
            if (eq < 0) goto out;
            if (eq) type = v;
        }
        if (type < 0) {
            usage(c, "send_order: order_type must be an OrderType (LIMIT, MARKET, LIMIT_IOC, LIMIT_FOK, POST_ONLY), "
                     "not %U", o_type);
            goto out;
        }
    }
    double qty = is_number(o_qty) ? PyFloat_AsDouble(o_qty) : NAN;
    if (qty == -1.0 && PyErr_Occurred()) goto out;
    if (!(0 < qty && qty < INFINITY)) { usage(c, "send_order: quantity must be a positive number, not %U", o_qty); goto out; }
    double price = is_number(o_price) ? PyFloat_AsDouble(o_price) : NAN;
    if (price == -1.0 && PyErr_Occurred()) goto out;
    if (type != T_MARKET && !(0 < price && price < INFINITY)) {
        usage(c, "send_order: a limit order needs a positive price, not %U", o_price);
        goto out;
    }
    int32_t s = PyUnicode_Check(symbol) ? sym_of_name(c, symbol) : -1;
    if (s < 0 && PyErr_Occurred()) goto out;
    if (s < 0 || !c->books[s].exists) {
        usage(c, "send_order: unknown symbol %U (no market data for it in the recording so far)", symbol);
        goto out;
    }
    if (type == T_MARKET) price = 0.0;
    int64_t oid = ++c->orders_sent, t = c->time;
    Order *o = new_order(c, oid, s, side, type, price, qty, t, t + c->latency, coid, 0);
    if (!o) goto out;
    o->has_view = 1;
    c->nviews++;
    ret = PyLong_FromLongLong(oid);
out:
    Py_DECREF(zero);
    return ret;
}

static Order *view_order(Core *c, PyObject *o_oid, const char *what) {
    Order *o = NULL;
    if (PyLong_Check(o_oid) && !PyBool_Check(o_oid)) {
        long long oid = PyLong_AsLongLong(o_oid);
        if (oid == -1 && PyErr_Occurred()) PyErr_Clear();
        else { o = order_by_id(c, oid); if (!o && PyErr_Occurred()) return NULL; }
    }
    if (o && o->has_view) return o;
    PyObject *r = PyObject_Repr(o_oid);
    if (r) {
        PyErr_Format(c->usage_error, "%s: unknown order id %U (this strategy sent orders 1..%lld)", what, r,
                     (long long)c->orders_sent);
        Py_DECREF(r);
    }
    return NULL;
}

static PyObject *Core_cancel(Core *c, PyObject *o_oid) {
    Order *o = view_order(c, o_oid, "cancel");
    if (!o) return NULL;
    int64_t arrival = c->time + c->latency;
    if (req(&c->cancels, c->time, arrival, o->id) || push_event(c, arrival, ARRIVE, A_CANCEL, o->id, 0.0, 0.0))
        return NULL;
    Py_RETURN_NONE;
}

static PyObject *Core_modify(Core *c, PyObject *args, PyObject *kw) {
    static char *kwl[] = {"order_id", "price", "quantity", NULL};
    PyObject *o_oid, *o_price = Py_None, *o_qty = Py_None;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "O|OO", kwl, &o_oid, &o_price, &o_qty)) return NULL;
    Order *o = view_order(c, o_oid, "modify");
    if (!o) return NULL;
    double price = o_price == Py_None ? o->v_price : (is_number(o_price) ? PyFloat_AsDouble(o_price) : NAN);
    double qty = o_qty == Py_None ? o->v_qty : (is_number(o_qty) ? PyFloat_AsDouble(o_qty) : NAN);
    if (PyErr_Occurred()) return NULL;
    if (!(0 < qty && qty < INFINITY)) {
        if (o_qty == Py_None) { PyObject *q = PyFloat_FromDouble(qty); usage(c, "modify: quantity must be a positive number, not %U", q); Py_XDECREF(q); }
        else usage(c, "modify: quantity must be a positive number, not %U", o_qty);
        return NULL;
    }
    if (!(0 < price && price < INFINITY)) {
        if (o_price == Py_None) { PyObject *q = PyFloat_FromDouble(price); usage(c, "modify: price must be a positive number, not %U", q); Py_XDECREF(q); }
        else usage(c, "modify: price must be a positive number, not %U", o_price);
        return NULL;
    }
    int64_t arrival = c->time + c->latency;
    if (req(&c->modifies, c->time, arrival, o->id) || push_event(c, arrival, ARRIVE, A_MODIFY, o->id, price, qty))
        return NULL;
    Py_RETURN_NONE;
}

static PyObject *Core_position(Core *c, PyObject *symbol) {
    int32_t s = PyUnicode_Check(symbol) ? sym_of_name(c, symbol) : -1;
    if (s < 0 && PyErr_Occurred()) return NULL;
    return PyFloat_FromDouble(s < 0 ? 0.0 : c->st.s[s].qty);
}

static PyObject *Core_avg_price(Core *c, PyObject *symbol) {
    int32_t s = PyUnicode_Check(symbol) ? sym_of_name(c, symbol) : -1;
    if (s < 0 && PyErr_Occurred()) return NULL;
    return PyFloat_FromDouble(s < 0 || !c->st.s[s].qty ? 0.0 : c->st.s[s].avg);
}

/* ---------------------------------------------------------------------------------------------- order views */
typedef struct { PyObject_HEAD Core *core; Py_ssize_t idx; } View;
static PyTypeObject ViewType;

static PyObject *make_view(Core *c, Py_ssize_t idx) {
    View *v = PyObject_New(View, &ViewType);
    if (!v) return NULL;
    Py_INCREF(c);
    v->core = c; v->idx = idx;
    return (PyObject *)v;
}
static void View_dealloc(View *v) { Py_DECREF(v->core); PyObject_Free(v); }
#define VO(v) (&(v)->core->orders[(v)->idx])
static PyObject *V_order_id(View *v, void *x) { return PyLong_FromLongLong(VO(v)->id); }
static PyObject *V_symbol(View *v, void *x) { return sym_name(v->core, VO(v)->sym); }
static PyObject *V_side(View *v, void *x) { return PyLong_FromLong(VO(v)->side); }
static PyObject *V_order_type(View *v, void *x) { return PyLong_FromLong(VO(v)->type); }
static PyObject *V_price(View *v, void *x) { return PyFloat_FromDouble(VO(v)->v_price); }
static PyObject *V_quantity(View *v, void *x) { return PyFloat_FromDouble(VO(v)->v_qty); }
static PyObject *V_filled(View *v, void *x) { return PyFloat_FromDouble(VO(v)->v_filled); }
static PyObject *V_avg(View *v, void *x) { return PyFloat_FromDouble(VO(v)->v_avg); }
static PyObject *V_status(View *v, void *x) {
    PyObject *s = v->core->status_names[VO(v)->v_status + 1];
    Py_INCREF(s);
    return s;
}
static PyObject *V_is_open(View *v, void *x) { return PyBool_FromLong(is_open(VO(v)->v_status)); }
static PyObject *V_remaining(View *v, void *x) {
    Order *o = VO(v);
    return PyFloat_FromDouble(is_open(o->v_status) ? o->v_qty - o->v_filled : 0.0);
}
static PyObject *View_repr(View *v) {
    Order *o = VO(v);
    PyObject *q = PyFloat_FromDouble(o->v_qty), *p = PyFloat_FromDouble(o->v_price);
    PyObject *r = q && p ? PyUnicode_FromFormat("<OrderView %lld %U %s %R @ %R %U>", (long long)o->id,
                                                v->core->names[o->sym], o->side == BUY ? "buy" : "sell", q, p,
                                                v->core->status_names[o->v_status + 1]) : NULL;
    Py_XDECREF(q); Py_XDECREF(p);
    return r;
}
static PyObject *View_richcompare(PyObject *a, PyObject *b, int op) {
    if (Py_TYPE(b) != &ViewType || (op != Py_EQ && op != Py_NE)) Py_RETURN_NOTIMPLEMENTED;
    View *x = (View *)a, *y = (View *)b;
    int eq = x->core == y->core && x->idx == y->idx;
    return PyBool_FromLong(op == Py_EQ ? eq : !eq);
}
static Py_hash_t View_hash(View *v) { return (Py_hash_t)(v->idx * 1000003) ^ (Py_hash_t)(intptr_t)v->core; }
static PyGetSetDef View_getset[] = {
    {"order_id", (getter)V_order_id, NULL, NULL, NULL}, {"symbol", (getter)V_symbol, NULL, NULL, NULL},
    {"side", (getter)V_side, NULL, NULL, NULL}, {"order_type", (getter)V_order_type, NULL, NULL, NULL},
    {"price", (getter)V_price, NULL, NULL, NULL}, {"quantity", (getter)V_quantity, NULL, NULL, NULL},
    {"filled_quantity", (getter)V_filled, NULL, NULL, NULL}, {"avg_price", (getter)V_avg, NULL, NULL, NULL},
    {"status", (getter)V_status, NULL, "pending, accepted, partially_filled, modified, filled, canceled, rejected, expired", NULL},
    {"is_open", (getter)V_is_open, NULL, NULL, NULL}, {"remaining_quantity", (getter)V_remaining, NULL, NULL, NULL},
    {NULL}};
static PyTypeObject ViewType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "kftools.backtest.OrderView",
    .tp_basicsize = sizeof(View), .tp_dealloc = (destructor)View_dealloc, .tp_repr = (reprfunc)View_repr,
    .tp_getset = View_getset, .tp_richcompare = View_richcompare, .tp_hash = (hashfunc)View_hash,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "An order as the strategy knows it: what it sent, and the answers delivered so far (live).",
};

/* ctx.orders: order id -> OrderView, for the orders the strategy sent (a Mapping) */
typedef struct { PyObject_HEAD Core *core; } Views;
static PyTypeObject ViewsType;
static void Views_dealloc(Views *v) { Py_DECREF(v->core); PyObject_Free(v); }
static Order *views_find(Views *v, PyObject *key) {
    if (!PyLong_Check(key) || PyBool_Check(key)) return NULL;
    long long oid = PyLong_AsLongLong(key);
    if (oid == -1 && PyErr_Occurred()) { PyErr_Clear(); return NULL; }
    Order *o = order_by_id(v->core, oid);
    return o && o->has_view ? o : NULL;
}
static PyObject *Views_getitem(Views *v, PyObject *key) {
    Order *o = views_find(v, key);
    if (!o) { if (!PyErr_Occurred()) PyErr_SetObject(PyExc_KeyError, key); return NULL; }
    return make_view(v->core, o - v->core->orders);
}
static Py_ssize_t Views_len(Views *v) { return (Py_ssize_t)v->core->nviews; }
static int Views_contains(Views *v, PyObject *key) {
    Order *o = views_find(v, key);
    return o ? 1 : (PyErr_Occurred() ? -1 : 0);
}
static PyObject *Views_get(Views *v, PyObject *args) {
    PyObject *key, *dflt = Py_None;
    if (!PyArg_ParseTuple(args, "O|O", &key, &dflt)) return NULL;
    Order *o = views_find(v, key);
    if (!o) { if (PyErr_Occurred()) return NULL; Py_INCREF(dflt); return dflt; }
    return make_view(v->core, o - v->core->orders);
}
/* what: 0 keys, 1 values, 2 items */
static PyObject *views_list(Views *v, int what) {
    Core *c = v->core;
    PyObject *l = PyList_New(0);
    if (!l) return NULL;
    for (Py_ssize_t k = 0; k < c->norders; k++) {
        if (!c->orders[k].has_view) continue;
        PyObject *x;
        if (what == 0) x = PyLong_FromLongLong(c->orders[k].id);
        else if (what == 1) x = make_view(c, k);
        else {
            PyObject *vv = make_view(c, k);
            x = vv ? Py_BuildValue("(LN)", (long long)c->orders[k].id, vv) : NULL;
        }
        if (!x || PyList_Append(l, x) < 0) { Py_XDECREF(x); Py_DECREF(l); return NULL; }
        Py_DECREF(x);
    }
    return l;
}
static PyObject *Views_keys(Views *v, PyObject *x) { return views_list(v, 0); }
static PyObject *Views_values(Views *v, PyObject *x) { return views_list(v, 1); }
static PyObject *Views_items(Views *v, PyObject *x) { return views_list(v, 2); }
static PyObject *Views_iter(Views *v) {
    PyObject *l = views_list(v, 0);
    if (!l) return NULL;
    PyObject *it = PyObject_GetIter(l);
    Py_DECREF(l);
    return it;
}
static PyMappingMethods Views_mapping = {(lenfunc)Views_len, (binaryfunc)Views_getitem, NULL};
static PySequenceMethods Views_seq = {.sq_contains = (objobjproc)Views_contains};
static PyMethodDef Views_methods[] = {
    {"get", (PyCFunction)Views_get, METH_VARARGS, NULL}, {"keys", (PyCFunction)Views_keys, METH_NOARGS, NULL},
    {"values", (PyCFunction)Views_values, METH_NOARGS, NULL}, {"items", (PyCFunction)Views_items, METH_NOARGS, NULL},
    {NULL}};
static PyTypeObject ViewsType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "kftools.backtest.OrderViews",
    .tp_basicsize = sizeof(Views), .tp_dealloc = (destructor)Views_dealloc, .tp_as_mapping = &Views_mapping,
    .tp_as_sequence = &Views_seq, .tp_iter = (getiterfunc)Views_iter, .tp_methods = Views_methods,
    .tp_flags = Py_TPFLAGS_DEFAULT, .tp_doc = "order id -> OrderView, for the orders this strategy sent",
};

static PyObject *Core_views(Core *c, PyObject *x) {
    Views *v = PyObject_New(Views, &ViewsType);
    if (!v) return NULL;
    Py_INCREF(c);
    v->core = c;
    return (PyObject *)v;
}

static PyObject *Core_open_orders(Core *c, PyObject *args) {
    PyObject *symbol = Py_None;
    if (!PyArg_ParseTuple(args, "|O", &symbol)) return NULL;
    int32_t s = -2;
    if (symbol != Py_None) {
        s = PyUnicode_Check(symbol) ? sym_of_name(c, symbol) : -1;
        if (s < 0 && PyErr_Occurred()) return NULL;
    }
    PyObject *l = PyList_New(0);
    if (!l) return NULL;
    if (s == -1) return l;
    for (Py_ssize_t k = 0; k < c->norders; k++) {
        Order *o = &c->orders[k];
        if (!o->has_view || !is_open(o->v_status) || (s >= 0 && o->sym != s)) continue;
        PyObject *v = make_view(c, k);
        if (!v || PyList_Append(l, v) < 0) { Py_XDECREF(v); Py_DECREF(l); return NULL; }
        Py_DECREF(v);
    }
    return l;
}

/* ---------------------------------------------------------------------------------------------- state out */
static PyObject *Core_run_until(Core *c, PyObject *args) {
    PyObject *o_t, *o_tu;
    int step;
    if (!PyArg_ParseTuple(args, "OOp", &o_t, &o_tu, &step)) return NULL;
    long long t = 0, tu = 0;
    if (o_t != Py_None && (t = PyLong_AsLongLong(o_t)) == -1 && PyErr_Occurred()) return NULL;
    if (o_tu != Py_None && (tu = PyLong_AsLongLong(o_tu)) == -1 && PyErr_Occurred()) return NULL;
    int rc = run_until(c, o_t != Py_None, t, o_tu != Py_None, tu, step);
    if (rc < 0) return NULL;
    return PyBool_FromLong(rc);
}

static PyObject *Core_sample(Core *c, PyObject *args) {
    long long t;
    int bar;
    if (!PyArg_ParseTuple(args, "Lp", &t, &bar)) return NULL;
    if (sample(c, t, bar)) return NULL;
    Py_RETURN_NONE;
}

static PyObject *book_levels(const Level *lv, int n, int desc) {
    Level s[MAXLV];
    memcpy(s, lv, (size_t)n * sizeof(Level));
    qsort(s, (size_t)n, sizeof(Level), desc ? cmp_down : cmp_up);
    PyObject *l = PyList_New(n);
    if (!l) return NULL;
    for (int i = 0; i < n; i++) {
        PyObject *t = Py_BuildValue("(dd)", s[i].p, s[i].v);
        if (!t) { Py_DECREF(l); return NULL; }
        PyList_SET_ITEM(l, i, t);
    }
    return l;
}

/* book(symbol) -> (bid, ask, last, last_size, bids best first or None, asks best first or None), or None */
static PyObject *Core_book(Core *c, PyObject *symbol) {
    int32_t s = PyUnicode_Check(symbol) ? sym_of_name(c, symbol) : -1;
    if (s < 0 && PyErr_Occurred()) return NULL;
    if (s < 0 || !c->books[s].exists) Py_RETURN_NONE;
    Book *b = &c->books[s];
    PyObject *bids = Py_None, *asks = Py_None;
    if (b->has_depth) {
        bids = book_levels(b->bids, b->nb, 1);
        asks = bids ? book_levels(b->asks, b->na, 0) : NULL;
        if (!asks) { Py_XDECREF(bids); return NULL; }
    } else { Py_INCREF(bids); Py_INCREF(asks); }
    return Py_BuildValue("(ddddNN)", b->bid, b->ask, b->last, b->last_size, bids, asks);
}

static PyObject *Core_marks(Core *c, PyObject *x) {
    PyObject *d = PyDict_New();
    if (!d) return NULL;
    for (Py_ssize_t i = 0; i < c->book_order.n; i++) {
        int32_t s = (int32_t)c->book_order.a[i];
        PyObject *m = PyFloat_FromDouble(book_mark(&c->books[s]));
        if (!m || PyDict_SetItem(d, c->names[s], m) < 0) { Py_XDECREF(m); Py_DECREF(d); return NULL; }
        Py_DECREF(m);
    }
    return d;
}

/* account(strategy) -> (start_cash, cash, fees, [(symbol, qty, avg, realized, volume, turnover)] first-fill order) */
static PyObject *Core_account(Core *c, PyObject *arg) {
    Account *a = PyObject_IsTrue(arg) ? &c->st : &c->ex;
    PyObject *l = PyList_New(a->order.n);
    if (!l) return NULL;
    for (Py_ssize_t i = 0; i < a->order.n; i++) {
        int32_t s = (int32_t)a->order.a[i];
        SymAcc *x = &a->s[s];
        PyObject *t = Py_BuildValue("(Oddddd)", c->names[s], x->qty, x->avg, x->realized, x->volume, x->turnover);
        if (!t) { Py_DECREF(l); return NULL; }
        PyList_SET_ITEM(l, i, t);
    }
    return Py_BuildValue("(dddN)", a->start_cash, a->cash, a->fees, l);
}

static PyObject *bytes_of(const void *p, Py_ssize_t n, size_t item) {
    return PyBytes_FromStringAndSize(n ? (const char *)p : "", n * (Py_ssize_t)item);
}

/* records(what, start) -> bytes of the records from ``start`` on: updates, fills, samples, positions, cancels,
 * modifies, orders */
static PyObject *Core_records(Core *c, PyObject *args) {
    const char *what;
    Py_ssize_t start = 0;
    if (!PyArg_ParseTuple(args, "s|n", &what, &start)) return NULL;
#define REC(name, v) if (!strcmp(what, name)) { Py_ssize_t s0 = start < (v).n ? start : (v).n; \
        return bytes_of((v).a + s0, (v).n - s0, sizeof(*(v).a)); }
    REC("updates", c->updates) REC("fills", c->fills) REC("samples", c->samples) REC("positions", c->pos)
    REC("cancels", c->cancels) REC("modifies", c->modifies)
#undef REC
    if (!strcmp(what, "orders")) {
        Py_ssize_t n = c->norders - (start < c->norders ? start : c->norders);
        PyObject *b = PyBytes_FromStringAndSize(NULL, n * (Py_ssize_t)sizeof(OrderRec));
        if (!b) return NULL;
        OrderRec *r = (OrderRec *)PyBytes_AS_STRING(b);
        for (Py_ssize_t k = 0; k < n; k++) {
            Order *o = &c->orders[c->norders - n + k];
            OrderRec x = {o->id, o->sent, o->arrival, o->sym, o->side, o->type, o->status, o->reason, 0,
                          o->price, o->quantity, o->filled, o->notional, o->fee};
            r[k] = x;
        }
        return b;
    }
    PyErr_Format(PyExc_ValueError, "records: unknown %s", what);
    return NULL;
}

/* client_order_ids() -> the ids as sent ('' for the default bt-<id>), in order */
static PyObject *Core_client_order_ids(Core *c, PyObject *x) {
    PyObject *l = PyList_New(c->norders);
    if (!l) return NULL;
    for (Py_ssize_t k = 0; k < c->norders; k++) {
        PyObject *s = c->orders[k].coid ? (Py_INCREF(c->orders[k].coid), c->orders[k].coid)
                                        : PyUnicode_FromFormat("bt-%lld", (long long)c->orders[k].id);
        if (!s) { Py_DECREF(l); return NULL; }
        PyList_SET_ITEM(l, k, s);
    }
    return l;
}

static PyObject *Core_symbols(Core *c, PyObject *x) {
    PyObject *l = PyList_New(c->nsym);
    if (!l) return NULL;
    for (Py_ssize_t k = 0; k < c->nsym; k++) { Py_INCREF(c->names[k]); PyList_SET_ITEM(l, k, c->names[k]); }
    return l;
}

static PyObject *Core_state(Core *c, PyObject *x) {
    int working = 0;
    for (Py_ssize_t s = 0; s < c->nsym && !working; s++) working = c->resting[s].n || c->aggr[s].n;
    int holding = 0;
    for (Py_ssize_t i = 0; i < c->ex.order.n && !holding; i++) holding = c->ex.s[c->ex.order.a[i]].qty != 0.0;
    return Py_BuildValue("{sLsNsNsLsLsLsLsnsnsnsisisLsNsL}", "time", (long long)c->time, "market_time",
                         c->has_market_time ? PyLong_FromLongLong(c->market_time) : (Py_INCREF(Py_None), Py_None),
                         "first_time", c->has_first_time ? PyLong_FromLongLong(c->first_time) : (Py_INCREF(Py_None), Py_None),
                         "frames_seen", (long long)c->frames_seen, "timers_fired", (long long)c->timers_fired,
                         "timers_dropped", (long long)c->timers_dropped, "orders_sent", (long long)c->orders_sent,
                         "queued", c->heap.n, "updates", c->updates.n, "fills", c->fills.n, "working", working,
                         "holding", holding, "no_quote_fills", (long long)c->no_quote_fills, "queue_top",
                         c->heap.n ? PyLong_FromLongLong(c->heap.a[0].time) : (Py_INCREF(Py_None), Py_None),
                         "next_bar", (long long)c->next_bar);
}

static PyObject *Core_get_busy(Core *c, void *x) {
    if (c->heap.n) Py_RETURN_TRUE;
    for (Py_ssize_t s = 0; s < c->nsym; s++) if (c->resting[s].n || c->aggr[s].n) Py_RETURN_TRUE;
    Py_RETURN_FALSE;
}
static PyObject *Core_get_queue_top(Core *c, void *x) {
    if (!c->heap.n) Py_RETURN_NONE;
    return PyLong_FromLongLong(c->heap.a[0].time);
}
static PyObject *Core_get_market_time(Core *c, void *x) {
    if (!c->has_market_time) Py_RETURN_NONE;
    return PyLong_FromLongLong(c->market_time);
}
static PyObject *Core_get_time(Core *c, void *x) { return PyLong_FromLongLong(c->time); }
static int Core_set_time(Core *c, PyObject *v, void *x) {
    long long t = PyLong_AsLongLong(v);
    if (t == -1 && PyErr_Occurred()) return -1;
    c->time = t;
    return 0;
}
static PyObject *Core_get_orders_sent(Core *c, void *x) { return PyLong_FromLongLong(c->orders_sent); }
static int Core_set_orders_sent(Core *c, PyObject *v, void *x) {
    long long n = PyLong_AsLongLong(v);
    if (n == -1 && PyErr_Occurred()) return -1;
    c->orders_sent = n;
    return 0;
}
static PyObject *Core_get_sink(Core *c, void *x) { Py_INCREF(c->sink); return c->sink; }
static int Core_set_sink(Core *c, PyObject *v, void *x) {
    if (!v) v = Py_None;
    Py_INCREF(v); Py_SETREF(c->sink, v);
    return 0;
}
static PyObject *Core_get_frames_seen(Core *c, void *x) { return PyLong_FromLongLong(c->frames_seen); }
static int Core_set_frames_seen(Core *c, PyObject *v, void *x) {
    long long n = PyLong_AsLongLong(v);
    if (n == -1 && PyErr_Occurred()) return -1;
    c->frames_seen = n;
    return 0;
}

/* set_strategy(ctx, on_update, on_fill, on_timer, callbacks[64], on_frame) */
static PyObject *Core_set_strategy(Core *c, PyObject *args) {
    PyObject *ctx, *ou, *of, *ot, *cbs, *oframe;
    if (!PyArg_ParseTuple(args, "OOOOOO", &ctx, &ou, &of, &ot, &cbs, &oframe)) return NULL;
    if (!PyList_Check(cbs) || PyList_GET_SIZE(cbs) != NCB) {
        PyErr_Format(PyExc_ValueError, "set_strategy: callbacks must be a list of %d", NCB);
        return NULL;
    }
#define SET(f, v) do { Py_INCREF(v); Py_XSETREF(c->f, v); } while (0)
    SET(ctx, ctx); SET(on_update, ou); SET(on_fill, of); SET(on_timer, ot); SET(on_frame, oframe);
    for (int k = 0; k < NCB; k++) { PyObject *f = PyList_GET_ITEM(cbs, k); SET(cb[k], f); }
#undef SET
    Py_RETURN_NONE;
}

static PyObject *Core_new(PyTypeObject *type, PyObject *args, PyObject *kw) {
    Core *c = (Core *)type->tp_alloc(type, 0);
    return (PyObject *)c;
}

static int Core_init(Core *c, PyObject *args, PyObject *kw) {
    /* (model, prob_n, latency, response_latency, maker_bps, taker_bps, per_order, cap, cash, bar_ns,
     *  depth_levels, OrderUpdate, Fill, TickerFrame, usage_error, status_names[10]) */
    PyObject *names;
    long long lat, rlat, bar_ns;
    double cash;
    if (!PyArg_ParseTuple(args, "idLLdddpdLiOOOOO", &c->model, &c->prob_n, &lat, &rlat, &c->maker_bps, &c->taker_bps,
                          &c->per_order, &c->cap, &cash, &bar_ns, &c->depth_levels, &c->t_update, &c->t_fill,
                          &c->t_ticker, &c->usage_error, &names))
        return -1;
    if (c->depth_levels < 0 || c->depth_levels > MAXLV) {
        PyErr_Format(PyExc_ValueError, "depth levels %d: this build holds at most %d", c->depth_levels, MAXLV);
        return -1;
    }
    if (!PyTuple_Check(names) || PyTuple_GET_SIZE(names) != N_STATUS + 1) {
        PyErr_SetString(PyExc_ValueError, "status names: a tuple of 10 (pending first)");
        return -1;
    }
    c->latency = lat; c->rlat = rlat; c->bar_ns = bar_ns > 0 ? bar_ns : 1;
    Py_INCREF(c->t_update); Py_INCREF(c->t_fill); Py_INCREF(c->t_ticker); Py_INCREF(c->usage_error);
    for (int k = 0; k <= N_STATUS; k++) { c->status_names[k] = PyTuple_GET_ITEM(names, k); Py_INCREF(c->status_names[k]); }
    c->ex.start_cash = c->ex.cash = cash;
    c->st.start_cash = c->st.cash = cash;
    c->next_bar = NEVER_SAMPLED;
    c->by_name = PyDict_New();
    c->timers_list = PyList_New(0);
    c->s_frame = PyUnicode_InternFromString("frame");
    c->s_update = PyUnicode_InternFromString("update");
    c->s_fill = PyUnicode_InternFromString("fill");
    c->s_timer = PyUnicode_InternFromString("timer");
    if (!c->by_name || !c->timers_list || !c->s_frame || !c->s_update || !c->s_fill || !c->s_timer) return -1;
    Py_INCREF(Py_None); c->ctx = Py_None;
    Py_INCREF(Py_None); c->on_update = Py_None;
    Py_INCREF(Py_None); c->on_fill = Py_None;
    Py_INCREF(Py_None); c->on_timer = Py_None;
    Py_INCREF(Py_None); c->on_frame = Py_None;
    Py_INCREF(Py_None); c->sink = Py_None;
    for (int k = 0; k < NCB; k++) { Py_INCREF(Py_None); c->cb[k] = Py_None; }
    return ht_rehash(c);
}

static int Core_traverse(Core *c, visitproc visit, void *arg) {
    Py_VISIT(c->ctx); Py_VISIT(c->on_update); Py_VISIT(c->on_fill); Py_VISIT(c->on_timer); Py_VISIT(c->on_frame);
    Py_VISIT(c->sink); Py_VISIT(c->timers_list); Py_VISIT(c->by_id);
    for (int k = 0; k < NCB; k++) Py_VISIT(c->cb[k]);
    return 0;
}

static int Core_clear(Core *c) {
    Py_CLEAR(c->ctx); Py_CLEAR(c->on_update); Py_CLEAR(c->on_fill); Py_CLEAR(c->on_timer); Py_CLEAR(c->on_frame);
    Py_CLEAR(c->sink); Py_CLEAR(c->timers_list); Py_CLEAR(c->by_id);
    for (int k = 0; k < NCB; k++) Py_CLEAR(c->cb[k]);
    return 0;
}

static void Core_dealloc(Core *c) {
    PyObject_GC_UnTrack(c);
    Core_clear(c);
    for (Py_ssize_t s = 0; s < c->nsym; s++) {
        Py_XDECREF(c->names[s]);
        PyMem_Free(c->resting[s].a);
        PyMem_Free(c->aggr[s].a);
    }
    for (Py_ssize_t k = 0; k < c->norders; k++) Py_XDECREF(c->orders[k].coid);
    PyMem_Free(c->names); PyMem_Free(c->books); PyMem_Free(c->resting); PyMem_Free(c->aggr);
    PyMem_Free(c->keys); PyMem_Free(c->key_sym); PyMem_Free(c->book_order.a); PyMem_Free(c->orders);
    PyMem_Free(c->heap.a); PyMem_Free(c->updates.a); PyMem_Free(c->fills.a); PyMem_Free(c->samples.a);
    PyMem_Free(c->pos.a); PyMem_Free(c->cancels.a); PyMem_Free(c->modifies.a);
    PyMem_Free(c->ex.s); PyMem_Free(c->ex.order.a); PyMem_Free(c->st.s); PyMem_Free(c->st.order.a);
    Py_XDECREF(c->by_name); Py_XDECREF(c->t_update); Py_XDECREF(c->t_fill); Py_XDECREF(c->t_ticker);
    Py_XDECREF(c->usage_error); Py_XDECREF(c->s_frame); Py_XDECREF(c->s_update); Py_XDECREF(c->s_fill);
    Py_XDECREF(c->s_timer);
    for (int k = 0; k <= N_STATUS; k++) Py_XDECREF(c->status_names[k]);
    Py_TYPE(c)->tp_free((PyObject *)c);
}

static PyMethodDef Core_methods[] = {
    {"frames", (PyCFunction)Core_frames, METH_VARARGS, "run frames i..j of one batch's columns"},
    {"lockstep", (PyCFunction)Core_lockstep, METH_VARARGS, "the out-of-process gateway's hot loop (gateway.py)"},
    {"run_until", (PyCFunction)Core_run_until, METH_VARARGS, "run_until(t|None, timers_until|None, step) -> stopped at an answer"},
    {"submit", (PyCFunction)Core_submit, METH_VARARGS, NULL},
    {"request_cancel", (PyCFunction)Core_request_cancel, METH_VARARGS, NULL},
    {"request_modify", (PyCFunction)Core_request_modify, METH_VARARGS, NULL},
    {"schedule_timer", (PyCFunction)Core_schedule_timer, METH_VARARGS, NULL},
    {"send_order", (PyCFunction)(void (*)(void))Core_send_order, METH_VARARGS | METH_KEYWORDS,
     "send_order(symbol, side, price=0.0, quantity=0.0, *, order_type=LIMIT, client_order_id='') -> order id"},
    {"cancel", (PyCFunction)Core_cancel, METH_O, "cancel(order_id)"},
    {"modify", (PyCFunction)(void (*)(void))Core_modify, METH_VARARGS | METH_KEYWORDS, "modify(order_id, price=None, quantity=None)"},
    {"position", (PyCFunction)Core_position, METH_O, "signed quantity held, from the fills delivered so far"},
    {"avg_price", (PyCFunction)Core_avg_price, METH_O, "average entry price of the open position (0 when flat)"},
    {"open_orders", (PyCFunction)Core_open_orders, METH_VARARGS, "orders not known to be done"},
    {"views", (PyCFunction)Core_views, METH_NOARGS, NULL},
    {"sample", (PyCFunction)Core_sample, METH_VARARGS, NULL},
    {"book", (PyCFunction)Core_book, METH_O, NULL},
    {"marks", (PyCFunction)Core_marks, METH_NOARGS, NULL},
    {"account", (PyCFunction)Core_account, METH_O, NULL},
    {"records", (PyCFunction)Core_records, METH_VARARGS, NULL},
    {"client_order_ids", (PyCFunction)Core_client_order_ids, METH_NOARGS, NULL},
    {"symbols", (PyCFunction)Core_symbols, METH_NOARGS, NULL},
    {"state", (PyCFunction)Core_state, METH_NOARGS, NULL},
    {"set_strategy", (PyCFunction)Core_set_strategy, METH_VARARGS, NULL},
    {NULL}};

static PyGetSetDef Core_getset[] = {
    {"busy", (getter)Core_get_busy, NULL, NULL, NULL},
    {"queue_top", (getter)Core_get_queue_top, NULL, "time of the next queued event, or None", NULL},
    {"market_time", (getter)Core_get_market_time, NULL, NULL, NULL},
    {"time", (getter)Core_get_time, (setter)Core_set_time, NULL, NULL},
    {"orders_sent", (getter)Core_get_orders_sent, (setter)Core_set_orders_sent, NULL, NULL},
    {"frames_seen", (getter)Core_get_frames_seen, (setter)Core_set_frames_seen, NULL, NULL},
    {"sink", (getter)Core_get_sink, (setter)Core_set_sink, NULL, NULL},
    {NULL}};

static PyTypeObject CoreType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "kftools.backtest._core.Core",
    .tp_basicsize = sizeof(Core), .tp_new = Core_new, .tp_init = (initproc)Core_init,
    .tp_dealloc = (destructor)Core_dealloc, .tp_traverse = (traverseproc)Core_traverse, .tp_clear = (inquiry)Core_clear,
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC, .tp_methods = Core_methods, .tp_getset = Core_getset,
    .tp_doc = "The backtest's event queue, exchange, accounts and records (engine_c.py wraps it).",
};

static PyObject *constants(PyObject *m, PyObject *x) {
    return Py_BuildValue(
        "{si si si si si si si si si si si si si si si si si si si si si si si si si si si si si si si si sn sn sn sn sn sn sn}",
        "BUY", BUY, "SELL", SELL, "LIMIT", T_LIMIT, "MARKET", T_MARKET, "LIMIT_IOC", T_IOC, "LIMIT_FOK", T_FOK,
        "POST_ONLY", T_POST, "ACCEPTED", S_ACCEPTED, "PARTIALLY_FILLED", S_PARTIAL, "FILLED", S_FILLED, "CANCELED",
        S_CANCELED, "REJECTED", S_REJECTED, "CANCEL_REJECTED", S_CANCEL_REJECTED, "EXPIRED", S_EXPIRED, "MODIFIED",
        S_MODIFIED, "MODIFY_REJECTED", S_MODIFY_REJECTED, "BAD_QUANTITY", R_BAD_QUANTITY, "BAD_PRICE", R_BAD_PRICE,
        "UNKNOWN_SYMBOL", R_UNKNOWN_SYMBOL, "UNKNOWN_ORDER", R_UNKNOWN_ORDER, "TOO_LATE", R_TOO_LATE, "NO_MARKET",
        R_NO_MARKET, "POST_ONLY_WOULD_TAKE", R_POST_ONLY, "NOT_FINITE", R_NOT_FINITE, "MAKER", MAKER, "TAKER", TAKER,
        "NO_QUOTE", NO_QUOTE, "TICKER", MT_TICK, "TRADE", MT_TRADE, "DEPTH", MT_DEPTH, "LS_DONE", LS_DONE,
        "LS_WAIT", LS_WAIT,
        "sizeof_update", sizeof(Update), "sizeof_fill", sizeof(Fill), "sizeof_sample", sizeof(Sample),
        "sizeof_position", sizeof(Pos), "sizeof_request", sizeof(Req), "sizeof_order", sizeof(OrderRec),
        "callbacks", (Py_ssize_t)NCB);
}

static PyMethodDef module_methods[] = {
    {"constants", constants, METH_NOARGS, "the numbers this build uses (checked against journal/format.py)"},
    {NULL}};

static struct PyModuleDef moduledef = {PyModuleDef_HEAD_INIT, "_core", "the backtest's inner loop", -1, module_methods};

PyMODINIT_FUNC PyInit__core(void) {
    if (PyType_Ready(&CoreType) < 0 || PyType_Ready(&ViewType) < 0 || PyType_Ready(&ViewsType) < 0) return NULL;
    PyObject *m = PyModule_Create(&moduledef);
    if (!m) return NULL;
    Py_INCREF(&CoreType);
    if (PyModule_AddObject(m, "Core", (PyObject *)&CoreType) < 0) return NULL;
    Py_INCREF(&ViewType);
    PyModule_AddObject(m, "OrderView", (PyObject *)&ViewType);
    Py_INCREF(&ViewsType);
    PyModule_AddObject(m, "OrderViews", (PyObject *)&ViewsType);
    return m;
}
