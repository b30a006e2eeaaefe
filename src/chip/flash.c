/*
 * chip: NOR flash over a file (docs/formats.md §6.2).
 *
 * The image file is the flash, byte for byte: offset n in the file is flash
 * address n. Beside it, "<image>.meta" holds the geometry, lifetime totals and
 * one record per block (erase count, lost flag). Every accepted program or
 * erase goes to the image with pwrite, then its metadata record; nothing is
 * cached, so a reader in another process after close sees what we wrote.
 * fdatasync happens on chip_flash_sync, on close (if anything was written),
 * and after every operation in sync-every-op mode.
 *
 * Power cuts (faults.c arms them): the accepted operation whose number equals
 * f->cut_at writes only a prefix, returns SPH_ERR_POWER_LOSS, and every later
 * flash operation fails the same way until chip_flash_power_cycle or reopen.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/common.h"
#include "chip_internal.h"

int chip_pread_all(int fd, void *buf, size_t len, uint64_t off)
{
	size_t done = 0;

	while (done < len) {
		ssize_t n = pread(fd, (uint8_t *)buf + done, len - done, (off_t)(off + done));
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return SPH_ERR_IO;
		done += (size_t)n;
	}
	return 0;
}

int chip_pwrite_all(int fd, const void *buf, size_t len, uint64_t off)
{
	size_t done = 0;

	while (done < len) {
		ssize_t n =
		        pwrite(fd, (const uint8_t *)buf + done, len - done, (off_t)(off + done));
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return SPH_ERR_IO;
		done += (size_t)n;
	}
	return 0;
}

static bool chip_geometry_valid(const struct chip_flash_geometry *g)
{
	uint32_t bs = g->block_size;

	if (bs < CHIP_FLASH_MIN_BLOCK_SIZE || bs > CHIP_FLASH_MAX_BLOCK_SIZE ||
	    (bs & (bs - 1)) != 0)
		return false;
	if (g->block_count == 0 || g->block_count > CHIP_FLASH_MAX_BLOCKS)
		return false;
	return (uint64_t)bs * g->block_count <= CHIP_FLASH_MAX_SIZE;
}

/* True when [off, off+len) lies inside the flash (overflow-safe). */
static bool chip_in_bounds(const struct chip_flash *f, uint64_t off, uint64_t len)
{
	return off <= f->size && len <= f->size - off;
}

/* True when [off, off+len), len > 0 and in bounds, touches a lost block. */
static bool chip_touches_lost(const struct chip_flash *f, uint64_t off, uint64_t len)
{
	uint64_t first = off / f->geo.block_size, last = (off + len - 1) / f->geo.block_size;

	for (uint64_t b = first; b <= last; b++) {
		if (f->flags[b] & CHIP_META_FLAG_LOST)
			return true;
	}
	return false;
}

/* Checks a read or program of len bytes at off, under the lock: the flash is
 * powered (else SPH_ERR_POWER_LOSS), the range in bounds (SPH_ERR_INVALID_ARG)
 * and, unless len is 0, clear of lost blocks (SPH_ERR_IO: uncorrectable, the
 * controller returns an error, never the bytes). Returns 0 or that status. */
static int chip_range_check(const struct chip_flash *f, uint64_t off, uint64_t len)
{
	if (f->power_lost)
		return SPH_ERR_POWER_LOSS;
	if (!chip_in_bounds(f, off, len))
		return SPH_ERR_INVALID_ARG;
	if (len != 0 && chip_touches_lost(f, off, len))
		return SPH_ERR_IO;
	return 0;
}

static int chip_fsync_fd(int fd)
{
	while (fdatasync(fd) != 0) {
		if (errno != EINTR)
			return SPH_ERR_IO;
	}
	return 0;
}

