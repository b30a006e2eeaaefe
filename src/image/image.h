/*
 * image: Sphere's signed image packages (docs/formats.md §5).
 *
 *   package = header (16) || COSE_Sign1 (ES256, x5chain) || payload
 *
 * The COSE_Sign1's payload is a deterministic CBOR manifest that names the
 * component (id, type, name, version, security version, target, debug flag,
 * app manifest for applications) and pins the payload by size and SHA-256.
 * The signer's certificate chain rides in the protected header (x5chain), so
 * a verifier checks signature -> certificate path to a trusted root (given as
 * a certificate, or as the SHA-256 of its SubjectPublicKeyInfo fused in OTP)
 * -> the signer's role (an X.509 extended key usage) may sign this type of
 * component.
 *
 * Also here: the role OIDs, certificate and key generation for the key
 * hierarchy (platform root -> OS signer; tenant root -> production and
 * developer signers), and the small file helpers the CLI uses.
 */
#ifndef SPHERE_IMAGE_H
#define SPHERE_IMAGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

#include <openssl/evp.h>
#include <openssl/x509.h>

#include "cose/cose.h"

/* ---- wire format ------------------------------------------------------------ */

#define IMG_MAGIC            "SPHPKG01"
#define IMG_MAGIC_LEN        8
#define IMG_HEADER_LEN       16
#define IMG_MAX_COSE         65536u
#define IMG_MAX_PAYLOAD      (64u * 1024u * 1024u)
#define IMG_MAX_PACKAGE      ((size_t)IMG_HEADER_LEN + IMG_MAX_COSE + IMG_MAX_PAYLOAD)
#define IMG_CONTENT_TYPE     65050            /* CoAP experimental range: "Sphere image manifest" */
#define IMG_MAX_CHAIN        COSE_MAX_X5CHAIN /* certificates in the x5chain */
#define IMG_MAX_CERT         COSE_MAX_CERT    /* bytes of one DER certificate */
#define IMG_MAX_MANIFEST     17408
#define IMG_COMPONENT_ID_LEN 16
#define IMG_DIGEST_LEN       32
#define IMG_NAME_MAX         64
#define IMG_VERSION_MAX      32
#define IMG_TARGET_MAX       64
#define IMG_APP_MANIFEST_MAX 16384
#define IMG_SVN_MAX          255
#define IMG_TARGET_DEFAULT   "sphere-virtual-mt3620"

/* The fixed header, as it lies in the file (integers little-endian). */
struct img_header {
	uint8_t magic[IMG_MAGIC_LEN]; /* "SPHPKG01" */
	uint8_t cose_len[4];          /* u32 LE, 1..IMG_MAX_COSE */
	uint8_t reserved[4];          /* 0 */
};
_Static_assert(sizeof(struct img_header) == IMG_HEADER_LEN, "image header is 16 bytes");

/* Manifest keys (docs/formats.md §5.3), in their deterministic order. */
#define IMG_KEY_COMPONENT_ID 1
#define IMG_KEY_TYPE         2
#define IMG_KEY_NAME         3
#define IMG_KEY_VERSION      4
#define IMG_KEY_SVN          5
#define IMG_KEY_PAYLOAD_SIZE 6
#define IMG_KEY_PAYLOAD_HASH 7
#define IMG_KEY_DEBUG        8
#define IMG_KEY_TARGET       9
#define IMG_KEY_APP_MANIFEST 10

enum img_component_type {
	IMG_TYPE_BOOTLOADER = 1,
	IMG_TYPE_SECMON = 2,
	IMG_TYPE_OS = 3,
	IMG_TYPE_APP = 4,
	IMG_TYPE_RTAPP = 5,
};

