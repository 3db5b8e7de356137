/* Unit tests for core/timer: ordering, never early, re-arm from callbacks, cancel, long delays. */
#include <stdio.h>
#include <stdlib.h>

#include "core/timer.h"

#include "tests/unit/check.h"

struct item {
    struct op_timer t;
    uint64_t fired_at;
    int fired;
};
static uint64_t g_now;
static struct op_wheel g_wheel;

static void on_fire(struct op_timer *t)
{
    struct item *it = (struct item *)t;
    it->fired++;
    it->fired_at = g_now;
}

static struct item rearm_item;
static void on_fire_rearm(struct op_timer *t)
{
    on_fire(t);
    if (rearm_item.fired < 3) op_timer_set(&g_wheel, t, g_now, 100);
}

static void advance(uint64_t to, uint64_t step)
{
    while (g_now < to) {
        g_now += step;
        op_wheel_run(&g_wheel, g_now);
    }
}

int main(void)
{
    g_now = 1000000;
    op_wheel_init(&g_wheel, g_now);

    /* 1. many timers with assorted delays: none early, none more than one tick late */
    enum { N = 2000 };
    struct item *items = calloc(N, sizeof(*items));
    uint64_t start = g_now;
    for (int i = 0; i < N; i++) {
        op_timer_init(&items[i].t, on_fire);
        op_timer_set(&g_wheel, &items[i].t, g_now, (uint64_t)(i * 37) % 120000);
    }
    CHECK(g_wheel.count == N, "count %zu", g_wheel.count);
    advance(start + 130000, 7);
    for (int i = 0; i < N; i++) {
        uint64_t due = start + (uint64_t)(i * 37) % 120000;
        CHECK(items[i].fired == 1, "timer %d fired %d times", i, items[i].fired);
        CHECK(items[i].fired_at >= due, "timer %d early: %llu < %llu", i,
              (unsigned long long)items[i].fired_at, (unsigned long long)due);
        CHECK(items[i].fired_at <= due + OP_WHEEL_TICK_MS + 7, "timer %d late by %llu ms", i,
              (unsigned long long)(items[i].fired_at - due));
    }
    CHECK(g_wheel.count == 0, "count after all fired %zu", g_wheel.count);

    /* 2. cancel: a cancelled timer never fires; cancelling twice is harmless */
    struct item a = {0};
    op_timer_init(&a.t, on_fire);
    op_timer_set(&g_wheel, &a.t, g_now, 500);
    op_timer_cancel(&g_wheel, &a.t);
    op_timer_cancel(&g_wheel, &a.t);
    advance(g_now + 2000, 10);
    CHECK(a.fired == 0, "cancelled timer fired");

    /* 3. re-arming replaces the previous expiry */
    op_timer_set(&g_wheel, &a.t, g_now, 100);
    op_timer_set(&g_wheel, &a.t, g_now, 5000);
    advance(g_now + 1000, 10);
    CHECK(a.fired == 0, "re-armed timer fired at the old expiry");
    advance(g_now + 5000, 10);
    CHECK(a.fired == 1, "re-armed timer fired %d times", a.fired);

    /* 4. a callback re-arming itself (same bucket possible) runs once per expiry */
    op_timer_init(&rearm_item.t, on_fire_rearm);
    op_timer_set(&g_wheel, &rearm_item.t, g_now, 100);
    advance(g_now + 1000, 1);
    CHECK(rearm_item.fired == 3, "self re-arming timer fired %d times", rearm_item.fired);

    /* 5. delays longer than a rotation (1 hour) and a long stall of the clock */
    struct item h = {0};
    op_timer_init(&h.t, on_fire);
    uint64_t hs = g_now;
    op_timer_set(&g_wheel, &h.t, g_now, 3600000);
    advance(g_now + 3599000, 1000);
    CHECK(h.fired == 0, "1 h timer fired early");
    g_now += 5000000; /* the loop stalled for 83 minutes */
    op_wheel_run(&g_wheel, g_now);
    CHECK(h.fired == 1 && h.fired_at >= hs + 3600000, "1 h timer after a stall fired %d", h.fired);

    free(items);
    return check_report("timer wheel");
}
