/*
 * The input format both fuzz targets share: a run of records, each a
 * control byte, a 16-bit little-endian body length and the body (a length
 * past the end of the input is cut to what is there; a last header that
 * does not fit ends the input).  make_corpus.py writes the same layout.
 */
#ifndef FUZZ_RECORDS_H
#define FUZZ_RECORDS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define REC_HDR		3u

/* The next record of *data (*size bytes left): false when none is left. */
static inline bool fuzz_next_record(const uint8_t **data, size_t *size,
				    unsigned *ctl, const uint8_t **body,
				    size_t *len)
{
	const uint8_t *d = *data;

	if (*size < REC_HDR)
		return false;
	*ctl = d[0];
	*len = d[1] | (size_t) d[2] << 8;
	*body = d + REC_HDR;
	*size -= REC_HDR;
	if (*len > *size)
		*len = *size;
	*data = *body + *len;
	*size -= *len;
	return true;
}

#endif /* FUZZ_RECORDS_H */
