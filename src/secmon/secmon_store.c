/*
 * secmon: format, mount, commit and the write path (docs/formats.md §9.3).
 *
 * The table lives in four superblock slots (two areas of two copies); a
 * commit writes the area that does not hold the current table, copy 0 then
 * copy 1. Every change is copy-on-write: new shards go to blocks the current
 * table does not reference, then the table is committed, and only then are
 * the old blocks free. A handle whose write failed (power cut, I/O error)
 * re-reads the table from flash before its next operation.
 */
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/rand.h>

#include "common/common.h"
#include "secmon_internal.h"

/* ---- small helpers --------------------------------------------------------- */

int secmon_sha256(const uint8_t *a, size_t alen, const uint8_t *b, size_t blen, uint8_t out[32])
{
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	unsigned int n = 0;
	int rc = SPH_ERR_CRYPTO;

	if (!ctx)
		goto out;
	if (EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) != 1 ||
	    (alen && EVP_DigestUpdate(ctx, a, alen) != 1) ||
	    (blen && EVP_DigestUpdate(ctx, b, blen) != 1) ||
	    EVP_DigestFinal_ex(ctx, out, &n) != 1 || n != 32)
		goto out;
	rc = 0;
out:
	EVP_MD_CTX_free(ctx);
	return rc;
}

bool secmon_name_ok(const char *name, size_t max, size_t *len)
{
	size_t n;

	*len = 0;
	if (!name)
		return false;
	n = strnlen(name, max + 1);
	if (n == 0 || n > max || !sph_text_ok((const uint8_t *)name, n, max))
		return false;
	*len = n;
	return true;
}

static uint64_t secmon_block_off(const struct secmon_geom *g, uint32_t blk)
{
	return (uint64_t)blk * g->bs;
}

/* Flash block holding byte o of superblock slot j. */
static uint32_t secmon_slot_block(const struct secmon_geom *g, uint32_t j, uint64_t o)
{
	return g->first + j + SECMON_SLOTS * (uint32_t)(o / g->bs);
}

static void secmon_recount(struct secmon *s)
{
	const struct secmon_table *t = &s->st.t;

	memset(s->used, 0, s->st.g.count);
	for (uint32_t i = 0; i < t->nobj; i++) {
		for (uint32_t b = 0; b < t->obj[i].lay.nblocks; b++)
			s->used[t->obj[i].blocks[b] - s->st.g.first] = 1;
	}
}

/* ---- superblocks ----------------------------------------------------------- */

/* Reads len bytes at offset o of slot j (spanning its blocks). */
static int secmon_slot_read(struct chip *c, uint32_t comp, const struct secmon_geom *g, uint32_t j,
                            uint64_t o, uint8_t *buf, size_t len)
{
	while (len > 0) {
		uint64_t in = o % g->bs;
		size_t n = g->bs - in < len ? (size_t)(g->bs - in) : len;
		int rc = chip_read(c, comp, secmon_block_off(g, secmon_slot_block(g, j, o)) + in,
		                   buf, n);
		if (rc != 0)
			return rc;
		buf += n;
		o += n;
		len -= n;
	}
	return 0;
}

struct secmon_cand {
	uint8_t *buf; /* header + table */
	size_t len;
	uint64_t seq;
};

/* The record at offset o of slot j, if it checks out (§9.3): magic, version,
 * the slot size its own meta_blocks gives (*meta: 0 = not known yet, else it
 * MUST match), a table length that fits from o, and the hash. Sets *state:
 * 1 it checks out (cand filled), 0 erased bytes (the slot's clean end),
 * -1 anything else. Returns 0 or a chip status other than a lost block. */
