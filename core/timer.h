/*
 * core/timer.h — one hashed timer wheel per worker thread (not thread-safe by design).
 *
 * Resolution is OP_WHEEL_TICK_MS; a timer fires on the first op_wheel_run() at or after its expiry,
 * never before. Timers further out than one rotation stay in their bucket and are skipped until due,
 * so any delay is allowed. Timers are intrusive: embed an op_timer in the owning object.
 */
#ifndef OP_TIMER_H
#define OP_TIMER_H

#include "core/common.h"

#define OP_WHEEL_TICK_MS 50u
#define OP_WHEEL_SLOTS   1024u /* power of two: 51.2 s per rotation */

struct op_timer;
typedef void (*op_timer_cb)(struct op_timer *t);

struct op_timer {
    struct op_timer *next, *prev; /* bucket links; NULL when not armed */
    uint64_t expire_ms;
    op_timer_cb cb;
};

struct op_wheel {
    struct op_timer buckets[OP_WHEEL_SLOTS]; /* list heads (sentinels) */
    uint64_t now_tick;                       /* last processed tick */
    size_t count;                            /* armed timers */
};

void op_wheel_init(struct op_wheel *w, uint64_t now_ms);
static inline void op_timer_init(struct op_timer *t, op_timer_cb cb)
{
    t->next = t->prev = NULL;
    t->expire_ms = 0;
    t->cb = cb;
}
static inline bool op_timer_armed(const struct op_timer *t)
{
    return t->next != NULL;
}
/* (Re)arms t to fire at now_ms + delay_ms. */
void op_timer_set(struct op_wheel *w, struct op_timer *t, uint64_t now_ms, uint64_t delay_ms);
void op_timer_cancel(struct op_wheel *w, struct op_timer *t);
/* Fires every timer due at now_ms (callbacks may re-arm or cancel any timer). Returns the number fired. */
size_t op_wheel_run(struct op_wheel *w, uint64_t now_ms);

#endif
