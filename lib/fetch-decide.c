/*
 * fetch-decide.c - from what the servers answered to an accepted claim:
 * the trust decision (trust.h), what a store records about the item, its
 * references, and answers that come after an early decision.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cairn/nar.h"
#include "cairn/narinfo.h"
#include "cairn/nicache.h"
#include "cairn/storedb-write.h"
#include "cairn/storepath.h"
#include "cairn/survey.h"
#include "cairn/trust.h"
#include "fetch-int.h"
#include "cairn/banned.h"

/* ---- deciding ------------------------------------------------------------ */

/* What each server said, for the trust module (trust.h). */
static void trust_answer(struct item *it, struct answer *a, struct cairn_trust_answer *ta)
{
	struct cairn_fetch *f = it->f;
	ta->server = f->servers[a->si].url;
	switch (a->state) {
	case A_PRESENT:
		ta->state = CAIRN_TRUST_PRESENT;
		ta->ni = a->ni;
		break;
	case A_ABSENT: ta->state = CAIRN_TRUST_ABSENT; break;
	case A_INVALID:
		ta->state = CAIRN_TRUST_INVALID;
		ta->error = a->msg ? a->msg : "not a narinfo";
		break;
	case A_PENDING:
		ta->state = CAIRN_TRUST_ERROR;
		ta->error = "no answer yet";
		break;
	default:
		ta->state = CAIRN_TRUST_ERROR;
		ta->error = a->msg ? a->msg : "no answer";
		break;
	}
}

/* Servers by preference: a demoted one last (its bytes failed
 * verification); then nix-cache-info's Priority (lower first), then the
 * faster in earlier runs, then the order given.  What Priority said may
 * have come in meanwhile. */
static long prio(const struct cairn_fetch *f, size_t i)
{
	long p = cairn_http_server_info(f->servers[i].hs)->priority;
	return f->servers[i].demoted ? p + ((long)1 << 40) : p;
}

static void preference(const struct cairn_fetch *f, size_t *order)
{
	size_t n = f->n_servers;
	for (size_t i = 0; i < n; i++)
		order[i] = i;
	/* Insertion sort: a handful of servers, and it is stable. */
	for (size_t i = 1; i < n; i++) {
		size_t x = order[i], j = i;
		while (j > 0 && (prio(f, order[j - 1]) > prio(f, x) ||
				 (prio(f, order[j - 1]) == prio(f, x) &&
				  f->servers[order[j - 1]].speed < f->servers[x].speed))) {
			order[j] = order[j - 1];
			j--;
		}
		order[j] = x;
	}
}

