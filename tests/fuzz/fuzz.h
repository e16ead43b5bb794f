/* fuzz.h - what the libFuzzer targets of tests/fuzz share: reading the
 * input as a few fields, each target on the runtime's own code. */
#ifndef WD_FUZZ_H
#define WD_FUZZ_H

#include <stddef.h>
#include <stdint.h>

/* The input, read from the front. */
struct fuzz_in {
	const uint8_t *p;
	size_t n;
};

/* One byte (0 once the input is used up). */
static inline uint8_t fuzz_byte(struct fuzz_in *in)
{
	uint8_t b = 0;

	if (in->n) {
		b = in->p[0];
		in->p++;
		in->n--;
	}
	return b;
}

/* Up to `len` bytes as a view into the input (fewer once it runs out). */
static inline const uint8_t *fuzz_take(struct fuzz_in *in, size_t len,
                                       size_t *got)
{
	const uint8_t *at = in->p;

	*got = len < in->n ? len : in->n;
	in->p += *got;
	in->n -= *got;
	return at;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

#endif
