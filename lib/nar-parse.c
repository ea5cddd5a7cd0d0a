/*
 * nar-parse.c - the NAR push parser.
 *
 * Two small state machines: a lexer that collects fixed-size pieces (an
 * 8-byte length, a string body with its padding, file contents passed
 * through) from chunks split anywhere, and a grammar state saying which
 * string comes next.  Directory nesting lives in the path buffer and the
 * comp_start array, so there is no recursion and memory does not depend on
 * the input.  The previous entry name of the current directory is kept for
 * the order check; when a child directory ends, its name (the last path
 * component) becomes the previous name of its parent again.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cairn/nar.h"
#include "nar-internal.h"
#include "cairn/banned.h"

enum lex {
	L_LEN,	/* 8-byte length of the next string */
	L_STR,	/* string body and its padding */
	L_SIZE, /* 8-byte size of a file's contents */
	L_DATA, /* file contents, passed through */
	L_PAD,	/* padding after file contents */
	L_END,	/* root node complete */
};

enum gram {
	G_MAGIC,
	G_OPEN,		/* "(" opening a node */
	G_TYPE_TAG,	/* "type" */
	G_TYPE,		/* "regular" | "directory" | "symlink" */
	G_REG_TAG,	/* "executable" | "contents" */
	G_EXEC_VALUE,	/* "" */
	G_CONTENTS_TAG, /* "contents" */
	G_TARGET_TAG,	/* "target" */
	G_TARGET,	/* the symlink target */
	G_CLOSE_NODE,	/* ")" ending a file or symlink node */
	G_DIR_ITEM,	/* "entry" | ")" */
	G_ENTRY_OPEN,	/* "(" */
	G_NAME_TAG,	/* "name" */
	G_NAME,		/* the entry name */
	G_NODE_TAG,	/* "node" */
	G_ENTRY_CLOSE,	/* ")" ending an entry */
};

struct cairn_nar_parser {
	const struct cairn_nar_callbacks *cb;
	void *ctx;
	uint64_t max_file, max_nar;
	unsigned max_depth;

	int failed;
	bool finished;
	bool hashing;
	struct cairn_sha256 sha;
	uint8_t digest[CAIRN_SHA256_LEN];
	uint64_t total;

	enum lex lex;
	size_t need, have;
	uint8_t acc[8];
	uint64_t str_len;
	uint64_t data_left;
	uint64_t pos; /* offset of the byte being looked at */

	enum gram g;
	unsigned depth;
	struct cairn_nar_node node;
	bool has_prev;
	size_t prev_len;
	char prev[CAIRN_NAR_NAME_MAX + 1];
	uint16_t comp_start[CAIRN_NAR_DEPTH_MAX + 1];
	size_t path_len;
	char path[CAIRN_NAR_PATH_MAX + 1];
	char str[CAIRN_NAR_TARGET_MAX + 8 + 1];
};

static const char *gram_expect(enum gram g)
{
	switch (g) {
	case G_MAGIC: return "the magic 'nix-archive-1'";
	case G_OPEN:
	case G_ENTRY_OPEN: return "tag '('";
	case G_TYPE_TAG: return "tag 'type'";
	case G_TYPE: return "a file type";
	case G_REG_TAG: return "tag 'executable' or 'contents'";
	case G_EXEC_VALUE: return "an empty string after 'executable'";
	case G_CONTENTS_TAG: return "tag 'contents'";
	case G_TARGET_TAG: return "tag 'target'";
	case G_TARGET: return "a symlink target";
	case G_CLOSE_NODE:
	case G_ENTRY_CLOSE: return "tag ')'";
	case G_DIR_ITEM: return "tag 'entry' or ')'";
	case G_NAME_TAG: return "tag 'name'";
	case G_NAME: return "an entry name";
	case G_NODE_TAG: return "tag 'node'";
	}
	return "?";
}

