/*
 * secmon: the read path (docs/formats.md §9.2): read a stripe's shards,
 * check each (header + CRC-32C), rebuild bad ones from any k_s good ones,
 * check the object's SHA-256, and only then (read-write mount) rewrite the
 * bad shards, regenerated from the verified bytes, to fresh blocks.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/common.h"
#include "secmon_internal.h"

#define SECMON_ROWS (SECMON_MAX_K + SECMON_MAX_M)

void secmon_entry_label(const struct secmon_entry *e, char *buf, size_t cap)
{
	if (!buf || cap == 0)
		return;
	if (e->ns == SECMON_NS_APP)
		snprintf(buf, cap, "app %02x%02x%02x%02x%02x%02x%02x%02x key '%s'", e->app[0],
		         e->app[1], e->app[2], e->app[3], e->app[4], e->app[5], e->app[6],
		         e->app[7], e->name);
	else
		snprintf(buf, cap, "object '%s'", e->name);
}

/* Reads n shard blocks into buf (runs of consecutive blocks in one read);
 * readable[i] is false for a block the flash cannot read (lost). Returns 0
 * or another chip status. */
static int secmon_read_shards(struct secmon *s, const uint16_t *blks, uint8_t *buf, size_t n,
                              bool *readable)
{
	const struct secmon_geom *g = &s->st.g;
	size_t i = 0;

	while (i < n) {
		size_t run = 1;
		int rc;
		while (i + run < n && blks[i + run] == blks[i] + run)
			run++;
		rc = chip_read(s->c, s->comp, (uint64_t)blks[i] * g->bs, buf + i * (size_t)g->bs,
		               run * (size_t)g->bs);
		if (rc == SPH_ERR_IO) {
			for (size_t j = 0; j < run; j++) {
				rc = chip_read(s->c, s->comp, (uint64_t)blks[i + j] * g->bs,
				               buf + (i + j) * (size_t)g->bs, g->bs);
				if (rc != 0 && rc != SPH_ERR_IO)
					return rc;
				readable[i + j] = rc == 0;
			}
		} else if (rc != 0) {
			return rc;
		} else {
			for (size_t j = 0; j < run; j++)
				readable[i + j] = true;
		}
		i += run;
	}
	return 0;
}

/* How many of blks[0..n) are consecutive block numbers from blks[0]. */
static size_t secmon_run_len(const uint16_t *blks, size_t n)
{
	size_t i = 1;
	while (i < n && blks[i] == blks[0] + i)
		i++;
	return n ? i : 0;
}

struct secmon_stripe_res {
	uint32_t read, bad, good;
	uint8_t k_s;
	bool corrupt;
};

/* Reads stripe st of e into s->stripe and rebuilds its data shards. all: read
 * and check every shard (scrub), and compare the stored parity with the
 * parity of the data. bad[i] is set for each shard found bad. */
