/*
 * rot: the public API. Every call builds one request frame, hands it to a
 * transport and checks the response frame:
 *  - in-process: rot_core_handle() in this process;
 *  - mailbox: a SOCK_SEQPACKET socketpair to a `sphere-rot serve` child.
 * Both transports share the encoder, the core and the response checks
 * (rot_mb_check_response), so the same tests cover both. A response must carry
 * the magic, the request's op and seq, and exactly the payload length the op
 * defines; anything else is SPH_ERR_TRANSPORT and, on the mailbox, breaks the
 * handle for good (a peer that spoke out of protocol is not trusted again).
 *
 * A chip reset is not a request: rot_reset() restarts the RoT behind the same
 * handle (a new sphere-rot process, or a new in-process core), so only the
 * owner of the struct rot can reset the chip, and the RoT comes back with
 * fresh registers, a new boot seed and one more boot counted.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "common/common.h"
#include "rot_internal.h"

#define ROT_CHILD_FD        3
#define ROT_CHILD_FD_STR    "3"
#define ROT_IO_TIMEOUT_S    30 /* a live RoT answers in well under a millisecond */
#define ROT_REAP_TIMEOUT_MS 5000
#define ROT_BIN_ENV         "SPHERE_ROT_BIN"

struct rot {
	pthread_mutex_t lock;
	bool mailbox;          /* the transport: mailbox, else in-process */
	struct rot_core *core; /* in-process: the core, NULL once a reset failed */
	int fd;                /* mailbox: the socket, else -1 */
	pid_t pid;             /* mailbox: the RoT process, else 0 */
	bool broken;           /* a mailbox failure or a failed reset: every later call fails */
	char *otp_path;        /* what a chip reset powers up again */
	char *bin;             /* mailbox: the sphere-rot binary */
	uint32_t seq;
	uint8_t req[ROT_MB_MAX_FRAME];
	uint8_t resp[ROT_MB_MAX_FRAME + 1]; /* one spare byte: oversize records show up */
};

/* One piece of a request payload. */
struct rot_iov {
	const void *p;
	size_t n;
};

static struct rot *rot_alloc(bool mailbox, const char *otp_path)
{
	struct rot *r = calloc(1, sizeof(*r));

	if (!r)
		return NULL;
	r->fd = -1;
	r->mailbox = mailbox;
	r->otp_path = strdup(otp_path);
	if (!r->otp_path || pthread_mutex_init(&r->lock, NULL) != 0) {
		free(r->otp_path);
		free(r);
		return NULL;
	}
	return r;
}

/* Sends req_len bytes of r->req and receives one record into r->resp. Any
 * failure breaks the handle. Returns 0 and *resp_len, or SPH_ERR_TRANSPORT. */
static int rot_mb_exchange(struct rot *r, size_t req_len, size_t *resp_len)
{
	ssize_t n = 0;
	int rc = SPH_ERR_TRANSPORT, err = 0;

	*resp_len = 0;
	if (r->broken || r->fd < 0)
		goto out;
	do
		n = send(r->fd, r->req, req_len, MSG_NOSIGNAL);
	while (n < 0 && errno == EINTR);
	if (n < 0 || (size_t)n != req_len) {
		err = n < 0 ? errno : 0;
		goto out;
	}
	do
		n = rot_mb_recv(r->fd, r->resp, sizeof(r->resp), ROT_MB_CLIENT_SPIN_NS);
	while (n < 0 && errno == EINTR);
	/* 0: the RoT is gone. MSG_TRUNC reports the real size of an oversize record;
	 * it is kept above ROT_MB_MAX_FRAME so that the response check refuses it. */
	if (n <= 0) {
		err = n < 0 ? errno : 0;
		goto out;
	}
	*resp_len = (size_t)n > sizeof(r->resp) ? sizeof(r->resp) : (size_t)n;
	rc = 0;
out:
	if (rc != 0) {
		OPENSSL_cleanse(r->resp, sizeof(r->resp));
		if (!r->broken)
			sph_log(SPH_LOG_WARN, "rot", "mailbox_broken", "pid=%d errno=%d",
			        (int)r->pid, err);
		r->broken = true;
	}
	return rc;
}