static int secmon_record_load(struct chip *c, uint32_t comp, const struct secmon_geom *g,
                              uint32_t j, uint64_t o, uint32_t *meta, struct secmon_cand *cand,
                              int *state)
{
	uint8_t hdr[SECMON_SB_HDR], md[32];
	uint32_t m, tlen;
	uint64_t cap;
	uint8_t *buf = NULL;
	size_t i;
	int rc;

	memset(cand, 0, sizeof(*cand));
	*state = -1;
	rc = secmon_slot_read(c, comp, g, j, o, hdr, sizeof(hdr));
	if (rc != 0)
		return rc == SPH_ERR_IO ? 0 : rc;
	for (i = 0; i < sizeof(hdr) && hdr[i] == 0xff; i++)
		;
	if (i == sizeof(hdr)) {
		*state = 0;
		return 0;
	}
	if (memcmp(hdr, SECMON_SB_MAGIC, SECMON_SB_MAGIC_LEN) != 0 ||
	    secmon_get_le32(hdr + 8) != SECMON_SB_VERSION)
		return 0;
	m = secmon_get_le32(hdr + 40);
	tlen = secmon_get_le32(hdr + 12);
	if (m < 2 || (m & 1) || m > g->count / 2 || (*meta && m != *meta))
		return 0;
	cap = (uint64_t)(m / 2) * g->bs;
	if (o + SECMON_SB_HDR > cap || tlen < SECMON_TABLE_MIN || tlen > SECMON_TABLE_MAX ||
	    tlen > cap - o - SECMON_SB_HDR)
		return 0;
	buf = malloc(SECMON_SB_HDR + (size_t)tlen);
	if (!buf)
		return SPH_ERR_NOMEM;
	memcpy(buf, hdr, sizeof(hdr));
	rc = secmon_slot_read(c, comp, g, j, o + SECMON_SB_HDR, buf + SECMON_SB_HDR, tlen);
	if (rc != 0) {
		free(buf);
		return rc == SPH_ERR_IO ? 0 : rc;
	}
	rc = secmon_sha256(buf, SECMON_SB_OFF_HASH, buf + SECMON_SB_HDR, tlen, md);
	if (rc != 0 || memcmp(md, buf + SECMON_SB_OFF_HASH, 32) != 0) {
		free(buf);
		return rc;
	}
	*meta = m;
	cand->buf = buf;
	cand->len = SECMON_SB_HDR + (size_t)tlen;
	cand->seq = secmon_get_le64(buf + 16);
	*state = 1;
	return 0;
}

/* The offset after a record of len bytes at o. */
static uint64_t secmon_record_next(uint64_t o, size_t len)
{
	return (o + len + SECMON_SB_ALIGN - 1) / SECMON_SB_ALIGN * SECMON_SB_ALIGN;
}

/* Scans slot j's records from offset 0 (§9.3): cand gets the last one that
 * checks out (with a higher seq than the one before it); the scan stops at
 * erased bytes (*clean, *end: where the next record goes) or at the first
 * record that does not check out (not clean). Returns 0 or a chip status. */
static int secmon_slot_load(struct chip *c, uint32_t comp, uint32_t first, uint32_t count,
                            uint32_t bs, uint32_t j, struct secmon_cand *cand, uint64_t *end,
                            bool *clean)
{
	struct secmon_geom g = {.first = first, .count = count, .bs = bs};
	uint32_t meta = 0;
	uint64_t o = 0;
	int rc = 0;

	memset(cand, 0, sizeof(*cand));
	*end = 0;
	*clean = false;
	for (;;) {
		struct secmon_cand r;
		int state;
		/* A slot never exceeds a quarter of the region. */
		if (o + SECMON_SB_HDR > (uint64_t)(count / 4) * bs) {
			*end = o;
			break;
		}
		rc = secmon_record_load(c, comp, &g, j, o, &meta, &r, &state);
		if (rc != 0 || state < 0)
			break;
		if (state == 0) {
			*end = o;
			*clean = true;
			break;
		}
		if (cand->buf && r.seq <= cand->seq) {
			free(r.buf);
			break; /* out of order: not written by a commit */
		}
		free(cand->buf);
		*cand = r;
		o = secmon_record_next(o, r.len);
	}
	if (rc != 0) {
		free(cand->buf);
		memset(cand, 0, sizeof(*cand));
	}
	return rc;
}

/* The rules of §9.3 for the winning slot j; fills g. */
static int secmon_slot_rules(const uint8_t *h, uint32_t j, uint32_t first, uint32_t count,
                             uint32_t bs, struct secmon_geom *g)
{
	uint64_t seq = secmon_get_le64(h + 16);
	uint32_t meta = secmon_get_le32(h + 40);

	if (seq == 0 || seq >= (1ull << 63) || (seq & 1) != j / 2)
		return SPH_ERR_MALFORMED;
	if (secmon_get_le32(h + 24) != first || secmon_get_le32(h + 28) != count ||
	    secmon_get_le32(h + 32) != bs)
		return SPH_ERR_MALFORMED;
	if (h[36] < 1 || h[37] < 1 || secmon_get_le16(h + 38) != 0 || secmon_get_le32(h + 44) != 0)
		return SPH_ERR_MALFORMED;
	if (secmon_geom_init(g, first, count, bs, h[36], h[37], meta) != 0 ||
	    g->meta_blocks != meta)
		return SPH_ERR_MALFORMED;
	return 0;
}

static int secmon_region_check(struct chip *c, const struct secmon_region *r, uint32_t *bs)
{
	struct chip_flash_geometry fg;

	if (chip_flash_geometry(chip_flash(c), &fg) != 0)
		return SPH_ERR_INVALID_ARG;
	if (r->block_count < SECMON_SLOTS || r->first_block >= fg.block_count ||
	    r->block_count > fg.block_count - r->first_block)
		return SPH_ERR_INVALID_ARG;
	*bs = fg.block_size;
	return 0;
}

