/*
 * eat: the claim codec (pinned byte for byte, strict decoding of every field),
 * measurement events and accumulator replay, and signed tokens (every bit
 * flip, every truncation, wrong nonce, key, kid, UEID or accumulator).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bn.h>
#include <openssl/evp.h>

#include "common/common.h"
#include "eat/eat.h"
#include "testutil.h"

/* ---- fixtures -------------------------------------------------------------- */

#define R4(x)  x, x, x, x
#define R8(x)  R4(x), R4(x)
#define R16(x) R8(x), R8(x)
#define R32(x) R16(x), R16(x)

static void sha256(const uint8_t *d, size_t n, uint8_t out[32])
{
	unsigned int len = 0;
	assert_int_equal(EVP_Digest(d, n, out, &len, EVP_sha256(), NULL), 1);
	assert_int_equal(len, 32);
}

static void fill_component(struct eat_component *c, size_t i)
{
	static const char *types[] = {"BL", "SECMON", "OS", "APP"};

	memset(c, 0, sizeof(*c));
	snprintf(c->type, sizeof(c->type), "%s", types[i % 4]);
	memset(c->component_id, 0x30 + (int)i, sizeof(c->component_id));
	snprintf(c->version, sizeof(c->version), "1.2.%zu", i);
	c->security_version = (uint32_t)(i * 3);
	memset(c->digest, 0x40 + (int)i, sizeof(c->digest));
	memset(c->signer_id, 0x90 + (int)i, sizeof(c->signer_id));
}

/* A valid claim set with n components and a matching accumulator. */
static void sample_claims(struct eat_claims *c, size_t n)
{
	memset(c, 0, sizeof(*c));
	for (size_t i = 0; i < 16; i++)
		c->nonce[i] = (uint8_t)(0xa0 + i);
	c->nonce_len = 16;
	c->ueid[0] = EAT_UEID_TYPE_RAND;
	memset(c->ueid + 1, 0x11, EAT_UEID_LEN - 1);
	c->lifecycle = EAT_LC_SECURED;
	memcpy(c->implementation_id, eat_implementation_id, 32);
	memset(c->boot_seed, 0x22, sizeof(c->boot_seed));
	c->boot_count = 42;
	c->n_components = n;
	for (size_t i = 0; i < n; i++)
		fill_component(&c->components[i], i);
	assert_int_equal(eat_accumulator_replay(c->components, n, c->accumulator), 0);
}

static void assert_component_equal(const struct eat_component *a, const struct eat_component *b)
{
	assert_string_equal(a->type, b->type);
	assert_memory_equal(a->component_id, b->component_id, 16);
	assert_string_equal(a->version, b->version);
	assert_int_equal(a->security_version, b->security_version);
	assert_memory_equal(a->digest, b->digest, 32);
	assert_memory_equal(a->signer_id, b->signer_id, 32);
}

static void assert_claims_equal(const struct eat_claims *a, const struct eat_claims *b)
{
	assert_int_equal(a->nonce_len, b->nonce_len);
	assert_memory_equal(a->nonce, b->nonce, a->nonce_len);
	assert_memory_equal(a->ueid, b->ueid, EAT_UEID_LEN);
	assert_int_equal(a->lifecycle, b->lifecycle);
	assert_memory_equal(a->implementation_id, b->implementation_id, 32);
	assert_memory_equal(a->boot_seed, b->boot_seed, 32);
	assert_int_equal(a->boot_count, b->boot_count);
	assert_memory_equal(a->accumulator, b->accumulator, 32);
	assert_int_equal(a->n_components, b->n_components);
	for (size_t i = 0; i < a->n_components; i++)
		assert_component_equal(&a->components[i], &b->components[i]);
}

static bool all_zero(const void *p, size_t n)
{
	const uint8_t *b = p;
	for (size_t i = 0; i < n; i++)
		if (b[i])
			return false;
	return true;
}

/* ---- a map builder independent of the encoder --------------------------------
 * Claim sets are built entry by entry, so a test can drop, repeat, reorder or
 * replace any one entry and check the decoder's answer. */

#define CM_VAL_MAX 4096
#define CM_MAX     24

struct cm_entry {
	uint8_t key[16];
	size_t key_len;
	uint8_t val[CM_VAL_MAX];
	size_t val_len;
};

struct cmap {
	struct cm_entry e[CM_MAX];
	size_t n;
};

static struct cmap *cm_new(void)
{
	struct cmap *m = calloc(1, sizeof(*m));
	assert_non_null(m);
	return m;
}

/* Adds key with an already-encoded value. */
static void cm_add_raw(struct cmap *m, int64_t key, const uint8_t *val, size_t val_len)
{
	struct sph_cbw w;
	struct cm_entry *e;

	assert_true(m->n < CM_MAX);
	assert_true(val_len <= CM_VAL_MAX);
	e = &m->e[m->n++];
	sph_cbw_init(&w, e->key, sizeof(e->key));
	sph_cbw_int(&w, key);
	assert_int_equal(sph_cbw_finish(&w, &e->key_len), 0);
	memcpy(e->val, val, val_len);
	e->val_len = val_len;
}

static void cm_add_bstr(struct cmap *m, int64_t key, const uint8_t *d, size_t n)
{
	uint8_t buf[CM_VAL_MAX];
	struct sph_cbw w;
	size_t len;

	sph_cbw_init(&w, buf, sizeof(buf));
	sph_cbw_bstr(&w, d, n);
	assert_int_equal(sph_cbw_finish(&w, &len), 0);
	cm_add_raw(m, key, buf, len);
}

static void cm_add_tstr(struct cmap *m, int64_t key, const char *s, size_t n)
{
	uint8_t buf[CM_VAL_MAX];
	struct sph_cbw w;
	size_t len;

	sph_cbw_init(&w, buf, sizeof(buf));
	sph_cbw_tstr(&w, s, n);
	assert_int_equal(sph_cbw_finish(&w, &len), 0);
	cm_add_raw(m, key, buf, len);
}

static void cm_add_uint(struct cmap *m, int64_t key, uint64_t v)
{
	uint8_t buf[16];
	struct sph_cbw w;
	size_t len;

	sph_cbw_init(&w, buf, sizeof(buf));
	sph_cbw_uint(&w, v);
	assert_int_equal(sph_cbw_finish(&w, &len), 0);
	cm_add_raw(m, key, buf, len);
}

static struct cm_entry *cm_find(struct cmap *m, int64_t key)
{
	uint8_t k[16];
	struct sph_cbw w;
	size_t len;

	sph_cbw_init(&w, k, sizeof(k));
	sph_cbw_int(&w, key);
	assert_int_equal(sph_cbw_finish(&w, &len), 0);
	for (size_t i = 0; i < m->n; i++)
		if (m->e[i].key_len == len && memcmp(m->e[i].key, k, len) == 0)
			return &m->e[i];
	fail_msg("no key %lld", (long long)key);
	return NULL;
}

static void cm_remove(struct cmap *m, int64_t key)
{
	struct cm_entry *e = cm_find(m, key);
	size_t i = (size_t)(e - m->e);

	memmove(&m->e[i], &m->e[i + 1], (m->n - i - 1) * sizeof(m->e[0]));
	m->n--;
}

/* Inserts a copy of entry i right after it. */
static void cm_dup(struct cmap *m, size_t i)
{
	assert_true(m->n < CM_MAX && i < m->n);
	memmove(&m->e[i + 1], &m->e[i], (m->n - i) * sizeof(m->e[0]));
	m->n++;
}

/* Replaces key's value by a bstr of n bytes. */
static void cm_set_bstr(struct cmap *m, int64_t key, const uint8_t *d, size_t n)
{
	struct cm_entry *e = cm_find(m, key);
	struct sph_cbw w;

	sph_cbw_init(&w, e->val, sizeof(e->val));
	sph_cbw_bstr(&w, d, n);
	assert_int_equal(sph_cbw_finish(&w, &e->val_len), 0);
}

static void cm_swap(struct cmap *m, size_t i, size_t j)
{
	struct cm_entry *t = malloc(sizeof(*t));

	assert_non_null(t);
	*t = m->e[i];
	m->e[i] = m->e[j];
	m->e[j] = *t;
	free(t);
}

/* Serialises the map: head, then the entries in their current order. */
static size_t cm_encode(const struct cmap *m, uint8_t *out, size_t cap)
{
	struct sph_cbw w;
	size_t len;

	sph_cbw_init(&w, out, cap);
	sph_cbw_map(&w, m->n);
	for (size_t i = 0; i < m->n; i++) {
		sph_cbw_raw(&w, m->e[i].key, m->e[i].key_len);
		sph_cbw_raw(&w, m->e[i].val, m->e[i].val_len);
	}
	assert_int_equal(sph_cbw_finish(&w, &len), 0);
	return len;
}

static void component_cmap(const struct eat_component *c, struct cmap *m)
{
	cm_add_tstr(m, EAT_SWC_TYPE, c->type, strlen(c->type));
	cm_add_bstr(m, EAT_SWC_MEASUREMENT, c->digest, 32);
	cm_add_tstr(m, EAT_SWC_VERSION, c->version, strlen(c->version));
	cm_add_bstr(m, EAT_SWC_SIGNER_ID, c->signer_id, 32);
	cm_add_tstr(m, EAT_SWC_DESCRIPTION, "sha-256", 7);
	cm_add_uint(m, EAT_SWC_SPHERE_SVN, c->security_version);
	cm_add_bstr(m, EAT_SWC_SPHERE_COMPONENT_ID, c->component_id, 16);
}