/*
 * One request/response exchange; r->lock is held. The request payload is the
 * concatenation of in[0..n_in). The response payload must be out_min..out_max
 * bytes; it is copied to out (out_cap bytes; SPH_ERR_BUFFER_TOO_SMALL if it
 * does not fit) and its length stored in *out_len (may be NULL when
 * out_min == out_max). Returns 0, the RoT's (negative) status, or
 * SPH_ERR_TRANSPORT.
 */
static int rot_call_locked(struct rot *r, enum rot_op op, const struct rot_iov *in, size_t n_in,
                           uint8_t *out, size_t out_cap, size_t out_min, size_t out_max,
                           size_t *out_len)
{
	struct rot_mb_hdr h = {.magic = ROT_MB_MAGIC, .op = (uint16_t)op};
	const uint8_t *payload = NULL;
	size_t req_len = ROT_MB_HDR_LEN, resp_len = 0, payload_len = 0;
	int rc = SPH_ERR_TOO_LARGE;

	if (out_len)
		*out_len = 0;
	for (size_t i = 0; i < n_in; i++) {
		if (in[i].n > ROT_MB_MAX_FRAME - req_len)
			goto out;
		if (in[i].n > 0)
			memcpy(r->req + req_len, in[i].p, in[i].n);
		req_len += in[i].n;
	}
	h.seq = ++r->seq;
	h.len = (uint32_t)(req_len - ROT_MB_HDR_LEN);
	rot_mb_hdr_encode(&h, r->req);

	if (r->mailbox) {
		rc = rot_mb_exchange(r, req_len, &resp_len);
		if (rc != 0)
			goto out;
	} else {
		rc = SPH_ERR_TRANSPORT; /* no core: a reset failed */
		if (!r->core || r->broken)
			goto out;
		resp_len = rot_core_handle(r->core, r->req, req_len, r->resp, sizeof(r->resp));
	}

	rc = rot_mb_check_response((uint16_t)op, r->seq, r->resp, resp_len, out_min, out_max,
	                           &payload, &payload_len);
	if (rc == SPH_ERR_TRANSPORT) {
		sph_log(SPH_LOG_WARN, "rot", "response_refused", "op=%u pid=%d", (unsigned)op,
		        (int)r->pid);
		if (r->mailbox)
			r->broken = true;
	}
	if (rc != 0)
		goto out;
	rc = SPH_ERR_BUFFER_TOO_SMALL;
	if (payload_len > out_cap)
		goto out;
	if (payload_len > 0)
		memcpy(out, payload, payload_len);
	if (out_len)
		*out_len = payload_len;
	rc = 0;
out:
	/* Frames carry plaintexts and shared secrets: wipe what was used. */
	OPENSSL_cleanse(r->req, req_len);
	OPENSSL_cleanse(r->resp, resp_len);
	return rc;
}

/* rot_call_locked under the handle's lock. */
static int rot_call(struct rot *r, enum rot_op op, const struct rot_iov *in, size_t n_in,
                    uint8_t *out, size_t out_cap, size_t out_min, size_t out_max, size_t *out_len)
{
	int rc;

	if (out_len)
		*out_len = 0;
	if (!r)
		return SPH_ERR_INVALID_ARG;
	if (pthread_mutex_lock(&r->lock) != 0)
		return SPH_ERR_STATE;
	rc = rot_call_locked(r, op, in, n_in, out, out_cap, out_min, out_max, out_len);
	pthread_mutex_unlock(&r->lock);
	return rc;
}

/* ---- opening, resetting and closing ------------------------------------------ */

int rot_open_inproc(const char *otp_path, struct rot **out)
{
	struct rot *r = NULL;
	int rc = SPH_ERR_INVALID_ARG;

	if (out)
		*out = NULL;
	if (!otp_path || !out)
		goto out;
	rc = SPH_ERR_NOMEM;
	r = rot_alloc(false, otp_path);
	if (!r)
		goto out;
	rc = rot_core_new(otp_path, &r->core);
	if (rc != 0)
		goto out;
	*out = r;
	r = NULL; /* transferred */
out:
	rot_close(r);
	return rc;
}

