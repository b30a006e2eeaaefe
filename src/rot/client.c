/*
 * rot: the public API. Every call builds one request frame, hands it to a
 * transport and checks the response frame:
 *  - in-process: rot_core_handle() in this process;
 *  - mailbox: a SOCK_SEQPACKET socketpair to a `sphere-rot serve` child.
 * Both transports share the encoder, the core and the response checks, so the
 * same tests cover both. A response must carry the magic, the request's op and
 * seq, and exactly the payload length the op defines; anything else is
 * SPH_ERR_TRANSPORT and, on the mailbox, breaks the handle for good (a peer
 * that spoke out of protocol is not trusted again).
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

struct rot {
	pthread_mutex_t lock;
	struct rot_core *core; /* in-process transport, else NULL */
	int fd;                /* mailbox socket, else -1 */
	pid_t pid;             /* mailbox RoT process, else 0 */
	bool broken;           /* the mailbox failed once: every later call fails */
	uint32_t seq;
	uint8_t req[ROT_MB_MAX_FRAME];
	uint8_t resp[ROT_MB_MAX_FRAME + 1]; /* one spare byte: oversize records show up */
};

/* One piece of a request payload. */
struct rot_iov {
	const void *p;
	size_t n;
};

static struct rot *rot_alloc(void)
{
	struct rot *r = calloc(1, sizeof(*r));

	if (!r)
		return NULL;
	if (pthread_mutex_init(&r->lock, NULL) != 0) {
		free(r);
		return NULL;
	}
	r->fd = -1;
	return r;
}

/* Sends req_len bytes of r->req and receives one record into r->resp. */
static int rot_mb_exchange(struct rot *r, size_t req_len, size_t *resp_len)
{
	ssize_t n;

	*resp_len = 0;
	if (r->broken || r->fd < 0)
		return SPH_ERR_TRANSPORT;
	do
		n = send(r->fd, r->req, req_len, MSG_NOSIGNAL);
	while (n < 0 && errno == EINTR);
	if (n < 0 || (size_t)n != req_len)
		goto broken;
	do
		n = rot_mb_recv(r->fd, r->resp, sizeof(r->resp), ROT_MB_CLIENT_SPIN_NS);
	while (n < 0 && errno == EINTR);
	/* 0: the RoT is gone; MSG_TRUNC reports the real size of an oversize record. */
	if (n <= 0 || (size_t)n > ROT_MB_MAX_FRAME)
		goto broken;
	*resp_len = (size_t)n;
	return 0;
broken:
	OPENSSL_cleanse(r->resp, sizeof(r->resp));
	if (!r->broken)
		sph_log(SPH_LOG_WARN, "rot", "mailbox_broken", "pid=%d errno=%d", (int)r->pid,
		        n < 0 ? errno : 0);
	r->broken = true;
	return SPH_ERR_TRANSPORT;
}

/*
 * One request/response exchange. The request payload is the concatenation of
 * in[0..n_in). The response payload must be out_min..out_max bytes; it is
 * copied to out (out_cap bytes; SPH_ERR_BUFFER_TOO_SMALL if it does not fit)
 * and its length stored in *out_len (may be NULL when out_min == out_max).
 * Returns 0, the RoT's (negative) status, or SPH_ERR_TRANSPORT.
 */
static int rot_call(struct rot *r, enum rot_op op, const struct rot_iov *in, size_t n_in,
                    uint8_t *out, size_t out_cap, size_t out_min, size_t out_max, size_t *out_len)
{
	struct rot_mb_hdr h = {.magic = ROT_MB_MAGIC, .op = (uint16_t)op};
	size_t req_len = ROT_MB_HDR_LEN, resp_len = 0;
	int rc;

	if (out_len)
		*out_len = 0;
	if (!r)
		return SPH_ERR_INVALID_ARG;
	if (pthread_mutex_lock(&r->lock) != 0)
		return SPH_ERR_STATE;
	for (size_t i = 0; i < n_in; i++) {
		rc = SPH_ERR_TOO_LARGE;
		if (in[i].n > ROT_MB_MAX_FRAME - req_len)
			goto out;
		if (in[i].n > 0)
			memcpy(r->req + req_len, in[i].p, in[i].n);
		req_len += in[i].n;
	}
	h.seq = ++r->seq;
	h.len = (uint32_t)(req_len - ROT_MB_HDR_LEN);
	rot_mb_hdr_encode(&h, r->req);

	if (r->core) {
		resp_len = rot_core_handle(r->core, r->req, req_len, r->resp, sizeof(r->resp));
	} else {
		rc = rot_mb_exchange(r, req_len, &resp_len);
		if (rc != 0)
			goto out;
	}

	rc = SPH_ERR_TRANSPORT;
	if (rot_mb_hdr_decode(r->resp, resp_len, &h) != 0 || h.op != op || h.seq != r->seq)
		goto bad;
	if (h.status != 0) {
		if (h.status > 0 || h.len != 0)
			goto bad;
		rc = h.status;
		goto out;
	}
	if (h.len < out_min || h.len > out_max)
		goto bad;
	rc = SPH_ERR_BUFFER_TOO_SMALL;
	if (h.len > out_cap)
		goto out;
	if (h.len > 0)
		memcpy(out, r->resp + ROT_MB_HDR_LEN, h.len);
	if (out_len)
		*out_len = h.len;
	rc = 0;
	goto out;
bad:
	sph_log(SPH_LOG_WARN, "rot", "response_refused", "op=%u pid=%d", (unsigned)op, (int)r->pid);
	if (!r->core)
		r->broken = true;
out:
	/* Frames carry plaintexts and shared secrets: wipe what was used. */
	OPENSSL_cleanse(r->req, req_len);
	OPENSSL_cleanse(r->resp, resp_len);
	pthread_mutex_unlock(&r->lock);
	return rc;
}

