/*
 * monitor-verdict.c - the monitor's verdict on an item from what the
 * servers said (rules in monitor.h).  Pure: unit-tested with a table of
 * cases (tests/unit/test-monitor.c).
 */
#include <string.h>

#include "cairn/monitor.h"
#include "cairn/banned.h"

static const char *const verdict_names[CAIRN_MONITOR_VERDICTS_] = {
	[CAIRN_MONITOR_AGREE] = "agree",       [CAIRN_MONITOR_DIFFERS] = "differs",
	[CAIRN_MONITOR_INVALID] = "invalid",   [CAIRN_MONITOR_ONLY_ONE] = "only-one",
	[CAIRN_MONITOR_UNSIGNED] = "unsigned", [CAIRN_MONITOR_ABSENT] = "absent",
};

const char *cairn_monitor_verdict_name(enum cairn_monitor_verdict v)
{
	return (unsigned)v < CAIRN_MONITOR_VERDICTS_ ? verdict_names[v] : "?";
}

int cairn_monitor_verdict_parse(const char *s, size_t len)
{
	for (int v = 0; v < CAIRN_MONITOR_VERDICTS_; v++)
		if (strlen(verdict_names[v]) == len && memcmp(verdict_names[v], s, len) == 0)
			return v;
	return CAIRN_EFORMAT;
}

const char *cairn_monitor_sig_name(enum cairn_monitor_sig s)
{
	switch (s) {
	case CAIRN_MONITOR_SIG_VALID:
		return "valid";
	case CAIRN_MONITOR_SIG_UNSIGNED:
		return "unsigned";
	case CAIRN_MONITOR_SIG_INVALID:
		return "invalid";
	case CAIRN_MONITOR_SIG_UNTRUSTED:
		return "untrusted";
	}
	return "?";
}

const char *cairn_monitor_state_name(enum cairn_monitor_state s)
{
	switch (s) {
	case CAIRN_MONITOR_PRESENT:
		return "present";
	case CAIRN_MONITOR_GONE:
		return "absent";
	case CAIRN_MONITOR_BROKEN:
		return "broken";
	}
	return "?";
}

enum cairn_monitor_sig cairn_monitor_sig_of(int status)
{
	switch (status) {
	case 0:
		return CAIRN_MONITOR_SIG_VALID;
	case CAIRN_ENOSIG:
		return CAIRN_MONITOR_SIG_UNSIGNED;
	case CAIRN_EUNTRUSTED:
		return CAIRN_MONITOR_SIG_UNTRUSTED;
	default:
		/* ESIG, ESIGCORRUPT, EHASH (a Guix signature over other
		 * text): a signature is there and is wrong */
		return CAIRN_MONITOR_SIG_INVALID;
	}
}

static bool same_claim(const struct cairn_monitor_obs *a, const struct cairn_monitor_obs *b)
{
	return a->nar_size == b->nar_size && strcmp(a->nar_hash ? a->nar_hash : "",
						    b->nar_hash ? b->nar_hash : "") == 0 &&
	       strcmp(a->refs ? a->refs : "", b->refs ? b->refs : "") == 0;
}

enum cairn_monitor_verdict cairn_monitor_decide(const struct cairn_monitor_obs *obs, size_t n)
{
	const struct cairn_monitor_obs *first = NULL;
	size_t have = 0;
	bool differs = false, invalid = false, signed_ok = false;

	for (size_t i = 0; i < n; i++) {
		const struct cairn_monitor_obs *o = &obs[i];
		if (o->state == CAIRN_MONITOR_GONE)
			continue;
		have++;
		if (o->state == CAIRN_MONITOR_BROKEN) {
			invalid = true;
			continue;
		}
		if (o->state != CAIRN_MONITOR_PRESENT)
			continue;
		if (o->sig == CAIRN_MONITOR_SIG_INVALID)
			invalid = true;
		if (o->sig == CAIRN_MONITOR_SIG_VALID)
			signed_ok = true;
		if (!first)
			first = o;
		else if (!same_claim(first, o))
			differs = true;
	}
	if (have == 0)
		return CAIRN_MONITOR_ABSENT;
	if (differs)
		return CAIRN_MONITOR_DIFFERS;
	if (invalid)
		return CAIRN_MONITOR_INVALID;
	if (have == 1)
		return CAIRN_MONITOR_ONLY_ONE;
	if (!signed_ok)
		return CAIRN_MONITOR_UNSIGNED;
	return CAIRN_MONITOR_AGREE;
}
