/*
 * httpd-listen.c - the server's sockets before its loops start: --listen
 * names resolved and bound (or sockets adopted from systemd), the port
 * file written, privileges dropped.
 */
#include <arpa/inet.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pwd.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "cairn/cairn.h"
#include "httpd-int.h"
#include "cairn/banned.h"

/* --- listening sockets ------------------------------------------------------- */

/* Split "host:port", "[v6]:port", "*:port" into host (NULL for any) and port. */
static int parse_listen(const char *spec, char *host, size_t hostsize, char *port, size_t portsize,
			struct cairn_error *err)
{
	const char *colon, *hs = spec, *he;

	if (spec[0] == '[') {
		he = strchr(spec, ']');
		if (!he || he[1] != ':')
			goto bad;
		hs = spec + 1;
		colon = he + 1;
	} else {
		colon = strrchr(spec, ':');
		if (!colon)
			goto bad;
		he = colon;
	}
	size_t hl = (size_t)(he - hs), pl = strlen(colon + 1);
	if (hl >= hostsize || pl == 0 || pl >= portsize)
		goto bad;
	for (size_t i = 0; i < pl; i++)
		if (colon[1 + i] < '0' || colon[1 + i] > '9')
			goto bad;
	memcpy(host, hs, hl);
	host[hl] = '\0';
	memcpy(port, colon + 1, pl + 1);
	if (strtoul(port, NULL, 10) > 65535)
		goto bad;
	if (strcmp(host, "*") == 0 || host[0] == '\0')
		host[0] = '\0';
	return 0;
bad:
	return cairn_error_set(err, CAIRN_EINVAL,
			       "httpd: listen address '%s' is not HOST:PORT or [V6]:PORT", spec);
}

static int open_listener(const struct sockaddr *sa, socklen_t salen, int reuseport,
			 const char *spec, struct cairn_error *err)
{
	int fd = socket(sa->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	int one = 1;

	if (fd < 0)
		return cairn_error_errno(err, errno, "httpd: socket for '%s'", spec);
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	/* accepted sockets inherit it on Linux: small responses leave at once */
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (sa->sa_family == AF_INET6)
		setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
	if (reuseport && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) != 0) {
		int e = errno;
		close(fd);
		return cairn_error_errno(err, e, "httpd: SO_REUSEPORT on '%s'", spec);
	}
	if (bind(fd, sa, salen) != 0 || listen(fd, H2O_SOMAXCONN) != 0) {
		int e = errno;
		close(fd);
		return cairn_error_errno(err, e, "httpd: cannot listen on '%s'", spec);
	}
	return fd;
}

int httpd_bind_all(struct cairn_httpd *h, struct cairn_error *err)
{
	unsigned per = h->cfg.reuseport ? h->threads : 1;

	for (size_t i = 0; i < h->cfg.n_listen; i++) {
		char host[256], port[8];
		struct addrinfo hints = {0}, *ai = NULL;
		int ret =
		    parse_listen(h->cfg.listen[i], host, sizeof(host), port, sizeof(port), err);
		if (ret < 0)
			return ret;
		hints.ai_family = AF_UNSPEC;
		hints.ai_socktype = SOCK_STREAM;
		/* A name ("localhost") is resolved: one socket per --listen, on
		 * its first IPv4 address when it has one (what "localhost" means
		 * to most clients), else its first address. */
		hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
		int gai = getaddrinfo(host[0] ? host : NULL, port, &hints, &ai);
		if (gai != 0)
			return cairn_error_set(err, CAIRN_EINVAL, "httpd: listen address '%s': %s",
					       h->cfg.listen[i], gai_strerror(gai));
		const struct addrinfo *pick = ai;
		for (const struct addrinfo *a = ai; a; a = a->ai_next)
			if (a->ai_family == AF_INET) {
				pick = a;
				break;
			}
		struct sockaddr_storage ss;
		socklen_t sl = pick->ai_addrlen;
		memcpy(&ss, pick->ai_addr, sl);
		freeaddrinfo(ai);
		for (unsigned t = 0; t < per; t++) {
			int fd = open_listener((struct sockaddr *)&ss, sl, h->cfg.reuseport,
					       h->cfg.listen[i], err);
			if (fd < 0)
				return fd;
			h->fds[i][t] = fd;
			/* port 0: the other SO_REUSEPORT sockets join the port the first got */
			if (t == 0) {
				struct sockaddr_storage got;
				socklen_t gl = sizeof(got);
				if (getsockname(fd, (struct sockaddr *)&got, &gl) == 0) {
					if (got.ss_family == AF_INET)
						((struct sockaddr_in *)&ss)->sin_port =
						    ((struct sockaddr_in *)&got)->sin_port;
					else if (got.ss_family == AF_INET6)
						((struct sockaddr_in6 *)&ss)->sin6_port =
						    ((struct sockaddr_in6 *)&got)->sin6_port;
				}
			}
		}
		h->n_fds = i + 1;
	}
	return 0;
}

