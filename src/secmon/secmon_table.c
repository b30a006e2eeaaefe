/*
 * secmon: store geometry, object layout and the object table's encoding
 * (docs/formats.md §9.1, §9.2, §9.4). The parser reads untrusted flash bytes
 * through a bounded cursor: every field is length-checked before it is read,
 * every count is capped before anything is allocated, and the table must end
 * exactly after its last entry.
 */
#include <stdlib.h>
#include <string.h>

#include "common/common.h"
#include "secmon_internal.h"

_Static_assert(SECMON_APP_REC == SECMON_APP_ID_LEN + 8, "app record size");
_Static_assert(SECMON_ENTRY_FIXED == 60, "object entry fixed part");
_Static_assert(SECMON_SHARD_HDR == 4 + 1 + 1 + 1 + 1 + 4 + SECMON_OBJID_LEN + 4,
               "shard header size");
_Static_assert(SECMON_SB_HDR == SECMON_SB_OFF_HASH + 32, "superblock header size");
_Static_assert(CHIP_FLASH_MAX_BLOCKS <= 65536u, "block numbers are u16");

/* memcpy that accepts NULL pointers for n == 0. */
static void secmon_copy(void *dst, const void *src, size_t n)
{
	if (n)
		memcpy(dst, src, n);
}

/* Copies count entries from src[si] to dst[di]; NULL arrays when count is 0. */
static void secmon_copy_entries(struct secmon_entry *dst, size_t di, const struct secmon_entry *src,
                                size_t si, size_t count)
{
	if (count)
		memcpy(dst + di, src + si, count * sizeof(*dst));
}

int secmon_geom_init(struct secmon_geom *g, uint32_t first, uint32_t count, uint32_t bs, uint32_t k,
                     uint32_t m, uint32_t meta_blocks)
{
	uint64_t cap;

	memset(g, 0, sizeof(*g));
	if (bs < CHIP_FLASH_MIN_BLOCK_SIZE || bs > CHIP_FLASH_MAX_BLOCK_SIZE || (bs & (bs - 1)) ||
	    count == 0 || count > CHIP_FLASH_MAX_BLOCKS)
		return SPH_ERR_INVALID_ARG;
	if (k == 0)
		k = SECMON_DEFAULT_K;
	if (m == 0)
		m = SECMON_DEFAULT_M;
	if (k > SECMON_MAX_K || m > SECMON_MAX_M)
		return SPH_ERR_INVALID_ARG;
	if (meta_blocks == 0) {
		uint64_t c = (SECMON_DEFAULT_TABLE + 2ull * count + bs - 1) / bs;
		uint64_t lim = count / 32 ? count / 32 : 1;
		meta_blocks = (uint32_t)(2 * (c < lim ? c : lim));
	}
	if (meta_blocks < 2 || (meta_blocks & 1))
		return SPH_ERR_INVALID_ARG;
	if (2ull * meta_blocks + k + m > count)
		return SPH_ERR_NO_SPACE;
	g->first = first;
	g->count = count;
	g->bs = bs;
	g->payload = bs - SECMON_SHARD_HDR;
	g->k = (uint8_t)k;
	g->m = (uint8_t)m;
	g->meta_blocks = meta_blocks;
	g->cpb = meta_blocks / 2;
	cap = (uint64_t)g->cpb * bs - SECMON_SB_HDR;
	g->table_cap = cap > SECMON_TABLE_MAX ? SECMON_TABLE_MAX : (uint32_t)cap;
	return 0;
}

void secmon_layout_of(const struct secmon_geom *g, uint64_t len, struct secmon_layout *l)
{
	uint64_t d = (len + g->payload - 1) / g->payload;

	memset(l, 0, sizeof(*l));
	if (d == 0)
		return;
	l->data_shards = (uint32_t)d;
	l->k_eff = (uint8_t)(d < g->k ? d : g->k);
	l->stripes = (uint32_t)((d + l->k_eff - 1) / l->k_eff);
	l->nblocks = l->data_shards + l->stripes * g->m;
}

uint8_t secmon_stripe_k(const struct secmon_layout *l, uint32_t s)
{
	uint32_t left = l->data_shards - s * l->k_eff;

	return (uint8_t)(left < l->k_eff ? left : l->k_eff);
}