/* Rewrites the lifetime totals in the metadata header. */
static int chip_meta_write_totals(struct chip_flash *f)
{
	uint8_t b[16];
	int rc;

	chip_put_le64(b, f->total_programs);
	chip_put_le64(b + 8, f->total_erases);
	rc = chip_pwrite_all(f->mfd, b, sizeof(b), CHIP_META_OFF_PROGRAMS);
	if (rc == 0)
		f->totals_dirty = false;
	return rc;
}

/* Writes pending totals, then fdatasyncs the image and, when a record
 * changed, the metadata (§6.2 durability). */
static int chip_sync_locked(struct chip_flash *f)
{
	int rc = 0;

	if (f->totals_dirty)
		rc = chip_meta_write_totals(f);
	if (rc == 0 && f->dirty)
		rc = chip_fsync_fd(f->fd);
	if (rc == 0)
		f->dirty = false;
	if (rc == 0 && f->mdirty)
		rc = chip_fsync_fd(f->mfd);
	if (rc == 0)
		f->mdirty = false;
	return rc;
}

/* Rewrites one block's metadata record. */
static int chip_meta_write_rec(struct chip_flash *f, uint32_t block)
{
	uint8_t b[CHIP_META_REC_LEN];

	chip_put_le32(b, f->erase_counts[block]);
	chip_put_le32(b + 4, f->flags[block]);
	f->mdirty = true;
	return chip_pwrite_all(f->mfd, b, sizeof(b),
	                       CHIP_META_HDR_LEN + (uint64_t)block * CHIP_META_REC_LEN);
}

int chip_flash_xor_locked(struct chip_flash *f, uint64_t off, uint8_t mask)
{
	uint8_t b;
	int rc;

	if (off >= f->size)
		return SPH_ERR_INVALID_ARG;
	rc = chip_pread_all(f->fd, &b, 1, off);
	if (rc != 0)
		return rc;
	b ^= mask;
	f->erased[off / f->geo.block_size] = 0;
	rc = chip_pwrite_all(f->fd, &b, 1, off);
	if (rc == 0)
		f->dirty = true;
	return rc;
}

int chip_flash_mark_lost_locked(struct chip_flash *f, uint32_t block)
{
	int rc;

	if (block >= f->geo.block_count)
		return SPH_ERR_INVALID_ARG;
	f->flags[block] |= CHIP_META_FLAG_LOST;
	rc = chip_meta_write_rec(f, block);
	if (rc == 0)
		f->dirty = true;
	return rc;
}

/* Allocates "<path><suffix>". */
static char *chip_path_with(const char *path, const char *suffix)
{
	size_t a = strlen(path), b = strlen(suffix);
	char *p = malloc(a + b + 1);

	if (!p)
		return NULL;
	memcpy(p, path, a);
	memcpy(p + a, suffix, b + 1);
	return p;
}

static int chip_fsync_parent(const char *path)
{
	char *copy = chip_path_with(path, "");
	char *slash;
	int dfd = -1, rc = SPH_ERR_NOMEM;

	if (!copy)
		goto out;
	slash = strrchr(copy, '/');
	if (!slash)
		memcpy(copy, ".", 2);
	else if (slash == copy)
		slash[1] = '\0';
	else
		*slash = '\0';
	rc = SPH_ERR_IO;
	dfd = open(copy, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0)
		goto out;
	if (fsync(dfd) != 0)
		goto out;
	rc = 0;
out:
	if (dfd >= 0)
		close(dfd);
	free(copy);
	return rc;
}

/* Writes a fresh metadata file and an erased image under temporary names, then
 * renames them into place: metadata first, image last, so an image never
 * exists without its metadata (a stale metadata file without an image is
 * overwritten by the next creation). */
