/*
 * publish-metrics.c - what the publisher shows on /metrics: its counters
 * (atomics in struct cairn_publish, counted with or without a server),
 * its queues and cache size (read under their locks when rendered), and
 * the compression figures per method, in the server's registry
 * (lib/metrics.h).
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>

#include "cairn/codec.h"
#include "metrics.h"
#include "narcache.h"
#include "publish-int.h"
#include "cairn/banned.h"

/* Per compression method (none excepted): bytes in, CPU seconds, slow. */
enum rate_figure { RATE_BYTES, RATE_SECONDS, RATE_SLOW };

static int collect_rates(struct cairn_publish *p, struct metrics_out *o, enum rate_figure f)
{
	int rc = 0;
	for (int m = CAIRN_CODEC_NONE + 1; rc == 0 && m < CAIRN_CODEC_METHOD_COUNT_; m++) {
		const struct pub_rate *r = &p->rates[m];
		uint64_t in = atomic_load_explicit(&r->bytes_in, memory_order_relaxed);
		uint64_t ns = atomic_load_explicit(&r->cpu_ns, memory_order_relaxed);
		const struct metric_label l[] = {
			{"method", cairn_codec_method_name((enum cairn_codec_method)m)}};
		if (f == RATE_BYTES)
			rc = metrics_emit(o, l, 1, in);
		else if (f == RATE_SECONDS)
			rc = metrics_emit_ns(o, l, 1, ns);
		else
			rc = metrics_emit(o, l, 1, pub_rate_slow(p, in, ns) ? 1 : 0);
	}
	return rc;
}

static int collect_compress_bytes(void *ctx, struct metrics_out *o)
{
	return collect_rates(ctx, o, RATE_BYTES);
}

static int collect_compress_seconds(void *ctx, struct metrics_out *o)
{
	return collect_rates(ctx, o, RATE_SECONDS);
}

static int collect_compress_slow(void *ctx, struct metrics_out *o)
{
	return collect_rates(ctx, o, RATE_SLOW);
}

/* The gauges live under the locks of what they measure. */
static int collect_bake_queue(void *ctx, struct metrics_out *o)
{
	struct cairn_publish *p = ctx;
	pthread_mutex_lock(&p->cache_lock);
	uint64_t v = p->bake_q.len;
	pthread_mutex_unlock(&p->cache_lock);
	return metrics_emit(o, NULL, 0, v);
}

static int collect_cache_bytes(void *ctx, struct metrics_out *o)
{
	struct cairn_publish *p = ctx;
	struct narcache_stats st = {0};
	pthread_mutex_lock(&p->cache_lock);
	if (p->nc)
		narcache_stats(p->nc, &st);
	pthread_mutex_unlock(&p->cache_lock);
	uint64_t v = st.bytes;
	return metrics_emit(o, NULL, 0, v);
}

static int collect_streams(void *ctx, struct metrics_out *o)
{
	struct cairn_publish *p = ctx;
	pthread_mutex_lock(&p->streams_lock);
	uint64_t v = p->n_streams;
	pthread_mutex_unlock(&p->streams_lock);
	return metrics_emit(o, NULL, 0, v);
}

static int collect_verify_queue(void *ctx, struct metrics_out *o)
{
	struct cairn_publish *p = ctx;
	pthread_mutex_lock(&p->verify_lock);
	uint64_t v = p->verify_q.len;
	pthread_mutex_unlock(&p->verify_lock);
	return metrics_emit(o, NULL, 0, v);
}

int pub_metrics_register(struct cairn_publish *p, struct metrics *reg, struct cairn_error *err)
{
	static const struct {
		const char *name, *help;
		size_t off;
	} counters[] = {
		{"cairn_publish_narinfo_memo_hits_total",
		 "Narinfos served from the memo of signed narinfos.",
		 offsetof(struct cairn_publish, m_memo_hits)},
		{"cairn_publish_narinfo_memo_misses_total", "Narinfos built (and signed) afresh.",
		 offsetof(struct cairn_publish, m_memo_misses)},
		{"cairn_publish_signatures_total", "Signatures made.",
		 offsetof(struct cairn_publish, m_signed)},
		{"cairn_publish_nar_cache_hits_total", "Nar requests served from a baked (cached) file.",
		 offsetof(struct cairn_publish, m_cache_hits)},
		{"cairn_publish_nar_cache_misses_total",
		 "Nar requests streamed from the store, compressed on the fly.",
		 offsetof(struct cairn_publish, m_cache_misses)},
		{"cairn_publish_bakes_total", "Compressed nars written to the cache.",
		 offsetof(struct cairn_publish, m_baked)},
		{"cairn_publish_bake_failures_total", "Bakes that failed.",
		 offsetof(struct cairn_publish, m_bake_failures)},
		{"cairn_publish_verified_total", "Items whose nar matched NarHash in a background check.",
		 offsetof(struct cairn_publish, m_verified)},
		{"cairn_publish_verify_failures_total",
		 "Checks that found an item's nar differing from its NarHash (the item is withdrawn).",
		 offsetof(struct cairn_publish, m_verify_failures)},
		{"cairn_publish_raw_items_total",
		 "Items found not to compress (a compressed nar of at least 95% of the nar): offered "
		 "uncompressed only.",
		 offsetof(struct cairn_publish, m_raw)},
		{"cairn_publish_evictions_total",
		 "Cached files removed (least recently used first, or replaced).",
		 offsetof(struct cairn_publish, m_evicted)},
	};
	static const struct {
		const char *name;
		enum metric_type type;
		const char *help;
		metrics_collect_fn fn;
	} collected[] = {
		{"cairn_publish_bake_queue", METRIC_GAUGE, "Items waiting to be baked.",
		 collect_bake_queue},
		{"cairn_publish_cache_bytes", METRIC_GAUGE, "Bytes of compressed nars in the cache.",
		 collect_cache_bytes},
		{"cairn_publish_streams", METRIC_GAUGE, "Nar streams running.", collect_streams},
		{"cairn_publish_verify_queue", METRIC_GAUGE,
		 "Items waiting for a background check against NarHash.", collect_verify_queue},
		{"cairn_publish_compress_bytes_total", METRIC_COUNTER,
		 "Nar bytes compressed, on the fly and in bakes, by method.", collect_compress_bytes},
		{"cairn_publish_compress_seconds_total", METRIC_COUNTER,
		 "CPU seconds the compressing threads spent in the compressor, by method.",
		 collect_compress_seconds},
		{"cairn_publish_compress_slow", METRIC_GAUGE,
		 "1 when the method compressed slower than --slow-compression-rate (judged from 4 MiB "
		 "of nar on).",
		 collect_compress_slow},
	};
	int rc;
	for (size_t i = 0; i < sizeof(counters) / sizeof(counters[0]); i++) {
		const atomic_uint_fast64_t *v =
			(const atomic_uint_fast64_t *)((const char *)p + counters[i].off);
		if ((rc = metrics_counter_at(reg, counters[i].name, counters[i].help, v, err)) < 0)
			return rc;
	}
	for (size_t i = 0; i < sizeof(collected) / sizeof(collected[0]); i++)
		if ((rc = metrics_collector(reg, collected[i].name, collected[i].type,
					    collected[i].help, collected[i].fn, p, err)) < 0)
			return rc;
	return 0;
}
