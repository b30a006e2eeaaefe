/*
 * libFuzzer target for both sides of the mailbox (docs/formats.md §4.1):
 *
 *  - as a request, every input is handed straight to the RoT core
 *    (rot_core_handle), exactly as `sphere-rot serve` does. The core must
 *    answer every input with a well-formed response frame that echoes a
 *    readable request's op and seq, carries no payload with an error status,
 *    carries exactly the op's payload length on success, and passes the
 *    client's own response check; a frame with the retired op 19 (RESET) must
 *    be refused and change no register. Anything else aborts.
 *  - as a response, every input is checked by rot_mb_check_response against a
 *    fixed request (seq ROT_FUZZ_SEQ) of every op: it must never crash, and a
 *    success must mean a frame of exactly 16 + len bytes with the request's op
 *    and seq, status 0 and a payload within the op's bounds; an error must be
 *    a bare negative status other than SPH_ERR_TRANSPORT.
 *
 * The core runs over an OTP file with a fixed device secret (the one the seed
 * corpus was made with, so seeds reach past the crypto checks) in a private
 * temporary directory. Counters burn and boots count as the fuzzer runs, so
 * the OTP file and core are re-created every ROT_FUZZ_REFRESH inputs.
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/common.h"
#include "rot/rot_internal.h"

#define ROT_FUZZ_REFRESH 4096
#define ROT_FUZZ_SEQ     1u /* the seq of the fixed requests a response input answers */

/* The seed corpus's device secret: 0x00, 0x01, ..., 0x1f. */
static uint8_t fz_secret[ROT_SECRET_LEN];
static struct rot_core *fz_core;
static char fz_dir[256];
static char fz_otp[300];
static unsigned long fz_inputs;

static void fz_cleanup(void)
{
	rot_core_free(fz_core);
	fz_core = NULL;
	unlink(fz_otp);
	rmdir(fz_dir);
}

/* What the boot ROM does at power-up: measure a first component, so ATTEST has
 * something to attest (it refuses an empty measurement log). */
static void fz_boot(void)
{
	static uint8_t req[ROT_MB_HDR_LEN + ROT_COMPONENT_RECORD_LEN], resp[ROT_MB_MAX_FRAME];
	struct rot_mb_hdr h = {.magic = ROT_MB_MAGIC,
	                       .op = ROT_OP_MEASURE,
	                       .seq = 1,
	                       .len = ROT_COMPONENT_RECORD_LEN};
	size_t n;

	memset(req, 0, sizeof(req));
	rot_mb_hdr_encode(&h, req);
	memcpy(req + ROT_MB_HDR_LEN, "BL", 2);
	memcpy(req + ROT_MB_HDR_LEN + 32, "1.0.0", 5);
	n = rot_core_handle(fz_core, req, sizeof(req), resp, sizeof(resp));
	if (rot_mb_hdr_decode(resp, n, &h) != 0 || h.status != 0)
		abort();
}

static void fz_make_core(void)
{
	int rc;

	rot_core_free(fz_core);
	fz_core = NULL;
	unlink(fz_otp);
	rc = rot_otp_fuse(fz_otp, fz_secret, ROT_LC_DEVELOPMENT);
	if (rc == 0)
		rc = rot_core_new(fz_otp, &fz_core);
	if (rc != 0) {
		fprintf(stderr, "fuzz_mailbox: cannot set up a RoT core: %s\n", sph_strerror(rc));
		abort();
	}
	fz_boot();
}

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	const char *base = getenv("TMPDIR");

	(void)argc;
	(void)argv;
	sph_log_set_level(SPH_LOG_ERROR); /* refused frames are the point here */
	for (size_t i = 0; i < sizeof(fz_secret); i++)
		fz_secret[i] = (uint8_t)i;
	/* tmpfs when there is one: OTP burns fsync. */
	if (!base)
		base = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
	snprintf(fz_dir, sizeof(fz_dir), "%s/fuzz-mailbox-XXXXXX", base);
	if (!mkdtemp(fz_dir)) {
		perror("fuzz_mailbox: mkdtemp");
		abort();
	}
	snprintf(fz_otp, sizeof(fz_otp), "%s/otp", fz_dir);
	atexit(fz_cleanup);
	fz_make_core();
	return 0;
}

