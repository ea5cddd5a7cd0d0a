/*
 * nicache-int.h - what lib/nicache.c offers beyond its public header,
 * for the unit tests and fuzz targets; not part of the public API.
 */
#ifndef CAIRN_NICACHE_INT_H
#define CAIRN_NICACHE_INT_H

#include "cairn/nicache.h"

/* Delete every expired row now; returns the number of narinfo rows gone. */
int cairn_nicache_purge(struct cairn_nicache *c, int64_t now, struct cairn_error *err);

#endif
