/*
 * fuzz_bootstate: arbitrary bytes as a slot-state record (docs/formats.md §7.2),
 * the untrusted flash bytes the boot ROM reads first.
 *  - boot_state_decode() must not crash, for every component and length;
 *  - an accepted record must satisfy every rule of §7.2 and re-encode to
 *    exactly the input bytes (there is one encoding per state);
 *  - a refused one leaves the output zeroed.
 */
#include <stdlib.h>
#include <string.h>

#include "boot/boot.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const struct boot_state zero;
	struct boot_state s;
	uint8_t again[BOOT_RECORD_LEN];

	for (unsigned comp = 0; comp <= BOOT_COMPONENTS; comp++) {
		if (boot_state_decode(data, size, comp, &s) != 0) {
			if (memcmp(&s, &zero, sizeof(s)) != 0)
				abort();
			continue;
		}
		if (size != BOOT_RECORD_LEN || s.component != comp || comp >= BOOT_COMPONENTS)
			abort();
		if (s.seq == 0 || s.trials_left > BOOT_TRIALS ||
		    (s.trial != BOOT_NO_SLOT && s.trial == s.confirmed) ||
		    (s.trial != BOOT_NO_SLOT && s.len[s.trial] == 0) ||
		    (s.confirmed != BOOT_NO_SLOT && s.len[s.confirmed] == 0) ||
		    s.len[0] > BOOT_SLOT_SIZE || s.len[1] > BOOT_SLOT_SIZE)
			abort();
		if (boot_state_encode(&s, again) != 0 || memcmp(again, data, BOOT_RECORD_LEN) != 0)
			abort();
	}
	return 0;
}
