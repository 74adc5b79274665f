/*
 * peers - open connections per client address, for --max-connections-per-ip.
 *
 * Each worker counts its own connections in a table that lives in its stats
 * slot (stats.h), in the pages after the slot's values: a slot is then larger
 * than a page (the master sizes it with peers_slot_bytes when the limit is on).
 * Only the worker writes its table; at accept it sums one address over the
 * tables of every live slot, so the limit holds for the whole daemon.  A
 * respawned worker clears its table (its predecessor's connections are gone).
 *
 * A table is open addressing with linear probing over entries of three 64-bit
 * atomics (the address as 16 bytes, a count).  An entry once used keeps an
 * address (count 0: free to be taken by another address on its probe path), so
 * no entry ever moves and a reader of another worker's table needs no lock; a
 * count it reads while its owner changes an entry may be off by that one
 * connection.  At most PEERS_PROBES entries are looked at per address: an
 * address that finds no place (a table full of other live addresses) is not
 * counted, and is admitted (peers_add returns -1).
 *
 * Addresses are keys of 16 bytes: IPv6 as is, IPv4 as its IPv4-mapped IPv6
 * address (::ffff:a.b.c.d), so both spellings of one client count together.
 * The all-zero key (::) is no client's and marks an unused entry.
 */
#ifndef PERSONAD_PEERS_H
#define PERSONAD_PEERS_H

#include <stdint.h>

#include "stats.h"

#define PEERS_OFFSET 4096u       /* the table's start in a slot: after the values' page */
#define PEERS_PROBES 32u         /* entries looked at per address */
#define PEERS_MAX_ENTRIES 32768u /* per worker */

struct peer_entry {
    _Atomic uint64_t hi, lo; /* the address, big-endian halves */
    _Atomic uint64_t count;
};

_Static_assert(sizeof(struct stats_slot) <= PEERS_OFFSET, "the values fit before the table");

/* peers_slot_bytes - the slot size (a power of two >= page_bytes) whose table
 * holds at least want entries (at most PEERS_MAX_ENTRIES). */
uint32_t peers_slot_bytes(uint32_t page_bytes, uint32_t want);

/* peers_capacity - the entries of a table in a slot of slot_bytes (a power
 * of two; 0 when the slot has no room for one). */
uint32_t peers_capacity(uint32_t slot_bytes);

/* peers_clear - empty the caller's own table (a new worker in the slot). */
void peers_clear(struct stats_slot *own, uint32_t slot_bytes);

/* peers_add - count one more (delta 1) or one less (-1) connection from key in
 * the caller's own table.  0, or -1 when key found no place (not counted; a
 * -1 for a key that is not there changes nothing). */
int peers_add(struct stats_slot *own, uint32_t slot_bytes, const uint8_t key[16], int delta);

/* peers_get - connections from key in any slot's table (loads only). */
uint64_t peers_get(const struct stats_slot *sl, uint32_t slot_bytes, const uint8_t key[16]);

#endif
