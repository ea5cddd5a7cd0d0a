/*
 * metrics.c - the metrics registry (lib/metrics.h): the HTTP layer, the
 * publisher and the mirror register their figures here, and /metrics is
 * one rendering of it.
 */
#include "metrics.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "cairn/banned.h"

enum metric_kind {
	KIND_OWN,	/* value */
	KIND_AT,	/* *src */
	KIND_COLLECTOR, /* fn(ctx) */
};

struct metric {
	struct metric *next; /* in registration order */
	enum metric_type type;
	enum metric_kind kind;
	uint64_t value; /* __atomic; a gauge's int64_t bits */
	const atomic_uint_fast64_t *src;
	metrics_collect_fn fn;
	void *ctx;
	char *help;
	char name[];
};

struct metrics {
	pthread_mutex_t mu;
	struct metric *head, **tail;
};

struct metrics_out {
	struct cairn_buf *b;
	const struct metric *m;
};

struct metrics *metrics_new(void)
{
	struct metrics *r = malloc(sizeof(*r));
	if (!r)
		return NULL;
	pthread_mutex_init(&r->mu, NULL);
	r->head = NULL;
	r->tail = &r->head;
	return r;
}

void metrics_free(struct metrics *r)
{
	if (!r)
		return;
	for (struct metric *m = r->head, *next; m; m = next) {
		next = m->next;
		free(m->help);
		free(m);
	}
	pthread_mutex_destroy(&r->mu);
	free(r);
}

static int ends_with(const char *s, size_t len, const char *suffix)
{
	size_t sl = strlen(suffix);
	return len >= sl && !memcmp(s + len - sl, suffix, sl);
}

/* The name rules of metrics.h; 0 or CAIRN_EINVAL with the reason. */
static int check_name(const char *name, enum metric_type type, struct cairn_error *err)
{
	static const char *const units[] = {"_bytes", "_seconds"};
	size_t len = strlen(name);
	if (len == 0 || len > METRICS_NAME_MAX)
		return cairn_error_set(err, CAIRN_EINVAL, "metrics: bad name length (%zu)", len);
	for (size_t i = 0; i < len; i++) {
		char c = name[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == ':' ||
		      (i > 0 && c >= '0' && c <= '9')))
			return cairn_error_set(err, CAIRN_EINVAL,
					       "metrics: '%s' is not a metric name", name);
	}
	int total = ends_with(name, len, "_total");
	if (type == METRIC_COUNTER && !total)
		return cairn_error_set(err, CAIRN_EINVAL,
				       "metrics: counter '%s' does not end in _total", name);
	if (type == METRIC_GAUGE && total)
		return cairn_error_set(err, CAIRN_EINVAL, "metrics: gauge '%s' ends in _total",
				       name);
	size_t base = total ? len - strlen("_total") : len;
	for (size_t u = 0; u < sizeof(units) / sizeof(units[0]); u++) {
		size_t ul = strlen(units[u]);
		for (const char *p = strstr(name, units[u]); p; p = strstr(p + 1, units[u])) {
			size_t at = (size_t)(p - name);
			/* a word of its own (not "_bytesize") and the last one */
			int word = at + ul == len || name[at + ul] == '_';
			if (word && at + ul != base)
				return cairn_error_set(err, CAIRN_EINVAL,
						       "metrics: '%s': the unit %s is not the "
						       "last word",
						       name, units[u] + 1);
		}
	}
	return 0;
}

/* A new metric, not yet in the registry (enlist() puts it there). */
static int make(const char *name, enum metric_type type, const char *help, enum metric_kind kind,
		struct metric **out, struct cairn_error *err)
{
	int rc;
	if (!name || !help)
		return cairn_error_set(err, CAIRN_EINVAL, "metrics: bad registration");
	if ((rc = check_name(name, type, err)) < 0)
		return rc;
	if (strlen(help) > METRICS_HELP_MAX)
		return cairn_error_set(err, CAIRN_ELIMIT, "metrics: help of '%s' too long", name);
	size_t nl = strlen(name);
	struct metric *m = calloc(1, sizeof(*m) + nl + 1);
	char *h = strdup(help);
	if (!m || !h) {
		free(m);
		free(h);
		return cairn_error_set(err, CAIRN_ENOMEM, "metrics: out of memory");
	}
	memcpy(m->name, name, nl + 1);
	m->help = h;
	m->type = type;
	m->kind = kind;
	*out = m;
	return 0;
}

/* Append m (filled in) to r, or free it when its name is taken. */
static int enlist(struct metrics *r, struct metric *m, struct cairn_error *err)
{
	pthread_mutex_lock(&r->mu);
	for (struct metric *x = r->head; x; x = x->next)
		if (!strcmp(x->name, m->name)) {
			pthread_mutex_unlock(&r->mu);
			int rc = cairn_error_set(err, CAIRN_EINVAL,
						 "metrics: '%s' is registered twice", m->name);
			free(m->help);
			free(m);
			return rc;
		}
	*r->tail = m;
	r->tail = &m->next;
	pthread_mutex_unlock(&r->mu);
	return 0;
}

static int own(struct metrics *r, const char *name, enum metric_type type, const char *help,
	       struct metric **out, struct cairn_error *err)
{
	struct metric *m;
	int rc;
	if (!r || !out)
		return cairn_error_set(err, CAIRN_EINVAL, "metrics: bad registration");
	if ((rc = make(name, type, help, KIND_OWN, &m, err)) < 0 || (rc = enlist(r, m, err)) < 0)
		return rc;
	*out = m;
	return 0;
}