/* Text that can go into a log line as is (no quotes, no control characters). */
static bool rot_loggable(const char *s)
{
	for (; *s; s++) {
		if (*s < 0x20 || *s > 0x7e || *s == '"' || *s == '\\')
			return false;
	}
	return true;
}

/* A RoT binary must be named by an absolute path and be a regular, executable
 * file. Returns 0, SPH_ERR_NOT_FOUND (no such file) or SPH_ERR_INVALID_ARG,
 * logged with the reason. */
static int rot_check_bin(const char *path, const char *source)
{
	struct stat st;
	const char *why = "not an absolute path";
	int rc = SPH_ERR_INVALID_ARG;

	if (path[0] != '/')
		goto out;
	if (stat(path, &st) != 0) {
		bool missing = errno == ENOENT || errno == ENOTDIR;
		why = missing ? "no such file" : "cannot stat it";
		rc = missing ? SPH_ERR_NOT_FOUND : SPH_ERR_INVALID_ARG;
		goto out;
	}
	why = "not a regular file";
	if (!S_ISREG(st.st_mode))
		goto out;
	why = "not executable";
	if (access(path, X_OK) != 0)
		goto out;
	rc = 0;
out:
	if (rc != 0)
		sph_log(SPH_LOG_ERROR, "rot", "binary_refused",
		        "source=%s reason=\"%s\" path=\"%s\"", source, why,
		        rot_loggable(path) ? path : "(unprintable)");
	return rc;
}

/* The sphere-rot binary: $SPHERE_ROT_BIN (for tests and development; ignored
 * in set-id programs), else `sphere-rot` next to the running executable.
 * Returns 0 and *out (malloc'd), or SPH_ERR_NOT_FOUND / SPH_ERR_INVALID_ARG /
 * SPH_ERR_NOMEM. */
static int rot_find_bin(char **out)
{
	const char *env = secure_getenv(ROT_BIN_ENV);
	char self[PATH_MAX];
	char *slash, *bin = NULL;
	ssize_t n;
	int rc;

	*out = NULL;
	if (env && *env) {
		rc = rot_check_bin(env, ROT_BIN_ENV);
		if (rc != 0)
			goto out;
		rc = SPH_ERR_NOMEM;
		bin = strdup(env);
		if (!bin)
			goto out;
	} else {
		rc = SPH_ERR_NOT_FOUND;
		n = readlink("/proc/self/exe", self, sizeof(self) - 1);
		if (n <= 0 || (size_t)n >= sizeof(self) - 1)
			goto out;
		self[n] = '\0';
		slash = strrchr(self, '/');
		if (!slash)
			goto out;
		slash[1] = '\0';
		rc = SPH_ERR_NOMEM;
		if (asprintf(&bin, "%ssphere-rot", self) < 0) {
			bin = NULL;
			goto out;
		}
		rc = rot_check_bin(bin, "beside_executable");
		if (rc != 0)
			goto out;
	}
	*out = bin;
	bin = NULL; /* transferred */
	rc = 0;
out:
	free(bin);
	return rc;
}

/* In the forked child: only async-signal-safe calls until execv. */
static void rot_child_exec(int fd, const char *bin, char *const argv[])
{
	sigset_t none;

	if (fd == ROT_CHILD_FD) {
		if (fcntl(fd, F_SETFD, 0) != 0)
			_exit(127);
	} else if (dup2(fd, ROT_CHILD_FD) != ROT_CHILD_FD) {
		_exit(127);
	}
	/* No parent-death signal: it would fire when the opening *thread* exits.
	 * The RoT exits when its mailbox reaches end-of-file instead, which the
	 * kernel guarantees once every holder of the other end is gone. */
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	execv(bin, argv);
	_exit(127);
}