static int chip_flash_create(const char *path, const char *meta_path,
                             const struct chip_flash_geometry *g)
{
	char *tmp_img = NULL, *tmp_meta = NULL;
	uint8_t *buf = NULL;
	uint8_t hdr[CHIP_META_HDR_LEN];
	int fd = -1, rc = SPH_ERR_NOMEM;

	tmp_img = chip_path_with(path, ".new");
	tmp_meta = chip_path_with(meta_path, ".new");
	/* A block of 0xFF for the image; zeros for the metadata records. */
	buf = malloc(g->block_size);
	if (!tmp_img || !tmp_meta || !buf)
		goto out;

	rc = SPH_ERR_IO;
	fd = open(tmp_meta, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0)
		goto out;
	memset(hdr, 0, sizeof(hdr));
	memcpy(hdr + CHIP_META_OFF_MAGIC, CHIP_META_MAGIC, CHIP_META_MAGIC_LEN);
	chip_put_le32(hdr + CHIP_META_OFF_VERSION, CHIP_META_VERSION);
	chip_put_le32(hdr + CHIP_META_OFF_BLOCK_SIZE, g->block_size);
	chip_put_le32(hdr + CHIP_META_OFF_BLOCK_COUNT, g->block_count);
	if (chip_pwrite_all(fd, hdr, sizeof(hdr), 0) != 0)
		goto out;
	memset(buf, 0, g->block_size);
	for (uint64_t off = 0, total = (uint64_t)g->block_count * CHIP_META_REC_LEN; off < total;) {
		size_t n = total - off < g->block_size ? (size_t)(total - off) : g->block_size;
		if (chip_pwrite_all(fd, buf, n, CHIP_META_HDR_LEN + off) != 0)
			goto out;
		off += n;
	}
	if (chip_fsync_fd(fd) != 0 || close(fd) != 0) {
		fd = -1;
		goto out;
	}
	fd = -1;
	if (rename(tmp_meta, meta_path) != 0)
		goto out;

	fd = open(tmp_img, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0)
		goto out;
	memset(buf, 0xff, g->block_size);
	for (uint32_t b = 0; b < g->block_count; b++) {
		if (chip_pwrite_all(fd, buf, g->block_size, (uint64_t)b * g->block_size) != 0)
			goto out;
	}
	if (chip_fsync_fd(fd) != 0 || close(fd) != 0) {
		fd = -1;
		goto out;
	}
	fd = -1;
	if (rename(tmp_img, path) != 0)
		goto out;
	rc = chip_fsync_parent(path);
out:
	if (fd >= 0)
		close(fd);
	if (rc != 0 && tmp_img) {
		unlink(tmp_img);
		if (tmp_meta)
			unlink(tmp_meta);
	}
	free(buf);
	free(tmp_img);
	free(tmp_meta);
	return rc;
}

