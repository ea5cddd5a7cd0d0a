/*
 * cmd-ipfs.c - `cairn ipfs`: a file or a NAR as an IPFS UnixFS DAG
 * (lib/ipfs-dag.c), its root CID and a CAR of its blocks; and reading CARs
 * strictly (lib/car.c).
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cairn/ipfs.h"
#include "cairn/nar.h"
#include "cli.h"
#include "cairn/banned.h"

static const char ipfs_usage[] =
	"usage: cairn ipfs add [--chunker size-N|fastcdc] [--car OUT] [--nar] FILE|-\n"
	"       cairn ipfs car [--cat OUT] FILE\n"
	"\n"
	"add  cut FILE ('-' is stdin) into chunks, make each an IPFS raw block and\n"
	"     the whole a UnixFS file (dag-pb, balanced, 174 links a node), and\n"
	"     print its root CID.  With size-N the CID is the one\n"
	"     ipfs-unixfs-importer gives with raw leaves, CIDv1, that fixed-size\n"
	"     chunker and 174 links a node (docs/FORMATS.md).\n"
	"car  read a CARv1 file, checking every block against its CID; print its\n"
	"     roots and how many blocks and bytes it holds.\n";

struct ipfs_opts {
	const char *chunker;
	const char *car;
	bool nar;
	const char *cat;
};

static const struct cli_option add_options[] = {
	OPT_STRING(0, "chunker", struct ipfs_opts, chunker, "SPEC",
		   "size-N: chunks of N bytes (1 to 1048576; size alone:\n"
		   "262144); fastcdc: content-defined, 64 KiB to 1 MiB,\n"
		   "256 KiB on average (the default)"),
	OPT_STRING(0, "car", struct ipfs_opts, car, "OUT",
		   "also write every block to OUT as a CARv1 file with the\n"
		   "root as its one root, parents before children (a regular\n"
		   "file: written under a temporary name, then renamed; the\n"
		   "input is read twice, stdin kept beside OUT meanwhile)"),
	OPT_FLAG(0, "nar", struct ipfs_opts, nar,
		 "FILE is a path to serialise as a NAR (as nix-store --dump):\n"
		 "add that NAR"),
	OPT_END(),
};
static const struct cli_option car_options[] = {
	OPT_STRING(0, "cat", struct ipfs_opts, cat, "OUT",
		   "also write the file the CAR's root names (a UnixFS file\n"
		   "whose blocks are all in the CAR) to OUT ('-': stdout)"),
	OPT_END(),
};
static const struct cli_help_section ipfs_sections[] = {
	{"options of add:", add_options},
	{"options of car:", car_options},
	{NULL, NULL},
};
static const struct cli_spec ipfs_spec = {.usage = ipfs_usage, .sections = ipfs_sections};

/* Where `add --car` puts the blocks. */
struct car_out {
	int fd;
	const char *path;
	uint64_t bytes;
};

static int write_block(const struct cairn_cid *cid, const uint8_t *data, size_t len, void *user)
{
	struct car_out *co = user;
	uint8_t head[CAIRN_CAR_SECTION_HEAD_MAX];
	size_t hl = cairn_car_section_head(cid, len, head);
	if (cli_write_all(co->fd, head, hl) != 0 || cli_write_all(co->fd, data, len) != 0) {
		cli_error("cannot write '%s': %s", co->path, strerror(errno));
		return CAIRN_EIO;
	}
	co->bytes += hl + len;
	return 0;
}

/* The NAR writer's output, or a file's bytes, into the builder. */
static int nar_to_add(void *ctx, const void *data, size_t len, struct cairn_error *err)
{
	return cairn_ipfs_add_write(ctx, data, len, err);
}

static int nar_to_car(void *ctx, const void *data, size_t len, struct cairn_error *err)
{
	return cairn_car_dfs_write(ctx, data, len, err);
}

static int add_stream(const char *path, bool nar, cairn_nar_write_fn fn, void *ctx,
		      struct cairn_error *err)
{
	if (nar)
		return cairn_nar_dump_path(path, fn, ctx, err);
	return cli_read_stream(path, fn, ctx, err);
}

static int to_fd(void *ctx, const void *data, size_t len, struct cairn_error *err)
{
	if (cli_write_all(*(int *)ctx, data, len) != 0)
		return cairn_error_errno(err, errno, "cannot spool stdin");
	return 0;
}

