/*
 * monitor-diffoscope.c - run diffoscope on the two unpacked trees of a
 * differing item, when it is installed: what in the files differs, not
 * only which files.  Bounded: MON_DIFFOSCOPE_TIMEOUT_S seconds (then it is
 * killed) and MON_DIFFOSCOPE_HTML_MAX bytes of HTML (the rest is dropped
 * with a note), since the trees are whatever the servers sent.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cairn/escape.h"
#include "monitor-int.h"
#include "cairn/banned.h"

extern char **environ;

static int64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int run(const char *prog, const char *format, const char *a, const char *b,
	       unsigned timeout_s, size_t html_max, struct cairn_buf *html, char *note,
	       size_t note_len)
{
	int pfd[2];
	note[0] = '\0';
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
	int64_t deadline = now_ms() + (int64_t)timeout_s * 1000;
	bool truncated = false, timed_out = false;
	char buf[16384];
	for (;;) {
		int64_t left = deadline - now_ms();
		if (left <= 0) {
			timed_out = true;
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
		if (html->len + keep > html_max) {
			keep = html_max - html->len;
			truncated = true;
		}
		if (keep && cairn_buf_append(html, buf, keep) < 0) {
			truncated = true;
			break;
		}
		if (truncated)
			break; /* stop reading: it is killed below */
	}
	close(pfd[0]);
	int status = 0;
	if (timed_out || truncated)
		kill(-pid, SIGKILL);
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	if (timed_out) {
		snprintf(note, note_len, "diffoscope: stopped after %u s; its output is partial",
			 timeout_s);
		return 0;
	}
	if (truncated) {
		snprintf(note, note_len, "diffoscope: only the first %zu bytes of its report are kept",
			 html_max);
		return 0;
	}
	/* 0: no difference, 1: differences; anything else is its failure */
	if (!WIFEXITED(status) || WEXITSTATUS(status) > 1) {
		snprintf(note, note_len, "diffoscope: failed (%s %d)",
			 WIFEXITED(status) ? "exit status" : "signal",
			 WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status));
		return CAIRN_EIO;
	}
	return 0;
}

int mon_diffoscope(const char *prog, const char *a, const char *b, unsigned timeout_s,
		   size_t html_max, struct cairn_buf *html, char *note, size_t note_len)
{
	int rc = run(prog, "--html", a, b, timeout_s, html_max, html, note, note_len);
	if (rc != CAIRN_EIO)
		return rc;
	/* Its HTML presenter gives up on some inputs its text one handles
	 * (diffoscope 240 on a file name that is not UTF-8): the text, as
	 * our own page. */
	/* escaped, a byte takes at most 6 ("&quot;"), and the page some more */
	size_t text_max = html_max > 1024 ? (html_max - 1024) / 6 : 0;
	struct cairn_buf text = CAIRN_BUF_INIT(text_max);
	char why[MON_NOTE_MAX];
	snprintf(why, sizeof(why), "%s", note);
	cairn_buf_release(html);
	rc = run(prog, "--text", a, b, timeout_s, text_max, &text, note, note_len);
	if (rc == 0) {
		cairn_buf_puts(html, "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
				     "<title>diffoscope</title></head><body><p>");
		cairn_html_cstr(html, why);
		cairn_buf_puts(html, "; its text report:</p><pre>");
		cairn_html_str(html, text.data ? text.data : "", text.len);
		cairn_buf_puts(html, "</pre></body></html>\n");
		if (!note[0])
			snprintf(note, note_len, "%s with HTML; its text report is shown", why);
	}
	cairn_buf_release(&text);
	return rc;
}
