/*
 * net - listening sockets and socket helpers.  OS helpers return 0 or -1 with errno
 * (net_listen fills a message instead, for the start-up error).
 */
#ifndef PERSONAD_NET_H
#define PERSONAD_NET_H

#include <stddef.h>
#include <stdint.h>

#define NET_BACKLOG 1024

/* net_listen - bind addr:port ("" = all addresses, dual-stack when possible).
 * With SO_REUSEPORT, up to want sockets (one per worker, so the kernel spreads
 * connections); without it, one socket that all workers share.  Fails (-1, msg)
 * if anything already listens on the port.  Returns the number of sockets. */
int net_listen(const char *addr, uint16_t port, int *fds, int want, char *msg, size_t msg_size);

/* net_unlisten - stop listening on *fd but keep its port: a fresh socket bound
 * to the same address (with SO_REUSEPORT if *fd has it), not listening,
 * replaces it, and the old one is closed.  Connections queued on it are reset;
 * with SO_REUSEPORT the kernel sends new ones to the group's other listening
 * sockets, or refuses them when none is left.  Returns 0, or -1 with errno:
 * then *fd is unchanged and still listening (SO_REUSEPORT), or -1 (a socket
 * without SO_REUSEPORT is closed before the address can be bound again). */
int net_unlisten(int *fd);

/* net_relisten - make a socket from net_unlisten listen again. */
int net_relisten(int fd);

struct sockaddr;

/* net_peer_key - a client's address as 16 bytes: IPv6 as is, IPv4 as its
 * IPv4-mapped IPv6 address (so ::ffff:a.b.c.d and a.b.c.d are one client).
 * 0, or -1 for another family (nothing to count). */
int net_peer_key(const struct sockaddr *sa, unsigned len, uint8_t key[16]);

int net_set_nonblock(int fd);
int net_set_cloexec(int fd);

/* net_peer_name - "ADDR:PORT" of a connected socket into buf ("?" on failure). */
void net_peer_name(int fd, char *buf, size_t size);

/* net_raise_nofile - raise RLIMIT_NOFILE's soft limit to want descriptors, or
 * as far as the hard limit allows; never lower it.  *soft and *hard get the
 * limits in force afterwards (UINT64_MAX: unlimited).  Returns 0, or -1 with
 * errno when getrlimit/setrlimit failed; the caller compares *soft with want. */
int net_raise_nofile(uint64_t want, uint64_t *soft, uint64_t *hard);

#endif