/* The components array from component maps. */
static void set_components(struct cmap *m, struct cmap **comps, size_t n)
{
	uint8_t *buf = malloc(CM_VAL_MAX);
	struct cm_entry *e = cm_find(m, EAT_CLAIM_SW_COMPONENTS);
	struct sph_cbw w;
	size_t len;

	assert_non_null(buf);
	sph_cbw_init(&w, e->val, sizeof(e->val));
	sph_cbw_array(&w, n);
	for (size_t i = 0; i < n; i++) {
		len = cm_encode(comps[i], buf, CM_VAL_MAX);
		sph_cbw_raw(&w, buf, len);
	}
	assert_int_equal(sph_cbw_finish(&w, &e->val_len), 0);
	free(buf);
}

/* The claim map of c, in the documented order; the components value is
 * rebuilt from component_cmap() (or left as a placeholder if n == 0). */
static void claims_cmap(const struct eat_claims *c, struct cmap *m)
{
	struct cmap *comps[EAT_MAX_COMPONENTS];
	uint8_t empty[] = {0x80};

	cm_add_bstr(m, EAT_CLAIM_NONCE, c->nonce, c->nonce_len);
	cm_add_bstr(m, EAT_CLAIM_UEID, c->ueid, EAT_UEID_LEN);
	cm_add_tstr(m, EAT_CLAIM_PROFILE, EAT_PROFILE, strlen(EAT_PROFILE));
	cm_add_uint(m, EAT_CLAIM_BOOT_COUNT, c->boot_count);
	cm_add_uint(m, EAT_CLAIM_LIFECYCLE, c->lifecycle);
	cm_add_bstr(m, EAT_CLAIM_IMPLEMENTATION_ID, c->implementation_id, 32);
	cm_add_bstr(m, EAT_CLAIM_BOOT_SEED, c->boot_seed, 32);
	cm_add_raw(m, EAT_CLAIM_SW_COMPONENTS, empty, sizeof(empty));
	cm_add_bstr(m, EAT_CLAIM_SPHERE_ACCUMULATOR, c->accumulator, 32);
	for (size_t i = 0; i < c->n_components; i++) {
		comps[i] = cm_new();
		component_cmap(&c->components[i], comps[i]);
	}
	set_components(m, comps, c->n_components);
	for (size_t i = 0; i < c->n_components; i++)
		free(comps[i]);
}

/* Decodes the map m and returns the status. */
static int cm_decode(const struct cmap *m)
{
	uint8_t *buf = malloc(8192);
	struct eat_claims out;
	size_t len;
	int rc;

	assert_non_null(buf);
	len = cm_encode(m, buf, 8192);
	memset(&out, 0xaa, sizeof(out));
	rc = eat_decode_claims(buf, len, &out);
	if (rc)
		assert_true(all_zero(&out, sizeof(out)));
	free(buf);
	return rc;
}

/* A fresh sample claim map (1 component). */
static struct cmap *sample_cmap(void)
{
	struct eat_claims c;
	struct cmap *m = cm_new();

	sample_claims(&c, 1);
	claims_cmap(&c, m);
	return m;
}

/* Replaces the one component of a sample map by comp. */
static void set_one_component(struct cmap *m, struct cmap *comp)
{
	set_components(m, &comp, 1);
}

static struct cmap *sample_component_cmap(void)
{
	struct eat_component c;
	struct cmap *m = cm_new();

	fill_component(&c, 0);
	component_cmap(&c, m);
	return m;
}

/* ---- the pinned encoding -------------------------------------------------- */

/* A small claim set written by hand from docs/formats.md §3: keys ascending
 * by their encoded bytes (unsigned before negative). */
/* clang-format off */
static const uint8_t pinned[] = {
	0xa9,					/* map(9) */
	0x0a, 0x48, R8(0xa5),			/* 10 nonce: h'a5 x8' */
	0x19, 0x01, 0x00, 0x58, 0x21, 0x01,	/* 256 ueid: h'01 || 11 x32' */
	R32(0x11),
	0x19, 0x01, 0x09, 0x78, 0x1e,		/* 265 profile: 30-char tstr */
	't', 'a', 'g', ':', 's', 'p', 'h', 'e', 'r', 'e', '-', 'i', 'o', 't', '.',
	'o', 'r', 'g', ',', '2', '0', '2', '6', ':', 'e', 'a', 't', '-', 'v', '1',
	0x19, 0x01, 0x0b, 0x07,			/* 267 boot count: 7 */
	0x19, 0x09, 0x5b, 0x19, 0x30, 0x00,	/* 2395 lifecycle: 0x3000 secured */
	0x19, 0x09, 0x5c, 0x58, 0x20,		/* 2396 implementation id */
	0x0c, 0x41, 0xaa, 0xfd, 0x19, 0x8e, 0xe7, 0x2a, 0x42, 0xd0, 0x47,
	0xba, 0x74, 0x65, 0x46, 0x31, 0x08, 0xa9, 0xe8, 0x5d, 0x0d, 0xec,
	0x5b, 0x1b, 0x64, 0x85, 0x62, 0xa9, 0xa5, 0xf2, 0x55, 0x96,
	0x19, 0x09, 0x5d, 0x58, 0x20,		/* 2397 boot seed */
	R32(0x22),
	0x19, 0x09, 0x5f, 0x81,			/* 2399 components: array(1) */
	0xa7,					/*   map(7) */
	0x01, 0x62, 'B', 'L',			/*   1 type "BL" */
	0x02, 0x58, 0x20, R32(0x44),		/*   2 measurement */
	0x04, 0x65, '1', '.', '0', '.', '0',	/*   4 version "1.0.0" */
	0x05, 0x58, 0x20, R32(0x55),		/*   5 signer id */
	0x06, 0x67, 's', 'h', 'a', '-', '2', '5', '6', /* 6 description */
	0x3a, 0x00, 0x01, 0x24, 0xf8, 0x03,	/*   -75001 security version: 3 */
	0x3a, 0x00, 0x01, 0x24, 0xf9, 0x50,	/*   -75002 component id */
	R16(0x33),
	0x3a, 0x00, 0x01, 0x24, 0xf7, 0x58, 0x20, /* -75000 accumulator */
	R32(0x66),
};
/* clang-format on */
/* Where the component map starts and ends inside pinned[]. */
#define PINNED_COMP_START (1 + 10 + 38 + 35 + 4 + 6 + 37 + 37 + 4)
#define PINNED_COMP_LEN   (1 + 4 + 35 + 7 + 35 + 9 + 6 + 22)

static void pinned_claims(struct eat_claims *c)
{
	memset(c, 0, sizeof(*c));
	memset(c->nonce, 0xa5, 8);
	c->nonce_len = 8;
	c->ueid[0] = 0x01;
	memset(c->ueid + 1, 0x11, 32);
	c->boot_count = 7;
	c->lifecycle = EAT_LC_SECURED;
	memcpy(c->implementation_id, eat_implementation_id, 32);
	memset(c->boot_seed, 0x22, 32);
	c->n_components = 1;
	memcpy(c->components[0].type, "BL", 2);
	memset(c->components[0].digest, 0x44, 32);
	memcpy(c->components[0].version, "1.0.0", 5);
	memset(c->components[0].signer_id, 0x55, 32);
	c->components[0].security_version = 3;
	memset(c->components[0].component_id, 0x33, 16);
	memset(c->accumulator, 0x66, 32);
}

static void test_pinned_encoding(void **state)
{
	(void)state;
	struct eat_claims c, back;
	uint8_t buf[1024];
	size_t len = 0;

	pinned_claims(&c);
	assert_int_equal(eat_encode_claims(&c, buf, sizeof(buf), &len), 0);
	assert_int_equal(len, sizeof(pinned));
	assert_memory_equal(buf, pinned, sizeof(pinned));

	assert_int_equal(eat_decode_claims(pinned, sizeof(pinned), &back), 0);
	assert_claims_equal(&c, &back);

	/* The offsets below are what the measurement test relies on. */
	assert_int_equal(pinned[PINNED_COMP_START], 0xa7);
	assert_int_equal(pinned[PINNED_COMP_START + PINNED_COMP_LEN], 0x3a);
}

static void test_implementation_id(void **state)
{
	(void)state;
	const char *s = "sphere virtual pluton v1";
	uint8_t d[32];

	sha256((const uint8_t *)s, strlen(s), d);
	assert_memory_equal(d, eat_implementation_id, 32);
}

