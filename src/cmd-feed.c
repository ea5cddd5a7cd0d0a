/*
 * cmd-feed.c - `cairn feed`: the follower's side of the change feed served
 * by `cairn publish --feed` (lib/feed-doc.c, docs/PROTOCOL.md).  For now,
 * `verify`: check a page or snapshot fetched by any means and list what it
 * says, each addition with the verdict of its own narinfo's signatures.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cairn/codec.h"
#include "cairn/feed.h"
#include "cairn/keys.h"
#include "cairn/narinfo.h"
#include "cli.h"
#include "cairn/banned.h"

static const char cmd_feed_usage[] =
	"usage: cairn feed verify --trusted-key FILE [--trusted-key FILE...]\n"
	"                         [--since N] [--feed ID] [FILE]\n"
	"\n"
	"verify  read a page of the change feed (GET /feed/events?since=N) or a\n"
	"        snapshot (GET /feed/snapshot, zstd-compressed or not) from FILE or\n"
	"        standard input, check its layout, hash and signature against the\n"
	"        trusted keys, and list its events: 'add SEQ HASHPART STOREPATH\n"
	"        trusted|untrusted: WHY' (an addition counts only through its\n"
	"        narinfo's own signatures), 'remove SEQ HASHPART'.  With --since N,\n"
	"        a page must be the one that follows N; with --feed ID, of that\n"
	"        feed (so a page replayed from elsewhere is refused).  Exit 0 when\n"
	"        the document verifies, 1 otherwise, with the reason.  A zstd file\n"
	"        (a snapshot as served) is read as it streams, however large; its\n"
	"        summary line comes last.\n"
	"\n"
	"  --trusted-key FILE   a key the document may be signed by (repeatable)\n"
	"  --since N            the page must be the one that follows sequence N\n"
	"  --feed ID            the page must be of that feed\n";
static const struct cli_spec feed_spec = {.usage = cmd_feed_usage};

/* The zstd frame magic: a snapshot as served. */
static bool is_zstd(const char *t, size_t len)
{
	return len >= 4 && (unsigned char)t[0] == 0x28 && (unsigned char)t[1] == 0xb5 &&
	       (unsigned char)t[2] == 0x2f && (unsigned char)t[3] == 0xfd;
}

static int put(void *ctx, const void *data, size_t len)
{
	return cairn_buf_append(ctx, data, len);
}

static int unzstd(char **text, size_t *len, struct cairn_error *err)
{
	struct cairn_codec *c = NULL;
	struct cairn_buf out = CAIRN_BUF_INIT(CAIRN_FEED_PAGE_MAX);
	int rc = cairn_codec_new(&c, CAIRN_CODEC_ZSTD, CAIRN_CODEC_DECOMPRESS,
				 CAIRN_CODEC_LEVEL_DEFAULT, CAIRN_FEED_PAGE_MAX, err);
	if (rc == 0)
		rc = cairn_codec_write(c, *text, *len, put, &out, err);
	if (rc == 0)
		rc = cairn_codec_finish(c, put, &out, err);
	cairn_codec_free(c);
	if (rc < 0) {
		cairn_buf_release(&out);
		return rc;
	}
	free(*text);
	*text = cairn_buf_steal(&out, len);
	return *text ? 0 : cairn_error_set(err, CAIRN_ENOMEM, "out of memory");
}

/* One addition: its narinfo's own signatures decide whether it counts. */
static void show_add(const struct cairn_feed_event *e, const struct cairn_keyring *kr)
{
	struct cairn_narinfo *ni = NULL;
	struct cairn_error err;
	cairn_error_init(&err);
	if (e->seq)
		printf("add %" PRIu64 " %s ", e->seq, e->hashpart);
	else
		printf("item %s ", e->hashpart);
	if (cairn_narinfo_parse(e->narinfo, e->narinfo_len, &ni, &err) < 0) {
		printf("- untrusted: %s\n", cli_safe(cairn_error_msg(&err)));
		return;
	}
	struct cairn_verify_result res;
	int rc = cairn_narinfo_verify(ni, kr, &res, &err);
	const char *base = strrchr(ni->store_path, '/');
	if (!base || strncmp(base + 1, e->hashpart, 32) != 0)
		printf("%s untrusted: its StorePath does not have the event's hash part\n",
		       cli_safe(ni->store_path));
	else if (rc == 0)
		printf("%s trusted\n", cli_safe(ni->store_path));
	else
		printf("%s untrusted: %s\n", cli_safe(ni->store_path), cli_safe(res.detail));
	cairn_narinfo_free(ni);
}

