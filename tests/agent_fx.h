/*
 * The agent tests' world (tests/test_agent_{time,daemon,local}.c): a REAL
 * security service (ss_fixture's sphere-ss in this process, SQLite, tenant
 * "acme") that trusts a platform root made here, OS 1.0.0 published in the
 * Retail feed, a product and a device group; and REAL devices (boot_provision,
 * packages signed by that platform root, boot_run measuring them) that are
 * registered, claimed and in the group.
 */
#ifndef SPHERE_AGENT_FX_H
#define SPHERE_AGENT_FX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <openssl/evp.h>
#include <openssl/x509.h>

#include "agent/agent.h"
#include "boot/boot.h"

struct afx_dev {
	char *base, *dir;
	struct boot_device *bd;
	char id[ROT_DEVICE_ID_LEN + 1];
};

struct afx {
	EVP_PKEY *proot_key, *psigner_key;
	X509 *proot, *psigner;
	uint8_t root_hash[32];
	char group[64];
	char url[64];
	X509 *image_root; /* the tenant's image root (GET image-root) */
};
extern struct afx ax;

/* cmocka group setup / teardown. */
int afx_setup(void **state);
int afx_teardown(void **state);

/* Component comp at "<ver>.0.0", security version svn, signed by the platform;
 * malloc'd (caller frees). */
uint8_t *afx_pack(unsigned comp, unsigned ver, uint32_t svn, size_t payload_len, size_t *len);
/* Uploads an OS package and releases it in the Retail feed; id (64) receives its id. */
void afx_upload_os(const uint8_t *pkg, size_t len, char *id);
/* A provisioned device running OS 1.0.0, booted once, then closed and
 * reopened (the daemon boots it itself); enrol: registered, claimed and in
 * the group; troot (may be NULL): its tenant image root. */
void afx_dev_make(struct afx_dev *d, bool enrol, X509 *troot);
void afx_dev_free(struct afx_dev *d);
/* Closes the device handle (for another process), and reopens it. */
void afx_dev_close(struct afx_dev *d);
void afx_dev_open(struct afx_dev *d);
/* The agent configuration for the fixture's service: quick retries. */
struct agent_config afx_config(void);
/* Stops the service; starts it again on the same port and data directory. */
void afx_service_stop(void);
void afx_service_restart(void);
/* Issues an appDevelopment capability file for d and installs it. */
void afx_dev_capability(struct afx_dev *d);

#endif