struct img_manifest {
	uint8_t component_id[IMG_COMPONENT_ID_LEN]; /* a UUID, not nil */
	uint32_t type;                              /* enum img_component_type */
	char name[IMG_NAME_MAX + 1];                /* NUL-terminated printable ASCII */
	char version[IMG_VERSION_MAX + 1];          /* NUL-terminated printable ASCII */
	uint32_t security_version;                  /* 0..IMG_SVN_MAX */
	uint64_t payload_size;                      /* 0..IMG_MAX_PAYLOAD */
	uint8_t payload_sha256[IMG_DIGEST_LEN];
	bool debug;
	char target[IMG_TARGET_MAX + 1]; /* NUL-terminated printable ASCII */
	/* app_manifest.json text for types 4 and 5 (NULL, 0 otherwise). NOT
	 * NUL-terminated; after a decode it points into the decoded buffer. */
	const char *app_manifest;
	size_t app_manifest_len;
};

/* Encodes m as the deterministic manifest map. Refuses (SPH_ERR_CLAIM) every
 * value img_manifest_decode() would refuse. Returns 0 and sets *out_len, or a
 * negative status (SPH_ERR_BUFFER_TOO_SMALL if cap is too small). */
int img_manifest_encode(const struct img_manifest *m, uint8_t *out, size_t cap, size_t *out_len);

/* Decodes a manifest strictly: only the exact bytes img_manifest_encode()
 * would produce are accepted. Returns 0, or SPH_ERR_CLAIM (unknown, missing
 * or invalid key), SPH_ERR_DUPLICATE, SPH_ERR_MALFORMED (keys out of order,
 * bad CBOR), SPH_ERR_TRUNCATED, SPH_ERR_TRAILING, SPH_ERR_TOO_LARGE; *out is
 * zeroed on failure. out->app_manifest points into buf. Nothing to free. */
int img_manifest_decode(const uint8_t *buf, size_t len, struct img_manifest *out);

/* ---- roles ------------------------------------------------------------------ */

/* Signing roles; the values are the last arc of the role's EKU OID. */
enum img_role {
	IMG_ROLE_NONE = 0,
	IMG_ROLE_PLATFORM_OS = 1, /* signs bootloader, security monitor, OS */
	IMG_ROLE_TENANT_APP = 2,  /* signs (real-time) applications */
	IMG_ROLE_DEVELOPER_APP =
	        3,               /* signs applications, only where developer images are allowed */
	IMG_ROLE_CAPABILITY = 4, /* signs device capability files (§8), never images */
};
#define IMG_ROLE_COUNT 4
/* The UUID arc every role OID hangs from (2.25.<UUID adc2e272-...-f1e02b431768>). */
#define IMG_OID_ARC "2.25.230968341780373320617375492591400982376"

/* The role's dotted OID (e.g. IMG_OID_ARC ".1"), or NULL for IMG_ROLE_NONE. */
const char *img_role_oid(enum img_role role);
/* "platform-os", "tenant-app", "developer-app", "capability" or "none". Never NULL. */
const char *img_role_name(enum img_role role);
/* "bootloader", "security-monitor", "os", "application", "realtime-application",
 * or NULL for an unknown type. */
const char *img_type_name(uint32_t type);
/* Parses one of the names above. Returns 0 or SPH_ERR_INVALID_ARG. */
int img_type_from_name(const char *name, uint32_t *type);
/* True when a signer of this role may sign this component type under the
 * policy (allow_developer: the device accepts developer-signed apps). */
bool img_role_may_sign(enum img_role role, uint32_t type, bool allow_developer);

/* The signing role of a leaf certificate: not a CA, keyUsage digitalSignature,
 * an EKU of exactly one OID which is a Sphere role. Returns 0 and sets *role,
 * or SPH_ERR_PERMISSION (*role = IMG_ROLE_NONE). */
int img_cert_role(X509 *leaf, enum img_role *role);
/* True when cert has an EKU extension listing role's OID. */
bool img_cert_has_role(X509 *cert, enum img_role role);
/* The root hash: SHA-256 of the DER SubjectPublicKeyInfo in cert. Returns 0
 * or a negative status. */
int img_root_hash(X509 *cert, uint8_t hash[IMG_DIGEST_LEN]);
/* The signer id an EAT records (§3.4): SHA-256 of the leaf key's X || Y.
 * Returns 0, SPH_ERR_UNSUPPORTED (not a P-256 key) or another status. */
