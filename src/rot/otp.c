/*
 * rot: the OTP fuse file (docs/formats.md §4.3) until the virtual chip owns it.
 *
 * The file is a fixed-size image. Fuse regions (lifecycle, counters) are only
 * ever OR-ed: every change reads the region, sets bits, writes it back with
 * pwrite and fsyncs. The RoT holds the file's flock LOCK_EX from open to close,
 * so a second RoT over the same file is refused ("OTP in use") instead of
 * writing back a stale copy. The boot count is the one field that is
 * rewritten: it models the chip's persistent boot register, not a fuse.
 *
 * A file is not silicon: a process of the same uid can still read the secret
 * and clear bits. What the RoT can do, it does: it remembers every fuse bit it
 * has seen set since it opened the file and, before every counter or lifecycle
 * operation, checks that the file still has them all; if one vanished it fails
 * closed (SPH_ERR_STATE, event=otp_tamper) rather than count from the lowered
 * value. Real isolation needs the RoT under its own uid (the virtual chip).
 */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "common/common.h"
#include "rot_internal.h"

_Static_assert(ROT_OTP_SIZE == 600, "OTP layout is pinned by docs/formats.md");
_Static_assert(ROT_COUNTER_MAX % 8 == 0, "counters are whole bytes");

static int rot_pread_all(int fd, void *buf, size_t len, off_t off)
{
	size_t done = 0;

	while (done < len) {
		ssize_t n = pread(fd, (uint8_t *)buf + done, len - done, off + (off_t)done);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return SPH_ERR_IO;
		done += (size_t)n;
	}
	return 0;
}

static int rot_pwrite_all(int fd, const void *buf, size_t len, off_t off)
{
	size_t done = 0;

	while (done < len) {
		ssize_t n = pwrite(fd, (const uint8_t *)buf + done, len - done, off + (off_t)done);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return SPH_ERR_IO;
		done += (size_t)n;
	}
	return 0;
}

/* Takes the file's exclusive lock without waiting: one RoT per OTP file. */
static int rot_lock_exclusive(int fd)
{
	while (flock(fd, LOCK_EX | LOCK_NB) != 0) {
		if (errno == EINTR)
			continue;
		if (errno == EWOULDBLOCK) {
			sph_log(SPH_LOG_ERROR, "rot", "otp_in_use",
			        "reason=\"another RoT holds this OTP file\"");
			return SPH_ERR_STATE;
		}
		return SPH_ERR_IO;
	}
	return 0;
}

static int rot_open_errno(int err)
{
	return err == ENOENT ? SPH_ERR_NOT_FOUND : SPH_ERR_IO;
}

/* Lifecycle state = the highest burned lifecycle bit (bit n-1 for state n). */
static enum rot_lifecycle rot_lifecycle_from_bits(uint32_t bits)
{
	if (bits & 0x4u)
		return ROT_LC_DECOMMISSIONED;
	if (bits & 0x2u)
		return ROT_LC_PRODUCTION;
	if (bits & 0x1u)
		return ROT_LC_DEVELOPMENT;
	return ROT_LC_BLANK;
}

static uint32_t rot_popcount(const uint8_t *bits, size_t len)
{
	uint32_t n = 0;

	for (size_t i = 0; i < len; i++)
		n += (uint32_t)__builtin_popcount(bits[i]);
	return n;
}

static bool rot_all_zero(const uint8_t *p, size_t len)
{
	uint8_t acc = 0;

	for (size_t i = 0; i < len; i++)
		acc |= p[i];
	return acc == 0;
}

/* Opens path and checks its size; *fd is -1 on failure. */
static int rot_otp_open_fd(const char *path, int flags, int *fd)
{
	struct stat st;
	int rc;

	*fd = open(path, flags | O_CLOEXEC | O_NOFOLLOW);
	if (*fd < 0)
		return rot_open_errno(errno);
	rc = SPH_ERR_IO;
	if (fstat(*fd, &st) != 0)
		goto out;
	rc = SPH_ERR_MALFORMED;
	if (!S_ISREG(st.st_mode) || st.st_size != (off_t)ROT_OTP_SIZE)
		goto out;
	rc = 0;
out:
	if (rc != 0) {
		close(*fd);
		*fd = -1;
	}
	return rc;
}

