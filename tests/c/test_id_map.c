/*
 * The core's id map (usb4_id_map.c): what the peer tables and the
 * unexpected budget find senders with.  Ids come and go for ever (hidden
 * entries of peers that went, senders whose queue drained): after any mix
 * of puts and removals every id still there is found with its value, no id
 * removed is, and the map never grows past twice what it holds.
 */
#include <string.h>

#include "usb4_test.h"
#include "usb4_core.h"

#define IDS	4096
#define ROUNDS	64

/* Ids that collide in the map's low bits: the probing and the shifting
 * back on removal are what is tested. */
static uint64_t id_of(unsigned i)
{
	return ((uint64_t) i << 40) | 1;
}

static void check_all(const struct usb4_id_map *m, const bool *present,
		      const uint64_t *val)
{
	int wrong = 0;

	for (unsigned i = 0; i < IDS; i++) {
		const uint64_t *v = usb4_id_map_find(m, id_of(i));

		if (present[i] ? !v || *v != val[i] : v != NULL)
			wrong++;
	}
	CHECK_EQ(wrong, 0);
}

int main(void)
{
	static bool present[IDS];
	static uint64_t val[IDS];
	struct usb4_id_map m;
	size_t held = 0, cap_max = 0;
	uint64_t seed = 12345;

	CHECK_EQ(usb4_id_map_init(&m, 4), 0);
	CHECK(usb4_id_map_find(&m, 0) == NULL);
	CHECK_EQ(usb4_id_map_put(&m, 0, 1), -FI_EINVAL);
	for (unsigned r = 0; r < ROUNDS; r++) {
		for (unsigned k = 0; k < IDS; k++) {
			unsigned i;

			seed = seed * 6364136223846793005ull + 1442695040888963407ull;
			i = (unsigned) (seed >> 33) % IDS;
			if (present[i] && (seed & 1)) {
				usb4_id_map_remove(&m, id_of(i));
				present[i] = false;
				held--;
			} else {
				held += !present[i];
				present[i] = true;
				val[i] = seed;
				CHECK_EQ(usb4_id_map_put(&m, id_of(i), seed), 0);
			}
		}
		check_all(&m, present, val);
		CHECK_EQ(m.count, held);
		if (m.cap > cap_max)
			cap_max = m.cap;
	}
	/* Half full at most, and no bigger than the most it ever held needs. */
	CHECK(cap_max <= 4 * IDS);
	for (unsigned i = 0; i < IDS; i++)
		usb4_id_map_remove(&m, id_of(i));
	CHECK_EQ(m.count, 0);
	memset(present, 0, sizeof(present));
	check_all(&m, present, val);
	usb4_id_map_fini(&m);
	return usb4_test_done("test_id_map");
}