uint32_t secmon_stripe_base(const struct secmon_geom *g, const struct secmon_layout *l, uint32_t s)
{
	return s * (l->k_eff + g->m);
}

void secmon_table_free_shallow(struct secmon_table *t)
{
	if (!t)
		return;
	free(t->apps);
	free(t->obj);
	memset(t, 0, sizeof(*t));
}

void secmon_table_free(struct secmon_table *t)
{
	if (!t)
		return;
	for (uint32_t i = 0; i < t->nobj && t->obj; i++)
		free(t->obj[i].blocks);
	secmon_table_free_shallow(t);
}

static size_t secmon_entry_size(const struct secmon_entry *e)
{
	return SECMON_ENTRY_FIXED + (e->ns == SECMON_NS_APP ? SECMON_APP_ID_LEN : 0) + e->name_len +
	       2 * (size_t)e->lay.nblocks;
}

size_t secmon_table_size(const struct secmon_table *t)
{
	size_t n = SECMON_TABLE_MIN + (size_t)t->napps * SECMON_APP_REC;

	for (uint32_t i = 0; i < t->nobj; i++)
		n += secmon_entry_size(&t->obj[i]);
	return n;
}

int secmon_table_encode(const struct secmon_table *t, uint8_t *buf, size_t cap, size_t *len)
{
	size_t need = secmon_table_size(t), off = 0;

	*len = 0;
	if (need > cap)
		return SPH_ERR_BUFFER_TOO_SMALL;
	secmon_put_le32(buf, t->napps);
	secmon_put_le32(buf + 4, t->nobj);
	off = SECMON_TABLE_MIN;
	for (uint32_t i = 0; i < t->napps; i++) {
		memcpy(buf + off, t->apps[i].id, SECMON_APP_ID_LEN);
		secmon_put_le64(buf + off + SECMON_APP_ID_LEN, t->apps[i].quota);
		off += SECMON_APP_REC;
	}
	for (uint32_t i = 0; i < t->nobj; i++) {
		const struct secmon_entry *e = &t->obj[i];
		buf[off++] = e->ns;
		buf[off++] = e->name_len;
		if (e->ns == SECMON_NS_APP) {
			memcpy(buf + off, e->app, SECMON_APP_ID_LEN);
			off += SECMON_APP_ID_LEN;
		}
		memcpy(buf + off, e->name, e->name_len);
		off += e->name_len;
		secmon_put_le64(buf + off, e->len);
		off += 8;
		memcpy(buf + off, e->sha256, 32);
		off += 32;
		memcpy(buf + off, e->objid, SECMON_OBJID_LEN);
		off += SECMON_OBJID_LEN;
		buf[off++] = e->lay.k_eff;
		buf[off++] = e->m;
		for (uint32_t b = 0; b < e->lay.nblocks; b++, off += 2)
			secmon_put_le16(buf + off, e->blocks[b]);
	}
	*len = off;
	return 0;
}

int secmon_entry_cmp(uint8_t ns_a, const uint8_t *app_a, const char *name_a, size_t len_a,
                     uint8_t ns_b, const uint8_t *app_b, const char *name_b, size_t len_b)
{
	static const uint8_t zero[SECMON_APP_ID_LEN];
	size_t n = len_a < len_b ? len_a : len_b;
	int c;

	if (ns_a != ns_b)
		return ns_a < ns_b ? -1 : 1;
	c = memcmp(app_a ? app_a : zero, app_b ? app_b : zero, SECMON_APP_ID_LEN);
	if (c != 0)
		return c;
	c = memcmp(name_a, name_b, n);
	if (c != 0)
		return c;
	return len_a < len_b ? -1 : len_a > len_b ? 1 : 0;
}