/* Checks the non-secret header fields of an image (first 16 bytes). */
static int rot_otp_check_header(const uint8_t *img)
{
	if (memcmp(img, ROT_OTP_MAGIC, ROT_OTP_MAGIC_LEN) != 0)
		return SPH_ERR_MALFORMED;
	if (rot_get_le32(img + ROT_OTP_OFF_LIFECYCLE) & ~ROT_OTP_LIFECYCLE_MASK)
		return SPH_ERR_MALFORMED;
	if (rot_get_le32(img + ROT_OTP_OFF_RESERVED) != 0)
		return SPH_ERR_MALFORMED;
	return 0;
}

int rot_otp_fuse(const char *path, const uint8_t *secret, enum rot_lifecycle lifecycle)
{
	uint8_t *img = NULL;
	char *dir_copy = NULL;
	int fd = -1, dfd = -1, rc = SPH_ERR_INVALID_ARG;
	bool created = false;

	if (!path || (unsigned)lifecycle > ROT_LC_DECOMMISSIONED)
		goto out;
	if (secret && rot_all_zero(secret, ROT_SECRET_LEN))
		goto out; /* an all-zero secret reads as "not fused" */
	rc = SPH_ERR_NOMEM;
	img = OPENSSL_secure_zalloc(ROT_OTP_SIZE);
	if (!img)
		goto out;
	memcpy(img, ROT_OTP_MAGIC, ROT_OTP_MAGIC_LEN);
	if (lifecycle != ROT_LC_BLANK)
		rot_put_le32(img + ROT_OTP_OFF_LIFECYCLE, 1u << ((unsigned)lifecycle - 1));
	if (secret) {
		memcpy(img + ROT_OTP_OFF_SECRET, secret, ROT_SECRET_LEN);
	} else {
		do {
			rc = rot_random_bytes(img + ROT_OTP_OFF_SECRET, ROT_SECRET_LEN);
			if (rc != 0)
				goto out;
		} while (rot_all_zero(img + ROT_OTP_OFF_SECRET, ROT_SECRET_LEN));
	}

	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0) {
		rc = errno == EEXIST ? SPH_ERR_STATE : rot_open_errno(errno);
		goto out;
	}
	created = true;
	rc = rot_pwrite_all(fd, img, ROT_OTP_SIZE, 0);
	if (rc != 0)
		goto out;
	rc = SPH_ERR_IO;
	if (fsync(fd) != 0)
		goto out;
	/* Make the new directory entry durable too (best effort). */
	dir_copy = strdup(path);
	if (dir_copy) {
		dfd = open(dirname(dir_copy), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (dfd >= 0)
			(void)fsync(dfd);
	}
	rc = 0;
	sph_log(SPH_LOG_INFO, "rot", "otp_fused", "lifecycle=%u", (unsigned)lifecycle);
out:
	if (fd >= 0)
		close(fd);
	if (dfd >= 0)
		close(dfd);
	if (rc != 0 && created)
		unlink(path);
	free(dir_copy);
	OPENSSL_secure_clear_free(img, ROT_OTP_SIZE);
	return rc;
}

int rot_otp_probe(const char *path)
{
	uint8_t hdr[ROT_OTP_OFF_SECRET];
	int fd = -1, rc;

	if (!path)
		return SPH_ERR_INVALID_ARG;
	rc = rot_otp_open_fd(path, O_RDONLY, &fd);
	if (rc != 0)
		return rc;
	/* Only the header: the device secret never enters the caller's process. */
	rc = rot_pread_all(fd, hdr, sizeof(hdr), 0);
	if (rc == 0)
		rc = rot_otp_check_header(hdr);
	close(fd);
	return rc;
}

