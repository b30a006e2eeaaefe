/*
 * boot capability: the device side of capability files (docs/formats.md §8):
 * the tenant root in the device directory, installing a verified file, and
 * re-verifying the stored one whenever someone asks what the device may do.
 */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "boot_internal.h"
#include "common/common.h"

#define TENANT_ROOT_MAX 16384 /* bytes of the stored PEM */

/* dir "/" name into out. Returns 0 or SPH_ERR_INVALID_ARG (too long). */
static int join(const char *dir, const char *name, char out[PATH_MAX])
{
	int n = snprintf(out, PATH_MAX, "%s/%s", dir, name);
	return n < 0 || n >= PATH_MAX ? SPH_ERR_INVALID_ARG : 0;
}

int boot_tenant_root_check(X509 *root)
{
	if (!root)
		return SPH_ERR_INVALID_ARG;
	if (X509_check_ca(root) != 1 || X509_self_signed(root, 1) != 1) {
		ERR_clear_error();
		return SPH_ERR_AUTH;
	}
	return img_cert_has_role(root, IMG_ROLE_CAPABILITY) ? 0 : SPH_ERR_PERMISSION;
}

int boot_set_tenant_root(const char *dir, X509 *root)
{
	char path[PATH_MAX];
	BIO *bio = NULL;
	char *data = NULL;
	long n;
	int rc = SPH_ERR_INVALID_ARG;

	if (!dir || !root)
		goto out;
	if ((rc = boot_tenant_root_check(root)))
		goto out;
	if ((rc = join(dir, BOOT_TENANT_ROOT_FILE, path)))
		goto out;
	rc = SPH_ERR_NOMEM;
	if (!(bio = BIO_new(BIO_s_mem())))
		goto out;
	rc = SPH_ERR_CRYPTO;
	if (PEM_write_bio_X509(bio, root) != 1 || (n = BIO_get_mem_data(bio, &data)) <= 0)
		goto out;
	rc = img_write_file(path, (const uint8_t *)data, (size_t)n, 0644, false);
out:
	BIO_free(bio);
	ERR_clear_error();
	return rc;
}

/* Loads the device's tenant root. Returns 0 and *root, SPH_ERR_STATE (none
 * configured) or another status. */
static int load_root(struct boot_device *d, X509 **root)
{
	STACK_OF(X509) *certs = NULL;
	char path[PATH_MAX];
	int rc;

	*root = NULL;
	if ((rc = join(chip_dir(d->chip), BOOT_TENANT_ROOT_FILE, path)))
		goto out;
	rc = img_load_certs(path, &certs);
	if (rc == SPH_ERR_NOT_FOUND)
		rc = SPH_ERR_STATE;
	if (rc)
		goto out;
	rc = SPH_ERR_MALFORMED;
	if (sk_X509_num(certs) != 1)
		goto out;
	if ((rc = boot_tenant_root_check(sk_X509_value(certs, 0))))
		goto out;
	*root = sk_X509_shift(certs); /* transferred */
	rc = 0;
out:
	sk_X509_pop_free(certs, X509_free);
	return rc;
}

/* Verifies buf for this device against its tenant root, now. */
static int verify(struct boot_device *d, const uint8_t *buf, size_t len, struct img_capability *out,
                  char *why, size_t why_cap)
{
	struct img_trust t = {.time_policy = IMG_TIME_NOW};
	uint8_t pub[ROT_PUB_LEN];
	X509 *root = NULL;
	int rc;

	memset(out, 0, sizeof(*out));
	rc = load_root(d, &root);
	if (rc) {
		boot_why(why, why_cap, "%s",
		         rc == SPH_ERR_STATE ? "no tenant root is configured on this device"
		                             : "the stored tenant root is unusable");
		goto out;
	}
	if ((rc = rot_pubkey(d->rot, ROT_KEY_IDENTITY, pub))) {
		boot_why(why, why_cap, "cannot read the device identity");
		goto out;
	}
	t.root_cert = root;
	rc = img_cap_verify(buf, len, &t, pub + 1, out, why, why_cap);
out:
	OPENSSL_cleanse(pub, sizeof(pub));
	X509_free(root);
	return rc;
}

int boot_capability_install(struct boot_device *d, const uint8_t *buf, size_t len,
                            struct img_capability *out, char *why, size_t why_cap)
{
	struct img_capability c;
	char path[PATH_MAX];
	int rc = SPH_ERR_INVALID_ARG;

	memset(&c, 0, sizeof(c));
	if (out)
		memset(out, 0, sizeof(*out));
	boot_why(why, why_cap, "invalid argument");
	if (!d || (!buf && len > 0))
		goto out;
	if ((rc = join(chip_dir(d->chip), BOOT_CAPABILITY_FILE, path)))
		goto out;
	if ((rc = verify(d, buf, len, &c, why, why_cap)))
		goto out;
	rc = img_write_file(path, buf, len, 0644, true);
	if (rc) {
		boot_why(why, why_cap, "cannot store the capability file");
		goto out;
	}
	if (out)
		*out = c;
	rc = 0;
out:
	return rc;
}

int boot_capability_get(struct boot_device *d, struct img_capability *out, char *why,
                        size_t why_cap)
{
	struct img_capability c;
	char path[PATH_MAX];
	uint8_t *buf = NULL;
	size_t len = 0;
	int rc = SPH_ERR_INVALID_ARG;

	memset(&c, 0, sizeof(c));
	if (out)
		memset(out, 0, sizeof(*out));
	boot_why(why, why_cap, "invalid argument");
	if (!d || !out)
		goto out;
	if ((rc = join(chip_dir(d->chip), BOOT_CAPABILITY_FILE, path)))
		goto out;
	rc = img_read_file(path, IMG_CAP_MAX_FILE, &buf, &len);
	if (rc) {
		boot_why(why, why_cap, "%s",
		         rc == SPH_ERR_NOT_FOUND ? "no capability file installed"
		                                 : "cannot read the capability file");
		goto out;
	}
	if ((rc = verify(d, buf, len, &c, why, why_cap)))
		goto out;
	*out = c;
	rc = 0;
out:
	free(buf);
	return rc;
}

int boot_capabilities(struct boot_device *d, uint32_t *mask)
{
	struct img_capability c;
	int rc = SPH_ERR_INVALID_ARG;

	if (mask)
		*mask = 0;
	if (!d || !mask)
		goto out;
	rc = boot_capability_get(d, &c, NULL, 0);
	if (rc == SPH_ERR_NOT_FOUND) {
		rc = 0; /* no file: a production device */
		goto out;
	}
	if (rc)
		goto out;
	*mask = c.caps;
	rc = 0;
out:
	return rc;
}