static int secmon_stripe_read(struct secmon *s, const struct secmon_entry *e, uint32_t st, bool all,
                              uint8_t *bad, struct secmon_stripe_res *res)
{
	const struct secmon_geom *g = &s->st.g;
	uint8_t k_s = secmon_stripe_k(&e->lay, st), m = e->m, n = k_s + m;
	const uint16_t *blks = e->blocks + secmon_stripe_base(g, &e->lay, st);
	bool rd[SECMON_ROWS] = {false}, ok[SECMON_ROWS] = {false}, good[SECMON_ROWS] = {false};
	uint8_t *pl[SECMON_ROWS], *calc[SECMON_MAX_M];
	uint8_t *buf = s->stripe;
	uint32_t ngood = 0;
	int rc;

	memset(res, 0, sizeof(*res));
	res->k_s = k_s;
	for (uint8_t i = 0; i < n; i++)
		pl[i] = buf + (size_t)i * g->bs + SECMON_SHARD_HDR;
	rc = secmon_read_shards(s, blks, buf, k_s, ok);
	if (rc != 0)
		return rc;
	for (uint8_t i = 0; i < k_s; i++) {
		rd[i] = true;
		good[i] = ok[i] &&
		          secmon_shard_ok(g, buf + (size_t)i * g->bs, i, k_s, m, st, e->objid);
		ngood += good[i];
	}
	if (all || ngood < k_s) {
		rc = secmon_read_shards(s, blks + k_s, buf + (size_t)k_s * g->bs, m, ok + k_s);
		if (rc != 0)
			return rc;
		for (uint8_t i = k_s; i < n; i++) {
			rd[i] = true;
			good[i] = ok[i] && secmon_shard_ok(g, buf + (size_t)i * g->bs, i, k_s, m,
			                                   st, e->objid);
			ngood += good[i];
		}
	}
	for (uint8_t i = 0; i < n; i++) {
		res->read += rd[i];
		if (rd[i] && !good[i]) {
			bad[i] = 1;
			res->bad++;
		}
	}
	res->good = ngood;
	if (ngood < k_s) {
		res->corrupt = true;
		return 0;
	}
	if (res->bad) {
		rc = secmon_rs_rebuild(k_s, m, pl, good, g->payload);
		if (rc != 0)
			return rc;
	}
	if (all) {
		/* Stored parity that is well-formed but disagrees with the data. */
		for (uint8_t p = 0; p < m; p++)
			calc[p] = buf + (size_t)(n + p) * g->bs;
		rc = secmon_rs_encode(k_s, m, pl, calc, g->payload);
		if (rc != 0)
			return rc;
		for (uint8_t p = 0; p < m; p++) {
			if (good[k_s + p] && memcmp(calc[p], pl[k_s + p], g->payload) != 0) {
				bad[k_s + p] = 1;
				res->bad++;
			}
		}
	}
	return 0;
}

/* Rewrites entry i's shards marked in badmap, regenerated from its verified
 * bytes, to fresh blocks, and commits. *nrep: shards rewritten. */
static int secmon_repair(struct secmon *s, size_t i, const uint8_t *data, const uint8_t *badmap,
                         uint32_t *nrep)
{
	const struct secmon_geom *g = &s->st.g;
	const struct secmon_entry *e = &s->st.t.obj[i];
	struct secmon_alloc al = {0};
	struct secmon_table nt;
	struct secmon_entry ne;
	uint16_t *nb = NULL, *gone;
	uint32_t cnt = 0;
	int rc = SPH_ERR_NOMEM;

	*nrep = 0;
	nb = malloc((size_t)e->lay.nblocks * sizeof(*nb));
	if (!nb)
		goto out;
	memcpy(nb, e->blocks, (size_t)e->lay.nblocks * sizeof(*nb));
	rc = secmon_alloc_init(s, &al);
	if (rc != 0)
		goto out;
	for (uint32_t st = 0; st < e->lay.stripes; st++) {
		uint32_t base = secmon_stripe_base(g, &e->lay, st);
		uint32_t n = secmon_stripe_k(&e->lay, st) + e->m;
		bool any = false;
		for (uint32_t j = 0; j < n; j++)
			any |= badmap[base + j] != 0;
		if (!any)
			continue;
		rc = secmon_stripe_build(g, e, st, data, s->stripe);
		if (rc != 0)
			goto out;
		for (uint32_t j = 0; j < n; j++) {
			uint16_t blk;
			if (!badmap[base + j])
				continue;
			rc = secmon_alloc_take(&al, &blk);
			if (rc == 0)
				rc = secmon_write_blocks(s, &blk, s->stripe + (size_t)j * g->bs, 1);
			if (rc != 0)
				goto out;
			nb[base + j] = blk;
			cnt++;
		}
	}
	ne = *e;
	ne.blocks = nb;
	rc = secmon_table_edit(&s->st.t, i, false, &ne, &nt);
	if (rc != 0)
		goto out;
	gone = e->blocks;
	rc = secmon_install(s, &nt, &gone, 1, nb);
	nb = NULL; /* taken */
	if (rc == 0)
		*nrep = cnt;
out:
	if (rc == SPH_ERR_POWER_LOSS)
		s->stale = true;
	secmon_alloc_free(&al);
	free(nb);
	return rc;
}