int secmon_load(struct chip *c, uint32_t comp, const struct secmon_region *r,
                struct secmon_state *st)
{
	struct secmon_cand cand[SECMON_SLOTS];
	uint32_t bs = 0, best = SECMON_SLOTS, sib;
	int rc;

	memset(st, 0, sizeof(*st));
	memset(cand, 0, sizeof(cand));
	rc = secmon_region_check(c, r, &bs);
	if (rc != 0)
		return rc;
	for (uint32_t j = 0; j < SECMON_SLOTS; j++) {
		rc = secmon_slot_load(c, comp, r->first_block, r->block_count, bs, j, &cand[j],
		                      &st->slot_end[j], &st->slot_clean[j]);
		if (rc != 0)
			goto out;
		if (cand[j].buf && (best == SECMON_SLOTS || cand[j].seq > cand[best].seq))
			best = j;
	}
	rc = SPH_ERR_NOT_FOUND;
	if (best == SECMON_SLOTS)
		goto out;
	/* Two slots with the winning seq must be the two copies of one commit. */
	rc = SPH_ERR_MALFORMED;
	for (uint32_t j = 0; j < SECMON_SLOTS; j++) {
		if (j == best || !cand[j].buf || cand[j].seq != cand[best].seq)
			continue;
		if (cand[j].len != cand[best].len ||
		    memcmp(cand[j].buf, cand[best].buf, cand[j].len))
			goto out;
	}
	rc = secmon_slot_rules(cand[best].buf, best, r->first_block, r->block_count, bs, &st->g);
	if (rc != 0)
		goto out;
	rc = secmon_table_parse(cand[best].buf + SECMON_SB_HDR, cand[best].len - SECMON_SB_HDR,
	                        &st->g, &st->t);
	if (rc != 0) {
		rc = rc == SPH_ERR_NOMEM ? rc : SPH_ERR_MALFORMED;
		goto out;
	}
	st->seq = cand[best].seq;
	sib = best ^ 1u;
	st->degraded = !cand[sib].buf || cand[sib].seq != cand[best].seq;
	rc = 0;
out:
	for (uint32_t j = 0; j < SECMON_SLOTS; j++)
		free(cand[j].buf);
	if (rc != 0)
		memset(st, 0, sizeof(*st));
	return rc;
}

/* Erases superblock slot j (all its blocks). */
static int secmon_slot_erase(struct secmon *s, uint32_t j)
{
	const struct secmon_geom *g = &s->st.g;

	for (uint32_t b = 0; b < g->meta_blocks / 2; b++) {
		int rc = chip_erase(s->c, s->comp, g->first + j + SECMON_SLOTS * b);
		if (rc != 0)
			return rc;
	}
	return 0;
}

/* Programs a record of total bytes into slot j: after its last record while
 * the slot is clean and has room, else (or when the flash refuses, finding
 * bytes that are not erased after an interrupted erase) into the freshly
 * erased slot at 0. */
static int secmon_slot_append(struct secmon *s, uint32_t j, const uint8_t *rec, size_t total)
{
	const struct secmon_geom *g = &s->st.g;
	uint64_t at = s->st.slot_end[j], cap = (uint64_t)(g->meta_blocks / 2) * g->bs;
	bool erased = false;
	int rc;

	if (!s->st.slot_clean[j] || at + total > cap) {
		rc = secmon_slot_erase(s, j);
		if (rc != 0)
			return rc;
		at = 0;
		erased = true;
	}
	s->st.slot_clean[j] = false; /* until the record is whole */
	for (uint64_t o = 0; o < total;) {
		uint64_t in = (at + o) % g->bs;
		size_t n = g->bs - in < total - o ? (size_t)(g->bs - in) : (size_t)(total - o);
		uint32_t blk = secmon_slot_block(g, j, at + o);
		rc = chip_program(s->c, s->comp, secmon_block_off(g, blk) + in, rec + o, n);
		if (rc == SPH_ERR_STATE && !erased) {
			rc = secmon_slot_erase(s, j);
			if (rc != 0)
				return rc;
			at = 0;
			o = 0;
			erased = true;
			continue;
		}
		if (rc != 0)
			return rc;
		o += n;
	}
	s->st.slot_end[j] = secmon_record_next(at, total);
	s->st.slot_clean[j] = true;
	return 0;
}

