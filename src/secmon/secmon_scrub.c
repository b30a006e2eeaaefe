/*
 * secmon: the health check (docs/formats.md §9.6). Every shard of every
 * object is read and checked; what can be rebuilt is rewritten (read-write
 * mount) one commit per object; a degraded superblock is re-committed.
 */
#include <string.h>
#include <stdlib.h>

#include "common/common.h"
#include "secmon_internal.h"

int secmon_scrub(struct secmon *s, struct secmon_scrub_report *rep)
{
	struct chip_flash *f;
	int rc = SPH_ERR_INVALID_ARG;

	if (rep)
		memset(rep, 0, sizeof(*rep));
	if (!s || !rep)
		return rc;
	rc = secmon_enter(s, false);
	if (rc != 0)
		goto out;
	for (size_t i = 0; i < s->st.t.nobj; i++) {
		struct secmon_read_stats rs;
		uint8_t *data = NULL;
		char name[SECMON_NAME_MAX + 1];
		memcpy(name, s->st.t.obj[i].name, sizeof(name));
		rep->objects++;
		rc = secmon_read_entry(s, i, true, &data, NULL, 0, &rs);
		free(data);
		rep->shards += rs.shards;
		rep->repaired += rs.repaired;
		rep->unrepaired += rs.unrepaired;
		rep->unrecoverable += rs.unrecoverable;
		if (rc == SPH_ERR_CORRUPT) {
			if (!rep->first_bad[0])
				memcpy(rep->first_bad, name, sizeof(name));
			continue;
		}
		if (rc != 0)
			goto out;
		/* A write that failed for the chip (power cut) ends the walk. */
		rc = rs.repair_rc;
		if (rc != 0 && rc != SPH_ERR_NO_SPACE)
			goto out;
	}
	if (s->st.degraded && !s->ro) {
		struct secmon_table nt;
		rc = secmon_table_copy(&s->st.t, &nt);
		if (rc == 0)
			rc = secmon_install(s, &nt, NULL, 0, NULL);
		if (rc != 0)
			goto out;
		rep->repaired++;
	} else if (s->st.degraded) {
		rep->unrepaired++;
	}
	f = chip_flash(s->c);
	for (uint32_t b = 0; b < s->st.g.count; b++) {
		uint32_t n = 0;
		if (chip_flash_erase_count(f, s->st.g.first + b, &n) == 0 &&
		    n >= SECMON_WORN_ERASES)
			rep->worn_blocks++;
	}
	rc = rep->unrecoverable ? SPH_ERR_CORRUPT : 0;
out:
	pthread_mutex_unlock(&s->mu);
	return rc;
}
