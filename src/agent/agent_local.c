/*
 * agent_local: the development device's local "check for updates now"
 * (docs/agent.md "Local check for updates"). The daemon listens on a unix
 * socket in the device directory, mode 0600 (the socket is chmod'ed before
 * listen(), so no connection is possible before it is private); a request is
 * one line "check\n", answered with one line. A device without a valid
 * appDevelopment capability opens no socket: the daemon writes why into
 * AGENT_SOCKET_OFF_FILE, which the client shows.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "agent/agent_internal.h"
#include "common/common.h"
#include "image/image.h"

#define AGENT_LOCAL_REQ   "check\n"
#define AGENT_LOCAL_LINE  256
#define AGENT_LOCAL_WAIT  30000 /* ms a client waits for the answer */
#define AGENT_LOCAL_READ  1000  /* ms the daemon waits for a request line */
#define AGENT_LOCAL_BURST 8     /* requests served per call, at most */

static int agent_sun(const char *dir, struct sockaddr_un *sa)
{
	int n;

	memset(sa, 0, sizeof(*sa));
	sa->sun_family = AF_UNIX;
	n = snprintf(sa->sun_path, sizeof(sa->sun_path), "%s/%s", dir, AGENT_SOCKET_FILE);
	return n > 0 && (size_t)n < sizeof(sa->sun_path) ? 0 : SPH_ERR_TOO_LARGE;
}

static int agent_off_path(const char *dir, char *out, size_t cap)
{
	int n = snprintf(out, cap, "%s/%s", dir, AGENT_SOCKET_OFF_FILE);

	return n > 0 && (size_t)n < cap ? 0 : SPH_ERR_TOO_LARGE;
}

int agent_local_open(const char *dir, int *fd)
{
	struct sockaddr_un sa;
	char off[4096];
	int s = -1, probe = -1, rc;

	*fd = -1;
	if ((rc = agent_sun(dir, &sa)) != 0 || (rc = agent_off_path(dir, off, sizeof(off))) != 0)
		goto out;
	(void)unlink(off);
	/* a socket file left behind: replaced, unless a daemon answers on it */
	rc = SPH_ERR_IO;
	if ((probe = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0)
		goto out;
	if (connect(probe, (struct sockaddr *)&sa, sizeof(sa)) == 0) {
		rc = SPH_ERR_STATE;
		goto out;
	}
	if (errno == ECONNREFUSED && unlink(sa.sun_path) != 0)
		goto out;
	if ((s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0)) < 0)
		goto out;
	if (bind(s, (struct sockaddr *)&sa, sizeof(sa)) != 0)
		goto out;
	/* private before anyone can connect: listen() comes after the chmod */
	if (chmod(sa.sun_path, 0600) != 0 || listen(s, AGENT_LOCAL_BURST) != 0) {
		(void)unlink(sa.sun_path);
		goto out;
	}
	*fd = s;
	s = -1; /* transferred */
	rc = 0;
out:
	if (probe >= 0)
		close(probe);
	if (s >= 0)
		close(s);
	return rc;
}

/* Reads one request line from c (bounded, with a timeout) and answers it.
 * Returns 1 for a check-in request, 0 otherwise. */
static int agent_local_one(int c)
{
	static const char ok[] = "ok: the agent checks in now\n";
	static const char bad[] = "error: unknown request\n";
	struct pollfd p = {.fd = c, .events = POLLIN};
	char line[AGENT_LOCAL_LINE];
	size_t n = 0;
	ssize_t k;
	int want = 0;

	while (n < sizeof(line) - 1 && poll(&p, 1, AGENT_LOCAL_READ) == 1) {
		k = read(c, line + n, sizeof(line) - 1 - n);
		if (k <= 0)
			break;
		n += (size_t)k;
		if (memchr(line, '\n', n))
			break;
	}
	line[n] = '\0';
	want = strcmp(line, AGENT_LOCAL_REQ) == 0;
	if (send(c, want ? ok : bad, want ? sizeof(ok) - 1 : sizeof(bad) - 1, MSG_NOSIGNAL) < 0)
		sph_log(SPH_LOG_DEBUG, "agent", "local_reply_lost", "errno=%d", errno);
	return want;
}