/* Waits up to ROT_REAP_TIMEOUT_MS for the RoT to exit, then kills it. */
static void rot_reap(pid_t pid)
{
	const struct timespec tick = {0, 2 * 1000 * 1000};
	int status = 0;
	pid_t w = 0;

	for (int waited = 0; waited < ROT_REAP_TIMEOUT_MS && w == 0; waited += 2) {
		w = waitpid(pid, &status, WNOHANG);
		if (w < 0 && errno == EINTR)
			w = 0;
		if (w == 0)
			nanosleep(&tick, NULL);
	}
	/* w < 0: not our child any more (e.g. SIGCHLD ignored: the kernel reaped it). */
	if (w == 0) {
		sph_log(SPH_LOG_WARN, "rot", "rot_killed", "pid=%d", (int)pid);
		kill(pid, SIGKILL);
		do
			w = waitpid(pid, &status, 0);
		while (w < 0 && errno == EINTR);
	}
	if (w == pid)
		sph_log(SPH_LOG_DEBUG, "rot", "rot_stopped", "pid=%d exit=%d signal=%d", (int)pid,
		        WIFEXITED(status) ? WEXITSTATUS(status) : -1,
		        WIFSIGNALED(status) ? WTERMSIG(status) : 0);
}

/* Hangs up on the RoT process and reaps it: it wipes its keys, closes (and so
 * unlocks) its OTP file and exits. Accepts a handle without a process. */
static void rot_mb_stop(struct rot *r)
{
	if (r->fd >= 0)
		close(r->fd);
	r->fd = -1;
	if (r->pid > 0)
		rot_reap(r->pid);
	r->pid = 0;
}

/*
 * Powers up a RoT process over r->otp_path from r->bin and connects r to it,
 * for rot_open_mailbox and every chip reset; r->lock is held (or r not yet
 * shared). The first request (LIFECYCLE) is the handshake: a RoT that cannot
 * start answers why. Returns 0, or a negative status with no RoT attached.
 */
static int rot_mb_start(struct rot *r)
{
	int sv[2] = {-1, -1};
	const struct timeval tmo = {ROT_IO_TIMEOUT_S, 0};
	uint8_t lc[4];
	pid_t pid;
	int rc = SPH_ERR_IO;

	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) != 0)
		goto out;
	{
		char *const argv[] = {r->bin,      (char *)"serve", (char *)"--otp",
		                      r->otp_path, (char *)"--fd",  (char *)ROT_CHILD_FD_STR,
		                      NULL};
		pid = fork();
		if (pid == 0)
			rot_child_exec(sv[1], r->bin, argv);
	}
	if (pid < 0)
		goto out;
	r->pid = pid;
	close(sv[1]);
	sv[1] = -1;
	r->fd = sv[0];
	sv[0] = -1;
	if (setsockopt(r->fd, SOL_SOCKET, SO_RCVTIMEO, &tmo, sizeof(tmo)) != 0 ||
	    setsockopt(r->fd, SOL_SOCKET, SO_SNDTIMEO, &tmo, sizeof(tmo)) != 0)
		goto out;
	rc = rot_call_locked(r, ROT_OP_LIFECYCLE, NULL, 0, lc, sizeof(lc), sizeof(lc), sizeof(lc),
	                     NULL);
	if (rc == 0 && rot_get_le32(lc) > ROT_LC_DECOMMISSIONED)
		rc = SPH_ERR_TRANSPORT;
	if (rc != 0) {
		sph_log(SPH_LOG_ERROR, "rot", "mailbox_start_failed", "pid=%d status=%d", (int)pid,
		        rc);
		goto out;
	}
	sph_log(SPH_LOG_DEBUG, "rot", "mailbox_started", "pid=%d", (int)pid);
out:
	if (sv[0] >= 0)
		close(sv[0]);
	if (sv[1] >= 0)
		close(sv[1]);
	if (rc != 0)
		rot_mb_stop(r);
	return rc;
}

int rot_open_mailbox(const char *otp_path, struct rot **out)
{
	struct rot *r = NULL;
	int rc = SPH_ERR_INVALID_ARG;

	if (out)
		*out = NULL;
	if (!otp_path || !out)
		goto out;
	/* Clear errors for a missing or bad OTP file, without reading its secret here. */
	rc = rot_otp_probe(otp_path);
	if (rc != 0)
		goto out;
	rc = SPH_ERR_NOMEM;
	r = rot_alloc(true, otp_path);
	if (!r)
		goto out;
	rc = rot_find_bin(&r->bin);
	if (rc != 0)
		goto out;
	rc = rot_mb_start(r);
	if (rc != 0)
		goto out;
	*out = r;
	r = NULL; /* transferred */
out:
	rot_close(r);
	return rc;
}