/* ---- opening and closing ----------------------------------------------------- */

int rot_open_inproc(const char *otp_path, struct rot **out)
{
	struct rot *r = NULL;
	int rc = SPH_ERR_INVALID_ARG;

	if (out)
		*out = NULL;
	if (!otp_path || !out)
		goto out;
	rc = SPH_ERR_NOMEM;
	r = rot_alloc();
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

/* The sphere-rot binary: $SPHERE_ROT_BIN, else next to the running executable. */
static int rot_find_bin(char **out)
{
	const char *env = getenv("SPHERE_ROT_BIN");
	char self[PATH_MAX];
	char *slash, *bin = NULL;
	ssize_t n;

	*out = NULL;
	if (env && *env) {
		bin = strdup(env);
	} else {
		n = readlink("/proc/self/exe", self, sizeof(self) - 1);
		if (n <= 0 || (size_t)n >= sizeof(self) - 1)
			return SPH_ERR_NOT_FOUND;
		self[n] = '\0';
		slash = strrchr(self, '/');
		if (!slash)
			return SPH_ERR_NOT_FOUND;
		slash[1] = '\0';
		if (asprintf(&bin, "%ssphere-rot", self) < 0)
			bin = NULL;
	}
	if (!bin)
		return SPH_ERR_NOMEM;
	if (access(bin, X_OK) != 0) {
		sph_log(SPH_LOG_ERROR, "rot", "binary_missing", "path=\"%s\" errno=%d", bin, errno);
		free(bin);
		return SPH_ERR_NOT_FOUND;
	}
	*out = bin;
	return 0;
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
	pid_t w;

	for (int waited = 0; waited < ROT_REAP_TIMEOUT_MS; waited += 2) {
		w = waitpid(pid, &status, WNOHANG);
		if (w == pid)
			goto reaped;
		if (w < 0 && errno != EINTR)
			return; /* not our child any more (e.g. SIGCHLD ignored) */
		nanosleep(&tick, NULL);
	}
	sph_log(SPH_LOG_WARN, "rot", "rot_killed", "pid=%d", (int)pid);
	kill(pid, SIGKILL);
	do
		w = waitpid(pid, &status, 0);
	while (w < 0 && errno == EINTR);
	if (w != pid)
		return;
reaped:
	sph_log(SPH_LOG_DEBUG, "rot", "rot_stopped", "pid=%d exit=%d signal=%d", (int)pid,
	        WIFEXITED(status) ? WEXITSTATUS(status) : -1,
	        WIFSIGNALED(status) ? WTERMSIG(status) : 0);
}

int rot_open_mailbox(const char *otp_path, struct rot **out)
{
	struct rot *r = NULL;
	char *bin = NULL;
	int sv[2] = {-1, -1};
	const struct timeval tmo = {ROT_IO_TIMEOUT_S, 0};
	enum rot_lifecycle lc;
	pid_t pid;
	int rc = SPH_ERR_INVALID_ARG;

	if (out)
		*out = NULL;
	if (!otp_path || !out)
		goto out;
	/* Clear errors for a missing or bad OTP file, without reading its secret here. */
	rc = rot_otp_probe(otp_path);
	if (rc != 0)
		goto out;
	rc = rot_find_bin(&bin);
	if (rc != 0)
		goto out;
	rc = SPH_ERR_NOMEM;
	r = rot_alloc();
	if (!r)
		goto out;
	rc = SPH_ERR_IO;
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) != 0)
		goto out;
	{
		char *const argv[] = {bin,
		                      (char *)"serve",
		                      (char *)"--otp",
		                      (char *)otp_path,
		                      (char *)"--fd",
		                      (char *)ROT_CHILD_FD_STR,
		                      NULL};
		pid = fork();
		if (pid == 0)
			rot_child_exec(sv[1], bin, argv);
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
	/* Handshake: the RoT answers once its keys are derived, or answers why it could not. */
	rc = rot_lifecycle(r, &lc);
	if (rc != 0) {
		sph_log(SPH_LOG_ERROR, "rot", "mailbox_start_failed", "pid=%d status=%d", (int)pid,
		        rc);
		goto out;
	}
	sph_log(SPH_LOG_DEBUG, "rot", "mailbox_started", "pid=%d", (int)pid);
	*out = r;
	r = NULL; /* transferred */
out:
	if (sv[0] >= 0)
		close(sv[0]);
	if (sv[1] >= 0)
		close(sv[1]);
	rot_close(r);
	free(bin);
	return rc;
}

void rot_close(struct rot *r)
{
	if (!r)
		return;
	if (r->fd >= 0)
		close(r->fd); /* the RoT sees the hang-up, wipes its keys and exits */
	if (r->pid > 0)
		rot_reap(r->pid);
	rot_core_free(r->core);
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

int rot_reset(struct rot *r)
{
	return rot_call(r, ROT_OP_RESET, NULL, 0, NULL, 0, 0, 0, NULL);
}