static void test_measurement_and_replay(void **state)
{
	(void)state;
	struct eat_claims c;
	uint8_t event[32], want[32], chain[64], acc[32];
	struct eat_component two[2];

	/* The event hashes exactly the component map bytes of the token. */
	pinned_claims(&c);
	assert_int_equal(eat_measurement_event(&c.components[0], event), 0);
	sha256(pinned + PINNED_COMP_START, PINNED_COMP_LEN, want);
	assert_memory_equal(event, want, 32);
	/* Known answers, computed apart from this code (docs/formats.md §3.5). */
	{
		uint8_t kat_event[32], kat_acc[32];
		assert_int_equal(sph_hex_decode("0d4f5f5f150def7ce1f357e618e20571"
		                                "bfb5b5fdcd0b39790a5de5b856ae164f",
		                                kat_event, 32),
		                 0);
		assert_int_equal(sph_hex_decode("b138c6a43841ae3702dbb1372eea56fe"
		                                "b431075866fe0853a24bbf3d20e7b590",
		                                kat_acc, 32),
		                 0);
		assert_memory_equal(event, kat_event, 32);
		assert_int_equal(eat_accumulator_replay(c.components, 1, acc), 0);
		assert_memory_equal(acc, kat_acc, 32);
	}

	/* acc_0 = 0^32, acc_{i+1} = SHA-256(acc_i || event_i). */
	two[0] = c.components[0];
	fill_component(&two[1], 5);
	memset(chain, 0, 32);
	assert_int_equal(eat_measurement_event(&two[0], chain + 32), 0);
	sha256(chain, 64, chain);
	assert_int_equal(eat_measurement_event(&two[1], chain + 32), 0);
	sha256(chain, 64, want);
	assert_int_equal(eat_accumulator_replay(two, 2, acc), 0);
	assert_memory_equal(acc, want, 32);

	/* Order matters; zero components replay to zero. */
	{
		struct eat_component swapped[2] = {two[1], two[0]};
		assert_int_equal(eat_accumulator_replay(swapped, 2, acc), 0);
		assert_memory_not_equal(acc, want, 32);
	}
	assert_int_equal(eat_accumulator_replay(NULL, 0, acc), 0);
	assert_true(all_zero(acc, 32));

	/* Every field of a component changes its event. */
	{
		struct eat_component base = two[1], m;
		uint8_t e0[32], e1[32];
		assert_int_equal(eat_measurement_event(&base, e0), 0);
		for (int f = 0; f < 6; f++) {
			m = base;
			switch (f) {
			case 0:
				m.type[0] ^= 1;
				break;
			case 1:
				m.component_id[15] ^= 1;
				break;
			case 2:
				m.version[0] ^= 1;
				break;
			case 3:
				m.security_version ^= 1;
				break;
			case 4:
				m.digest[31] ^= 1;
				break;
			case 5:
				m.signer_id[0] ^= 1;
				break;
			}
			assert_int_equal(eat_measurement_event(&m, e1), 0);
			assert_memory_not_equal(e0, e1, 32);
		}
	}

	/* Invalid components and counts are refused. */
	two[1].type[0] = '\0';
	assert_int_equal(eat_measurement_event(&two[1], event), SPH_ERR_CLAIM);
	assert_true(all_zero(event, 32));
	assert_int_equal(eat_accumulator_replay(two, 2, acc), SPH_ERR_CLAIM);
	assert_int_equal(eat_accumulator_replay(two, EAT_MAX_COMPONENTS + 1, acc),
	                 SPH_ERR_TOO_LARGE);
	assert_int_equal(eat_accumulator_replay(NULL, 1, acc), SPH_ERR_INVALID_ARG);
	assert_int_equal(eat_measurement_event(NULL, event), SPH_ERR_INVALID_ARG);
}

static void test_ueid_and_kid(void **state)
{
	(void)state;
	uint8_t pub[COSE_P256_PUB_LEN], ueid[EAT_UEID_LEN], kid[EAT_KID_LEN], d[32];

	pub[0] = 0x04;
	for (size_t i = 1; i < sizeof(pub); i++)
		pub[i] = (uint8_t)(i * 7);
	sha256(pub + 1, 64, d);
	assert_int_equal(eat_ueid_from_pub(pub, ueid), 0);
	assert_int_equal(ueid[0], 0x01);
	assert_memory_equal(ueid + 1, d, 32);
	assert_int_equal(eat_kid_from_pub(pub, kid), 0);
	assert_memory_equal(kid, d, 32);

	pub[0] = 0x02;
	assert_int_equal(eat_ueid_from_pub(pub, ueid), SPH_ERR_MALFORMED);
	assert_true(all_zero(ueid, sizeof(ueid)));
	assert_int_equal(eat_kid_from_pub(pub, kid), SPH_ERR_MALFORMED);
	assert_true(all_zero(kid, sizeof(kid)));
	assert_int_equal(eat_ueid_from_pub(NULL, ueid), SPH_ERR_INVALID_ARG);
}

/* ---- codec ------------------------------------------------------------------ */

static void test_round_trip(void **state)
{
	(void)state;
	struct eat_claims c, back;
	uint8_t buf[EAT_MAX_TOKEN], buf2[EAT_MAX_TOKEN];
	size_t len, len2;

	for (size_t n = 1; n <= EAT_MAX_COMPONENTS; n++) {
		sample_claims(&c, n);
		assert_int_equal(eat_encode_claims(&c, buf, sizeof(buf), &len), 0);
		assert_int_equal(eat_decode_claims(buf, len, &back), 0);
		assert_claims_equal(&c, &back);
		assert_int_equal(eat_encode_claims(&back, buf2, sizeof(buf2), &len2), 0);
		assert_int_equal(len, len2);
		assert_memory_equal(buf, buf2, len);
	}

	/* Each lifecycle Sphere emits. */
	const uint32_t lcs[] = {EAT_LC_ASSEMBLY_AND_TEST, EAT_LC_SECURED, EAT_LC_NON_PSA_ROT_DEBUG,
	                        EAT_LC_DECOMMISSIONED};
	for (size_t i = 0; i < 4; i++) {
		sample_claims(&c, 2);
		c.lifecycle = lcs[i];
		assert_int_equal(eat_encode_claims(&c, buf, sizeof(buf), &len), 0);
		assert_int_equal(eat_decode_claims(buf, len, &back), 0);
		assert_int_equal(back.lifecycle, lcs[i]);
	}
}

/* The largest claim set the profile allows still fits a token. */
static void max_claims(struct eat_claims *c)
{
	sample_claims(c, EAT_MAX_COMPONENTS);
	memset(c->nonce, 0xee, EAT_NONCE_MAX);
	c->nonce_len = EAT_NONCE_MAX;
	c->boot_count = UINT64_MAX;
	for (size_t i = 0; i < EAT_MAX_COMPONENTS; i++) {
		memset(c->components[i].type, 'T', EAT_TYPE_MAX);
		memset(c->components[i].version, '9', EAT_VERSION_MAX);
		c->components[i].security_version = UINT32_MAX;
	}
	assert_int_equal(eat_accumulator_replay(c->components, c->n_components, c->accumulator), 0);
}

static void test_max_claims(void **state)
{
	(void)state;
	struct eat_claims c, back;
	uint8_t buf[EAT_MAX_TOKEN];
	size_t len;

	max_claims(&c);
	assert_int_equal(eat_encode_claims(&c, buf, sizeof(buf), &len), 0);
	assert_int_equal(len, 2916); /* the bound docs/formats.md gives */
	assert_int_equal(eat_decode_claims(buf, len, &back), 0);
	assert_claims_equal(&c, &back);

	/* The smallest: so the token's payload head is always 0x59 (§3.2). */
	sample_claims(&c, 1);
	c.nonce_len = EAT_NONCE_MIN;
	c.boot_count = 0;
	memcpy(c.components[0].type, "B", 2);
	memcpy(c.components[0].version, "1", 2);
	c.components[0].security_version = 0;
	assert_int_equal(eat_encode_claims(&c, buf, sizeof(buf), &len), 0);
	assert_int_equal(len, 325);
}

static void test_builder_matches_encoder(void **state)
{
	(void)state;
	struct eat_claims c;
	struct cmap *m = cm_new();
	uint8_t a[EAT_MAX_TOKEN], b[EAT_MAX_TOKEN];
	size_t alen, blen;

	/* The test's map builder writes the same bytes as the encoder, so every
	 * refusal below comes from exactly the one change each test makes. */
	sample_claims(&c, 3);
	claims_cmap(&c, m);
	blen = cm_encode(m, b, sizeof(b));
	assert_int_equal(eat_encode_claims(&c, a, sizeof(a), &alen), 0);
	assert_int_equal(alen, blen);
	assert_memory_equal(a, b, alen);
	assert_int_equal(cm_decode(m), 0);
	free(m);
}

