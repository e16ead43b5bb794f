/* grow.c - doubling array growth. */
#include "base/grow.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int wd_grow(void *arr, size_t *cap, size_t need, size_t size, size_t first)
{
	size_t n = *cap ? *cap : first;
	void *p, *old;

	if (need <= *cap)
		return 0;
	while (n < need) {
		if (n > SIZE_MAX / 2 / size)
			return -1;
		n *= 2;
	}
	memcpy(&old, arr, sizeof(old));
	p = realloc(old, n * size);
	if (!p)
		return -1;
	memcpy(arr, &p, sizeof(p));
	*cap = n;
	return 0;
}
