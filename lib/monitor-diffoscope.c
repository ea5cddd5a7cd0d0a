/*
 * monitor-diffoscope.c - run diffoscope on what differs in an item's two
 * unpacked NARs, when it is installed: what in the files differs, not only
 * which files.
 *
 * It runs once per differing regular file, on hard links with names of our
 * own (the file's base name, with bytes outside [A-Za-z0-9._+-] as '_'),
 * not once on the two trees: diffoscope 240 fails on a tree holding a file
 * name that is not UTF-8 (it hashes the name as text; no locale or
 * PYTHONUTF8 setting helps), and the servers choose the names.  The
 * reports are joined into one page under the real name, escaped.  With no
 * regular file to compare (only added or removed entries, say), it runs on
 * the trees.
 *
 * Bounded: MON_DIFFOSCOPE_FILES_MAX files, MON_DIFFOSCOPE_TIMEOUT_S
 * seconds in all (then it is killed) and MON_DIFFOSCOPE_HTML_MAX bytes of
 * HTML (the rest is dropped with a note), since the trees are whatever the
 * servers sent.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cairn/escape.h"
#include "cairn/nar-diff.h"
#include "monitor-int.h"
#include "cairn/banned.h"

extern char **environ;

/* room kept for the joined page's own markup around the reports, and
 * the most of diffoscope's style sheet taken into it */
#define PAGE_RESERVE 16384
#define STYLE_MAX 8192
/* a file's heading: its name escaped (a byte takes at most 8, "&#xfffd;") */
#define HEAD_MAX ((size_t)CAIRN_NAR_PATH_MAX * 8 + 64)
/* the longest name of ours for a file (its base name, made safe) */
#define SAFE_NAME_MAX 64

static int64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* What one run left: why in note; cut or late, the output is kept. */
enum run_end { RUN_DONE, RUN_CUT, RUN_LATE };

/* prog on a and b, in directory cwd (NULL: this one), into out. */
static int run(const char *prog, const char *format, const char *cwd, const char *a, const char *b,
	       int64_t deadline, size_t max, struct cairn_buf *out, enum run_end *end, char *note,
	       size_t note_len)
{
	int pfd[2];
	note[0] = '\0';
	*end = RUN_DONE;
	if (pipe(pfd) < 0) {
		snprintf(note, note_len, "diffoscope: pipe: %s", strerror(errno));
		return CAIRN_EIO;
	}
	posix_spawn_file_actions_t fa;
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_adddup2(&fa, pfd[1], 1);
	posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
	posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
	posix_spawn_file_actions_addclose(&fa, pfd[0]);
	if (cwd)
		posix_spawn_file_actions_addchdir_np(&fa, cwd);
	char *argv[] = {(char *)prog,
			(char *)format,
			"-",
			"--exclude-directory-metadata=yes",
			"--no-progress",
			(char *)a,
			(char *)b,
			NULL};
	/* its own process group: diffoscope runs tools of its own, and a
	 * timeout must stop them too */
	posix_spawnattr_t at;
	posix_spawnattr_init(&at);
	posix_spawnattr_setflags(&at, POSIX_SPAWN_SETPGROUP);
	posix_spawnattr_setpgroup(&at, 0);
	pid_t pid;
	int rc = posix_spawnp(&pid, prog, &fa, &at, argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	posix_spawnattr_destroy(&at);
	close(pfd[1]);
	if (rc != 0) {
		close(pfd[0]);
		snprintf(note, note_len, "diffoscope: cannot run '%s': %s", prog, strerror(rc));
		return CAIRN_ENOENT;
	}
	char buf[16384];
	for (;;) {
		int64_t left = deadline - now_ms();
		if (left <= 0) {
			*end = RUN_LATE;
			break;
		}
		struct pollfd p = {.fd = pfd[0], .events = POLLIN};
		int n = poll(&p, 1, left > 1000 ? 1000 : (int)left);
		if (n < 0 && errno != EINTR)
			break;
		if (n <= 0)
			continue;
		ssize_t got = read(pfd[0], buf, sizeof(buf));
		if (got < 0 && errno == EINTR)
			continue;
		if (got <= 0)
			break;
		size_t keep = (size_t)got;
		if (out->len + keep > max) {
			keep = max - out->len;
			*end = RUN_CUT;
		}
		if (keep && cairn_buf_append(out, buf, keep) < 0)
			*end = RUN_CUT;
		if (*end == RUN_CUT)
			break; /* stop reading: it is killed below */
	}
	close(pfd[0]);
	int status = 0;
	if (*end != RUN_DONE)
		kill(-pid, SIGKILL);
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	if (*end != RUN_DONE)
		return 0;
	/* 0: no difference, 1: differences; anything else is its failure */
	if (!WIFEXITED(status) || WEXITSTATUS(status) > 1) {
		snprintf(note, note_len, "diffoscope: failed (%s %d)",
			 WIFEXITED(status) ? "exit status" : "signal",
			 WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status));
		return CAIRN_EIO;
	}
	return 0;
}