static void test_encode_refuses_invalid(void **state)
{
	(void)state;
	struct eat_claims c;
	uint8_t buf[EAT_MAX_TOKEN];
	size_t len = 99;

	for (int t = 0; t < 14; t++) {
		sample_claims(&c, 2);
		switch (t) {
		case 0:
			c.nonce_len = EAT_NONCE_MIN - 1;
			break;
		case 1:
			c.nonce_len = EAT_NONCE_MAX + 1;
			break;
		case 2:
			c.n_components = 0;
			break;
		case 3:
			c.n_components = EAT_MAX_COMPONENTS + 1;
			break;
		case 4:
			c.lifecycle = EAT_LC_UNKNOWN;
			break;
		case 5:
			c.lifecycle = 0x3001;
			break;
		case 6:
			c.ueid[0] = 0x02;
			break;
		case 7:
			c.components[1].type[0] = '\0';
			break;
		case 8:
			memset(c.components[1].type, 'x', sizeof(c.components[1].type));
			break;
		case 9:
			c.components[0].version[0] = '\n';
			break;
		case 10:
			memset(c.components[0].version, 'v', sizeof(c.components[0].version));
			break;
		case 11:
			c.components[0].version[0] = '\0';
			break;
		case 12:
			c.components[1].type[1] = (char)0xc3;
			break;
		case 13:
			c.components[1].type[0] = 0x7f;
			break;
		}
		len = 99;
		assert_int_equal(eat_encode_claims(&c, buf, sizeof(buf), &len), SPH_ERR_CLAIM);
		assert_int_equal(len, 0);
	}
	assert_int_equal(eat_encode_claims(NULL, buf, sizeof(buf), &len), SPH_ERR_INVALID_ARG);

	/* Every capacity short of the full length fails cleanly. */
	sample_claims(&c, 2);
	assert_int_equal(eat_encode_claims(&c, buf, sizeof(buf), &len), 0);
	for (size_t cap = 0; cap < len; cap++) {
		size_t l2 = 99;
		assert_int_equal(eat_encode_claims(&c, buf, cap, &l2), SPH_ERR_BUFFER_TOO_SMALL);
		assert_int_equal(l2, 0);
	}
}

static void test_decode_truncated_and_trailing(void **state)
{
	(void)state;
	struct eat_claims c, back;
	uint8_t buf[EAT_MAX_TOKEN + 1];
	size_t len;

	sample_claims(&c, 3);
	assert_int_equal(eat_encode_claims(&c, buf, sizeof(buf), &len), 0);
	for (size_t n = 0; n < len; n++) {
		memset(&back, 0xaa, sizeof(back));
		assert_int_not_equal(eat_decode_claims(buf, n, &back), 0);
		assert_true(all_zero(&back, sizeof(back)));
	}
	buf[len] = 0x00;
	assert_int_equal(eat_decode_claims(buf, len + 1, &back), SPH_ERR_TRAILING);
	buf[len] = 0xa0;
	assert_int_equal(eat_decode_claims(buf, len + 1, &back), SPH_ERR_TRAILING);
	assert_int_equal(eat_decode_claims(NULL, 0, &back), SPH_ERR_TRUNCATED);
	assert_int_equal(eat_decode_claims(NULL, 1, &back), SPH_ERR_INVALID_ARG);
	assert_int_equal(eat_decode_claims(buf, len, NULL), SPH_ERR_INVALID_ARG);
	/* Not a map at all. */
	assert_int_equal(eat_decode_claims((const uint8_t *)"\x80", 1, &back), SPH_ERR_MALFORMED);
	/* Longer than any token. */
	{
		uint8_t *big = calloc(1, EAT_MAX_TOKEN + 1);
		assert_non_null(big);
		assert_int_equal(eat_decode_claims(big, EAT_MAX_TOKEN + 1, &back),
		                 SPH_ERR_TOO_LARGE);
		free(big);
	}
}

static const int64_t claim_keys[] = {
        EAT_CLAIM_NONCE,      EAT_CLAIM_UEID,          EAT_CLAIM_PROFILE,
        EAT_CLAIM_BOOT_COUNT, EAT_CLAIM_LIFECYCLE,     EAT_CLAIM_IMPLEMENTATION_ID,
        EAT_CLAIM_BOOT_SEED,  EAT_CLAIM_SW_COMPONENTS, EAT_CLAIM_SPHERE_ACCUMULATOR,
};
static const int64_t swc_keys[] = {
        EAT_SWC_TYPE,
        EAT_SWC_MEASUREMENT,
        EAT_SWC_VERSION,
        EAT_SWC_SIGNER_ID,
        EAT_SWC_DESCRIPTION,
        EAT_SWC_SPHERE_SVN,
        EAT_SWC_SPHERE_COMPONENT_ID,
};

static void test_decode_missing_claims(void **state)
{
	(void)state;
	for (size_t i = 0; i < 9; i++) {
		struct cmap *m = sample_cmap();
		cm_remove(m, claim_keys[i]);
		assert_int_equal(cm_decode(m), SPH_ERR_CLAIM);
		free(m);
	}
	for (size_t i = 0; i < 7; i++) {
		struct cmap *m = sample_cmap();
		struct cmap *comp = sample_component_cmap();
		cm_remove(comp, swc_keys[i]);
		set_one_component(m, comp);
		assert_int_equal(cm_decode(m), SPH_ERR_CLAIM);
		free(comp);
		free(m);
	}
	/* The empty map. */
	{
		struct cmap *m = cm_new();
		assert_int_equal(cm_decode(m), SPH_ERR_CLAIM);
		free(m);
	}
}

static void test_decode_duplicate_and_unknown(void **state)
{
	(void)state;
	struct cmap *m, *comp;
	const uint8_t nonce[8] = {1, 2, 3, 4, 5, 6, 7, 8};
	uint8_t lc[] = {0x19, 0x30, 0x00};

	/* Every claim repeated (appended at the end). */
	for (size_t i = 0; i < 9; i++) {
		struct cm_entry *e;
		m = sample_cmap();
		e = cm_find(m, claim_keys[i]);
		m->e[m->n] = *e;
		m->n++;
		assert_int_equal(cm_decode(m), SPH_ERR_DUPLICATE);
		free(m);
	}
	/* Repeated right after itself, with the same or another value. */
	for (size_t i = 0; i < 9; i++) {
		m = sample_cmap();
		cm_dup(m, i);
		assert_int_equal(cm_decode(m), SPH_ERR_DUPLICATE);
		free(m);
	}
	m = sample_cmap();
	cm_dup(m, 0);
	memcpy(m->e[1].val, m->e[0].val, m->e[0].val_len);
	cm_set_bstr(m, EAT_CLAIM_NONCE, nonce, 8); /* the first one */
	assert_int_equal(cm_decode(m), SPH_ERR_DUPLICATE);
	free(m);
	/* Every component key repeated. */
	for (size_t i = 0; i < 7; i++) {
		m = sample_cmap();
		comp = sample_component_cmap();
		comp->e[comp->n] = *cm_find(comp, swc_keys[i]);
		comp->n++;
		set_one_component(m, comp);
		assert_int_equal(cm_decode(m), SPH_ERR_DUPLICATE);
		free(comp);
		free(m);
	}

	/* Unknown claims: a PSA claim Sphere does not use (certification
	 * reference 2398), a Sphere-range neighbour, a text key. */
	m = sample_cmap();
	cm_add_tstr(m, 2398, "1234567890123-12345", 19);
	assert_int_equal(cm_decode(m), SPH_ERR_CLAIM);
	free(m);
	m = sample_cmap();
	cm_add_raw(m, -75003, lc, sizeof(lc));
	assert_int_equal(cm_decode(m), SPH_ERR_CLAIM);
	free(m);
	m = sample_cmap();
	{
		/* "lc": 0x3000 appended by hand (the builder only has int keys). */
		uint8_t buf[EAT_MAX_TOKEN];
		struct eat_claims out;
		size_t len = cm_encode(m, buf, sizeof(buf));
		const uint8_t extra[] = {0x62, 'l', 'c', 0x19, 0x30, 0x00};
		buf[0] = 0xaa; /* map(10) */
		memcpy(buf + len, extra, sizeof(extra));
		assert_int_equal(eat_decode_claims(buf, len + sizeof(extra), &out), SPH_ERR_CLAIM);
	}
	free(m);
	/* An unknown key inside a component (PSA has no key 3). */
	m = sample_cmap();
	comp = sample_component_cmap();
	cm_add_tstr(comp, 3, "x", 1);
	set_one_component(m, comp);
	assert_int_equal(cm_decode(m), SPH_ERR_CLAIM);
	free(comp);
	free(m);
}

static void test_decode_key_order(void **state)
{
	(void)state;
	struct cmap *m, *comp;

	/* Every adjacent swap of claims breaks the deterministic order. */
	for (size_t i = 0; i + 1 < 9; i++) {
		m = sample_cmap();
		cm_swap(m, i, i + 1);
		assert_int_equal(cm_decode(m), SPH_ERR_MALFORMED);
		free(m);
	}
	for (size_t i = 0; i + 1 < 7; i++) {
		m = sample_cmap();
		comp = sample_component_cmap();
		cm_swap(comp, i, i + 1);
		set_one_component(m, comp);
		assert_int_equal(cm_decode(m), SPH_ERR_MALFORMED);
		free(comp);
		free(m);
	}
	/* Numeric order is not the rule: -75000 sorts after 2399 (major type 1
	 * after 0), as the pinned encoding shows; putting it first is refused. */
	m = sample_cmap();
	cm_swap(m, 0, 8);
	assert_int_equal(cm_decode(m), SPH_ERR_MALFORMED);
	free(m);
}

/* Replaces claim key's value with raw bytes and returns the decoder's answer. */
static int decode_with_claim(int64_t key, const uint8_t *val, size_t len)
{
	struct cmap *m = sample_cmap();
	struct cm_entry *e = cm_find(m, key);
	int rc;

	memcpy(e->val, val, len);
	e->val_len = len;
	rc = cm_decode(m);
	free(m);
	return rc;
}

