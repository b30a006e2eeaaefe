/*
 * sphere-rot: the RoT's "dedicated core". `serve` answers mailbox frames on an
 * inherited SOCK_SEQPACKET socket (rot_open_mailbox starts it); `fuse` and `id`
 * are the factory and bench tools around the OTP file.
 *
 * Exit codes: 0 success, 1 failure, 2 usage.
 */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "common/common.h"
#include "rot/rot_internal.h"

#define ROT_SECURE_HEAP_SIZE 65536
#define ROT_SECURE_HEAP_MIN  32
#define EXIT_USAGE           2

static const char rot_usage[] =
        "usage: sphere-rot COMMAND [OPTIONS]\n"
        "\n"
        "The Sphere root of trust (Pluton-style RoT): the only process that holds\n"
        "the device's private keys.\n"
        "\n"
        "commands:\n"
        "  serve --otp PATH --fd N\n"
        "      Serve the RoT mailbox on the SOCK_SEQPACKET socket N (>= 3), inherited\n"
        "      from the parent; rot_open_mailbox() starts this. The process makes\n"
        "      itself non-dumpable with no core file, closes every other descriptor\n"
        "      and keeps secrets in a locked, non-dumped heap. It exits 0 when the\n"
        "      peer hangs up, however the peer ended (after wiping its keys).\n"
        "  fuse --otp PATH [--lifecycle development|production] [--secret-hex HEX]\n"
        "      Create a new OTP file (it must not exist) with a fresh random device\n"
        "      secret, or the given 64-hex-digit one (for tests only: a secret on a\n"
        "      command line is visible to the local system), and the lifecycle\n"
        "      state (default: development).\n"
        "  id --otp PATH\n"
        "      Print the device id (128 hex characters of the identity public key\n"
        "      X||Y). Powering the RoT up counts a boot in the OTP file.\n"
        "\n"
        "options:\n"
        "  -o, --otp PATH          the OTP fuse file\n"
        "  -f, --fd N              the mailbox socket (serve)\n"
        "  -l, --lifecycle STATE   development or production (fuse)\n"
        "  -s, --secret-hex HEX    the 32-byte device secret in hex (fuse)\n"
        "  -h, --help              show this help\n"
        "\n"
        "environment: SPHERE_LOG=error|warn|info|debug (log level, default info)\n"
        "exit status: 0 success, 1 failure, 2 usage error\n";

static volatile sig_atomic_t rot_stop;
static volatile sig_atomic_t rot_serve_fd = -1;

/* SIGTERM/SIGINT: stop serving. Shutting the socket's read side wakes a
 * blocked recv (it returns 0 with POLLRDHUP) even if the signal landed while
 * the loop was not blocked; the loop then wipes and exits. */
static void rot_on_signal(int sig)
{
	int saved = errno;

	(void)sig;
	rot_stop = 1;
	if (rot_serve_fd >= 0)
		shutdown(rot_serve_fd, SHUT_RD);
	errno = saved;
}

