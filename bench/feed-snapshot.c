/*
 * feed-snapshot.c - the change feed's snapshot at scale: fill a feed log
 * with COUNT synthetic narinfos (about 640 bytes each, as `nix copy`
 * writes them), then write the signed, zstd-compressed snapshot the server
 * would stream, timing both; the public key goes to PUBKEY so that
 * `cairn feed verify --trusted-key PUBKEY SNAP` can time the follower's
 * side.  Not part of the build; after `ninja -C build`:
 *   cc -O2 -Iinclude bench/feed-snapshot.c build/lib/libcairn.a \
 *      $(pkg-config --libs libsodium libgcrypt libzstd liblzma zlib sqlite3 libcurl \
 *        libh2o-evloop) -lbz2 -llz -lpthread -lssl -lcrypto -o /tmp/feed-snapshot
 *   /usr/bin/time -v /tmp/feed-snapshot /tmp/f.sqlite 1000000 /tmp/snap.zst /tmp/k.pub
 *   /usr/bin/time -v build/src/cairn feed verify --trusted-key /tmp/k.pub /tmp/snap.zst >/dev/null
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cairn/cairn.h"
#include "cairn/codec.h"
#include "cairn/feed.h"
#include "cairn/sign.h"

static double now(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static struct cairn_codec *codec;
static FILE *out;

static int to_file(void *ctx, const void *d, size_t l)
{
	(void)ctx;
	return fwrite(d, 1, l, out) == l ? 0 : CAIRN_EIO;
}

static int to_codec(void *ctx, const void *d, size_t l)
{
	(void)ctx;
	return cairn_codec_write(codec, d, l, to_file, NULL, NULL);
}

int main(int argc, char **argv)
{
	struct cairn_feed *f;
	struct cairn_seckey sk;
	struct cairn_nix_pubkey pk;
	struct cairn_buf b = CAIRN_BUF_INIT(4096);
	if (argc != 5) {
		fprintf(stderr, "usage: feed-snapshot DB COUNT SNAP PUBKEY\n");
		return 2;
	}
	unsigned long n = strtoul(argv[2], NULL, 10);
	if (cairn_init() != 0 || cairn_feed_open(&f, argv[1], NULL) != 0)
		return 1;
	double t0 = now();
	char ni[800], h[33];
	for (unsigned long i = 0; i < n; i += 5000) {
		cairn_feed_begin(f, NULL);
		for (unsigned long j = i; j < i + 5000 && j < n; j++) {
			snprintf(h, sizeof(h), "%032lu", j); /* digits are nix32 */
			int l = snprintf(
				ni, sizeof(ni),
				"StorePath: /nix/store/%s-synthetic-item-%lu\nURL: nar/%s.nar.zst\n"
				"Compression: zstd\nFileHash: "
				"sha256:1b8m03r63zqhnjf7l5wnldhh7c134ap5vpj0850ymkq1iyzicy5s\n"
				"FileSize: %lu\nNarHash: "
				"sha256:0c3zqhnjf7l5wnldhh7c134ap5vpj0850ymkq1iyzicy5s1b8m03r6\n"
				"NarSize: %lu\nReferences: %s-synthetic-item-%lu\nDeriver: %s-x.drv\n"
				"Sig: cache.example.org-1:dGhpcyBpcyBub3QgYSByZWFsIHNpZ25hdHVyZSBidXQgaXQg"
				"aGFzIHRoZSBsZW5ndGggb2Ygb25lIGZvciBzdXJl\n",
				h, j, h, j * 7, j * 9, h, j, h);
			if (cairn_feed_add(f, h, ni, (size_t)l, NULL, NULL) != 0)
				return 1;
		}
		if (cairn_feed_commit(f, NULL) != 0)
			return 1;
	}
	double t1 = now();
	sk.kind = CAIRN_KEY_NIX;
	cairn_nix_key_generate("bench-1", &sk.u.nix, NULL);
	cairn_nix_seckey_public(&sk.u.nix, &pk);
	cairn_nix_pubkey_format(&pk, &b);
	FILE *kf = fopen(argv[4], "w");
	if (!kf || fprintf(kf, "%s\n", b.data) < 0 || fclose(kf) != 0)
		return 1;
	const struct cairn_seckey *keys[1] = {&sk};
	struct cairn_feed_signer signer = {keys, 1, "nix"};
	if (!(out = fopen(argv[3], "wb")))
		return 1;
	cairn_codec_new(&codec, CAIRN_CODEC_ZSTD, CAIRN_CODEC_COMPRESS, 3, CAIRN_CODEC_UNLIMITED,
			NULL);
	int rc = cairn_feed_snapshot(f, &signer, to_codec, NULL, NULL);
	if (rc == 0)
		rc = cairn_codec_finish(codec, to_file, NULL, NULL);
	long size = ftell(out);
	fclose(out);
	double t2 = now();
	printf("%lu narinfos: log filled in %.1f s; snapshot (%.1f MiB zstd) in %.2f s (rc %d)\n",
	       n, t1 - t0, (double)size / 1048576, t2 - t1, rc);
	cairn_codec_free(codec);
	cairn_seckey_wipe(&sk);
	cairn_buf_release(&b);
	cairn_feed_close(f);
	return rc == 0 ? 0 : 1;
}
