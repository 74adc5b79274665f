/*
 * ev - see ev.h.
 */
#include "build_config.h"

#include <sys/epoll.h>

#include "worker/ev.h"

int
ev_add(int epfd, int fd, uint32_t events, struct ev_handler *h)
{
    struct epoll_event ev = {.events = events, .data.ptr = h};
    return epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev);
}

int
ev_mod(int epfd, int fd, uint32_t events, struct ev_handler *h)
{
    struct epoll_event ev = {.events = events, .data.ptr = h};
    return epoll_ctl(epfd, EPOLL_CTL_MOD, fd, &ev);
}

int
ev_del(int epfd, int fd)
{
    return epoll_ctl(epfd, EPOLL_CTL_DEL, fd, NULL);
}
