/*
 * map.c - the string-keyed hash map (lib/map.h) that the publisher, the
 * mirror and the survey share.
 */
#include "map.h"

#include <stdlib.h>
#include <string.h>

#include "cairn/error.h"
#include "cairn/banned.h"

#define MAP_MIN_SLOTS 16

uint64_t map_hash(const void *data, size_t len)
{
	const unsigned char *p = data;
	uint64_t h = 14695981039346656037ull; /* the FNV offset basis */
	for (size_t i = 0; i < len; i++)
		h = (h ^ p[i]) * 1099511628211ull;
	return h;
}

static size_t slot_of(const char *key, size_t n_slots)
{
	return (size_t)(map_hash(key, strlen(key)) & (n_slots - 1));
}

void map_init(struct map *m, void (*free_val)(void *))
{
	m->slots = NULL;
	m->n_slots = 0;
	m->n = 0;
	m->free_val = free_val;
}

void map_release(struct map *m)
{
	for (size_t i = 0; i < m->n_slots; i++) {
		struct map_ent *e = m->slots[i], *next;
		for (; e; e = next) {
			next = e->next;
			if (m->free_val)
				m->free_val(e->val);
			free(e);
		}
	}
	free(m->slots);
	map_init(m, m->free_val);
}

struct map *map_new(void (*free_val)(void *))
{
	struct map *m = malloc(sizeof(*m));
	if (m)
		map_init(m, free_val);
	return m;
}

void map_free(struct map *m)
{
	if (!m)
		return;
	map_release(m);
	free(m);
}

static struct map_ent **find(const struct map *m, const char *key)
{
	if (!m->n_slots)
		return NULL;
	struct map_ent **pp = &m->slots[slot_of(key, m->n_slots)];
	for (; *pp; pp = &(*pp)->next)
		if (!strcmp((*pp)->key, key))
			return pp;
	return NULL;
}

void *map_get(const struct map *m, const char *key)
{
	struct map_ent **pp = find(m, key);
	return pp ? (*pp)->val : NULL;
}

/* A power of two, so that a slot is the hash's low bits. */
static int grow(struct map *m)
{
	size_t n = m->n_slots ? m->n_slots * 2 : MAP_MIN_SLOTS;
	if (n < m->n_slots || n > SIZE_MAX / sizeof(struct map_ent *))
		return CAIRN_ENOMEM;
	struct map_ent **slots = calloc(n, sizeof(*slots));
	if (!slots)
		return CAIRN_ENOMEM;
	for (size_t i = 0; i < m->n_slots; i++) {
		struct map_ent *e = m->slots[i], *next;
		for (; e; e = next) {
			next = e->next;
			size_t j = slot_of(e->key, n);
			e->next = slots[j];
			slots[j] = e;
		}
	}
	free(m->slots);
	m->slots = slots;
	m->n_slots = n;
	return 0;
}

int map_put(struct map *m, const char *key, void *val, void **old)
{
	if (old)
		*old = NULL;
	struct map_ent **pp = find(m, key);
	if (pp) {
		void *prev = (*pp)->val;
		(*pp)->val = val;
		if (old)
			*old = prev;
		else if (m->free_val && prev != val)
			m->free_val(prev);
		return 0;
	}
	/* A failed grow only makes chains longer while there are slots. */
	if (m->n >= m->n_slots && grow(m) < 0 && !m->n_slots)
		return CAIRN_ENOMEM;
	size_t kl = strlen(key);
	struct map_ent *e = malloc(sizeof(*e) + kl + 1);
	if (!e)
		return CAIRN_ENOMEM;
	memcpy(e->key, key, kl + 1);
	e->val = val;
	size_t j = slot_of(key, m->n_slots);
	e->next = m->slots[j];
	m->slots[j] = e;
	m->n++;
	return 0;
}

void *map_take(struct map *m, const char *key)
{
	struct map_ent **pp = find(m, key);
	if (!pp)
		return NULL;
	struct map_ent *e = *pp;
	void *v = e->val;
	*pp = e->next;
	free(e);
	m->n--;
	return v;
}

static struct map_ent *advance(struct map_iter *it)
{
	while (!it->next && it->slot < it->m->n_slots)
		it->next = it->m->slots[it->slot++];
	struct map_ent *e = it->next;
	if (e)
		it->next = e->next;
	return e;
}

struct map_ent *map_iter_first(struct map_iter *it, const struct map *m)
{
	it->m = m;
	it->slot = 0;
	it->next = NULL;
	return advance(it);
}

struct map_ent *map_iter_next(struct map_iter *it)
{
	return advance(it);
}