int rot_reset(struct rot *r)
{
	bool locked = false;
	int rc = SPH_ERR_INVALID_ARG;

	if (!r)
		goto out;
	rc = SPH_ERR_STATE;
	if (pthread_mutex_lock(&r->lock) != 0)
		goto out;
	locked = true;
	/* A broken handle stays broken (the caller closes it and opens anew). */
	rc = SPH_ERR_TRANSPORT;
	if (r->broken)
		goto out;
	/* Power off: the old RoT wipes its keys and releases the OTP file; then
	 * power on over the same file: fresh registers, new seed, boot count + 1. */
	if (r->mailbox) {
		rot_mb_stop(r);
		rc = rot_mb_start(r);
	} else {
		rot_core_free(r->core);
		r->core = NULL;
		rc = rot_core_new(r->otp_path, &r->core);
	}
	if (rc != 0) {
		r->broken = true;
		sph_log(SPH_LOG_ERROR, "rot", "reset_failed", "status=%d", rc);
		goto out;
	}
	sph_log(SPH_LOG_DEBUG, "rot", "reset", "pid=%d", (int)r->pid);
out:
	if (locked)
		pthread_mutex_unlock(&r->lock);
	return rc;
}

void rot_close(struct rot *r)
{
	if (!r)
		return;
	rot_mb_stop(r); /* the RoT sees the hang-up, wipes its keys and exits */
	rot_core_free(r->core);
	free(r->otp_path);
	free(r->bin);
	pthread_mutex_destroy(&r->lock);
	OPENSSL_cleanse(r, sizeof(*r));
	free(r);
}

int rot_pid(const struct rot *r)
{
	return r ? (int)r->pid : 0;
}

/* ---- identity and keys ----------------------------------------------------- */

int rot_pubkey(struct rot *r, uint32_t key, uint8_t pub[ROT_PUB_LEN])
{
	uint8_t k[4];
	struct rot_iov in[] = {{k, sizeof(k)}};

	if (!pub)
		return SPH_ERR_INVALID_ARG;
	memset(pub, 0, ROT_PUB_LEN);
	rot_put_le32(k, key);
	return rot_call(r, ROT_OP_PUBKEY, in, 1, pub, ROT_PUB_LEN, ROT_PUB_LEN, ROT_PUB_LEN, NULL);
}

int rot_device_id(struct rot *r, char id[ROT_DEVICE_ID_LEN + 1])
{
	uint8_t pub[ROT_PUB_LEN];
	int rc;

	if (!id)
		return SPH_ERR_INVALID_ARG;
	id[0] = '\0';
	rc = rot_pubkey(r, ROT_KEY_IDENTITY, pub);
	if (rc != 0)
		return rc;
	if (pub[0] != 0x04)
		return SPH_ERR_TRANSPORT;
	return sph_hex_encode(pub + 1, ROT_PUB_LEN - 1, id, ROT_DEVICE_ID_LEN + 1);
}

int rot_sign(struct rot *r, uint32_t key, const uint8_t digest[ROT_DIGEST_LEN],
             uint8_t sig[ROT_SIG_LEN])
{
	uint8_t k[4];
	struct rot_iov in[] = {{k, sizeof(k)}, {digest, ROT_DIGEST_LEN}};

	if (!sig)
		return SPH_ERR_INVALID_ARG;
	memset(sig, 0, ROT_SIG_LEN);
	if (!digest)
		return SPH_ERR_INVALID_ARG;
	rot_put_le32(k, key);
	return rot_call(r, ROT_OP_SIGN, in, 2, sig, ROT_SIG_LEN, ROT_SIG_LEN, ROT_SIG_LEN, NULL);
}

int rot_verify(struct rot *r, const uint8_t pub[ROT_PUB_LEN], const uint8_t digest[ROT_DIGEST_LEN],
               const uint8_t sig[ROT_SIG_LEN])
{
	struct rot_iov in[] = {{pub, ROT_PUB_LEN}, {digest, ROT_DIGEST_LEN}, {sig, ROT_SIG_LEN}};

	if (!pub || !digest || !sig)
		return SPH_ERR_INVALID_ARG;
	return rot_call(r, ROT_OP_VERIFY, in, 3, NULL, 0, 0, 0, NULL);
}