static int decode_with_bstr(int64_t key, size_t n, uint8_t first)
{
	uint8_t d[128], buf[160];
	struct sph_cbw w;
	size_t len;

	memset(d, 0x5a, sizeof(d));
	d[0] = first;
	sph_cbw_init(&w, buf, sizeof(buf));
	sph_cbw_bstr(&w, d, n);
	assert_int_equal(sph_cbw_finish(&w, &len), 0);
	return decode_with_claim(key, buf, len);
}

static int decode_with_text(int64_t key, const char *s, size_t n)
{
	uint8_t buf[160];
	struct sph_cbw w;
	size_t len;

	sph_cbw_init(&w, buf, sizeof(buf));
	sph_cbw_tstr(&w, s, n);
	assert_int_equal(sph_cbw_finish(&w, &len), 0);
	return decode_with_claim(key, buf, len);
}

static int decode_with_uint(int64_t key, uint64_t v)
{
	uint8_t buf[16];
	struct sph_cbw w;
	size_t len;

	sph_cbw_init(&w, buf, sizeof(buf));
	sph_cbw_uint(&w, v);
	assert_int_equal(sph_cbw_finish(&w, &len), 0);
	return decode_with_claim(key, buf, len);
}

static void test_decode_claim_values(void **state)
{
	(void)state;
	const uint8_t multi_nonce[] = {0x82, 0x48, R8(0x01), 0x48, R8(0x02)}; /* PSA's array form */
	const uint8_t neg_count[] = {0x20};                                   /* -1 */
	const uint8_t nonshortest[] = {0x1b, 0, 0, 0, 0, 0, 0, 0x30, 0x00}; /* 0x3000 in 9 bytes */
	const uint8_t lc_bstr[] = {0x42, 0x30, 0x00};
	const uint8_t comps_map[] = {0xa0};
	const uint8_t null[] = {0xf6};

	/* Nonce: 8..64 bytes. */
	assert_int_equal(decode_with_bstr(EAT_CLAIM_NONCE, 7, 0), SPH_ERR_CLAIM);
	assert_int_equal(decode_with_bstr(EAT_CLAIM_NONCE, 8, 0), 0);
	assert_int_equal(decode_with_bstr(EAT_CLAIM_NONCE, 64, 0), 0);
	assert_int_equal(decode_with_bstr(EAT_CLAIM_NONCE, 65, 0), SPH_ERR_CLAIM);
	assert_int_equal(decode_with_bstr(EAT_CLAIM_NONCE, 0, 0), SPH_ERR_CLAIM);
	assert_int_equal(decode_with_claim(EAT_CLAIM_NONCE, multi_nonce, sizeof(multi_nonce)),
	                 SPH_ERR_CLAIM);
	assert_int_equal(decode_with_text(EAT_CLAIM_NONCE, "abcdefgh", 8), SPH_ERR_CLAIM);
	assert_int_equal(decode_with_claim(EAT_CLAIM_NONCE, null, 1), SPH_ERR_CLAIM);

	/* UEID: 33 bytes, type RAND. */
	assert_int_equal(decode_with_bstr(EAT_CLAIM_UEID, 33, 0x01), 0);
	assert_int_equal(decode_with_bstr(EAT_CLAIM_UEID, 32, 0x01), SPH_ERR_CLAIM);
	assert_int_equal(decode_with_bstr(EAT_CLAIM_UEID, 34, 0x01), SPH_ERR_CLAIM);
	assert_int_equal(decode_with_bstr(EAT_CLAIM_UEID, 33, 0x02), SPH_ERR_CLAIM);
	assert_int_equal(decode_with_bstr(EAT_CLAIM_UEID, 33, 0x00), SPH_ERR_CLAIM);

	/* 32-byte digests. */
	const int64_t d32[] = {EAT_CLAIM_IMPLEMENTATION_ID, EAT_CLAIM_BOOT_SEED,
	                       EAT_CLAIM_SPHERE_ACCUMULATOR};
	for (size_t i = 0; i < 3; i++) {
		assert_int_equal(decode_with_bstr(d32[i], 32, 0), 0);
		assert_int_equal(decode_with_bstr(d32[i], 31, 0), SPH_ERR_CLAIM);
		assert_int_equal(decode_with_bstr(d32[i], 33, 0), SPH_ERR_CLAIM);
		assert_int_equal(decode_with_bstr(d32[i], 8, 0), SPH_ERR_CLAIM); /* PSA allows 8 */
		assert_int_equal(decode_with_text(d32[i], "0123456789abcdef0123456789abcdef", 32),
		                 SPH_ERR_CLAIM);
	}

	/* Profile: exactly ours. */
	assert_int_equal(decode_with_text(EAT_CLAIM_PROFILE, "http://arm.com/psa/2.0.0", 24),
	                 SPH_ERR_CLAIM);
	assert_int_equal(decode_with_text(EAT_CLAIM_PROFILE, EAT_PROFILE, strlen(EAT_PROFILE) - 1),
	                 SPH_ERR_CLAIM);
	assert_int_equal(decode_with_bstr(EAT_CLAIM_PROFILE, 30, 't'), SPH_ERR_CLAIM);
	{
		char p[64];
		snprintf(p, sizeof(p), "%sx", EAT_PROFILE);
		assert_int_equal(decode_with_text(EAT_CLAIM_PROFILE, p, strlen(p)), SPH_ERR_CLAIM);
		memcpy(p, EAT_PROFILE, strlen(EAT_PROFILE));
		p[strlen(EAT_PROFILE)] = '\0';
		assert_int_equal(decode_with_text(EAT_CLAIM_PROFILE, p, strlen(EAT_PROFILE) + 1),
		                 SPH_ERR_CLAIM);
	}

	/* Boot count: any uint, nothing else. */
	assert_int_equal(decode_with_uint(EAT_CLAIM_BOOT_COUNT, 0), 0);
	assert_int_equal(decode_with_uint(EAT_CLAIM_BOOT_COUNT, UINT64_MAX), 0);
	assert_int_equal(decode_with_claim(EAT_CLAIM_BOOT_COUNT, neg_count, 1), SPH_ERR_CLAIM);

	/* Lifecycle: Sphere's four values only. */
	assert_int_equal(decode_with_uint(EAT_CLAIM_LIFECYCLE, 0x1000), 0);
	assert_int_equal(decode_with_uint(EAT_CLAIM_LIFECYCLE, 0x3000), 0);
	assert_int_equal(decode_with_uint(EAT_CLAIM_LIFECYCLE, 0x4000), 0);
	assert_int_equal(decode_with_uint(EAT_CLAIM_LIFECYCLE, 0x6000), 0);
	const uint64_t bad_lc[] = {0,      0x2000, 0x3001,  0x30ff,
	                           0x5000, 0x7000, 0x13000, (uint64_t)UINT32_MAX + 0x3000};
	for (size_t i = 0; i < sizeof(bad_lc) / sizeof(bad_lc[0]); i++)
		assert_int_equal(decode_with_uint(EAT_CLAIM_LIFECYCLE, bad_lc[i]), SPH_ERR_CLAIM);
	assert_int_equal(decode_with_claim(EAT_CLAIM_LIFECYCLE, lc_bstr, sizeof(lc_bstr)),
	                 SPH_ERR_CLAIM);
	assert_int_equal(decode_with_claim(EAT_CLAIM_LIFECYCLE, nonshortest, sizeof(nonshortest)),
	                 SPH_ERR_MALFORMED);

	/* Components: an array of maps. */
	assert_int_equal(decode_with_claim(EAT_CLAIM_SW_COMPONENTS, comps_map, 1), SPH_ERR_CLAIM);
	assert_int_equal(decode_with_bstr(EAT_CLAIM_SW_COMPONENTS, 32, 0), SPH_ERR_CLAIM);
	{
		const uint8_t arr_of_int[] = {0x81, 0x01};
		assert_int_equal(decode_with_claim(EAT_CLAIM_SW_COMPONENTS, arr_of_int, 2),
		                 SPH_ERR_CLAIM);
	}
}

/* Replaces one component field and returns the decoder's answer. */
static int decode_with_swc(int64_t key, const uint8_t *val, size_t len)
{
	struct cmap *m = sample_cmap();
	struct cmap *comp = sample_component_cmap();
	struct cm_entry *e = cm_find(comp, key);
	int rc;

	memcpy(e->val, val, len);
	e->val_len = len;
	set_one_component(m, comp);
	rc = cm_decode(m);
	free(comp);
	free(m);
	return rc;
}

static int swc_bstr(int64_t key, size_t n)
{
	uint8_t d[64] = {0}, buf[80];
	struct sph_cbw w;
	size_t len;

	sph_cbw_init(&w, buf, sizeof(buf));
	sph_cbw_bstr(&w, d, n);
	assert_int_equal(sph_cbw_finish(&w, &len), 0);
	return decode_with_swc(key, buf, len);
}

static int swc_text(int64_t key, const char *s, size_t n)
{
	uint8_t buf[80];
	struct sph_cbw w;
	size_t len;

	sph_cbw_init(&w, buf, sizeof(buf));
	sph_cbw_tstr(&w, s, n);
	assert_int_equal(sph_cbw_finish(&w, &len), 0);
	return decode_with_swc(key, buf, len);
}

static int swc_uint(int64_t key, uint64_t v)
{
	uint8_t buf[16];
	struct sph_cbw w;
	size_t len;

	sph_cbw_init(&w, buf, sizeof(buf));
	sph_cbw_uint(&w, v);
	assert_int_equal(sph_cbw_finish(&w, &len), 0);
	return decode_with_swc(key, buf, len);
}