int img_signer_id(X509 *leaf, uint8_t id[IMG_DIGEST_LEN]);

/* ---- packing, parsing, verifying ------------------------------------------------ */

/* Builds a package: the manifest m with payload_size and payload_sha256 taken
 * from the payload (m's own values are ignored), signed with signer, whose
 * certificate is leaf; chain_extra (may be NULL) lists the certificates
 * above it, each one's issuer next, optionally ending with the root (which a
 * device that knows only the root hash needs). Returns 0 and *out (malloc'd,
 * caller frees) and *out_len, or a negative status: SPH_ERR_CLAIM for a
 * manifest the decoder would refuse, SPH_ERR_TOO_LARGE (payload, chain,
 * certificate or manifest beyond its bound), SPH_ERR_INVALID_ARG (signer is
 * not P-256 or not leaf's key). It does not check roles: img_verify does. */
int img_pack(const struct img_manifest *m, const uint8_t *payload, size_t len, EVP_PKEY *signer,
             X509 *leaf, STACK_OF(X509) * chain_extra, uint8_t **out, size_t *out_len);

/* A parsed package: a view into the caller's buffer (nothing to free). */
struct img_package {
	struct img_manifest manifest; /* app_manifest points into the package */
	const uint8_t *cose;          /* the COSE_Sign1 */
	size_t cose_len;
	const uint8_t *manifest_cbor; /* the signed manifest bytes */
	size_t manifest_cbor_len;
	const uint8_t *payload;
	size_t payload_len;
	size_t n_certs; /* the x5chain, leaf first */
	struct cose_x5 certs[IMG_MAX_CHAIN];
	/* Set by img_verify only (zero after img_parse): */
	enum img_role role;                /* the signer's role */
	uint8_t signer_id[IMG_DIGEST_LEN]; /* SHA-256 of the leaf key's X || Y */
	size_t path_len;                   /* verified path, leaf to root inclusive */
};

/* Checks a package's structure (docs/formats.md §5.5 steps 1..5 and 10):
 * header, COSE envelope, x5chain certificates, manifest, file length, payload
 * SHA-256. It does NOT check the signature or who signed it. Returns 0 and
 * fills *out, or a negative status (*out zeroed): SPH_ERR_MALFORMED,
 * SPH_ERR_TRUNCATED, SPH_ERR_TRAILING, SPH_ERR_TOO_LARGE, SPH_ERR_UNSUPPORTED,
 * SPH_ERR_DUPLICATE, SPH_ERR_CLAIM, or SPH_ERR_BAD_SIGNATURE when the payload
 * does not match its signed digest. */
int img_parse(const uint8_t *pkg, size_t len, struct img_package *out);

enum img_time_policy {
	IMG_TIME_NOW = 0, /* check certificate validity against the current time */
	IMG_TIME_AT,      /* ... against img_trust.at */
	IMG_TIME_NONE,    /* no validity check: a device without a trustworthy clock */
};

/* A boot's verified-signer cache: certificate paths img_verify validated,
 * keyed by SHA-256 over the trusted root hash, the time policy and the exact
 * x5chain bytes. A later package with the same x5chain under the same trust
 * skips decoding and validating the path again; its COSE signature, role,
 * target and payload digest are still checked. It lives in RAM: boot clears it
 * at every chip reset, as a reset clears RAM. Used only with root_hash trust
 * and IMG_TIME_NONE or IMG_TIME_AT. Not thread-safe: one per boot. */
#define IMG_CACHE_SLOTS 4
struct img_cache_entry {
	uint8_t key[IMG_DIGEST_LEN];
	X509 *leaf; /* the validated leaf, one reference held */
	enum img_role role;
	size_t path_len;
};
struct img_cache {
	struct img_cache_entry e[IMG_CACHE_SLOTS];
	unsigned n, next; /* entries in use; the slot to replace next */
	uint64_t hits, misses;
};
/* Frees every entry and zeroes the cache (a zeroed cache is empty). Accepts NULL. */
void img_cache_clear(struct img_cache *c);

