/*
 * deadline - timers for thousands of connections in O(1).
 *
 * Each list has one fixed period (ping period, pong wait, write deadline, close
 * linger), so a node armed later always expires later: appending at the tail
 * keeps the list sorted, and expiry pops from the head.  Arming, disarming and
 * expiring are O(1); nothing scans all connections.  Time is passed in (now_ms)
 * so tests can drive it.
 */
#ifndef PERSONAD_DEADLINE_H
#define PERSONAD_DEADLINE_H

#include <stdint.h>

struct deadline_list;

struct deadline_node {
    struct deadline_node *prev, *next;
    struct deadline_list *list; /* NULL when not armed */
    int64_t due_ms;
    int64_t armed_ms;
};

struct deadline_list {
    struct deadline_node *head, *tail;
    int64_t period_ms;
};

void deadline_list_init(struct deadline_list *l, int64_t period_ms);

/* deadline_list_set_period - a new period (a reload): the nodes already armed
 * become due at the time they were armed plus the new period, as if they had been
 * armed with it (shorter: sooner, possibly at once, at the next expiry pass;
 * longer: later).  The list was armed in time order, so it stays sorted.  O(n),
 * once per reload. */
void deadline_list_set_period(struct deadline_list *l, int64_t period_ms);

/* deadline_arm - (re)arm n on l to expire at now + period.  Re-arms that would
 * move an armed node by less than period/16 are skipped (cheap for chatty peers). */
void deadline_arm(struct deadline_list *l, struct deadline_node *n, int64_t now_ms);

/* deadline_arm_force - like deadline_arm but never skips. */
void deadline_arm_force(struct deadline_list *l, struct deadline_node *n, int64_t now_ms);

void deadline_disarm(struct deadline_node *n);

/* deadline_pop_expired - the head node if due at now_ms (disarmed), else NULL. */
struct deadline_node *deadline_pop_expired(struct deadline_list *l, int64_t now_ms);

/* deadline_next_ms - due time of the head, or INT64_MAX when empty. */
int64_t deadline_next_ms(const struct deadline_list *l);

static inline int
deadline_armed(const struct deadline_node *n)
{
    return n->list != 0;
}

#endif