/* Reads and checks the metadata of an opened image (§6.2). */
static int chip_flash_load_meta(struct chip_flash *f)
{
	uint8_t hdr[CHIP_META_HDR_LEN];
	uint8_t *recs = NULL;
	struct stat st;
	uint64_t rec_bytes;
	int rc = SPH_ERR_IO;

	if (fstat(f->mfd, &st) != 0)
		goto out;
	rc = SPH_ERR_MALFORMED;
	if (!S_ISREG(st.st_mode) || st.st_size < (off_t)CHIP_META_HDR_LEN)
		goto out;
	rc = chip_pread_all(f->mfd, hdr, sizeof(hdr), 0);
	if (rc != 0)
		goto out;
	rc = SPH_ERR_MALFORMED;
	if (memcmp(hdr + CHIP_META_OFF_MAGIC, CHIP_META_MAGIC, CHIP_META_MAGIC_LEN) != 0)
		goto out;
	rc = SPH_ERR_UNSUPPORTED;
	if (chip_get_le32(hdr + CHIP_META_OFF_VERSION) != CHIP_META_VERSION)
		goto out;
	rc = SPH_ERR_MALFORMED;
	f->geo.block_size = chip_get_le32(hdr + CHIP_META_OFF_BLOCK_SIZE);
	f->geo.block_count = chip_get_le32(hdr + CHIP_META_OFF_BLOCK_COUNT);
	if (!chip_geometry_valid(&f->geo) || chip_get_le32(hdr + CHIP_META_OFF_RESERVED) != 0)
		goto out;
	f->size = (uint64_t)f->geo.block_size * f->geo.block_count;
	rec_bytes = (uint64_t)f->geo.block_count * CHIP_META_REC_LEN;
	if ((uint64_t)st.st_size != CHIP_META_HDR_LEN + rec_bytes)
		goto out;
	f->total_programs = chip_get_le64(hdr + CHIP_META_OFF_PROGRAMS);
	f->total_erases = chip_get_le64(hdr + CHIP_META_OFF_ERASES);

	rc = SPH_ERR_NOMEM;
	recs = malloc(rec_bytes);
	f->erase_counts = calloc(f->geo.block_count, sizeof(*f->erase_counts));
	f->flags = calloc(f->geo.block_count, sizeof(*f->flags));
	f->erased = calloc(f->geo.block_count, 1);
	f->scratch_len =
	        f->geo.block_size > CHIP_SCRATCH_MIN ? f->geo.block_size : CHIP_SCRATCH_MIN;
	f->scratch = malloc(f->scratch_len);
	if (!recs || !f->erase_counts || !f->flags || !f->erased || !f->scratch)
		goto out;
	rc = chip_pread_all(f->mfd, recs, rec_bytes, CHIP_META_HDR_LEN);
	if (rc != 0)
		goto out;
	rc = SPH_ERR_MALFORMED;
	for (uint32_t b = 0; b < f->geo.block_count; b++) {
		f->erase_counts[b] = chip_get_le32(recs + (size_t)b * CHIP_META_REC_LEN);
		f->flags[b] = chip_get_le32(recs + (size_t)b * CHIP_META_REC_LEN + 4);
		if (f->flags[b] & ~CHIP_META_FLAGS_KNOWN)
			goto out;
	}

	rc = SPH_ERR_IO;
	if (fstat(f->fd, &st) != 0)
		goto out;
	rc = SPH_ERR_MALFORMED;
	if (!S_ISREG(st.st_mode) || (uint64_t)st.st_size != f->size)
		goto out;
	rc = 0;
out:
	free(recs);
	return rc;
}

int chip_flash_open(const char *path, const struct chip_flash_geometry *g, struct chip_flash **out)
{
	struct chip_flash *f = NULL;
	char *meta_path = NULL;
	bool mu_init = false;
	int rc = SPH_ERR_INVALID_ARG;

	if (out)
		*out = NULL;
	if (!path || !*path || !out || (g && !chip_geometry_valid(g)))
		goto out;
	rc = SPH_ERR_NOMEM;
	meta_path = chip_path_with(path, CHIP_FLASH_META_SUFFIX);
	f = calloc(1, sizeof(*f));
	if (!meta_path || !f)
		goto out;
	f->fd = f->mfd = -1;
	rc = SPH_ERR_IO;
	if (pthread_mutex_init(&f->mu, NULL) != 0)
		goto out;
	mu_init = true;

	f->fd = open(path, O_RDWR | O_CLOEXEC | O_NOFOLLOW);
	if (f->fd < 0 && errno == ENOENT && g) {
		rc = chip_flash_create(path, meta_path, g);
		if (rc != 0)
			goto out;
		f->fd = open(path, O_RDWR | O_CLOEXEC | O_NOFOLLOW);
	}
	if (f->fd < 0) {
		rc = errno == ENOENT ? SPH_ERR_NOT_FOUND : SPH_ERR_IO;
		goto out;
	}
	/* One chip, one owner: a second opener would tear our view of the medium. */
	while (flock(f->fd, LOCK_EX | LOCK_NB) != 0) {
		if (errno == EINTR)
			continue;
		rc = errno == EWOULDBLOCK ? SPH_ERR_STATE : SPH_ERR_IO;
		goto out;
	}
	f->mfd = open(meta_path, O_RDWR | O_CLOEXEC | O_NOFOLLOW);
	if (f->mfd < 0) {
		rc = errno == ENOENT ? SPH_ERR_MALFORMED : SPH_ERR_IO;
		goto out;
	}
	rc = chip_flash_load_meta(f);
	if (rc != 0)
		goto out;
	rc = SPH_ERR_STATE;
	if (g && (g->block_size != f->geo.block_size || g->block_count != f->geo.block_count))
		goto out;
	*out = f;
	f = NULL; /* transferred */
	rc = 0;
out:
	if (f) {
		if (f->fd >= 0)
			close(f->fd);
		if (f->mfd >= 0)
			close(f->mfd);
		if (mu_init)
			pthread_mutex_destroy(&f->mu);
		free(f->erase_counts);
		free(f->flags);
		free(f->erased);
		free(f->scratch);
		free(f);
	}
	free(meta_path);
	return rc;
}