/* What a verifier trusts. Exactly one of root_cert and root_hash is set. */
struct img_trust {
	X509 *root_cert;          /* a trusted root certificate (self-signed CA) */
	const uint8_t *root_hash; /* or IMG_DIGEST_LEN bytes: img_root_hash() of the root */
	bool allow_developer;     /* accept developer-signed apps (appDevelopment capability) */
	enum img_time_policy time_policy;
	time_t at;               /* for IMG_TIME_AT */
	const char *target;      /* this device's target; NULL = IMG_TARGET_DEFAULT */
	struct img_cache *cache; /* NULL: none (see struct img_cache) */
};

/* Verifies a package fully (docs/formats.md §5.5): structure, the ES256
 * signature with the leaf's key, the certificate path to the trusted root,
 * the role, the target, the payload digest. Returns 0 and fills *out (may be
 * NULL) only when everything holds. Otherwise *out is zeroed, why (may be
 * NULL; why_cap bytes) receives a one-line reason, and the status is:
 *   img_parse()'s structural statuses;
 *   SPH_ERR_UNSUPPORTED   the leaf key is not P-256;
 *   SPH_ERR_BAD_SIGNATURE the signature, or the payload digest, does not verify;
 *   SPH_ERR_AUTH          no valid path to the trusted root (unknown signer,
 *                         expired or not yet valid, non-CA issuer, wrong root hash);
 *   SPH_ERR_PERMISSION    the signer's role may not sign this component type,
 *                         or a developer image where they are not allowed;
 *   SPH_ERR_CLAIM         the image is for another target;
 *   SPH_ERR_INVALID_ARG   trust is not exactly one anchor. */
int img_verify(const uint8_t *pkg, size_t len, const struct img_trust *trust,
               struct img_package *out, char *why, size_t why_cap);

/* Verifies a COSE_Sign1 (not a package) signed by a certificate path in its
 * protected x5chain: the protected content type must be content_type and the
 * payload attached; the ES256 signature with the leaf's key; the strict path
 * to trust's root (root_cert or root_hash, time_policy as for img_verify;
 * allow_developer, target and cache are ignored); the leaf's single Sphere
 * role, which every CA on the path lists, must be want. Returns 0 and *out (a
 * view into msg; may be NULL) only when all hold; otherwise *out is zeroed,
 * why (may be NULL) gets a reason, and the status is cose_sign1_decode's,
 * SPH_ERR_MALFORMED (content type, payload, x5chain), SPH_ERR_BAD_SIGNATURE,
 * SPH_ERR_AUTH (no valid path to the root), SPH_ERR_PERMISSION (another
 * role) or SPH_ERR_INVALID_ARG. */
int img_sign1_verify_chain(const uint8_t *msg, size_t len, int64_t content_type,
                           const struct img_trust *trust, enum img_role want,
                           struct cose_sign1 *out, char *why, size_t why_cap);

/* ---- certificates and keys -------------------------------------------------------- */

enum img_cert_kind {
	IMG_CERT_PLATFORM_ROOT = 1, /* self-signed CA, EKU platform-os */
	IMG_CERT_TENANT_ROOT,      /* self-signed CA, EKU tenant-app + developer-app + capability */
	IMG_CERT_PLATFORM_SIGNER,  /* leaf, EKU platform-os */
	IMG_CERT_TENANT_SIGNER,    /* leaf, EKU tenant-app */
	IMG_CERT_DEVELOPER_SIGNER, /* leaf, EKU developer-app */
	IMG_CERT_INTERMEDIATE,     /* CA under an issuer, EKU = roles */
	IMG_CERT_CAPABILITY_SIGNER, /* leaf, EKU capability (§8; issuer: the tenant root) */
};

#define IMG_ROOT_DAYS_DEFAULT   7300
#define IMG_SIGNER_DAYS_DEFAULT 1095
#define IMG_DAYS_MAX            36500
#define IMG_CN_MAX              64