int secmon_read_entry(struct secmon *s, size_t i, bool all_shards, uint8_t **data, char *why,
                      size_t why_cap, struct secmon_read_stats *rs)
{
	const struct secmon_geom *g = &s->st.g;
	struct secmon_read_stats local;
	struct secmon_entry e = s->st.t.obj[i];
	uint8_t *out = NULL, *badmap = NULL;
	uint8_t md[32];
	char label[SECMON_NAME_MAX + 64];
	struct secmon_bghash hash;
	uint64_t nbad = 0;
	bool broken = false, hashing = false;
	int rc = SPH_ERR_NOMEM;

	*data = NULL;
	if (!rs)
		rs = &local;
	memset(rs, 0, sizeof(*rs));
	secmon_entry_label(&e, label, sizeof(label));
	out = malloc(e.len ? (size_t)e.len : 1);
	if (!out || (e.lay.nblocks && !(badmap = calloc(e.lay.nblocks, 1))))
		goto out;
	/* Ask the flash to stream what will be read: every stripe's data shards
	 * (all shards for a scrub), run by run of consecutive blocks. */
	for (uint32_t st = 0; st < e.lay.stripes; st++) {
		uint32_t base = secmon_stripe_base(g, &e.lay, st);
		uint32_t want = secmon_stripe_k(&e.lay, st) + (all_shards ? e.m : 0);
		for (uint32_t b = 0; b < want;) {
			size_t run = secmon_run_len(e.blocks + base + b, want - b);
			(void)chip_prefetch(s->c, s->comp, (uint64_t)e.blocks[base + b] * g->bs,
			                    run * (size_t)g->bs);
			b += (uint32_t)run;
		}
	}
	/* The SHA-256 follows the stripes on another thread as they land. */
	rc = secmon_bghash_start(&hash, out, (size_t)e.len, 0);
	if (rc != 0)
		goto out;
	hashing = true;
	for (uint32_t st = 0; st < e.lay.stripes; st++) {
		uint32_t base = secmon_stripe_base(g, &e.lay, st);
		uint64_t off0 = (uint64_t)st * e.lay.k_eff * g->payload;
		struct secmon_stripe_res res;
		rc = secmon_stripe_read(s, &e, st, all_shards, badmap + base, &res);
		if (rc != 0)
			goto out;
		rs->shards += res.read;
		rs->bad += res.bad;
		nbad += res.bad;
		if (res.corrupt) {
			rs->unrecoverable++;
			if (!broken && why && why_cap)
				snprintf(why, why_cap,
				         "%s stripe %u: %u of %u shards bad, at most %u repairable",
				         label, st, res.read - res.good, res.k_s + e.m, e.m);
			broken = true;
			if (!all_shards)
				break;
			continue;
		}
		for (uint8_t d = 0; d < res.k_s; d++) {
			uint64_t off = off0 + (uint64_t)d * g->payload;
			size_t n = e.len - off < g->payload ? (size_t)(e.len - off) : g->payload;
			memcpy(out + off, s->stripe + (size_t)d * g->bs + SECMON_SHARD_HDR, n);
		}
		if (!broken)
			secmon_bghash_ready(&hash,
			                    (size_t)(off0 + (uint64_t)res.k_s * g->payload < e.len
			                                     ? off0 + (uint64_t)res.k_s * g->payload
			                                     : e.len));
	}
	rc = SPH_ERR_CORRUPT;
	if (broken) {
		rs->unrepaired += nbad;
		goto out;
	}
	hashing = false;
	if (secmon_bghash_join(&hash, md) != 0 || memcmp(md, e.sha256, 32) != 0) {
		rs->unrecoverable++;
		rs->unrepaired += nbad;
		if (why && why_cap)
			snprintf(why, why_cap, "%s: SHA-256 mismatch after reading every stripe",
			         label);
		goto out;
	}
	if (nbad && s->ro) {
		rs->unrepaired += nbad;
	} else if (nbad) {
		uint32_t n = 0;
		rs->repair_rc = secmon_repair(s, i, out, badmap, &n);
		if (rs->repair_rc == 0) {
			rs->repaired += n;
			sph_log(SPH_LOG_INFO, "secmon", "repaired", "shards=%u", n);
		} else {
			rs->unrepaired += nbad;
			sph_log(SPH_LOG_WARN, "secmon", "repair_failed", "status=%d",
			        rs->repair_rc);
		}
	}
	*data = out;
	out = NULL; /* transferred */
	rc = 0;
out:
	if (hashing)
		secmon_bghash_abort(&hash);
	free(out);
	free(badmap);
	return rc;
}