int rot_otp_open(const char *path, struct rot_otp *otp, uint8_t secret[ROT_SECRET_LEN])
{
	uint8_t *img = NULL;
	int rc;

	memset(otp, 0, sizeof(*otp));
	otp->fd = -1;
	OPENSSL_cleanse(secret, ROT_SECRET_LEN);
	rc = SPH_ERR_INVALID_ARG;
	if (!path)
		goto out;
	rc = SPH_ERR_NOMEM;
	img = OPENSSL_secure_zalloc(ROT_OTP_SIZE);
	if (!img)
		goto out;
	rc = rot_otp_open_fd(path, O_RDWR, &otp->fd);
	if (rc != 0)
		goto out;
	rc = rot_lock_exclusive(otp->fd); /* held until rot_otp_close */
	if (rc != 0)
		goto out;
	rc = rot_pread_all(otp->fd, img, ROT_OTP_SIZE, 0);
	if (rc != 0)
		goto out;
	rc = rot_otp_check_header(img);
	if (rc != 0)
		goto out;
	rc = SPH_ERR_STATE;
	if (rot_all_zero(img + ROT_OTP_OFF_SECRET, ROT_SECRET_LEN))
		goto out;
	memcpy(secret, img + ROT_OTP_OFF_SECRET, ROT_SECRET_LEN);
	memcpy(otp->root_key_hash, img + ROT_OTP_OFF_ROOT_KEY_HASH, sizeof(otp->root_key_hash));
	otp->seen_lifecycle = rot_get_le32(img + ROT_OTP_OFF_LIFECYCLE);
	otp->lifecycle = rot_lifecycle_from_bits(otp->seen_lifecycle);
	memcpy(otp->seen_counters, img + ROT_OTP_OFF_COUNTERS, sizeof(otp->seen_counters));
	rc = 0;
out:
	OPENSSL_secure_clear_free(img, ROT_OTP_SIZE);
	if (rc != 0) {
		OPENSSL_cleanse(secret, ROT_SECRET_LEN);
		rot_otp_close(otp);
	}
	return rc;
}

void rot_otp_close(struct rot_otp *otp)
{
	if (!otp)
		return;
	if (otp->fd >= 0)
		close(otp->fd); /* releases the flock */
	otp->fd = -1;
}

/*
 * Re-reads the fuse regions (lifecycle, root key hash and counters) and checks
 * that every bit seen set since open is still set, that no undefined lifecycle
 * bit appeared and that the root-hash region still equals the hash latched at
 * open (it is burned once, before any RoT holds the file). On success the
 * remembered bits take in any newly burned ones and counters (may be NULL)
 * receives the counter region. Returns 0, SPH_ERR_STATE (tampered, logged as
 * event=otp_tamper) or SPH_ERR_IO.
 */
static int rot_otp_check_fuses(struct rot_otp *otp,
                               uint8_t counters[ROT_COUNTERS * ROT_OTP_COUNTER_BYTES])
{
	uint8_t lc[4], root[sizeof(otp->root_key_hash)], bits[ROT_COUNTERS * ROT_OTP_COUNTER_BYTES];
	uint32_t lc_bits;
	int rc;

	if (otp->fd < 0)
		return SPH_ERR_STATE;
	rc = rot_pread_all(otp->fd, lc, sizeof(lc), ROT_OTP_OFF_LIFECYCLE);
	if (rc == 0)
		rc = rot_pread_all(otp->fd, root, sizeof(root), ROT_OTP_OFF_ROOT_KEY_HASH);
	if (rc == 0)
		rc = rot_pread_all(otp->fd, bits, sizeof(bits), ROT_OTP_OFF_COUNTERS);
	if (rc != 0)
		return rc;
	lc_bits = rot_get_le32(lc);
	if ((lc_bits & otp->seen_lifecycle) != otp->seen_lifecycle ||
	    (lc_bits & ~ROT_OTP_LIFECYCLE_MASK) != 0) {
		sph_log(SPH_LOG_ERROR, "rot", "otp_tamper", "region=lifecycle");
		return SPH_ERR_STATE;
	}
	if (memcmp(root, otp->root_key_hash, sizeof(root)) != 0) {
		sph_log(SPH_LOG_ERROR, "rot", "otp_tamper",
		        "region=root_hash reason=\"root key hash changed\"");
		return SPH_ERR_STATE;
	}
	for (size_t i = 0; i < sizeof(bits); i++) {
		if ((bits[i] & otp->seen_counters[i]) != otp->seen_counters[i]) {
			sph_log(SPH_LOG_ERROR, "rot", "otp_tamper",
			        "region=counter counter=%zu reason=\"burned bits vanished\"",
			        i / ROT_OTP_COUNTER_BYTES);
			return SPH_ERR_STATE;
		}
	}
	/* Bits burned behind the RoT's back only move fuses forward: remember them. */
	otp->seen_lifecycle |= lc_bits;
	for (size_t i = 0; i < sizeof(bits); i++)
		otp->seen_counters[i] |= bits[i];
	if (counters)
		memcpy(counters, bits, sizeof(bits));
	return 0;
}

