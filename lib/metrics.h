/*
 * metrics.h - the one metrics registry of libcairn, rendered in the
 * Prometheus text exposition format 0.0.4:
 *
 *     # HELP <name> <help, with \ and newline escaped>
 *     # TYPE <name> counter|gauge
 *     <name>[{<label>="<value, with \ " and newline escaped>",...}] <value>
 *
 * one family after another in the order they were registered.  Not
 * installed.
 *
 * Names are checked when registered (CAIRN_EINVAL otherwise), so that every
 * server's /metrics reads alike:
 *   - [a-zA-Z_:][a-zA-Z0-9_:]*, unique in the registry;
 *   - a counter ends in "_total", a gauge does not;
 *   - a unit is the last word before "_total" (or the last word of a
 *     gauge), in the base unit: "..._bytes_total", "..._seconds_total",
 *     never "..._bytes_from_cache_total" or "..._ms".
 * cairn's own are cairn_<role>_<what>[_<unit>]_total for counters,
 * cairn_<role>_<what>[_<unit>] for gauges (role: http, publish, mirror).
 *
 * Values: a counter is a uint64_t, a gauge an int64_t, changed with relaxed
 * atomics from any thread.  Registering and rendering take the registry's
 * lock; a collector runs under it (so it must not register).
 */
#ifndef CAIRN_METRICS_H
#define CAIRN_METRICS_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "cairn/buf.h"
#include "cairn/error.h"

#define METRICS_NAME_MAX 128 /* bytes of a name, without its NUL */
#define METRICS_HELP_MAX 512 /* bytes of a help text, without its NUL */

enum metric_type {
	METRIC_COUNTER,
	METRIC_GAUGE,
};

struct metrics;
struct metric;

/* An empty registry (NULL when out of memory); metrics_free frees it and
 * every metric in it. */
struct metrics *metrics_new(void);
void metrics_free(struct metrics *r);

/* A series of its own, starting at 0, valid as long as the registry. */
int metrics_counter(struct metrics *r, const char *name, const char *help, struct metric **out,
		    struct cairn_error *err);
int metrics_gauge(struct metrics *r, const char *name, const char *help, struct metric **out,
		  struct cairn_error *err);
/* A counter whose value lives elsewhere (read when rendered), e.g. in the
 * struct of the module that counts even without a server; src must outlive
 * the registry's renderings. */
int metrics_counter_at(struct metrics *r, const char *name, const char *help,
		       const atomic_uint_fast64_t *src, struct cairn_error *err);

/* Counters and gauges: add v. */
void metric_add(struct metric *m, uint64_t v);
/* Gauges only (a counter is a BUG()): subtract v, set to v. */
void metric_sub(struct metric *m, uint64_t v);
void metric_set(struct metric *m, int64_t v);
/* The value; a gauge's as int64_t bits. */
uint64_t metric_value(const struct metric *m);

/*
 * A family whose samples a function writes when /metrics is rendered: for
 * values that live under another lock, or with labels.  fn calls
 * metrics_emit* for each sample and returns 0 or a negative cairn_err.
 */
struct metrics_out;
struct metric_label {
	const char *name, *value;
};
typedef int (*metrics_collect_fn)(void *ctx, struct metrics_out *o);
int metrics_collector(struct metrics *r, const char *name, enum metric_type type,
		      const char *help, metrics_collect_fn fn, void *ctx, struct cairn_error *err);
/* One sample of the family being collected (labels may be NULL when n is 0). */
int metrics_emit(struct metrics_out *o, const struct metric_label *labels, size_t n, uint64_t v);
/* The same, for a value counted in nanoseconds and named in seconds. */
int metrics_emit_ns(struct metrics_out *o, const struct metric_label *labels, size_t n,
		    uint64_t ns);

/* Append every family to out: 0, or CAIRN_ELIMIT when out is full, or what
 * a collector returned. */
int metrics_render(struct metrics *r, struct cairn_buf *out);

/* The registry of an HTTP server (lib/httpd.c), which serves it on the
 * routes given cairn_httpd_metrics_handler; the server's own families
 * (cairn_http_*) are in it. */
struct cairn_httpd;
struct metrics *httpd_metrics(struct cairn_httpd *h);

#endif