struct img_cert_params {
	enum img_cert_kind kind;
	const char *cn;       /* subject CN, 1..IMG_CN_MAX printable ASCII; NULL: a default */
	unsigned days;        /* validity, 1..IMG_DAYS_MAX; 0: the kind's default */
	time_t not_before;    /* 0: now */
	unsigned roles;       /* IMG_CERT_INTERMEDIATE only: bit (1u << role) per role */
	EVP_PKEY *issuer_key; /* NULL for roots; else the issuing CA's key ... */
	X509 *issuer_cert;    /* ... and certificate (a CA) */
};

/* Makes a fresh P-256 key and its certificate per docs/formats.md §5.4.
 * Returns 0 and *key, *cert (caller frees with EVP_PKEY_free, X509_free), or
 * a negative status (SPH_ERR_INVALID_ARG for bad parameters, e.g. a
 * non-CA issuer or a key that is not the issuer's). */
int img_cert_make(const struct img_cert_params *p, EVP_PKEY **key, X509 **cert);

/* Makes a root (IMG_CERT_PLATFORM_ROOT or IMG_CERT_TENANT_ROOT) and writes
 * its private key (PEM PKCS#8, mode 0600) and certificate (PEM). Neither file
 * may exist (SPH_ERR_STATE); on failure neither is left behind. root_hash
 * (may be NULL) receives img_root_hash(). Returns 0 or a negative status. */
int img_keygen_root(enum img_cert_kind kind, const char *cn, unsigned days, const char *key_path,
                    const char *cert_path, uint8_t root_hash[IMG_DIGEST_LEN]);

/* Makes a signer (IMG_CERT_PLATFORM_SIGNER, _TENANT_SIGNER, _DEVELOPER_SIGNER,
 * _CAPABILITY_SIGNER)
 * issued by the CA whose key and certificate are in the given PEM files, and
 * writes it like img_keygen_root. The issuer must list the signer's role in
 * its EKU (SPH_ERR_PERMISSION otherwise). Returns 0 or a negative status. */
int img_keygen_signer(enum img_cert_kind kind, const char *cn, unsigned days,
                      const char *issuer_key_path, const char *issuer_cert_path,
                      const char *key_path, const char *cert_path);

/* ---- device capability files (docs/formats.md §8) ------------------------------------ */

#define IMG_CAP_CONTENT_TYPE  65051            /* CoAP experimental range: "Sphere capability" */
#define IMG_CAP_MAX_FILE      COSE_MAX_MESSAGE /* a capability file's largest size */
#define IMG_CAP_MAX_PAYLOAD   512
#define IMG_CAP_DEVICE_ID_LEN 64 /* the device identity's X || Y */
#define IMG_CAP_TENANT_MAX    64
#define IMG_CAP_MAX_ENTRIES   4

/* Payload keys, in their deterministic order; 4 is optional. */
#define IMG_CAP_KEY_DEVICE_ID    1
#define IMG_CAP_KEY_CAPABILITIES 2
#define IMG_CAP_KEY_ISSUED_AT    3
#define IMG_CAP_KEY_EXPIRES      4
#define IMG_CAP_KEY_TENANT       5

/* Capability values; a mask holds bit (1u << value). */
enum img_cap {
	IMG_CAP_APP_DEVELOPMENT = 1, /* developer-signed apps, sideloading, debugging */
	IMG_CAP_FIELD_SERVICING = 2,
};
#define IMG_CAP_MASK_ALL ((1u << IMG_CAP_APP_DEVELOPMENT) | (1u << IMG_CAP_FIELD_SERVICING))

struct img_capability {
	uint8_t device_id[IMG_CAP_DEVICE_ID_LEN];
	uint32_t caps;      /* non-empty subset of IMG_CAP_MASK_ALL */
	uint64_t issued_at; /* Unix seconds */
	uint64_t expires;   /* Unix seconds, > issued_at; 0: no expiry (key 4 absent) */
	char tenant[IMG_CAP_TENANT_MAX + 1]; /* NUL-terminated printable ASCII */
	/* Set by img_cap_verify only: */
	uint8_t signer_id[IMG_DIGEST_LEN];
};