static int rot_usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static int rot_usage_error(const char *fmt, ...)
{
	va_list ap;

	fputs("sphere-rot: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputs("\nTry 'sphere-rot --help'.\n", stderr);
	return EXIT_USAGE;
}

/* Parses a descriptor number >= 3. */
static int rot_parse_fd(const char *s, int *fd)
{
	char *end = NULL;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (errno != 0 || end == s || *end != '\0' || v < 3 || v > INT_MAX)
		return -1;
	*fd = (int)v;
	return 0;
}

/* Process hardening shared by every command that holds keys. */
static int rot_harden_process(void)
{
	const struct rlimit nocore = {0, 0};
	int rc;

	if (prctl(PR_SET_DUMPABLE, 0) != 0 || setrlimit(RLIMIT_CORE, &nocore) != 0) {
		fprintf(stderr, "sphere-rot: cannot disable core dumps: %s\n", strerror(errno));
		return -1;
	}
	signal(SIGPIPE, SIG_IGN);
	/* Private scalars and raw secrets live in OpenSSL's secure heap: mlocked,
	 * MADV_DONTDUMP, guard pages. */
	rc = CRYPTO_secure_malloc_init(ROT_SECURE_HEAP_SIZE, ROT_SECURE_HEAP_MIN);
	if (rc == 0) {
		fprintf(stderr, "sphere-rot: cannot set up the secure heap\n");
		return -1;
	}
	if (rc == 2)
		sph_log(SPH_LOG_WARN, "rot", "secure_heap_not_locked",
		        "hint=\"raise RLIMIT_MEMLOCK\"");
	return 0;
}

static int rot_close_other_fds(int keep)
{
	if (keep > 3 && close_range(3, (unsigned)keep - 1, 0) != 0)
		return -1;
	if (keep < INT_MAX && close_range((unsigned)keep + 1, ~0u, 0) != 0)
		return -1;
	return 0;
}

/* True when the peer hung up (a zero-length recv can also be an empty record). */
static int rot_peer_gone(int fd)
{
	struct pollfd p = {.fd = fd, .events = POLLRDHUP};

	if (poll(&p, 1, 0) < 0)
		return errno != EINTR;
	return (p.revents & (POLLHUP | POLLRDHUP | POLLERR | POLLNVAL)) != 0;
}

/* The answer of a RoT that failed to start: every request gets the reason. */
static size_t rot_refusal(const uint8_t *req, size_t len, int status, uint8_t *resp)
{
	struct rot_mb_hdr h;

	(void)rot_mb_hdr_peek(req, len, &h);
	h.magic = ROT_MB_MAGIC;
	h.op = rot_op_known(h.op) ? h.op : 0;
	h.status = (int16_t)status;
	h.len = 0;
	rot_mb_hdr_encode(&h, resp);
	return ROT_MB_HDR_LEN;
}

/* Answers frames until the peer hangs up. core NULL: answer boot_status to all. */
static int rot_serve_loop(struct rot_core *core, int boot_status, int fd, uint8_t *req,
                          uint8_t *resp)
{
	int64_t spin = 0; /* only right after an answer: an idle RoT sleeps */

	for (;;) {
		ssize_t n, s;
		size_t len, rlen;

		if (rot_stop)
			return 0;
		n = rot_mb_recv(fd, req, ROT_MB_MAX_FRAME + 1, spin);
		spin = 0;
		if (n < 0) {
			if (errno == EINTR)
				continue;
			sph_log(SPH_LOG_ERROR, "rot", "recv_failed", "errno=%d", errno);
			return -1;
		}
		if (n == 0 && rot_peer_gone(fd))
			return 0;
		/* An oversize record arrives cut to MAX+1 bytes: the core refuses it. */
		len = (size_t)n > ROT_MB_MAX_FRAME + 1 ? ROT_MB_MAX_FRAME + 1 : (size_t)n;
		if (core)
			rlen = rot_core_handle(core, req, len, resp, ROT_MB_MAX_FRAME);
		else
			rlen = rot_refusal(req, len, boot_status, resp);
		OPENSSL_cleanse(req, len);
		do
			s = send(fd, resp, rlen, MSG_NOSIGNAL);
		while (s < 0 && errno == EINTR && !rot_stop);
		OPENSSL_cleanse(resp, rlen);
		spin = ROT_MB_SERVER_SPIN_NS;
		if (s < 0) {
			if (errno == EPIPE || errno == ECONNRESET || errno == EINTR)
				return 0;
			sph_log(SPH_LOG_ERROR, "rot", "send_failed", "errno=%d", errno);
			return -1;
		}
	}
}

static int rot_cmd_serve(const char *otp, int fd)
{
	struct rot_core *core = NULL;
	const size_t buf_len = 2 * (ROT_MB_MAX_FRAME + 1);
	uint8_t *bufs = MAP_FAILED;
	struct sigaction sa;
	int type = 0, ret = 1, rc;
	socklen_t type_len = sizeof(type);

	if (rot_harden_process() != 0)
		goto out;
	if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &type_len) != 0 || type != SOCK_SEQPACKET) {
		fprintf(stderr, "sphere-rot: serve: descriptor %d is not a SOCK_SEQPACKET socket\n",
		        fd);
		goto out;
	}
	if (rot_close_other_fds(fd) != 0) {
		fprintf(stderr, "sphere-rot: cannot close inherited descriptors: %s\n",
		        strerror(errno));
		goto out;
	}
	rot_serve_fd = fd;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = rot_on_signal; /* no SA_RESTART: recv returns EINTR */
	sigemptyset(&sa.sa_mask);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	/* Frames carry plaintexts and shared secrets: locked, not dumped, wiped. */
	bufs = mmap(NULL, buf_len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (bufs == MAP_FAILED) {
		fprintf(stderr, "sphere-rot: cannot map frame buffers: %s\n", strerror(errno));
		goto out;
	}
	if (mlock(bufs, buf_len) != 0)
		sph_log(SPH_LOG_WARN, "rot", "frame_buffers_not_locked", "errno=%d", errno);
	(void)madvise(bufs, buf_len, MADV_DONTDUMP);

	rc = rot_core_new(otp, &core);
	if (rc != 0) {
		/* Stay up to tell the parent why (its handshake gets the status), then exit 1. */
		fprintf(stderr, "sphere-rot: serve: cannot start the RoT over %s: %s\n", otp,
		        sph_strerror(rc));
		(void)rot_serve_loop(NULL, rc, fd, bufs, bufs + ROT_MB_MAX_FRAME + 1);
		goto out;
	}
	sph_log(SPH_LOG_INFO, "rot", "started", "pid=%d fd=%d", (int)getpid(), fd);
	ret = rot_serve_loop(core, 0, fd, bufs, bufs + ROT_MB_MAX_FRAME + 1) == 0 ? 0 : 1;
	sph_log(SPH_LOG_INFO, "rot", "stopped", "pid=%d", (int)getpid());
out:
	rot_core_free(core); /* wipes every key */
	if (bufs != MAP_FAILED) {
		OPENSSL_cleanse(bufs, buf_len);
		munmap(bufs, buf_len);
	}
	close(fd);
	(void)CRYPTO_secure_malloc_done();
	return ret;
}