size_t secmon_table_find(const struct secmon_table *t, uint8_t ns, const uint8_t *app,
                         const char *name, size_t name_len, bool *found)
{
	size_t lo = 0, hi = t->nobj;

	*found = false;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		const struct secmon_entry *e = &t->obj[mid];
		int c = secmon_entry_cmp(e->ns, e->app, e->name, e->name_len, ns, app, name,
		                         name_len);
		if (c == 0) {
			*found = true;
			return mid;
		}
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

int secmon_table_edit(const struct secmon_table *t, size_t i, bool insert,
                      const struct secmon_entry *e, struct secmon_table *out)
{
	size_t n = t->nobj, nn = insert ? n + 1 : (e ? n : n - 1);
	int rc = SPH_ERR_NOMEM;

	memset(out, 0, sizeof(*out));
	if (t->napps) {
		out->apps = malloc((size_t)t->napps * sizeof(*out->apps));
		if (!out->apps)
			goto out;
		memcpy(out->apps, t->apps, (size_t)t->napps * sizeof(*out->apps));
	}
	out->napps = t->napps;
	if (nn) {
		out->obj = malloc(nn * sizeof(*out->obj));
		if (!out->obj)
			goto out;
	}
	if (insert) {
		secmon_copy_entries(out->obj, 0, t->obj, 0, i);
		out->obj[i] = *e;
		secmon_copy_entries(out->obj, i + 1, t->obj, i, n - i);
	} else if (e) {
		secmon_copy_entries(out->obj, 0, t->obj, 0, n);
		out->obj[i] = *e;
	} else {
		secmon_copy_entries(out->obj, 0, t->obj, 0, i);
		secmon_copy_entries(out->obj, i, t->obj, i + 1, n - i - 1);
	}
	out->nobj = (uint32_t)nn;
	rc = 0;
out:
	if (rc != 0)
		secmon_table_free_shallow(out);
	return rc;
}

int secmon_table_copy(const struct secmon_table *t, struct secmon_table *out)
{
	int rc = SPH_ERR_NOMEM;

	memset(out, 0, sizeof(*out));
	if (t->napps && !(out->apps = malloc((size_t)t->napps * sizeof(*out->apps))))
		goto out;
	if (t->nobj && !(out->obj = malloc((size_t)t->nobj * sizeof(*out->obj))))
		goto out;
	secmon_copy(out->apps, t->apps, (size_t)t->napps * sizeof(*out->apps));
	secmon_copy(out->obj, t->obj, (size_t)t->nobj * sizeof(*out->obj));
	out->napps = t->napps;
	out->nobj = t->nobj;
	rc = 0;
out:
	if (rc != 0)
		secmon_table_free_shallow(out);
	return rc;
}

/* ---- parser ---------------------------------------------------------------- */

struct secmon_cur {
	const uint8_t *p;
	size_t len, off;
};

/* Takes n bytes: returns a pointer to them or NULL when fewer remain. */
static const uint8_t *secmon_take(struct secmon_cur *c, size_t n)
{
	const uint8_t *r;

	if (n > c->len - c->off)
		return NULL;
	r = c->p + c->off;
	c->off += n;
	return r;
}

static bool secmon_app_known(const struct secmon_table *t, const uint8_t *id)
{
	size_t lo = 0, hi = t->napps;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = memcmp(t->apps[mid].id, id, SECMON_APP_ID_LEN);
		if (c == 0)
			return true;
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return false;
}

static int secmon_parse_entry(struct secmon_cur *c, const struct secmon_geom *g,
                              const struct secmon_table *t, uint8_t *seen, struct secmon_entry *e)
{
	const uint8_t *p;
	uint32_t data_lo = g->first + 2 * g->meta_blocks, data_hi = g->first + g->count;

	memset(e, 0, sizeof(*e));
	if (!(p = secmon_take(c, 2)))
		return SPH_ERR_TRUNCATED;
	e->ns = p[0];
	e->name_len = p[1];
	if (e->ns > SECMON_NS_APP || e->name_len == 0 ||
	    e->name_len > (e->ns == SECMON_NS_APP ? SECMON_KEY_MAX : SECMON_NAME_MAX))
		return SPH_ERR_MALFORMED;
	if (e->ns == SECMON_NS_APP) {
		if (!(p = secmon_take(c, SECMON_APP_ID_LEN)))
			return SPH_ERR_TRUNCATED;
		memcpy(e->app, p, SECMON_APP_ID_LEN);
		if (!secmon_app_known(t, e->app))
			return SPH_ERR_MALFORMED;
	}
	if (!(p = secmon_take(c, e->name_len)))
		return SPH_ERR_TRUNCATED;
	if (!sph_text_ok(p, e->name_len, SECMON_NAME_MAX))
		return SPH_ERR_MALFORMED;
	memcpy(e->name, p, e->name_len);
	if (!(p = secmon_take(c, 8 + 32 + SECMON_OBJID_LEN + 2)))
		return SPH_ERR_TRUNCATED;
	e->len = secmon_get_le64(p);
	if (e->len > SECMON_OBJECT_MAX)
		return SPH_ERR_TOO_LARGE;
	memcpy(e->sha256, p + 8, 32);
	memcpy(e->objid, p + 40, SECMON_OBJID_LEN);
	secmon_layout_of(g, e->len, &e->lay);
	if (p[56] != e->lay.k_eff || p[57] != g->m)
		return SPH_ERR_MALFORMED;
	e->m = g->m;
	/* Check the block list fits before allocating it. */
	if ((size_t)e->lay.nblocks * 2 > c->len - c->off)
		return SPH_ERR_TRUNCATED;
	if (e->lay.nblocks == 0)
		return 0;
	e->blocks = malloc((size_t)e->lay.nblocks * sizeof(*e->blocks));
	if (!e->blocks)
		return SPH_ERR_NOMEM;
	p = secmon_take(c, (size_t)e->lay.nblocks * 2);
	for (uint32_t b = 0; b < e->lay.nblocks; b++) {
		uint16_t blk = secmon_get_le16(p + 2 * b);
		if (blk < data_lo || blk >= data_hi)
			return SPH_ERR_MALFORMED;
		if (seen[blk - g->first])
			return SPH_ERR_DUPLICATE;
		seen[blk - g->first] = 1;
		e->blocks[b] = blk;
	}
	return 0;
}

int secmon_table_parse(const uint8_t *buf, size_t len, const struct secmon_geom *g,
                       struct secmon_table *t)
{
	static const uint8_t none[1];
	struct secmon_cur c = {buf ? buf : none, buf ? len : 0, 0};
	uint8_t *seen = NULL;
	const uint8_t *p;
	uint32_t napps, nobj;
	int rc = SPH_ERR_TRUNCATED;

	memset(t, 0, sizeof(*t));
	len = c.len;
	if (!(p = secmon_take(&c, SECMON_TABLE_MIN)))
		goto out;
	napps = secmon_get_le32(p);
	nobj = secmon_get_le32(p + 4);
	rc = SPH_ERR_TOO_LARGE;
	if (napps > SECMON_MAX_APPS || nobj > SECMON_MAX_OBJECTS)
		goto out;
	rc = SPH_ERR_TRUNCATED;
	if ((size_t)napps * SECMON_APP_REC + (size_t)nobj * (SECMON_ENTRY_FIXED + 1) > len - c.off)
		goto out;
	rc = SPH_ERR_NOMEM;
	seen = calloc(g->count, 1);
	if (!seen)
		goto out;
	if (napps && !(t->apps = calloc(napps, sizeof(*t->apps))))
		goto out;
	if (nobj && !(t->obj = calloc(nobj, sizeof(*t->obj))))
		goto out;
	for (uint32_t i = 0; i < napps; i++) {
		p = secmon_take(&c, SECMON_APP_REC);
		memcpy(t->apps[i].id, p, SECMON_APP_ID_LEN);
		t->apps[i].quota = secmon_get_le64(p + SECMON_APP_ID_LEN);
		t->napps = i + 1;
		if (i > 0) {
			int cmp = memcmp(t->apps[i - 1].id, t->apps[i].id, SECMON_APP_ID_LEN);
			rc = cmp == 0 ? SPH_ERR_DUPLICATE : SPH_ERR_MALFORMED;
			if (cmp >= 0)
				goto out;
		}
	}
	for (uint32_t i = 0; i < nobj; i++) {
		struct secmon_entry *e = &t->obj[i];
		rc = secmon_parse_entry(&c, g, t, seen, e);
		t->nobj = i + 1; /* so that e->blocks is freed on error */
		if (rc != 0)
			goto out;
		if (i > 0) {
			const struct secmon_entry *d = &t->obj[i - 1];
			int cmp = secmon_entry_cmp(d->ns, d->app, d->name, d->name_len, e->ns,
			                           e->app, e->name, e->name_len);
			rc = cmp == 0 ? SPH_ERR_DUPLICATE : SPH_ERR_MALFORMED;
			if (cmp >= 0)
				goto out;
		}
	}
	rc = c.off == len ? 0 : SPH_ERR_TRAILING;
out:
	free(seen);
	if (rc != 0)
		secmon_table_free(t);
	return rc;
}