static int fail(struct cairn_nar_parser *p, struct cairn_error *err, int code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int fail(struct cairn_nar_parser *p, struct cairn_error *err, int code, const char *fmt, ...)
{
	if (err && err->code == 0) {
		va_list ap;
		va_start(ap, fmt);
		char msg[CAIRN_ERROR_MSG_MAX];
		vsnprintf(msg, sizeof(msg), fmt, ap);
		va_end(ap);
		cairn_error_set(err, code, "%s", msg);
	}
	p->failed = code;
	return code;
}

static void fill_node(struct cairn_nar_parser *p, enum cairn_nar_type type)
{
	struct cairn_nar_node *n = &p->node;
	n->type = type;
	n->path = p->path;
	n->path_len = p->path_len;
	n->depth = p->depth;
	n->name = p->path + p->comp_start[p->depth];
	n->name_len = p->path_len - p->comp_start[p->depth];
}

static int callback(struct cairn_nar_parser *p, int rc, struct cairn_error *err)
{
	if (rc == 0)
		return 0;
	char w[NAR_QUOTE_MAX];
	return fail(p, err, nar_cb_code(rc), "nar: stopped by the consumer at %s",
		    nar_where(w, p->path, p->path_len));
}

/* Expect the next string to be a length-prefixed string for state g. */
static void want_string(struct cairn_nar_parser *p, enum gram g)
{
	p->g = g;
	p->lex = L_LEN;
	p->need = 8;
	p->have = 0;
}

static bool is(const struct cairn_nar_parser *p, const char *tok)
{
	size_t n = strlen(tok);
	return p->str_len == n && memcmp(p->str, tok, n) == 0;
}

static int unexpected(struct cairn_nar_parser *p, struct cairn_error *err)
{
	char got[NAR_QUOTE_MAX], w[NAR_QUOTE_MAX];
	return fail(p, err, CAIRN_EFORMAT, "nar: expected %s, got %s at %s", gram_expect(p->g),
		    nar_quote(got, p->str, (size_t)p->str_len), nar_where(w, p->path, p->path_len));
}

/* A node (file, symlink or directory) is complete. */
static void node_done(struct cairn_nar_parser *p)
{
	if (p->depth == 0) {
		p->lex = L_END;
		return;
	}
	size_t start = p->comp_start[p->depth];
	p->prev_len = p->path_len - start;
	memcpy(p->prev, p->path + start, p->prev_len);
	p->has_prev = true;
	p->depth--;
	p->path_len = p->depth == 0 ? 0 : start - 1;
	p->path[p->path_len] = '\0';
	want_string(p, G_ENTRY_CLOSE);
}

static int file_done(struct cairn_nar_parser *p, struct cairn_error *err)
{
	if (p->cb->file_end) {
		fill_node(p, CAIRN_NAR_REGULAR);
		int rc = callback(p, p->cb->file_end(p->ctx, &p->node, err), err);
		if (rc)
			return rc;
	}
	want_string(p, G_CLOSE_NODE);
	return 0;
}

static int check_name(struct cairn_nar_parser *p, struct cairn_error *err)
{
	const char *s = p->str;
	size_t n = (size_t)p->str_len;
	char q[NAR_QUOTE_MAX], w[NAR_QUOTE_MAX], q2[NAR_QUOTE_MAX];
	nar_dir(w, p->path, p->path_len);
	if ((n == 1 && s[0] == '.') || (n == 2 && s[0] == '.' && s[1] == '.'))
		return fail(p, err, CAIRN_EFORMAT, "nar: entry name %s is not allowed in %s",
			    nar_quote(q, s, n), w);
	if (memchr(s, '/', n))
		return fail(p, err, CAIRN_EFORMAT, "nar: entry name %s in %s contains '/'",
			    nar_quote(q, s, n), w);
	if (memchr(s, '\0', n))
		return fail(p, err, CAIRN_EFORMAT, "nar: entry name %s in %s contains a NUL byte",
			    nar_quote(q, s, n), w);
	if (p->has_prev) {
		size_t m = n < p->prev_len ? n : p->prev_len;
		int c = memcmp(s, p->prev, m);
		if (c == 0)
			c = n < p->prev_len ? -1 : n > p->prev_len ? 1 : 0;
		if (c == 0)
			return fail(p, err, CAIRN_EFORMAT, "nar: duplicate entry %s in %s",
				    nar_quote(q, s, n), w);
		if (c < 0)
			return fail(p, err, CAIRN_EFORMAT,
				    "nar: entry %s after %s is out of order in %s",
				    nar_quote(q, s, n), nar_quote(q2, p->prev, p->prev_len), w);
	}
	if (p->depth + 1 >= p->max_depth)
		return fail(p, err, CAIRN_ELIMIT,
			    "nar: entry %s in %s is nested deeper than %u directories",
			    nar_quote(q, s, n), w, p->max_depth - 1);
	return 0;
}

/* A complete string is in p->str (NUL-terminated, padding checked). */
static int on_string(struct cairn_nar_parser *p, struct cairn_error *err)
{
	char w[NAR_QUOTE_MAX], q[NAR_QUOTE_MAX];
	int rc = 0;
	switch (p->g) {
	case G_MAGIC:
		if (!is(p, CAIRN_NAR_MAGIC))
			return fail(p, err, CAIRN_EFORMAT, "nar: not a Nix archive (bad magic %s)",
				    nar_quote(q, p->str, (size_t)p->str_len));
		want_string(p, G_OPEN);
		return 0;
	case G_OPEN:
		if (!is(p, "("))
			return unexpected(p, err);
		want_string(p, G_TYPE_TAG);
		return 0;
	case G_TYPE_TAG:
		if (!is(p, "type"))
			return unexpected(p, err);
		want_string(p, G_TYPE);
		return 0;
	case G_TYPE:
		if (is(p, "regular")) {
			p->node.executable = false;
			want_string(p, G_REG_TAG);
		} else if (is(p, "directory")) {
			p->has_prev = false;
			if (p->cb->directory_begin) {
				fill_node(p, CAIRN_NAR_DIRECTORY);
				rc =
				    callback(p, p->cb->directory_begin(p->ctx, &p->node, err), err);
			}
			want_string(p, G_DIR_ITEM);
		} else if (is(p, "symlink")) {
			want_string(p, G_TARGET_TAG);
		} else {
			return fail(p, err, CAIRN_EFORMAT, "nar: unknown file type %s at %s",
				    nar_quote(q, p->str, (size_t)p->str_len),
				    nar_where(w, p->path, p->path_len));
		}
		return rc;
	case G_REG_TAG:
		if (is(p, "executable")) {
			want_string(p, G_EXEC_VALUE);
			return 0;
		}
		/* fall through */
	case G_CONTENTS_TAG:
		if (!is(p, "contents"))
			return unexpected(p, err);
		p->lex = L_SIZE;
		p->need = 8;
		p->have = 0;
		return 0;
	case G_EXEC_VALUE:
		if (p->str_len != 0)
			return fail(p, err, CAIRN_EFORMAT,
				    "nar: executable marker with the non-empty value %s at %s",
				    nar_quote(q, p->str, (size_t)p->str_len),
				    nar_where(w, p->path, p->path_len));
		p->node.executable = true;
		want_string(p, G_CONTENTS_TAG);
		return 0;
	case G_TARGET_TAG:
		if (!is(p, "target"))
			return unexpected(p, err);
		want_string(p, G_TARGET);
		return 0;
	case G_TARGET:
		if (memchr(p->str, '\0', (size_t)p->str_len))
			return fail(p, err, CAIRN_EFORMAT,
				    "nar: NUL byte in the symlink target at %s",
				    nar_where(w, p->path, p->path_len));
		if (p->cb->symlink) {
			fill_node(p, CAIRN_NAR_SYMLINK);
			p->node.target = p->str;
			p->node.target_len = (size_t)p->str_len;
			rc = callback(p, p->cb->symlink(p->ctx, &p->node, err), err);
		}
		want_string(p, G_CLOSE_NODE);
		return rc;
	case G_CLOSE_NODE:
		if (!is(p, ")"))
			return unexpected(p, err);
		node_done(p);
		return 0;
	case G_DIR_ITEM:
		if (is(p, ")")) {
			if (p->cb->directory_end) {
				fill_node(p, CAIRN_NAR_DIRECTORY);
				rc = callback(p, p->cb->directory_end(p->ctx, &p->node, err), err);
			}
			node_done(p);
			return rc;
		}
		if (!is(p, "entry"))
			return unexpected(p, err);
		want_string(p, G_ENTRY_OPEN);
		return 0;
	case G_ENTRY_OPEN:
		if (!is(p, "("))
			return unexpected(p, err);
		want_string(p, G_NAME_TAG);
		return 0;
	case G_NAME_TAG:
		if (!is(p, "name"))
			return unexpected(p, err);
		want_string(p, G_NAME);
		return 0;
	case G_NAME: {
		rc = check_name(p, err);
		if (rc)
			return rc;
		size_t start = p->depth == 0 ? 0 : p->path_len + 1;
		if (p->depth > 0)
			p->path[p->path_len] = '/';
		memcpy(p->path + start, p->str, (size_t)p->str_len);
		p->path_len = start + (size_t)p->str_len;
		p->path[p->path_len] = '\0';
		p->depth++;
		p->comp_start[p->depth] = (uint16_t)start;
		want_string(p, G_NODE_TAG);
		return 0;
	}
	case G_NODE_TAG:
		if (!is(p, "node"))
			return unexpected(p, err);
		want_string(p, G_OPEN);
		return 0;
	case G_ENTRY_CLOSE:
		if (!is(p, ")"))
			return unexpected(p, err);
		want_string(p, G_DIR_ITEM);
		return 0;
	}
	return fail(p, err, CAIRN_EINVAL, "nar: parser in an impossible state");
}

/* The length prefix of a string is known: check it before buffering. */
static int on_length(struct cairn_nar_parser *p, uint64_t len, struct cairn_error *err)
{
	char w[NAR_QUOTE_MAX];
	switch (p->g) {
	case G_MAGIC:
		if (len != sizeof(CAIRN_NAR_MAGIC) - 1)
			return fail(p, err, CAIRN_EFORMAT,
				    "nar: not a Nix archive (bad magic length %llu)",
				    (unsigned long long)len);
		break;
	case G_NAME:
		nar_dir(w, p->path, p->path_len);
		if (len == 0)
			return fail(p, err, CAIRN_EFORMAT, "nar: empty entry name in %s", w);
		if (len > CAIRN_NAR_NAME_MAX)
			return fail(p, err, CAIRN_ELIMIT,
				    "nar: entry name of %llu bytes in %s is longer than %d bytes",
				    (unsigned long long)len, w, CAIRN_NAR_NAME_MAX);
		break;
	case G_TARGET:
		nar_where(w, p->path, p->path_len);
		if (len == 0)
			return fail(p, err, CAIRN_EFORMAT, "nar: empty symlink target at %s", w);
		if (len > CAIRN_NAR_TARGET_MAX)
			return fail(
			    p, err, CAIRN_ELIMIT,
			    "nar: symlink target of %llu bytes at %s is longer than %d bytes",
			    (unsigned long long)len, w, CAIRN_NAR_TARGET_MAX);
		break;
	default:
		if (len > CAIRN_NAR_TOKEN_MAX)
			return fail(p, err, CAIRN_EFORMAT,
				    "nar: expected %s, got a string of %llu bytes at %s",
				    gram_expect(p->g), (unsigned long long)len,
				    nar_where(w, p->path, p->path_len));
		break;
	}
	p->str_len = len;
	p->need = (size_t)len + nar_pad(len);
	p->have = 0;
	p->lex = L_STR;
	return 0;
}

static int on_size(struct cairn_nar_parser *p, uint64_t size, struct cairn_error *err)
{
	char w[NAR_QUOTE_MAX];
	if (size > p->max_file)
		return fail(p, err, CAIRN_ELIMIT,
			    "nar: file of %llu bytes at %s is more than the limit of %llu",
			    (unsigned long long)size, nar_where(w, p->path, p->path_len),
			    (unsigned long long)p->max_file);
	p->node.size = size;
	p->node.nar_offset = p->pos;
	if (p->cb->file_begin) {
		fill_node(p, CAIRN_NAR_REGULAR);
		int rc = callback(p, p->cb->file_begin(p->ctx, &p->node, err), err);
		if (rc)
			return rc;
	}
	p->data_left = size;
	if (size == 0)
		return file_done(p, err);
	p->lex = L_DATA;
	return 0;
}

static int check_zero(struct cairn_nar_parser *p, const uint8_t *b, size_t n, const char *what,
		      struct cairn_error *err)
{
	for (size_t i = 0; i < n; i++) {
		if (b[i]) {
			char w[NAR_QUOTE_MAX];
			return fail(p, err, CAIRN_EFORMAT, "nar: non-zero padding after %s at %s",
				    what, nar_where(w, p->path, p->path_len));
		}
	}
	return 0;
}

/* p->need bytes have been collected for the current lexer state. */
static int step(struct cairn_nar_parser *p, struct cairn_error *err)
{
	int rc;
	switch (p->lex) {
	case L_LEN:
		rc = on_length(p, nar_le64(p->acc), err);
		if (rc)
			return rc;
		if (p->need == 0)
			goto string; /* empty string: nothing more to read */
		return 0;
	case L_STR:
	string:
		rc = check_zero(p, (const uint8_t *)p->str + p->str_len,
				p->need - (size_t)p->str_len,
				p->g == G_NAME ? "an entry name" : "a string", err);
		if (rc)
			return rc;
		p->str[p->str_len] = '\0';
		return on_string(p, err);
	case L_SIZE: return on_size(p, nar_le64(p->acc), err);
	case L_PAD:
		rc = check_zero(p, p->acc, p->need, "file contents", err);
		if (rc)
			return rc;
		return file_done(p, err);
	case L_DATA:
	case L_END: break;
	}
	return fail(p, err, CAIRN_EINVAL, "nar: parser in an impossible state");
}

struct cairn_nar_parser *cairn_nar_parser_new(const struct cairn_nar_callbacks *cb, void *ctx,
					      const struct cairn_nar_limits *lim)
{
	static const struct cairn_nar_callbacks none;
	struct cairn_nar_parser *p = malloc(sizeof(*p));
	if (!p)
		return NULL;
	memset(p, 0, offsetof(struct cairn_nar_parser, path));
	p->hashing = !(lim && lim->no_hash);
	if (p->hashing && cairn_sha256_init(&p->sha) != 0) {
		free(p);
		return NULL;
	}
	p->cb = cb ? cb : &none;
	p->ctx = ctx;
	p->max_file = lim && lim->max_file_size ? lim->max_file_size : CAIRN_NAR_FILE_MAX_DEFAULT;
	p->max_nar = lim && lim->max_nar_size ? lim->max_nar_size : UINT64_MAX;
	p->max_depth = lim && lim->max_depth && lim->max_depth < CAIRN_NAR_DEPTH_MAX
			   ? lim->max_depth
			   : CAIRN_NAR_DEPTH_MAX;
	p->path[0] = '\0';
	want_string(p, G_MAGIC);
	return p;
}

int cairn_nar_parser_feed(struct cairn_nar_parser *p, const void *data, size_t len,
			  struct cairn_error *err)
{
	if (p->failed)
		return cairn_error_set(err, p->failed, "nar: parser used after an error");
	if (p->finished)
		return fail(p, err, CAIRN_EINVAL, "nar: parser fed after finish");
	if (len > p->max_nar - p->total)
		return fail(p, err, CAIRN_ELIMIT,
			    "nar: archive is larger than the limit of %llu bytes",
			    (unsigned long long)p->max_nar);
	const uint8_t *d = data;
	if (p->hashing)
		cairn_sha256_update(&p->sha, d, len);
	uint64_t base = p->total;
	p->total += len;
	size_t pos = 0;
	int rc = 0;
	while (pos < len) {
		if (p->lex == L_DATA) {
			size_t n = len - pos;
			if (n > p->data_left)
				n = (size_t)p->data_left;
			if (p->cb->file_data) {
				rc = callback(p, p->cb->file_data(p->ctx, d + pos, n, err), err);
				if (rc)
					return rc;
			}
			pos += n;
			p->data_left -= n;
			if (p->data_left == 0) {
				p->lex = L_PAD;
				p->need = nar_pad(p->node.size);
				p->have = 0;
				if (p->need == 0) {
					p->pos = base + pos;
					rc = file_done(p, err);
					if (rc)
						return rc;
				}
			}
			continue;
		}
		if (p->lex == L_END)
			return fail(
			    p, err, CAIRN_EFORMAT,
			    "nar: trailing data after the end of the archive (at byte %llu)",
			    (unsigned long long)(base + pos));
		uint8_t *buf = p->lex == L_STR ? (uint8_t *)p->str : p->acc;
		size_t n = p->need - p->have;
		if (n > len - pos)
			n = len - pos;
		memcpy(buf + p->have, d + pos, n);
		p->have += n;
		pos += n;
		if (p->have < p->need)
			break;
		p->pos = base + pos;
		rc = step(p, err);
		if (rc)
			return rc;
	}
	return 0;
}

int cairn_nar_parser_finish(struct cairn_nar_parser *p, struct cairn_error *err)
{
	if (p->failed)
		return cairn_error_set(err, p->failed, "nar: parser used after an error");
	if (p->finished)
		return 0;
	if (p->lex != L_END) {
		char w[NAR_QUOTE_MAX];
		nar_where(w, p->path, p->path_len);
		if (p->total == 0)
			return fail(p, err, CAIRN_ETRUNCATED, "nar: empty input");
		if (p->lex == L_DATA)
			return fail(p, err, CAIRN_ETRUNCATED,
				    "nar: truncated inside the contents of the file at %s (%llu "
				    "bytes missing)",
				    w, (unsigned long long)p->data_left);
		if (p->lex == L_SIZE || p->lex == L_PAD)
			return fail(p, err, CAIRN_ETRUNCATED,
				    "nar: truncated inside the file at %s", w);
		return fail(p, err, CAIRN_ETRUNCATED,
			    "nar: truncated after %llu bytes, expecting %s at %s",
			    (unsigned long long)p->total, gram_expect(p->g), w);
	}
	if (p->hashing)
		cairn_sha256_final(&p->sha, p->digest);
	p->finished = true;
	return 0;
}

int cairn_nar_parser_hash(const struct cairn_nar_parser *p, struct cairn_hash *out)
{
	if (!p->finished || p->failed || !p->hashing)
		return CAIRN_EINVAL;
	out->algo = CAIRN_HASH_SHA256;
	out->len = CAIRN_SHA256_LEN;
	memset(out->digest, 0, sizeof(out->digest));
	memcpy(out->digest, p->digest, CAIRN_SHA256_LEN);
	return 0;
}

uint64_t cairn_nar_parser_size(const struct cairn_nar_parser *p)
{
	return p->total;
}

void cairn_nar_parser_free(struct cairn_nar_parser *p)
{
	if (!p)
		return;
	if (!p->finished && p->hashing)
		cairn_sha256_release(&p->sha);
	free(p);
}
