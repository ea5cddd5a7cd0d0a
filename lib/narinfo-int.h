/*
 * narinfo-int.h - what lib/narinfo.c offers beyond its public header,
 * for the servers, unit tests and fuzz targets; not part of the public API.
 */
#ifndef CAIRN_NARINFO_INT_H
#define CAIRN_NARINFO_INT_H

#include <stdbool.h>
#include <string.h>

#include "cairn/narinfo.h"

/* Add an unknown field, kept and printed after the known ones. */
int cairn_narinfo_add_field(struct cairn_narinfo *ni, const char *name, const char *value,
			    struct cairn_error *err);
/* Remove all Nix signatures. */
void cairn_narinfo_clear_sigs(struct cairn_narinfo *ni);
int cairn_narinfo_set_system(struct cairn_narinfo *ni, const char *system, struct cairn_error *err);

/*
 * The value of the first line "NAME: value" of narinfo text (not parsed:
 * what a server hands on as it is): [*v, *v + *vl), or false.
 */
static inline bool cairn_narinfo_text_field(const char *text, size_t len, const char *name,
					    const char **v, size_t *vl)
{
	size_t nl0 = strlen(name);
	for (const char *p = text, *end = text + len; p < end;) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		const char *eol = nl ? nl : end;
		if ((size_t)(eol - p) >= nl0 + 2 && memcmp(p, name, nl0) == 0 && p[nl0] == ':' &&
		    p[nl0 + 1] == ' ') {
			*v = p + nl0 + 2;
			*vl = (size_t)(eol - *v);
			return true;
		}
		p = eol + 1;
	}
	return false;
}

#endif