int rot_ecdh(struct rot *r, uint32_t key, const uint8_t peer[ROT_PUB_LEN],
             uint8_t secret[ROT_ECDH_LEN])
{
	uint8_t k[4];
	struct rot_iov in[] = {{k, sizeof(k)}, {peer, ROT_PUB_LEN}};

	if (!secret)
		return SPH_ERR_INVALID_ARG;
	memset(secret, 0, ROT_ECDH_LEN);
	if (!peer)
		return SPH_ERR_INVALID_ARG;
	rot_put_le32(k, key);
	return rot_call(r, ROT_OP_ECDH, in, 2, secret, ROT_ECDH_LEN, ROT_ECDH_LEN, ROT_ECDH_LEN,
	                NULL);
}

int rot_keygen(struct rot *r, uint32_t *handle, uint8_t pub[ROT_PUB_LEN])
{
	uint8_t resp[4 + ROT_PUB_LEN];
	int rc;

	if (!handle || !pub)
		return SPH_ERR_INVALID_ARG;
	*handle = 0;
	memset(pub, 0, ROT_PUB_LEN);
	rc = rot_call(r, ROT_OP_KEYGEN, NULL, 0, resp, sizeof(resp), sizeof(resp), sizeof(resp),
	              NULL);
	if (rc != 0)
		return rc;
	*handle = rot_get_le32(resp);
	memcpy(pub, resp + 4, ROT_PUB_LEN);
	return 0;
}

int rot_key_destroy(struct rot *r, uint32_t handle)
{
	uint8_t k[4];
	struct rot_iov in[] = {{k, sizeof(k)}};

	rot_put_le32(k, handle);
	return rot_call(r, ROT_OP_KEY_DESTROY, in, 1, NULL, 0, 0, 0, NULL);
}

/* ---- sealing and randomness ------------------------------------------------ */

int rot_seal(struct rot *r, const uint8_t *aad, size_t aad_len, const uint8_t *pt, size_t pt_len,
             uint8_t *out, size_t cap, size_t *out_len)
{
	uint8_t lens[4];
	struct rot_iov in[] = {{lens, sizeof(lens)}, {aad, aad_len}, {pt, pt_len}};

	if (!out_len)
		return SPH_ERR_INVALID_ARG;
	*out_len = 0;
	if ((!aad && aad_len) || (!pt && pt_len) || !out)
		return SPH_ERR_INVALID_ARG;
	if (aad_len > ROT_SEAL_AAD_MAX || pt_len > ROT_SEAL_MAX)
		return SPH_ERR_TOO_LARGE;
	if (cap < pt_len + ROT_SEAL_OVERHEAD)
		return SPH_ERR_BUFFER_TOO_SMALL;
	rot_put_le16(lens, (uint16_t)aad_len);
	rot_put_le16(lens + 2, (uint16_t)pt_len);
	return rot_call(r, ROT_OP_SEAL, in, 3, out, cap, pt_len + ROT_SEAL_OVERHEAD,
	                pt_len + ROT_SEAL_OVERHEAD, out_len);
}

int rot_unseal(struct rot *r, const uint8_t *aad, size_t aad_len, const uint8_t *sealed,
               size_t sealed_len, uint8_t *out, size_t cap, size_t *out_len)
{
	uint8_t lens[4];
	struct rot_iov in[] = {{lens, sizeof(lens)}, {aad, aad_len}, {sealed, sealed_len}};
	size_t pt_len = sealed_len >= ROT_SEAL_OVERHEAD ? sealed_len - ROT_SEAL_OVERHEAD : 0;

	if (!out_len)
		return SPH_ERR_INVALID_ARG;
	*out_len = 0;
	if ((!aad && aad_len) || (!sealed && sealed_len) || (!out && cap))
		return SPH_ERR_INVALID_ARG;
	if (aad_len > ROT_SEAL_AAD_MAX || sealed_len > ROT_SEAL_MAX + ROT_SEAL_OVERHEAD)
		return SPH_ERR_TOO_LARGE;
	if (cap < pt_len)
		return SPH_ERR_BUFFER_TOO_SMALL;
	rot_put_le16(lens, (uint16_t)aad_len);
	rot_put_le16(lens + 2, (uint16_t)sealed_len);
	/* A blob shorter than the overhead is sent anyway: the RoT answers SPH_ERR_AUTH. */
	return rot_call(r, ROT_OP_UNSEAL, in, 3, out, cap, pt_len, pt_len, out_len);
}