/* Writes nt as the next commit (§9.3). */
static int secmon_commit(struct secmon *s, const struct secmon_table *nt)
{
	const struct secmon_geom *g = &s->st.g;
	size_t tlen = secmon_table_size(nt), total, enc = 0;
	uint64_t seq = s->st.seq + 1;
	uint8_t *buf = NULL;
	int rc = SPH_ERR_NO_SPACE;

	if (tlen > g->table_cap)
		goto out;
	total = SECMON_SB_HDR + tlen;
	rc = SPH_ERR_NOMEM;
	buf = malloc(total);
	if (!buf)
		goto out;
	memset(buf, 0, SECMON_SB_HDR);
	memcpy(buf, SECMON_SB_MAGIC, SECMON_SB_MAGIC_LEN);
	secmon_put_le32(buf + 8, SECMON_SB_VERSION);
	secmon_put_le32(buf + 12, (uint32_t)tlen);
	secmon_put_le64(buf + 16, seq);
	secmon_put_le32(buf + 24, g->first);
	secmon_put_le32(buf + 28, g->count);
	secmon_put_le32(buf + 32, g->bs);
	buf[36] = g->k;
	buf[37] = g->m;
	secmon_put_le32(buf + 40, g->meta_blocks);
	rc = secmon_table_encode(nt, buf + SECMON_SB_HDR, tlen, &enc);
	if (rc != 0)
		goto out;
	rc = secmon_sha256(buf, SECMON_SB_OFF_HASH, buf + SECMON_SB_HDR, tlen,
	                   buf + SECMON_SB_OFF_HASH);
	if (rc != 0)
		goto out;
	for (uint32_t copy = 0; copy < 2; copy++) {
		uint32_t j = 2 * (uint32_t)(seq & 1) + copy;
		rc = secmon_slot_append(s, j, buf, total);
		if (rc != 0)
			goto out;
	}
	s->st.seq = seq;
	s->st.degraded = false;
	rc = 0;
out:
	free(buf);
	return rc;
}

/* Drops app records with quota 0 that no entry of t uses. */
static void secmon_prune_apps(struct secmon_table *t)
{
	uint32_t w = 0;

	for (uint32_t a = 0; a < t->napps; a++) {
		bool keep = t->apps[a].quota != 0;
		for (uint32_t i = 0; i < t->nobj && !keep; i++)
			keep = t->obj[i].ns == SECMON_NS_APP &&
			       memcmp(t->obj[i].app, t->apps[a].id, SECMON_APP_ID_LEN) == 0;
		if (keep)
			t->apps[w++] = t->apps[a];
	}
	t->napps = w;
}

int secmon_install(struct secmon *s, struct secmon_table *nt, uint16_t **gone, size_t ngone,
                   uint16_t *fresh)
{
	int rc;

	secmon_prune_apps(nt);
	rc = secmon_commit(s, nt);
	if (rc != 0) {
		free(fresh);
		secmon_table_free_shallow(nt);
		if (rc != SPH_ERR_NO_SPACE && rc != SPH_ERR_NOMEM)
			s->stale = true;
		return rc;
	}
	for (size_t i = 0; i < ngone; i++)
		free(gone[i]);
	secmon_table_free_shallow(&s->st.t);
	s->st.t = *nt;
	memset(nt, 0, sizeof(*nt));
	secmon_recount(s);
	return 0;
}

int secmon_enter(struct secmon *s, bool write)
{
	int rc;

	pthread_mutex_lock(&s->mu);
	rc = secmon_refresh(s);
	if (rc == 0 && write && s->ro)
		rc = SPH_ERR_PERMISSION;
	return rc;
}

int secmon_refresh(struct secmon *s)
{
	struct secmon_state st;
	int rc;

	if (!s->stale)
		return 0;
	rc = secmon_load(s->c, s->comp, &s->r, &st);
	if (rc != 0)
		return rc;
	if (st.g.bs != s->st.g.bs || st.g.k + 2u * st.g.m > s->st.g.k + 2u * s->st.g.m) {
		secmon_table_free(&st.t);
		return SPH_ERR_STATE; /* reformatted under us with another shape */
	}
	secmon_table_free(&s->st.t);
	s->st = st;
	secmon_recount(s);
	memset(s->erased, 0, s->st.g.count);
	s->stale = false;
	return 0;
}

/* ---- allocation and block writes ------------------------------------------ */

static int secmon_key_cmp(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y ? 1 : 0;
}

int secmon_alloc_init(struct secmon *s, struct secmon_alloc *a)
{
	const struct secmon_geom *g = &s->st.g;
	struct chip_flash *f = chip_flash(s->c);

	memset(a, 0, sizeof(*a));
	a->keys = malloc((size_t)g->count * sizeof(*a->keys));
	if (!a->keys)
		return SPH_ERR_NOMEM;
	for (uint32_t i = 2 * g->meta_blocks; i < g->count; i++) {
		uint32_t n = 0;
		if (s->used[i])
			continue;
		if (chip_flash_erase_count(f, g->first + i, &n) != 0)
			n = UINT32_MAX;
		a->keys[a->n++] = ((uint64_t)n << 32) | (g->first + i);
	}
	qsort(a->keys, a->n, sizeof(*a->keys), secmon_key_cmp);
	return 0;
}