int rot_otp_root_hash(struct rot_otp *otp, uint8_t out[32])
{
	int rc;

	memset(out, 0, sizeof(otp->root_key_hash));
	rc = rot_otp_check_fuses(otp, NULL);
	if (rc != 0)
		return rc;
	if (rot_all_zero(otp->root_key_hash, sizeof(otp->root_key_hash)))
		return SPH_ERR_NOT_FOUND;
	memcpy(out, otp->root_key_hash, sizeof(otp->root_key_hash));
	return 0;
}

int rot_otp_lifecycle(struct rot_otp *otp, enum rot_lifecycle *lc)
{
	int rc;

	*lc = ROT_LC_BLANK;
	rc = rot_otp_check_fuses(otp, NULL);
	if (rc == 0)
		*lc = otp->lifecycle;
	return rc;
}

int rot_otp_counter_read(struct rot_otp *otp, unsigned idx, uint32_t *value)
{
	uint8_t bits[ROT_COUNTERS * ROT_OTP_COUNTER_BYTES];
	int rc;

	*value = 0;
	if (idx >= ROT_COUNTERS)
		return SPH_ERR_INVALID_ARG;
	rc = rot_otp_check_fuses(otp, bits);
	if (rc == 0)
		*value = rot_popcount(bits + idx * ROT_OTP_COUNTER_BYTES, ROT_OTP_COUNTER_BYTES);
	return rc;
}

int rot_otp_counter_advance(struct rot_otp *otp, unsigned idx, uint32_t value)
{
	uint8_t all[ROT_COUNTERS * ROT_OTP_COUNTER_BYTES], *bits;
	off_t off = ROT_OTP_OFF_COUNTERS + (off_t)idx * ROT_OTP_COUNTER_BYTES;
	uint32_t cur;
	int rc;

	if (idx >= ROT_COUNTERS)
		return SPH_ERR_INVALID_ARG;
	if (value > ROT_COUNTER_MAX)
		return SPH_ERR_EXHAUSTED;
	/* The lock is held for the RoT's lifetime: no other RoT writes in between. */
	rc = rot_otp_check_fuses(otp, all);
	if (rc != 0)
		return rc;
	bits = all + idx * ROT_OTP_COUNTER_BYTES;
	cur = rot_popcount(bits, ROT_OTP_COUNTER_BYTES);
	if (value < cur)
		return SPH_ERR_ROLLBACK;
	if (value == cur)
		return 0;
	/* Burn the lowest unburned bits until value bits are set. */
	for (unsigned bit = 0; bit < ROT_COUNTER_MAX && cur < value; bit++) {
		uint8_t mask = (uint8_t)(1u << (bit % 8));
		if (!(bits[bit / 8] & mask)) {
			bits[bit / 8] |= mask;
			cur++;
		}
	}
	rc = rot_pwrite_all(otp->fd, bits, ROT_OTP_COUNTER_BYTES, off);
	if (rc != 0)
		return rc;
	for (size_t i = 0; i < ROT_OTP_COUNTER_BYTES; i++)
		otp->seen_counters[idx * ROT_OTP_COUNTER_BYTES + i] |= bits[i];
	return fsync(otp->fd) == 0 ? 0 : SPH_ERR_IO;
}

