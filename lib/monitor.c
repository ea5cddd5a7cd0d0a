/*
 * monitor.c - `cairn monitor`'s service: the database opened, the servers
 * recorded, the observer thread (monitor-observe.c) started and stopped,
 * and the routes: pages (monitor-web.c), the JSON API (monitor-api.c) and
 * /metrics (the server's registry, lib/metrics.h).
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "cairn/httpd.h"
#include "cairn/storedb.h"
#include "metrics.h"
#include "monitor-int.h"
#include "cairn/banned.h"

void cairn_monitor_config_init(struct cairn_monitor_config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->interval = CAIRN_MONITOR_INTERVAL_DEFAULT;
	cfg->feed_poll_ms = 1000;
	cfg->retention_days = CAIRN_MONITOR_RETENTION_DEFAULT;
	cfg->diff = true;
}

int cairn_monitor_new(struct cairn_monitor **out, const struct cairn_monitor_config *cfg,
		      struct cairn_error *err)
{
	struct cairn_monitor *m;
	int rc;
	if (!cfg->n_servers || cfg->n_servers > CAIRN_MONITOR_MAX_SERVERS || !cfg->db_path ||
	    !cfg->kr)
		return cairn_error_set(err, CAIRN_EINVAL,
				       "monitor: 1 to %d servers, a database and a keyring",
				       CAIRN_MONITOR_MAX_SERVERS);
	m = calloc(1, sizeof(*m));
	if (!m)
		return cairn_error_set(err, CAIRN_ENOMEM, "monitor: out of memory");
	m->cfg = *cfg;
	if (!m->cfg.interval)
		m->cfg.interval = CAIRN_MONITOR_INTERVAL_DEFAULT;
	if (!m->cfg.feed_poll_ms)
		m->cfg.feed_poll_ms = 1000;
	if (!m->cfg.retention_days)
		m->cfg.retention_days = CAIRN_MONITOR_RETENTION_DEFAULT;
	m->urls = calloc(cfg->n_servers, sizeof(*m->urls));
	m->server_ids = calloc(cfg->n_servers, sizeof(*m->server_ids));
	if (!m->urls || !m->server_ids) {
		rc = cairn_error_set(err, CAIRN_ENOMEM, "monitor: out of memory");
		goto fail;
	}
	if ((rc = mon_db_open(&m->w, cfg->db_path, true, err)) < 0 ||
	    (rc = mon_db_open(&m->r, cfg->db_path, false, err)) < 0)
		goto fail;
	for (size_t i = 0; i < cfg->n_servers; i++) {
		/* one spelling per server: the database keys on it */
		size_t len = strlen(cfg->servers[i]);
		while (len && cfg->servers[i][len - 1] == '/')
			len--;
		m->urls[i] = strndup(cfg->servers[i], len);
		if (!m->urls[i]) {
			rc = cairn_error_set(err, CAIRN_ENOMEM, "monitor: out of memory");
			goto fail;
		}
		for (size_t k = 0; k < i; k++)
			if (strcmp(m->urls[k], m->urls[i]) == 0) {
				/* one server counted twice would agree with itself */
				rc = cairn_error_set(err, CAIRN_EINVAL,
						     "monitor: server '%s' is given twice", m->urls[i]);
				goto fail;
			}
		if ((rc = mon_db_server(m->w, m->urls[i], &m->server_ids[i], err)) < 0)
			goto fail;
	}
	if ((rc = mon_db_monitor_id(m->w, m->monitor_id, err)) < 0 ||
	    (m->cfg.store_root && (rc = mon_store_open(m, err)) < 0))
		goto fail;
	m->cfg.servers = NULL; /* borrowed strings are not kept: urls are */
	*out = m;
	return 0;
fail:
	cairn_monitor_free(m);
	return rc;
}

