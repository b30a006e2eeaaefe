/*
 * secmon internals: the on-flash formats (docs/formats.md §9), the in-memory
 * table and the helpers the store's files share. Exposed to the tests and the
 * fuzzer; not an API.
 */
#ifndef SPHERE_SECMON_INTERNAL_H
#define SPHERE_SECMON_INTERNAL_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "secmon/secmon.h"

/* ---- wire sizes and limits (§9) ------------------------------------------ */

#define SECMON_SHARD_HDR     32u
#define SECMON_SHARD_MAGIC   "SMSH"
#define SECMON_SHARD_OFF_CRC 28u
#define SECMON_OBJID_LEN     16u
#define SECMON_SB_HDR        80u
#define SECMON_SB_MAGIC      "SPHSMSB1"
#define SECMON_SB_MAGIC_LEN  8u
#define SECMON_SB_VERSION    1u
#define SECMON_SB_OFF_HASH   48u
#define SECMON_SLOTS         4u
#define SECMON_TABLE_MIN     8u
#define SECMON_TABLE_MAX     (1u << 20)
#define SECMON_SB_ALIGN      64u        /* records in a slot start at multiples of this */
#define SECMON_WRITE_BATCH   (1u << 20) /* shard images a put builds before writing */
#define SECMON_APP_REC       24u
#define SECMON_MAX_APPS      256u
#define SECMON_MAX_OBJECTS   8192u
#define SECMON_KEY_MAX       32u
#define SECMON_DEFAULT_K     8u
#define SECMON_DEFAULT_M     2u
#define SECMON_DEFAULT_TABLE 16384u /* default table bytes, plus 2 per block */
#define SECMON_NS_SYSTEM     0u
#define SECMON_NS_APP        1u

/* The fixed part of an object entry: ns, name_len, len, sha256, object id, k, m. */
#define SECMON_ENTRY_FIXED (1u + 1u + 8u + 32u + 16u + 1u + 1u)

/* ---- geometry ------------------------------------------------------------ */

struct secmon_geom {
	uint32_t first, count; /* the region */
	uint32_t bs;           /* erase-block size */
	uint32_t payload;      /* bs - SECMON_SHARD_HDR */
	uint8_t k, m;
	uint32_t meta_blocks; /* per area; 2 * meta_blocks superblock blocks */
	uint32_t cpb;         /* blocks per table copy: meta_blocks / 2 */
	uint32_t table_cap;   /* table bytes a copy holds (<= SECMON_TABLE_MAX) */
};

/* Fills g from a region, the flash block size and params (zeros: defaults).
 * Returns 0, SPH_ERR_INVALID_ARG (out of range) or SPH_ERR_NO_SPACE (the
 * region cannot hold the superblocks and one full stripe). */
int secmon_geom_init(struct secmon_geom *g, uint32_t first, uint32_t count, uint32_t bs, uint32_t k,
                     uint32_t m, uint32_t meta_blocks);

/* Layout of an object of len bytes (§9.2). len must be <= SECMON_OBJECT_MAX. */
struct secmon_layout {
	uint32_t data_shards; /* D */
	uint8_t k_eff;        /* 0 for an empty object */
	uint32_t stripes;     /* S */
	uint32_t nblocks;     /* D + S m */
};
void secmon_layout_of(const struct secmon_geom *g, uint64_t len, struct secmon_layout *l);
/* Data shards of stripe s, and its first index in the entry's block list. */
uint8_t secmon_stripe_k(const struct secmon_layout *l, uint32_t s);
uint32_t secmon_stripe_base(const struct secmon_geom *g, const struct secmon_layout *l, uint32_t s);

/* ---- the table ----------------------------------------------------------- */

struct secmon_app {
	uint8_t id[SECMON_APP_ID_LEN];
	uint64_t quota;
};

struct secmon_entry {
	uint8_t ns;
	uint8_t app[SECMON_APP_ID_LEN]; /* zeros in the system namespace */
	uint8_t name_len;
	char name[SECMON_NAME_MAX + 1];
	uint64_t len;
	uint8_t sha256[32];
	uint8_t objid[SECMON_OBJID_LEN]; /* random per version; in every shard header */
	uint8_t m;                       /* the store's m */
	struct secmon_layout lay;
	uint16_t *blocks; /* lay.nblocks flash block numbers (NULL when 0) */
};

struct secmon_table {
	uint32_t napps, nobj;
	struct secmon_app *apps;
	struct secmon_entry *obj;
};

/* Frees the arrays and every entry's block list; accepts NULL. */
void secmon_table_free(struct secmon_table *t);
/* Frees the arrays only (entries' block lists belong to someone else). */
void secmon_table_free_shallow(struct secmon_table *t);
/* Bytes secmon_table_encode writes. */
size_t secmon_table_size(const struct secmon_table *t);
/* Encodes t (§9.4) into buf. Returns 0 or SPH_ERR_BUFFER_TOO_SMALL. */
int secmon_table_encode(const struct secmon_table *t, uint8_t *buf, size_t cap, size_t *len);
/* Parses untrusted table bytes against g. Returns 0 and *t (free with
 * secmon_table_free), or SPH_ERR_MALFORMED / SPH_ERR_TRUNCATED /
 * SPH_ERR_TRAILING / SPH_ERR_TOO_LARGE / SPH_ERR_DUPLICATE /
 * SPH_ERR_NOMEM; on error *t is empty. */