/* Exact success payload length for an op and its request, or -1 if variable. */
static long fz_resp_len(uint16_t op, const uint8_t *payload)
{
	switch (op) {
	case ROT_OP_PUBKEY:
		return ROT_PUB_LEN;
	case ROT_OP_SIGN:
		return ROT_SIG_LEN;
	case ROT_OP_ECDH:
		return ROT_ECDH_LEN;
	case ROT_OP_KEYGEN:
		return 4 + ROT_PUB_LEN;
	case ROT_OP_SEAL:
		return (long)rot_get_le16(payload + 2) + ROT_SEAL_OVERHEAD;
	case ROT_OP_UNSEAL:
		return (long)rot_get_le16(payload + 2) - ROT_SEAL_OVERHEAD;
	case ROT_OP_RANDOM:
		return rot_get_le16(payload);
	case ROT_OP_MEASURE:
	case ROT_OP_ACCUMULATOR:
	case ROT_OP_ROOT_HASH:
		return ROT_DIGEST_LEN;
	case ROT_OP_COUNTER_READ:
	case ROT_OP_LIFECYCLE:
		return 4;
	case ROT_OP_BOOT_COUNT:
		return 8;
	case ROT_OP_NONCE_READ:
	case ROT_OP_ATTEST:
		return -1;
	default:
		return 0;
	}
}

/* Response payload bounds per op, as the client asks for them (client.c). */
static const struct {
	size_t min, max;
} fz_resp_bounds[ROT_OP_MAX + 1] = {
        [ROT_OP_PUBKEY] = {ROT_PUB_LEN, ROT_PUB_LEN},
        [ROT_OP_SIGN] = {ROT_SIG_LEN, ROT_SIG_LEN},
        [ROT_OP_VERIFY] = {0, 0},
        [ROT_OP_ECDH] = {ROT_ECDH_LEN, ROT_ECDH_LEN},
        [ROT_OP_KEYGEN] = {4 + ROT_PUB_LEN, 4 + ROT_PUB_LEN},
        [ROT_OP_KEY_DESTROY] = {0, 0},
        [ROT_OP_SEAL] = {ROT_SEAL_OVERHEAD, ROT_SEAL_MAX + ROT_SEAL_OVERHEAD},
        [ROT_OP_UNSEAL] = {0, ROT_SEAL_MAX},
        [ROT_OP_RANDOM] = {1, ROT_RANDOM_MAX},
        [ROT_OP_MEASURE] = {ROT_DIGEST_LEN, ROT_DIGEST_LEN},
        [ROT_OP_ACCUMULATOR] = {ROT_DIGEST_LEN, ROT_DIGEST_LEN},
        [ROT_OP_NONCE_LOAD] = {0, 0},
        [ROT_OP_NONCE_READ] = {0, EAT_NONCE_MAX},
        [ROT_OP_ATTEST] = {1, EAT_MAX_TOKEN},
        [ROT_OP_COUNTER_READ] = {4, 4},
        [ROT_OP_COUNTER_ADVANCE] = {0, 0},
        [ROT_OP_LIFECYCLE] = {4, 4},
        [ROT_OP_BOOT_COUNT] = {8, 8},
        [ROT_OP_ROOT_HASH] = {ROT_DIGEST_LEN, ROT_DIGEST_LEN},
};

/* The input as the RoT's answer to a request of every op. */
static void fz_check_as_response(const uint8_t *data, size_t size)
{
	for (uint16_t op = 1; op <= ROT_OP_MAX; op++) {
		if (!rot_op_known(op))
			continue; /* the retired RESET: no request to answer */
		const uint8_t *payload = (const uint8_t *)"";
		size_t min = fz_resp_bounds[op].min, max = fz_resp_bounds[op].max, len = 99;
		struct rot_mb_hdr h;
		int rc = rot_mb_check_response(op, ROT_FUZZ_SEQ, data, size, min, max, &payload,
		                               &len);

		if (rc == 0) {
			if (rot_mb_hdr_decode(data, size, &h) != 0 || h.op != op ||
			    h.seq != ROT_FUZZ_SEQ || h.status != 0 || h.len != len)
				abort();
			if (len < min || len > max || size != ROT_MB_HDR_LEN + len)
				abort();
			if (payload != (len ? data + ROT_MB_HDR_LEN : NULL))
				abort();
			continue;
		}
		if (payload != NULL || len != 0 || rc > 0)
			abort();
		if (rc == SPH_ERR_TRANSPORT)
			continue;
		/* A RoT refusal: a bare header with the request's op and seq. */
		if (rot_mb_hdr_decode(data, size, &h) != 0 || h.op != op || h.seq != ROT_FUZZ_SEQ ||
		    h.status != rc || h.len != 0 || size != ROT_MB_HDR_LEN)
			abort();
	}
}

