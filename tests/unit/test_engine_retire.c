/*
 * Unit test for op_engine_retire (snapshot publication): with real workers, release() runs exactly once per
 * retired pointer, only after every worker acknowledged; a burst of retires is released completely; and a
 * retire posted right before the engine stops is still released (by op_engine_free), never leaked; and
 * while any one worker has not acknowledged (it is held busy in a message), release() does not run.
 * An engine that does not start is a failure; the test skips (77) only when the kernel has no io_uring or
 * blocks it (op_engine_start's -ENOSYS / -EPERM from its io_uring probe).
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/engine.h"
#include "http/proxy.h"
#include "tests/unit/check.h"

static atomic_int released;
static atomic_int released_on_main; /* release() must run on a worker (or in op_engine_free) */
static pthread_t main_thread;

static void release(void *p)
{
    if (pthread_equal(pthread_self(), main_thread)) atomic_fetch_add(&released_on_main, 1);
    atomic_fetch_add(&released, 1);
    free(p);
}

/* A message that keeps its worker busy until `go` is set: the worker cannot acknowledge anything meanwhile.
 */
static atomic_int holding, go;
static void hold(struct op_worker *w, struct op_msg *m)
{
    (void)w;
    (void)m;
    atomic_store(&holding, 1);
    for (int i = 0; i < 1000 && !atomic_load(&go); i++) /* bounded: 10 s at most */
        usleep(10000);
    atomic_store(&holding, 0);
}

static bool wait_released(int n)
{
    for (int i = 0; i < 400; i++) { /* up to 4 s */
        if (atomic_load(&released) >= n) return true;
        usleep(10000);
    }
    return false;
}

static int start_rc;
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
    start_rc = op_engine_start(&ec, &e, err, sizeof(err));
    if (start_rc != 0) {
        printf("engine start: %s (%d)\n", err, start_rc);
        return NULL;
    }
    return e;
}

int main(void)
{
    static struct op_listener_conf lc;
    static struct op_http_conf hc;
    op_http_conf_init(&hc);
    main_thread = pthread_self();
    struct op_engine *e = start(&lc, &hc);
    if (!e) {
        if ((start_rc == -ENOSYS || start_rc == -EPERM)) {
            printf("SKIP: io_uring is not available here\n");
            return 77;
        }
        printf("FAIL: the engine did not start\n");
        return 1;
    }
    CHECK(op_engine_nworkers(e) == 2, "%d workers", op_engine_nworkers(e));

    printf("one retire is released once, after the workers acknowledged\n");
    CHECK(op_engine_retire(e, malloc(16), release) == 0, "retire");
    CHECK(wait_released(1), "not released");
    usleep(50000);
    CHECK(atomic_load(&released) == 1, "released %d times", atomic_load(&released));

    printf("release waits for every worker: while one is held busy, nothing is released\n");
    for (int k = 0; k < op_engine_nworkers(e); k++) {
        int before = atomic_load(&released);
        static struct op_msg hm;
        hm.fn = hold;
        atomic_store(&go, 0);
        op_engine_post(e, k, &hm);
        for (int i = 0; i < 400 && !atomic_load(&holding); i++)
            usleep(10000);
        CHECK(atomic_load(&holding), "worker %d never ran the holding message", k);
        CHECK(op_engine_retire(e, malloc(16), release) == 0, "retire with worker %d held", k);
        usleep(200000); /* every other worker has long acknowledged by now */
        CHECK(atomic_load(&released) == before, "released while worker %d had not acknowledged", k);
        atomic_store(&go, 1);
        CHECK(wait_released(before + 1), "not released after worker %d acknowledged", k);
        for (int i = 0; i < 400 && atomic_load(&holding); i++)
            usleep(10000);
    }

    printf("a burst of 1000 retires is released completely\n");
    for (int i = 0; i < 1000; i++)
        CHECK(op_engine_retire(e, malloc(32), release) == 0, "retire %d", i);
    CHECK(wait_released(1003), "only %d released", atomic_load(&released));

    printf("a retire racing the engine's stop is released by op_engine_free\n");
    op_engine_drain(e);
    for (int i = 0; i < 10; i++)
        CHECK(op_engine_retire(e, malloc(8), release) == 0, "late retire %d", i);
    for (int i = 0; i < 400 && !op_engine_done(e); i++)
        usleep(10000);
    op_engine_free(e);
    CHECK(atomic_load(&released) == 1013, "released %d, want 1013", atomic_load(&released));
    /* op_engine_free may release the late ones on this thread; every earlier one ran on a worker. */
    CHECK(atomic_load(&released_on_main) <= 10, "%d releases ran on the control thread",
          atomic_load(&released_on_main));

    return check_report("engine retire");
}