/* --car reads its input twice: stdin is kept in a file beside OUT first. */
static char *spool_stdin(const char *out, struct cairn_error *err)
{
	size_t n = strlen(out) + 16;
	char *tmp = malloc(n);
	if (!tmp) {
		cairn_error_set(err, CAIRN_ENOMEM, "out of memory");
		return NULL;
	}
	snprintf(tmp, n, "%s.in.XXXXXX", out);
	int fd = mkstemp(tmp);
	if (fd < 0) {
		cairn_error_errno(err, errno, "cannot create '%s'", tmp);
		free(tmp);
		return NULL;
	}
	int rc = cli_read_stream("-", to_fd, &fd, err);
	close(fd);
	if (rc != 0) {
		unlink(tmp);
		free(tmp);
		return NULL;
	}
	return tmp;
}

static int ipfs_add(int argc, char **argv)
{
	struct ipfs_opts o = {0};
	int nargs, r = cli_parse_options(&ipfs_spec, add_options, &o, argc, argv, &nargs);
	if (r != CLI_GO_ON)
		return r;
	if (nargs != 1) {
		cli_error("add takes one FILE");
		return cli_usage(&ipfs_spec, false);
	}
	struct cairn_error err;
	cairn_error_init(&err);
	struct cairn_chunker_spec spec;
	cairn_chunker_spec_default(&spec);
	if (o.chunker && cairn_chunker_spec_parse(o.chunker, &spec, &err) != 0) {
		cli_error("%s", cairn_error_msg(&err));
		return EXIT_USAGE;
	}
	if (o.nar && !strcmp(argv[0], "-")) {
		cli_error("--nar needs a path, not stdin");
		return EXIT_USAGE;
	}
	struct car_out co = {.fd = -1, .path = o.car};
	char *tmp = NULL, *spooled = NULL;
	struct cairn_ipfs_add *a = NULL;
	struct cairn_car_dfs *dfs = NULL;
	const char *in = argv[0];
	int ret = EXIT_FAIL;
	if (o.car && !strcmp(in, "-")) {
		if (!(spooled = spool_stdin(o.car, &err)))
			return cli_fail("stdin", &err);
		in = spooled;
	}
	if (o.car) {
		size_t n = strlen(o.car) + 16;
		tmp = malloc(n);
		if (!tmp) {
			cli_error("out of memory");
			return EXIT_FAIL;
		}
		snprintf(tmp, n, "%s.tmp.XXXXXX", o.car);
		co.fd = mkstemp(tmp);
		if (co.fd < 0) {
			cli_error("cannot create '%s': %s", tmp, strerror(errno));
			free(tmp);
			return EXIT_FAIL;
		}
		co.path = tmp;
		if (cairn_car_dfs_new(&dfs, write_block, &co, &err) != 0) {
			ret = cli_fail("cannot start", &err);
			goto out;
		}
	}
	if (cairn_ipfs_add_new(&spec, dfs ? cairn_car_dfs_block : NULL, dfs, &a, &err) != 0) {
		ret = cli_fail("cannot start", &err);
		goto out;
	}
	struct cairn_cid root;
	uint64_t size;
	if (add_stream(in, o.nar, nar_to_add, a, &err) != 0 ||
	    cairn_ipfs_add_finish(a, &root, &size, &err) != 0) {
		ret = cli_fail(argv[0], &err);
		goto out;
	}
	if (o.car) {
		/* the DAG known, its blocks parents first: a second pass over the input */
		uint8_t header[CAIRN_CAR_HEADER_MAX];
		size_t hlen = cairn_car_header(&root, header);
		if (cli_write_all(co.fd, header, hlen) != 0) {
			cli_error("cannot write '%s': %s", tmp, strerror(errno));
			goto out;
		}
		if (cairn_car_dfs_order(dfs, &root, &err) != 0 ||
		    add_stream(in, o.nar, nar_to_car, dfs, &err) != 0 ||
		    cairn_car_dfs_finish(dfs, &err) != 0) {
			ret = cli_fail(argv[0], &err);
			goto out;
		}
		if (fchmod(co.fd, 0644) != 0 || fsync(co.fd) != 0) {
			cli_error("cannot write '%s': %s", tmp, strerror(errno));
			goto out;
		}
		if (rename(tmp, o.car) != 0) {
			cli_error("cannot rename '%s' to '%s': %s", tmp, o.car, strerror(errno));
			goto out;
		}
		free(tmp);
		tmp = NULL;
	}
	char s[CAIRN_CID_STR_MAX];
	if (cairn_cid_format(&root, s) != 0)
		BUG("root CID is not v1");
	printf("%s\n", s);
	ret = EXIT_OK;
out:
	cairn_ipfs_add_free(a);
	cairn_car_dfs_free(dfs);
	if (spooled) {
		unlink(spooled);
		free(spooled);
	}
	if (co.fd >= 0)
		close(co.fd);
	if (tmp) {
		unlink(tmp);
		free(tmp);
	}
	return ret;
}