static void test_decode_component_values(void **state)
{
	(void)state;
	const char *t33 = "123456789012345678901234567890123";

	/* Measurement and signer id: 32 bytes; component id: 16. */
	assert_int_equal(swc_bstr(EAT_SWC_MEASUREMENT, 32), 0);
	assert_int_equal(swc_bstr(EAT_SWC_MEASUREMENT, 31), SPH_ERR_CLAIM);
	assert_int_equal(swc_bstr(EAT_SWC_MEASUREMENT, 33), SPH_ERR_CLAIM);
	assert_int_equal(swc_bstr(EAT_SWC_MEASUREMENT, 48), SPH_ERR_CLAIM); /* SHA-384 */
	assert_int_equal(swc_bstr(EAT_SWC_SIGNER_ID, 31), SPH_ERR_CLAIM);
	assert_int_equal(swc_bstr(EAT_SWC_SIGNER_ID, 33), SPH_ERR_CLAIM);
	assert_int_equal(swc_bstr(EAT_SWC_SPHERE_COMPONENT_ID, 16), 0);
	assert_int_equal(swc_bstr(EAT_SWC_SPHERE_COMPONENT_ID, 15), SPH_ERR_CLAIM);
	assert_int_equal(swc_bstr(EAT_SWC_SPHERE_COMPONENT_ID, 17), SPH_ERR_CLAIM);
	assert_int_equal(swc_text(EAT_SWC_MEASUREMENT, t33, 32), SPH_ERR_CLAIM);

	/* Type 1..16 and version 1..32 bytes of printable ASCII. */
	assert_int_equal(swc_text(EAT_SWC_TYPE, "0123456789abcdef", 16), 0);
	assert_int_equal(swc_text(EAT_SWC_TYPE, "0123456789abcdefg", 17), SPH_ERR_CLAIM);
	assert_int_equal(swc_text(EAT_SWC_TYPE, "", 0), SPH_ERR_CLAIM);
	assert_int_equal(swc_text(EAT_SWC_TYPE, "B\0L", 3), SPH_ERR_CLAIM);
	assert_int_equal(swc_text(EAT_SWC_TYPE, "BL\n", 3), SPH_ERR_CLAIM);
	assert_int_equal(swc_text(EAT_SWC_TYPE, "\xc3\xa9", 2), SPH_ERR_CLAIM);
	assert_int_equal(swc_bstr(EAT_SWC_TYPE, 2), SPH_ERR_CLAIM);
	assert_int_equal(swc_text(EAT_SWC_VERSION, t33, 32), 0);
	assert_int_equal(swc_text(EAT_SWC_VERSION, t33, 33), SPH_ERR_CLAIM);
	assert_int_equal(swc_text(EAT_SWC_VERSION, "", 0), SPH_ERR_CLAIM);
	assert_int_equal(swc_text(EAT_SWC_VERSION, "1.0\0", 4), SPH_ERR_CLAIM);
	assert_int_equal(swc_text(EAT_SWC_VERSION, "1.0\x7f", 4), SPH_ERR_CLAIM);

	/* Description: exactly "sha-256" (not PSA's "SHA256"). */
	assert_int_equal(swc_text(EAT_SWC_DESCRIPTION, "SHA256", 6), SPH_ERR_CLAIM);
	assert_int_equal(swc_text(EAT_SWC_DESCRIPTION, "sha-2566", 8), SPH_ERR_CLAIM);
	assert_int_equal(swc_text(EAT_SWC_DESCRIPTION, "sha-25", 6), SPH_ERR_CLAIM);
	assert_int_equal(swc_bstr(EAT_SWC_DESCRIPTION, 7), SPH_ERR_CLAIM);

	/* Security version: a uint up to UINT32_MAX. */
	assert_int_equal(swc_uint(EAT_SWC_SPHERE_SVN, 0), 0);
	assert_int_equal(swc_uint(EAT_SWC_SPHERE_SVN, UINT32_MAX), 0);
	assert_int_equal(swc_uint(EAT_SWC_SPHERE_SVN, (uint64_t)UINT32_MAX + 1), SPH_ERR_CLAIM);
	{
		const uint8_t minus_one[] = {0x20};
		assert_int_equal(decode_with_swc(EAT_SWC_SPHERE_SVN, minus_one, 1), SPH_ERR_CLAIM);
	}
}

static void test_decode_component_count(void **state)
{
	(void)state;
	struct cmap *comps[EAT_MAX_COMPONENTS + 1];
	struct cmap *m;

	for (size_t i = 0; i <= EAT_MAX_COMPONENTS; i++)
		comps[i] = sample_component_cmap();

	m = sample_cmap();
	set_components(m, comps, 0);
	assert_int_equal(cm_decode(m), SPH_ERR_CLAIM);
	set_components(m, comps, EAT_MAX_COMPONENTS);
	assert_int_equal(cm_decode(m), 0);
	set_components(m, comps, EAT_MAX_COMPONENTS + 1);
	assert_int_equal(cm_decode(m), SPH_ERR_CLAIM);
	free(m);
	for (size_t i = 0; i <= EAT_MAX_COMPONENTS; i++)
		free(comps[i]);
}

/* ---- signed tokens ------------------------------------------------------------ */

static EVP_PKEY *new_key(uint8_t pub[COSE_P256_PUB_LEN])
{
	EVP_PKEY *k = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
	assert_non_null(k);
	assert_int_equal(cose_p256_export(k, pub), 0);
	return k;
}

struct keys {
	EVP_PKEY *attest, *identity, *other;
	uint8_t attest_pub[COSE_P256_PUB_LEN], identity_pub[COSE_P256_PUB_LEN],
	        other_pub[COSE_P256_PUB_LEN];
	uint8_t kid[EAT_KID_LEN], other_kid[EAT_KID_LEN];
};

static int keys_setup(void **state)
{
	struct keys *k = calloc(1, sizeof(*k));
	assert_non_null(k);
	k->attest = new_key(k->attest_pub);
	k->identity = new_key(k->identity_pub);
	k->other = new_key(k->other_pub);
	assert_int_equal(eat_kid_from_pub(k->attest_pub, k->kid), 0);
	assert_int_equal(eat_kid_from_pub(k->other_pub, k->other_kid), 0);
	*state = k;
	return 0;
}

static int keys_teardown(void **state)
{
	struct keys *k = *state;
	EVP_PKEY_free(k->attest);
	EVP_PKEY_free(k->identity);
	EVP_PKEY_free(k->other);
	free(k);
	return 0;
}

/* Claims for the identity key of k, n components, a matching accumulator. */
static void device_claims(const struct keys *k, struct eat_claims *c, size_t n)
{
	sample_claims(c, n);
	assert_int_equal(eat_ueid_from_pub(k->identity_pub, c->ueid), 0);
}

static void sign_claims(const struct keys *k, const struct eat_claims *c, uint8_t *tok, size_t *len)
{
	assert_int_equal(eat_sign(c, cose_pkey_signer, k->attest, k->kid, EAT_KID_LEN, tok,
	                          EAT_MAX_TOKEN, len),
	                 0);
}

static void test_sign_verify(void **state)
{
	struct keys *k = *state;
	struct eat_claims c, out;
	uint8_t tok[EAT_MAX_TOKEN];
	size_t len;
	struct cose_sign1 msg;

	device_claims(k, &c, 3);
	sign_claims(k, &c, tok, &len);
	assert_int_equal(
	        eat_verify(tok, len, c.nonce, c.nonce_len, k->attest_pub, k->identity_pub, &out),
	        0);
	assert_claims_equal(&c, &out);
	assert_int_equal(eat_verify(tok, len, c.nonce, c.nonce_len, k->attest_pub, NULL, NULL), 0);

	/* The envelope: tag 18, protected {1: -7}, kid, the claims as payload. */
	assert_int_equal(cose_sign1_decode(tok, len, &msg), 0);
	assert_true(msg.tagged);
	assert_int_equal(msg.protected_len, 3);
	assert_memory_equal(msg.protected_hdr, "\xa1\x01\x26", 3);
	assert_int_equal(msg.kid_len, EAT_KID_LEN);
	assert_memory_equal(msg.kid, k->kid, EAT_KID_LEN);
	{
		uint8_t claims[EAT_MAX_TOKEN];
		size_t clen;
		assert_int_equal(eat_encode_claims(&c, claims, sizeof(claims), &clen), 0);
		assert_int_equal(msg.payload_len, clen);
		assert_memory_equal(msg.payload, claims, clen);
	}

	/* The largest claim set signs within EAT_MAX_TOKEN and verifies. */
	max_claims(&c);
	assert_int_equal(eat_ueid_from_pub(k->identity_pub, c.ueid), 0);
	sign_claims(k, &c, tok, &len);
	assert_int_equal(len, 3027); /* docs/formats.md §3.2 */
	assert_int_equal(
	        eat_verify(tok, len, c.nonce, c.nonce_len, k->attest_pub, k->identity_pub, &out),
	        0);
	assert_claims_equal(&c, &out);
}

/* (r, s) and (r, n - s) are both valid ECDSA signatures: tokens must carry the
 * low-s form only, and a verifier must refuse the high-s twin. */