/* The part of an HTML page between its <body ...> and </body> (all of it
 * without them: a report cut short has no end). */
static void body_of(const char *s, size_t len, const char **from, size_t *n)
{
	size_t start = 0, stop = len;
	for (size_t i = 0; i + 5 <= len; i++)
		if (!memcmp(s + i, "<body", 5)) {
			const char *gt = memchr(s + i, '>', len - i);
			start = gt ? (size_t)(gt - s) + 1 : 0;
			break;
		}
	for (size_t i = len; i >= start + 7; i--)
		if (!memcmp(s + i - 7, "</body>", 7)) {
			stop = i - 7;
			break;
		}
	*from = s + start;
	*n = stop - start;
}

/* The first <style>...</style> of a page, or nothing. */
static void style_of(const char *s, size_t len, const char **from, size_t *n)
{
	const char *end = s + len;
	*from = NULL;
	*n = 0;
	for (const char *p = s; p + 7 <= end; p++) {
		if (!memcmp(p, "<body", 5))
			return;
		if (memcmp(p, "<style>", 7))
			continue;
		for (const char *q = p; q + 8 <= end; q++)
			if (!memcmp(q, "</style>", 8)) {
				*from = p;
				*n = (size_t)(q + 8 - p);
				return;
			}
		return;
	}
}

/*
 * One report on a and b into report: diffoscope's HTML, or when its HTML
 * presenter gives up on an input its text one handles, the text escaped
 * in <pre>.  *html tells which.  0 with a report (note says when it is
 * partial), else as run().
 */
static int report(const char *prog, const char *cwd, const char *a, const char *b, int64_t deadline,
		  size_t max, struct cairn_buf *out, bool *html, enum run_end *end, char *note,
		  size_t note_len)
{
	*html = true;
	int rc = run(prog, "--html", cwd, a, b, deadline, max, out, end, note, note_len);
	if (rc != CAIRN_EIO)
		return rc;
	/* escaped, a byte takes at most 6 ("&quot;"), and the page around
	 * it some more */
	size_t text_max = max > 1024 ? (max - 1024) / 6 : 0;
	struct cairn_buf text = CAIRN_BUF_INIT(text_max);
	char why[MON_NOTE_MAX];
	snprintf(why, sizeof(why), "%s", note);
	cairn_buf_reset(out);
	rc = run(prog, "--text", cwd, a, b, deadline, text_max, &text, end, note, note_len);
	if (rc == 0) {
		*html = false;
		cairn_html_str(out, text.data ? text.data : "", text.len);
		if (*end == RUN_DONE)
			snprintf(note, note_len, "%s with HTML; its text report is shown", why);
	}
	cairn_buf_release(&text);
	return rc;
}

static void note_end(enum run_end end, unsigned timeout_s, size_t html_max, char *note,
		     size_t note_len)
{
	if (end == RUN_LATE)
		snprintf(note, note_len, "diffoscope: stopped after %u s; its output is partial",
			 timeout_s);
	else if (end == RUN_CUT)
		snprintf(note, note_len,
			 "diffoscope: only the first %zu bytes of its report are kept", html_max);
}

/* The trees themselves, in one run: when no regular file pair differs. */
static int on_trees(const char *prog, const char *a, const char *b, unsigned timeout_s,
		    size_t html_max, struct cairn_buf *html, char *note, size_t note_len)
{
	int64_t deadline = now_ms() + (int64_t)timeout_s * 1000;
	struct cairn_buf one = CAIRN_BUF_INIT(html_max);
	enum run_end end;
	bool is_html;
	int rc = report(prog, NULL, a, b, deadline, html_max, &one, &is_html, &end, note, note_len);
	if (rc == 0 && is_html) {
		cairn_buf_append(html, one.data ? one.data : "", one.len);
	} else if (rc == 0) {
		cairn_buf_puts(html, "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
				     "<title>diffoscope</title></head><body><p>");
		cairn_html_cstr(html, note);
		cairn_buf_puts(html, ":</p><pre>");
		cairn_buf_append(html, one.data ? one.data : "", one.len);
		cairn_buf_puts(html, "</pre></body></html>\n");
	}
	if (rc == 0)
		note_end(end, timeout_s, html_max, note, note_len);
	cairn_buf_release(&one);
	return rc;
}

