/*
 * fleet: emulated devices checking in against sphere-ss — the load generator
 * behind `sphere-fleet` and bench/bench_checkin (issue 6, docs/fleet.md).
 *
 * A fleet service is an embedded sphere-ss in a directory of its own: a
 * fresh platform root and signer it trusts, the three OS components (BL,
 * SECMON, OS 1.0.0) signed with them, uploaded and published in the Retail
 * feed. A fleet device is one of two kinds:
 *   - FLEET_BOOTED: a whole virtual device (boot_provision: OTP, NOR flash,
 *     the packages installed through the security monitor, boot_run measures
 *     them into its RoT): what a real device is, about 1.6 MB of flash file
 *     and a few ms to make;
 *   - FLEET_LIGHT: its own OTP file (its own fresh device secret, so its own
 *     identity and attestation keys) and an in-process RoT into which the
 *     measurements a boot of those packages makes are extended directly: the
 *     same evidence, without flash, for fleets of thousands.
 * Either way its TLS key is its RoT identity key (agent_rot_key) with a
 * self-signed certificate (agent_device_cert), and a check-in is the whole
 * protocol over a new TLS connection: nonce, rot_attest, check-in, the
 * certificate in the reply parsed.
 *
 * Functions return 0 or a negative SPH_ERR_* unless their comment says
 * otherwise; outputs are zeroed on entry.
 */
#ifndef SPHERE_FLEET_H
#define SPHERE_FLEET_H

#include <stddef.h>
#include <stdint.h>

#include <curl/curl.h>
#include <openssl/evp.h>
#include <openssl/x509.h>

#include "boot/boot.h"
#include "rot/rot.h"
#include "service/service.h"

#define FLEET_PATH_MAX 512

struct fleet_service {
	char dir[FLEET_PATH_MAX];     /* the service's data directory */
	char ca[FLEET_PATH_MAX + 32]; /* its TLS certificate, to trust */
	uint16_t port;
	struct ss_config cfg;
	struct ss_init_result init; /* the tenant, admin and operator tokens */
	struct ss_service *svc;
	EVP_PKEY *root_key, *signer_key;
	X509 *root_cert, *signer_cert;
	uint8_t root_hash[32];
	uint8_t *pkg[BOOT_COMPONENTS]; /* BL, SECMON, OS 1.0.0 */
	size_t pkg_len[BOOT_COMPONENTS];
	struct eat_component meas[BOOT_COMPONENTS]; /* what booting them measures */
};

/* Starts a fleet service in dir (which must not exist yet, or be empty) with
 * `workers` worker threads (0: one per core). On failure why says what
 * failed. Free with fleet_service_stop, also after a failure. */
int fleet_service_start(const char *dir, unsigned workers, struct fleet_service *fs, char *why,
                        size_t why_cap);
/* Stops the service and frees everything (the directory stays). Accepts a
 * zeroed or partly started one. */
void fleet_service_stop(struct fleet_service *fs);

enum fleet_kind {
	FLEET_LIGHT = 0,
	FLEET_BOOTED = 1,
};

struct fleet_device {
	char *dir;              /* its directory (malloc'd) */
	struct boot_device *bd; /* FLEET_BOOTED only */
	struct rot *rot;        /* the booted device's, or its own (FLEET_LIGHT) */
	EVP_PKEY *key;          /* agent_rot_key */
	X509 *cert;             /* agent_device_cert */
	char id[ROT_DEVICE_ID_LEN + 1];
	char attest[2 * 64 + 1]; /* its attestation key X || Y, hex */
};

/* Makes device d of kind in dir (created; must not exist) with the fleet's
 * packages. Free with fleet_device_free, also after a failure. */
int fleet_device_make(const struct fleet_service *fs, enum fleet_kind kind, const char *dir,
                      struct fleet_device *d);
void fleet_device_free(struct fleet_device *d);

/* Registers d (the operator's token) and claims it into the fleet's tenant
 * (the admin's) over c, a curl handle the caller keeps (connections are
 * reused). Returns 0, or -1 with why. */
int fleet_device_enrol(const struct fleet_service *fs, CURL *c, const struct fleet_device *d,
                       char *why, size_t why_cap);

enum fleet_op {
	FLEET_CHECKIN = 0,   /* the whole check-in */
	FLEET_HANDSHAKE = 1, /* only the TLS handshake and the nonce request */
};

/* One op of d on a new TLS connection to the fleet's service (no session
 * resumption; key share P-256). A check-in must end up to date with a
 * certificate. Returns 0, or -1 with why. */
int fleet_checkin(const struct fleet_service *fs, struct fleet_device *d, enum fleet_op op,
                  char *why, size_t why_cap);

#endif