static void test_signature_malleability(void **state)
{
	struct keys *k = *state;
	static const char *n_hex =
	        "FFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551";
	BIGNUM *n = NULL, *half = NULL, *sv = NULL;
	struct eat_claims c;
	uint8_t tok[EAT_MAX_TOKEN];
	size_t len;

	assert_true(BN_hex2bn(&n, n_hex) > 0);
	half = BN_dup(n);
	assert_non_null(half);
	assert_int_equal(BN_rshift1(half, n), 1);
	device_claims(k, &c, 2);
	/* ECDSA draws s at random: about half of raw signatures are high-s. */
	for (int i = 0; i < 32; i++) {
		EVP_PKEY *attest_key;
		sign_claims(k, &c, tok, &len);
		sv = BN_bin2bn(tok + len - 32, 32, sv);
		assert_non_null(sv);
		assert_true(BN_cmp(sv, half) <= 0);

		/* The twin verifies as ECDSA (so the check below is what refuses it). */
		assert_int_equal(BN_sub(sv, n, sv), 1);
		assert_int_equal(BN_bn2binpad(sv, tok + len - 32, 32), 32);
		assert_int_equal(cose_p256_import(k->attest_pub, &attest_key), 0);
		assert_int_equal(cose_sign1_verify(tok, len, NULL, 0, attest_key, NULL), 0);
		EVP_PKEY_free(attest_key);
		assert_int_equal(
		        eat_verify(tok, len, c.nonce, c.nonce_len, k->attest_pub, NULL, NULL),
		        SPH_ERR_MALFORMED);
	}
	BN_free(n);
	BN_free(half);
	BN_free(sv);
}

static void test_sign_errors(void **state)
{
	struct keys *k = *state;
	struct eat_claims c;
	uint8_t tok[EAT_MAX_TOKEN];
	size_t len = 99, full;

	device_claims(k, &c, 2);
	c.nonce_len = 7;
	assert_int_equal(eat_sign(&c, cose_pkey_signer, k->attest, k->kid, EAT_KID_LEN, tok,
	                          sizeof(tok), &len),
	                 SPH_ERR_CLAIM);
	assert_int_equal(len, 0);
	c.nonce_len = 16;
	assert_int_equal(eat_sign(&c, NULL, k->attest, k->kid, EAT_KID_LEN, tok, sizeof(tok), &len),
	                 SPH_ERR_INVALID_ARG);
	sign_claims(k, &c, tok, &full);
	assert_int_equal(
	        eat_sign(&c, cose_pkey_signer, k->attest, k->kid, EAT_KID_LEN, tok, full - 1, &len),
	        SPH_ERR_BUFFER_TOO_SMALL);
	assert_int_equal(len, 0);
}

#define VERIFY(tok, len, c, k)                                                                     \
	eat_verify((tok), (len), (c)->nonce, (c)->nonce_len, (k)->attest_pub, (k)->identity_pub,   \
	           NULL)

static void test_verify_wrong_nonce(void **state)
{
	struct keys *k = *state;
	struct eat_claims c, out;
	uint8_t tok[EAT_MAX_TOKEN], nonce[EAT_NONCE_MAX];
	size_t len;

	device_claims(k, &c, 2);
	sign_claims(k, &c, tok, &len);
	memcpy(nonce, c.nonce, c.nonce_len);
	for (size_t i = 0; i < c.nonce_len; i++) {
		nonce[i] ^= 0x01;
		memset(&out, 0xaa, sizeof(out));
		assert_int_equal(
		        eat_verify(tok, len, nonce, c.nonce_len, k->attest_pub, NULL, &out),
		        SPH_ERR_NONCE_MISMATCH);
		assert_true(all_zero(&out, sizeof(out)));
		nonce[i] ^= 0x01;
	}
	/* A prefix or an extension of the right nonce is another nonce. */
	nonce[c.nonce_len] = 0;
	assert_int_equal(eat_verify(tok, len, nonce, c.nonce_len - 1, k->attest_pub, NULL, NULL),
	                 SPH_ERR_NONCE_MISMATCH);
	assert_int_equal(eat_verify(tok, len, nonce, c.nonce_len + 1, k->attest_pub, NULL, NULL),
	                 SPH_ERR_NONCE_MISMATCH);
	/* A challenge no token may answer is a caller error. */
	assert_int_equal(eat_verify(tok, len, nonce, EAT_NONCE_MIN - 1, k->attest_pub, NULL, NULL),
	                 SPH_ERR_INVALID_ARG);
	assert_int_equal(eat_verify(tok, len, nonce, EAT_NONCE_MAX + 1, k->attest_pub, NULL, NULL),
	                 SPH_ERR_INVALID_ARG);
	assert_int_equal(eat_verify(tok, len, NULL, c.nonce_len, k->attest_pub, NULL, NULL),
	                 SPH_ERR_INVALID_ARG);
}

static void test_verify_every_bit_flip(void **state)
{
	struct keys *k = *state;
	struct eat_claims c, out;
	uint8_t tok[EAT_MAX_TOKEN];
	size_t len, accepted = 0;

	device_claims(k, &c, 2);
	sign_claims(k, &c, tok, &len);
	assert_int_equal(VERIFY(tok, len, &c, k), 0);
	for (size_t bit = 0; bit < len * 8; bit++) {
		tok[bit / 8] ^= (uint8_t)(1u << (bit % 8));
		memset(&out, 0xaa, sizeof(out));
		if (eat_verify(tok, len, c.nonce, c.nonce_len, k->attest_pub, k->identity_pub,
		               &out) == 0)
			accepted++;
		else
			assert_true(all_zero(&out, sizeof(out)));
		tok[bit / 8] ^= (uint8_t)(1u << (bit % 8));
	}
	assert_int_equal(accepted, 0);
	assert_int_equal(VERIFY(tok, len, &c, k), 0);
}

static void test_verify_truncated_and_trailing(void **state)
{
	struct keys *k = *state;
	struct eat_claims c;
	uint8_t tok[EAT_MAX_TOKEN + 1];
	size_t len;

	device_claims(k, &c, 2);
	sign_claims(k, &c, tok, &len);
	for (size_t n = 0; n < len; n++)
		assert_int_not_equal(VERIFY(tok, n, &c, k), 0);
	tok[len] = 0x00;
	assert_int_not_equal(VERIFY(tok, len + 1, &c, k), 0);
	assert_int_equal(VERIFY(tok, EAT_MAX_TOKEN + 1, &c, k), SPH_ERR_TOO_LARGE);
}

static void test_verify_wrong_key(void **state)
{
	struct keys *k = *state;
	struct eat_claims c;
	uint8_t tok[EAT_MAX_TOKEN], bad_pub[COSE_P256_PUB_LEN];
	size_t len;

	/* Signed by another key, whatever kid it names. */
	device_claims(k, &c, 2);
	assert_int_equal(eat_sign(&c, cose_pkey_signer, k->other, k->other_kid, EAT_KID_LEN, tok,
	                          sizeof(tok), &len),
	                 0);
	assert_int_equal(VERIFY(tok, len, &c, k), SPH_ERR_BAD_SIGNATURE);
	assert_int_equal(eat_sign(&c, cose_pkey_signer, k->other, k->kid, EAT_KID_LEN, tok,
	                          sizeof(tok), &len),
	                 0);
	assert_int_equal(VERIFY(tok, len, &c, k), SPH_ERR_BAD_SIGNATURE);
	/* Signed by the identity key (which signs arbitrary digests) instead. */
	assert_int_equal(eat_sign(&c, cose_pkey_signer, k->identity, k->kid, EAT_KID_LEN, tok,
	                          sizeof(tok), &len),
	                 0);
	assert_int_equal(VERIFY(tok, len, &c, k), SPH_ERR_BAD_SIGNATURE);

	/* A malformed attestation key. */
	sign_claims(k, &c, tok, &len);
	memcpy(bad_pub, k->attest_pub, sizeof(bad_pub));
	bad_pub[0] = 0x05;
	assert_int_equal(eat_verify(tok, len, c.nonce, c.nonce_len, bad_pub, NULL, NULL),
	                 SPH_ERR_MALFORMED);
	memcpy(bad_pub, k->attest_pub, sizeof(bad_pub));
	bad_pub[64] ^= 1; /* off the curve */
	assert_int_equal(eat_verify(tok, len, c.nonce, c.nonce_len, bad_pub, NULL, NULL),
	                 SPH_ERR_MALFORMED);
}

