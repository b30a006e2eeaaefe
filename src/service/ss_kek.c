/*
 * ss_kek: the service's key-encryption key (docs/api.md §5): 32 random bytes
 * in <data-dir>/master.key, mode 0600, created by init. It wraps every tenant
 * CA key the database holds, so a copy of the database alone reveals none.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/rand.h>

#include "ss_internal.h"

static int ss_kek_path(const char *data_dir, char *out, size_t cap)
{
	int n = snprintf(out, cap, "%s/master.key", data_dir);
	return n > 0 && (size_t)n < cap ? 0 : SPH_ERR_TOO_LARGE;
}

int ss_kek_create(const char *data_dir)
{
	uint8_t kek[SS_KEK_LEN];
	char path[SS_PATH_MAX];
	int fd, rc = ss_kek_path(data_dir, path, sizeof(path));

	if (rc != 0)
		return rc;
	if (RAND_priv_bytes(kek, sizeof(kek)) != 1)
		return SPH_ERR_RANDOM;
	rc = SPH_ERR_IO;
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd >= 0 && write(fd, kek, sizeof(kek)) == (ssize_t)sizeof(kek) && fsync(fd) == 0)
		rc = 0;
	if (fd >= 0 && close(fd) != 0)
		rc = SPH_ERR_IO;
	OPENSSL_cleanse(kek, sizeof(kek));
	return rc;
}

int ss_kek_load(const char *data_dir, uint8_t kek[SS_KEK_LEN])
{
	char path[SS_PATH_MAX];
	struct stat st;
	uint8_t extra;
	int fd, rc = ss_kek_path(data_dir, path, sizeof(path));

	if (rc != 0)
		return rc;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return errno == ENOENT ? SPH_ERR_NOT_FOUND : SPH_ERR_IO;
	rc = SPH_ERR_PERMISSION;
	/* Only the service may read it: refuse a key others can read. */
	if (fstat(fd, &st) != 0 || (st.st_mode & 077) != 0)
		goto out;
	rc = SPH_ERR_MALFORMED;
	if (read(fd, kek, SS_KEK_LEN) != SS_KEK_LEN || read(fd, &extra, 1) != 0)
		goto out;
	rc = 0;
out:
	close(fd);
	if (rc != 0)
		OPENSSL_cleanse(kek, SS_KEK_LEN);
	return rc;
}