/* systemd's socket activation protocol: fds 3.. when LISTEN_PID is us. */
int httpd_adopt_systemd(struct cairn_httpd *h, struct cairn_error *err)
{
	const char *pid = getenv("LISTEN_PID"), *nfds = getenv("LISTEN_FDS");
	char *end;

	if (!pid || !nfds)
		return cairn_error_set(err, CAIRN_EINVAL, "httpd: LISTEN_PID/LISTEN_FDS not set");
	errno = 0;
	unsigned long p = strtoul(pid, &end, 10);
	if (errno || *end || p != (unsigned long)getpid())
		return cairn_error_set(err, CAIRN_EINVAL, "httpd: LISTEN_PID is not this process");
	unsigned long n = strtoul(nfds, &end, 10);
	if (errno || *end || n == 0 || n > CAIRN_HTTPD_MAX_LISTEN)
		return cairn_error_set(err, CAIRN_EINVAL, "httpd: LISTEN_FDS must be 1 to %d",
				       CAIRN_HTTPD_MAX_LISTEN);
	for (unsigned long i = 0; i < n; i++) {
		int fd = 3 + (int)i, type = 0;
		socklen_t tl = sizeof(type);
		if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &tl) != 0 || type != SOCK_STREAM)
			return cairn_error_set(err, CAIRN_EINVAL,
					       "httpd: systemd fd %d is not a stream socket", fd);
		int fl = fcntl(fd, F_GETFL);
		fcntl(fd, F_SETFL, fl | O_NONBLOCK);
		fcntl(fd, F_SETFD, FD_CLOEXEC);
		h->fds[h->n_fds++][0] = fd;
	}
	unsetenv("LISTEN_PID");
	unsetenv("LISTEN_FDS");
	unsetenv("LISTEN_FDNAMES");
	h->cfg.reuseport = 0;
	return 0;
}

/* Written as the user that bound the sockets: a test or a service manager
 * reads it from a place the server's own user may not write. */
int httpd_write_port_file(const char *path, int port, struct cairn_error *err)
{
	char tmp[PATH_MAX], buf[16];
	int n = snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	if (n < 0 || (size_t)n >= sizeof(tmp))
		return cairn_error_set(err, CAIRN_EINVAL, "httpd: port file name too long");
	int len = snprintf(buf, sizeof(buf), "%d\n", port);
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		return cairn_error_errno(err, errno, "httpd: cannot write '%s'", tmp);
	ssize_t w = write(fd, buf, (size_t)len);
	int e = w == len ? 0 : w < 0 ? errno : EIO;
	if (close(fd) != 0 && e == 0)
		e = errno;
	if (e == 0 && rename(tmp, path) != 0)
		e = errno;
	if (e) {
		unlink(tmp);
		return cairn_error_errno(err, e, "httpd: cannot write '%s'", path);
	}
	return 0;
}

int httpd_drop_privileges(const char *user, struct cairn_error *err)
{
	struct passwd *pw = getpwnam(user);

	if (!pw)
		return cairn_error_set(err, CAIRN_EINVAL, "httpd: no user '%s'", user);
	if (setgroups(0, NULL) != 0 && errno != EPERM)
		return cairn_error_errno(err, errno, "httpd: setgroups");
	if (setgid(pw->pw_gid) != 0)
		return cairn_error_errno(err, errno, "httpd: setgid %u", (unsigned)pw->pw_gid);
	if (setuid(pw->pw_uid) != 0)
		return cairn_error_errno(err, errno, "httpd: setuid %u", (unsigned)pw->pw_uid);
	/* a setuid that silently kept root would be worse than failing */
	if (pw->pw_uid != 0 && (setuid(0) == 0 || geteuid() == 0))
		return cairn_error_set(err, CAIRN_EINVAL, "httpd: could not drop root");
	return 0;
}
