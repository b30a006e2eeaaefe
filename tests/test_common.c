/* common: status strings, hex, the CBOR writer and the strict CBOR reader. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/common.h"
#include "testutil.h"

static void test_strerror_every_code(void **state)
{
	(void)state;
	for (int s = SPH_OK; s >= SPH_ERR_NO_SPACE; s--) {
		const char *m = sph_strerror(s);
		assert_non_null(m);
		assert_string_not_equal(m, "unknown status");
	}
	assert_string_equal(sph_strerror(1234), "unknown status");
}

static void test_hex(void **state)
{
	(void)state;
	const uint8_t in[] = {0x00, 0x7f, 0xab, 0xff};
	char out[9];
	uint8_t back[4];

	assert_int_equal(sph_hex_encode(in, 4, out, sizeof(out)), 0);
	assert_string_equal(out, "007fabff");
	assert_int_equal(sph_hex_encode(in, 4, out, 8), SPH_ERR_BUFFER_TOO_SMALL);
	assert_int_equal(sph_hex_decode("007FABff", back, 4), 0);
	assert_memory_equal(in, back, 4);
	assert_int_equal(sph_hex_decode("007fab", back, 4), SPH_ERR_INVALID_ARG);
	assert_int_equal(sph_hex_decode("007fabff00", back, 4), SPH_ERR_INVALID_ARG);
	assert_int_equal(sph_hex_decode("007fabgf", back, 4), SPH_ERR_MALFORMED);
}

static void test_writer_shortest_form(void **state)
{
	(void)state;
	uint8_t buf[64];
	struct sph_cbw w;
	size_t len;
	/* {1: -7, 4: h'3131', "a": [23, 24, 256, true, null]} as RFC 8949 encodes it */
	const uint8_t want[] = {0xa3, 0x01, 0x26, 0x04, 0x42, 0x31, 0x31, 0x61, 0x61,
	                        0x85, 0x17, 0x18, 0x18, 0x19, 0x01, 0x00, 0xf5, 0xf6};

	sph_cbw_init(&w, buf, sizeof(buf));
	sph_cbw_map(&w, 3);
	sph_cbw_uint(&w, 1);
	sph_cbw_int(&w, -7);
	sph_cbw_int(&w, 4);
	sph_cbw_bstr(&w, (const uint8_t *)"11", 2);
	sph_cbw_tstr(&w, "a", 1);
	sph_cbw_array(&w, 5);
	sph_cbw_uint(&w, 23);
	sph_cbw_uint(&w, 24);
	sph_cbw_uint(&w, 256);
	sph_cbw_bool(&w, true);
	sph_cbw_null(&w);
	assert_int_equal(sph_cbw_finish(&w, &len), 0);
	assert_int_equal(len, sizeof(want));
	assert_memory_equal(buf, want, sizeof(want));
}

static void test_writer_overflow_is_sticky(void **state)
{
	(void)state;
	uint8_t buf[4];
	struct sph_cbw w;
	size_t len = 99;

	sph_cbw_init(&w, buf, sizeof(buf));
	sph_cbw_bstr(&w, (const uint8_t *)"hello", 5);
	sph_cbw_uint(&w, 1); /* would fit, but the error is sticky */
	assert_int_equal(sph_cbw_finish(&w, &len), SPH_ERR_BUFFER_TOO_SMALL);
	assert_int_equal(len, 0);
}

static int read_one(const uint8_t *b, size_t n, struct sph_cbor_item *it)
{
	struct sph_cbr r;
	sph_cbr_init(&r, b, n);
	return sph_cbr_next(&r, it);
}