/* A zstd snapshot in a file, read as it streams: memory bounded by one
 * record however many items it holds.  Items are listed as they come; the
 * summary line comes last, once the whole was checked. */
struct stream_ctx {
	struct cairn_feed_reader *r;
	const struct cairn_keyring *kr;
};

static int stream_event(void *ctx, const struct cairn_feed_event *e)
{
	struct stream_ctx *c = ctx;
	if (e->kind == CAIRN_FEED_ADD)
		show_add(e, c->kr);
	else
		printf("remove %" PRIu64 " %s\n", e->seq, e->hashpart);
	return 0;
}

static int stream_in(void *ctx, const void *data, size_t len)
{
	struct stream_ctx *c = ctx;
	return cairn_feed_reader_feed(c->r, data, len, NULL);
}

static int verify_stream(const char *file, const struct cairn_keyring *kr, const char *feed)
{
	struct stream_ctx c = {NULL, kr};
	struct cairn_codec *codec = NULL;
	struct cairn_error err;
	const struct cairn_feed_doc *doc;
	char buf[65536];
	int ret = EXIT_FAIL, rc;
	FILE *in = fopen(file, "rb");
	cairn_error_init(&err);
	if (!in) {
		cli_error("cannot open '%s'", cli_safe(file));
		return EXIT_FAIL;
	}
	if ((rc = cairn_feed_reader_new(&c.r, stream_event, &c, &err)) < 0 ||
	    (rc = cairn_codec_new(&codec, CAIRN_CODEC_ZSTD, CAIRN_CODEC_DECOMPRESS,
				  CAIRN_CODEC_LEVEL_DEFAULT, CAIRN_CODEC_UNLIMITED, &err)) < 0)
		goto out;
	size_t n;
	while ((n = fread(buf, 1, sizeof(buf), in)) > 0)
		if ((rc = cairn_codec_write(codec, buf, n, stream_in, &c, &err)) < 0)
			goto out;
	if (ferror(in)) {
		rc = cairn_error_set(&err, CAIRN_EIO, "cannot read '%s'", file);
		goto out;
	}
	if ((rc = cairn_codec_finish(codec, stream_in, &c, &err)) < 0 ||
	    (rc = cairn_feed_reader_finish(c.r, &doc, &err)) < 0 ||
	    (rc = cairn_feed_doc_verify(doc, kr, &err)) < 0)
		goto out;
	if (feed && strcmp(feed, doc->feed) != 0) {
		cli_error("refused: %s of feed %s, not of %s",
			  doc->kind == CAIRN_FEED_PAGE ? "page" : "snapshot", doc->feed, cli_safe(feed));
		goto out;
	}
	printf("%s %s dialect %s range %" PRIu64 " %" PRIu64 " head %" PRIu64 " events %zu\n",
	       doc->kind == CAIRN_FEED_PAGE ? "page" : "snapshot", doc->feed, doc->dialect,
	       doc->since, doc->next, doc->head, doc->n_events);
	ret = EXIT_OK;
out:
	if (rc < 0)
		cli_fail("refused", &err);
	cairn_codec_free(codec);
	cairn_feed_reader_free(c.r);
	fclose(in);
	return ret;
}

/* Does the named file start with the zstd magic? */
static bool file_is_zstd(const char *file)
{
	unsigned char m[4];
	FILE *in = fopen(file, "rb");
	bool z = in && fread(m, 1, 4, in) == 4 && is_zstd((const char *)m, 4);
	if (in)
		fclose(in);
	return z;
}