/* name's last component, with bytes outside [A-Za-z0-9._+-] as '_' and
 * no leading '.', at most SAFE_NAME_MAX bytes: a name diffoscope takes,
 * with the extension it may look at. */
static void safe_name(const char *path, char out[SAFE_NAME_MAX + 1])
{
	const char *base = strrchr(path, '/');
	base = base ? base + 1 : path;
	size_t len = strlen(base), o = 0;
	if (len > SAFE_NAME_MAX)
		base += len - SAFE_NAME_MAX; /* keep the end: the extension */
	for (const char *p = base; *p && o < SAFE_NAME_MAX; p++) {
		char c = *p;
		bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
			  (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '+' || c == '-';
		if (o == 0 && c == '.')
			ok = false;
		out[o++] = ok ? c : '_';
	}
	if (o == 0)
		out[o++] = 'f';
	out[o] = '\0';
}

/* dir/side/name, a hard link to tree/path (the tree itself for ""), if
 * that is a regular file: nothing in the tree is followed. */
static int link_side(const char *tree, const char *path, const char *dir, const char *side,
		     const char *name, char *out, size_t cap, char *note, size_t note_len)
{
	char src[8192];
	struct stat st;
	snprintf(out, cap, "%s/%s", dir, side);
	if (mkdir(out, 0700) < 0) {
		snprintf(note, note_len, "diffoscope: mkdir: %s", strerror(errno));
		return CAIRN_EIO;
	}
	if ((size_t)snprintf(src, sizeof(src), "%s%s%s", tree, path[0] ? "/" : "", path) >=
		sizeof(src) ||
	    (size_t)snprintf(out, cap, "%s/%s/%s", dir, side, name) >= cap) {
		snprintf(note, note_len, "diffoscope: a file name too long");
		return CAIRN_ELIMIT;
	}
	if (lstat(src, &st) == 0 && !S_ISREG(st.st_mode)) {
		snprintf(note, note_len, "diffoscope: a file to compare is not a regular file");
		return CAIRN_EFORMAT;
	}
	/* link(2) follows no symbolic link: the file itself, or nothing */
	if (lstat(src, &st) < 0 || link(src, out) < 0) {
		snprintf(note, note_len, "diffoscope: cannot link a file to compare: %s",
			 strerror(errno));
		return CAIRN_EIO;
	}
	return 0;
}

/* Remove what link_side made for one pair (nothing else is in dir). */
static void unlink_pair(const char *dir, const char *name)
{
	char p[8192];
	static const char *const sides[] = {"a", "b"};
	for (size_t i = 0; i < 2; i++) {
		snprintf(p, sizeof(p), "%s/%s/%s", dir, sides[i], name);
		(void)unlink(p);
		snprintf(p, sizeof(p), "%s/%s", dir, sides[i]);
		(void)rmdir(p);
	}
	(void)rmdir(dir);
}

static bool compared(const struct cairn_nar_change *ch)
{
	return ch->a && ch->b && ch->a->type == CAIRN_NAR_REGULAR &&
	       ch->b->type == CAIRN_NAR_REGULAR && !strcmp(ch->kind, "content");
}

int mon_diffoscope(const char *prog, const char *a, const char *b,
		   const struct cairn_nar_change *changes, size_t n_changes, unsigned timeout_s,
		   size_t html_max, struct cairn_buf *html, char *note, size_t note_len)
{
	size_t total = 0, done = 0, failed = 0;
	note[0] = '\0';
	for (size_t k = 0; k < n_changes; k++)
		total += compared(&changes[k]);
	if (total == 0)
		return on_trees(prog, a, b, timeout_s, html_max, html, note, note_len);

	int64_t deadline = now_ms() + (int64_t)timeout_s * 1000;
	char work[4096], why[MON_NOTE_MAX] = "", failure[MON_NOTE_MAX] = "",
			 fallback[MON_NOTE_MAX] = "";
	if ((size_t)snprintf(work, sizeof(work), "%s.diffoscope-XXXXXX", a) >= sizeof(work) ||
	    !mkdtemp(work)) {
		snprintf(note, note_len, "diffoscope: no directory for its files: %s",
			 strerror(errno));
		return CAIRN_EIO;
	}
	struct cairn_buf page = CAIRN_BUF_INIT(html_max), one = CAIRN_BUF_INIT(html_max),
			 head = CAIRN_BUF_INIT(HEAD_MAX);
	enum run_end end = RUN_DONE;
	int rc = 0;
	for (size_t k = 0; k < n_changes && rc != CAIRN_ENOENT && end == RUN_DONE; k++) {
		const struct cairn_nar_change *ch = &changes[k];
		if (!compared(ch))
			continue;
		if (done + failed == MON_DIFFOSCOPE_FILES_MAX)
			break;
		char dir[4200], name[SAFE_NAME_MAX + 1], pa[8192], pb[8192];
		bool is_html;
		cairn_buf_reset(&head);
		cairn_buf_puts(&head, "<h2 class=\"file\"><code>");
		cairn_html_cstr(&head, ch->a->path[0] ? ch->a->path : "(the NAR's one file)");
		cairn_buf_puts(&head, "</code></h2>\n");
		size_t used = page.len + head.len + PAGE_RESERVE;
		size_t room = used < html_max ? html_max - used : 0;
		snprintf(dir, sizeof(dir), "%s/%zu", work, k);
		safe_name(ch->a->path, name);
		cairn_buf_reset(&one);
		if (mkdir(dir, 0700) < 0) {
			snprintf(why, sizeof(why), "diffoscope: mkdir: %s", strerror(errno));
			rc = CAIRN_EIO;
		} else if ((rc = link_side(a, ch->a->path, dir, "a", name, pa, sizeof(pa), why,
					   sizeof(why))) == 0 &&
			   (rc = link_side(b, ch->b->path, dir, "b", name, pb, sizeof(pb), why,
					   sizeof(why))) == 0) {
			/* in the pair's directory, so that the report names
			 * a/NAME and b/NAME, not our temporary path; unless
			 * prog is itself named from here */
			char ra[SAFE_NAME_MAX + 3], rb[SAFE_NAME_MAX + 3];
			bool here = prog[0] != '/' && strchr(prog, '/');
			snprintf(ra, sizeof(ra), "a/%s", name);
			snprintf(rb, sizeof(rb), "b/%s", name);
			rc = report(prog, here ? NULL : dir, here ? pa : ra, here ? pb : rb,
				    deadline, room, &one, &is_html, &end, why, sizeof(why));
		}
		unlink_pair(dir, name);
		if (rc < 0) {
			failed++;
			snprintf(failure, sizeof(failure), "%s", why);
			continue;
		}
		if (!is_html)
			snprintf(fallback, sizeof(fallback), "%s", why);
		if (!page.len) {
			const char *s;
			size_t n;
			cairn_buf_puts(&page, "<!DOCTYPE html>\n<html lang=\"en\"><head>"
					      "<meta charset=\"utf-8\"><title>diffoscope</title>");
			if (is_html) {
				style_of(one.data, one.len, &s, &n);
				if (n <= STYLE_MAX)
					cairn_buf_append(&page, s ? s : "", n);
			}
			cairn_buf_puts(&page, "</head><body class=\"diffoscope\">");
		}
		cairn_buf_append(&page, head.data, head.len);
		if (is_html) {
			const char *s;
			size_t n;
			body_of(one.data ? one.data : "", one.len, &s, &n);
			cairn_buf_append(&page, s, n);
		} else {
			cairn_buf_puts(&page, "<p>");
			cairn_html_cstr(&page, why);
			cairn_buf_puts(&page, ":</p><pre>");
			cairn_buf_append(&page, one.data ? one.data : "", one.len);
			cairn_buf_puts(&page, "</pre>");
		}
		done++;
	}
	(void)rmdir(work);
	if (rc == CAIRN_ENOENT) {
		snprintf(note, note_len, "%s", failure);
	} else if (done == 0) {
		snprintf(note, note_len, "%s",
			 failure[0] ? failure : "diffoscope: no file compared");
		rc = CAIRN_EIO;
	} else {
		rc = 0;
		if (end != RUN_DONE)
			note_end(end, timeout_s, html_max, note, note_len);
		else if (done + failed < total)
			snprintf(note, note_len,
				 "diffoscope: only the first %zu of the %zu files that differ are "
				 "compared",
				 done + failed, total);
		else if (failed)
			snprintf(note, note_len,
				 "diffoscope: %zu of the %zu files not compared: %s", failed, total,
				 failure + (strncmp(failure, "diffoscope: ", 12) ? 0 : 12));
		else if (fallback[0])
			snprintf(note, note_len, "%s", fallback);
		cairn_buf_puts(&page, "</body></html>\n");
		cairn_buf_append(html, page.data, page.len);
	}
	cairn_buf_release(&head);
	cairn_buf_release(&one);
	cairn_buf_release(&page);
	return rc;
}
