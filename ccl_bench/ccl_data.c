/* The benchmark's data: element types, the values each rank sends and the
 * check of every result element against what the collective must give. */
#include <string.h>

#include "ccl_bench.h"

static const struct ccl_dtype dtypes[] = {
	{ "float32", onecclFloat32, 4 },
	{ "bfloat16", onecclBfloat16, 2 },
};

const struct ccl_dtype *ccl_dtype_find(const char *name)
{
	for (size_t i = 0; i < sizeof(dtypes) / sizeof(dtypes[0]); i++)
		if (!strcmp(dtypes[i].name, name))
			return &dtypes[i];
	return NULL;
}

/* 0..15, depending on rank and index: sums over up to 17 ranks stay at or
 * below 256, exact in bfloat16's 8-bit significand whatever the order in
 * which the library adds them. */
double ccl_data_value(int rank, size_t index)
{
	return (double)((index * 7 + (size_t)rank * 3) % 16);
}

/* bfloat16 is the upper half of a float32, rounded to nearest even */
static uint16_t bf16_from_float(float f)
{
	uint32_t u;

	memcpy(&u, &f, sizeof(u));
	u += 0x7fff + ((u >> 16) & 1);
	return (uint16_t)(u >> 16);
}

static float bf16_to_float(uint16_t h)
{
	uint32_t u = (uint32_t)h << 16;
	float f;

	memcpy(&f, &u, sizeof(f));
	return f;
}

static void store(const struct ccl_dtype *t, void *buf, size_t i, float v)
{
	if (t->ccl == onecclBfloat16)
		((uint16_t *)buf)[i] = bf16_from_float(v);
	else
		((float *)buf)[i] = v;
}

static float load(const struct ccl_dtype *t, const void *buf, size_t i)
{
	if (t->ccl == onecclBfloat16)
		return bf16_to_float(((const uint16_t *)buf)[i]);
	return ((const float *)buf)[i];
}

void ccl_data_fill(const struct ccl_dtype *t, void *buf, size_t count, int rank)
{
	for (size_t i = 0; i < count; i++)
		store(t, buf, i, (float)ccl_data_value(rank, i));
}

/* -1 is no value a correct result holds */
void ccl_data_poison(const struct ccl_dtype *t, void *buf, size_t count)
{
	for (size_t i = 0; i < count; i++)
		store(t, buf, i, -1.0f);
}

size_t ccl_data_check(const struct ccl_dtype *t, const struct ccl_coll *c,
		      const void *buf, size_t count, size_t total, int rank,
		      int nranks)
{
	size_t errors = 0;

	for (size_t i = 0; i < count; i++)
		if ((double)load(t, buf, i) != c->expect(i, total, rank, nranks))
			errors++;
	return errors;
}