static void test_reader_types(void **state)
{
	(void)state;
	struct sph_cbor_item it;
	const uint8_t neg[] = {0x38, 0x63}; /* -100 */
	const uint8_t str[] = {0x63, 'a', 'b', 'c'};
	const uint8_t tag[] = {0xd2, 0x80};
	struct sph_cbr r;
	int64_t v;

	assert_int_equal(read_one(neg, sizeof(neg), &it), 0);
	assert_int_equal(it.type, SPH_CBOR_NEGINT);
	sph_cbr_init(&r, neg, sizeof(neg));
	assert_int_equal(sph_cbr_int(&r, &v), 0);
	assert_int_equal(v, -100);
	assert_true(sph_cbr_done(&r));

	assert_int_equal(read_one(str, sizeof(str), &it), 0);
	assert_int_equal(it.type, SPH_CBOR_TSTR);
	assert_int_equal(it.len, 3);
	assert_memory_equal(it.data, "abc", 3);

	assert_int_equal(read_one(tag, sizeof(tag), &it), 0);
	assert_int_equal(it.type, SPH_CBOR_TAG);
	assert_int_equal(it.u, 18);
}

static void test_reader_refuses_non_strict(void **state)
{
	(void)state;
	struct sph_cbor_item it;
	const uint8_t nonshortest_int[] = {0x18, 0x05};        /* 5 in two bytes */
	const uint8_t nonshortest_len[] = {0x58, 0x01, 0x00};  /* 1-byte bstr, long head */
	const uint8_t indef_bstr[] = {0x5f, 0x41, 0x00, 0xff}; /* indefinite bstr */
	const uint8_t indef_map[] = {0xbf, 0xff};              /* indefinite map */
	const uint8_t half_float[] = {0xf9, 0x3c, 0x00};       /* 1.0 */
	const uint8_t undef[] = {0xf7};                        /* undefined */
	const uint8_t reserved[] = {0x1c};                     /* reserved additional info */
	const uint8_t short_str[] = {0x45, 0x01, 0x02};        /* 5-byte bstr with 2 bytes */
	const uint8_t huge_str[] = {0x5b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x00};

	assert_int_equal(read_one(nonshortest_int, 2, &it), SPH_ERR_MALFORMED);
	assert_int_equal(read_one(nonshortest_len, 3, &it), SPH_ERR_MALFORMED);
	assert_int_equal(read_one(indef_bstr, 4, &it), SPH_ERR_MALFORMED);
	assert_int_equal(read_one(indef_map, 2, &it), SPH_ERR_MALFORMED);
	assert_int_equal(read_one(half_float, 3, &it), SPH_ERR_MALFORMED);
	assert_int_equal(read_one(undef, 1, &it), SPH_ERR_MALFORMED);
	assert_int_equal(read_one(reserved, 1, &it), SPH_ERR_MALFORMED);
	assert_int_equal(read_one(short_str, 3, &it), SPH_ERR_TRUNCATED);
	assert_int_equal(read_one(huge_str, sizeof(huge_str), &it), SPH_ERR_TRUNCATED);
	assert_int_equal(read_one(NULL, 0, &it), SPH_ERR_TRUNCATED);
}

static void test_reader_skip_and_trailing(void **state)
{
	(void)state;
	/* [1, {2: h'00'}, "x"] then a trailing 0x00 */
	const uint8_t b[] = {0x83, 0x01, 0xa1, 0x02, 0x41, 0x00, 0x61, 'x', 0x00};
	struct sph_cbr r;

	sph_cbr_init(&r, b, sizeof(b));
	assert_int_equal(sph_cbr_skip(&r), 0);
	assert_int_equal(r.off, 8);
	assert_int_equal(sph_cbr_expect_end(&r), SPH_ERR_TRAILING);
}

static void test_reader_skip_bounds(void **state)
{
	(void)state;
	uint8_t deep[SPH_CBOR_MAX_DEPTH + 2];
	const uint8_t big_array[] = {0x9a, 0xff, 0xff, 0xff, 0xff, 0x01}; /* claims 2^32-1 items */
	struct sph_cbr r;

	memset(deep, 0x81, sizeof(deep)); /* [[[[...]]]] nested too deep */
	deep[sizeof(deep) - 1] = 0x01;
	sph_cbr_init(&r, deep, sizeof(deep));
	assert_int_equal(sph_cbr_skip(&r), SPH_ERR_TOO_LARGE);
	assert_int_equal(r.off, 0);

	sph_cbr_init(&r, big_array, sizeof(big_array));
	assert_int_equal(sph_cbr_skip(&r), SPH_ERR_TRUNCATED);
}