void chip_flash_close(struct chip_flash *f)
{
	int rc;

	if (!f)
		return;
	pthread_mutex_lock(&f->mu);
	rc = chip_sync_locked(f);
	pthread_mutex_unlock(&f->mu);
	if (rc != 0)
		sph_log(SPH_LOG_WARN, "chip", "flash_sync_failed", "status=%d", rc);
	close(f->fd);
	close(f->mfd);
	pthread_mutex_destroy(&f->mu);
	free(f->erase_counts);
	free(f->flags);
	free(f->erased);
	free(f->scratch);
	free(f);
}

int chip_flash_geometry(const struct chip_flash *f, struct chip_flash_geometry *g)
{
	if (!f || !g)
		return SPH_ERR_INVALID_ARG;
	*g = f->geo; /* immutable after open */
	return 0;
}

uint64_t chip_flash_size(const struct chip_flash *f)
{
	return f ? f->size : 0;
}

int chip_flash_prefetch(struct chip_flash *f, uint64_t off, size_t len)
{
	int rc = SPH_ERR_INVALID_ARG;

	if (!f)
		return rc;
	pthread_mutex_lock(&f->mu);
	rc = f->power_lost ? SPH_ERR_POWER_LOSS : 0;
	if (rc == 0 && (off > f->size || len > f->size - off))
		rc = SPH_ERR_INVALID_ARG;
	if (rc == 0 && len)
		(void)posix_fadvise(f->fd, (off_t)off, (off_t)len, POSIX_FADV_WILLNEED);
	pthread_mutex_unlock(&f->mu);
	return rc;
}

int chip_flash_read(struct chip_flash *f, uint64_t off, void *buf, size_t len)
{
	int rc = SPH_ERR_INVALID_ARG;

	if (!f || (!buf && len))
		return rc;
	pthread_mutex_lock(&f->mu);
	rc = chip_range_check(f, off, len);
	if (rc != 0 || len == 0)
		goto out;
	rc = chip_pread_all(f->fd, buf, len, off);
	if (rc != 0)
		goto out;
	f->reads++;
out:
	pthread_mutex_unlock(&f->mu);
	if (rc != 0 && buf && len)
		memset(buf, 0, len);
	return rc;
}

/* After a program/erase reached the file: metadata, optional sync, cut latch. */
static int chip_after_write(struct chip_flash *f, bool torn, int meta_rc)
{
	int rc = meta_rc;

	f->dirty = true;
	if (rc == 0 && f->sync_every_op)
		rc = chip_sync_locked(f);
	if (torn) {
		f->power_lost = true;
		f->cut_at = 0; /* spent */
		sph_log(SPH_LOG_INFO, "chip", "power_cut", "op=%llu kind=%s landed=%llu len=%llu",
		        (unsigned long long)f->last_cut.op,
		        f->last_cut.kind == CHIP_OP_PROGRAM ? "program" : "erase",
		        (unsigned long long)f->last_cut.landed,
		        (unsigned long long)f->last_cut.len);
		return SPH_ERR_POWER_LOSS;
	}
	return rc;
}