int secmon_table_parse(const uint8_t *buf, size_t len, const struct secmon_geom *g,
                       struct secmon_table *t);
/* Orders entries: <0, 0, >0 like memcmp. */
int secmon_entry_cmp(uint8_t ns_a, const uint8_t *app_a, const char *name_a, size_t len_a,
                     uint8_t ns_b, const uint8_t *app_b, const char *name_b, size_t len_b);
/* Index of the entry (found) or where it would go (*found false). */
size_t secmon_table_find(const struct secmon_table *t, uint8_t ns, const uint8_t *app,
                         const char *name, size_t name_len, bool *found);

/* ---- shards and Reed-Solomon --------------------------------------------- */

/* Writes the header and CRC of the shard image blk (g->bs bytes, payload
 * already in place). */
void secmon_shard_seal(const struct secmon_geom *g, uint8_t *blk, uint8_t index, uint8_t k_s,
                       uint8_t m, uint32_t stripe, const uint8_t objid[SECMON_OBJID_LEN]);
/* True when blk is exactly the shard the table says: header fields and CRC. */
bool secmon_shard_ok(const struct secmon_geom *g, const uint8_t *blk, uint8_t index, uint8_t k_s,
                     uint8_t m, uint32_t stripe, const uint8_t objid[SECMON_OBJID_LEN]);
/* Parity payloads from k_s data payloads of len bytes. Returns 0 or
 * SPH_ERR_INVALID_ARG. */
int secmon_rs_encode(uint8_t k_s, uint8_t m, uint8_t **data, uint8_t **parity, size_t len);
/* Rebuilds every shard i with !good[i] (payloads, k_s + m of them) from the
 * first k_s good ones. Returns 0, SPH_ERR_CORRUPT (fewer than k_s good) or
 * SPH_ERR_CRYPTO (a singular matrix: impossible for a Cauchy code). */
int secmon_rs_rebuild(uint8_t k_s, uint8_t m, uint8_t **shards, const bool *good, size_t len);

/* ---- the handle ---------------------------------------------------------- */

/* What mount reads from flash. */
struct secmon_state {
	struct secmon_geom g;
	uint64_t seq;
	bool degraded; /* the winning slot's sibling copy is missing or differs */
	struct secmon_table t;
	/* Per superblock slot (§9.3): where its next record goes, and whether
	 * everything from there on is still erased (else the slot is erased
	 * before its next record). */
	uint64_t slot_end[SECMON_SLOTS];
	bool slot_clean[SECMON_SLOTS];
};

struct secmon {
	pthread_mutex_t mu;
	struct chip *c;
	uint32_t comp;
	bool ro;
	bool stale; /* a write failed: re-read the table before the next change */
	struct secmon_region r;
	struct secmon_state st;
	uint8_t *used;    /* per region block: referenced by the table */
	uint8_t *erased;  /* per region block: known erased since last programmed */
	uint8_t *stripe;  /* (SECMON_MAX_K + SECMON_MAX_M) * bs: a stripe's images */
	uint8_t *scratch; /* bs bytes */
};

/* Reads the store in r as comp into *st (never writes). Returns 0 or the
 * mount statuses of secmon_mount. */
int secmon_load(struct chip *c, uint32_t comp, const struct secmon_region *r,
                struct secmon_state *st);
/* Re-reads the table if a write failed. Called with the lock held. */
int secmon_refresh(struct secmon *s);
/* Takes s's lock (held on return whatever the status: the caller unlocks),
 * then secmon_refresh; write: a read-only mount is SPH_ERR_PERMISSION. */
int secmon_enter(struct secmon *s, bool write);
/* Commits nt (§9.3), first dropping app records with quota 0 and no keys.
 * On success nt becomes the table (its arrays are taken, the ngone block
 * lists in gone are freed) and *nt is zeroed; on failure fresh is freed,
 * nt's arrays are freed and the handle is marked stale. Returns 0 or a
 * status (SPH_ERR_NO_SPACE: the table does not fit its superblock). */
int secmon_install(struct secmon *s, struct secmon_table *nt, uint16_t **gone, size_t ngone,
                   uint16_t *fresh);
/* A copy of s's table arrays with entry i replaced by e (i == nobj with
 * insert: insert at i; e NULL: removed). Entries are copied by value (block
 * lists shared). Returns 0 or SPH_ERR_NOMEM. */
int secmon_table_edit(const struct secmon_table *t, size_t i, bool insert,
                      const struct secmon_entry *e, struct secmon_table *out);