static int rot_parse_lifecycle(const char *s, enum rot_lifecycle *lc)
{
	if (strcmp(s, "development") == 0)
		*lc = ROT_LC_DEVELOPMENT;
	else if (strcmp(s, "production") == 0)
		*lc = ROT_LC_PRODUCTION;
	else
		return -1;
	return 0;
}

static int rot_cmd_fuse(const char *otp, enum rot_lifecycle lc, char *secret_hex)
{
	uint8_t secret[ROT_SECRET_LEN];
	int rc;

	if (rot_harden_process() != 0)
		return 1;
	if (secret_hex) {
		rc = sph_hex_decode(secret_hex, secret, sizeof(secret));
		OPENSSL_cleanse(secret_hex, strlen(secret_hex)); /* out of /proc/PID/cmdline */
		if (rc != 0) {
			OPENSSL_cleanse(secret, sizeof(secret));
			fprintf(stderr, "sphere-rot: fuse: --secret-hex needs %d hex digits\n",
			        2 * ROT_SECRET_LEN);
			return EXIT_USAGE;
		}
	}
	rc = rot_otp_fuse(otp, secret_hex ? secret : NULL, lc);
	OPENSSL_cleanse(secret, sizeof(secret));
	if (rc != 0) {
		fprintf(stderr, "sphere-rot: fuse: cannot fuse %s: %s%s\n", otp, sph_strerror(rc),
		        rc == SPH_ERR_STATE ? " (the file exists; fuses burn once)" : "");
		return 1;
	}
	printf("fused %s (lifecycle %s)\n", otp,
	       lc == ROT_LC_PRODUCTION ? "production" : "development");
	return 0;
}