/* Numbers the accepted operation; if it is the armed one, decides how much of
 * len lands and records the cut. Returns the bytes to write. */
static uint64_t chip_begin_op(struct chip_flash *f, enum chip_flash_op kind, uint64_t off,
                              uint64_t len, bool *torn)
{
	uint64_t op = ++f->ops;

	*torn = f->cut_at != 0 && op == f->cut_at;
	if (!*torn)
		return len;
	f->has_cut = true;
	f->last_cut.op = op;
	f->last_cut.kind = kind;
	f->last_cut.offset = off;
	f->last_cut.len = len;
	f->last_cut.landed = chip_faults_torn_len(f->cut_seed, op, len);
	return f->last_cut.landed;
}

/* Would programming want over have set any bit (0 -> 1)? No early exit, so
 * the compiler vectorises it. */
static bool chip_sets_a_bit(const uint8_t *want, const uint8_t *have, size_t n)
{
	uint64_t acc = 0;
	size_t i = 0;

	for (; i + 8 <= n; i += 8) {
		uint64_t w, h;
		memcpy(&w, want + i, 8);
		memcpy(&h, have + i, 8);
		acc |= w & ~h;
	}
	for (; i < n; i++)
		acc |= (uint64_t)(want[i] & (uint8_t)~have[i]);
	return acc != 0;
}

int chip_flash_program(struct chip_flash *f, uint64_t off, const void *data, size_t len)
{
	const uint8_t *src = data;
	uint64_t n;
	bool torn;
	int rc = SPH_ERR_INVALID_ARG;

	if (!f || (!data && len))
		return rc;
	pthread_mutex_lock(&f->mu);
	rc = chip_range_check(f, off, len);
	if (rc != 0 || len == 0)
		goto out;
	/* NOR can only clear bits: check the whole range before writing any of it
	 * (blocks known erased need no read: every bit is still 1). */
	for (size_t done = 0; done < len;) {
		uint64_t at = off + done;
		size_t chunk = len - done < f->scratch_len ? len - done : f->scratch_len;
		size_t in_block = f->geo.block_size - (size_t)(at % f->geo.block_size);
		if (f->erased[at / f->geo.block_size]) {
			done += chunk < in_block ? chunk : in_block;
			continue;
		}
		rc = chip_pread_all(f->fd, f->scratch, chunk, at);
		if (rc != 0)
			goto out;
		rc = SPH_ERR_STATE;
		if (chip_sets_a_bit(src + done, f->scratch, chunk))
			goto out;
		done += chunk;
	}
	for (uint64_t b = off / f->geo.block_size; b <= (off + len - 1) / f->geo.block_size; b++)
		f->erased[b] = 0;

	n = chip_begin_op(f, CHIP_OP_PROGRAM, off, len, &torn);
	rc = n ? chip_pwrite_all(f->fd, src, (size_t)n, off) : 0;
	/* A large program starts its way to the disk now (as a real program is
	 * done when it returns), so a later sync has less left to wait for. */
	if (rc == 0 && n >= CHIP_EARLY_WRITEBACK)
		(void)sync_file_range(f->fd, (off_t)off, (off_t)n, SYNC_FILE_RANGE_WRITE);
	if (rc != 0 && !torn)
		goto out;
	f->total_programs++;
	f->totals_dirty = true; /* written at the next sync (a statistic) */
	rc = chip_after_write(f, torn, rc);
out:
	pthread_mutex_unlock(&f->mu);
	return rc;
}