int rot_random(struct rot *r, uint8_t *buf, size_t len)
{
	uint8_t l[2];
	struct rot_iov in[] = {{l, sizeof(l)}};

	if (!buf || len == 0)
		return SPH_ERR_INVALID_ARG;
	if (len > ROT_RANDOM_MAX)
		return SPH_ERR_TOO_LARGE;
	memset(buf, 0, len);
	rot_put_le16(l, (uint16_t)len);
	return rot_call(r, ROT_OP_RANDOM, in, 1, buf, len, len, len, NULL);
}

/* ---- measured boot --------------------------------------------------------- */

/* Copies a NUL-terminated string of 1..n bytes into an n-byte NUL-padded field. */
static int rot_put_text(uint8_t *field, size_t n, const char *s, size_t s_cap)
{
	size_t len = strnlen(s, s_cap);

	if (len == 0 || len > n)
		return SPH_ERR_INVALID_ARG;
	memset(field, 0, n);
	memcpy(field, s, len);
	return 0;
}

int rot_measure(struct rot *r, const struct eat_component *c, uint8_t acc[ROT_DIGEST_LEN])
{
	uint8_t rec[ROT_COMPONENT_RECORD_LEN], tmp[ROT_DIGEST_LEN];
	struct rot_iov in[] = {{rec, sizeof(rec)}};
	int rc;

	if (acc)
		memset(acc, 0, ROT_DIGEST_LEN);
	if (!c)
		return SPH_ERR_INVALID_ARG;
	if (rot_put_text(rec, 16, c->type, sizeof(c->type)) != 0 ||
	    rot_put_text(rec + 32, 32, c->version, sizeof(c->version)) != 0)
		return SPH_ERR_INVALID_ARG;
	memcpy(rec + 16, c->component_id, 16);
	rot_put_le32(rec + 64, c->security_version);
	memcpy(rec + 68, c->digest, 32);
	memcpy(rec + 100, c->signer_id, 32);
	rc = rot_call(r, ROT_OP_MEASURE, in, 1, tmp, sizeof(tmp), sizeof(tmp), sizeof(tmp), NULL);
	if (rc == 0 && acc)
		memcpy(acc, tmp, ROT_DIGEST_LEN);
	return rc;
}

int rot_accumulator(struct rot *r, uint8_t acc[ROT_DIGEST_LEN])
{
	if (!acc)
		return SPH_ERR_INVALID_ARG;
	memset(acc, 0, ROT_DIGEST_LEN);
	return rot_call(r, ROT_OP_ACCUMULATOR, NULL, 0, acc, ROT_DIGEST_LEN, ROT_DIGEST_LEN,
	                ROT_DIGEST_LEN, NULL);
}

/* ---- nonce register and attestation --------------------------------------- */

int rot_nonce_load(struct rot *r, const uint8_t *nonce, size_t len)
{
	struct rot_iov in[] = {{nonce, len}};

	if (!nonce || len < EAT_NONCE_MIN || len > EAT_NONCE_MAX)
		return SPH_ERR_INVALID_ARG;
	return rot_call(r, ROT_OP_NONCE_LOAD, in, 1, NULL, 0, 0, 0, NULL);
}

int rot_nonce_read(struct rot *r, uint8_t buf[EAT_NONCE_MAX], size_t *len)
{
	size_t n = 0;
	int rc;

	if (!buf || !len)
		return SPH_ERR_INVALID_ARG;
	*len = 0;
	memset(buf, 0, EAT_NONCE_MAX);
	rc = rot_call(r, ROT_OP_NONCE_READ, NULL, 0, buf, EAT_NONCE_MAX, 0, EAT_NONCE_MAX, &n);
	if (rc != 0)
		return rc;
	if (n != 0 && n < EAT_NONCE_MIN) {
		memset(buf, 0, EAT_NONCE_MAX);
		return SPH_ERR_TRANSPORT; /* an empty register is 0 bytes, a loaded one 8..64 */
	}
	*len = n;
	return 0;
}

