/*
 * fuzz-httpd-path - cairn_httpd_safe_path must never accept a name that
 * could leave the served directory, and never write past its output.
 */
#include <stdint.h>
#include <string.h>

#include "cairn/httpd.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char out[128];
	if (cairn_httpd_safe_path((const char *)data, size, out, sizeof(out), NULL) != 0)
		return 0;
	size_t n = strlen(out);
	if (n == 0 || n >= sizeof(out) || out[0] == '/' || out[n - 1] == '/' || strchr(out, '\\') ||
	    strstr(out, "//"))
		__builtin_trap();
	/* no "." or ".." segment anywhere */
	for (const char *seg = out; seg;) {
		const char *slash = strchr(seg, '/');
		size_t sl = slash ? (size_t)(slash - seg) : strlen(seg);
		if ((sl == 1 && seg[0] == '.') || (sl == 2 && seg[0] == '.' && seg[1] == '.'))
			__builtin_trap();
		seg = slash ? slash + 1 : NULL;
	}
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)out[i] < 0x20 || out[i] == 0x7f)
			__builtin_trap();
	return 0;
}