int secmon_alloc_take(struct secmon_alloc *a, uint16_t *blk)
{
	if (a->next >= a->n)
		return SPH_ERR_NO_SPACE;
	*blk = (uint16_t)(a->keys[a->next++] & 0xffffffffu);
	return 0;
}

void secmon_alloc_free(struct secmon_alloc *a)
{
	if (!a)
		return;
	free(a->keys);
	memset(a, 0, sizeof(*a));
}

/* Erases the blocks of [blk, blk + n) not known to be erased. */
static int secmon_erase_run(struct secmon *s, uint32_t blk, size_t n)
{
	const struct secmon_geom *g = &s->st.g;

	for (size_t i = 0; i < n; i++) {
		uint32_t b = blk + (uint32_t)i;
		int rc;
		if (s->erased[b - g->first])
			continue;
		rc = chip_erase(s->c, s->comp, b);
		if (rc != 0)
			return rc;
		s->erased[b - g->first] = 1;
	}
	return 0;
}

int secmon_write_blocks(struct secmon *s, const uint16_t *blks, const uint8_t *imgs, size_t n)
{
	const struct secmon_geom *g = &s->st.g;
	size_t i = 0;
	int rc = 0;

	/* Runs of consecutive blocks: one program each (fewer file operations). A
	 * run not known erased is programmed as it is first: NOR programming only
	 * clears bits and the flash refuses, changing nothing, a program that
	 * would set one (SPH_ERR_STATE) or touches a lost block (SPH_ERR_IO); a
	 * program that is accepted leaves exactly the image. On refusal the run
	 * is erased and programmed again (§9.3). */
	while (i < n) {
		const uint8_t *img = imgs + i * (size_t)g->bs;
		uint64_t off = secmon_block_off(g, blks[i]);
		size_t run = 1;
		while (i + run < n && blks[i + run] == blks[i] + run)
			run++;
		rc = chip_program(s->c, s->comp, off, img, run * (size_t)g->bs);
		if (rc == SPH_ERR_STATE || rc == SPH_ERR_IO) {
			rc = secmon_erase_run(s, blks[i], run);
			if (rc == 0)
				rc = chip_program(s->c, s->comp, off, img, run * (size_t)g->bs);
		}
		for (size_t j = 0; j < run; j++)
			s->erased[blks[i] + j - g->first] = 0;
		if (rc != 0)
			return rc;
		i += run;
	}
	return 0;
}

int secmon_stripe_build(const struct secmon_geom *g, const struct secmon_entry *e, uint32_t st,
                        const uint8_t *data, uint8_t *buf)
{
	uint8_t k_s = secmon_stripe_k(&e->lay, st), m = e->m;
	uint8_t *dp[SECMON_MAX_K], *pp[SECMON_MAX_M];
	uint64_t off0 = (uint64_t)st * e->lay.k_eff * g->payload;
	int rc;

	for (uint8_t i = 0; i < k_s + m; i++) {
		uint8_t *pl = buf + (size_t)i * g->bs + SECMON_SHARD_HDR;
		if (i < k_s) {
			uint64_t off = off0 + (uint64_t)i * g->payload;
			size_t n = e->len - off < g->payload ? (size_t)(e->len - off) : g->payload;
			memcpy(pl, data + off, n);
			memset(pl + n, 0, g->payload - n);
			dp[i] = pl;
		} else {
			pp[i - k_s] = pl;
		}
	}
	rc = secmon_rs_encode(k_s, m, dp, pp, g->payload);
	if (rc != 0)
		return rc;
	for (uint8_t i = 0; i < k_s + m; i++)
		secmon_shard_seal(g, buf + (size_t)i * g->bs, i, k_s, m, st, e->objid);
	return 0;
}

/* ---- format and mount ------------------------------------------------------ */

int secmon_format(struct chip *c, const struct secmon_region *r, const struct secmon_params *p)
{
	struct secmon s;
	struct secmon_table empty = {0};
	uint32_t bs = 0;
	int rc = SPH_ERR_INVALID_ARG;

	memset(&s, 0, sizeof(s));
	if (!c || !r)
		goto out;
	rc = secmon_region_check(c, r, &bs);
	if (rc != 0)
		goto out;
	rc = secmon_geom_init(&s.st.g, r->first_block, r->block_count, bs, p ? p->k : 0,
	                      p ? p->m : 0, p ? p->meta_blocks : 0);
	if (rc != 0)
		goto out;
	/* The slot heads first: from then on no old table can win. */
	for (uint32_t i = 0; i < r->block_count; i++) {
		rc = chip_erase(c, CHIP_COMP_SECMON, r->first_block + i);
		if (rc != 0)
			goto out;
	}
	s.c = c;
	s.comp = CHIP_COMP_SECMON;
	rc = secmon_commit(&s, &empty);
out:
	return rc;
}

