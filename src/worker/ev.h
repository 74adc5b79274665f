/*
 * ev - what a registration in a worker's epoll set points at.
 *
 * Every event source in the loop (libmicrohttpd's epoll fd, the master's
 * doorbell pipe, the signal pipe, each stream connection) embeds a struct
 * ev_handler, and its epoll registration's data.ptr points at it: the loop
 * calls h->on_event(h, events) and knows no kinds of source.  The handler
 * finds its container with EV_CONTAINER (connections embed it first).
 *
 * The helpers return 0 or -1 with errno, like epoll_ctl(2).
 */
#ifndef PERSONAD_EV_H
#define PERSONAD_EV_H

#include <stddef.h>
#include <stdint.h>

struct ev_handler {
    void (*on_event)(struct ev_handler *h, uint32_t events);
};

/* EV_CONTAINER - the struct of type holding handler h as member. */
#define EV_CONTAINER(h, type, member) ((type *)(void *)((char *)(h)-offsetof(type, member)))

/* ev_add - watch fd for events (EPOLLIN, EPOLLOUT, ...); h is called. */
int ev_add(int epfd, int fd, uint32_t events, struct ev_handler *h);

/* ev_mod - change the events watched on fd (registered with h). */
int ev_mod(int epfd, int fd, uint32_t events, struct ev_handler *h);

/* ev_del - stop watching fd. */
int ev_del(int epfd, int fd);

#endif