static int rot_cmd_id(const char *otp)
{
	struct rot *r = NULL;
	char id[ROT_DEVICE_ID_LEN + 1];
	int rc;

	if (rot_harden_process() != 0)
		return 1;
	rc = rot_open_inproc(otp, &r);
	if (rc == 0)
		rc = rot_device_id(r, id);
	rot_close(r);
	(void)CRYPTO_secure_malloc_done();
	if (rc != 0) {
		fprintf(stderr, "sphere-rot: id: cannot read the device id from %s: %s\n", otp,
		        sph_strerror(rc));
		return 1;
	}
	printf("%s\n", id);
	return 0;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
	        {"otp", required_argument, NULL, 'o'},
	        {"fd", required_argument, NULL, 'f'},
	        {"lifecycle", required_argument, NULL, 'l'},
	        {"secret-hex", required_argument, NULL, 's'},
	        {"help", no_argument, NULL, 'h'},
	        {NULL, 0, NULL, 0},
	};
	const char *cmd, *otp = NULL, *lc_arg = NULL;
	char *secret_hex = NULL;
	enum rot_lifecycle lc = ROT_LC_DEVELOPMENT;
	char **av = argv + 1;
	int ac = argc - 1, fd = -1, opt;

	if (argc < 2)
		return rot_usage_error("%s", "missing command");
	cmd = argv[1];
	if (strcmp(cmd, "-h") == 0 || strcmp(cmd, "--help") == 0 || strcmp(cmd, "help") == 0) {
		fputs(rot_usage, stdout);
		return 0;
	}
	if (strcmp(cmd, "serve") != 0 && strcmp(cmd, "fuse") != 0 && strcmp(cmd, "id") != 0)
		return rot_usage_error("unknown command '%s'", cmd);

	opterr = 0;
	optind = 1;
	while ((opt = getopt_long(ac, av, ":o:f:l:s:h", opts, NULL)) != -1) {
		switch (opt) {
		case 'o':
			otp = optarg;
			break;
		case 'f':
			if (rot_parse_fd(optarg, &fd) != 0)
				return rot_usage_error(
				        "--fd needs a descriptor number >= 3, not '%s'", optarg);
			break;
		case 'l':
			lc_arg = optarg;
			if (rot_parse_lifecycle(optarg, &lc) != 0)
				return rot_usage_error(
				        "--lifecycle must be development or production, not '%s'",
				        optarg);
			break;
		case 's':
			secret_hex = optarg;
			break;
		case 'h':
			fputs(rot_usage, stdout);
			return 0;
		case ':':
			return rot_usage_error("option '%s' needs an argument", av[optind - 1]);
		default:
			return rot_usage_error("unknown option '%s'", av[optind - 1]);
		}
	}
	if (optind != ac)
		return rot_usage_error("unexpected argument '%s'", av[optind]);
	if (!otp)
		return rot_usage_error("%s needs --otp PATH", cmd);

	if (strcmp(cmd, "serve") == 0) {
		if (fd < 0)
			return rot_usage_error("%s needs --fd N", cmd);
		if (lc_arg || secret_hex)
			return rot_usage_error("%s takes only --otp and --fd", cmd);
		return rot_cmd_serve(otp, fd);
	}
	if (fd >= 0)
		return rot_usage_error("--fd is for serve, not %s", cmd);
	if (strcmp(cmd, "fuse") == 0)
		return rot_cmd_fuse(otp, lc, secret_hex);
	if (lc_arg || secret_hex)
		return rot_usage_error("%s takes only --otp", cmd);
	return rot_cmd_id(otp);
}
