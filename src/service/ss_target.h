/*
 * ss_target: what a device group's devices should run (docs/api-images.md
 * "The group's target"): the newest OS release per OS component type in the
 * group's feed, plus the images of the group's newest deployment, filtered
 * by its update policy. The device check-in compares it with what a device
 * measured.
 */
#ifndef SPHERE_SS_TARGET_H
#define SPHERE_SS_TARGET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ss_store.h"

/* Entries of one target: 3 OS component types and one deployment. (Named
 * SS_TARGET_IMAGES_MAX because ss_store.h's SS_TARGET_MAX is the audit
 * target's length.) */
#define SS_TARGET_IMAGES_MAX (3 + SS_DEPLOY_IMAGES_MAX)

struct ss_target_image {
	char image_id[SS_UUID_LEN + 1];
	uint8_t component_id[16]; /* the manifest's UUID, binary */
	uint32_t type;            /* enum img_component_type */
	char version[SS_IMAGE_VERSION_MAX + 1];
	uint32_t security_version;
	uint8_t payload_sha256[32];
	uint64_t package_size;
	uint8_t package_sha256[32];
	bool is_os; /* from the OS feed (platform-signed), else a tenant application */
};

struct ss_target {
	char group_id[SS_UUID_LEN + 1];
	enum ss_os_feed os_feed;
	enum ss_update_policy update_policy;
	char deployment_id[SS_UUID_LEN + 1]; /* "" when the group has none (or policy hides it) */
	size_t n; /* entries: OS first (by type), then the deployment's */
	struct ss_target_image images[SS_TARGET_IMAGES_MAX];
};

#endif