static void test_verify_envelope(void **state)
{
	struct keys *k = *state;
	struct eat_claims c;
	struct cose_sign1_params p;
	uint8_t claims[EAT_MAX_TOKEN], tok[EAT_MAX_TOKEN];
	size_t clen, len;

	device_claims(k, &c, 2);
	assert_int_equal(eat_encode_claims(&c, claims, sizeof(claims), &clen), 0);

	/* No kid, another key's kid, a truncated kid. */
	assert_int_equal(eat_sign(&c, cose_pkey_signer, k->attest, NULL, 0, tok, sizeof(tok), &len),
	                 0);
	assert_int_equal(VERIFY(tok, len, &c, k), SPH_ERR_MALFORMED);
	assert_int_equal(eat_sign(&c, cose_pkey_signer, k->attest, k->other_kid, EAT_KID_LEN, tok,
	                          sizeof(tok), &len),
	                 0);
	assert_int_equal(VERIFY(tok, len, &c, k), SPH_ERR_MALFORMED);
	assert_int_equal(eat_sign(&c, cose_pkey_signer, k->attest, k->kid, EAT_KID_LEN - 1, tok,
	                          sizeof(tok), &len),
	                 0);
	assert_int_equal(VERIFY(tok, len, &c, k), SPH_ERR_MALFORMED);

	/* Untagged, or with a content type: validly signed, still refused. */
	memset(&p, 0, sizeof(p));
	p.payload = claims;
	p.payload_len = clen;
	p.kid = k->kid;
	p.kid_len = EAT_KID_LEN;
	p.content_type = -1;
	p.untagged = true;
	assert_int_equal(cose_sign1_create(&p, cose_pkey_signer, k->attest, tok, sizeof(tok), &len),
	                 0);
	assert_int_equal(VERIFY(tok, len, &c, k), SPH_ERR_MALFORMED);
	p.untagged = false;
	p.content_type = 61; /* application/cwt */
	assert_int_equal(cose_sign1_create(&p, cose_pkey_signer, k->attest, tok, sizeof(tok), &len),
	                 0);
	assert_int_equal(VERIFY(tok, len, &c, k), SPH_ERR_MALFORMED);

	/* The same parameters as eat_sign verify: the rebuilt envelope is exact. */
	p.content_type = -1;
	assert_int_equal(cose_sign1_create(&p, cose_pkey_signer, k->attest, tok, sizeof(tok), &len),
	                 0);
	assert_int_equal(VERIFY(tok, len, &c, k), 0);
}

static void test_verify_wrong_accumulator(void **state)
{
	struct keys *k = *state;
	struct eat_claims c;
	uint8_t tok[EAT_MAX_TOKEN];
	size_t len;

	/* Correctly signed, but the accumulator does not replay from the list. */
	device_claims(k, &c, 3);
	c.accumulator[0] ^= 0x80;
	sign_claims(k, &c, tok, &len);
	assert_int_equal(VERIFY(tok, len, &c, k), SPH_ERR_CLAIM);

	/* A component left out of the list (the log hides a booted image). */
	device_claims(k, &c, 3);
	c.n_components = 2;
	sign_claims(k, &c, tok, &len);
	assert_int_equal(VERIFY(tok, len, &c, k), SPH_ERR_CLAIM);

	/* Components reordered. */
	device_claims(k, &c, 3);
	{
		struct eat_component t = c.components[0];
		c.components[0] = c.components[1];
		c.components[1] = t;
	}
	sign_claims(k, &c, tok, &len);
	assert_int_equal(VERIFY(tok, len, &c, k), SPH_ERR_CLAIM);

	/* One component's digest changed after measurement. */
	device_claims(k, &c, 3);
	c.components[2].digest[0] ^= 1;
	sign_claims(k, &c, tok, &len);
	assert_int_equal(VERIFY(tok, len, &c, k), SPH_ERR_CLAIM);

	/* The zero accumulator (nothing measured) with a list. */
	device_claims(k, &c, 1);
	memset(c.accumulator, 0, 32);
	sign_claims(k, &c, tok, &len);
	assert_int_equal(VERIFY(tok, len, &c, k), SPH_ERR_CLAIM);
}

static void test_verify_ueid_mismatch(void **state)
{
	struct keys *k = *state;
	struct eat_claims c;
	uint8_t tok[EAT_MAX_TOKEN];
	size_t len;

	device_claims(k, &c, 2);
	sign_claims(k, &c, tok, &len);
	assert_int_equal(
	        eat_verify(tok, len, c.nonce, c.nonce_len, k->attest_pub, k->other_pub, NULL),
	        SPH_ERR_CLAIM);
	/* The UEID is of the identity key, not of the attestation key. */
	assert_int_equal(
	        eat_verify(tok, len, c.nonce, c.nonce_len, k->attest_pub, k->attest_pub, NULL),
	        SPH_ERR_CLAIM);
	assert_int_equal(VERIFY(tok, len, &c, k), 0);

	/* A token whose UEID differs in one bit from the device's. */
	c.ueid[EAT_UEID_LEN - 1] ^= 1;
	sign_claims(k, &c, tok, &len);
	assert_int_equal(VERIFY(tok, len, &c, k), SPH_ERR_CLAIM);
	assert_int_equal(eat_verify(tok, len, c.nonce, c.nonce_len, k->attest_pub, NULL, NULL), 0);
}

static void test_verify_bad_claims_signed(void **state)
{
	struct keys *k = *state;
	struct eat_claims c;
	struct cose_sign1_params p;
	struct cmap *m;
	uint8_t claims[EAT_MAX_TOKEN], tok[EAT_MAX_TOKEN];
	size_t clen, len;

	/* A 7-byte nonce, correctly signed: still refused. */
	device_claims(k, &c, 2);
	m = cm_new();
	claims_cmap(&c, m);
	cm_set_bstr(m, EAT_CLAIM_NONCE, c.nonce, 7);
	clen = cm_encode(m, claims, sizeof(claims));
	free(m);
	memset(&p, 0, sizeof(p));
	p.payload = claims;
	p.payload_len = clen;
	p.kid = k->kid;
	p.kid_len = EAT_KID_LEN;
	p.content_type = -1;
	assert_int_equal(cose_sign1_create(&p, cose_pkey_signer, k->attest, tok, sizeof(tok), &len),
	                 0);
	assert_int_equal(eat_verify(tok, len, c.nonce, EAT_NONCE_MIN, k->attest_pub, NULL, NULL),
	                 SPH_ERR_CLAIM);
	/* The same bytes with an 8-byte nonce verify: the one change is the cause. */
	m = cm_new();
	claims_cmap(&c, m);
	cm_set_bstr(m, EAT_CLAIM_NONCE, c.nonce, 8);
	p.payload_len = cm_encode(m, claims, sizeof(claims));
	free(m);
	assert_int_equal(cose_sign1_create(&p, cose_pkey_signer, k->attest, tok, sizeof(tok), &len),
	                 0);
	assert_int_equal(eat_verify(tok, len, c.nonce, EAT_NONCE_MIN, k->attest_pub, NULL, NULL),
	                 0);
}

static int failing_signer(void *ctx, const uint8_t digest[COSE_DIGEST_LEN],
                          uint8_t sig[COSE_ES256_SIG_LEN])
{
	(void)ctx;
	(void)digest;
	memset(sig, 0, COSE_ES256_SIG_LEN);
	return SPH_ERR_PERMISSION;
}

static void test_sign_signer_failure(void **state)
{
	struct keys *k = *state;
	struct eat_claims c;
	uint8_t tok[EAT_MAX_TOKEN];
	size_t len = 99;

	device_claims(k, &c, 1);
	assert_int_equal(
	        eat_sign(&c, failing_signer, NULL, k->kid, EAT_KID_LEN, tok, sizeof(tok), &len),
	        SPH_ERR_PERMISSION);
	assert_int_equal(len, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_pinned_encoding),
	        cmocka_unit_test(test_implementation_id),
	        cmocka_unit_test(test_measurement_and_replay),
	        cmocka_unit_test(test_ueid_and_kid),
	        cmocka_unit_test(test_round_trip),
	        cmocka_unit_test(test_max_claims),
	        cmocka_unit_test(test_builder_matches_encoder),
	        cmocka_unit_test(test_encode_refuses_invalid),
	        cmocka_unit_test(test_decode_truncated_and_trailing),
	        cmocka_unit_test(test_decode_missing_claims),
	        cmocka_unit_test(test_decode_duplicate_and_unknown),
	        cmocka_unit_test(test_decode_key_order),
	        cmocka_unit_test(test_decode_claim_values),
	        cmocka_unit_test(test_decode_component_values),
	        cmocka_unit_test(test_decode_component_count),
	        cmocka_unit_test_setup_teardown(test_sign_verify, keys_setup, keys_teardown),
	        cmocka_unit_test_setup_teardown(test_sign_errors, keys_setup, keys_teardown),
	        cmocka_unit_test_setup_teardown(test_signature_malleability, keys_setup,
	                                        keys_teardown),
	        cmocka_unit_test_setup_teardown(test_verify_wrong_nonce, keys_setup, keys_teardown),
	        cmocka_unit_test_setup_teardown(test_verify_every_bit_flip, keys_setup,
	                                        keys_teardown),
	        cmocka_unit_test_setup_teardown(test_verify_truncated_and_trailing, keys_setup,
	                                        keys_teardown),
	        cmocka_unit_test_setup_teardown(test_verify_wrong_key, keys_setup, keys_teardown),
	        cmocka_unit_test_setup_teardown(test_verify_envelope, keys_setup, keys_teardown),
	        cmocka_unit_test_setup_teardown(test_verify_wrong_accumulator, keys_setup,
	                                        keys_teardown),
	        cmocka_unit_test_setup_teardown(test_verify_ueid_mismatch, keys_setup,
	                                        keys_teardown),
	        cmocka_unit_test_setup_teardown(test_verify_bad_claims_signed, keys_setup,
	                                        keys_teardown),
	        cmocka_unit_test_setup_teardown(test_sign_signer_failure, keys_setup,
	                                        keys_teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
