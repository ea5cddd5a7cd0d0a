/*
 * download-ranges.c - the range scheduler (download-ranges.h): which
 * source asks for which bytes of one file, moved from slow or failed
 * sources to fast ones.
 */
#include <string.h>

#include "download-ranges.h"
#include "cairn/banned.h"

void cairn_rs_init(struct cairn_rs *rs, uint64_t size, unsigned parts, uint64_t min_piece)
{
	memset(rs, 0, sizeof(*rs));
	rs->size = size;
	rs->min_piece = min_piece ? min_piece : 1;
	if (parts == 0)
		parts = 1;
	if (parts > CAIRN_RS_MAX_PIECES / 2)
		parts = CAIRN_RS_MAX_PIECES / 2;
	while (parts > 1 && size / parts < rs->min_piece)
		parts--;
	uint64_t step = size / parts;
	for (unsigned i = 0; i < parts; i++) {
		struct cairn_rs_piece *p = &rs->p[i];
		p->start = step * i;
		p->end = i + 1 == parts ? size : step * (i + 1);
		p->owner = CAIRN_RS_NOBODY;
	}
	rs->n = parts;
}

static uint64_t rate_of(const uint64_t *rates, size_t n_rates, int who)
{
	uint64_t sum = 0, known = 0;
	if (who >= 0 && (size_t)who < n_rates && rates[who])
		return rates[who];
	for (size_t i = 0; i < n_rates; i++)
		if (rates[i]) {
			sum += rates[i];
			known++;
		}
	return known ? sum / known : 1;
}

static uint64_t left(const struct cairn_rs_piece *p)
{
	return p->end - p->start - p->done;
}

size_t cairn_rs_take(struct cairn_rs *rs, int who, const uint64_t *rates, size_t n_rates)
{
	/* the earliest free piece first: it is the one the pipeline waits for */
	size_t best = CAIRN_RS_NONE;
	for (size_t i = 0; i < rs->n; i++)
		if (rs->p[i].owner == CAIRN_RS_NOBODY && left(&rs->p[i]) &&
		    (best == CAIRN_RS_NONE || rs->p[i].start < rs->p[best].start))
			best = i;
	if (best != CAIRN_RS_NONE) {
		rs->p[best].owner = who;
		return best;
	}
	/* steal from the piece that would end last */
	double worst = 0;
	for (size_t i = 0; i < rs->n; i++) {
		const struct cairn_rs_piece *p = &rs->p[i];
		if (p->owner == who || p->owner == CAIRN_RS_NOBODY || !left(p))
			continue;
		double t = (double)left(p) / (double)rate_of(rates, n_rates, p->owner);
		if (t > worst) {
			worst = t;
			best = i;
		}
	}
	if (best == CAIRN_RS_NONE || rs->n >= CAIRN_RS_MAX_PIECES)
		return CAIRN_RS_NONE;
	struct cairn_rs_piece *v = &rs->p[best];
	uint64_t rv = rate_of(rates, n_rates, v->owner), rw = rate_of(rates, n_rates, who);
	uint64_t rem = left(v);
	uint64_t share = (uint64_t)((double)rem * (double)rw / (double)(rv + rw));
	uint64_t split;
	if (share >= rs->min_piece && rem - share >= rs->min_piece)
		split = v->end - share;
	else if (rw > 2 * rv)
		split = v->start + v->done; /* the slow owner stops at what it has */
	else
		return CAIRN_RS_NONE;
	struct cairn_rs_piece *np = &rs->p[rs->n];
	np->start = split;
	np->end = v->end;
	np->done = 0;
	np->owner = who;
	v->end = split;
	return rs->n++;
}

uint64_t cairn_rs_progress(struct cairn_rs *rs, size_t i, uint64_t n)
{
	struct cairn_rs_piece *p = &rs->p[i];
	uint64_t room = left(p);
	if (n > room)
		n = room;
	p->done += n;
	return n;
}

void cairn_rs_release(struct cairn_rs *rs, size_t i)
{
	rs->p[i].owner = CAIRN_RS_NOBODY;
}

uint64_t cairn_rs_contig(struct cairn_rs *rs)
{
	for (;;) {
		const struct cairn_rs_piece *f = &rs->p[rs->front];
		if (f->start + f->done < f->end || f->end >= rs->size)
			return f->start + f->done;
		size_t next = CAIRN_RS_NONE;
		for (size_t i = 0; i < rs->n; i++)
			if (rs->p[i].start == f->end && rs->p[i].end > rs->p[i].start)
				next = i;
		if (next == CAIRN_RS_NONE)
			return f->end; /* cannot happen: the pieces cover the file */
		rs->front = next;
	}
}