/* `car`: every block's place in the file, for --cat. */
struct car_block {
	struct cairn_cid cid;
	const uint8_t *data;
	size_t len;
};
struct car_read {
	struct car_block *v;
	size_t n, cap;
	uint64_t bytes;
};

static int on_car_block(const struct cairn_cid *cid, const uint8_t *data, size_t len, void *user)
{
	struct car_read *cr = user;
	if (cr->n == cr->cap) {
		size_t nc = cr->cap ? cr->cap * 2 : 256;
		struct car_block *v = realloc(cr->v, nc * sizeof(*v));
		if (!v)
			return CAIRN_ENOMEM;
		cr->v = v;
		cr->cap = nc;
	}
	cr->v[cr->n++] = (struct car_block){*cid, data, len};
	cr->bytes += len;
	return 0;
}

/* Blocks ordered by CID (codec, hash, digest), for bsearch. */
static int cid_cmp(const struct cairn_cid *a, const struct cairn_cid *b)
{
	if (a->codec != b->codec)
		return a->codec < b->codec ? -1 : 1;
	if (a->mh != b->mh)
		return a->mh < b->mh ? -1 : 1;
	if (a->len != b->len)
		return a->len < b->len ? -1 : 1;
	return memcmp(a->digest, b->digest, a->len);
}

static int block_cmp(const void *a, const void *b)
{
	return cid_cmp(&((const struct car_block *)a)->cid, &((const struct car_block *)b)->cid);
}

static const struct car_block *car_find(const struct car_read *cr, const struct cairn_cid *cid)
{
	struct car_block key = {.cid = *cid};
	return bsearch(&key, cr->v, cr->n, sizeof(key), block_cmp);
}

/* Depth of a UnixFS file tree `car --cat` follows. */
#define CAT_DEPTH_MAX 16

/* Write the file under cid to fd; *written counts its bytes. */
static int cat_node(const struct car_read *cr, const struct cairn_cid *cid, int fd, int depth,
		    uint64_t *written, struct cairn_error *err)
{
	if (depth > CAT_DEPTH_MAX)
		return cairn_error_set(err, CAIRN_ELIMIT, "car: file tree deeper than %d",
				       CAT_DEPTH_MAX);
	const struct car_block *b = car_find(cr, cid);
	if (!b)
		return cairn_error_set(err, CAIRN_ENOENT, "car: a block of the file is missing");
	if (cid->codec == CAIRN_IPFS_RAW) {
		*written += b->len;
		return cli_write_all(fd, b->data, b->len) ? cairn_error_errno(err, errno, "write")
							  : 0;
	}
	struct cairn_pbnode n;
	int rc = cairn_pbnode_decode(b->data, b->len, &n, err);
	if (rc)
		return rc;
	struct cairn_unixfs u = {0};
	if (!n.data) {
		rc = cairn_error_set(err, CAIRN_EFORMAT, "car: a dag-pb node without UnixFS data");
		goto out;
	}
	rc = cairn_unixfs_decode(n.data, n.data_len, &u, err);
	if (rc)
		goto out;
	if ((u.type != CAIRN_UNIXFS_FILE && u.type != CAIRN_UNIXFS_RAW) ||
	    (n.n_links && u.n_blocksizes != n.n_links)) {
		rc = cairn_error_set(err, CAIRN_EFORMAT,
				     "car: a node that is not a UnixFS file part");
		goto out;
	}
	if (u.data_len) {
		*written += u.data_len;
		if (cli_write_all(fd, u.data, u.data_len)) {
			rc = cairn_error_errno(err, errno, "write");
			goto out;
		}
	}
	uint64_t start = *written - u.data_len;
	for (size_t i = 0; i < n.n_links && !rc; i++) {
		uint64_t before = *written;
		rc = cat_node(cr, &n.links[i].cid, fd, depth + 1, written, err);
		if (!rc && *written - before != u.blocksizes[i])
			rc = cairn_error_set(err, CAIRN_EFORMAT,
					     "car: a child holds %" PRIu64 " bytes, its parent says %" PRIu64,
					     *written - before, u.blocksizes[i]);
	}
	if (!rc && u.has_filesize && *written - start != u.filesize)
		rc = cairn_error_set(err, CAIRN_EFORMAT,
				     "car: a node's parts hold %" PRIu64 " bytes, it says %" PRIu64,
				     *written - start, u.filesize);
out:
	cairn_unixfs_release(&u);
	cairn_pbnode_release(&n);
	return rc;
}

