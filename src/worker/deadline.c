/*
 * deadline - see deadline.h.
 */
#include "build_config.h"

#include <stddef.h>

#include "worker/deadline.h"

void
deadline_list_init(struct deadline_list *l, int64_t period_ms)
{
    l->head = l->tail = NULL;
    l->period_ms = period_ms;
}

void
deadline_list_set_period(struct deadline_list *l, int64_t period_ms)
{
    l->period_ms = period_ms;
    for (struct deadline_node *n = l->head; n != NULL; n = n->next)
        n->due_ms = n->armed_ms + period_ms;
}

void
deadline_disarm(struct deadline_node *n)
{
    struct deadline_list *l = n->list;
    if (l == NULL)
        return;
    if (n->prev != NULL)
        n->prev->next = n->next;
    else
        l->head = n->next;
    if (n->next != NULL)
        n->next->prev = n->prev;
    else
        l->tail = n->prev;
    n->prev = n->next = NULL;
    n->list = NULL;
}

void
deadline_arm_force(struct deadline_list *l, struct deadline_node *n, int64_t now_ms)
{
    deadline_disarm(n);
    n->armed_ms = now_ms;
    n->due_ms = now_ms + l->period_ms;
    n->list = l;
    n->next = NULL;
    n->prev = l->tail;
    if (l->tail != NULL)
        l->tail->next = n;
    else
        l->head = n;
    l->tail = n;
}

void
deadline_arm(struct deadline_list *l, struct deadline_node *n, int64_t now_ms)
{
    if (n->list == l && now_ms - n->armed_ms < l->period_ms / 16)
        return;
    deadline_arm_force(l, n, now_ms);
}

struct deadline_node *
deadline_pop_expired(struct deadline_list *l, int64_t now_ms)
{
    struct deadline_node *n = l->head;
    if (n == NULL || n->due_ms > now_ms)
        return NULL;
    deadline_disarm(n);
    return n;
}

int64_t
deadline_next_ms(const struct deadline_list *l)
{
    return l->head != NULL ? l->head->due_ms : INT64_MAX;
}