int secmon_mount(struct chip *c, uint32_t comp, const struct secmon_region *r, struct secmon **out)
{
	struct secmon *s = NULL;
	bool mu = false;
	int rc = SPH_ERR_INVALID_ARG;

	if (out)
		*out = NULL;
	if (!c || !r || !out || comp >= CHIP_COMP_COUNT)
		goto out;
	rc = SPH_ERR_NOMEM;
	s = calloc(1, sizeof(*s));
	if (!s)
		goto out;
	rc = SPH_ERR_STATE;
	if (pthread_mutex_init(&s->mu, NULL) != 0)
		goto out;
	mu = true;
	rc = secmon_load(c, comp, r, &s->st);
	if (rc != 0)
		goto out;
	s->c = c;
	s->comp = comp;
	s->ro = comp != CHIP_COMP_SECMON;
	s->r = *r;
	rc = SPH_ERR_NOMEM;
	s->used = calloc(s->st.g.count, 1);
	s->erased = calloc(s->st.g.count, 1);
	s->stripe = malloc((size_t)(s->st.g.k + 2u * s->st.g.m) * s->st.g.bs);
	s->scratch = malloc(s->st.g.bs);
	if (!s->used || !s->erased || !s->stripe || !s->scratch)
		goto out;
	secmon_recount(s);
	*out = s;
	s = NULL; /* transferred */
	rc = 0;
out:
	if (s) {
		secmon_table_free(&s->st.t);
		free(s->used);
		free(s->erased);
		free(s->stripe);
		free(s->scratch);
		if (mu)
			pthread_mutex_destroy(&s->mu);
		free(s);
	}
	return rc;
}

void secmon_unmount(struct secmon *s)
{
	if (!s)
		return;
	secmon_table_free(&s->st.t);
	free(s->used);
	free(s->erased);
	free(s->stripe);
	free(s->scratch);
	pthread_mutex_destroy(&s->mu);
	free(s);
}

/* ---- put and delete -------------------------------------------------------- */

