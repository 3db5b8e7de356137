/*
 * core/mpsc.h — a lock-free multi-producer, single-consumer stack used as a queue: producers push
 * (any thread), the consumer takes everything at once and gets it back in push order. Intrusive:
 * embed an op_mpsc_node in the queued object.
 */
#ifndef OP_MPSC_H
#define OP_MPSC_H

#include <stdatomic.h>
#include <stddef.h>

struct op_mpsc_node {
    struct op_mpsc_node *next;
};

typedef _Atomic(struct op_mpsc_node *) op_mpsc_t;

/* Pushes n; returns true if the queue was empty before (the consumer may need a wake-up). */
static inline bool op_mpsc_push(op_mpsc_t *q, struct op_mpsc_node *n)
{
    struct op_mpsc_node *head = atomic_load_explicit(q, memory_order_relaxed);
    do {
        n->next = head;
    } while (!atomic_compare_exchange_weak_explicit(q, &head, n, memory_order_release, memory_order_relaxed));
    return head == NULL;
}

/* Takes every queued node, oldest first (a NULL-terminated list through ->next). */
static inline struct op_mpsc_node *op_mpsc_take_all(op_mpsc_t *q)
{
    struct op_mpsc_node *n = atomic_exchange_explicit(q, NULL, memory_order_acquire), *fifo = NULL;
    while (n) {
        struct op_mpsc_node *nx = n->next;
        n->next = fifo;
        fifo = n;
        n = nx;
    }
    return fifo;
}

#endif
