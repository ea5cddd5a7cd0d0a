/*
 * map.h - the one string-keyed hash map of libcairn (chained, FNV-1a,
 * grows at load 1).  Not thread-safe: its owner holds the lock.  Not
 * installed.
 *
 * Keys are copied; values are the owner's unless the map was given a
 * free_val, which map_release/map_free and a replacing map_put
 * (with old == NULL) call on them.
 */
#ifndef CAIRN_MAP_H
#define CAIRN_MAP_H

#include <stddef.h>
#include <stdint.h>

struct map_ent {
	struct map_ent *next;
	void *val;
	char key[];
};

struct map {
	struct map_ent **slots;
	size_t n_slots;
	size_t n; /* entries */
	void (*free_val)(void *);
};

/* FNV-1a, 64 bits: the map's hash, and a cheap fingerprint of bytes. */
uint64_t map_hash(const void *data, size_t len);

/* An empty map (allocates nothing); free_val may be NULL. */
void map_init(struct map *m, void (*free_val)(void *));
/* Frees the entries, and the values with free_val; m is then empty and
 * usable again (free_val kept). */
void map_release(struct map *m);
/* A heap-allocated map_init'ed map, or NULL; map_free releases and frees it. */
struct map *map_new(void (*free_val)(void *));
void map_free(struct map *m);

/* The value of key, or NULL. */
void *map_get(const struct map *m, const char *key);
/*
 * Set key to val.  A replaced value goes to *old when old is not NULL,
 * else to free_val (unless it is val itself).  CAIRN_ENOMEM leaves m as it
 * was, val still the caller's.
 */
int map_put(struct map *m, const char *key, void *val, void **old);
/* Remove key: its value (not freed), or NULL. */
void *map_take(struct map *m, const char *key);

/*
 * Walking the map, in no order:
 *     struct map_iter it;
 *     for (struct map_ent *e = map_iter_first(&it, m); e; e = map_iter_next(&it))
 * The entry just returned may be map_take'n; no other change during a walk.
 */
struct map_iter {
	const struct map *m;
	size_t slot;
	struct map_ent *next;
};
struct map_ent *map_iter_first(struct map_iter *it, const struct map *m);
struct map_ent *map_iter_next(struct map_iter *it);

#endif
