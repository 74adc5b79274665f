/*
 * vec - insert into and remove from a growable array of fixed-size items, kept
 * in the caller's order (the master's sorted tables: the store's records, the
 * personas directory's entries).  The caller owns the array and its items.
 */
#ifndef PERSONAD_VEC_H
#define PERSONAD_VEC_H

#include <stddef.h>

/* vec_insert - open a zeroed slot at index at (0..*n) of the array items of *n
 * items of size bytes, growing it (doubling, from 64) when *n == *cap.  Returns
 * the array (moved if it grew), with *slot the new item; or NULL (out of memory
 * or size overflow), and then items, *n and *cap are unchanged. */
void *vec_insert(void *items, size_t *n, size_t *cap, size_t size, size_t at, void **slot);

/* vec_remove - close the slot at index at (0..*n-1); the item's own resources
 * are the caller's to free first. */
void vec_remove(void *items, size_t *n, size_t size, size_t at);

#endif
