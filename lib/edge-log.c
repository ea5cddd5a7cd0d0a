/*
 * edge-log.c - what the mirror tells its operator: text from the network
 * made safe for a log line, sizes for people, and a rate limit for events
 * an upstream can cause as often as it likes (refused narinfos).
 *
 * No printing here: lines go to cairn_edge_config.log.
 */
#include <stdio.h>
#include <string.h>

#include "cairn/quote.h"
#include "edge-int.h"
#include "cairn/banned.h"

char *edge_safe(char *out, size_t cap, const char *in, size_t len)
{
	/* Logs are plain ASCII: every other byte is \xNN (quote.h). */
	return cairn_quote_str(out, cap, in, len, CAIRN_QUOTE_ASCII);
}

void edge_redact_userinfo(char *s)
{
	for (char *p = strstr(s, "://"); p; p = strstr(p, "://")) {
		p += 3;
		size_t auth = strcspn(p, "/?#@ \t'\"");
		if (p[auth] == '@')
			memmove(p, p + auth + 1, strlen(p + auth + 1) + 1);
	}
}

void edge_fmt_size(char *out, size_t cap, uint64_t bytes)
{
	static const char *const units[] = {"KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
	if (bytes < 1024) {
		snprintf(out, cap, "%llu B", (unsigned long long)bytes);
		return;
	}
	double v = (double)bytes / 1024;
	size_t u = 0;
	while (v >= 1024 && u + 1 < sizeof(units) / sizeof(units[0])) {
		v /= 1024;
		u++;
	}
	snprintf(out, cap, "%.1f %s", v, units[u]);
}

int edge_ratelimit_event(struct edge_ratelimit *r, uint64_t now_ms, uint64_t interval_ms,
			 const char *msg, uint64_t *suppressed)
{
	if (now_ms >= r->next_ms) {
		*suppressed = r->suppressed;
		r->suppressed = 0;
		r->last[0] = 0;
		r->next_ms = now_ms + interval_ms;
		return 1;
	}
	r->suppressed++;
	snprintf(r->last, sizeof(r->last), "%s", msg);
	return 0;
}

int edge_ratelimit_due(struct edge_ratelimit *r, uint64_t now_ms, uint64_t interval_ms, uint64_t *n)
{
	if (!r->suppressed || now_ms < r->next_ms)
		return 0;
	*n = r->suppressed;
	r->suppressed = 0;
	r->next_ms = now_ms + interval_ms;
	return 1;
}