static int feed_verify(int argc, char **argv)
{
	struct cairn_keyring kr = CAIRN_KEYRING_INIT;
	struct cairn_feed_doc doc;
	struct cairn_error err;
	const char *file = "-", *feed = NULL;
	uint64_t since = 0;
	bool has_since = false;
	size_t n_keys = 0, len = 0;
	char *text = NULL;
	int ret = EXIT_FAIL;

	memset(&doc, 0, sizeof(doc));
	cairn_error_init(&err);
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--trusted-key") && i + 1 < argc) {
			if (cli_load_keyring(&kr, argv[++i]) != EXIT_OK)
				goto out;
			n_keys++;
		} else if (!strcmp(argv[i], "--since") && i + 1 < argc) {
			char *end;
			const char *v = argv[++i];
			since = strtoull(v, &end, 10);
			if (!*v || *end || *v == '-') {
				cli_error("--since takes a sequence number");
				ret = EXIT_USAGE;
				goto out;
			}
			has_since = true;
		} else if (!strcmp(argv[i], "--feed") && i + 1 < argc) {
			feed = argv[++i];
		} else if (argv[i][0] != '-' || !strcmp(argv[i], "-")) {
			file = argv[i];
		} else {
			cli_error("unexpected argument '%s'", argv[i]);
			ret = cli_usage(&feed_spec, false);
			goto out;
		}
	}
	if (n_keys == 0) {
		cli_error("at least one --trusted-key is required");
		ret = cli_usage(&feed_spec, false);
		goto out;
	}
	cli_keyring_check(&kr);
	if (strcmp(file, "-") != 0 && !has_since && file_is_zstd(file)) {
		ret = verify_stream(file, &kr, feed);
		goto out;
	}
	if (cli_read_file(file, CAIRN_FEED_PAGE_MAX, &text, &len, &err) < 0) {
		cli_fail("cannot read the feed document", &err);
		goto out;
	}
	if (is_zstd(text, len) && unzstd(&text, &len, &err) < 0) {
		cli_fail("cannot decompress the snapshot", &err);
		goto out;
	}
	if (cairn_feed_doc_parse(text, len, &doc, &err) < 0) {
		cli_fail("refused", &err);
		goto out;
	}
	if (cairn_feed_doc_verify(&doc, &kr, &err) < 0) {
		cli_fail("refused", &err);
		goto out;
	}
	if (doc.kind == CAIRN_FEED_SNAPSHOT && feed && strcmp(feed, doc.feed) != 0) {
		cli_error("refused: snapshot of feed %s, not of %s", doc.feed, cli_safe(feed));
		goto out;
	}
	if (doc.kind == CAIRN_FEED_PAGE && (has_since || feed) &&
	    cairn_feed_doc_check_page(&doc, feed, has_since ? since : doc.since, &err) < 0) {
		cli_fail("refused", &err);
		goto out;
	}
	printf("%s %s dialect %s range %" PRIu64 " %" PRIu64 " head %" PRIu64 " events %zu\n",
	       doc.kind == CAIRN_FEED_PAGE ? "page" : "snapshot", doc.feed, doc.dialect, doc.since,
	       doc.next, doc.head, doc.n_events);
	for (size_t i = 0; i < doc.n_events; i++) {
		const struct cairn_feed_event *e = &doc.events[i];
		if (e->kind == CAIRN_FEED_ADD)
			show_add(e, &kr);
		else
			printf("remove %" PRIu64 " %s\n", e->seq, e->hashpart);
	}
	ret = EXIT_OK;
out:
	cairn_feed_doc_release(&doc);
	free(text);
	cairn_keyring_release(&kr);
	return ret;
}

int cmd_feed(int argc, char **argv)
{
	static const struct cli_action acts[] = {{"verify", feed_verify}};
	return cli_dispatch(argc, argv, acts, sizeof(acts) / sizeof(acts[0]), &feed_spec);
}
