/*
 * rot: the mailbox frame header (docs/formats.md §4.1). Both transports encode
 * and check every frame through these two functions.
 */
#include <errno.h>
#include <sched.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include "rot_internal.h"

void rot_mb_hdr_encode(const struct rot_mb_hdr *h, uint8_t out[ROT_MB_HDR_LEN])
{
	rot_put_le32(out, h->magic);
	rot_put_le16(out + 4, h->op);
	rot_put_le16(out + 6, (uint16_t)h->status);
	rot_put_le32(out + 8, h->seq);
	rot_put_le32(out + 12, h->len);
}

int rot_mb_hdr_peek(const uint8_t *frame, size_t frame_len, struct rot_mb_hdr *h)
{
	memset(h, 0, sizeof(*h));
	if (frame_len < ROT_MB_HDR_LEN)
		return SPH_ERR_TRUNCATED;
	h->magic = rot_get_le32(frame);
	h->op = rot_get_le16(frame + 4);
	h->status = (int16_t)rot_get_le16(frame + 6);
	h->seq = rot_get_le32(frame + 8);
	h->len = rot_get_le32(frame + 12);
	return 0;
}

int rot_mb_hdr_decode(const uint8_t *frame, size_t frame_len, struct rot_mb_hdr *h)
{
	struct rot_mb_hdr t;
	int rc;

	memset(h, 0, sizeof(*h));
	rc = rot_mb_hdr_peek(frame, frame_len, &t);
	if (rc != 0)
		return rc;
	if (t.magic != ROT_MB_MAGIC)
		return SPH_ERR_MALFORMED;
	/* Op 0 appears only in an error response to a request whose op was unreadable. */
	if ((t.op != 0 && !rot_op_known(t.op)) || (t.op == 0 && t.status == 0))
		return SPH_ERR_MALFORMED;
	if (t.len > ROT_MB_MAX_PAYLOAD || frame_len - ROT_MB_HDR_LEN > ROT_MB_MAX_PAYLOAD)
		return SPH_ERR_TOO_LARGE;
	if (frame_len - ROT_MB_HDR_LEN < t.len)
		return SPH_ERR_TRUNCATED;
	if (frame_len - ROT_MB_HDR_LEN > t.len)
		return SPH_ERR_TRAILING;
	*h = t;
	return 0;
}

int rot_mb_check_response(uint16_t op, uint32_t seq, const uint8_t *resp, size_t resp_len,
                          size_t want_min, size_t want_max, const uint8_t **payload,
                          size_t *payload_len)
{
	struct rot_mb_hdr h;

	if (payload)
		*payload = NULL;
	if (payload_len)
		*payload_len = 0;
	if (!payload || !payload_len || !rot_op_known(op) || want_min > want_max ||
	    want_max > ROT_MB_MAX_PAYLOAD)
		return SPH_ERR_INVALID_ARG;
	/* Size, magic, op range and len; an oversize record (MSG_TRUNC) fails here too. */
	if (!resp || rot_mb_hdr_decode(resp, resp_len, &h) != 0)
		return SPH_ERR_TRANSPORT;
	if (h.op != op || h.seq != seq)
		return SPH_ERR_TRANSPORT;
	if (h.status != 0) {
		/* The RoT answers failures with a negative status and nothing else;
		 * SPH_ERR_TRANSPORT is the requester's own verdict, never the RoT's. */
		if (h.status > 0 || h.len != 0 || h.status == SPH_ERR_TRANSPORT)
			return SPH_ERR_TRANSPORT;
		return h.status;
	}
	if (h.len < want_min || h.len > want_max)
		return SPH_ERR_TRANSPORT;
	*payload = h.len > 0 ? resp + ROT_MB_HDR_LEN : NULL;
	*payload_len = h.len;
	return 0;
}

static int64_t rot_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

ssize_t rot_mb_recv(int fd, uint8_t *buf, size_t cap, int64_t spin_ns)
{
	int64_t start = spin_ns > 0 ? rot_now_ns() : 0;
	ssize_t n;

	/* Poll without sleeping for a short while: the answer usually comes within
	 * microseconds, and waking a sleeping CPU costs far more than that on
	 * virtual machines. sched_yield lets the peer run if it shares our CPU. */
	while (spin_ns > 0) {
		n = recv(fd, buf, cap, MSG_TRUNC | MSG_DONTWAIT);
		if (n >= 0 || (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR))
			return n;
		if (rot_now_ns() - start > spin_ns)
			break;
		sched_yield();
	}
	return recv(fd, buf, cap, MSG_TRUNC);
}
