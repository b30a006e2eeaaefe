/*
 * secmon: shard headers with their CRC-32C, and Reed-Solomon encode/rebuild
 * over ISA-L (docs/formats.md §9.2). Row i < k_s of the code is the identity
 * (data shards are the data); rows k_s.. are gf_gen_cauchy1_matrix's, so any
 * k_s rows form an invertible matrix.
 */
#include <string.h>

#include <isa-l/crc.h>
#include <isa-l/erasure_code.h>

#include "secmon_internal.h"

#define SECMON_ROWS (SECMON_MAX_K + SECMON_MAX_M)

static uint32_t secmon_shard_crc(const struct secmon_geom *g, const uint8_t *blk)
{
	/* crc32_iscsi takes a non-const pointer but only reads. */
	unsigned int crc = crc32_iscsi((unsigned char *)blk, SECMON_SHARD_OFF_CRC, 0xffffffffu);
	crc = crc32_iscsi((unsigned char *)blk + SECMON_SHARD_HDR, (int)g->payload, crc);
	return crc ^ 0xffffffffu;
}

static void secmon_shard_header(uint8_t *h, uint8_t index, uint8_t k_s, uint8_t m, uint32_t stripe,
                                const uint8_t objid[SECMON_OBJID_LEN])
{
	memcpy(h, SECMON_SHARD_MAGIC, 4);
	h[4] = index;
	h[5] = k_s;
	h[6] = m;
	h[7] = 0;
	secmon_put_le32(h + 8, stripe);
	memcpy(h + 12, objid, SECMON_OBJID_LEN);
}

void secmon_shard_seal(const struct secmon_geom *g, uint8_t *blk, uint8_t index, uint8_t k_s,
                       uint8_t m, uint32_t stripe, const uint8_t objid[SECMON_OBJID_LEN])
{
	secmon_shard_header(blk, index, k_s, m, stripe, objid);
	secmon_put_le32(blk + SECMON_SHARD_OFF_CRC, secmon_shard_crc(g, blk));
}

bool secmon_shard_ok(const struct secmon_geom *g, const uint8_t *blk, uint8_t index, uint8_t k_s,
                     uint8_t m, uint32_t stripe, const uint8_t objid[SECMON_OBJID_LEN])
{
	uint8_t want[SECMON_SHARD_OFF_CRC];

	secmon_shard_header(want, index, k_s, m, stripe, objid);
	if (memcmp(want, blk, sizeof(want)) != 0)
		return false;
	return secmon_get_le32(blk + SECMON_SHARD_OFF_CRC) == secmon_shard_crc(g, blk);
}

static bool secmon_rs_args_ok(uint8_t k_s, uint8_t m, size_t len)
{
	return k_s >= 1 && k_s <= SECMON_MAX_K && m >= 1 && m <= SECMON_MAX_M && len > 0 &&
	       len <= CHIP_FLASH_MAX_BLOCK_SIZE;
}

int secmon_rs_encode(uint8_t k_s, uint8_t m, uint8_t **data, uint8_t **parity, size_t len)
{
	unsigned char a[SECMON_ROWS * SECMON_MAX_K];
	unsigned char tbls[32 * SECMON_MAX_K * SECMON_MAX_M];

	if (!secmon_rs_args_ok(k_s, m, len))
		return SPH_ERR_INVALID_ARG;
	gf_gen_cauchy1_matrix(a, k_s + m, k_s);
	ec_init_tables(k_s, m, a + (size_t)k_s * k_s, tbls);
	ec_encode_data((int)len, k_s, m, tbls, data, parity);
	return 0;
}

int secmon_rs_rebuild(uint8_t k_s, uint8_t m, uint8_t **shards, const bool *good, size_t len)
{
	unsigned char a[SECMON_ROWS * SECMON_MAX_K];
	unsigned char b[SECMON_MAX_K * SECMON_MAX_K], inv[SECMON_MAX_K * SECMON_MAX_K];
	unsigned char rows[SECMON_MAX_M * SECMON_MAX_K];
	unsigned char tbls[32 * SECMON_MAX_K * SECMON_MAX_M];
	unsigned char *src[SECMON_MAX_K], *dst[SECMON_MAX_M];
	unsigned int n = k_s + m, nsrc = 0, nmiss = 0;

	if (!secmon_rs_args_ok(k_s, m, len))
		return SPH_ERR_INVALID_ARG;
	gf_gen_cauchy1_matrix(a, (int)n, k_s);
	for (unsigned int i = 0; i < n && nsrc < k_s; i++) {
		if (!good[i])
			continue;
		memcpy(b + (size_t)nsrc * k_s, a + (size_t)i * k_s, k_s);
		src[nsrc++] = shards[i];
	}
	if (nsrc < k_s)
		return SPH_ERR_CORRUPT;
	if (gf_invert_matrix(b, inv, k_s) != 0)
		return SPH_ERR_CRYPTO;
	for (unsigned int e = 0; e < n; e++) {
		unsigned char *row;
		if (good[e])
			continue;
		if (nmiss == SECMON_MAX_M)
			return SPH_ERR_CORRUPT; /* impossible: at least k_s are good */
		row = rows + (size_t)nmiss * k_s;
		if (e < k_s) {
			memcpy(row, inv + (size_t)e * k_s, k_s);
		} else {
			for (unsigned int j = 0; j < k_s; j++) {
				unsigned char s = 0;
				for (unsigned int i = 0; i < k_s; i++)
					s ^= gf_mul(a[(size_t)e * k_s + i],
					            inv[(size_t)i * k_s + j]);
				row[j] = s;
			}
		}
		dst[nmiss++] = shards[e];
	}
	if (nmiss == 0)
		return 0;
	ec_init_tables(k_s, (int)nmiss, rows, tbls);
	ec_encode_data((int)len, k_s, (int)nmiss, tbls, src, dst);
	return 0;
}