int agent_local_serve(int fd)
{
	int got = 0;

	if (fd < 0)
		return 0;
	for (int i = 0; i < AGENT_LOCAL_BURST; i++) {
		int c = accept4(fd, NULL, NULL, SOCK_CLOEXEC);
		if (c < 0)
			break;
		got += agent_local_one(c);
		close(c);
	}
	return got;
}

void agent_local_close(const char *dir, int fd)
{
	struct sockaddr_un sa;
	char off[4096];

	if (fd >= 0) {
		close(fd);
		if (agent_sun(dir, &sa) == 0)
			(void)unlink(sa.sun_path);
	}
	if (agent_off_path(dir, off, sizeof(off)) == 0)
		(void)unlink(off);
}

int agent_local_off(const char *dir, const char *why)
{
	struct sockaddr_un sa;
	char off[4096], text[AGENT_REASON_MAX + 2];
	int n;

	if (agent_off_path(dir, off, sizeof(off)) != 0)
		return SPH_ERR_TOO_LARGE;
	if (agent_sun(dir, &sa) == 0)
		(void)unlink(sa.sun_path);
	n = snprintf(text, sizeof(text), "%s\n", why);
	if (n <= 0)
		return SPH_ERR_IO;
	if ((size_t)n >= sizeof(text))
		n = (int)sizeof(text) - 1;
	return img_write_file(off, (const uint8_t *)text, (size_t)n, 0644, true);
}

/* The first line of the "off" note, printable, into reply. */
static int agent_local_why(const char *dir, char *reply, size_t cap)
{
	char off[4096];
	uint8_t *buf = NULL;
	size_t len = 0, i = 0;
	int rc;

	if ((rc = agent_off_path(dir, off, sizeof(off))) != 0 ||
	    (rc = img_read_file(off, AGENT_REASON_MAX, &buf, &len)) != 0)
		return rc;
	for (; i < len && i + 1 < cap && buf[i] != '\n'; i++)
		reply[i] = buf[i] >= 0x20 && buf[i] < 0x7f ? (char)buf[i] : '?';
	reply[i] = '\0';
	free(buf);
	return 0;
}

int agent_local_request(const char *dir, char *reply, size_t cap)
{
	struct sockaddr_un sa;
	struct pollfd p;
	size_t n = 0;
	ssize_t k;
	int s = -1, rc = SPH_ERR_INVALID_ARG;

	if (reply && cap)
		reply[0] = '\0';
	if (!dir || !reply || cap < 2)
		goto out;
	if ((rc = agent_sun(dir, &sa)) != 0)
		goto out;
	rc = SPH_ERR_IO;
	if ((s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0)
		goto out;
	if (connect(s, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
		if (agent_local_why(dir, reply, cap) == 0) {
			rc = SPH_ERR_PERMISSION;
		} else {
			rc = SPH_ERR_NOT_FOUND;
			snprintf(reply, cap,
			         "no agent is running on this device (sphere-device run)");
		}
		goto out;
	}
	rc = SPH_ERR_TRANSPORT;
	if (send(s, AGENT_LOCAL_REQ, sizeof(AGENT_LOCAL_REQ) - 1, MSG_NOSIGNAL) < 0)
		goto out;
	p.fd = s;
	p.events = POLLIN;
	while (n + 1 < cap && poll(&p, 1, AGENT_LOCAL_WAIT) == 1) {
		k = read(s, reply + n, cap - 1 - n);
		if (k <= 0)
			break;
		n += (size_t)k;
		if (memchr(reply, '\n', n))
			break;
	}
	reply[n] = '\0';
	if (n == 0) {
		snprintf(reply, cap, "the agent did not answer");
		goto out;
	}
	reply[strcspn(reply, "\n")] = '\0';
	rc = strncmp(reply, "ok", 2) == 0 ? 0 : SPH_ERR_TRANSPORT;
out:
	if (s >= 0)
		close(s);
	return rc;
}