static int cstr_cmp(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/*
 * What a store records about the accepted group: the references as full
 * paths, a deriver (unsigned, so the best server's hint), the signatures
 * that verified with a trusted key on any narinfo of the group, and a CA
 * the path recomputes from.  0 or CAIRN_ENOMEM.
 */
static int record_info(struct item *it, int chosen)
{
	struct cairn_fetch *f = it->f;
	const struct cairn_narinfo *ni = NULL;
	size_t nsig = 0;
	char buf[CAIRN_STORE_PATH_MAX];
	for (size_t i = 0; i < f->n_servers; i++) {
		const struct answer *a = &it->ans[i];
		if (a->group != chosen)
			continue;
		if (!ni)
			ni = a->ni;
		nsig += (size_t)__builtin_popcount(a->sigs_ok);
		if (!it->ca_text && a->ca_ok)
			it->ca_text = a->ni->ca;
		struct cairn_store_path dsp;
		if (!it->deriver && a->ni->deriver &&
		    !cairn_store_path_parse_base(a->ni->deriver, strlen(a->ni->deriver), &dsp,
						 NULL) &&
		    cairn_store_path_format(&dsp, f->store_dir, buf, sizeof(buf)) > 0 &&
		    !(it->deriver = strdup(buf)))
			return CAIRN_ENOMEM;
	}
	if (!ni)
		return 0;
	if (ni->n_refs) {
		it->refs = calloc(ni->n_refs, sizeof(char *));
		if (!it->refs)
			return CAIRN_ENOMEM;
	}
	for (size_t i = 0; i < ni->n_refs; i++) {
		size_t n = strlen(f->store_dir) + 1 + strlen(ni->refs[i]) + 1;
		if (!(it->refs[i] = malloc(n)))
			return CAIRN_ENOMEM;
		snprintf(it->refs[i], n, "%s/%s", f->store_dir, ni->refs[i]);
		it->n_refs++;
	}
	if (it->n_refs > 1)
		qsort(it->refs, it->n_refs, sizeof(char *), cstr_cmp);
	if (nsig) {
		it->sigs = calloc(nsig, sizeof(char *));
		if (!it->sigs)
			return CAIRN_ENOMEM;
	}
	for (size_t i = 0; i < f->n_servers; i++) {
		const struct answer *a = &it->ans[i];
		for (size_t k = 0; a->group == chosen && k < a->ni->n_sigs && k < 32; k++)
			if (a->sigs_ok & ((uint32_t)1 << k))
				it->sigs[it->n_sigs++] = a->ni->sigs[k];
	}
	/* A store keeps a set: sorted, each once, as many as it reads back. */
	if (it->n_sigs > 1)
		qsort(it->sigs, it->n_sigs, sizeof(char *), cstr_cmp);
	size_t k = 0;
	for (size_t i = 0; i < it->n_sigs; i++)
		if ((!k || strcmp(it->sigs[i], it->sigs[k - 1])) && k < CAIRN_STOREDB_SIGS_MAX)
			it->sigs[k++] = it->sigs[i];
	it->n_sigs = k;
	return 0;
}

/*
 * Link it to its references.  With the closure, each becomes an item of
 * the run.  Without, a reference must be an item of this run (it is then
 * committed first) or already in the target (valid in its database): a
 * store never holds a path whose references it lacks, so anything else
 * fails the item, naming what is missing.  NARs in NAR_DIR stand alone.
 * False when the item failed.
 */
static bool resolve_refs(struct item *it, const struct cairn_narinfo *ni)
{
	struct cairn_fetch *f = it->f;
	struct cairn_buf missing = CAIRN_BUF_INIT(CAIRN_FETCH_REASON_MAX / 2);
	size_t n_missing = 0;
	bool ok = false;
	if (ni->n_refs) {
		it->deps = calloc(ni->n_refs, sizeof(*it->deps));
		if (!it->deps) {
			fetch_item_fail(it, CAIRN_ENOMEM, "out of memory");
			return false;
		}
	}
	for (size_t i = 0; i < ni->n_refs; i++) {
		struct cairn_store_path sp;
		struct cairn_error e;
		cairn_error_init(&e);
		if (cairn_store_path_parse_base(ni->refs[i], strlen(ni->refs[i]), &sp, &e)) {
			fetch_item_fail(it, CAIRN_EFORMAT, "bad reference: %s", cairn_error_msg(&e));
			goto out;
		}
		if (!cairn_store_path_cmp(&sp, &it->sp))
			continue;
		struct item *d = NULL;
		if (f->cfg.closure) {
			int rc = fetch_new_item(f, &sp, false, &d, &e);
			if (rc) {
				fetch_item_fail(it, rc, "%s", cairn_error_msg(&e));
				goto out;
			}
			it->deps[it->n_deps++] = d;
			fetch_item_start(d);
			continue;
		}
		if (f->cfg.nar_dir)
			continue;
		if ((d = fetch_find_item(f, &sp)) != NULL) {
			it->deps[it->n_deps++] = d;
			continue;
		}
		int v = fetch_in_target(f, &sp, &e);
		if (v < 0) {
			fetch_item_fail(it, v, "%s", cairn_error_msg(&e));
			fetch_db_trouble(f, v, &e);
			goto out;
		}
		if (v == 0)
			cairn_buf_printf(&missing, "%s%s", n_missing++ ? ", " : "", ni->refs[i]);
	}
	if (n_missing) {
		fetch_item_fail(it, CAIRN_ENOENT,
			  "%zu reference%s not in the store and not fetched in this run: %s%s "
			  "(fetch them too, or the closure)",
			  n_missing, n_missing == 1 ? " is" : "s are",
			  missing.data ? missing.data : "", missing.len >= missing.max ? "..." : "");
		goto out;
	}
	ok = true;
out:
	cairn_buf_release(&missing);
	return ok;
}


/*
 * The servers' order (--from, Priority) is the order their bytes are
 * asked for, as Nix asks its substituters one after the other: a server
 * that happened to answer first must not jump the queue (it made which
 * server sends the NAR depend on the load).  So an answer that is
 * acceptable on its own waits while a server preferred over every member
 * of its group has not answered, but only for a grace: a slow server is
 * then a later source of the bytes, not a wait for all.  The grace is
 * FETCH_PRIORITY_GRACE_RTTS times the slowest waited-for server's time to
 * first byte kept from earlier runs (a request on a new connection pays a
 * round trip before its own, and the server's time on top), at least
 * FETCH_PRIORITY_GRACE_MIN_S (a loaded machine's scheduling), at most
 * FETCH_PRIORITY_GRACE_S, which is also the grace for a server never
 * measured.  A demoted server is never waited for, and is not the first
 * asked for bytes while one that is not could still answer (no grace: it
 * failed).
 */
static double grace_for(double rtt_s)
{
	if (rtt_s <= 0)
		return FETCH_PRIORITY_GRACE_S;
	double g = FETCH_PRIORITY_GRACE_RTTS * rtt_s;
	if (g < FETCH_PRIORITY_GRACE_MIN_S)
		g = FETCH_PRIORITY_GRACE_MIN_S;
	return g < FETCH_PRIORITY_GRACE_S ? g : FETCH_PRIORITY_GRACE_S;
}

bool fetch_early_go(const struct early_view *v, size_t n, double waited, double *grace)
{
	bool good_member = false, good_pending = false, before = false;
	double g = 0;
	for (size_t k = 0; k < n; k++) {
		if (v[k].demoted)
			continue;
		if (v[k].pending && !good_member) {
			double gk = grace_for(v[k].rtt_s);
			if (gk > g)
				g = gk;
		}
		if (v[k].member && !good_member && good_pending)
			before = true; /* a preferred server could still answer */
		good_member |= v[k].member;
		good_pending |= v[k].pending;
	}
	if (grace)
		*grace = g;
	if (!good_member)
		return !good_pending;
	return !before || waited >= g;
}

void fetch_decide(struct item *it, bool early)
{
	struct cairn_fetch *f = it->f;
	size_t ns = f->n_servers;
	struct cairn_trust_answer *ta = calloc(ns, sizeof(*ta));
	struct cairn_trust_verdict *v = malloc(sizeof(*v));
	size_t *order = calloc(ns, sizeof(*order));
	if (!ta || !v || !order) {
		fetch_item_fail(it, CAIRN_ENOMEM, "out of memory");
		goto out;
	}
	/* The trust decision takes the answers in the order of preference:
	 * with K = 1 the first acceptable group is the best server's. */
	preference(f, order);
	for (size_t k = 0; k < ns; k++)
		trust_answer(it, &it->ans[order[k]], &ta[k]);
	struct cairn_trust_policy pol = {.keys = f->cfg.keys,
					 .require_sigs = f->cfg.require_sigs,
					 .store_dir = f->store_dir};
	int rc = cairn_trust_decide(ta, ns, it->path, &it->sp, &pol, v);
	if (rc && early)
		goto out; /* not yet: wait for more answers */
	if (early) {
		struct early_view *ev = calloc(ns, sizeof(*ev));
		if (!ev) {
			fetch_item_fail(it, CAIRN_ENOMEM, "out of memory");
			goto out;
		}
		for (size_t k = 0; k < ns; k++) {
			size_t si = order[k];
			ev[k].demoted = f->servers[si].demoted != NULL;
			ev[k].pending = it->ans[si].state == A_PENDING;
			ev[k].member = ta[k].group == v->chosen;
			ev[k].rtt_s = (double)f->servers[si].rtt_ms / 1000.0;
		}
		bool go = fetch_early_go(ev, ns, fetch_now_s() - it->t_start, &it->grace_s);
		free(ev);
		if (!go) {
			if (!it->early_waiting)
				f->n_early_waiting++;
			it->early_waiting = true;
			goto out;
		}
		/* A file big enough to come from several servers at once waits
		 * for every answer: a server that answers later would only be
		 * asked after the first failed (download-int.h). */
		const struct cairn_narinfo_url *u = &v->ni->urls[0];
		bool pending = false;
		for (size_t k = 0; k < ns; k++)
			pending |= it->ans[k].state == A_PENDING;
		if (pending && f->cfg.multi_min && u->has_file_size &&
		    u->file_size >= f->cfg.multi_min) {
			/* decided again as each answer comes, not on the
			 * grace's re-checks */
			if (it->early_waiting) {
				it->early_waiting = false;
				f->n_early_waiting--;
			}
			goto out;
		}
	}
	if (it->early_waiting) {
		it->early_waiting = false;
		f->n_early_waiting--;
	}
	for (size_t k = 0; k < ns; k++) {
		struct answer *a = &it->ans[order[k]];
		a->group = ta[k].group;
		a->ca_ok = ta[k].ca_ok;
		a->sigs_ok = ta[k].sigs_ok;
	}
	if (rc) {
		/* Say why per server (down, refused, unsigned), except when signed
		 * groups disagree: the headline names them all.  The survey's
		 * messages name their server already. */
		for (size_t k = 0; rc != CAIRN_EHASH && k < ns; k++) {
			if (!ta[k].why[0] || ta[k].state == CAIRN_TRUST_ABSENT)
				continue;
			if (strstr(ta[k].why, ta[k].server))
				fetch_reason_add(it, "%s", ta[k].why);
			else
				fetch_reason_add(it, "%s: %s", ta[k].server, ta[k].why);
		}
		fetch_item_fail(it, rc, "%s", v->reason);
		goto out;
	}
	int chosen = v->chosen;
	it->early = early;
	it->chosen = v->ni;
	it->chosen_group = chosen;
	it->nar_hash = v->ni->nar_hash;
	it->nar_size = v->ni->nar_size;
	it->n_signers = (unsigned)v->groups[chosen].n_signers;
	if (v->by_ca) {
		/* Accepted through CA: the content must match it. */
		it->by_ca = true;
		it->ca = v->ca;
	}
	it->srcs = malloc(ns * sizeof(size_t));
	if (!it->srcs) {
		fetch_item_fail(it, CAIRN_ENOMEM, "out of memory");
		goto out;
	}
	for (size_t k = 0; k < ns; k++)
		if (it->ans[order[k]].group == chosen)
			it->srcs[it->n_srcs++] = order[k];

	/* What the store will record, then references: closure items, items
	 * of this run, or paths already in the target; nothing else. */
	if (record_info(it, chosen)) {
		fetch_item_fail(it, CAIRN_ENOMEM, "out of memory");
		goto out;
	}
	if (!resolve_refs(it, v->ni))
		goto out;
	if (it->on_disk) {
		struct cairn_error e;
		cairn_error_init(&e);
		rc = fetch_check_in_place(it, &e);
		if (rc) {
			fetch_item_fail(it, rc, "%s", cairn_error_msg(&e));
			goto out;
		}
		it->in_place = true;
		it->st = I_VERIFIED;
		f->n_verified++;
		goto out;
	}
	const struct cairn_narinfo_url *u0 = &it->ans[it->srcs[0]].ni->urls[0];
	f->bytes_expected += u0->has_file_size ? u0->file_size : it->nar_size;
	it->st = I_READY;
	f->n_ready++;
out:
	free(ta);
	free(v);
	free(order);
}

/* An answer that came after an early decision (K = 1): a server that
 * claims the same is one more source of the bytes. */

void fetch_late_answer(struct item *it, struct answer *a)
{
	if (!it->chosen || !a->ni || it->st == I_FINAL || it->st == I_VERIFIED ||
	    it->st == I_PLACED || strcmp(a->ni->store_path, it->path) ||
	    !cairn_trust_same_claim(a->ni, it->chosen))
		return;
	a->group = it->chosen_group;
	it->srcs[it->n_srcs++] = a->si;
	if (it->st == I_DOWNLOAD && it->dl) {
		fetch_add_dl_source(it, a->si);
	} else if (it->st == I_WAITING) {
		/* Start over with the sources not tried yet. */
		fetch_download_free(it);
		it->cur_src = it->n_srcs - 1;
		it->st = I_READY;
		it->f->n_ready++;
	}
}
