#include "core/timer.h"

void op_wheel_init(struct op_wheel *w, uint64_t now_ms)
{
    for (size_t i = 0; i < OP_WHEEL_SLOTS; i++)
        w->buckets[i].next = w->buckets[i].prev = &w->buckets[i];
    w->now_tick = now_ms / OP_WHEEL_TICK_MS;
    w->count = 0;
}

static void unlink_timer(struct op_timer *t)
{
    t->prev->next = t->next;
    t->next->prev = t->prev;
    t->next = t->prev = NULL;
}

void op_timer_cancel(struct op_wheel *w, struct op_timer *t)
{
    if (!op_timer_armed(t)) return;
    unlink_timer(t);
    w->count--;
}

void op_timer_set(struct op_wheel *w, struct op_timer *t, uint64_t now_ms, uint64_t delay_ms)
{
    op_timer_cancel(w, t);
    t->expire_ms = now_ms + delay_ms;
    /* Round up so a timer never fires early; never place it behind the wheel's cursor. */
    uint64_t tick = (t->expire_ms + OP_WHEEL_TICK_MS - 1) / OP_WHEEL_TICK_MS;
    if (tick <= w->now_tick) tick = w->now_tick + 1;
    struct op_timer *head = &w->buckets[tick & (OP_WHEEL_SLOTS - 1)];
    t->next = head;
    t->prev = head->prev;
    head->prev->next = t;
    head->prev = t;
    w->count++;
}

size_t op_wheel_run(struct op_wheel *w, uint64_t now_ms)
{
    uint64_t target = now_ms / OP_WHEEL_TICK_MS;
    size_t fired = 0;
    if (target - w->now_tick > OP_WHEEL_SLOTS) /* long stall: one full sweep covers every bucket */
        w->now_tick = target - OP_WHEEL_SLOTS;
    while (w->now_tick < target) {
        w->now_tick++;
        struct op_timer *head = &w->buckets[w->now_tick & (OP_WHEEL_SLOTS - 1)];
        /* Detach due timers into a private list first: callbacks may re-arm into this same bucket. */
        struct op_timer due = {.next = &due, .prev = &due};
        struct op_timer *t = head->next;
        while (t != head) {
            struct op_timer *nx = t->next;
            if (t->expire_ms <= now_ms) {
                unlink_timer(t);
                t->next = &due;
                t->prev = due.prev;
                due.prev->next = t;
                due.prev = t;
            }
            t = nx;
        }
        while (due.next != &due) {
            t = due.next;
            unlink_timer(t);
            w->count--;
            fired++;
            t->cb(t);
        }
    }
    return fired;
}