int chip_flash_erase(struct chip_flash *f, uint32_t block)
{
	uint64_t off, n;
	bool torn;
	int rc = SPH_ERR_INVALID_ARG;

	if (!f)
		return rc;
	pthread_mutex_lock(&f->mu);
	rc = SPH_ERR_POWER_LOSS;
	if (f->power_lost)
		goto out;
	rc = SPH_ERR_INVALID_ARG;
	if (block >= f->geo.block_count)
		goto out;
	off = (uint64_t)block * f->geo.block_size;
	n = chip_begin_op(f, CHIP_OP_ERASE, off, f->geo.block_size, &torn);
	memset(f->scratch, 0xff, f->geo.block_size);
	rc = n ? chip_pwrite_all(f->fd, f->scratch, (size_t)n, off) : 0;
	if (rc != 0 && !torn)
		goto out;
	/* A torn erase still stressed the cells: it counts as a cycle. It does not
	 * repair a lost block; only a complete erase does. */
	if (f->erase_counts[block] != UINT32_MAX)
		f->erase_counts[block]++;
	if (!torn && rc == 0)
		f->flags[block] &= ~CHIP_META_FLAG_LOST;
	f->erased[block] = !torn && rc == 0;
	f->total_erases++;
	if (rc == 0)
		rc = chip_meta_write_rec(f, block);
	if (rc == 0)
		rc = chip_meta_write_totals(f);
	rc = chip_after_write(f, torn, rc);
out:
	pthread_mutex_unlock(&f->mu);
	return rc;
}

int chip_flash_sync(struct chip_flash *f)
{
	int rc;

	if (!f)
		return SPH_ERR_INVALID_ARG;
	pthread_mutex_lock(&f->mu);
	rc = f->power_lost ? SPH_ERR_POWER_LOSS : chip_sync_locked(f);
	pthread_mutex_unlock(&f->mu);
	return rc;
}

void chip_flash_set_sync_every_op(struct chip_flash *f, bool on)
{
	if (!f)
		return;
	pthread_mutex_lock(&f->mu);
	f->sync_every_op = on;
	pthread_mutex_unlock(&f->mu);
}

int chip_flash_erase_count(struct chip_flash *f, uint32_t block, uint32_t *n)
{
	int rc = SPH_ERR_INVALID_ARG;

	if (n)
		*n = 0;
	if (!f || !n)
		return rc;
	pthread_mutex_lock(&f->mu);
	if (block < f->geo.block_count) {
		*n = f->erase_counts[block];
		rc = 0;
	}
	pthread_mutex_unlock(&f->mu);
	return rc;
}

int chip_flash_stats(struct chip_flash *f, struct chip_flash_stats *st)
{
	uint64_t sum = 0;

	if (st)
		memset(st, 0, sizeof(*st));
	if (!f || !st)
		return SPH_ERR_INVALID_ARG;
	pthread_mutex_lock(&f->mu);
	st->programs = f->total_programs;
	st->erases = f->total_erases;
	st->ops = f->ops;
	st->reads = f->reads;
	st->erase_min = UINT32_MAX;
	for (uint32_t b = 0; b < f->geo.block_count; b++) {
		uint32_t c = f->erase_counts[b];
		if (c < st->erase_min)
			st->erase_min = c;
		if (c > st->erase_max)
			st->erase_max = c;
		sum += c;
	}
	st->erase_mean = (double)sum / f->geo.block_count;
	pthread_mutex_unlock(&f->mu);
	return 0;
}

uint64_t chip_flash_ops(struct chip_flash *f)
{
	uint64_t n;

	if (!f)
		return 0;
	pthread_mutex_lock(&f->mu);
	n = f->ops;
	pthread_mutex_unlock(&f->mu);
	return n;
}

bool chip_flash_power_lost(struct chip_flash *f)
{
	bool lost;

	if (!f)
		return false;
	pthread_mutex_lock(&f->mu);
	lost = f->power_lost;
	pthread_mutex_unlock(&f->mu);
	return lost;
}

void chip_flash_power_cycle(struct chip_flash *f)
{
	if (!f)
		return;
	pthread_mutex_lock(&f->mu);
	f->power_lost = false;
	pthread_mutex_unlock(&f->mu);
}