int cairn_monitor_start(struct cairn_monitor *m, struct cairn_error *err)
{
	int e = pthread_create(&m->thread, NULL, mon_observe_main, m);
	if (e)
		return cairn_error_errno(err, e, "monitor: cannot start the observer");
	m->started = true;
	return 0;
}

void cairn_monitor_free(struct cairn_monitor *m)
{
	if (!m)
		return;
	atomic_store(&m->stop, true);
	if (m->started)
		pthread_join(m->thread, NULL);
	cairn_storedb_free(m->store);
	mon_db_close(m->r);
	mon_db_close(m->w);
	for (size_t i = 0; m->urls && i < m->cfg.n_servers; i++)
		free(m->urls[i]);
	free(m->urls);
	free(m->server_ids);
	free(m);
}

/* Items per verdict, read when /metrics is rendered. */
static int collect_items(void *ctx, struct metrics_out *o)
{
	struct cairn_monitor *m = ctx;
	uint64_t n[CAIRN_MONITOR_VERDICTS_];
	int rc = 0;
	pthread_mutex_lock(&m->r->lock);
	if (mon_db_verdict_counts(m->r, n, NULL) < 0)
		memset(n, 0, sizeof(n));
	pthread_mutex_unlock(&m->r->lock);
	for (int v = 0; v < CAIRN_MONITOR_VERDICTS_ && rc == 0; v++) {
		struct metric_label l = {"verdict", cairn_monitor_verdict_name(v)};
		rc = metrics_emit(o, &l, 1, n[v]);
	}
	return rc;
}

int cairn_monitor_routes(struct cairn_monitor *m, struct cairn_httpd *h, struct cairn_error *err)
{
	struct metrics *reg = httpd_metrics(h);
	int rc;
	if ((rc = metrics_counter_at(reg, "cairn_monitor_passes_total",
				     "Full passes over every known item", &m->passes, err)) < 0 ||
	    (rc = metrics_counter_at(reg, "cairn_monitor_lookups_total",
				     "Narinfo answers recorded (item x server)", &m->lookups, err)) <
		    0 ||
	    (rc = metrics_counter_at(reg, "cairn_monitor_feed_pages_total",
				     "Feed pages and snapshots read and verified", &m->feed_pages,
				     err)) < 0 ||
	    (rc = metrics_counter_at(reg, "cairn_monitor_feed_pages_refused_total",
				     "Feed pages and snapshots refused (not verified)",
				     &m->pages_refused, err)) < 0 ||
	    (rc = metrics_counter_at(reg, "cairn_monitor_diffs_total",
				     "Differing items whose NARs were compared", &m->diffs, err)) <
		    0 ||
	    (rc = metrics_counter_at(reg, "cairn_monitor_verdict_changes_total",
				     "Verdicts that changed", &m->changes, err)) < 0 ||
	    (rc = metrics_counter_at(reg, "cairn_monitor_logged_total",
				     "Observations appended to the signed log", &m->logged, err)) <
		    0 ||
	    (rc = metrics_counter_at(reg, "cairn_monitor_peer_logs_total",
				     "Peer monitors' logs read and verified", &m->peer_logs, err)) <
		    0 ||
	    (rc = metrics_counter_at(reg, "cairn_monitor_peer_logs_refused_total",
				     "Peer monitors' logs refused (not verified)",
				     &m->peer_logs_refused, err)) < 0 ||
	    (rc = metrics_collector(reg, "cairn_monitor_items", METRIC_GAUGE,
				    "Items known, by verdict", collect_items, m, err)) < 0)
		return rc;
	if (m->cfg.key && (rc = mon_log_routes(m, h, err)) < 0)
		return rc;
	if ((rc = mon_api_routes(m, h, err)) < 0 ||
	    (rc = cairn_httpd_route(h, CAIRN_HTTPD_EXACT, "/metrics", "metrics",
				    cairn_httpd_metrics_handler, h, err)) < 0 ||
	    (rc = mon_web_routes(m, h, err)) < 0)
		return rc;
	return 0;
}