int secmon_put_locked(struct secmon *s, uint8_t ns, const uint8_t *app, const char *name,
                      size_t name_len, const void *data, size_t len)
{
	const struct secmon_geom *g = &s->st.g;
	struct secmon_table nt = {0};
	struct secmon_alloc al = {0};
	struct secmon_entry e;
	struct secmon_bghash hash;
	uint16_t *gone = NULL;
	uint8_t *batch = NULL;
	uint32_t free_blocks = 0, cap;
	bool found, have_nt = false, hashing = false;
	size_t i;
	int rc;

	memset(&e, 0, sizeof(e));
	rc = secmon_refresh(s);
	if (rc != 0)
		goto out;
	rc = SPH_ERR_PERMISSION;
	if (s->ro)
		goto out;
	e.ns = ns;
	if (app)
		memcpy(e.app, app, SECMON_APP_ID_LEN);
	e.name_len = (uint8_t)name_len;
	memcpy(e.name, name, name_len);
	e.len = len;
	e.m = g->m;
	secmon_layout_of(g, len, &e.lay);
	for (uint32_t b = 2 * g->meta_blocks; b < g->count; b++)
		free_blocks += !s->used[b];
	rc = SPH_ERR_NO_SPACE;
	if (e.lay.nblocks > free_blocks)
		goto out;
	/* The shards carry a fresh random id, so they can be written while the
	 * SHA-256 is computed on another thread; the table needs it only at the
	 * commit. */
	rc = SPH_ERR_RANDOM;
	if (RAND_bytes(e.objid, SECMON_OBJID_LEN) != 1)
		goto out;
	rc = secmon_bghash_start(&hash, data, len, len);
	if (rc != 0)
		goto out;
	hashing = true;
	rc = SPH_ERR_NOMEM;
	if (e.lay.nblocks && !(e.blocks = malloc((size_t)e.lay.nblocks * sizeof(*e.blocks))))
		goto out;
	i = secmon_table_find(&s->st.t, ns, e.app, name, name_len, &found);
	if (found)
		gone = s->st.t.obj[i].blocks;
	rc = secmon_table_edit(&s->st.t, i, !found, &e, &nt);
	if (rc != 0)
		goto out;
	have_nt = true;
	rc = SPH_ERR_NO_SPACE;
	if (secmon_table_size(&nt) > g->table_cap)
		goto out;
	rc = secmon_alloc_init(s, &al);
	if (rc != 0)
		goto out;
	/* Stripes are built into a batch of up to SECMON_WRITE_BATCH bytes and
	 * written together: their blocks are mostly consecutive, so a batch is a
	 * few large programs instead of one per stripe. */
	cap = SECMON_WRITE_BATCH / g->bs;
	if (cap < SECMON_MAX_K + SECMON_MAX_M)
		cap = SECMON_MAX_K + SECMON_MAX_M;
	if (cap > e.lay.nblocks)
		cap = e.lay.nblocks;
	rc = SPH_ERR_NOMEM;
	if (cap && !(batch = malloc((size_t)cap * g->bs)))
		goto out;
	rc = 0;
	for (uint32_t st = 0, first = 0, used = 0; st < e.lay.stripes; st++) {
		uint32_t base = secmon_stripe_base(g, &e.lay, st);
		uint32_t n = secmon_stripe_k(&e.lay, st) + g->m;
		if (used + n > cap) {
			rc = secmon_write_blocks(s, e.blocks + first, batch, used);
			if (rc != 0)
				goto out;
			used = 0;
		}
		if (used == 0)
			first = base;
		rc = secmon_stripe_build(g, &e, st, data, batch + (size_t)used * g->bs);
		if (rc != 0)
			goto out;
		for (uint32_t j = 0; j < n; j++) {
			rc = secmon_alloc_take(&al, &e.blocks[base + j]);
			if (rc != 0)
				goto out;
		}
		used += n;
		if (st + 1 == e.lay.stripes)
			rc = secmon_write_blocks(s, e.blocks + first, batch, used);
		if (rc != 0)
			goto out;
	}
	hashing = false;
	rc = secmon_bghash_join(&hash, nt.obj[i].sha256);
	if (rc != 0)
		goto out;
	have_nt = false;
	rc = secmon_install(s, &nt, &gone, gone ? 1 : 0, e.blocks);
	e.blocks = NULL; /* taken by install, either way */
out:
	if (hashing)
		secmon_bghash_abort(&hash);
	if (rc == SPH_ERR_POWER_LOSS)
		s->stale = true;
	if (have_nt)
		secmon_table_free_shallow(&nt);
	secmon_alloc_free(&al);
	free(batch);
	free(e.blocks);
	return rc;
}

int secmon_delete_locked(struct secmon *s, size_t i)
{
	struct secmon_table nt;
	uint16_t *gone = s->st.t.obj[i].blocks;
	int rc;

	rc = secmon_table_edit(&s->st.t, i, false, NULL, &nt);
	if (rc != 0)
		return rc;
	return secmon_install(s, &nt, &gone, 1, NULL);
}

int secmon_put(struct secmon *s, const char *name, const void *data, size_t len)
{
	size_t nlen;
	int rc = SPH_ERR_INVALID_ARG;

	if (!s || !secmon_name_ok(name, SECMON_NAME_MAX, &nlen) || (!data && len) ||
	    len > SECMON_OBJECT_MAX)
		return rc;
	pthread_mutex_lock(&s->mu);
	rc = secmon_put_locked(s, SECMON_NS_SYSTEM, NULL, name, nlen, data, len);
	pthread_mutex_unlock(&s->mu);
	return rc;
}

int secmon_delete_ns(struct secmon *s, uint8_t ns, const uint8_t *app, const char *name,
                     size_t name_max)
{
	size_t nlen, i;
	bool found;
	int rc = SPH_ERR_INVALID_ARG;

	if (!s || (ns == SECMON_NS_APP && !app) || !secmon_name_ok(name, name_max, &nlen))
		return rc;
	rc = secmon_enter(s, true);
	if (rc != 0)
		goto out;
	i = secmon_table_find(&s->st.t, ns, ns == SECMON_NS_APP ? app : NULL, name, nlen, &found);
	rc = SPH_ERR_NOT_FOUND;
	if (!found)
		goto out;
	rc = secmon_delete_locked(s, i);
out:
	pthread_mutex_unlock(&s->mu);
	return rc;
}

int secmon_delete(struct secmon *s, const char *name)
{
	return secmon_delete_ns(s, SECMON_NS_SYSTEM, NULL, name, SECMON_NAME_MAX);
}

/* ---- get, stat, list, stats ------------------------------------------------ */

