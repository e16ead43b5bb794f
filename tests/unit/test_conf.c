#include <criterion/criterion.h>
Test(placeholder, conf) { cr_assert(1); }
