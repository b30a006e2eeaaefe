/*
 * Sphere status codes: 0 is success, every failure a distinct negative code.
 * Shared by every module and by the application SDK.
 */
#ifndef SPHERE_STATUS_H
#define SPHERE_STATUS_H

#ifdef __cplusplus
extern "C" {
#endif

enum sph_status {
	SPH_OK = 0,
	SPH_ERR_INVALID_ARG = -1,       /* caller passed an impossible argument */
	SPH_ERR_NOMEM = -2,             /* allocation failed */
	SPH_ERR_MALFORMED = -3,         /* input is not well-formed */
	SPH_ERR_TOO_LARGE = -4,         /* a length exceeds its documented maximum */
	SPH_ERR_TRUNCATED = -5,         /* input ends before the structure does */
	SPH_ERR_TRAILING = -6,          /* bytes follow a complete structure */
	SPH_ERR_DUPLICATE = -7,         /* a map key or field appears twice */
	SPH_ERR_UNSUPPORTED = -8,       /* unknown algorithm, version or critical header */
	SPH_ERR_BAD_SIGNATURE = -9,     /* signature does not verify */
	SPH_ERR_NONCE_MISMATCH = -10,   /* evidence answers another challenge */
	SPH_ERR_CRYPTO = -11,           /* the crypto library failed */
	SPH_ERR_IO = -12,               /* a file or socket operation failed */
	SPH_ERR_RANDOM = -13,           /* the random source failed (never falls back) */
	SPH_ERR_ROLLBACK = -14,         /* a version or counter would go backwards */
	SPH_ERR_EXHAUSTED = -15,        /* a one-way resource is used up */
	SPH_ERR_NOT_FOUND = -16,        /* no such key, object or entry */
	SPH_ERR_PERMISSION = -17,       /* the caller may not do this */
	SPH_ERR_STATE = -18,            /* not allowed in the current state */
	SPH_ERR_TRANSPORT = -19,        /* the peer is gone or spoke out of protocol */
	SPH_ERR_AUTH = -20,             /* authenticated decryption failed */
	SPH_ERR_BUFFER_TOO_SMALL = -21, /* the output buffer cannot hold the result */
	SPH_ERR_CLAIM = -22,            /* a required claim is missing or invalid */
	SPH_ERR_POWER_LOSS = -23, /* the flash lost power; it works again after a power cycle */
	SPH_ERR_CORRUPT = -24,    /* stored data is damaged beyond what can be repaired */
	SPH_ERR_NO_SPACE = -25,   /* the store, or a quota in it, is full */
};

/* Returns a static, human-readable description of a status code (never NULL). */
const char *sph_strerror(int status);

#ifdef __cplusplus
}
#endif

#endif