int metrics_counter(struct metrics *r, const char *name, const char *help, struct metric **out,
		    struct cairn_error *err)
{
	return own(r, name, METRIC_COUNTER, help, out, err);
}

int metrics_gauge(struct metrics *r, const char *name, const char *help, struct metric **out,
		  struct cairn_error *err)
{
	return own(r, name, METRIC_GAUGE, help, out, err);
}

int metrics_counter_at(struct metrics *r, const char *name, const char *help,
		       const atomic_uint_fast64_t *src, struct cairn_error *err)
{
	struct metric *m;
	int rc;
	if (!r || !src)
		return cairn_error_set(err, CAIRN_EINVAL, "metrics: bad registration");
	if ((rc = make(name, METRIC_COUNTER, help, KIND_AT, &m, err)) < 0)
		return rc;
	m->src = src;
	return enlist(r, m, err);
}

int metrics_collector(struct metrics *r, const char *name, enum metric_type type,
		      const char *help, metrics_collect_fn fn, void *ctx, struct cairn_error *err)
{
	struct metric *m;
	int rc;
	if (!r || !fn)
		return cairn_error_set(err, CAIRN_EINVAL, "metrics: bad registration");
	if ((rc = make(name, type, help, KIND_COLLECTOR, &m, err)) < 0)
		return rc;
	m->fn = fn;
	m->ctx = ctx;
	return enlist(r, m, err);
}

void metric_add(struct metric *m, uint64_t v)
{
	__atomic_fetch_add(&m->value, v, __ATOMIC_RELAXED);
}

void metric_sub(struct metric *m, uint64_t v)
{
	if (m->type != METRIC_GAUGE)
		BUG("metrics: %s is a counter: it only goes up", m->name);
	__atomic_fetch_sub(&m->value, v, __ATOMIC_RELAXED);
}

void metric_set(struct metric *m, int64_t v)
{
	if (m->type != METRIC_GAUGE)
		BUG("metrics: %s is a counter: it is not set", m->name);
	__atomic_store_n(&m->value, (uint64_t)v, __ATOMIC_RELAXED);
}

uint64_t metric_value(const struct metric *m)
{
	return __atomic_load_n(&m->value, __ATOMIC_RELAXED);
}

/* s with the escapes of the format: \\ and \n always, \" in label values. */
static int put_escaped(struct cairn_buf *b, const char *s, int quote)
{
	int rc = 0;
	for (; *s && rc == 0; s++) {
		if (*s == '\\')
			rc = cairn_buf_puts(b, "\\\\");
		else if (*s == '\n')
			rc = cairn_buf_puts(b, "\\n");
		else if (quote && *s == '"')
			rc = cairn_buf_puts(b, "\\\"");
		else
			rc = cairn_buf_putc(b, *s);
	}
	return rc;
}

static int put_series(struct metrics_out *o, const struct metric_label *labels, size_t n)
{
	int rc = cairn_buf_puts(o->b, o->m->name);
	for (size_t i = 0; i < n && rc == 0; i++) {
		rc = cairn_buf_printf(o->b, "%c%s=\"", i ? ',' : '{', labels[i].name);
		if (rc == 0)
			rc = put_escaped(o->b, labels[i].value, 1);
		if (rc == 0)
			rc = cairn_buf_putc(o->b, '"');
	}
	if (rc == 0 && n)
		rc = cairn_buf_putc(o->b, '}');
	return rc < 0 ? CAIRN_ELIMIT : 0;
}

int metrics_emit(struct metrics_out *o, const struct metric_label *labels, size_t n, uint64_t v)
{
	int rc = put_series(o, labels, n);
	if (rc == 0 && o->m->type == METRIC_GAUGE)
		rc = cairn_buf_printf(o->b, " %lld\n", (long long)(int64_t)v);
	else if (rc == 0)
		rc = cairn_buf_printf(o->b, " %llu\n", (unsigned long long)v);
	return rc < 0 ? CAIRN_ELIMIT : 0;
}

int metrics_emit_ns(struct metrics_out *o, const struct metric_label *labels, size_t n,
		    uint64_t ns)
{
	/* exact, where a double would round large totals */
	int rc = put_series(o, labels, n);
	if (rc == 0)
		rc = cairn_buf_printf(o->b, " %llu.%09llu\n", (unsigned long long)(ns / 1000000000u),
				      (unsigned long long)(ns % 1000000000u));
	return rc < 0 ? CAIRN_ELIMIT : 0;
}

int metrics_render(struct metrics *r, struct cairn_buf *out)
{
	int rc = 0;
	if (!r || !out)
		return CAIRN_EINVAL;
	pthread_mutex_lock(&r->mu);
	for (const struct metric *m = r->head; m && rc == 0; m = m->next) {
		struct metrics_out o = {out, m};
		rc = cairn_buf_printf(out, "# HELP %s ", m->name);
		if (rc == 0)
			rc = put_escaped(out, m->help, 0);
		if (rc == 0)
			rc = cairn_buf_printf(out, "\n# TYPE %s %s\n", m->name,
					      m->type == METRIC_COUNTER ? "counter" : "gauge");
		if (rc < 0) {
			rc = CAIRN_ELIMIT;
			break;
		}
		switch (m->kind) {
		case KIND_OWN:
			rc = metrics_emit(&o, NULL, 0, metric_value(m));
			break;
		case KIND_AT:
			rc = metrics_emit(&o, NULL, 0,
					  atomic_load_explicit(m->src, memory_order_relaxed));
			break;
		case KIND_COLLECTOR:
			rc = m->fn(m->ctx, &o);
			break;
		}
	}
	pthread_mutex_unlock(&r->mu);
	return rc;
}
