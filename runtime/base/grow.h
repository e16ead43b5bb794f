/* grow.h - growing an array by doubling, written once. */
#ifndef WD_GROW_H
#define WD_GROW_H

#include <stddef.h>

/*
 * Make room for `need` elements of `size` bytes in *arr (capacity *cap):
 * if *cap is short, double it (starting at `first`) until it fits and
 * realloc. Returns 0, or -1 on out of memory with *arr and *cap unchanged.
 */
int wd_grow(void *arr, size_t *cap, size_t need, size_t size, size_t first);

/* wd_grow for an array pointer `a` of any element type. */
#define WD_GROW(a, cap, need, first)                                           \
	wd_grow(&(a), &(cap), (need), sizeof(*(a)), (first))

#endif
