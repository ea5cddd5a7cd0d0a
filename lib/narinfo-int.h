/*
 * narinfo-int.h - what lib/narinfo.c offers beyond its public header,
 * for the unit tests and fuzz targets; not part of the public API.
 */
#ifndef CAIRN_NARINFO_INT_H
#define CAIRN_NARINFO_INT_H

#include "cairn/narinfo.h"

/* Add an unknown field, kept and printed after the known ones. */
int cairn_narinfo_add_field(struct cairn_narinfo *ni, const char *name, const char *value,
			    struct cairn_error *err);
/* Remove all Nix signatures. */
void cairn_narinfo_clear_sigs(struct cairn_narinfo *ni);
int cairn_narinfo_set_system(struct cairn_narinfo *ni, const char *system, struct cairn_error *err);

#endif