int rot_attest(struct rot *r, const uint8_t *nonce, size_t nonce_len, uint8_t *out, size_t cap,
               size_t *out_len)
{
	struct rot_iov in[] = {{nonce, nonce_len}};

	if (!out_len)
		return SPH_ERR_INVALID_ARG;
	*out_len = 0;
	if (!nonce || nonce_len < EAT_NONCE_MIN || nonce_len > EAT_NONCE_MAX || !out)
		return SPH_ERR_INVALID_ARG;
	/* Refused before the request: the RoT would load the nonce register and
	 * sign, only for the token to find no room here. */
	if (cap < EAT_MAX_TOKEN)
		return SPH_ERR_BUFFER_TOO_SMALL;
	return rot_call(r, ROT_OP_ATTEST, in, 1, out, cap, 1, EAT_MAX_TOKEN, out_len);
}

/* ---- one-way state --------------------------------------------------------- */

int rot_counter_read(struct rot *r, unsigned idx, uint32_t *value)
{
	uint8_t i[4], v[4];
	struct rot_iov in[] = {{i, sizeof(i)}};
	int rc;

	if (!value)
		return SPH_ERR_INVALID_ARG;
	*value = 0;
	rot_put_le32(i, idx);
	rc = rot_call(r, ROT_OP_COUNTER_READ, in, 1, v, sizeof(v), sizeof(v), sizeof(v), NULL);
	if (rc != 0)
		return rc;
	if (rot_get_le32(v) > ROT_COUNTER_MAX)
		return SPH_ERR_TRANSPORT;
	*value = rot_get_le32(v);
	return 0;
}

int rot_counter_advance(struct rot *r, unsigned idx, uint32_t value)
{
	uint8_t b[8];
	struct rot_iov in[] = {{b, sizeof(b)}};

	rot_put_le32(b, idx);
	rot_put_le32(b + 4, value);
	return rot_call(r, ROT_OP_COUNTER_ADVANCE, in, 1, NULL, 0, 0, 0, NULL);
}

int rot_lifecycle(struct rot *r, enum rot_lifecycle *lc)
{
	uint8_t v[4];
	int rc;

	if (!lc)
		return SPH_ERR_INVALID_ARG;
	*lc = ROT_LC_BLANK;
	rc = rot_call(r, ROT_OP_LIFECYCLE, NULL, 0, v, sizeof(v), sizeof(v), sizeof(v), NULL);
	if (rc != 0)
		return rc;
	if (rot_get_le32(v) > ROT_LC_DECOMMISSIONED)
		return SPH_ERR_TRANSPORT;
	*lc = (enum rot_lifecycle)rot_get_le32(v);
	return 0;
}

int rot_root_hash(struct rot *r, uint8_t hash[ROT_DIGEST_LEN])
{
	int rc;

	if (!hash)
		return SPH_ERR_INVALID_ARG;
	memset(hash, 0, ROT_DIGEST_LEN);
	rc = rot_call(r, ROT_OP_ROOT_HASH, NULL, 0, hash, ROT_DIGEST_LEN, ROT_DIGEST_LEN,
	              ROT_DIGEST_LEN, NULL);
	if (rc == 0) {
		uint8_t any = 0;
		for (size_t i = 0; i < ROT_DIGEST_LEN; i++)
			any |= hash[i];
		if (any == 0)
			rc = SPH_ERR_TRANSPORT; /* the RoT answers NOT_FOUND, never zeros */
	}
	if (rc != 0)
		memset(hash, 0, ROT_DIGEST_LEN);
	return rc;
}

int rot_boot_count(struct rot *r, uint64_t *count)
{
	uint8_t v[8];
	int rc;

	if (!count)
		return SPH_ERR_INVALID_ARG;
	*count = 0;
	rc = rot_call(r, ROT_OP_BOOT_COUNT, NULL, 0, v, sizeof(v), sizeof(v), sizeof(v), NULL);
	if (rc == 0)
		*count = rot_get_le64(v);
	return rc;
}