/* Reads a register through the core (accumulator or boot count). */
static void fz_read_reg(uint16_t op, uint8_t *out, size_t len)
{
	static uint8_t req[ROT_MB_HDR_LEN], resp[ROT_MB_MAX_FRAME];
	struct rot_mb_hdr h = {.magic = ROT_MB_MAGIC, .op = op, .seq = 2};
	size_t n;

	rot_mb_hdr_encode(&h, req);
	n = rot_core_handle(fz_core, req, sizeof(req), resp, sizeof(resp));
	if (rot_mb_hdr_decode(resp, n, &h) != 0 || h.status != 0 || h.len != len)
		abort();
	memcpy(out, resp + ROT_MB_HDR_LEN, len);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static uint8_t resp[ROT_MB_MAX_FRAME];
	uint8_t acc[ROT_DIGEST_LEN], acc2[ROT_DIGEST_LEN], boots[8], boots2[8];
	struct rot_mb_hdr rq, rs, peek;
	const uint8_t *payload;
	size_t n, payload_len;
	bool retired;
	long want;
	int rc;

	fz_check_as_response(data, size);

	if (++fz_inputs % ROT_FUZZ_REFRESH == 0)
		fz_make_core();
	retired = rot_mb_hdr_peek(data, size, &peek) == 0 && peek.op == ROT_OP_RETIRED_RESET;
	if (retired) {
		fz_read_reg(ROT_OP_ACCUMULATOR, acc, sizeof(acc));
		fz_read_reg(ROT_OP_BOOT_COUNT, boots, sizeof(boots));
	}
	n = rot_core_handle(fz_core, data, size, resp, sizeof(resp));
	if (n < ROT_MB_HDR_LEN || n > sizeof(resp))
		abort();
	if (rot_mb_hdr_decode(resp, n, &rs) != 0)
		abort(); /* the core's own response must be a valid frame */
	if (rs.status > 0 || (rs.status != 0 && rs.len != 0))
		abort();
	if (retired) {
		/* RESET is retired: refused like an unknown op, and nothing was reset. */
		if (rs.status == 0 || rs.op != 0)
			abort();
		fz_read_reg(ROT_OP_ACCUMULATOR, acc2, sizeof(acc2));
		fz_read_reg(ROT_OP_BOOT_COUNT, boots2, sizeof(boots2));
		if (memcmp(acc, acc2, sizeof(acc)) != 0 ||
		    memcmp(boots, boots2, sizeof(boots)) != 0)
			abort();
	}
	if (rot_mb_hdr_decode(data, size, &rq) != 0 || rq.status != 0 || rq.op == 0) {
		if (rs.status == 0)
			abort(); /* a malformed request must be refused */
		return 0;
	}
	if (rs.op != rq.op || rs.seq != rq.seq)
		abort();
	/* What the core says to a well-formed request, the client accepts. */
	rc = rot_mb_check_response(rq.op, rq.seq, resp, n, fz_resp_bounds[rq.op].min,
	                           fz_resp_bounds[rq.op].max, &payload, &payload_len);
	if (rc != rs.status)
		abort();
	if (rs.status != 0)
		return 0;
	want = fz_resp_len(rq.op, data + ROT_MB_HDR_LEN);
	if (want >= 0 && rs.len != (uint32_t)want)
		abort();
	if (rq.op == ROT_OP_NONCE_READ && rs.len != 0 &&
	    (rs.len < EAT_NONCE_MIN || rs.len > EAT_NONCE_MAX))
		abort();
	if (rq.op == ROT_OP_ATTEST && (rs.len == 0 || rs.len > EAT_MAX_TOKEN))
		abort();
	return 0;
}
