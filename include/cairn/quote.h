/*
 * quote.h - make an untrusted byte string safe for a terminal or a log line.
 *
 * File names and symlink targets in NARs, narinfo fields, key names and
 * reasons that servers send are chosen by whoever runs the server.  Printed
 * raw they could move the cursor, retitle the window (OSC sequences), erase
 * what came before (CR, BS) or, with a newline, forge whole lines of a
 * report.  Every human-readable output that holds such a string goes
 * through cairn_quote (JSON output has its own, exact escapes).
 *
 * Rules, close to `ls --quoting-style=escape` and git's quote_path:
 *   - printable ASCII is kept; a backslash becomes "\\";
 *   - \a \b \t \n \v \f \r become those two-character escapes, every other
 *     control byte and DEL becomes \xNN;
 *   - bytes >= 0x80 are kept when they form valid UTF-8 of a character
 *     that is neither a C1 control (U+0080..U+009F: CSI is U+009B) nor a
 *     bidirectional override or isolate (U+202A..U+202E, U+2066..U+2069,
 *     which reorder what a terminal shows) nor a line or paragraph
 *     separator (U+2028, U+2029); any other byte becomes \xNN;
 *   - with CAIRN_QUOTE_ASCII every byte >= 0x80 becomes \xNN (logs);
 *   - with CAIRN_QUOTE_WRAP the result is put in double quotes (with \"
 *     inside) when anything had to be escaped, so that a reader can tell
 *     an escape from the same characters typed in a name.
 */
#ifndef CAIRN_QUOTE_H
#define CAIRN_QUOTE_H

#include <stdbool.h>
#include <stddef.h>

#include "cairn/buf.h"

enum cairn_quote_flags {
	CAIRN_QUOTE_WRAP = 1 << 0,
	CAIRN_QUOTE_ASCII = 1 << 1,
	/* Keep backslashes as they are: for messages that may hold text made
	 * safe already (it would be escaped twice); a backslash harms no
	 * terminal. */
	CAIRN_QUOTE_KEEP_BACKSLASH = 1 << 2,
};

/* Append the safe form of s[0..len) to out.  0 or the buffer's error. */
int cairn_quote(struct cairn_buf *out, const char *s, size_t len, unsigned flags);
/* Into out[cap], cut with "..." when it does not fit (plainly when cap < 4); returns out. */
char *cairn_quote_str(char *out, size_t cap, const char *s, size_t len, unsigned flags);

#endif