int secmon_get_ns(struct secmon *s, uint8_t ns, const uint8_t *app, const char *name,
                  size_t name_max, uint8_t **data, size_t *len, char *why, size_t why_cap)
{
	size_t nlen, i;
	uint64_t olen;
	bool found;
	int rc = SPH_ERR_INVALID_ARG;

	if (data)
		*data = NULL;
	if (len)
		*len = 0;
	if (why && why_cap)
		why[0] = '\0';
	if (!s || (ns == SECMON_NS_APP && !app) || !data || !len ||
	    !secmon_name_ok(name, name_max, &nlen))
		return rc;
	rc = secmon_enter(s, false);
	if (rc != 0)
		goto out;
	i = secmon_table_find(&s->st.t, ns, ns == SECMON_NS_APP ? app : NULL, name, nlen, &found);
	rc = SPH_ERR_NOT_FOUND;
	if (!found)
		goto out;
	olen = s->st.t.obj[i].len;
	rc = secmon_read_entry(s, i, false, data, why, why_cap, NULL);
	if (rc == 0)
		*len = (size_t)olen;
out:
	pthread_mutex_unlock(&s->mu);
	return rc;
}

int secmon_get(struct secmon *s, const char *name, uint8_t **data, size_t *len, char *why,
               size_t why_cap)
{
	return secmon_get_ns(s, SECMON_NS_SYSTEM, NULL, name, SECMON_NAME_MAX, data, len, why,
	                     why_cap);
}

static void secmon_info_of(const struct secmon_entry *e, struct secmon_object_info *info)
{
	memset(info, 0, sizeof(*info));
	memcpy(info->name, e->name, e->name_len);
	info->len = e->len;
	memcpy(info->sha256, e->sha256, 32);
	info->k = e->lay.k_eff;
	info->m = e->m;
	info->stripes = e->lay.stripes;
}

int secmon_stat(struct secmon *s, const char *name, struct secmon_object_info *info)
{
	size_t nlen, i;
	bool found;
	int rc = SPH_ERR_INVALID_ARG;

	if (info)
		memset(info, 0, sizeof(*info));
	if (!s || !info || !secmon_name_ok(name, SECMON_NAME_MAX, &nlen))
		return rc;
	rc = secmon_enter(s, false);
	if (rc != 0)
		goto out;
	i = secmon_table_find(&s->st.t, SECMON_NS_SYSTEM, NULL, name, nlen, &found);
	rc = SPH_ERR_NOT_FOUND;
	if (!found)
		goto out;
	secmon_info_of(&s->st.t.obj[i], info);
	rc = 0;
out:
	pthread_mutex_unlock(&s->mu);
	return rc;
}

int secmon_object_at(struct secmon *s, size_t i, struct secmon_object_info *info)
{
	int rc = SPH_ERR_INVALID_ARG;

	if (info)
		memset(info, 0, sizeof(*info));
	if (!s || !info)
		return rc;
	rc = secmon_enter(s, false);
	if (rc != 0)
		goto out;
	/* System entries sort first. */
	rc = SPH_ERR_NOT_FOUND;
	if (i >= s->st.t.nobj || s->st.t.obj[i].ns != SECMON_NS_SYSTEM)
		goto out;
	secmon_info_of(&s->st.t.obj[i], info);
	rc = 0;
out:
	pthread_mutex_unlock(&s->mu);
	return rc;
}

int secmon_stats(struct secmon *s, struct secmon_stats *st)
{
	struct chip_flash *f;
	const struct secmon_geom *g;
	uint64_t sum = 0;
	int rc = SPH_ERR_INVALID_ARG;

	if (st)
		memset(st, 0, sizeof(*st));
	if (!s || !st)
		return rc;
	rc = secmon_enter(s, false);
	if (rc != 0)
		goto out;
	g = &s->st.g;
	f = chip_flash(s->c);
	st->params.k = g->k;
	st->params.m = g->m;
	st->params.meta_blocks = g->meta_blocks;
	st->blocks = g->count;
	for (uint32_t b = 2 * g->meta_blocks; b < g->count; b++)
		st->free_blocks += !s->used[b];
	st->objects = s->st.t.nobj;
	st->seq = s->st.seq;
	for (uint32_t i = 0; i < s->st.t.nobj; i++)
		st->bytes_stored += s->st.t.obj[i].len;
	st->erase_min = UINT32_MAX;
	for (uint32_t b = 0; b < g->count; b++) {
		uint32_t n = 0;
		rc = chip_flash_erase_count(f, g->first + b, &n);
		if (rc != 0)
			goto out;
		if (n < st->erase_min)
			st->erase_min = n;
		if (n > st->erase_max)
			st->erase_max = n;
		if (n >= SECMON_WORN_ERASES)
			st->worn_blocks++;
		sum += n;
	}
	st->erase_mean = (double)sum / g->count;
	st->read_only = s->ro;
	rc = 0;
out:
	pthread_mutex_unlock(&s->mu);
	return rc;
}
