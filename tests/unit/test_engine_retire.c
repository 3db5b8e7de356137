/*
 * Unit test for op_engine_retire (snapshot publication): with real workers, release() runs exactly once per
 * retired pointer, only after every worker acknowledged; a burst of retires is released completely; and a
 * retire posted right before the engine stops is still released (by op_engine_free), never leaked.
 * Skips (77) when io_uring is not available.
 */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/engine.h"
#include "http/proxy.h"
#include "tests/unit/check.h"

static atomic_int released;

static void release(void *p)
{
    atomic_fetch_add(&released, 1);
    free(p);
}

static bool wait_released(int n)
{
    for (int i = 0; i < 400; i++) { /* up to 4 s */
        if (atomic_load(&released) >= n) return true;
        usleep(10000);
    }
    return false;
}

static struct op_engine *start(struct op_listener_conf *lc, struct op_http_conf *hc)
{
    char err[256];
    memset(lc, 0, sizeof(*lc));
    snprintf(lc->name, sizeof(lc->name), "127.0.0.1:0");
    if (op_parse_hostport("127.0.0.1:0", &lc->addr, &lc->addrlen, err, sizeof(err)) != 0) return NULL;
    lc->proto = &op_proto_http;
    lc->proto_ctx = hc;
    struct op_engine_conf ec = {.workers = 2,
                                .no_pin = true,
                                .listeners = lc,
                                .nlisteners = 1,
                                .max_conns = 64,
                                .to = {.drain_ms = 200}};
    struct op_engine *e = NULL;
    if (op_engine_start(&ec, &e, err, sizeof(err)) != 0) {
        printf("SKIP: engine does not start here: %s\n", err);
        return NULL;
    }
    return e;
}

int main(void)
{
    static struct op_listener_conf lc;
    static struct op_http_conf hc;
    op_http_conf_init(&hc);
    struct op_engine *e = start(&lc, &hc);
    if (!e) return 77;

    printf("one retire is released once, after the workers acknowledged\n");
    CHECK(op_engine_retire(e, malloc(16), release) == 0, "retire");
    CHECK(wait_released(1), "not released");
    usleep(50000);
    CHECK(atomic_load(&released) == 1, "released %d times", atomic_load(&released));

    printf("a burst of 1000 retires is released completely\n");
    for (int i = 0; i < 1000; i++)
        CHECK(op_engine_retire(e, malloc(32), release) == 0, "retire %d", i);
    CHECK(wait_released(1001), "only %d released", atomic_load(&released));

    printf("a retire racing the engine's stop is released by op_engine_free\n");
    op_engine_drain(e);
    for (int i = 0; i < 10; i++)
        CHECK(op_engine_retire(e, malloc(8), release) == 0, "late retire %d", i);
    for (int i = 0; i < 400 && !op_engine_done(e); i++)
        usleep(10000);
    op_engine_free(e);
    CHECK(atomic_load(&released) == 1011, "released %d, want 1011", atomic_load(&released));

    return check_report("engine retire");
}