/* "appDevelopment", "fieldServicing", or NULL for an unknown value. */
const char *img_cap_name(uint32_t cap);
/* Parses a comma-separated list of names ("appDevelopment,fieldServicing") into
 * a mask; no empty, unknown or repeated name. Returns 0 or SPH_ERR_INVALID_ARG
 * (*mask 0). */
int img_cap_parse_names(const char *list, uint32_t *mask);

/* Signs a capability file for c (signer_id ignored) with signer, whose
 * certificate is leaf; chain_extra (may be NULL) as for img_pack. Returns 0
 * and *out (malloc'd, caller frees) and *out_len, or SPH_ERR_CLAIM (c holds a
 * value the decoder refuses), SPH_ERR_INVALID_ARG (signer is not leaf's key),
 * SPH_ERR_TOO_LARGE or another negative status. It does not check roles. */
int img_cap_pack(const struct img_capability *c, EVP_PKEY *signer, X509 *leaf,
                 STACK_OF(X509) * chain_extra, uint8_t **out, size_t *out_len);

/* Checks structure only (the pinned COSE envelope, the x5chain, the strict
 * payload), NOT the signature nor the signer. Returns 0 and fills *out, or a
 * negative status (*out zeroed) with a reason in why (may be NULL). For
 * display only. */
int img_cap_parse(const uint8_t *buf, size_t len, struct img_capability *out, char *why,
                  size_t why_cap);

/* Verifies a capability file for the device whose identity X || Y is
 * device_id: structure, the ES256 signature with the leaf key, the
 * certificate path to trust's tenant root (root_cert or root_hash;
 * allow_developer and target are ignored), the leaf's role (capability,
 * EKU-chained), device id, and, unless trust->time_policy is IMG_TIME_NONE,
 * issued-at <= time < expires. Returns 0 and fills *out (may be NULL) only
 * when all hold; otherwise *out is zeroed, why gets a reason, and the status
 * is: a structural one (SPH_ERR_MALFORMED, _TRUNCATED, _TRAILING, _TOO_LARGE,
 * _UNSUPPORTED, _DUPLICATE, _CLAIM), SPH_ERR_BAD_SIGNATURE, SPH_ERR_AUTH (no
 * path to the root, or the file expired / not yet valid), SPH_ERR_PERMISSION
 * (the signer is not a capability signer, or the file is for another
 * device), SPH_ERR_INVALID_ARG (arguments). */
int img_cap_verify(const uint8_t *buf, size_t len, const struct img_trust *trust,
                   const uint8_t device_id[IMG_CAP_DEVICE_ID_LEN], struct img_capability *out,
                   char *why, size_t why_cap);

/* ---- files ------------------------------------------------------------------------ */

/* Reads a regular file of at most max bytes. Returns 0 and *buf (malloc'd,
 * caller frees; one extra NUL byte after the data) and *len, or
 * SPH_ERR_NOT_FOUND, SPH_ERR_TOO_LARGE, SPH_ERR_IO, SPH_ERR_NOMEM. */
int img_read_file(const char *path, size_t max, uint8_t **buf, size_t *len);
/* Writes data to path through a temporary file in the same directory, then
 * renames it into place (replace) or links it only if path does not exist
 * (!replace: SPH_ERR_STATE if it does). On failure nothing is left behind.
 * Returns 0, SPH_ERR_STATE, SPH_ERR_IO or SPH_ERR_INVALID_ARG. */
int img_write_file(const char *path, const uint8_t *data, size_t len, mode_t mode, bool replace);
/* Loads a P-256 private key from an unencrypted PEM file. Returns 0 and *key
 * (caller frees), or a negative status. */
int img_load_key(const char *path, EVP_PKEY **key);
/* Loads 1..IMG_MAX_CHAIN certificates from a PEM file. Returns 0 and *certs
 * (caller frees with sk_X509_pop_free(.., X509_free)), or a negative status. */
int img_load_certs(const char *path, STACK_OF(X509) * *certs);

#endif