/* A copy of t's arrays (entries by value, block lists shared). Returns 0 or
 * SPH_ERR_NOMEM. */
int secmon_table_copy(const struct secmon_table *t, struct secmon_table *out);

/* Reads and checks object entry i. Returns 0 and a malloc'd buffer (at least
 * one byte) with the verified bytes; repairs bad shards when read-write.
 * Counters may be NULL. */
struct secmon_read_stats {
	uint64_t shards, bad, repaired, unrepaired, unrecoverable;
	int repair_rc; /* 0, or why bad shards were not rewritten */
};
int secmon_read_entry(struct secmon *s, size_t i, bool all_shards, uint8_t **data, char *why,
                      size_t why_cap, struct secmon_read_stats *rs);
/* Describes entry e ("object 'x'" or "app 0123abcd.. key 'x'") into buf. */
void secmon_entry_label(const struct secmon_entry *e, char *buf, size_t cap);
/* Writes object (ns, app, name) = data; the common body of put and app_put.
 * Called with the lock held. */
int secmon_put_locked(struct secmon *s, uint8_t ns, const uint8_t *app, const char *name,
                      size_t name_len, const void *data, size_t len);
/* Removes entry i. Called with the lock held. */
int secmon_delete_locked(struct secmon *s, size_t i);
/* secmon_get / secmon_app_get for namespace ns (app: the app id in
 * SECMON_NS_APP, else ignored), name of at most name_max bytes. Same returns. */
int secmon_get_ns(struct secmon *s, uint8_t ns, const uint8_t *app, const char *name,
                  size_t name_max, uint8_t **data, size_t *len, char *why, size_t why_cap);
/* secmon_delete / secmon_app_delete for namespace ns, as secmon_get_ns. */
int secmon_delete_ns(struct secmon *s, uint8_t ns, const uint8_t *app, const char *name,
                     size_t name_max);
/* An object's SHA-256 on a second thread (secmon_hash.c), overlapping I/O.
 * start: data[0, len) will be hashed, of which the first ready bytes are
 * final now; ready: more are final (never decreasing); join: waits and gives
 * the digest (0 or SPH_ERR_CRYPTO); abort: stops without one. After start,
 * exactly one of join and abort MUST be called. Small inputs get no thread
 * (join hashes them). */
struct secmon_bghash {
	pthread_t th;
	bool threaded;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	const uint8_t *data;
	size_t len, ready;
	bool abort;
	int rc;
	uint8_t md[32];
};
int secmon_bghash_start(struct secmon_bghash *h, const uint8_t *data, size_t len, size_t ready);
void secmon_bghash_ready(struct secmon_bghash *h, size_t ready);
int secmon_bghash_join(struct secmon_bghash *h, uint8_t md[32]);
void secmon_bghash_abort(struct secmon_bghash *h);

/* SHA-256 of a followed by b. Returns 0 or SPH_ERR_CRYPTO. */
int secmon_sha256(const uint8_t *a, size_t alen, const uint8_t *b, size_t blen, uint8_t out[32]);
/* Ensures erased and programs n shard images (bs bytes each, consecutive in
 * imgs) into blocks blks[0..n). Returns 0 or a chip status. */
int secmon_write_blocks(struct secmon *s, const uint16_t *blks, const uint8_t *imgs, size_t n);
/* Free data blocks least-worn first: a cursor over a sorted candidate list. */
struct secmon_alloc {
	uint64_t *keys; /* erase count << 32 | block */
	size_t n, next;
};
int secmon_alloc_init(struct secmon *s, struct secmon_alloc *a);
int secmon_alloc_take(struct secmon_alloc *a, uint16_t *blk);
void secmon_alloc_free(struct secmon_alloc *a);
/* Builds the k_s + m sealed shard images of stripe st of e from the object's
 * bytes into buf. Returns 0 or a status. */
int secmon_stripe_build(const struct secmon_geom *g, const struct secmon_entry *e, uint32_t st,
                        const uint8_t *data, uint8_t *buf);
/* True when name is 1..max printable ASCII characters; sets *len. */
bool secmon_name_ok(const char *name, size_t max, size_t *len);
/* Commits a new table equal to the current one but with apps (napps records,
 * taken on success). Called with the lock held. */
int secmon_commit_apps(struct secmon *s, struct secmon_app *apps, uint32_t napps);

/* Little-endian helpers. */
static inline void secmon_put_le16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
}
static inline void secmon_put_le32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}
static inline void secmon_put_le64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}
static inline uint16_t secmon_get_le16(const uint8_t *p)
{
	return (uint16_t)(p[0] | (p[1] << 8));
}
static inline uint32_t secmon_get_le32(const uint8_t *p)
{
	uint32_t v = 0;
	for (int i = 3; i >= 0; i--)
		v = (v << 8) | p[i];
	return v;
}
static inline uint64_t secmon_get_le64(const uint8_t *p)
{
	uint64_t v = 0;
	for (int i = 7; i >= 0; i--)
		v = (v << 8) | p[i];
	return v;
}

#endif