int rot_otp_boot(struct rot_otp *otp, uint64_t *count)
{
	uint8_t buf[8];
	uint64_t n;
	int rc;

	*count = 0;
	if (otp->fd < 0)
		return SPH_ERR_STATE;
	rc = rot_pread_all(otp->fd, buf, sizeof(buf), ROT_OTP_OFF_BOOT_COUNT);
	if (rc != 0)
		return rc;
	n = rot_get_le64(buf);
	if (n == UINT64_MAX)
		return SPH_ERR_EXHAUSTED;
	rot_put_le64(buf, n + 1);
	rc = rot_pwrite_all(otp->fd, buf, sizeof(buf), ROT_OTP_OFF_BOOT_COUNT);
	if (rc != 0)
		return rc;
	if (fsync(otp->fd) != 0)
		return SPH_ERR_IO;
	*count = n + 1;
	return 0;
}

int rot_otp_fuse_root_hash(const char *path, const uint8_t hash[ROT_DIGEST_LEN])
{
	uint8_t hdr[ROT_OTP_OFF_SECRET], cur[ROT_DIGEST_LEN];
	int fd = -1, rc = SPH_ERR_INVALID_ARG;

	if (!path || !hash || rot_all_zero(hash, ROT_DIGEST_LEN))
		goto out; /* an all-zero hash reads as "not fused" */
	rc = rot_otp_open_fd(path, O_RDWR, &fd);
	if (rc != 0)
		goto out;
	rc = rot_lock_exclusive(fd); /* no RoT may hold the file meanwhile */
	if (rc != 0)
		goto out;
	rc = rot_pread_all(fd, hdr, sizeof(hdr), 0);
	if (rc == 0)
		rc = rot_otp_check_header(hdr);
	if (rc == 0)
		rc = rot_pread_all(fd, cur, sizeof(cur), ROT_OTP_OFF_ROOT_KEY_HASH);
	if (rc != 0)
		goto out;
	if (!rot_all_zero(cur, sizeof(cur))) {
		/* One-way: the same value again is a no-op, another one is refused. */
		rc = memcmp(cur, hash, sizeof(cur)) == 0 ? 0 : SPH_ERR_STATE;
		if (rc != 0)
			sph_log(SPH_LOG_ERROR, "rot", "otp_root_hash_refused",
			        "reason=\"root hash already fused\"");
		goto out;
	}
	rc = rot_pwrite_all(fd, hash, ROT_DIGEST_LEN, ROT_OTP_OFF_ROOT_KEY_HASH);
	if (rc != 0)
		goto out;
	rc = fsync(fd) == 0 ? 0 : SPH_ERR_IO;
	if (rc == 0)
		sph_log(SPH_LOG_INFO, "rot", "otp_root_hash_fused", "ok=1");
out:
	if (fd >= 0)
		close(fd);
	return rc;
}

int rot_otp_read_root_hash(const char *path, uint8_t out[ROT_DIGEST_LEN])
{
	uint8_t hdr[ROT_OTP_OFF_SECRET], buf[ROT_DIGEST_LEN];
	int fd = -1, rc = SPH_ERR_INVALID_ARG;

	if (out)
		memset(out, 0, ROT_DIGEST_LEN);
	if (!path || !out)
		goto out;
	/* The ROM reads the fuses directly: no lock, the secret is not read. */
	rc = rot_otp_open_fd(path, O_RDONLY, &fd);
	if (rc != 0)
		goto out;
	rc = rot_pread_all(fd, hdr, sizeof(hdr), 0);
	if (rc == 0)
		rc = rot_otp_check_header(hdr);
	if (rc == 0)
		rc = rot_pread_all(fd, buf, sizeof(buf), ROT_OTP_OFF_ROOT_KEY_HASH);
	if (rc != 0)
		goto out;
	rc = SPH_ERR_NOT_FOUND;
	if (rot_all_zero(buf, sizeof(buf)))
		goto out;
	memcpy(out, buf, ROT_DIGEST_LEN);
	rc = 0;
out:
	if (fd >= 0)
		close(fd);
	return rc;
}