static void test_reader_skip_refuses_duplicate_keys(void **state)
{
	(void)state;
	/* {99: {1: 0, 1: 1}}: the inner map repeats a key */
	const uint8_t inner_dup[] = {0xa1, 0x18, 0x63, 0xa2, 0x01, 0x00, 0x01, 0x01};
	/* {"a": 0, "a": 1} and {[1]: 0, [1]: 1}: text and compound keys */
	const uint8_t text_dup[] = {0xa2, 0x61, 'a', 0x00, 0x61, 'a', 0x01};
	const uint8_t array_dup[] = {0xa2, 0x81, 0x01, 0x00, 0x81, 0x01, 0x01};
	/* {1: 0, 2: 0, [1, 2]: 0} is fine */
	const uint8_t distinct[] = {0xa3, 0x01, 0x00, 0x02, 0x00, 0x82, 0x01, 0x02, 0x00};
	struct sph_cbr r;

	sph_cbr_init(&r, inner_dup, sizeof(inner_dup));
	assert_int_equal(sph_cbr_skip(&r), SPH_ERR_DUPLICATE);
	assert_int_equal(r.off, 0);
	sph_cbr_init(&r, text_dup, sizeof(text_dup));
	assert_int_equal(sph_cbr_skip(&r), SPH_ERR_DUPLICATE);
	sph_cbr_init(&r, array_dup, sizeof(array_dup));
	assert_int_equal(sph_cbr_skip(&r), SPH_ERR_DUPLICATE);
	sph_cbr_init(&r, distinct, sizeof(distinct));
	assert_int_equal(sph_cbr_skip(&r), 0);
	assert_true(sph_cbr_done(&r));
}

static void test_reader_outputs_cleared_on_error(void **state)
{
	(void)state;
	const uint8_t text[] = {0x61, 'x'};
	const uint8_t *data = text;
	size_t len = 7, count = 7;
	uint64_t u = 7;
	int64_t i = 7;
	struct sph_cbr r;

	sph_cbr_init(&r, text, sizeof(text));
	assert_int_equal(sph_cbr_bstr(&r, &data, &len), SPH_ERR_MALFORMED);
	assert_null(data);
	assert_int_equal(len, 0);
	assert_int_equal(sph_cbr_uint(&r, &u), SPH_ERR_MALFORMED);
	assert_int_equal(u, 0);
	assert_int_equal(sph_cbr_int(&r, &i), SPH_ERR_MALFORMED);
	assert_int_equal(i, 0);
	assert_int_equal(sph_cbr_map(&r, &count), SPH_ERR_MALFORMED);
	assert_int_equal(count, 0);
	assert_int_equal(r.off, 0);
}