/* CARs `car` reads into memory. */
#define CAR_READ_MAX ((size_t)4 << 30)

static int ipfs_car(int argc, char **argv)
{
	struct ipfs_opts o = {0};
	int nargs, r = cli_parse_options(&ipfs_spec, car_options, &o, argc, argv, &nargs);
	if (r != CLI_GO_ON)
		return r;
	if (nargs != 1) {
		cli_error("car takes one FILE");
		return cli_usage(&ipfs_spec, false);
	}
	struct cairn_error err;
	cairn_error_init(&err);
	char *buf = NULL;
	size_t len;
	if (cli_read_file(argv[0], CAR_READ_MAX, &buf, &len, &err) != 0)
		return cli_fail(argv[0], &err);
	struct car_read cr = {0};
	struct cairn_cid roots[CAIRN_CAR_ROOTS_MAX];
	size_t n_roots;
	int ret = EXIT_FAIL;
	int fd = -1;
	char *tmp = NULL;
	if (cairn_car_read((const uint8_t *)buf, len, roots, &n_roots, on_car_block, &cr, &err)) {
		ret = cli_fail(argv[0], &err);
		goto out;
	}
	/* with --cat - the file is on stdout: the summary goes to stderr */
	FILE *info = o.cat && !strcmp(o.cat, "-") ? stderr : stdout;
	for (size_t i = 0; i < n_roots; i++) {
		char s[CAIRN_CID_STR_MAX];
		if (cairn_cid_format(&roots[i], s) == 0)
			fprintf(info, "root %s\n", s);
		else
			fprintf(info, "root (a CIDv0)\n");
	}
	fprintf(info, "blocks %zu\nbytes %" PRIu64 "\n", cr.n, cr.bytes);
	if (o.cat) {
		if (cr.n)
			qsort(cr.v, cr.n, sizeof(cr.v[0]), block_cmp);
		bool out_stdout = !strcmp(o.cat, "-");
		if (out_stdout) {
			fd = STDOUT_FILENO;
		} else {
			/* nothing half-written: a temporary name, renamed once complete */
			size_t n = strlen(o.cat) + 16;
			tmp = malloc(n);
			if (!tmp) {
				cli_error("out of memory");
				goto out;
			}
			snprintf(tmp, n, "%s.tmp.XXXXXX", o.cat);
			fd = mkstemp(tmp);
			if (fd < 0) {
				cli_error("cannot create '%s': %s", tmp, strerror(errno));
				goto out;
			}
		}
		fflush(stdout);
		uint64_t written = 0;
		if (cat_node(&cr, &roots[0], fd, 0, &written, &err) != 0) {
			ret = cli_fail("cannot rebuild the file", &err);
			goto out;
		}
		if (out_stdout) {
			fd = -1;
		} else if (fchmod(fd, 0644) != 0 || fsync(fd) != 0 || rename(tmp, o.cat) != 0) {
			cli_error("cannot write '%s': %s", o.cat, strerror(errno));
			goto out;
		} else {
			free(tmp);
			tmp = NULL;
		}
	}
	ret = EXIT_OK;
out:
	if (fd >= 0 && fd != STDOUT_FILENO)
		close(fd);
	if (tmp) {
		if (fd >= 0)
			unlink(tmp);
		free(tmp);
	}
	free(cr.v);
	free(buf);
	return ret;
}

int cmd_ipfs(int argc, char **argv)
{
	static const struct cli_action acts[] = {{"add", ipfs_add}, {"car", ipfs_car}};
	return cli_dispatch(argc, argv, acts, sizeof(acts) / sizeof(acts[0]), &ipfs_spec);
}
