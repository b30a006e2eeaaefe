/*
 * image files: bounded reads, and writes that either land completely or not
 * at all (temporary file in the same directory, fsync, then rename or link).
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/common.h"
#include "image_internal.h"

int img_read_file(const char *path, size_t max, uint8_t **buf, size_t *len)
{
	struct stat st;
	uint8_t *b = NULL;
	size_t n = 0;
	int fd = -1, rc = SPH_ERR_INVALID_ARG;

	if (buf)
		*buf = NULL;
	if (len)
		*len = 0;
	if (!path || !buf || !len || max > SIZE_MAX - 2)
		goto out;
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0) {
		rc = errno == ENOENT ? SPH_ERR_NOT_FOUND : SPH_ERR_IO;
		goto out;
	}
	rc = SPH_ERR_IO;
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode))
		goto out;
	rc = SPH_ERR_TOO_LARGE;
	if (st.st_size < 0 || (uint64_t)st.st_size > max)
		goto out;
	rc = SPH_ERR_NOMEM;
	/* Room for one byte more than allowed, to see a file that grew, and a NUL. */
	b = malloc((size_t)st.st_size + 2);
	if (!b)
		goto out;
	for (;;) {
		ssize_t r = read(fd, b + n, (size_t)st.st_size + 1 - n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			rc = SPH_ERR_IO;
			goto out;
		}
		if (r == 0)
			break;
		n += (size_t)r;
		if (n > (size_t)st.st_size) {
			rc = SPH_ERR_IO; /* changed while we read it */
			goto out;
		}
	}
	b[n] = 0;
	*buf = b;
	*len = n;
	b = NULL; /* transferred */
	rc = 0;
out:
	if (fd >= 0)
		close(fd);
	free(b);
	return rc;
}

static int write_all(int fd, const uint8_t *data, size_t len)
{
	while (len > 0) {
		ssize_t w = write(fd, data, len);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return SPH_ERR_IO;
		data += w;
		len -= (size_t)w;
	}
	return 0;
}

int img_write_file(const char *path, const uint8_t *data, size_t len, mode_t mode, bool replace)
{
	char tmp[PATH_MAX];
	int fd = -1, n, rc = SPH_ERR_INVALID_ARG;
	bool created = false;

	if (!path || !*path || (!data && len > 0))
		goto out;
	n = snprintf(tmp, sizeof(tmp), "%s.tmp.XXXXXX", path);
	if (n < 0 || (size_t)n >= sizeof(tmp))
		goto out;
	rc = SPH_ERR_STATE;
	if (!replace && access(path, F_OK) == 0)
		goto out;
	rc = SPH_ERR_IO;
	fd = mkostemp(tmp, O_CLOEXEC); /* mode 0600 until told otherwise */
	if (fd < 0)
		goto out;
	created = true;
	if (fchmod(fd, mode) != 0)
		goto out;
	if ((rc = write_all(fd, data, len)))
		goto out;
	rc = SPH_ERR_IO;
	if (fsync(fd) != 0)
		goto out;
	n = close(fd);
	fd = -1;
	if (n != 0)
		goto out;
	if (replace) {
		if (rename(tmp, path) != 0)
			goto out;
		created = false;
	} else {
		/* link(2) never replaces: exactly one writer wins a race for path. */
		if (link(tmp, path) != 0) {
			rc = errno == EEXIST ? SPH_ERR_STATE : SPH_ERR_IO;
			goto out;
		}
	}
	rc = 0;
out:
	if (fd >= 0)
		close(fd);
	if (created)
		unlink(tmp);
	return rc;
}