static void test_profile_readers(void **state)
{
	(void)state;
	static const int64_t order[] = {1, 4, -75000};
	/* {1: h'0102', 4: "ok", -75000: 7} then the same with keys 4 and 1 swapped,
	 * an unknown key 2, and a repeated key 1 */
	const uint8_t good[] = {0xa3, 0x01, 0x42, 0x01, 0x02, 0x04, 0x62, 'o',
	                        'k',  0x3a, 0x00, 0x01, 0x24, 0xf7, 0x07};
	const uint8_t swapped[] = {0xa2, 0x04, 0x00, 0x01, 0x00};
	const uint8_t unknown[] = {0xa1, 0x02, 0x00};
	const uint8_t repeated[] = {0xa2, 0x01, 0x00, 0x01, 0x00};
	struct sph_keyset ks = {.n = 0};
	struct sph_cbr r;
	uint8_t two[2];
	char text[3] = {0};
	uint64_t v;
	size_t n;
	int last = -1, idx;

	sph_cbr_init(&r, good, sizeof(good));
	assert_int_equal(sph_cbr_map(&r, &n), 0);
	assert_int_equal(sph_cbr_profile_key(&r, order, 3, &ks, &last, &idx), 0);
	assert_int_equal(idx, 0);
	assert_int_equal(sph_cbr_bstr_exact(&r, two, 2), 0);
	assert_int_equal(sph_cbr_profile_key(&r, order, 3, &ks, &last, &idx), 0);
	assert_int_equal(sph_cbr_text(&r, text, 2), 0);
	assert_string_equal(text, "ok");
	assert_int_equal(sph_cbr_profile_key(&r, order, 3, &ks, &last, &idx), 0);
	assert_int_equal(idx, 2);
	assert_int_equal(sph_cbr_uint_max(&r, 6, &v), SPH_ERR_CLAIM);

	ks.n = 0;
	last = -1;
	sph_cbr_init(&r, swapped, sizeof(swapped));
	assert_int_equal(sph_cbr_map(&r, &n), 0);
	assert_int_equal(sph_cbr_profile_key(&r, order, 3, &ks, &last, &idx), 0);
	assert_int_equal(sph_cbr_uint_max(&r, 0, &v), 0);
	assert_int_equal(sph_cbr_profile_key(&r, order, 3, &ks, &last, &idx), SPH_ERR_MALFORMED);

	ks.n = 0;
	last = -1;
	sph_cbr_init(&r, unknown, sizeof(unknown));
	assert_int_equal(sph_cbr_map(&r, &n), 0);
	assert_int_equal(sph_cbr_profile_key(&r, order, 3, &ks, &last, &idx), SPH_ERR_CLAIM);

	ks.n = 0;
	last = -1;
	sph_cbr_init(&r, repeated, sizeof(repeated));
	assert_int_equal(sph_cbr_map(&r, &n), 0);
	assert_int_equal(sph_cbr_profile_key(&r, order, 3, &ks, &last, &idx), 0);
	assert_int_equal(sph_cbr_uint_max(&r, 0, &v), 0);
	assert_int_equal(sph_cbr_profile_key(&r, order, 3, &ks, &last, &idx), SPH_ERR_DUPLICATE);

	assert_true(sph_text_ok((const uint8_t *)"a b~", 4, 4));
	assert_false(sph_text_ok((const uint8_t *)"abc", 3, 2));
	assert_false(sph_text_ok((const uint8_t *)"", 0, 2));
	assert_false(sph_text_ok((const uint8_t *)"a\n", 2, 2));
	assert_false(sph_text_ok((const uint8_t *)"a\x7f", 2, 2));
}

static void test_keyset(void **state)
{
	(void)state;
	struct sph_keyset ks = {.n = 0};
	assert_int_equal(sph_keyset_add(&ks, 1), 0);
	assert_int_equal(sph_keyset_add(&ks, -7), 0);
	assert_int_equal(sph_keyset_add(&ks, 1), SPH_ERR_DUPLICATE);
	for (int64_t k = 100; ks.n < SPH_CBOR_MAX_KEYS; k++)
		assert_int_equal(sph_keyset_add(&ks, k), 0);
	assert_int_equal(sph_keyset_add(&ks, 5000), SPH_ERR_TOO_LARGE);
}

/* Runs fn with stderr sent to a temporary file; returns what it wrote (malloc'd). */
__attribute__((noinline)) static char *capture_stderr(void (*fn)(void))
{
	char path[] = "/tmp/sphere-log-XXXXXX";
	int fd = mkstemp(path), saved = dup(2);
	uint8_t *buf = NULL;
	size_t len = 0;

	assert_true(fd >= 0 && saved >= 0);
	fflush(stderr);
	assert_int_equal(dup2(fd, 2), 2);
	fn();
	fflush(stderr);
	assert_int_equal(dup2(saved, 2), 2);
	close(saved);
	close(fd);
	assert_int_equal(tu_read_file(path, &buf, &len), 0);
	unlink(path);
	return (char *)buf;
}

