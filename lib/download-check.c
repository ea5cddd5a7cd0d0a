/*
 * download-check.c - the download engine's pipeline without a download:
 * a tree already on disk (its NAR dumped through the parser), and a NAR
 * the caller produces (IPFS blocks reassembled), checked against the same
 * expectation, with the same rules and sinks, as a download's bytes.
 */
#include <stdlib.h>

#include "cairn/error.h"
#include "cairn/hash.h"
#include "cairn/nar.h"
#include "download-int.h"
#include "cairn/banned.h"

/* ---- a tree already on disk ------------------------------------------------ */

static int check_dump_out(void *ctx, const void *data, size_t len, struct cairn_error *err)
{
	(void)err; /* nar_out reports into d->perr */
	return dl_nar_out(ctx, data, len);
}

int cairn_dl_check_tree(const char *path, const struct cairn_dl_expect *ex,
			const struct cairn_dl_sink *sink, struct cairn_error *err)
{
	struct cairn_dl *d = calloc(1, sizeof(*d));
	if (!d)
		return cairn_error_set(err, CAIRN_ENOMEM, "out of memory");
	d->ex[0] = *ex;
	d->n_ex = 1;
	if (sink) {
		d->sink = *sink;
		d->sink.begin = NULL;
		d->sink.discard = NULL;
	}
	cairn_error_init(&d->perr);
	int rc = 0;
	struct cairn_nar_limits lim = {.max_nar_size = ex->nar_size};
	d->parser = cairn_nar_parser_new(&dl_pipe_cb, d, &lim);
	if (!d->parser)
		rc = cairn_error_set(&d->perr, CAIRN_ENOMEM, "out of memory");
	if (!rc && ex->by_ca && !(rc = cairn_ca_verify_init(&d->cav, &ex->ca, &ex->sp, &d->perr)))
		d->ca_on = true;
	if (!rc)
		rc = cairn_nar_dump_path(path, check_dump_out, d, &d->perr);
	if (!rc)
		rc = cairn_nar_parser_finish(d->parser, &d->perr);
	struct cairn_hash h;
	if (!rc && cairn_nar_parser_hash(d->parser, &h))
		rc = cairn_error_set(&d->perr, CAIRN_EHASH, "no NAR hash");
	if (!rc && (cairn_nar_parser_size(d->parser) != ex->nar_size ||
		    !cairn_hash_equal(&h, &ex->nar_hash))) {
		char got[CAIRN_HASH_STR_MAX];
		cairn_hash_format(&h, CAIRN_HASH_NIX32, got, sizeof(got));
		rc = cairn_error_set(&d->perr, CAIRN_EHASH, "its NAR has %s, %llu bytes", got,
				     (unsigned long long)cairn_nar_parser_size(d->parser));
	}
	if (!rc && d->ca_on) {
		d->ca_on = false;
		if (ex->ca.method != CAIRN_CA_NAR && !d->ca_root_file)
			rc = cairn_error_set(&d->perr, CAIRN_EHASH,
					     "CA names a flat file but it is not one");
		else
			rc = cairn_ca_verify_final(&d->cav, &d->perr);
	}
	if (rc)
		cairn_error_set(err, rc, "%s", cairn_error_msg(&d->perr));
	dl_pipe_teardown(d);
	free(d);
	return rc;
}

/* ---- a NAR produced by the caller ------------------------------------------ */

static int stream_write(void *wctx, const void *data, size_t len)
{
	struct cairn_dl *d = wctx;
	d->fed += len;
	return dl_nar_out(d, data, len);
}

int cairn_dl_check_stream(const struct cairn_dl_expect *ex, cairn_dl_produce_fn produce,
			  void *ctx, const struct cairn_dl_sink *sink, struct cairn_error *err)
{
	if (!ex || !produce || !sink)
		return cairn_error_set(err, CAIRN_EINVAL, "download: bad arguments");
	struct cairn_dl *d = calloc(1, sizeof(*d));
	if (!d)
		return cairn_error_set(err, CAIRN_ENOMEM, "out of memory");
	d->ex[0] = *ex;
	d->n_ex = 1;
	d->max_nar = ex->nar_size;
	d->sink = *sink;
	/* The same pipeline as a source's, uncompressed, with no file hints. */
	d->src[0].method = CAIRN_CODEC_NONE;
	d->n_src = 1;
	int rc = dl_pipe_setup(d);
	if (!rc) {
		struct cairn_error perr;
		cairn_error_init(&perr);
		rc = produce(ctx, stream_write, d, &perr);
		/* A write refused by the pipeline says why in d->perr. */
		if (rc && !d->perr.code)
			cairn_error_set(&d->perr, rc, "%s", cairn_error_msg(&perr));
	}
	if (!rc)
		rc = dl_pipe_verify(d);
	if (rc)
		cairn_error_set(err, rc, "%s", cairn_error_msg(&d->perr));
	else
		d->sink_begun = false; /* the target is the caller's now */
	dl_pipe_teardown(d);
	free(d);
	return rc;
}