static void log_some(void)
{
	sph_log_set_level(SPH_LOG_INFO);
	sph_log(SPH_LOG_INFO, "rot", "started", "pid=%d otp=%s", 42, "/tmp/x");
	sph_log(SPH_LOG_DEBUG, "rot", "hidden", NULL);
	sph_log(SPH_LOG_ERROR, "cose", "refused", NULL);
}

static void test_log_lines(void **state)
{
	(void)state;
	char *out = capture_stderr(log_some);
	char *second;

	/* One line per event, key=value fields, below-threshold events dropped. */
	assert_non_null(strstr(out, " level=info mod=rot event=started pid=42 otp=/tmp/x\n"));
	assert_null(strstr(out, "hidden"));
	second = strchr(out, '\n') + 1;
	assert_int_equal(strncmp(second, "ts=", 3), 0);
	assert_non_null(strstr(second, " level=error mod=cose event=refused\n"));
	assert_int_equal(strchr(second, '\n')[1], '\0');
	assert_true(sph_log_enabled(SPH_LOG_WARN));
	assert_false(sph_log_enabled(SPH_LOG_DEBUG));
	free(out);
}

/* base64url: RFC 4648's vectors in the URL alphabet, padding optional and
 * only at the end, nothing else accepted, the cap enforced. */
static void test_b64url(void **state)
{
	static const struct {
		const char *plain, *enc;
	} v[] = {{"f", "Zg"},        {"fo", "Zm8"},        {"foo", "Zm9v"},
	         {"foob", "Zm9vYg"}, {"fooba", "Zm9vYmE"}, {"foobar", "Zm9vYmFy"}};
	static const char *const bad[] = {"",     "Z",      "Zg=a",  "Zm9v YmFy", "Zm9v+g",
	                                  "Zm/v", "Zg===x", "Zm9vY", "Zm9v\n"};
	static const uint8_t url_only[] = {0xfb, 0xff};
	uint8_t out[16];
	size_t len = 0;
	char *e;

	(void)state;
	for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
		e = sph_b64url_encode((const uint8_t *)v[i].plain, strlen(v[i].plain));
		assert_non_null(e);
		assert_string_equal(e, v[i].enc);
		free(e);
		assert_int_equal(sph_b64url_decode(v[i].enc, out, sizeof(out), &len), 0);
		assert_int_equal(len, strlen(v[i].plain));
		assert_memory_equal(out, v[i].plain, len);
	}
	assert_int_equal(sph_b64url_decode("Zg==", out, sizeof(out), &len), 0);
	assert_int_equal(len, 1);
	e = sph_b64url_encode(url_only, sizeof(url_only));
	assert_string_equal(e, "-_8");
	free(e);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		if (sph_b64url_decode(bad[i], out, sizeof(out), &len) != SPH_ERR_MALFORMED)
			fail_msg("accepted \"%s\"", bad[i]);
		assert_int_equal(len, 0);
	}
	/* the cap: 6 bytes do not fit in 5 */
	assert_int_equal(sph_b64url_decode("Zm9vYmFy", out, 5, &len), SPH_ERR_MALFORMED);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_strerror_every_code),
	        cmocka_unit_test(test_hex),
	        cmocka_unit_test(test_writer_shortest_form),
	        cmocka_unit_test(test_writer_overflow_is_sticky),
	        cmocka_unit_test(test_reader_types),
	        cmocka_unit_test(test_reader_refuses_non_strict),
	        cmocka_unit_test(test_reader_skip_and_trailing),
	        cmocka_unit_test(test_reader_skip_bounds),
	        cmocka_unit_test(test_reader_skip_refuses_duplicate_keys),
	        cmocka_unit_test(test_reader_outputs_cleared_on_error),
	        cmocka_unit_test(test_profile_readers),
	        cmocka_unit_test(test_keyset),
	        cmocka_unit_test(test_log_lines),
	        cmocka_unit_test(test_b64url),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
